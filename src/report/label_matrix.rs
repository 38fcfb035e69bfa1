//! Stored labels as the agreement statistics read them: one matrix of
//! traces × modes × raters, every trace that any chosen rater labelled.

use std::collections::HashMap;

use crate::scenario::failure::FailureMode;
use crate::stats::agreement_report::LabelMatrix;
use crate::store::LabelTable;

/// The labels of `raters` on `modes`, over every trace any of them
/// labelled (in trace order); a rater with no label of a trace and mode
/// has it missing. Labels without a 14-mode code are left out.
pub fn label_matrix(table: &LabelTable, raters: &[String], modes: &[FailureMode]) -> LabelMatrix {
    // Table rater → matrix rater.
    let column: Vec<Option<usize>> = table
        .raters
        .iter()
        .map(|r| raters.iter().position(|x| x == r))
        .collect();
    let mut mode_of = [None; 14];
    for (i, m) in modes.iter().enumerate() {
        mode_of[FailureMode::all()
            .position(|x| x == *m)
            .expect("every mode")] = Some(i);
    }
    let mut traces: Vec<(usize, usize)> = table
        .rows
        .iter()
        .filter(|l| column[l.rater].is_some())
        .map(|l| (l.task_index, l.attempt))
        .collect();
    traces.sort_unstable();
    traces.dedup();
    let trace_of: HashMap<(usize, usize), usize> =
        traces.iter().enumerate().map(|(i, &t)| (t, i)).collect();
    let mut matrix = vec![vec![vec![None; traces.len()]; raters.len()]; modes.len()];
    for l in &table.rows {
        let (Some(r), Some(mode)) = (column[l.rater], l.mode) else {
            continue;
        };
        let Some(m) = mode_of[FailureMode::all()
            .position(|x| x == mode)
            .expect("every mode")]
        else {
            continue;
        };
        matrix[m][r][trace_of[&(l.task_index, l.attempt)]] = l.present;
    }
    LabelMatrix {
        traces: traces.len(),
        modes: modes.to_vec(),
        raters: raters.to_vec(),
        labels: matrix,
    }
}
