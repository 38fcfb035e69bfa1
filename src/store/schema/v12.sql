-- Schema version 12: people's annotations of traces, with their history.

-- One row per submission of one person's label of one trace for one
-- failure mode, from the viewer or `crucible labels import`. Nothing is
-- updated in place: a correction is a new row, and the latest (highest id)
-- of each (trace, annotator, code) is the one that counts. That latest row
-- is mirrored into `labels` as rater `human:ANNOTATOR`, in the transaction
-- that writes it, so that everything reading `labels` sees people's labels.
CREATE TABLE annotations (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES runs(id),
    task_index  INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    annotator   TEXT    NOT NULL,
    code        TEXT    NOT NULL,
    label       TEXT    NOT NULL CHECK (label IN ('present', 'absent', 'unsure')),
    agent       TEXT,
    turn        INTEGER,
    rationale   TEXT,
    source      TEXT    NOT NULL,
    created_at  REAL    NOT NULL
);

-- The latest annotation of a (trace, annotator, code): the last entry of
-- its run of this index.
CREATE INDEX annotations_latest
    ON annotations (run_id, task_index, attempt, annotator, code, id);

-- The traces an annotator has labelled in a run: what the viewer's "next
-- unlabelled trace" and progress read.
CREATE INDEX annotations_by_annotator
    ON annotations (run_id, annotator, task_index, attempt);

-- Why a person gave the label (a judge's reasons are its `quote`).
ALTER TABLE labels ADD COLUMN rationale TEXT;

DROP VIEW label_rows;
CREATE VIEW label_rows AS
SELECT l.run_id, t.task_id AS trace, l.task_index, l.attempt,
       json_extract(t.inputs, '$.source_id') AS source_id,
       json_extract(t.inputs, '$.mas_name') AS mas_name,
       l.code, l.original, l.rater, l.present, l.agent, l.turn, l.quote,
       l.evidence_verified, l.rationale, j.model AS judge_model, j.judge_version,
       j.judge_hash
FROM labels l
JOIN tasks t ON t.run_id = l.run_id AND t.task_index = l.task_index
LEFT JOIN judgements j ON j.id = l.judgement_id;

-- Indexes for `crucible view`'s pages on the largest runs (BENCHMARKS.md,
-- "Viewer pages (part 7)"); each says which page needs it.

-- A task's samples: the run page's task list counts every listed task's
-- samples and correct samples (`correct` makes the counts covering), the
-- task page's votes and sample list read one task's samples in (agent,
-- sample) order, and the sample list counts `correct = ?` over the run.
-- Without it each of these scanned every sample of the run.
CREATE INDEX samples_by_task
    ON samples (run_id, task_index, agent, sample_index, correct);

-- The `samples.strategy` values of a run (the sample list's strategy
-- filter), and a graph run's own sample (strategy 'graph', its attempt as
-- sample index: whether the task page's and the transcript's graph runs
-- were right). NULL, a pool sample's, is most rows and is left out.
CREATE INDEX samples_by_strategy
    ON samples (run_id, strategy, task_index, sample_index) WHERE strategy IS NOT NULL;

-- A task by its id: the comparison page joins two runs' tasks by id, and the
-- transcript page reads a trace's messages and labels by its task id.
CREATE INDEX tasks_by_id ON tasks (run_id, task_id);

-- The agents of a run's messages (the agent filter of the run, task and
-- sample pages).
CREATE INDEX messages_by_sender
    ON messages (run_id, sender) WHERE sender IS NOT NULL;

-- What a run spent (calls, tokens, dollars; verifiers' tokens): every page
-- shows its run's, and the run list every listed run's. Read from `calls`
-- itself, each sum stepped through every call's row with its request (on
-- 200,000 judged graph-run calls, 0.2 s a page); here, from the index alone.
CREATE INDEX calls_spend
    ON calls (run_id, role, cached, input_tokens, output_tokens, cost_usd);

-- Failures found, a fraction of the labels: the run page's task list counts
-- each task's modes and filters tasks by mode, the task page counts each
-- graph run's, the failure report counts the agents a rater blames, and
-- `crucible report` orders traces by their failures, all from this index
-- instead of every label row (on 40,000 judged traces, 1.1 M labels).
CREATE INDEX labels_present
    ON labels (run_id, task_index, attempt, code, rater, agent) WHERE present = 1;
