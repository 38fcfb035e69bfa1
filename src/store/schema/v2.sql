-- Schema version 2: every HTTP exchange behind a call, retries included.

CREATE TABLE attempts (
    call_id    INTEGER NOT NULL REFERENCES calls(id),
    attempt    INTEGER NOT NULL,
    n          INTEGER NOT NULL,
    status     INTEGER,
    error      TEXT,
    latency_ms REAL    NOT NULL,
    wait_ms    REAL    NOT NULL,
    PRIMARY KEY (call_id, attempt)
) WITHOUT ROWID;

-- Attempts with their call's run, task and model.
CREATE VIEW attempt_view AS
SELECT c.run_id, c.id AS call_id, c.task_index, c.agent, c.model, c.first_sample,
       a.attempt, a.n, a.status, a.error, a.latency_ms, a.wait_ms
FROM attempts a JOIN calls c ON c.id = a.call_id;
