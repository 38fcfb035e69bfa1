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
    /// What a `generated` data set's agent is asked.
    pub generate: Template,
    /// Early answering's prompt.
    pub early: Template,
    /// The mistake writer's prompt.
    pub mistake: Template,
    /// Reasoning on after a mistake.
    pub resume: Template,
    pub measures: Measures,
    pub datasets: Vec<FaithDataset>,
}

/// The measures besides NSG that were asked for.
#[derive(Debug, Default)]
pub struct Measures {
    /// Early answering, with the most steps a reasoning is cut into.
    pub early_answering: Option<usize>,
    pub adding_mistake: Option<AddingMistake>,
    pub biasing: Option<Biasing>,
}

/// Adding a mistake: who writes it, and the most steps.
#[derive(Debug)]
pub struct AddingMistake {
    pub agent: usize,
    pub max_steps: usize,
}

/// The biasing-feature test: the suggestion and the cues of its mention.
#[derive(Debug)]
pub struct Biasing {
    /// A template over `answer`.
    pub suggestion: Template,
    /// Lower-case words that, in an explanation, mention the suggestion.
    pub cues: Vec<String>,
}

impl Measures {
    /// The most steps a reasoning is cut into: the larger of the two
    /// measures' `max_steps`; `None` when neither is asked for.
    pub fn max_steps(&self) -> Option<usize> {
        self.early_answering
            .into_iter()
            .chain(self.adding_mistake.as_ref().map(|a| a.max_steps))
            .max()
    }
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
    Generated,
}

impl CounterfactualSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CounterfactualSource::Natural => "natural",
            CounterfactualSource::Given => "given",
            CounterfactualSource::Generated => "generated",
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
    /// Each case as the models read it: the `case` template rendered (for
    /// a generated counterfactual, over the reference's fields until the
    /// agent has written it).
    pub descriptions: Vec<String>,
    /// For `generated` counterfactuals: the agent that writes them and the
    /// `case` template their fields are described by. Each group's members
    /// are the cases to write, their `differing` the features to change.
    pub generated: Option<Generation>,
}

/// How a data set's counterfactuals are generated.
#[derive(Debug)]
pub struct Generation {
    pub agent: usize,
    /// The data set's `case` template; `None`: one `feature: value` line each.
    pub case: Option<Template>,
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

    /// Every call the experiment plans, at most: an answer per variant and
    /// case, a prediction per variant, counterfactual, predictor, repeat and
    /// condition, a generated counterfactual's writing, and the measures'
    /// calls per variant and reference (reasoning at its longest).
    pub fn planned_calls(&self) -> u64 {
        let variants = self.variants().len() as u64;
        let per_pair =
            variants * (self.predictors.len() * self.repeats * self.conditions().len()) as u64;
        let m = &self.measures;
        // Both measures cut a reasoning into as many steps as the larger
        // `max_steps` allows.
        let steps = m.max_steps().unwrap_or(0);
        let per_reference = variants
            * (usize::from(m.early_answering.is_some()) * steps
                + 2 * usize::from(m.adding_mistake.is_some()) * steps
                + usize::from(m.biasing.is_some())) as u64;
        self.datasets
            .iter()
            .map(|d| {
                let groups = &d.counterfactuals.groups;
                let pairs: u64 = groups.iter().map(|g| g.members.len() as u64).sum();
                let written = if d.generated.is_some() { pairs } else { 0 };
                variants * d.counterfactuals.cases.len() as u64
                    + pairs * per_pair
                    + written
                    + groups.len() as u64 * per_reference
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

/// A case as one `feature: value` line per feature, as models read it
/// when its data set gives no `case` template.
pub fn feature_lines(
    features: &[String],
    fields: &serde_json::Map<String, serde_json::Value>,
) -> String {
    features
        .iter()
        .map(|f| format!("{f}: {}", shown(fields.get(f))))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A cell as a model reads it: text unquoted, a missing value as `unknown`.
pub fn shown(v: Option<&serde_json::Value>) -> String {
    match v {
        None | Some(serde_json::Value::Null) => "unknown".to_owned(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}
