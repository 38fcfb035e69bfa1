-- Schema version 7: each finished task's pool, one row per agent, written in
-- the same transaction as the task's `task_results`. `crucible analyze`
-- reads these 10,000 rows instead of millions of `samples` and `scores`
-- rows. Derived: `samples` and `scores` stay the record, and a run whose
-- tasks do not all have a row (runs before v7, interrupted runs) is read
-- from them instead.
--
-- Arrays are little-endian, one entry per sample in sample order:
-- `classes` u32 (index into `answers`; 4294967295 for an abstention),
-- `correct` u8 (0/1), `tokens` u64 (output tokens, plus the request's input
-- tokens on its first sample), `scores` f64, verifier by verifier in the
-- order of `verifiers` (NaN: that verifier did not score the sample; -inf: it
-- could not).
CREATE TABLE pools (
    run_id     INTEGER NOT NULL REFERENCES runs(id),
    agent      TEXT    NOT NULL,
    task_index INTEGER NOT NULL,
    answers    TEXT    NOT NULL,
    verifiers  TEXT    NOT NULL,
    classes    BLOB    NOT NULL,
    correct    BLOB    NOT NULL,
    tokens     BLOB    NOT NULL,
    scores     BLOB    NOT NULL,
    UNIQUE (run_id, agent, task_index)
);
