-- Schema version 3: the cache key of every call (see `crucible replay`, `run --cache`).

ALTER TABLE calls ADD COLUMN cache_key TEXT;
CREATE INDEX calls_by_cache_key ON calls (cache_key);
