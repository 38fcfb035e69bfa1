//! Stored labels as the agreement statistics read them: one matrix of
//! traces × modes × raters, every trace that any chosen rater labelled.

use std::collections::HashMap;

use crate::scenario::failure::FailureMode;
use crate::stats::agreement_report::LabelMatrix;
use crate::store::StoredLabel;

/// The labels of `raters` on `modes`, over every trace any of them
/// labelled (in trace order); a rater with no label of a trace and mode
/// has it missing. Labels without a 14-mode code are left out.
pub fn label_matrix(
    labels: &[StoredLabel],
    raters: &[String],
    modes: &[FailureMode],
) -> LabelMatrix {
    let rater_of: HashMap<&str, usize> = raters
        .iter()
        .enumerate()
        .map(|(i, r)| (r.as_str(), i))
        .collect();
    let mode_of: HashMap<&str, usize> = modes
        .iter()
        .enumerate()
        .map(|(i, m)| (m.code(), i))
        .collect();
    let mut traces: Vec<(usize, usize)> = labels
        .iter()
        .filter(|l| rater_of.contains_key(l.rater.as_str()))
        .map(|l| (l.task_index, l.attempt))
        .collect();
    traces.sort_unstable();
    traces.dedup();
    let trace_of: HashMap<(usize, usize), usize> =
        traces.iter().enumerate().map(|(i, &t)| (t, i)).collect();
    let mut matrix = vec![vec![vec![None; traces.len()]; raters.len()]; modes.len()];
    for l in labels {
        let (Some(&r), Some(m)) = (
            rater_of.get(l.rater.as_str()),
            l.code.as_deref().and_then(|c| mode_of.get(c)),
        ) else {
            continue;
        };
        matrix[*m][r][trace_of[&(l.task_index, l.attempt)]] = l.present;
    }
    LabelMatrix {
        traces: traces.len(),
        modes: modes.to_vec(),
        raters: raters.to_vec(),
        labels: matrix,
    }
}
