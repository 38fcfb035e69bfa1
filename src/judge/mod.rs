//! Failure judges: applying a failure taxonomy (MAST's fourteen modes) to
//! traces with an LLM or a simulated judge, and reading their verdicts.
//!
//! Owns reading a judge's reply into per-mode verdicts with their evidence.
//! No I/O: the engine makes judges' calls through its `send` (budget, cache
//! key, trace) and uses this to read them.
//!
//! May use: `scenario`, `model`, `stats`, `seed`.

pub mod reply;
