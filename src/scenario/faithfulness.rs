//! A faithfulness experiment as the engine runs it: which agents explain and
//! which predict, the prompt layouts, and per data set its question, answer
//! set, cases (rendered for the models) and counterfactual groups.
//!
//! The validator builds it from the `faithfulness:` section; each case is a
//! task of the scenario (data sets one after another), so calls, traces and
//! the viewer treat cases as they treat any task. The engine's
//! `engine::faithfulness` makes the calls; `stats::faithfulness` scores them.

use crate::scenario::counterfactual::Counterfactuals;
use crate::scenario::template::Template;

/// The span of sample indices one predictor's repeats of one prediction
/// take: a prediction call's sample index is
/// `((variant × 3 + condition) × predictors + predictor) × REPEAT_STRIDE +
/// repeat`, so `repeats` is at most this.
pub const REPEAT_STRIDE: usize = 1024;

/// The validated `faithfulness:` section.
#[derive(Debug)]
pub struct Faithfulness {
    /// The explained agents (indices into the scenario's agents).
    pub explained: Vec<usize>,
    /// The predicting agents.
    pub predictors: Vec<usize>,
    /// Predictions per (counterfactual, predictor, condition).
    pub repeats: usize,
    pub layouts: Vec<Layout>,
    /// Whether to predict with another explained agent's explanation too.
    pub external: bool,
    /// What an explained agent is asked about a case.
    pub explain: Template,
    /// What a predictor is asked.
    pub predict: Template,
    pub datasets: Vec<FaithDataset>,
}

/// Where the explained agent puts its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layout {
    AnswerFirst,
    AnswerLast,
}

impl Layout {
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::AnswerFirst => "answer_first",
            Layout::AnswerLast => "answer_last",
        }
    }
}

/// Where a data set's counterfactuals come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterfactualSource {
    Natural,
    Given,
}

impl CounterfactualSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CounterfactualSource::Natural => "natural",
            CounterfactualSource::Given => "given",
        }
    }
}

/// One data set of the experiment.
#[derive(Debug)]
pub struct FaithDataset {
    pub name: String,
    pub question: String,
    pub answers: Vec<String>,
    pub source: CounterfactualSource,
    pub counterfactuals: Counterfactuals,
    /// The task of the data set's first case: case `i` is task `first_task + i`.
    pub first_task: usize,
    /// Each case as the models read it: the `case` template rendered.
    pub descriptions: Vec<String>,
}

impl Faithfulness {
    /// The explained variants measured: each explained agent in each layout.
    pub fn variants(&self) -> Vec<(usize, Layout)> {
        self.explained
            .iter()
            .flat_map(|&a| self.layouts.iter().map(move |&l| (a, l)))
            .collect()
    }

    /// The prediction conditions asked for each counterfactual.
    pub fn conditions(&self) -> &'static [Condition] {
        let n = if self.external { 3 } else { 2 };
        &Condition::ALL[..n]
    }

    /// Every call the experiment plans: an answer per variant and case, and
    /// a prediction per variant, counterfactual, predictor, repeat and
    /// condition.
    pub fn planned_calls(&self) -> u64 {
        let variants = self.variants().len() as u64;
        let per_pair =
            variants * (self.predictors.len() * self.repeats * self.conditions().len()) as u64;
        self.datasets
            .iter()
            .map(|d| {
                let pairs: u64 = d
                    .counterfactuals
                    .groups
                    .iter()
                    .map(|g| g.members.len() as u64)
                    .sum();
                variants * d.counterfactuals.cases.len() as u64 + pairs * per_pair
            })
            .sum()
    }
}

/// What a predictor is shown besides the reference and its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Condition {
    /// The explained agent's own explanation.
    With,
    /// No explanation.
    Without,
    /// Another explained agent's explanation of the same reference answer.
    External,
}

impl Condition {
    /// Every condition, in the order sample indices number them.
    pub const ALL: [Condition; 3] = [Condition::With, Condition::Without, Condition::External];

    pub fn as_str(self) -> &'static str {
        match self {
            Condition::With => "with",
            Condition::Without => "without",
            Condition::External => "external",
        }
    }

    /// Its position in [`Condition::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn parse(s: &str) -> Option<Condition> {
        Condition::ALL.into_iter().find(|c| c.as_str() == s)
    }
}
