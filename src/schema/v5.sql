-- Schema version 5: samples a strategy draws per task (fewer than `n` for
-- adaptive consistency). NULL in rows written before: they drew `n`.

ALTER TABLE task_results ADD COLUMN samples REAL;
ALTER TABLE results ADD COLUMN mean_samples REAL;
