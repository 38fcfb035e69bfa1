-- Schema version 10: a sample whose call failed is an error, not an
-- abstention or a wrong answer. Its `error` says why; it is neither
-- `abstained` nor `correct`, and its task is left out of every result until
-- `crucible resume` retries the call (the failed call stays in `calls`).
-- Samples written before this version are brought to that meaning.
UPDATE samples SET abstained = 0, correct = NULL WHERE error IS NOT NULL;

-- Errors are few: a partial index finds them without reading every sample.
CREATE INDEX samples_errors ON samples (run_id, task_index) WHERE error IS NOT NULL;

-- A call served from a recording (`crucible replay`, `run --cache`) was not
-- made: it cost nothing, and neither a budget nor `spent` counts it.
ALTER TABLE calls ADD COLUMN cached INTEGER NOT NULL DEFAULT 0;

-- What each verifier's model spent on each pool sample, in the order of
-- `verifiers` (u64 LE per verifier and sample, like `scores`): for graph
-- runs, which have no `samples` rows to join their judges' calls to, this is
-- where `crucible analyze` finds their verifier tokens. NULL before.
ALTER TABLE pools ADD COLUMN verifier_tokens BLOB;
