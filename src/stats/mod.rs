//! The statistics: numbers computed from pools of samples, with no I/O.
//!
//! Owns the exact estimators over size-k subsets of a pool, percentile
//! bootstrap intervals, a strategy's expected accuracy on one task's pool,
//! a run's summary rows, agreement between raters (κ, α, confusion
//! against a reference, corrected prevalence), and McNemar's test of two
//! strategies on the same tasks.
//!
//! May use: `scenario`, `seed`.

pub mod agreement;
pub mod agreement_report;
pub mod bootstrap;
pub mod estimator;
pub mod paired;
pub mod strategy;
pub mod summary;
