-- Schema version 13: self-explanation faithfulness experiments.

-- Explained agents' and predictors' calls have roles of their own; their
-- replies are in `replies`, as a judge's are. (The CHECK is loosened by
-- editing its text, as version 11 did.)
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
SET sql = replace(sql, 'CHECK (role IN (''generator'', ''verifier'', ''judge''))',
                       'CHECK (role IN (''generator'', ''verifier'', ''judge'', ''explainer'', ''predictor''))')
WHERE type = 'table' AND name = 'calls';
PRAGMA writable_schema = OFF;

-- Each reference case's counterfactuals: cases are tasks, by index.
-- `distance` is the number of features that differ (NULL where unknown),
-- `differing` their names as a JSON list.
CREATE TABLE faith_pairs (
    run_id         INTEGER NOT NULL REFERENCES runs(id),
    dataset        TEXT    NOT NULL,
    reference      INTEGER NOT NULL,
    counterfactual INTEGER NOT NULL,
    source         TEXT    NOT NULL CHECK (source IN ('natural', 'given', 'generated')),
    distance       INTEGER,
    differing      TEXT    NOT NULL,
    PRIMARY KEY (run_id, reference, counterfactual)
) WITHOUT ROWID;

-- An explained agent's reply to one case, in one layout, as read: the
-- answer (NULL unless `status` is 'parsed'), the explanation, the factors
-- it named (JSON list) and its confidence (0..1). `status`: 'parsed',
-- 'hedge' (two or more answers), 'unparsed', or 'error' (the call failed).
CREATE TABLE faith_answers (
    run_id      INTEGER NOT NULL REFERENCES runs(id),
    task_index  INTEGER NOT NULL,
    agent       TEXT    NOT NULL,
    layout      TEXT    NOT NULL CHECK (layout IN ('answer_first', 'answer_last')),
    call_id     INTEGER REFERENCES calls(id),
    status      TEXT    NOT NULL CHECK (status IN ('parsed', 'hedge', 'unparsed', 'error')),
    answer      TEXT,
    explanation TEXT,
    factors     TEXT    NOT NULL,
    confidence  REAL,
    PRIMARY KEY (run_id, task_index, agent, layout)
) WITHOUT ROWID;

-- One prediction of an explained agent's answer on a counterfactual.
-- `condition`: 'with' (its own explanation), 'without', or 'external'
-- (the explanation of `explanation_from`, another explained agent that gave
-- the same reference answer). `actual` is the explained agent's own answer
-- on the counterfactual; `correct` is NULL when the prediction is a hedge
-- or unparsed, or failed ('error').
CREATE TABLE faith_predictions (
    run_id           INTEGER NOT NULL REFERENCES runs(id),
    dataset          TEXT    NOT NULL,
    reference        INTEGER NOT NULL,
    counterfactual   INTEGER NOT NULL,
    model            TEXT    NOT NULL,
    layout           TEXT    NOT NULL,
    predictor        TEXT    NOT NULL,
    repeat           INTEGER NOT NULL,
    condition        TEXT    NOT NULL CHECK (condition IN ('with', 'without', 'external')),
    explanation_from TEXT,
    call_id          INTEGER REFERENCES calls(id),
    status           TEXT    NOT NULL CHECK (status IN ('parsed', 'hedge', 'unparsed', 'error')),
    prediction       TEXT,
    actual           TEXT    NOT NULL,
    correct          INTEGER,
    PRIMARY KEY (run_id, reference, counterfactual, model, layout, predictor, repeat, condition)
) WITHOUT ROWID;

-- Predictions with their case ids, for pandas.
CREATE VIEW faith_prediction_rows AS
SELECT p.run_id, p.dataset, r.task_id AS reference, c.task_id AS counterfactual,
       p.model, p.layout, p.predictor, p.repeat, p.condition, p.explanation_from,
       p.status, p.prediction, p.actual, p.correct, p.call_id
FROM faith_predictions p
JOIN tasks r ON r.run_id = p.run_id AND r.task_index = p.reference
JOIN tasks c ON c.run_id = p.run_id AND c.task_index = p.counterfactual;
