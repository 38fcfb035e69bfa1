-- Schema version 9: failures injected on purpose. A simulated agent with
-- `simulate.failures` acts out MAST failure modes; each one is a row here,
-- naming the message of its graph run (`messages.position`) where it shows:
-- ground truth for scoring a failure judge per mode.
CREATE TABLE injected_failures (
    run_id     INTEGER NOT NULL REFERENCES runs(id),
    task_index INTEGER NOT NULL,
    attempt    INTEGER NOT NULL,
    position   INTEGER NOT NULL,
    turn       INTEGER NOT NULL,
    agent      TEXT    NOT NULL,
    node       TEXT    NOT NULL,
    mode       TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    PRIMARY KEY (run_id, task_index, attempt, position)
);
