//! crucible: a YAML-scripted engine for experiments on LLM agents and
//! test-time scaling, with every sample traced to SQLite.
//!
//! The pipeline is `Loader` (YAML → [`scenario::spec`] types) → `Validator`
//! (→ the engine's [`scenario::Scenario`]) → `Executor` (samples, verifier
//! scores and strategy outcomes, streamed to the [`store`]) →
//! [`stats::summary`] (accuracy with bootstrap intervals). Failure judges
//! ([`judge`]) read traces — crucible's own graph runs and other tools'
//! ([`import`]) — into labels that [`stats::agreement_report`] compares.
//! The folders are layers, lowest first: [`scenario`], [`model`],
//! [`stats`], [`import`], [`store`], [`judge`], then [`engine`] and
//! [`report`]; each imports only from those it is allowed. See
//! ARCHITECTURE.md for the map and the invariants.

pub mod engine;
pub mod import;
pub mod judge;
pub mod model;
pub mod report;
pub mod scenario;
pub mod seed;
pub mod stats;
pub mod store;
pub mod view;

pub use engine::error::Error;
pub use engine::runner::{RunOptions, Runner};
