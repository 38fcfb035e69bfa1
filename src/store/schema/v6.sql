-- Schema version 6: verifiers that call models (`llm` judges). A judge's
-- call is a row of `calls` with role 'verifier': `agent` is the verifier,
-- `subject` the agent whose sample it judges, and `first_sample` that
-- sample's index. Generator calls keep role 'generator' and subject NULL.

ALTER TABLE calls ADD COLUMN role TEXT NOT NULL DEFAULT 'generator'
    CHECK (role IN ('generator', 'verifier'));
ALTER TABLE calls ADD COLUMN subject TEXT;

-- What a call answered that is not a sample: a judge's reply (its score
-- and the reply again, as `detail`, are in `scores`).
CREATE TABLE replies (
    call_id INTEGER PRIMARY KEY REFERENCES calls(id),
    text    TEXT NOT NULL
);

-- Calls with their texts, now with role, subject, cost and cache key, and a
-- judge's reply.
DROP VIEW call_view;
CREATE VIEW call_view AS
SELECT c.id AS call_id, c.run_id, t.task_id, c.task_index, c.role, c.agent, c.subject, c.model,
       c.provider, c.first_sample, c.n, c.status, c.error, c.latency_ms, c.input_tokens,
       c.output_tokens, c.cost_usd, c.cache_key, sb.text AS system, pb.text AS prompt,
       c.request, rb.text AS response, rp.text AS reply
FROM calls c
JOIN tasks t ON t.run_id = c.run_id AND t.task_index = c.task_index
JOIN blobs sb ON sb.hash = c.system_hash
JOIN blobs pb ON pb.hash = c.prompt_hash
LEFT JOIN blobs rb ON rb.hash = c.response_hash
LEFT JOIN replies rp ON rp.call_id = c.id;

-- A process reward model's score of each step of a sample, in order (the
-- sample's score in `scores` aggregates them).
CREATE TABLE step_scores (
    sample_id INTEGER NOT NULL REFERENCES samples(id),
    verifier  TEXT    NOT NULL,
    step      INTEGER NOT NULL,
    text      TEXT    NOT NULL,
    score     REAL    NOT NULL,
    PRIMARY KEY (sample_id, verifier, step)
) WITHOUT ROWID;

-- Tokens a strategy's verifier spent (its model's calls), part of `tokens`
-- and `mean_tokens`. NULL in older rows: no verifier called a model.
ALTER TABLE task_results ADD COLUMN verifier_tokens REAL;
ALTER TABLE results ADD COLUMN mean_verifier_tokens REAL;
