//! Failure judges: applying a failure taxonomy (MAST's fourteen modes) to
//! traces with an LLM or a simulated judge, and reading their verdicts.
//!
//! Owns a judge's prompt for a trace (fitted to a token budget), reading its
//! reply into per-mode verdicts with their evidence, checking that evidence
//! against the messages, and the labels that follow. No I/O: the engine
//! makes judges' calls through its `Caller` (budget, cache key, trace) and
//! uses this to build and read them.
//!
//! May use: `scenario`, `model`, `stats`, `seed`.

pub mod attribution;
pub mod evidence;
pub mod prompt;
pub mod reply;
