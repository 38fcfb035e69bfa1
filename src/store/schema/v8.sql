-- Schema version 8: runs of agent graphs. Each run of the graph
-- pseudo-agent (its sample `attempt` of a task) has a `graph_runs` row, its
-- messages in order, and its events: what `crucible show RUN --transcript
-- TASK` prints. The calls behind the messages are in `calls` and `samples`
-- (strategy 'graph').
CREATE TABLE graph_runs (
    run_id     INTEGER NOT NULL REFERENCES runs(id),
    task_index INTEGER NOT NULL,
    attempt    INTEGER NOT NULL,
    ending     TEXT    NOT NULL,
    turns      INTEGER NOT NULL,
    final      INTEGER,
    PRIMARY KEY (run_id, task_index, attempt)
);

CREATE TABLE messages (
    run_id     INTEGER NOT NULL REFERENCES runs(id),
    task_index INTEGER NOT NULL,
    attempt    INTEGER NOT NULL,
    position   INTEGER NOT NULL,
    turn       INTEGER NOT NULL,
    node       TEXT    NOT NULL,
    sender     TEXT,
    reply_to   INTEGER,
    receivers  TEXT    NOT NULL,
    summary    INTEGER NOT NULL,
    text       TEXT    NOT NULL,
    PRIMARY KEY (run_id, task_index, attempt, position)
);

CREATE TABLE graph_events (
    run_id     INTEGER NOT NULL REFERENCES runs(id),
    task_index INTEGER NOT NULL,
    attempt    INTEGER NOT NULL,
    position   INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    node       TEXT,
    detail     TEXT,
    PRIMARY KEY (run_id, task_index, attempt, position)
);
