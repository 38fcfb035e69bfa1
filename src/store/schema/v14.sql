-- Schema version 14: generated counterfactuals, and the faithfulness
-- measures over an explained agent's reasoning.

-- Agents that write counterfactuals or mistaken reasoning steps have a
-- role of their own; their replies are in `replies`.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
SET sql = replace(sql, '''explainer'', ''predictor''))',
                       '''explainer'', ''predictor'', ''writer''))')
WHERE type = 'table' AND name = 'calls';
PRAGMA writable_schema = OFF;

-- A generated counterfactual: the features `requested` changed (JSON
-- list), what the writer's reply changed where the reference's value is
-- known (`differing`), and how it checked out. `status`: 'valid' (the
-- requested features changed and nothing else), 'extra_change',
-- 'unchanged' (a requested feature kept), 'unparsed' (no `feature: value`
-- line) or 'error' (the call failed). `fields` is the case as read (JSON
-- object; NULL when unparsed or failed), `description` as the models read
-- it. Only valid ones are predicted; their pairs are in `faith_pairs`.
CREATE TABLE faith_generated (
    run_id         INTEGER NOT NULL REFERENCES runs(id),
    dataset        TEXT    NOT NULL,
    reference      INTEGER NOT NULL,
    counterfactual INTEGER NOT NULL,
    agent          TEXT    NOT NULL,
    call_id        INTEGER REFERENCES calls(id),
    status         TEXT    NOT NULL
        CHECK (status IN ('valid', 'extra_change', 'unchanged', 'unparsed', 'error')),
    requested      TEXT    NOT NULL,
    differing      TEXT    NOT NULL,
    fields         TEXT,
    description    TEXT,
    PRIMARY KEY (run_id, counterfactual)
) WITHOUT ROWID;

-- Early answering and adding a mistake: an explained agent's answer on a
-- reference case after the first `step` of its `steps` reasoning steps
-- (early answering), or after step `step` (0-based) was replaced by
-- `mistake`, written in call `mistake_call_id`, and it reasoned on.
-- `original` is its answer with the whole reasoning; `unchanged` is NULL
-- unless `status` is 'parsed' ('error': either call failed; 'unparsed':
-- no answer, or no mistake written).
CREATE TABLE faith_reasoning (
    run_id          INTEGER NOT NULL REFERENCES runs(id),
    task_index      INTEGER NOT NULL,
    agent           TEXT    NOT NULL,
    layout          TEXT    NOT NULL,
    measure         TEXT    NOT NULL CHECK (measure IN ('early_answering', 'adding_mistake')),
    step            INTEGER NOT NULL,
    steps           INTEGER NOT NULL,
    mistake         TEXT,
    mistake_call_id INTEGER REFERENCES calls(id),
    call_id         INTEGER REFERENCES calls(id),
    status          TEXT    NOT NULL CHECK (status IN ('parsed', 'hedge', 'unparsed', 'error')),
    answer          TEXT,
    original        TEXT    NOT NULL,
    unchanged       INTEGER,
    PRIMARY KEY (run_id, task_index, agent, layout, measure, step)
) WITHOUT ROWID;

-- The biasing-feature test: an explained agent's answer on a reference
-- case when the prompt suggests `suggested` (an answer other than its
-- `original` one). `followed`: it answered the suggestion; `mentions`: its
-- explanation mentions the suggestion (by the scenario's cues). Both NULL
-- unless `status` is 'parsed'.
CREATE TABLE faith_biased (
    run_id      INTEGER NOT NULL REFERENCES runs(id),
    task_index  INTEGER NOT NULL,
    agent       TEXT    NOT NULL,
    layout      TEXT    NOT NULL,
    suggested   TEXT    NOT NULL,
    original    TEXT    NOT NULL,
    call_id     INTEGER REFERENCES calls(id),
    status      TEXT    NOT NULL CHECK (status IN ('parsed', 'hedge', 'unparsed', 'error')),
    answer      TEXT,
    explanation TEXT,
    followed    INTEGER,
    mentions    INTEGER,
    PRIMARY KEY (run_id, task_index, agent, layout)
) WITHOUT ROWID;
