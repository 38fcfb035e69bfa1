//! The engine: running a validated scenario against providers.
//!
//! Owns the executor (tasks and calls under a concurrency limit, pools,
//! scoring, self-correction rounds) and its graph runs, the walker that
//! steps one graph run, verifiers, the budget ledger, and the runner that
//! does one `run`, `replay` or `resume` end to end; and a faithfulness
//! experiment's explain and predict calls.
//!
//! May use: `scenario`, `model`, `stats`, `import`, `store`, `judge`, `seed`.

pub mod blame;
pub mod blame_judges;
pub mod budget;
pub mod caller;
pub mod error;
pub mod executor;
pub mod faithfulness;
pub mod import_run;
pub mod judge_run;
pub mod judging;
pub mod runner;
pub mod verifier;
pub mod walker;
