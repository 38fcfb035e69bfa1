-- crucible trace store, schema version 1. Documented in docs/schema.md.

CREATE TABLE runs (
    id               INTEGER PRIMARY KEY,
    name             TEXT    NOT NULL,
    scenario_path    TEXT    NOT NULL,
    scenario_text    TEXT    NOT NULL,
    scenario_hash    TEXT    NOT NULL,
    seed             INTEGER NOT NULL,
    crucible_version TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN
                        ('running', 'completed', 'failed', 'interrupted', 'budget_exhausted')),
    concurrency      INTEGER NOT NULL,
    planned_samples  INTEGER NOT NULL,
    started_at       REAL    NOT NULL,
    finished_at      REAL,
    error            TEXT
);

CREATE TABLE run_files (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    path   TEXT    NOT NULL,
    text   TEXT    NOT NULL,
    PRIMARY KEY (run_id, path)
) WITHOUT ROWID;

CREATE TABLE blobs (
    hash TEXT PRIMARY KEY,
    text TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE tasks (
    run_id     INTEGER NOT NULL REFERENCES runs(id),
    task_index INTEGER NOT NULL,
    task_id    TEXT    NOT NULL,
    inputs     TEXT    NOT NULL,
    expected   TEXT,
    PRIMARY KEY (run_id, task_index)
) WITHOUT ROWID;

CREATE TABLE calls (
    id            INTEGER PRIMARY KEY,
    run_id        INTEGER NOT NULL REFERENCES runs(id),
    task_index    INTEGER NOT NULL,
    agent         TEXT    NOT NULL,
    model         TEXT    NOT NULL,
    provider      TEXT    NOT NULL,
    first_sample  INTEGER NOT NULL,
    n             INTEGER NOT NULL,
    system_hash   TEXT    NOT NULL REFERENCES blobs(hash),
    prompt_hash   TEXT    NOT NULL REFERENCES blobs(hash),
    request       TEXT    NOT NULL,
    response_hash TEXT    REFERENCES blobs(hash),
    status        TEXT    NOT NULL CHECK (status IN ('ok', 'error')),
    error         TEXT,
    latency_ms    REAL    NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL
);
CREATE INDEX calls_by_task ON calls (run_id, task_index);

CREATE TABLE samples (
    id            INTEGER PRIMARY KEY,
    run_id        INTEGER NOT NULL REFERENCES runs(id),
    task_index    INTEGER NOT NULL,
    agent         TEXT    NOT NULL,
    model         TEXT    NOT NULL,
    sample_index  INTEGER NOT NULL,
    call_id       INTEGER NOT NULL REFERENCES calls(id),
    text          TEXT    NOT NULL,
    answer        TEXT,
    normalized    TEXT,
    correct       INTEGER,
    abstained     INTEGER NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    latency_ms    REAL    NOT NULL,
    error         TEXT,
    UNIQUE (run_id, agent, task_index, sample_index)
);

CREATE TABLE scores (
    sample_id INTEGER NOT NULL REFERENCES samples(id),
    verifier  TEXT    NOT NULL,
    score     REAL    NOT NULL,
    accepted  INTEGER,
    PRIMARY KEY (sample_id, verifier)
) WITHOUT ROWID;

CREATE TABLE task_results (
    run_id           INTEGER NOT NULL REFERENCES runs(id),
    strategy         TEXT    NOT NULL,
    kind             TEXT    NOT NULL,
    n                INTEGER NOT NULL,
    task_index       INTEGER NOT NULL,
    accuracy         REAL,
    abstain          REAL    NOT NULL,
    tokens           REAL    NOT NULL,
    selected         TEXT,
    selected_correct INTEGER NOT NULL,
    PRIMARY KEY (run_id, strategy, n, task_index)
) WITHOUT ROWID;

CREATE TABLE results (
    run_id       INTEGER NOT NULL REFERENCES runs(id),
    strategy     TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    agent        TEXT    NOT NULL,
    verifier     TEXT,
    n            INTEGER NOT NULL,
    accuracy     REAL,
    ci_low       REAL,
    ci_high      REAL,
    tasks        INTEGER NOT NULL,
    abstain_rate REAL    NOT NULL,
    mean_tokens  REAL    NOT NULL,
    PRIMARY KEY (run_id, strategy, n)
);

CREATE TABLE events (
    id     INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    at     REAL    NOT NULL,
    kind   TEXT    NOT NULL,
    detail TEXT
);

-- One row per sample with its task and run: the usual starting point for analysis.
CREATE VIEW sample_view AS
SELECT s.id AS sample_id, s.run_id, r.name AS run_name, r.seed, r.status AS run_status,
       t.task_id, s.task_index, t.expected, s.agent, s.model, s.sample_index,
       s.answer, s.normalized, s.correct, s.abstained, s.input_tokens, s.output_tokens,
       s.latency_ms, s.error, s.text, s.call_id
FROM samples s
JOIN runs r ON r.id = s.run_id
JOIN tasks t ON t.run_id = s.run_id AND t.task_index = s.task_index;

-- One row per (sample, verifier) score, with the sample's task and answer.
CREATE VIEW score_view AS
SELECT v.run_id, v.task_id, v.task_index, v.agent, v.sample_index, v.normalized, v.correct,
       sc.verifier, sc.score, sc.accepted
FROM scores sc JOIN sample_view v ON v.sample_id = sc.sample_id;

-- Model calls with their messages and response bodies resolved from blobs.
CREATE VIEW call_view AS
SELECT c.id AS call_id, c.run_id, t.task_id, c.task_index, c.agent, c.model, c.provider,
       c.first_sample, c.n, c.status, c.error, c.latency_ms, c.input_tokens, c.output_tokens,
       sb.text AS system, pb.text AS prompt, c.request, rb.text AS response
FROM calls c
JOIN tasks t ON t.run_id = c.run_id AND t.task_index = c.task_index
JOIN blobs sb ON sb.hash = c.system_hash
JOIN blobs pb ON pb.hash = c.prompt_hash
LEFT JOIN blobs rb ON rb.hash = c.response_hash;

-- Strategy outcomes per task, with the task id.
CREATE VIEW task_result_view AS
SELECT tr.*, t.task_id, t.expected
FROM task_results tr JOIN tasks t ON t.run_id = tr.run_id AND t.task_index = tr.task_index;

-- Runs with human-readable times.
CREATE VIEW run_view AS
SELECT id, name, status, seed, crucible_version, scenario_path, scenario_hash, concurrency,
       planned_samples, datetime(started_at, 'unixepoch') AS started,
       datetime(finished_at, 'unixepoch') AS finished,
       finished_at - started_at AS seconds, error
FROM runs;
