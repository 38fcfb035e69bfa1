-- Schema version 11: failure judges, labels from every rater, and imported
-- traces.

-- Failure judges' calls have their own role, `judge`. SQLite cannot alter
-- a CHECK constraint; editing its text in the schema is SQLite's documented
-- way to loosen one, and leaves every stored row as it is.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
SET sql = replace(sql, 'CHECK (role IN (''generator'', ''verifier''))',
                       'CHECK (role IN (''generator'', ''verifier'', ''judge''))')
WHERE type = 'table' AND name = 'calls';
PRAGMA writable_schema = OFF;

-- A run is `scenario` (crucible ran it) or `imported` (`crucible import`:
-- traces from another tool, one task per trace, each its graph run 0).
ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'scenario';

-- One row per judge call that was read (a re-asked judgement: the second
-- call's). A trace is (run_id, task_index, attempt).
CREATE TABLE judgements (
    id            INTEGER PRIMARY KEY,
    run_id        INTEGER NOT NULL REFERENCES runs(id),
    task_index    INTEGER NOT NULL,
    attempt       INTEGER NOT NULL,
    judge         TEXT    NOT NULL,
    judge_version TEXT    NOT NULL,
    judge_hash    TEXT    NOT NULL,
    model         TEXT    NOT NULL,
    repeat        INTEGER NOT NULL,
    call_id       INTEGER REFERENCES calls(id),
    reasked       INTEGER NOT NULL,
    status        TEXT    NOT NULL,
    format        TEXT,
    error         TEXT,
    summary       TEXT,
    task_completed INTEGER,
    notes         TEXT,
    cut_messages  INTEGER NOT NULL,
    cut_chars     INTEGER NOT NULL,
    UNIQUE (run_id, task_index, attempt, judge_hash, model, repeat)
);

-- Every rater's label of a trace for one failure mode: a judge's repeat,
-- its majority, an ensemble's, injected ground truth, imported annotators,
-- people. `code` is the 14-mode MAST code, NULL when `original` (the label
-- as its source named it) has no counterpart.
CREATE TABLE labels (
    run_id        INTEGER NOT NULL REFERENCES runs(id),
    task_index    INTEGER NOT NULL,
    attempt       INTEGER NOT NULL,
    rater         TEXT    NOT NULL,
    code          TEXT,
    original      TEXT    NOT NULL,
    present       INTEGER,
    agent         TEXT,
    turn          INTEGER,
    quote         TEXT,
    evidence_verified INTEGER,
    judgement_id  INTEGER REFERENCES judgements(id),
    PRIMARY KEY (run_id, task_index, attempt, rater, original)
);

-- Who and when a failure is blamed on: ground truth from an imported file
-- (Who&When's mistake agent and step) or an attribution method.
CREATE TABLE attributions (
    run_id        INTEGER NOT NULL REFERENCES runs(id),
    task_index    INTEGER NOT NULL,
    attempt       INTEGER NOT NULL,
    method        TEXT    NOT NULL,
    agent         TEXT,
    turn          INTEGER,
    reason        TEXT,
    PRIMARY KEY (run_id, task_index, attempt, method)
);

-- One row per trace × mode × rater, for pandas.
CREATE VIEW label_rows AS
SELECT l.run_id, t.task_id AS trace, l.task_index, l.attempt,
       json_extract(t.inputs, '$.source_id') AS source_id,
       json_extract(t.inputs, '$.mas_name') AS mas_name,
       l.code, l.original, l.rater, l.present, l.agent, l.turn, l.quote,
       l.evidence_verified, j.model AS judge_model, j.judge_version, j.judge_hash
FROM labels l
JOIN tasks t ON t.run_id = l.run_id AND t.task_index = l.task_index
LEFT JOIN judgements j ON j.id = l.judgement_id;
