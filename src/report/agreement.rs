//! What `crucible agreement` computes and prints: the stored labels of the
//! chosen raters as one matrix — with the human annotators' majority as a
//! rater of its own, and the reference optionally kept on a calibration
//! subset only — handed to [`crate::stats::agreement_report`], and its
//! report as text.

use std::collections::BTreeMap;

use rand::RngExt;

use crate::report::label_matrix::label_matrix;
use crate::scenario::failure::FailureMode;
use crate::stats::agreement_report::{
    self, AgreementError, AgreementOptions, AgreementReport, Estimate, ModeAgreement,
};
use crate::store::{HUMAN_RATER_PREFIX, LabelRow, LabelTable, TRUTH_RATER};

/// The derived rater: the majority of the human annotators.
pub const HUMANS: &str = "humans";

/// What to compare.
#[derive(Debug, Clone)]
pub struct AgreementRequest {
    /// Raters by name; empty: every rater of the run (and [`HUMANS`] when
    /// it has two human annotators or more).
    pub raters: Vec<String>,
    /// Default: injected truth when the run has it, else [`HUMANS`].
    pub reference: Option<String>,
    /// Raters whose rates are corrected against the reference; default:
    /// every other rater, when the reference labels only some traces.
    pub correct: Option<Vec<String>>,
    /// Keep the reference's labels on this seeded share of the traces only:
    /// a calibration subset, the rest to be corrected.
    pub calibrate: Option<f64>,
    pub replicates: usize,
    pub seed: u64,
    pub level: f64,
}

/// Whether `rater` is a person: an imported annotator or a viewer's.
fn is_human(rater: &str) -> bool {
    rater.starts_with("mad:annotator") || rater.starts_with(HUMAN_RATER_PREFIX)
}

/// The majority of the human raters' labels of each trace and mode (ties
/// unknown), as labels of rater `humans` (an index into the table's raters).
fn human_majority(table: &LabelTable, humans: usize) -> Vec<LabelRow> {
    let mut votes: BTreeMap<(usize, usize, FailureMode), i32> = BTreeMap::new();
    for l in table
        .rows
        .iter()
        .filter(|l| is_human(&table.raters[l.rater]))
    {
        let (Some(mode), Some(p)) = (l.mode, l.present) else {
            continue;
        };
        *votes.entry((l.task_index, l.attempt, mode)).or_default() += if p { 1 } else { -1 };
    }
    votes
        .into_iter()
        .map(|((task_index, attempt, mode), net)| LabelRow {
            task_index,
            attempt,
            rater: humans,
            mode: Some(mode),
            present: (net != 0).then_some(net > 0),
        })
        .collect()
}

/// The agreement of one run's labels as `request` asks. `Err` says what is
/// wrong with the request (a rater the run does not have), naming the
/// raters it has.
pub fn agreement(
    mut table: LabelTable,
    request: &AgreementRequest,
) -> Result<AgreementReport, String> {
    let humans = table.raters.iter().filter(|r| is_human(r)).count();
    if humans >= 2 {
        table.raters.push(HUMANS.to_owned());
        let majority = human_majority(&table, table.raters.len() - 1);
        table.rows.extend(majority);
    }
    let known = &table.raters;
    let named = request
        .raters
        .iter()
        .chain(&request.reference)
        .chain(request.correct.iter().flatten());
    for r in named {
        if !known.contains(r) {
            let mut sorted: Vec<&str> = known.iter().map(String::as_str).collect();
            sorted.sort_unstable();
            return Err(format!(
                "the run has no labels by rater `{r}` (its raters: {}){}",
                sorted.join(", "),
                crate::scenario::diagnostic::did_you_mean(r, sorted.iter().copied())
            ));
        }
    }
    let mut raters = request.raters.clone();
    if raters.is_empty() {
        raters = known.clone();
        raters.sort_unstable();
    }
    if let Some(r) = &request.reference
        && !raters.contains(r)
    {
        raters.push(r.clone());
    }
    let reference = request.reference.clone().or_else(|| {
        [TRUTH_RATER, HUMANS]
            .into_iter()
            .find(|r| raters.iter().any(|x| x == r))
            .map(str::to_owned)
    });
    if let (Some(share), Some(r)) = (request.calibrate, &reference) {
        let index = table.raters.iter().position(|x| x == r);
        let mut rng = crate::seed::rng(request.seed, &[crate::seed::Part::Str("calibration")]);
        let mut kept: BTreeMap<(usize, usize), bool> = BTreeMap::new();
        table.rows.retain(|l| {
            Some(l.rater) != index
                || *kept
                    .entry((l.task_index, l.attempt))
                    .or_insert_with(|| rng.random_bool(share))
        });
    }
    let modes: Vec<FailureMode> = FailureMode::all().collect();
    let matrix = label_matrix(&table, &raters, &modes);
    let index = |name: &str| raters.iter().position(|r| r == name);
    let reference_index = reference.as_deref().and_then(index);
    let partial = reference_index.is_some_and(|r| {
        (0..matrix.traces).any(|t| matrix.labels.iter().all(|m| m[r][t].is_none()))
    });
    let correct = match &request.correct {
        Some(names) => names.iter().filter_map(|n| index(n)).collect(),
        None if partial => (0..raters.len())
            .filter(|&i| Some(i) != reference_index)
            .collect(),
        None => Vec::new(),
    };
    // Repeats of one judge (`mast:m#1`, `mast:m#2`, …) form a group.
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, r) in raters.iter().enumerate() {
        if let Some((base, _)) = r.rsplit_once('#') {
            groups.entry(base).or_default().push(i);
        }
    }
    let options = AgreementOptions {
        reference: reference_index,
        replicates: request.replicates,
        seed: request.seed,
        level: request.level,
        repeat_groups: groups
            .into_iter()
            .filter(|(_, g)| g.len() >= 2)
            .map(|(b, g)| (b.to_owned(), g))
            .collect(),
        correct,
    };
    agreement_report::report(&matrix, &options).map_err(|e: AgreementError| e.to_string())
}

fn num(e: &Estimate) -> String {
    match (e.value, e.ci, e.why_undefined) {
        (Some(v), Some([lo, hi]), _) => format!("{v:.3} [{lo:.3}, {hi:.3}]"),
        (Some(v), None, _) => format!("{v:.3}"),
        (None, _, Some(why)) => why.to_string(),
        (None, _, None) => "-".into(),
    }
}

fn pct(e: &Estimate) -> String {
    match (e.value, e.ci, e.why_undefined) {
        (Some(v), Some([lo, hi]), _) => {
            format!("{:.1}% [{:.1}%, {:.1}%]", v * 100.0, lo * 100.0, hi * 100.0)
        }
        (Some(v), None, _) => format!("{:.1}%", v * 100.0),
        (None, _, Some(why)) => why.to_string(),
        (None, _, None) => "-".into(),
    }
}

/// One mode's (or the pooled) block of the text report.
fn block(m: &ModeAgreement, reference: Option<&str>) -> String {
    let mut out = format!("{} {} ({} units)\n", m.code, m.name, m.units);
    for p in &m.prevalence {
        out += &format!(
            "  prevalence {}: {} of {}\n",
            p.rater,
            pct(&p.rate),
            p.labelled
        );
    }
    for k in &m.cohen_kappa {
        out += &format!(
            "  κ {} ~ {}: {} over {}\n",
            k.a,
            k.b,
            num(&k.kappa),
            k.both_labelled
        );
    }
    if let Some(f) = &m.fleiss_kappa {
        out += &format!("  Fleiss κ: {}\n", num(f));
    }
    out += &format!("  Krippendorff α: {}\n", num(&m.krippendorff_alpha));
    for v in &m.vs_reference {
        out += &format!(
            "  vs {}: {} precision {} recall {} F1 {} TNR {}\n",
            reference.unwrap_or("reference"),
            v.rater,
            num(&v.precision),
            num(&v.recall),
            num(&v.f1),
            num(&v.tnr)
        );
    }
    for r in &m.repeat_consistency {
        out += &format!(
            "  repeats of {}: flip rate {} over {}, Fleiss κ {}\n",
            r.group,
            pct(&r.flip_rate),
            r.compared,
            num(&r.fleiss_kappa)
        );
    }
    for c in &m.corrected_prevalence {
        out += &format!(
            "  corrected {}: raw {} → {} on {} unlabelled (sensitivity {}, specificity {} on {})\n",
            c.rater,
            pct(&c.raw),
            pct(&c.corrected),
            c.unlabelled,
            num(&c.sensitivity),
            num(&c.specificity),
            c.labelled
        );
    }
    out
}

/// The report as printed on stdout.
pub fn agreement_text(r: &AgreementReport) -> String {
    let mut out = format!(
        "raters: {}; reference: {}; {}% intervals from {} bootstrap replicates over traces\n\n",
        r.raters.join(", "),
        r.reference.as_deref().unwrap_or("none"),
        (r.level * 100.0).round(),
        r.replicates
    );
    for m in r.modes.iter().chain(std::iter::once(&r.pooled)) {
        out += &block(m, r.reference.as_deref());
        out.push('\n');
    }
    out
}
