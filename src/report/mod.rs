//! What crucible prints and writes about stored runs.
//!
//! Owns the run summary's table and `--json` object, `crucible analyze`
//! (curves read from a stored run's pools), its SVG plots, and JSONL/CSV
//! export of samples.
//!
//! May use: `scenario`, `stats`, `store`, `seed`.

pub mod analysis;
pub mod export;
pub mod plot;
pub mod run_summary;
