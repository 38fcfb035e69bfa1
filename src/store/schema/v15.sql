-- Schema version 15: failure attribution by counterfactual replay.

-- A replay run re-executes graph runs of another run (its origin) with some
-- turns re-sampled or repaired; `kind` is 'replay'. Its tasks are the
-- origin's; its graph runs, calls and samples are its own.
ALTER TABLE runs ADD COLUMN origin_run INTEGER REFERENCES runs(id);

-- What a replay run replays: the plan (JSON, as `crucible blame` made it)
-- and its hash, by which `blame` finds the run again to resume it.
CREATE TABLE replay_plans (
    run_id     INTEGER PRIMARY KEY REFERENCES runs(id),
    origin_run INTEGER NOT NULL REFERENCES runs(id),
    plan       TEXT    NOT NULL,
    plan_hash  TEXT    NOT NULL
);
CREATE INDEX replay_plans_origin ON replay_plans(origin_run, plan_hash);

-- One replayed graph run: graph run `attempt` of replay run `run_id`
-- re-executes the origin's graph run (`task_index`, `origin_attempt`)
-- with the turns of `coalition` intervened on (`level` 'agent': a JSON
-- list of the agents' indices in the scenario; 'turn': of message
-- positions), under replay seed `replay`. `correct` is whether its final
-- answer was right (NULL: it ended in an error). `calls`, `tokens` and
-- `cost_usd` count every call from the first intervened turn on, whether
-- a model or a recording answered it: the method's cost, not what was paid.
CREATE TABLE counterfactuals (
    run_id         INTEGER NOT NULL REFERENCES runs(id),
    task_index     INTEGER NOT NULL,
    attempt        INTEGER NOT NULL,
    origin_attempt INTEGER NOT NULL,
    level          TEXT    NOT NULL CHECK (level IN ('agent', 'turn')),
    coalition      TEXT    NOT NULL,
    replay         INTEGER NOT NULL,
    correct        INTEGER,
    calls          INTEGER NOT NULL,
    tokens         INTEGER NOT NULL,
    cost_usd       REAL    NOT NULL,
    PRIMARY KEY (run_id, task_index, attempt)
);

-- An attribution's strength and cost: `score` the blamed turn's (or, with
-- no turn, agent's) value, `stderr` its standard error, `replays` the
-- replayed runs it took, `calls`/`tokens`/`cost_usd` every call it made
-- (judge methods: their questions); `replay_run` the run its replays are in.
ALTER TABLE attributions ADD COLUMN score REAL;
ALTER TABLE attributions ADD COLUMN stderr REAL;
ALTER TABLE attributions ADD COLUMN replays INTEGER;
ALTER TABLE attributions ADD COLUMN calls INTEGER;
ALTER TABLE attributions ADD COLUMN tokens INTEGER;
ALTER TABLE attributions ADD COLUMN cost_usd REAL;
ALTER TABLE attributions ADD COLUMN replay_run INTEGER REFERENCES runs(id);

-- Every player's credit behind an attribution: each agent's Shapley value
-- (`level` 'agent', `player` its name) and each turn's (`level` 'turn',
-- `player` the message position), with standard errors.
CREATE TABLE attribution_credits (
    run_id     INTEGER NOT NULL REFERENCES runs(id),
    task_index INTEGER NOT NULL,
    attempt    INTEGER NOT NULL,
    method     TEXT    NOT NULL,
    level      TEXT    NOT NULL CHECK (level IN ('agent', 'turn')),
    player     TEXT    NOT NULL,
    value      REAL    NOT NULL,
    stderr     REAL,
    PRIMARY KEY (run_id, task_index, attempt, method, level, player)
);
