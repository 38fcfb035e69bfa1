//! The computation behind `crucible agreement`: from every rater's labels of
//! every trace on each reported failure mode, how far the raters agree — per
//! mode and pooled over modes — with seeded percentile-bootstrap intervals
//! over traces. Pure: no I/O.
//!
//! The statistics are [`super::agreement`]'s; this file owns computing them
//! fast enough to bootstrap. A trace's labels on one mode form a pattern
//! (each rater present, absent or missing), and traces with the same pattern
//! count the same in every statistic. So every statistic is computed from a
//! weighted histogram of patterns: a replicate draws how often each trace is
//! resampled, adds those counts into every mode's histogram in one pass over
//! the traces, and tallies the patterns that occur — at most 3^raters per
//! mode, and never more than the traces, so any number of raters stays
//! correct. Point estimates are the same computation with every trace
//! counted once.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

use rand::RngExt;
use serde::Serialize;

use super::agreement::{Confusion, kappa, rogan_gladen};
use super::bootstrap::percentile_interval;
use crate::scenario::failure::FailureMode;
use crate::seed::{self, Part};

/// Every rater's labels of every trace on each reported failure mode.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelMatrix {
    pub traces: usize,
    /// The modes reported, in order.
    pub modes: Vec<FailureMode>,
    pub raters: Vec<String>,
    /// `labels[mode][rater][trace]`: present (true), absent (false) or
    /// unknown/missing (None).
    pub labels: Vec<Vec<Vec<Option<bool>>>>,
}

/// What to compute beyond the agreement between every pair of raters.
#[derive(Debug, Clone, PartialEq)]
pub struct AgreementOptions {
    /// Index of the reference rater (human majority or ground truth), if any.
    pub reference: Option<usize>,
    /// Bootstrap replicates (e.g. 1000); 0 = no intervals.
    pub replicates: usize,
    pub seed: u64,
    /// Confidence level of the intervals (0.95).
    pub level: f64,
    /// Groups of raters that are repeats of one judge (judge#1..#k), named,
    /// for repeat consistency.
    pub repeat_groups: Vec<(String, Vec<usize>)>,
    /// Raters whose rate is corrected (Rogan–Gladen) against the reference:
    /// sensitivity and specificity measured where the reference has a label,
    /// the corrected prevalence reported where it has none.
    pub correct: Vec<usize>,
}

/// Why a statistic has no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Undefined {
    /// No unit carries the labels the statistic needs: nothing to divide by.
    NoUnits,
    /// Every label is the same, so agreement by chance is certain and κ or α
    /// is 0/0 — not 1: constant labels show nothing about whether the raters
    /// can tell cases apart.
    NoVariation,
    /// The rater's sensitivity + specificity ≤ 1: it is no better than
    /// chance, so its rate carries nothing to correct.
    NoBetterThanChance,
}

impl fmt::Display for Undefined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Undefined::NoUnits => "undefined (no units)",
            Undefined::NoVariation => "undefined (no variation)",
            Undefined::NoBetterThanChance => "undefined (rater no better than chance)",
        })
    }
}

/// A statistic on the data and its percentile-bootstrap interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    /// `None` when the data do not define it; `why_undefined` says why.
    pub value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why_undefined: Option<Undefined>,
    /// The interval over the replicates that define the statistic; `None`
    /// without replicates, when the value is undefined, or when no replicate
    /// defines it.
    pub ci: Option<[f64; 2]>,
    /// Replicates in which the statistic was undefined, left out of `ci`.
    pub undefined_replicates: usize,
}

/// Agreement on the whole label matrix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgreementReport {
    pub raters: Vec<String>,
    pub reference: Option<String>,
    pub replicates: usize,
    pub level: f64,
    pub seed: u64,
    /// Each reported mode, in the matrix's order.
    pub modes: Vec<ModeAgreement>,
    /// Every (trace, mode) a unit; the bootstrap still resamples traces.
    pub pooled: ModeAgreement,
}

/// Agreement on one mode, or on all of them pooled.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModeAgreement {
    /// The mode's code (`FM-1.3`), or `pooled`.
    pub code: &'static str,
    pub name: &'static str,
    /// Traces, or (trace, mode) pairs when pooled.
    pub units: usize,
    pub prevalence: Vec<Prevalence>,
    /// Every pair of raters, in index order: Cohen's κ.
    #[serde(rename = "pairs")]
    pub cohen_kappa: Vec<PairKappa>,
    /// Over the units every rater labelled; reported with three raters or
    /// more (with two it is Scott's π).
    pub fleiss_kappa: Option<Estimate>,
    /// Krippendorff's α, nominal, over every unit at least two raters labelled.
    #[serde(rename = "alpha")]
    pub krippendorff_alpha: Estimate,
    /// Each rater but the reference, against it.
    pub vs_reference: Vec<VsReference>,
    pub repeat_consistency: Vec<RepeatConsistency>,
    pub corrected_prevalence: Vec<CorrectedPrevalence>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prevalence {
    pub rater: String,
    /// Units the rater labelled.
    pub labelled: u64,
    /// Share of those it labelled present.
    pub rate: Estimate,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairKappa {
    pub a: String,
    pub b: String,
    /// Units both labelled: κ's items.
    pub both_labelled: u64,
    pub kappa: Estimate,
}

/// A rater against the reference, over the units both labelled.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VsReference {
    pub rater: String,
    pub counts: Confusion,
    pub precision: Estimate,
    /// Recall = sensitivity = `tpr`.
    pub recall: Estimate,
    pub f1: Estimate,
    pub tpr: Estimate,
    /// Specificity.
    pub tnr: Estimate,
}

/// How consistently repeats of one judge label the same unit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RepeatConsistency {
    pub group: String,
    /// Units at least two repeats labelled.
    pub compared: u64,
    /// Share of the compared units whose repeats disagree.
    pub flip_rate: Estimate,
    /// Over the units every repeat labelled.
    pub fleiss_kappa: Estimate,
}

/// A rater's rate where the reference has no label, corrected by its
/// sensitivity and specificity measured where the reference has one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CorrectedPrevalence {
    pub rater: String,
    /// Units both the rater and the reference labelled (measurement).
    pub labelled: u64,
    /// Units the rater labelled and the reference did not (correction).
    pub unlabelled: u64,
    /// The rater's rate on the unlabelled units.
    pub raw: Estimate,
    pub sensitivity: Estimate,
    pub specificity: Estimate,
    /// Rogan–Gladen, clipped to [0, 1]. Each replicate resamples the
    /// labelled and unlabelled traces independently, so the interval carries
    /// the uncertainty of the measured sensitivity and specificity too.
    pub corrected: Estimate,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AgreementError {
    #[error("nothing to compare: no raters")]
    NoRaters,
    #[error("nothing to compare: no modes")]
    NoModes,
    #[error("labels are given for {labels} modes but {modes} are named")]
    ModeCount { labels: usize, modes: usize },
    #[error("{mode}: labels are given for {labels} raters but {raters} are named")]
    RaterCount {
        mode: &'static str,
        labels: usize,
        raters: usize,
    },
    #[error("{mode}, rater {rater}: {labels} labels for {traces} traces")]
    TraceCount {
        mode: &'static str,
        rater: String,
        labels: usize,
        traces: usize,
    },
    #[error("rater index {index} is out of range ({raters} raters)")]
    NoSuchRater { index: usize, raters: usize },
    #[error("repeat group {0} needs at least two distinct raters")]
    SmallGroup(String),
    #[error("correcting a rater's rate needs a reference rater")]
    NoReference,
    #[error("{0} is the reference: it cannot be corrected against itself")]
    CorrectingReference(String),
    #[error("confidence level {0} is not between 0 and 1")]
    Level(f64),
}

/// The agreement report of `matrix`. Same seed, same report, whatever the
/// machine's thread count.
pub fn report(
    matrix: &LabelMatrix,
    options: &AgreementOptions,
) -> Result<AgreementReport, AgreementError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    report_on_threads(matrix, options, threads)
}

/// [`report`], its replicates split among up to `threads` threads.
fn report_on_threads(
    matrix: &LabelMatrix,
    options: &AgreementOptions,
    threads: usize,
) -> Result<AgreementReport, AgreementError> {
    check(matrix, options)?;
    let plan = Plan::new(matrix.raters.len(), options);
    let patterns = Patterns::of(matrix);
    let sets = matrix.modes.len() + 1;
    let point: Vec<Tally> = {
        let mut work = Workspace::new(&patterns, &plan);
        patterns.tally(&plan, &vec![1; matrix.traces], &mut work);
        work.tallies
    };
    let replicated = replicate(
        &patterns,
        &plan,
        &strata(matrix, options.reference),
        options,
        threads,
    );
    let stats = plan.stats.len();
    let summarise = |set: usize, code, name, units| {
        let estimates: Vec<Estimate> = (0..stats)
            .map(|i| {
                let column =
                    (0..options.replicates).map(|b| replicated[(b * sets + set) * stats + i]);
                estimate(
                    plan.stats[i].value(&point[set], &plan),
                    column,
                    options.level,
                )
            })
            .collect();
        plan.summarise(matrix, code, name, units, &point[set], &estimates)
    };
    Ok(AgreementReport {
        raters: matrix.raters.clone(),
        reference: options.reference.map(|r| matrix.raters[r].clone()),
        replicates: options.replicates,
        level: options.level,
        seed: options.seed,
        modes: matrix
            .modes
            .iter()
            .enumerate()
            .map(|(m, mode)| summarise(m, mode.code(), mode.name(), matrix.traces))
            .collect(),
        pooled: summarise(
            sets - 1,
            "pooled",
            "all reported modes",
            matrix.traces * matrix.modes.len(),
        ),
    })
}

/// Rejects a matrix whose shape disagrees with its names, and options that
/// name raters it lacks or ask what cannot be computed.
fn check(matrix: &LabelMatrix, options: &AgreementOptions) -> Result<(), AgreementError> {
    let raters = matrix.raters.len();
    if raters == 0 {
        return Err(AgreementError::NoRaters);
    }
    if matrix.modes.is_empty() {
        return Err(AgreementError::NoModes);
    }
    if matrix.labels.len() != matrix.modes.len() {
        return Err(AgreementError::ModeCount {
            labels: matrix.labels.len(),
            modes: matrix.modes.len(),
        });
    }
    for (mode, by_rater) in matrix.modes.iter().zip(&matrix.labels) {
        if by_rater.len() != raters {
            return Err(AgreementError::RaterCount {
                mode: mode.code(),
                labels: by_rater.len(),
                raters,
            });
        }
        for (name, labels) in matrix.raters.iter().zip(by_rater) {
            if labels.len() != matrix.traces {
                return Err(AgreementError::TraceCount {
                    mode: mode.code(),
                    rater: name.clone(),
                    labels: labels.len(),
                    traces: matrix.traces,
                });
            }
        }
    }
    let indexes = options.reference.iter().chain(&options.correct).chain(
        options
            .repeat_groups
            .iter()
            .flat_map(|(_, members)| members),
    );
    if let Some(&index) = indexes.into_iter().find(|&&i| i >= raters) {
        return Err(AgreementError::NoSuchRater { index, raters });
    }
    for (name, members) in &options.repeat_groups {
        let mut distinct = members.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() < 2 || distinct.len() != members.len() {
            return Err(AgreementError::SmallGroup(name.clone()));
        }
    }
    if !options.correct.is_empty() {
        let reference = options.reference.ok_or(AgreementError::NoReference)?;
        if options.correct.contains(&reference) {
            return Err(AgreementError::CorrectingReference(
                matrix.raters[reference].clone(),
            ));
        }
    }
    if !(options.level > 0.0 && options.level < 1.0) {
        return Err(AgreementError::Level(options.level));
    }
    Ok(())
}

/// The distinct label patterns of each mode and of the pool, and which
/// pattern each trace has on each mode.
struct Patterns {
    raters: usize,
    modes: usize,
    /// Each mode's distinct patterns (`raters` labels each), mode after
    /// mode; a pattern's index here is its slot.
    states: Vec<Option<bool>>,
    /// Each mode's slots.
    ranges: Vec<Range<usize>>,
    /// `slot[trace * modes + mode]`: the slot of the trace's pattern on the
    /// mode, so one pass over the traces fills every mode's histogram.
    slot: Vec<u32>,
    /// The distinct patterns over all modes.
    pooled_states: Vec<Option<bool>>,
    /// Each slot's pattern among `pooled_states`.
    pooled: Vec<u32>,
}

/// Distinct patterns in order of first appearance.
#[derive(Default)]
struct Interner {
    ids: HashMap<Vec<Option<bool>>, u32>,
    states: Vec<Option<bool>>,
}

impl Interner {
    fn id(&mut self, pattern: &[Option<bool>]) -> u32 {
        if let Some(&id) = self.ids.get(pattern) {
            return id;
        }
        let id = self.ids.len() as u32;
        self.ids.insert(pattern.to_vec(), id);
        self.states.extend_from_slice(pattern);
        id
    }
}

impl Patterns {
    fn of(matrix: &LabelMatrix) -> Patterns {
        let (raters, modes, traces) = (matrix.raters.len(), matrix.modes.len(), matrix.traces);
        let mut states = Vec::new();
        let mut ranges = Vec::with_capacity(modes);
        let mut slot = vec![0; traces * modes];
        let mut pattern = vec![None; raters];
        for (m, by_rater) in matrix.labels.iter().enumerate() {
            let first = states.len() / raters;
            let mut interner = Interner::default();
            for t in 0..traces {
                for (label, labels) in pattern.iter_mut().zip(by_rater) {
                    *label = labels[t];
                }
                slot[t * modes + m] = (first as u32) + interner.id(&pattern);
            }
            states.extend(interner.states);
            ranges.push(first..states.len() / raters);
        }
        let mut pool = Interner::default();
        let pooled = states.chunks_exact(raters).map(|p| pool.id(p)).collect();
        Patterns {
            raters,
            modes,
            states,
            ranges,
            slot,
            pooled_states: pool.states,
            pooled,
        }
    }

    /// Fills `work.tallies` — each mode's, then the pool's — with trace `t`
    /// counted `counts[t]` times.
    fn tally(&self, plan: &Plan, counts: &[u32], work: &mut Workspace) {
        let Workspace {
            histogram,
            pooled,
            tallies,
        } = work;
        histogram.fill(0);
        for (slots, &count) in self.slot.chunks_exact(self.modes).zip(counts) {
            if count > 0 {
                for &s in slots {
                    histogram[s as usize] += count;
                }
            }
        }
        pooled.fill(0);
        for (&p, &count) in self.pooled.iter().zip(histogram.iter()) {
            pooled[p as usize] += count;
        }
        let r = self.raters;
        let sets = self
            .ranges
            .iter()
            .map(|s| (&self.states[s.start * r..s.end * r], &histogram[s.clone()]))
            .chain(std::iter::once((&self.pooled_states[..], &pooled[..])));
        for (tally, (states, weights)) in tallies.iter_mut().zip(sets) {
            tally.clear();
            for (labels, &weight) in states.chunks_exact(r).zip(weights) {
                if weight > 0 {
                    tally.add(plan, labels, weight);
                }
            }
        }
    }
}

/// Buffers for tallying one weighting of the traces, reused across
/// replicates.
struct Workspace {
    histogram: Vec<u32>,
    pooled: Vec<u32>,
    tallies: Vec<Tally>,
}

impl Workspace {
    fn new(patterns: &Patterns, plan: &Plan) -> Workspace {
        Workspace {
            histogram: vec![0; patterns.pooled.len()],
            pooled: vec![0; patterns.pooled_states.len() / patterns.raters],
            tallies: vec![Tally::new(plan); patterns.modes + 1],
        }
    }
}

/// What is tallied and which statistics are computed: the same for every
/// mode and for the pool.
struct Plan {
    raters: usize,
    reference: Option<usize>,
    /// Every pair of raters a < b, in order.
    pairs: Vec<(usize, usize)>,
    /// Raters whose joint labels are summarised: all of them, then each
    /// repeat group.
    panels: Vec<Vec<usize>>,
    /// The repeat groups' names, panel 1 on.
    groups: Vec<String>,
    correct: Vec<usize>,
    /// The statistics, in the order a replicate's values are stored.
    stats: Vec<Stat>,
}

/// One statistic of a tally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stat {
    /// Share of a rater's labels that are "present".
    Prevalence(usize),
    /// Cohen's κ of a pair (its index in `Plan::pairs`).
    Kappa(usize),
    /// Fleiss' κ of a panel, over the units all its raters labelled.
    Fleiss(usize),
    /// Krippendorff's α of a panel.
    Alpha(usize),
    /// Share of a panel's units with two or more labels that disagree.
    Flip(usize),
    /// A rater's rate against the reference.
    Versus(Rate, usize),
    /// The rate of `correct[i]` on units the reference did not label.
    Raw(usize),
    /// That rate, Rogan–Gladen corrected.
    Corrected(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rate {
    Precision,
    Sensitivity,
    Specificity,
    F1,
}

impl Plan {
    fn new(raters: usize, options: &AgreementOptions) -> Plan {
        let mut plan = Plan {
            raters,
            reference: options.reference,
            pairs: (0..raters)
                .flat_map(|a| (a + 1..raters).map(move |b| (a, b)))
                .collect(),
            panels: std::iter::once((0..raters).collect())
                .chain(options.repeat_groups.iter().map(|(_, g)| g.clone()))
                .collect(),
            groups: options
                .repeat_groups
                .iter()
                .map(|(n, _)| n.clone())
                .collect(),
            correct: options.correct.clone(),
            stats: Vec::new(),
        };
        let mut stats: Vec<Stat> = (0..raters).map(Stat::Prevalence).collect();
        stats.extend((0..plan.pairs.len()).map(Stat::Kappa));
        if plan.fleiss_over_all() {
            stats.push(Stat::Fleiss(0));
        }
        stats.push(Stat::Alpha(0));
        for rater in plan.others() {
            stats.extend(
                [
                    Rate::Precision,
                    Rate::Sensitivity,
                    Rate::Specificity,
                    Rate::F1,
                ]
                .map(|rate| Stat::Versus(rate, rater)),
            );
        }
        for panel in 1..plan.panels.len() {
            stats.extend([Stat::Flip(panel), Stat::Fleiss(panel)]);
        }
        for i in 0..plan.correct.len() {
            stats.extend([Stat::Raw(i), Stat::Corrected(i)]);
        }
        plan.stats = stats;
        plan
    }

    /// Fleiss' κ over all raters is reported with three or more.
    fn fleiss_over_all(&self) -> bool {
        self.raters >= 3
    }

    /// The raters compared with the reference.
    fn others(&self) -> impl Iterator<Item = usize> + use<> {
        let reference = self.reference;
        (0..self.raters).filter(move |&r| reference.is_some_and(|x| x != r))
    }

    /// The index in `pairs` of raters a and b, either order.
    fn pair(&self, a: usize, b: usize) -> usize {
        let (a, b) = (a.min(b), a.max(b));
        a * (2 * self.raters - a - 1) / 2 + (b - a - 1)
    }

    /// The report on one set of units from its point tally and its
    /// statistics' estimates (in `stats` order).
    fn summarise(
        &self,
        matrix: &LabelMatrix,
        code: &'static str,
        name: &'static str,
        units: usize,
        tally: &Tally,
        estimates: &[Estimate],
    ) -> ModeAgreement {
        let e = |stat: Stat| {
            let i = self.stats.iter().position(|&s| s == stat);
            estimates[i.expect("every reported statistic is planned")].clone()
        };
        let rater = |r: usize| matrix.raters[r].clone();
        let versus = |rate, r| e(Stat::Versus(rate, r));
        ModeAgreement {
            code,
            name,
            units,
            prevalence: (0..self.raters)
                .map(|r| Prevalence {
                    rater: rater(r),
                    labelled: tally.known[r],
                    rate: e(Stat::Prevalence(r)),
                })
                .collect(),
            cohen_kappa: self
                .pairs
                .iter()
                .enumerate()
                .map(|(k, &(a, b))| PairKappa {
                    a: rater(a),
                    b: rater(b),
                    both_labelled: tally.pairs[k].iter().sum(),
                    kappa: e(Stat::Kappa(k)),
                })
                .collect(),
            fleiss_kappa: self.fleiss_over_all().then(|| e(Stat::Fleiss(0))),
            krippendorff_alpha: e(Stat::Alpha(0)),
            vs_reference: self
                .others()
                .map(|r| VsReference {
                    rater: rater(r),
                    counts: tally.versus(self, r),
                    precision: versus(Rate::Precision, r),
                    recall: versus(Rate::Sensitivity, r),
                    f1: versus(Rate::F1, r),
                    tpr: versus(Rate::Sensitivity, r),
                    tnr: versus(Rate::Specificity, r),
                })
                .collect(),
            repeat_consistency: (1..self.panels.len())
                .zip(&self.groups)
                .map(|(p, group)| RepeatConsistency {
                    group: group.clone(),
                    compared: tally.panels[p].pairable,
                    flip_rate: e(Stat::Flip(p)),
                    fleiss_kappa: e(Stat::Fleiss(p)),
                })
                .collect(),
            corrected_prevalence: self
                .correct
                .iter()
                .enumerate()
                .map(|(i, &r)| {
                    let c = tally.versus(self, r);
                    CorrectedPrevalence {
                        rater: rater(r),
                        labelled: c.true_positives
                            + c.false_positives
                            + c.true_negatives
                            + c.false_negatives,
                        unlabelled: tally.rest[i][0],
                        raw: e(Stat::Raw(i)),
                        sensitivity: versus(Rate::Sensitivity, r),
                        specificity: versus(Rate::Specificity, r),
                        corrected: e(Stat::Corrected(i)),
                    }
                })
                .collect(),
        }
    }
}

/// The sums every statistic is computed from, over a weighted set of units.
/// Counts are exact integers; the two fractional sums are Fleiss' and
/// Krippendorff's per-unit terms.
#[derive(Debug, Clone)]
struct Tally {
    /// Per rater: units labelled, and labelled present.
    known: Vec<u64>,
    present: Vec<u64>,
    /// Per pair (a, b): units both labelled, at `2·a's label + b's label`.
    pairs: Vec<[u64; 4]>,
    panels: Vec<PanelTally>,
    /// Per corrected rater, on units the reference left unlabelled: units
    /// the rater labelled, and labelled present.
    rest: Vec<[u64; 2]>,
}

/// A panel's joint labels.
#[derive(Debug, Clone, Copy, Default)]
struct PanelTally {
    size: usize,
    /// Units with at least two labels (α's pairable units, the compared
    /// units of a flip rate), and those among them with both labels.
    pairable: u64,
    split: u64,
    /// Labels of each value on pairable units: α's n_c.
    values: [u64; 2],
    /// Σ n₀·n₁ / (m − 1) over pairable units: α's coincidences o₀₁.
    disagreement: f64,
    /// Units every member labelled, Σ of Fleiss' P_i over them, and their
    /// present labels.
    complete: u64,
    agreement: f64,
    complete_present: u64,
}

impl Tally {
    fn new(plan: &Plan) -> Tally {
        Tally {
            known: vec![0; plan.raters],
            present: vec![0; plan.raters],
            pairs: vec![[0; 4]; plan.pairs.len()],
            panels: plan
                .panels
                .iter()
                .map(|members| PanelTally {
                    size: members.len(),
                    ..PanelTally::default()
                })
                .collect(),
            rest: vec![[0; 2]; plan.correct.len()],
        }
    }

    fn clear(&mut self) {
        self.known.fill(0);
        self.present.fill(0);
        self.pairs.fill([0; 4]);
        for panel in &mut self.panels {
            *panel = PanelTally {
                size: panel.size,
                ..PanelTally::default()
            };
        }
        self.rest.fill([0; 2]);
    }

    /// Counts `weight` units whose raters gave `labels`.
    fn add(&mut self, plan: &Plan, labels: &[Option<bool>], weight: u32) {
        let w = u64::from(weight);
        for (r, label) in labels.iter().enumerate() {
            if let Some(present) = *label {
                self.known[r] += w;
                self.present[r] += w * u64::from(present);
            }
        }
        for (cell, &(a, b)) in self.pairs.iter_mut().zip(&plan.pairs) {
            if let (Some(x), Some(y)) = (labels[a], labels[b]) {
                cell[2 * usize::from(x) + usize::from(y)] += w;
            }
        }
        for (panel, members) in self.panels.iter_mut().zip(&plan.panels) {
            panel.add(members.iter().map(|&r| labels[r]), w);
        }
        if let Some(reference) = plan.reference
            && labels[reference].is_none()
        {
            for (rest, &r) in self.rest.iter_mut().zip(&plan.correct) {
                if let Some(present) = labels[r] {
                    rest[0] += w;
                    rest[1] += w * u64::from(present);
                }
            }
        }
    }

    /// Rater `r`'s confusion against the reference.
    fn versus(&self, plan: &Plan, r: usize) -> Confusion {
        let reference = plan
            .reference
            .expect("rates against a reference are planned with one");
        let table = self.pairs[plan.pair(r, reference)];
        // The cell where the rater said `x` and the reference `y`.
        let cell = |x: usize, y: usize| {
            if r < reference {
                table[2 * x + y]
            } else {
                table[2 * y + x]
            }
        };
        Confusion {
            true_positives: cell(1, 1),
            false_positives: cell(1, 0),
            true_negatives: cell(0, 0),
            false_negatives: cell(0, 1),
        }
    }
}

impl PanelTally {
    fn add(&mut self, labels: impl Iterator<Item = Option<bool>>, w: u64) {
        let [mut n0, mut n1] = [0u64; 2];
        for label in labels.flatten() {
            if label {
                n1 += 1;
            } else {
                n0 += 1;
            }
        }
        let m = n0 + n1;
        if m < 2 {
            return;
        }
        let (f0, f1, fm, fw) = (n0 as f64, n1 as f64, m as f64, w as f64);
        self.pairable += w;
        self.split += w * u64::from(n0 > 0 && n1 > 0);
        self.values[0] += w * n0;
        self.values[1] += w * n1;
        self.disagreement += fw * f0 * f1 / (fm - 1.0);
        if m as usize == self.size {
            self.complete += w;
            self.agreement += fw * (f0 * (f0 - 1.0) + f1 * (f1 - 1.0)) / (fm * (fm - 1.0));
            self.complete_present += w * n1;
        }
    }

    fn fleiss(&self) -> Result<f64, Undefined> {
        if self.complete == 0 {
            return Err(Undefined::NoUnits);
        }
        let items = self.complete as f64;
        let present = self.complete_present as f64 / (items * self.size as f64);
        let chance = present * present + (1.0 - present) * (1.0 - present);
        kappa(self.agreement / items, chance).ok_or(Undefined::NoVariation)
    }

    /// Nominal α = 1 − (n − 1)·Σ_{c≠k} o_ck / Σ_{c≠k} n_c·n_k, for two values.
    fn alpha(&self) -> Result<f64, Undefined> {
        let [n0, n1] = self.values.map(|n| n as f64);
        if n0 + n1 == 0.0 {
            Err(Undefined::NoUnits)
        } else if n0 * n1 == 0.0 {
            Err(Undefined::NoVariation)
        } else {
            Ok(1.0 - (n0 + n1 - 1.0) * self.disagreement / (n0 * n1))
        }
    }
}

/// Cohen's κ of a pair's table (`2·a + b`).
fn cohen(table: [u64; 4]) -> Result<f64, Undefined> {
    let n: u64 = table.iter().sum();
    if n == 0 {
        return Err(Undefined::NoUnits);
    }
    let share = |count: u64| count as f64 / n as f64;
    let [n00, n01, n10, n11] = table;
    let chance = share(n00 + n01) * share(n00 + n10) + share(n10 + n11) * share(n01 + n11);
    kappa(share(n00 + n11), chance).ok_or(Undefined::NoVariation)
}

fn share(count: u64, of: u64) -> Result<f64, Undefined> {
    if of == 0 {
        Err(Undefined::NoUnits)
    } else {
        Ok(count as f64 / of as f64)
    }
}

impl Stat {
    fn value(self, t: &Tally, plan: &Plan) -> Result<f64, Undefined> {
        match self {
            Stat::Prevalence(r) => share(t.present[r], t.known[r]),
            Stat::Kappa(k) => cohen(t.pairs[k]),
            Stat::Fleiss(p) => t.panels[p].fleiss(),
            Stat::Alpha(p) => t.panels[p].alpha(),
            Stat::Flip(p) => share(t.panels[p].split, t.panels[p].pairable),
            Stat::Versus(rate, r) => {
                let c = t.versus(plan, r);
                match rate {
                    Rate::Precision => c.precision(),
                    Rate::Sensitivity => c.sensitivity(),
                    Rate::Specificity => c.specificity(),
                    Rate::F1 => c.f1(),
                }
                .ok_or(Undefined::NoUnits)
            }
            Stat::Raw(i) => share(t.rest[i][1], t.rest[i][0]),
            Stat::Corrected(i) => {
                let r = plan.correct[i];
                let raw = Stat::Raw(i).value(t, plan)?;
                let sensitivity = Stat::Versus(Rate::Sensitivity, r).value(t, plan)?;
                let specificity = Stat::Versus(Rate::Specificity, r).value(t, plan)?;
                rogan_gladen(raw, sensitivity, specificity).ok_or(Undefined::NoBetterThanChance)
            }
        }
    }
}

/// The traces a replicate resamples separately: those the reference
/// labelled (on any reported mode), then the rest. How many traces a human
/// labelled is fixed by design, not a random outcome, and the corrected
/// prevalence needs its measured and its corrected parts resampled
/// independently. Without a reference, one stratum of every trace.
fn strata(matrix: &LabelMatrix, reference: Option<usize>) -> Vec<Vec<u32>> {
    let labelled = |t: usize| {
        reference.is_none_or(|r| {
            matrix
                .labels
                .iter()
                .any(|by_rater| by_rater[r][t].is_some())
        })
    };
    let (inside, rest): (Vec<u32>, Vec<u32>) =
        (0..matrix.traces as u32).partition(|&t| labelled(t as usize));
    [inside, rest]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect()
}

/// Replicates run by one thread before threads are worth starting.
const MIN_REPLICATES_PER_THREAD: usize = 32;

/// Every statistic of every set of units (modes, then the pool) in each
/// replicate: `[(replicate · sets + set) · stats + stat]`, `None` where
/// undefined. Replicate b draws from its own generator, keyed by b, so the
/// values do not depend on how replicates are split among threads.
fn replicate(
    patterns: &Patterns,
    plan: &Plan,
    strata: &[Vec<u32>],
    options: &AgreementOptions,
    threads: usize,
) -> Vec<Option<f64>> {
    let replicates = options.replicates;
    let threads = threads
        .min(replicates.div_ceil(MIN_REPLICATES_PER_THREAD))
        .max(1);
    let span = replicates.div_ceil(threads).max(1);
    let run = |range: Range<usize>| {
        let mut work = Workspace::new(patterns, plan);
        let mut counts = vec![0u32; patterns.slot.len() / patterns.modes];
        let mut values = Vec::with_capacity(range.len() * work.tallies.len() * plan.stats.len());
        for b in range {
            let mut rng = seed::rng(options.seed, &[Part::Str("agreement bootstrap"), b.into()]);
            counts.fill(0);
            for stratum in strata {
                for _ in 0..stratum.len() {
                    counts[stratum[rng.random_range(0..stratum.len())] as usize] += 1;
                }
            }
            patterns.tally(plan, &counts, &mut work);
            for tally in &work.tallies {
                values.extend(plan.stats.iter().map(|s| s.value(tally, plan).ok()));
            }
        }
        values
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..replicates)
            .step_by(span)
            .map(|first| s.spawn(move || run(first..(first + span).min(replicates))))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("agreement bootstrap thread"))
            .collect()
    })
}

/// The estimate from a statistic's value on the data and its replicates'.
/// Percentiles as in [`super::bootstrap`].
fn estimate(
    point: Result<f64, Undefined>,
    replicates: impl Iterator<Item = Option<f64>>,
    level: f64,
) -> Estimate {
    let (ci, undefined_replicates) = percentile_interval(replicates, level);
    Estimate {
        value: point.ok(),
        why_undefined: point.err(),
        ci: ci.filter(|_| point.is_ok()),
        undefined_replicates,
    }
}

/// A simulated rater: how it reports a hidden truth.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatedRater {
    pub name: String,
    pub sensitivity: f64,
    pub specificity: f64,
    /// Share of traces it labels; the others it leaves missing on every mode
    /// (as a human labels some traces whole).
    pub coverage: f64,
}

/// Synthetic labels for benchmarks and tests: each (trace, mode) is truly
/// present with probability `prevalence`, and each rater reports it through
/// its own sensitivity and specificity, independently of the others.
#[derive(Debug, Clone, PartialEq)]
pub struct Simulation {
    pub traces: usize,
    pub modes: Vec<FailureMode>,
    pub prevalence: f64,
    pub raters: Vec<SimulatedRater>,
    pub seed: u64,
}

impl Simulation {
    pub fn labels(&self) -> LabelMatrix {
        let mut rng = seed::rng(self.seed, &[Part::Str("simulated labels")]);
        let mut labels = vec![vec![vec![None; self.traces]; self.raters.len()]; self.modes.len()];
        for t in 0..self.traces {
            let covered: Vec<bool> = self
                .raters
                .iter()
                .map(|r| rng.random_bool(r.coverage))
                .collect();
            for by_rater in &mut labels {
                let truth = rng.random_bool(self.prevalence);
                for ((rater, labels), &covered) in self.raters.iter().zip(by_rater).zip(&covered) {
                    if covered {
                        labels[t] = Some(if truth {
                            rng.random_bool(rater.sensitivity)
                        } else {
                            !rng.random_bool(rater.specificity)
                        });
                    }
                }
            }
        }
        LabelMatrix {
            traces: self.traces,
            modes: self.modes.clone(),
            raters: self.raters.iter().map(|r| r.name.clone()).collect(),
            labels,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::agreement::{cohen_kappa, fleiss_kappa, krippendorff_alpha};
    use super::*;

    fn options(reference: Option<usize>, replicates: usize) -> AgreementOptions {
        AgreementOptions {
            reference,
            replicates,
            seed: 7,
            level: 0.95,
            repeat_groups: Vec::new(),
            correct: Vec::new(),
        }
    }

    /// One mode's matrix from each rater's labels: 1 present, 0 absent, `.` missing.
    fn one_mode(raters: &[&str]) -> LabelMatrix {
        let label = |c: char| match c {
            '1' => Some(true),
            '0' => Some(false),
            _ => None,
        };
        LabelMatrix {
            traces: raters[0].len(),
            modes: vec![FailureMode::StepRepetition],
            raters: (0..raters.len()).map(|r| format!("r{r}")).collect(),
            labels: vec![
                raters
                    .iter()
                    .map(|l| l.chars().map(label).collect())
                    .collect(),
            ],
        }
    }

    fn rater(name: &str, sensitivity: f64, specificity: f64, coverage: f64) -> SimulatedRater {
        SimulatedRater {
            name: name.into(),
            sensitivity,
            specificity,
            coverage,
        }
    }

    fn close(e: &Estimate, expected: f64) -> bool {
        e.value.is_some_and(|v| (v - expected).abs() < 1e-12)
    }

    #[test]
    fn cohen_kappa_of_a_hand_computed_table() {
        // 100 units: both present 45, a present b absent 15, a absent b
        // present 25, both absent 15. p_o = (45 + 15)/100 = 0.60; a says
        // present 0.60, b 0.70, so p_e = 0.6·0.7 + 0.4·0.3 = 0.54;
        // κ = (0.60 − 0.54)/(1 − 0.54) = 0.06/0.46 = 3/23.
        let (mut a, mut b) = (String::new(), String::new());
        for (x, y, n) in [
            ('1', '1', 45),
            ('1', '0', 15),
            ('0', '1', 25),
            ('0', '0', 15),
        ] {
            a.extend(std::iter::repeat_n(x, n));
            b.extend(std::iter::repeat_n(y, n));
        }
        let r = report(&one_mode(&[&a, &b]), &options(Some(1), 0)).unwrap();
        let mode = &r.modes[0];
        assert!(close(&mode.cohen_kappa[0].kappa, 3.0 / 23.0));
        assert_eq!(mode.cohen_kappa[0].both_labelled, 100);
        // a against b as reference: tp 45, fp 15, tn 15, fn 25.
        let v = &mode.vs_reference[0];
        assert_eq!(
            v.counts,
            Confusion {
                true_positives: 45,
                false_positives: 15,
                true_negatives: 15,
                false_negatives: 25
            }
        );
        assert!(close(&v.precision, 45.0 / 60.0));
        assert!(close(&v.recall, 45.0 / 70.0));
        assert!(close(&v.tnr, 15.0 / 30.0));
        assert!(close(&v.f1, 90.0 / 130.0));
        assert!(mode.fleiss_kappa.is_none(), "two raters: no Fleiss' κ");
    }

    #[test]
    fn missing_labels_drop_out_pairwise_for_kappa_and_per_krippendorff_for_alpha() {
        // Five units, three raters, rater 1 missing on unit 5:
        //   unit  1 2 3 4 5
        //   r0    1 1 0 1 1
        //   r1    1 1 0 0 .
        //   r2    1 0 0 0 0
        let matrix = one_mode(&["11011", "1100.", "10000"]);
        let mut o = options(None, 0);
        o.repeat_groups = vec![("all".into(), vec![0, 1, 2])];
        let mode = &report(&matrix, &o).unwrap().modes[0];
        // κ(r0, r1) over units 1–4: p_o = 3/4; r0 present 3/4, r1 1/2, so
        // p_e = 3/4·1/2 + 1/4·1/2 = 1/2; κ = (3/4 − 1/2)/(1/2) = 1/2.
        assert!(close(&mode.cohen_kappa[0].kappa, 0.5));
        assert_eq!(mode.cohen_kappa[0].both_labelled, 4);
        // Fleiss over the complete units 1–4: P_i = 1, 1/3, 1, 1/3
        // (n·(n−1) summed over values, over 3·2), P̄ = 2/3; present share
        // 6/12, P̄e = 1/2; κ = (2/3 − 1/2)/(1/2) = 1/3.
        assert!(close(mode.fleiss_kappa.as_ref().unwrap(), 1.0 / 3.0));
        // α counts unit 5 too (two labels). Coincidences o₀₁ = Σ n₀n₁/(m−1)
        // = 2·1/2 + 1·2/2 + 1·1/1 = 3 (units 2, 4, 5); n₀ = n₁ = 7, n = 14;
        // α = 1 − (n − 1)·o₀₁/(n₀·n₁) = 1 − 13·3/49 = 10/49.
        assert!(close(&mode.krippendorff_alpha, 10.0 / 49.0));
        // Repeats disagree on units 2, 4 and 5 of the five compared.
        let repeats = &mode.repeat_consistency[0];
        assert_eq!(repeats.compared, 5);
        assert!(close(&repeats.flip_rate, 0.6));
        assert!(close(&repeats.fleiss_kappa, 1.0 / 3.0));
        // Prevalence is over each rater's own known labels.
        assert!(close(&mode.prevalence[1].rate, 0.5));
        assert_eq!(mode.prevalence[1].labelled, 4);
    }

    #[test]
    fn no_variation_is_reported_as_undefined_with_its_reason() {
        let matrix = one_mode(&["0000", "0000", "000."]);
        let mode = &report(&matrix, &options(Some(0), 20)).unwrap().modes[0];
        for e in [
            &mode.cohen_kappa[0].kappa,
            mode.fleiss_kappa.as_ref().unwrap(),
            &mode.krippendorff_alpha,
        ] {
            assert_eq!(e.value, None);
            assert_eq!(e.why_undefined, Some(Undefined::NoVariation));
            assert_eq!(e.ci, None);
            assert_eq!(e.undefined_replicates, 20);
        }
        assert_eq!(
            Undefined::NoVariation.to_string(),
            "undefined (no variation)"
        );
        // No rater ever says present: precision divides nothing.
        assert_eq!(
            mode.vs_reference[0].precision.why_undefined,
            Some(Undefined::NoUnits)
        );
        // A prevalence of zero is a value, with a degenerate interval.
        assert_eq!(mode.prevalence[0].rate.value, Some(0.0));
        assert_eq!(mode.prevalence[0].rate.ci, Some([0.0, 0.0]));
        let json = serde_json::to_value(&mode.krippendorff_alpha).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "value": null, "why_undefined": "no_variation", "ci": null, "undefined_replicates": 20
            })
        );
    }

    fn labels_strategy() -> impl Strategy<Value = LabelMatrix> {
        (1usize..=12, 0usize..25, 1usize..4).prop_flat_map(|(raters, traces, modes)| {
            prop::collection::vec(
                prop::option::weighted(0.8, any::<bool>()),
                raters * traces * modes,
            )
            .prop_map(move |flat| LabelMatrix {
                traces,
                modes: FailureMode::all().take(modes).collect(),
                raters: (0..raters).map(|r| format!("r{r}")).collect(),
                labels: (0..modes)
                    .map(|m| {
                        let at = |r: usize| (m * raters + r) * traces;
                        (0..raters)
                            .map(|r| flat[at(r)..at(r) + traces].to_vec())
                            .collect()
                    })
                    .collect(),
            })
        })
    }

    /// A unit set's labels, rater by rater: one mode's, or every mode's in turn.
    fn columns(matrix: &LabelMatrix, modes: Range<usize>) -> Vec<Vec<Option<bool>>> {
        (0..matrix.raters.len())
            .map(|r| {
                modes
                    .clone()
                    .flat_map(|m| matrix.labels[m][r].iter().copied())
                    .collect()
            })
            .collect()
    }

    fn numeric(labels: &[Option<bool>]) -> Vec<Option<u32>> {
        labels.iter().map(|l| l.map(u32::from)).collect()
    }

    /// `items[unit][rater]` of the given raters.
    fn items(columns: &[Vec<Option<bool>>], raters: &[usize]) -> Vec<Vec<Option<u32>>> {
        (0..columns[0].len())
            .map(|u| {
                raters
                    .iter()
                    .map(|&r| columns[r][u].map(u32::from))
                    .collect()
            })
            .collect()
    }

    fn agrees(e: &Estimate, direct: Option<f64>) -> bool {
        match (e.value, direct) {
            (Some(a), Some(b)) => (a - b).abs() < 1e-12 && e.why_undefined.is_none(),
            (None, None) => e.why_undefined.is_some(),
            _ => false,
        }
    }

    /// Every statistic of `mode` against `agreement.rs` (and plain counts)
    /// on the raw label vectors of its units.
    fn check_against_direct(
        mode: &ModeAgreement,
        columns: &[Vec<Option<bool>>],
        o: &AgreementOptions,
    ) {
        let raters = columns.len();
        let all: Vec<usize> = (0..raters).collect();
        for (r, p) in mode.prevalence.iter().enumerate() {
            let known = columns[r].iter().flatten().count();
            let present = columns[r].iter().flatten().filter(|&&l| l).count();
            assert_eq!(p.labelled, known as u64);
            assert!(agrees(
                &p.rate,
                (known > 0).then(|| present as f64 / known as f64)
            ));
        }
        let mut pairs = mode.cohen_kappa.iter();
        for a in 0..raters {
            for b in a + 1..raters {
                let pair = pairs.next().unwrap();
                assert_eq!((&*pair.a, &*pair.b), (&*format!("r{a}"), &*format!("r{b}")));
                let direct = cohen_kappa(&numeric(&columns[a]), &numeric(&columns[b]));
                assert!(agrees(&pair.kappa, direct), "{pair:?} {direct:?}");
                let none = columns[a]
                    .iter()
                    .zip(&columns[b])
                    .all(|(x, y)| x.is_none() || y.is_none());
                if none {
                    assert_eq!(pair.kappa.why_undefined, Some(Undefined::NoUnits));
                }
            }
        }
        assert!(pairs.next().is_none());
        match &mode.fleiss_kappa {
            Some(f) => assert!(agrees(f, fleiss_kappa(&items(columns, &all)))),
            None => assert!(raters < 3),
        }
        assert!(agrees(
            &mode.krippendorff_alpha,
            krippendorff_alpha(&items(columns, &all))
        ));
        if let Some(reference) = o.reference {
            let others: Vec<usize> = all.iter().copied().filter(|&r| r != reference).collect();
            assert_eq!(mode.vs_reference.len(), others.len());
            for (v, &r) in mode.vs_reference.iter().zip(&others) {
                let c = Confusion::of(&columns[r], &columns[reference]);
                assert_eq!(v.counts, c);
                assert!(agrees(&v.precision, c.precision()));
                assert!(agrees(&v.recall, c.sensitivity()));
                assert!(agrees(&v.tpr, c.sensitivity()));
                assert!(agrees(&v.tnr, c.specificity()));
                assert!(agrees(&v.f1, c.f1()));
            }
            for (corrected, &r) in mode.corrected_prevalence.iter().zip(&o.correct) {
                let rest: Vec<bool> = columns[r]
                    .iter()
                    .zip(&columns[reference])
                    .filter_map(|(l, t)| if t.is_none() { *l } else { None })
                    .collect();
                let raw = (!rest.is_empty())
                    .then(|| rest.iter().filter(|&&l| l).count() as f64 / rest.len() as f64);
                assert!(agrees(&corrected.raw, raw));
                let c = Confusion::of(&columns[r], &columns[reference]);
                let direct = raw
                    .zip(c.sensitivity())
                    .zip(c.specificity())
                    .and_then(|((raw, sens), spec)| rogan_gladen(raw, sens, spec));
                assert!(agrees(&corrected.corrected, direct));
            }
        }
        for (repeats, (_, group)) in mode.repeat_consistency.iter().zip(&o.repeat_groups) {
            let units = items(columns, group);
            let compared: Vec<Vec<u32>> = units
                .iter()
                .map(|u| u.iter().flatten().copied().collect::<Vec<u32>>())
                .filter(|u| u.len() >= 2)
                .collect();
            let flips = compared
                .iter()
                .filter(|u| u.iter().any(|&l| l != u[0]))
                .count();
            assert_eq!(repeats.compared, compared.len() as u64);
            assert!(agrees(
                &repeats.flip_rate,
                (!compared.is_empty()).then(|| flips as f64 / compared.len() as f64)
            ));
            assert!(agrees(&repeats.fleiss_kappa, fleiss_kappa(&units)));
        }
    }

    proptest! {
        #[test]
        fn point_estimates_match_the_direct_computations(matrix in labels_strategy()) {
            let raters = matrix.raters.len();
            let mut o = options((raters >= 2).then_some(raters - 1), 0);
            if raters >= 2 {
                o.correct = vec![0];
                o.repeat_groups = vec![("first".into(), (0..raters.min(3)).collect())];
            }
            let r = report(&matrix, &o).unwrap();
            for (m, mode) in r.modes.iter().enumerate() {
                prop_assert_eq!(mode.units, matrix.traces);
                check_against_direct(mode, &columns(&matrix, m..m + 1), &o);
            }
            prop_assert_eq!(r.pooled.units, matrix.traces * matrix.modes.len());
            check_against_direct(&r.pooled, &columns(&matrix, 0..matrix.modes.len()), &o);
        }

        #[test]
        fn a_rater_agrees_with_its_copy_exactly_when_its_labels_vary(
            labels in prop::collection::vec(prop::option::weighted(0.8, any::<bool>()), 1..40)
        ) {
            let mut matrix = one_mode(&["", ""]);
            matrix.traces = labels.len();
            matrix.labels = vec![vec![labels.clone(), labels.clone()]];
            let kappa = &report(&matrix, &options(None, 0)).unwrap().modes[0].cohen_kappa[0].kappa;
            let known: Vec<bool> = labels.iter().flatten().copied().collect();
            if known.is_empty() {
                prop_assert_eq!(kappa.why_undefined, Some(Undefined::NoUnits));
            } else if known.iter().all(|&l| l == known[0]) {
                prop_assert_eq!(kappa.why_undefined, Some(Undefined::NoVariation));
            } else {
                prop_assert!(close(kappa, 1.0), "{:?}", kappa);
            }
        }
    }

    #[test]
    fn permuting_raters_changes_neither_fleiss_nor_alpha() {
        let matrix = Simulation {
            traces: 300,
            modes: FailureMode::all().take(3).collect(),
            prevalence: 0.3,
            raters: vec![
                rater("a", 0.9, 0.9, 0.9),
                rater("b", 0.7, 0.8, 0.8),
                rater("c", 0.6, 0.95, 1.0),
                rater("d", 0.8, 0.7, 0.7),
            ],
            seed: 1,
        }
        .labels();
        let order = [2, 0, 3, 1];
        let mut permuted = matrix.clone();
        permuted.raters = order.iter().map(|&r| matrix.raters[r].clone()).collect();
        for (mode, by_rater) in permuted.labels.iter_mut().enumerate() {
            *by_rater = order
                .iter()
                .map(|&r| matrix.labels[mode][r].clone())
                .collect();
        }
        let (a, b) = (
            report(&matrix, &options(None, 100)).unwrap(),
            report(&permuted, &options(None, 100)).unwrap(),
        );
        let same = |x: &Estimate, y: &Estimate| {
            let near = |p: f64, q: f64| (p - q).abs() < 1e-12;
            near(x.value.unwrap(), y.value.unwrap())
                && x.ci
                    .zip(y.ci)
                    .is_some_and(|(p, q)| near(p[0], q[0]) && near(p[1], q[1]))
        };
        for (x, y) in a
            .modes
            .iter()
            .chain([&a.pooled])
            .zip(b.modes.iter().chain([&b.pooled]))
        {
            assert!(same(
                x.fleiss_kappa.as_ref().unwrap(),
                y.fleiss_kappa.as_ref().unwrap()
            ));
            assert!(same(&x.krippendorff_alpha, &y.krippendorff_alpha));
        }
    }

    #[test]
    fn the_corrected_interval_covers_the_true_prevalence_and_the_raw_one_does_not() {
        // True prevalence 0.1; the judge has sensitivity 0.7 and specificity
        // 0.85, so its raw rate is 0.1·0.7 + 0.9·0.15 = 0.205. A human labels
        // a quarter of the traces, exactly.
        let seeds = 200;
        let (mut corrected, mut raw) = (0, 0);
        for seed in 0..seeds {
            let matrix = Simulation {
                traces: 1500,
                modes: vec![FailureMode::NoVerification],
                prevalence: 0.1,
                raters: vec![
                    rater("human", 1.0, 1.0, 0.25),
                    rater("judge", 0.7, 0.85, 1.0),
                ],
                seed,
            }
            .labels();
            let mut o = options(Some(0), 100);
            o.seed = seed;
            o.correct = vec![1];
            let r = report(&matrix, &o).unwrap();
            let c = &r.modes[0].corrected_prevalence[0];
            let covers = |e: &Estimate| e.ci.is_some_and(|[lo, hi]| lo <= 0.1 && 0.1 <= hi);
            corrected += usize::from(covers(&c.corrected));
            raw += usize::from(covers(&c.raw));
        }
        assert!(
            corrected >= seeds as usize * 9 / 10,
            "corrected covers in {corrected} of {seeds}"
        );
        assert!(raw <= seeds as usize / 20, "raw covers in {raw} of {seeds}");
    }

    #[test]
    fn a_rater_no_better_than_chance_cannot_be_corrected() {
        // On the labelled half the judge has sensitivity 1/2 and specificity
        // 1/2; on the unlabelled half it says present twice in four.
        let matrix = one_mode(&["1100....", "10101100"]);
        let mut o = options(Some(0), 200);
        o.correct = vec![1];
        let c = &report(&matrix, &o).unwrap().modes[0].corrected_prevalence[0];
        assert!(close(&c.raw, 0.5));
        assert!(close(&c.sensitivity, 0.5) && close(&c.specificity, 0.5));
        assert_eq!((c.labelled, c.unlabelled), (4, 4));
        assert_eq!(
            c.corrected.why_undefined,
            Some(Undefined::NoBetterThanChance)
        );
        assert!(c.corrected.undefined_replicates > 0 && c.corrected.undefined_replicates < 200);
    }

    fn panel(traces: usize, seed: u64) -> (LabelMatrix, AgreementOptions) {
        let matrix = Simulation {
            traces,
            modes: FailureMode::all().collect(),
            prevalence: 0.2,
            raters: vec![
                rater("human", 1.0, 1.0, 0.3),
                rater("judge#1", 0.8, 0.9, 1.0),
                rater("judge#2", 0.8, 0.9, 1.0),
                rater("judge#3", 0.8, 0.9, 0.95),
                rater("other", 0.6, 0.95, 1.0),
            ],
            seed,
        }
        .labels();
        let o = AgreementOptions {
            reference: Some(0),
            replicates: 50,
            seed,
            level: 0.95,
            repeat_groups: vec![("judge".into(), vec![1, 2, 3])],
            correct: vec![1, 4],
        };
        (matrix, o)
    }

    #[test]
    fn same_seed_same_report_at_any_thread_count() {
        let (matrix, o) = panel(200, 3);
        let one = report_on_threads(&matrix, &o, 1).unwrap();
        assert_eq!(one, report_on_threads(&matrix, &o, 1).unwrap());
        assert_eq!(one, report_on_threads(&matrix, &o, 3).unwrap());
        // Another seed draws other replicates: the same values, other intervals.
        let other = report(&matrix, &AgreementOptions { seed: 4, ..o }).unwrap();
        let (a, b) = (
            &one.pooled.krippendorff_alpha,
            &other.pooled.krippendorff_alpha,
        );
        assert_eq!(a.value, b.value);
        assert_ne!(a.ci, b.ci);
    }

    /// Every estimate in a serialised report.
    fn estimates(json: &serde_json::Value, out: &mut Vec<serde_json::Value>) {
        match json {
            serde_json::Value::Object(map) if map.contains_key("undefined_replicates") => {
                out.push(json.clone())
            }
            serde_json::Value::Object(map) => map.values().for_each(|v| estimates(v, out)),
            serde_json::Value::Array(items) => items.iter().for_each(|v| estimates(v, out)),
            _ => {}
        }
    }

    #[test]
    fn a_full_panel_reports_intervals_that_bracket_its_estimates() {
        let (matrix, o) = panel(2000, 5);
        let r = report(&matrix, &o).unwrap();
        assert_eq!(r.modes.len(), 14);
        let mut all = Vec::new();
        estimates(&serde_json::to_value(&r).unwrap(), &mut all);
        // Per mode: 5 prevalences, 10 κ, Fleiss, α, 4 raters × 5 rates,
        // flips and Fleiss of the repeats, 2 × 4 of the corrections.
        assert_eq!(all.len(), 15 * (5 + 10 + 2 + 20 + 2 + 8));
        for e in &all {
            let value = e["value"].as_f64().expect("defined on this panel");
            let ci = e["ci"].as_array().expect("an interval");
            let (lo, hi) = (ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap());
            assert!(lo <= value && value <= hi, "{e}");
        }
    }

    #[test]
    fn malformed_input_is_an_error() {
        let matrix = one_mode(&["10", "01"]);
        let mut o = options(None, 0);
        o.correct = vec![0];
        assert_eq!(report(&matrix, &o), Err(AgreementError::NoReference));
        o.reference = Some(0);
        assert_eq!(
            report(&matrix, &o),
            Err(AgreementError::CorrectingReference("r0".into()))
        );
        let o = AgreementOptions {
            repeat_groups: vec![("g".into(), vec![1, 1])],
            ..options(None, 0)
        };
        assert_eq!(
            report(&matrix, &o),
            Err(AgreementError::SmallGroup("g".into()))
        );
        assert_eq!(
            report(&matrix, &options(Some(2), 0)),
            Err(AgreementError::NoSuchRater {
                index: 2,
                raters: 2
            })
        );
        let mut short = matrix.clone();
        short.labels[0][1].pop();
        assert!(matches!(
            report(&short, &options(None, 0)),
            Err(AgreementError::TraceCount { .. })
        ));
    }
}
