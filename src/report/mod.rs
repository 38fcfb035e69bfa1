//! What crucible prints and writes about stored runs.
//!
//! Owns the run summary's table and `--json` object, `crucible analyze`
//! (curves read from a stored run's pools), its SVG plots, JSONL/CSV
//! export of samples, failure judges' per-mode rates, and the label matrix
//! agreement statistics read.
//!
//! May use: `scenario`, `stats`, `store`, `seed`.

pub mod agreement;
pub mod analysis;
pub mod attribution;
pub mod export;
pub mod failures;
pub mod faithfulness;
pub mod label_matrix;
pub mod plot;
pub mod prediction;
pub mod regret;
pub mod run_summary;
pub mod theory;

/// Each distinct name once, in the order they first come.
fn first_seen<'a>(names: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen: Vec<&str> = Vec::new();
    for name in names {
        if !seen.contains(&name) {
            seen.push(name);
        }
    }
    seen
}
