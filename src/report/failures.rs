//! What `crucible judge` prints: how often a rater (a judge's majority by
//! default) finds each failure mode in a run's traces, with bootstrap
//! intervals over traces; the categories' shares of the failures found; the
//! agents most often accused; and how the judge's replies went.

use std::collections::BTreeMap;

use comfy_table::{Cell, CellAlignment, Table, presets};
use serde::Serialize;

use crate::report::label_matrix::label_matrix;
use crate::scenario::failure::FailureMode;
use crate::scenario::judge_file::JudgeFile;
use crate::stats::agreement_report::{self, AgreementOptions, Estimate};
use crate::store::{JudgementCounts, LabelRow, LabelTable, Store, StoreError};

/// Agents listed as most often accused.
const TOP_AGENTS: usize = 5;

#[derive(Debug, Clone, Serialize)]
pub struct FailureReport {
    pub judge: String,
    pub judge_version: String,
    pub rater: String,
    /// Traces the rater labelled.
    pub traces: usize,
    /// Traces with at least one mode present, of those with a verdict on
    /// at least one mode.
    pub with_failure: u64,
    pub with_verdict: u64,
    pub with_failure_share: Estimate,
    pub modes: Vec<ModeRate>,
    pub categories: Vec<CategoryShare>,
    pub agents: Vec<Accused>,
    pub judgements: Vec<JudgementCounts>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModeRate {
    pub code: &'static str,
    pub name: String,
    pub category: String,
    /// Traces where the rater found it.
    pub present: u64,
    /// Traces with a verdict on it.
    pub labelled: u64,
    /// Traces whose verdict on it is unknown (the reply did not say).
    pub unknown: u64,
    pub rate: Estimate,
}

/// A category's share of every failure found.
#[derive(Debug, Clone, Serialize)]
pub struct CategoryShare {
    pub code: String,
    pub name: String,
    pub failures: u64,
    pub share: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Accused {
    pub agent: String,
    pub failures: u64,
}

/// What a failure report is made from: a run's labels, the agents `rater`
/// accuses with how often, and how its judges' readings went.
pub struct Judged {
    pub labels: LabelTable,
    pub accused: Vec<(String, u64)>,
    pub judgements: Vec<JudgementCounts>,
}

impl Judged {
    /// What run `run_id` holds for a report of `rater`.
    pub fn read(store: &Store, run_id: i64, rater: &str) -> Result<Judged, StoreError> {
        Ok(Judged {
            labels: store.label_table(run_id)?,
            accused: store.accused(run_id, rater)?,
            judgements: store.judgement_counts(run_id)?,
        })
    }
}

/// The report of `rater`'s labels on `judge`'s modes; intervals from
/// `replicates` bootstrap resamples of the traces, seeded.
pub fn failure_report(
    judge: &JudgeFile,
    rater: &str,
    judged: Judged,
    (replicates, seed): (usize, u64),
) -> FailureReport {
    let modes: Vec<FailureMode> = judge.modes.iter().map(|m| m.mode).collect();
    let index = judged.labels.raters.iter().position(|r| r == rater);
    let own: Vec<&LabelRow> = judged
        .labels
        .rows
        .iter()
        .filter(|l| Some(l.rater) == index)
        .collect();
    let matrix = label_matrix(&judged.labels, &[rater.to_owned()], &modes);
    let options = AgreementOptions {
        reference: None,
        replicates,
        seed,
        level: 0.95,
        repeat_groups: Vec::new(),
        correct: Vec::new(),
    };
    let rates = agreement_report::report(&matrix, &options).ok();
    let mut categories: BTreeMap<&str, u64> = BTreeMap::new();
    let mode_rates = judge
        .modes
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let of_mode = || own.iter().filter(|l| l.mode == Some(m.mode));
            let present = of_mode().filter(|l| l.present == Some(true)).count() as u64;
            *categories.entry(m.category.as_str()).or_default() += present;
            ModeRate {
                code: m.mode.code(),
                name: m.name.clone(),
                category: m.category.clone(),
                present,
                labelled: of_mode().filter(|l| l.present.is_some()).count() as u64,
                unknown: of_mode().filter(|l| l.present.is_none()).count() as u64,
                rate: rates
                    .as_ref()
                    .map_or_else(undefined, |r| r.modes[i].prevalence[0].rate.clone()),
            }
        })
        .collect();
    // Per trace: whether any mode is present, among traces with any verdict.
    let any: Vec<f32> = (0..matrix.traces)
        .filter(|&t| matrix.labels.iter().any(|m| m[0][t].is_some()))
        .map(|t| {
            f32::from(u8::from(
                matrix.labels.iter().any(|m| m[0][t] == Some(true)),
            ))
        })
        .collect();
    let with_failure = any.iter().filter(|&&x| x > 0.0).count() as u64;
    let total: u64 = categories.values().sum();
    let accused: Vec<Accused> = judged
        .accused
        .into_iter()
        .take(TOP_AGENTS)
        .map(|(agent, failures)| Accused { agent, failures })
        .collect();
    FailureReport {
        judge: judge.name.clone(),
        judge_version: judge.version.clone(),
        rater: rater.to_owned(),
        traces: matrix.traces,
        with_failure,
        with_verdict: any.len() as u64,
        with_failure_share: mean_estimate(&any, replicates, seed),
        modes: mode_rates,
        categories: judge
            .categories
            .iter()
            .map(|(code, name)| {
                let failures = categories.get(code.as_str()).copied().unwrap_or(0);
                CategoryShare {
                    code: code.clone(),
                    name: name.clone(),
                    failures,
                    share: (total > 0).then(|| failures as f64 / total as f64),
                }
            })
            .collect(),
        agents: accused,
        judgements: judged.judgements,
    }
}

fn undefined() -> Estimate {
    Estimate {
        value: None,
        why_undefined: Some(agreement_report::Undefined::NoUnits),
        ci: None,
        undefined_replicates: 0,
    }
}

/// The mean of `values` with its percentile-bootstrap interval.
fn mean_estimate(values: &[f32], replicates: usize, seed: u64) -> Estimate {
    if values.is_empty() {
        return undefined();
    }
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / values.len() as f64;
    let mut rng = crate::seed::rng(seed, &[crate::seed::Part::Str("any failure")]);
    let ci =
        crate::stats::bootstrap::intervals(values, values.len(), 1, replicates, 0.95, &mut rng);
    Estimate {
        value: Some(mean),
        why_undefined: None,
        ci: ci.first().map(|&(lo, hi)| [lo, hi]),
        undefined_replicates: 0,
    }
}

fn pct(e: &Estimate) -> String {
    match (e.value, e.ci) {
        (Some(v), Some([lo, hi])) => {
            format!("{:.1}% [{:.1}%, {:.1}%]", v * 100.0, lo * 100.0, hi * 100.0)
        }
        (Some(v), None) => format!("{:.1}%", v * 100.0),
        (None, _) => "-".into(),
    }
}

impl FailureReport {
    /// The report as printed on stdout.
    pub fn table(&self) -> String {
        let mut t = Table::new();
        t.load_style(presets::UTF8_FULL_CONDENSED);
        t.set_header(vec!["mode", "name", "traces", "rate (95% CI)", "unknown"]);
        for m in &self.modes {
            t.add_row(vec![
                Cell::new(m.code),
                Cell::new(&m.name),
                Cell::new(format!("{}/{}", m.present, m.labelled))
                    .set_alignment(CellAlignment::Right),
                Cell::new(pct(&m.rate)).set_alignment(CellAlignment::Right),
                Cell::new(m.unknown).set_alignment(CellAlignment::Right),
            ]);
        }
        let mut out = format!(
            "judge {} (version {}), rater {}: {} traces\n{t}\n",
            self.judge, self.judge_version, self.rater, self.traces
        );
        out.push_str(&format!(
            "traces with at least one failure: {}/{} with a verdict = {}\n",
            self.with_failure,
            self.with_verdict,
            pct(&self.with_failure_share)
        ));
        let shares: Vec<String> = self
            .categories
            .iter()
            .map(|c| match c.share {
                Some(s) => format!("{} {} {:.1}%", c.code, c.name, s * 100.0),
                None => format!("{} {} -", c.code, c.name),
            })
            .collect();
        out.push_str(&format!("share of failures: {}\n", shares.join("; ")));
        if !self.agents.is_empty() {
            let agents: Vec<String> = self
                .agents
                .iter()
                .map(|a| format!("{} ({})", a.agent, a.failures))
                .collect();
            out.push_str(&format!("most accused: {}\n", agents.join(", ")));
        }
        for j in &self.judgements {
            out.push_str(&format!(
                "{} on {}: {} read, {} unreadable, {} failed calls, {} re-asked, {} transcripts cut to fit\n",
                j.judge, j.model, j.parsed, j.unparsed, j.errors, j.reasked, j.fitted
            ));
        }
        out
    }
}
