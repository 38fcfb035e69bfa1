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
