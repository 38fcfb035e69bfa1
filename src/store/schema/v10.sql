-- Schema version 10: a sample whose call failed is an error, not an
-- abstention or a wrong answer. Its `error` says why; it is neither
-- `abstained` nor `correct`, and its task is left out of every result until
-- `crucible resume` retries the call (the failed call stays in `calls`).
-- Samples written before this version are brought to that meaning.
UPDATE samples SET abstained = 0, correct = NULL WHERE error IS NOT NULL;

-- Errors are few: a partial index finds them without reading every sample.
CREATE INDEX samples_errors ON samples (run_id, task_index) WHERE error IS NOT NULL;
