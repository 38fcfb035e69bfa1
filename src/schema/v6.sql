-- Schema version 6: verifiers that call models (`llm` judges). A judge's
-- call is a row of `calls` with role 'verifier': `agent` is the verifier,
-- `subject` the agent whose sample it judges, and `first_sample` that
-- sample's index. Generator calls keep role 'generator' and subject NULL.

ALTER TABLE calls ADD COLUMN role TEXT NOT NULL DEFAULT 'generator'
    CHECK (role IN ('generator', 'verifier'));
ALTER TABLE calls ADD COLUMN subject TEXT;

-- What a call answered that is not a sample: a judge's reply (its score
-- and the reply again, as `detail`, are in `scores`).
CREATE TABLE replies (
    call_id INTEGER PRIMARY KEY REFERENCES calls(id),
    text    TEXT NOT NULL
);
