-- Schema version 5: samples a strategy draws per task (fewer than `n` for
-- adaptive consistency). NULL in rows written before: they drew `n`.

ALTER TABLE task_results ADD COLUMN samples REAL;
ALTER TABLE results ADD COLUMN mean_samples REAL;

-- Self-correction rounds are samples too, numbered after their agent's pool;
-- these say whose round a sample is (NULL for pool samples).
ALTER TABLE samples ADD COLUMN strategy TEXT;
ALTER TABLE samples ADD COLUMN round INTEGER;

-- A verifier may fail to score a sample (a command that crashed, a verdict
-- that could not be read): `score` is then NULL and `detail` says why.
-- SQLite cannot drop NOT NULL in place, so the table is rebuilt.
DROP VIEW score_view;
DROP VIEW sample_view;
CREATE TABLE scores_v5 (
    sample_id INTEGER NOT NULL REFERENCES samples(id),
    verifier  TEXT    NOT NULL,
    score     REAL,
    accepted  INTEGER,
    detail    TEXT,
    PRIMARY KEY (sample_id, verifier)
) WITHOUT ROWID;
INSERT INTO scores_v5 (sample_id, verifier, score, accepted)
    SELECT sample_id, verifier, score, accepted FROM scores;
DROP TABLE scores;
ALTER TABLE scores_v5 RENAME TO scores;
CREATE VIEW sample_view AS
SELECT s.id AS sample_id, s.run_id, r.name AS run_name, r.seed, r.status AS run_status,
       t.task_id, s.task_index, t.expected, s.agent, s.model, s.sample_index,
       s.answer, s.normalized, s.correct, s.abstained, s.input_tokens, s.output_tokens,
       s.latency_ms, s.error, s.text, s.call_id, s.strategy, s.round
FROM samples s
JOIN runs r ON r.id = s.run_id
JOIN tasks t ON t.run_id = s.run_id AND t.task_index = s.task_index;
CREATE VIEW score_view AS
SELECT v.run_id, v.task_id, v.task_index, v.agent, v.sample_index, v.normalized, v.correct,
       sc.verifier, sc.score, sc.accepted, sc.detail
FROM scores sc JOIN sample_view v ON v.sample_id = sc.sample_id;
