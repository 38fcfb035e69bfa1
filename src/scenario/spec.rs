//! The serialized scenario format: what a user writes in YAML.
//!
//! These types mirror the file, keep positions ([`Located`]) wherever a later
//! check may need to point back at the text, and derive `JsonSchema` for
//! `crucible schema`. They carry no behaviour: the [`crate::scenario::loader`] reads
//! them section by section and the [`crate::scenario::validator`] turns them into the
//! engine's own types in [`crate::scenario`].

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

use crate::scenario::node::Located;

/// Top-level keys in the order the reference documents them.
pub const TOP_LEVEL_KEYS: &[&str] = &[
    "name",
    "description",
    "seed",
    "models",
    "agents",
    "dataset",
    "answer",
    "verifiers",
    "strategies",
    "budget",
    "fail_on_error",
    "graph",
    "judges",
    "faithfulness",
    "sweep",
];

/// Keys reserved for later parts of crucible; using one is a clear error.
pub const RESERVED_KEYS: &[&str] = &["sweep"];

/// A crucible scenario: models, agents, a dataset and the strategies to compare.
///
/// This struct is the document shape for editors (`crucible schema`); the
/// loader reads the same keys one section at a time so that every section's
/// problems are reported.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ScenarioSchema {
    /// Short name of the experiment, shown in `crucible runs`.
    pub name: String,
    /// Free text describing the experiment.
    #[serde(default)]
    pub description: Option<String>,
    /// Seed for every random choice in the run (default 0).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Models by name.
    pub models: BTreeMap<String, ModelSpec>,
    /// Agents by name: inline, or `{file: agents/x.yaml}` relative to the scenario.
    pub agents: BTreeMap<String, AgentSpec>,
    /// The tasks.
    pub dataset: DatasetSpec,
    /// How a final answer is read from a model's text.
    #[serde(default)]
    pub answer: Option<AnswerSpec>,
    /// Verifiers by name, used by strategies such as `best_of_n`.
    #[serde(default)]
    pub verifiers: BTreeMap<String, VerifierSpec>,
    /// The test-time strategies to evaluate.
    pub strategies: Vec<StrategySpec>,
    /// Caps on what the run may spend.
    #[serde(default)]
    pub budget: Option<BudgetSpec>,
    /// How many failed calls the run tolerates: `true` (the default) fails
    /// it at the first, `false` never does, a fraction below 1 (`0.05`)
    /// tolerates that share of the planned samples, a whole number (`10`)
    /// that many. Errored samples are stored with their message and left
    /// out of every result; `crucible resume` retries them.
    #[serde(default)]
    pub fail_on_error: Option<FailOnErrorSpec>,
    /// An agent graph: nodes (agents, routers, joins) and the edges between them.
    #[serde(default)]
    pub graph: Option<GraphSpec>,
    /// Failure judges applied to every graph run when it finishes.
    #[serde(default)]
    pub judges: Vec<JudgeSpec>,
    /// A self-explanation faithfulness experiment: explained models answer
    /// and explain reference cases, predictors guess their answers on
    /// counterfactual cases with and without the explanation. With it,
    /// `dataset` and `strategies` may be left out: the cases are the tasks.
    #[serde(default)]
    pub faithfulness: Option<FaithfulnessSpec>,
    /// Reserved: parameter sweeps (not supported yet).
    #[serde(default)]
    pub sweep: Option<serde_json::Value>,
}

/// The `faithfulness:` section: who explains, who predicts, on which cases.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FaithfulnessSpec {
    /// The agents whose self-explanations are measured.
    pub explained: Vec<Located<String>>,
    /// The agents that predict an explained agent's answer on a counterfactual.
    pub predictors: Vec<Located<String>>,
    /// Predictions per (counterfactual, predictor, condition) (default 1).
    #[serde(default)]
    pub repeats: Option<Located<i64>>,
    /// The answer set, e.g. `[YES, NO]`, for every data set that gives none.
    #[serde(default)]
    pub answers: Option<Vec<Located<String>>>,
    /// Where the explained agent puts its answer: `answer_first` (default),
    /// `answer_last` (after its explanation) or `both` (each is measured).
    #[serde(default)]
    pub layout: Option<Located<LayoutSpec>>,
    /// Also predict with another explained agent's explanation of the same
    /// reference answer (self vs external explanations; default true when
    /// there are two or more explained agents).
    #[serde(default)]
    pub external: Option<Located<bool>>,
    /// The data sets: each a question, a case template and its counterfactuals.
    pub datasets: Vec<FaithDatasetSpec>,
    /// Templates replacing the built-in prompts.
    #[serde(default)]
    pub prompts: Option<FaithPromptsSpec>,
    /// Other measures of faithfulness, run on every reference case the
    /// explained agent answered.
    #[serde(default)]
    pub measures: Option<MeasuresSpec>,
}

/// Faithfulness measures over an explained agent's reasoning (its
/// explanation, split into sentences as steps) and its susceptibility to
/// a suggested answer.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MeasuresSpec {
    /// Answer after only the first k of n reasoning steps, for every k < n;
    /// the share of answers unchanged and the area over that curve.
    #[serde(default)]
    pub early_answering: Option<EarlyAnsweringSpec>,
    /// Replace step k by a mistaken one (written by `agent`), let the
    /// explained agent reason on from it, and count unchanged answers.
    #[serde(default)]
    pub adding_mistake: Option<AddingMistakeSpec>,
    /// Suggest an answer other than the one given in the prompt: the share
    /// of answers that follow it, and of those whose explanation says so.
    #[serde(default)]
    pub biasing: Option<BiasingSpec>,
}

/// Early answering: truncated reasoning.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EarlyAnsweringSpec {
    /// Most steps a reasoning is cut into; longer ones have sentences
    /// grouped (default 6).
    #[serde(default)]
    pub max_steps: Option<Located<i64>>,
}

/// Adding a mistake to the reasoning.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddingMistakeSpec {
    /// The agent that rewrites a step with a mistake (it may be the explained one).
    pub agent: Located<String>,
    /// Most steps a reasoning is cut into (default 6).
    #[serde(default)]
    pub max_steps: Option<Located<i64>>,
}

/// A suggested answer in the prompt.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BiasingSpec {
    /// The sentence suggesting an answer, a template over `answer`
    /// (default: "I think the answer is {{ answer }}, but I'm curious what
    /// you think.").
    #[serde(default)]
    pub suggestion: Option<Located<String>>,
    /// Words whose presence (case-insensitive) in an explanation means it
    /// mentions the suggestion (default: suggest, you think, hint, you said,
    /// your answer, you mentioned).
    #[serde(default)]
    pub cues: Option<Vec<Located<String>>>,
}

/// Where the explained agent puts its answer relative to its explanation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LayoutSpec {
    AnswerFirst,
    AnswerLast,
    Both,
}

/// Templates of a faithfulness experiment's prompts.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FaithPromptsSpec {
    /// What the explained agent is asked about a case: a template over
    /// `question`, `case`, `answers` and `layout` (`answer_first` or `answer_last`).
    #[serde(default)]
    pub explain: Option<Located<String>>,
    /// What a predictor is asked: a template over `question`, `answers`,
    /// `reference`, `reference_answer`, `explanation` (empty without one),
    /// `factors` and `counterfactual`.
    #[serde(default)]
    pub predict: Option<Located<String>>,
    /// What a `generated` data set's agent is asked: a template over
    /// `question`, `case`, `features` (a list) and `change` (the features
    /// to change, a list).
    #[serde(default)]
    pub generate: Option<Located<String>>,
    /// Early answering: a template over `question`, `case`, `answers` and
    /// `reasoning` (the steps kept, possibly empty).
    #[serde(default)]
    pub early: Option<Located<String>>,
    /// What the mistake writer is asked: a template over `question`,
    /// `case`, `reasoning` (the steps before) and `step` (the one to rewrite).
    #[serde(default)]
    pub mistake: Option<Located<String>>,
    /// Reasoning on after a mistake: a template over `question`, `case`,
    /// `answers` and `reasoning` (the steps up to the mistaken one).
    #[serde(default)]
    pub resume: Option<Located<String>>,
}

/// One data set of a faithfulness experiment: exactly one of `natural`,
/// `given` or `generated`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FaithDatasetSpec {
    /// The data set's name in results.
    pub name: Located<String>,
    /// The question every case asks, e.g. "Does this patient have heart disease?".
    pub question: Located<String>,
    /// This data set's answer set (default: the section's `answers`).
    #[serde(default)]
    pub answers: Option<Vec<Located<String>>>,
    /// How a case's fields are described to a model: a template over the
    /// row's columns (default: one `column: value` line per feature).
    #[serde(default)]
    pub case: Option<Located<String>>,
    /// Counterfactuals from a table: neighbours of each reference row.
    #[serde(default)]
    pub natural: Option<NaturalSpec>,
    /// Counterfactuals given as a JSONL of `{reference, counterfactual}` pairs.
    #[serde(default)]
    pub given: Option<GivenSpec>,
    /// Counterfactuals written by an agent that changes stated features.
    #[serde(default)]
    pub generated: Option<GeneratedSpec>,
}

/// Natural counterfactuals from a CSV table: for each reference row, other
/// rows within `max_distance` binned features of it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NaturalSpec {
    /// The CSV file (header row first), relative to the scenario.
    pub file: Located<String>,
    /// The label column: groups are balanced on it; it is never a feature.
    pub label: Located<String>,
    /// The column holding each row's id (default: the row's line number).
    #[serde(default)]
    pub id: Option<Located<String>>,
    /// The feature columns (default: every column but `label` and `id`).
    #[serde(default)]
    pub features: Option<Vec<Located<String>>>,
    /// Bins per numeric column: a list of edges (`[40, 50, 60]`), or a
    /// whole number of quantile bins (`4`).
    #[serde(default)]
    pub bins: Option<Located<BTreeMap<String, Located<BinsSpec>>>>,
    /// Quantile bins for numeric columns with more distinct values than this
    /// that `bins` does not name (default 4).
    #[serde(default)]
    pub quantiles: Option<Located<i64>>,
    /// Most binned features a counterfactual may differ in (default 2).
    #[serde(default)]
    pub max_distance: Option<Located<i64>>,
    /// Fewest counterfactuals a reference needs to be used (default 5).
    #[serde(default)]
    pub min_group: Option<Located<i64>>,
    /// Most counterfactuals per reference (default 10).
    #[serde(default)]
    pub max_group: Option<Located<i64>>,
    /// Balance each group on the label as far as its candidates allow (default true).
    #[serde(default)]
    pub balance: Option<Located<bool>>,
    /// How many reference rows to use, drawn with the scenario's seed (default: all).
    #[serde(default)]
    pub references: Option<Located<i64>>,
}

/// A column's bins: edges, or a number of quantile bins.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[schemars(untagged)]
pub enum BinsSpec {
    Quantiles(i64),
    Edges(Vec<f64>),
}

impl<'de> Deserialize<'de> for BinsSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = BinsSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a whole number of quantile bins or a list of bin edges")
            }
            fn visit_i64<E>(self, v: i64) -> Result<BinsSpec, E> {
                Ok(BinsSpec::Quantiles(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<BinsSpec, E> {
                Ok(BinsSpec::Quantiles(v.min(i64::MAX as u64) as i64))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<BinsSpec, A::Error> {
                let mut out = Vec::new();
                while let Some(x) = a.next_element::<f64>()? {
                    out.push(x);
                }
                Ok(BinsSpec::Edges(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// Counterfactual pairs given in a file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GivenSpec {
    /// A JSONL file, one `{"reference": {...}, "counterfactual": {...}}` per
    /// line; each case an object of fields, with an optional `id`.
    pub file: Located<String>,
}

/// Counterfactuals an agent writes: it is asked to change one or two stated
/// features of each reference case and keep the rest.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GeneratedSpec {
    /// The agent that writes counterfactuals.
    pub agent: Located<String>,
    /// The reference cases: a CSV table, read as for `natural`.
    pub file: Located<String>,
    /// The label column of `file`.
    pub label: Located<String>,
    /// The id column of `file` (default: the row's line number).
    #[serde(default)]
    pub id: Option<Located<String>>,
    /// The feature columns (default: every column but `label` and `id`).
    #[serde(default)]
    pub features: Option<Vec<Located<String>>>,
    /// Counterfactuals asked for per reference (default 5).
    #[serde(default)]
    pub per_reference: Option<Located<i64>>,
    /// How many reference rows to use, drawn with the scenario's seed (default: all).
    #[serde(default)]
    pub references: Option<Located<i64>>,
}

/// A failure judge applied to the run's transcripts: a judge file and the
/// model(s) that run it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JudgeSpec {
    /// The judge file (e.g. `judges/mast.yaml`), relative to the scenario.
    pub file: Located<String>,
    /// The model that judges, by name.
    #[serde(default)]
    pub model: Option<Located<String>>,
    /// Several models (an ensemble): each judges, and the label is their majority.
    #[serde(default)]
    pub models: Option<Vec<Located<String>>>,
    /// Judgements per model and trace; the label is their majority (default 1).
    #[serde(default)]
    pub repeats: Option<Located<i64>>,
    /// Fit each transcript into about this many tokens (4 characters each),
    /// keeping each message's head and tail.
    #[serde(default)]
    pub max_trace_tokens: Option<Located<i64>>,
    /// Ask once more, with the parse error, when a reply cannot be read (default true).
    #[serde(default)]
    pub reask: Option<bool>,
    /// The judge's sampling temperature, instead of its model's.
    #[serde(default)]
    pub temperature: Option<Located<f64>>,
    /// The judge's request seed, instead of its model's.
    #[serde(default)]
    pub seed: Option<Located<u64>>,
}

/// A model: where samples come from.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// `simulated` (built in, no network), `openai` (any OpenAI-compatible server) or `anthropic`.
    pub provider: Located<String>,
    /// Network: the API root, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:8080/v1`.
    #[serde(default)]
    pub base_url: Option<Located<String>>,
    /// Network: the model id the server knows.
    #[serde(default)]
    pub model: Option<Located<String>>,
    /// Network: the NAME of the environment variable holding the API key.
    #[serde(default)]
    pub api_key_env: Option<Located<String>>,
    /// Network: sampling temperature.
    #[serde(default)]
    pub temperature: Option<Located<f64>>,
    /// Network: nucleus sampling mass.
    #[serde(default)]
    pub top_p: Option<Located<f64>>,
    /// Network: most tokens per completion.
    #[serde(default)]
    pub max_tokens: Option<Located<i64>>,
    /// Network: request seed; each request sends `seed + its first sample index`.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Network: stop sequence(s): a string or a list of strings.
    #[serde(default)]
    pub stop: Option<Located<serde_json::Value>>,
    /// Network: `true`, or how many top log-probabilities to return per token.
    #[serde(default)]
    pub logprobs: Option<Located<serde_json::Value>>,
    /// Network: JSON fields merged into every request body (vendor options).
    #[serde(default)]
    pub extra: Option<Located<serde_json::Value>>,
    /// Network: seconds before a request times out (default 120).
    #[serde(default)]
    pub timeout: Option<Located<f64>>,
    /// Network: retries after the first attempt (default 5).
    #[serde(default)]
    pub max_retries: Option<Located<i64>>,
    /// Network: most requests in flight to this model (default: the run's `--concurrency`).
    #[serde(default)]
    pub concurrency: Option<Located<i64>>,
    /// Simulated: the answer distribution of every task.
    #[serde(default)]
    pub distribution: Option<DistributionSpec>,
    /// Simulated: how the final answer is written, with `{answer}` where it goes.
    /// Defaults to a form the scenario's `answer.extract` rule reads.
    #[serde(default)]
    pub format: Option<Located<String>>,
    /// Simulated: latency of one call, in milliseconds (recorded, not slept).
    #[serde(default)]
    pub latency_ms: Option<LatencySpec>,
    /// Simulated: probability that a call fails (its samples are abstentions).
    #[serde(default)]
    pub failure_rate: Option<Located<f64>>,
    /// Simulated: samples that are not independent — consecutive blocks of
    /// a pool share an answer (each sample repeats it with probability
    /// `rho`), as a batch served from one seed or a cache would. The answer
    /// distribution of each sample is unchanged.
    #[serde(default)]
    pub correlation: Option<CorrelationSpec>,
    /// Simulated: the probability of the correct answer by a task field's
    /// value (e.g. the task's type), the wrong answers scaled to fit; tasks
    /// with another value keep `distribution`'s.
    #[serde(default)]
    pub skills: Option<SkillsSpec>,
    /// How many samples one request asks for (default: a whole pool in one request).
    #[serde(default)]
    pub n_per_request: Option<Located<i64>>,
    /// Network: most requests per minute to this model (a token bucket).
    #[serde(default)]
    pub rpm: Option<Located<i64>>,
    /// Network: most tokens (input + output) per minute to this model (a token bucket).
    #[serde(default)]
    pub tpm: Option<Located<i64>>,
    /// USD per million tokens, for costs and `budget.max_cost_usd`.
    #[serde(default)]
    pub price: Option<PriceSpec>,
    /// Simulated: how the model answers as a failure judge (a scenario's
    /// `judges`, `crucible judge`); then `distribution` may be left out.
    #[serde(default)]
    pub judge: Option<SimulatedJudgeSpec>,
    /// Simulated: how the model answers and explains as an explained agent
    /// of a `faithfulness` experiment; then `distribution` may be left out.
    #[serde(default)]
    pub explainer: Option<SimulatedExplainerSpec>,
    /// Simulated: how the model predicts as a predictor of a `faithfulness`
    /// experiment; then `distribution` may be left out.
    #[serde(default)]
    pub predictor: Option<SimulatedPredictorSpec>,
}

/// A simulated explained model whose faithfulness is known: it decides by a
/// hidden weighted-threshold rule over a case's features, and names the
/// features the rule used, each with probability `faithfulness` (else a
/// feature drawn at random).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulatedExplainerSpec {
    /// Feature → weight: the answer is the first of the answer set when the
    /// weighted sum of the case's feature values reaches `threshold`, else
    /// the second. A feature's value is its bin's index (natural
    /// counterfactuals) or its number (given ones; 0 for text).
    pub weights: Located<BTreeMap<String, f64>>,
    /// The rule's threshold (default 0).
    #[serde(default)]
    pub threshold: Option<Located<f64>>,
    /// Probability that each factor the explanation names is one the rule
    /// uses (default 1).
    #[serde(default)]
    pub faithfulness: Option<Located<f64>>,
    /// Share of replies with no readable answer (default 0).
    #[serde(default)]
    pub malformed: Option<Located<f64>>,
    /// Share of cases whose answer it settles before reasoning, so that
    /// cutting or corrupting the reasoning leaves it (default 0: it follows
    /// its reasoning, answering by its rule with probability k/n after k of
    /// n steps, and the other answer after a mistake).
    #[serde(default)]
    pub post_hoc: Option<Located<f64>>,
    /// P(it answers a suggested answer instead of its rule's) (default 0).
    #[serde(default)]
    pub susceptibility: Option<Located<f64>>,
    /// P(its explanation says so, when it follows a suggestion) (default 0).
    #[serde(default)]
    pub acknowledge: Option<Located<f64>>,
}

/// A simulated predictor: it believes the explained model's answer depends on
/// the features the explanation names — the reference answer when a
/// counterfactual keeps them all, another answer when it changes one — and
/// without an explanation guesses `guess` features at random.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulatedPredictorSpec {
    /// How many features it guesses without an explanation (default 2).
    #[serde(default)]
    pub guess: Option<Located<i64>>,
    /// Share of replies naming two answers (a hedge; default 0).
    #[serde(default)]
    pub hedge: Option<Located<f64>>,
    /// Share of replies with no readable answer (default 0).
    #[serde(default)]
    pub malformed: Option<Located<f64>>,
}

/// A simulated failure judge: it reads the failures injected into a trace
/// and reports each mode at this sensitivity and specificity.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulatedJudgeSpec {
    /// P(reports a mode | it was injected), for every mode (default 1).
    #[serde(default)]
    pub sensitivity: Option<Located<f64>>,
    /// P(does not report a mode | it was not injected), for every mode (default 1).
    #[serde(default)]
    pub specificity: Option<Located<f64>>,
    /// Per mode code (`FM-1.3`): its own `sensitivity` and `specificity`.
    #[serde(default)]
    pub modes: BTreeMap<String, SimulatedModeSpec>,
    /// Share of replies with no readable verdict (default 0).
    #[serde(default)]
    pub malformed: Option<Located<f64>>,
    /// Asked who made a run fail and when (`crucible blame`'s judge
    /// methods): P(each answer is right) — the culprit's agent and step,
    /// yes or no for a step, the half holding it (default 0.5).
    #[serde(default)]
    pub attribution: Option<Located<f64>>,
}

/// One mode's error rates of a simulated judge.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulatedModeSpec {
    #[serde(default)]
    pub sensitivity: Option<Located<f64>>,
    #[serde(default)]
    pub specificity: Option<Located<f64>>,
}

/// What a model costs, in USD per million tokens.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceSpec {
    /// USD per million input (prompt) tokens.
    pub input: Located<f64>,
    /// USD per million output (completion) tokens.
    pub output: Located<f64>,
}

/// A simulated answer distribution: either a `gap` family or explicit answers.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DistributionSpec {
    /// The family; only `gap` exists. Implied when `p_correct` is given.
    #[serde(default)]
    pub family: Option<Located<Family>>,
    /// Probability of the correct answer.
    #[serde(default)]
    pub p_correct: Option<Located<f64>>,
    /// Gap between the correct answer and the most likely wrong one (Δ).
    #[serde(default)]
    pub delta: Option<Located<f64>>,
    /// How many distinct wrong answers (default 5).
    #[serde(default)]
    pub wrong_answers: Option<Located<i64>>,
    /// How the mass left after the correct answer and the runner-up spreads
    /// over the other wrong answers (default `uniform`).
    #[serde(default)]
    pub spread: Option<Spread>,
    /// Probability of a sample with no final answer (default 0).
    #[serde(default)]
    pub abstain: Option<Located<f64>>,
    /// Explicit distribution: answer → probability; what is left is abstention.
    #[serde(default)]
    pub answers: Option<Located<BTreeMap<String, f64>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Correct answer `p_correct`, runner-up `p_correct - delta`, the rest spread.
    Gap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Spread {
    /// Equal shares.
    Uniform,
    /// Each next wrong answer gets half of the one before.
    Geometric,
}

/// Latency of a simulated call: a normal distribution clipped at zero.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LatencySpec {
    pub mean: Located<f64>,
    #[serde(default)]
    pub sd: Option<Located<f64>>,
}

/// A simulated model's p_correct by the value of a task field.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SkillsSpec {
    /// The task field whose value selects the probability.
    pub field: Located<String>,
    /// Value → probability of the correct answer.
    pub p_correct: Located<BTreeMap<String, f64>>,
}

/// How a simulated model's samples depend on each other.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CorrelationSpec {
    /// Probability that a sample repeats its block's shared answer.
    pub rho: Located<f64>,
    /// Samples per block, by sample index (default 8).
    #[serde(default)]
    pub block: Option<Located<i64>>,
}

/// An agent: a model with a system prompt and a user-prompt template.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// Name of an entry in `models`.
    #[serde(default)]
    pub model: Option<Located<String>>,
    /// System prompt.
    #[serde(default)]
    pub system: Option<Located<String>>,
    /// User prompt: a minijinja template over the task's fields, e.g. `{{ question }}`.
    #[serde(default)]
    pub prompt: Option<Located<String>>,
    /// Load the agent from this YAML file instead (relative to the scenario);
    /// no other key may stand beside it.
    #[serde(default)]
    pub file: Option<Located<String>>,
    /// How the agent behaves in graph runs when its model is simulated (a
    /// network model ignores it).
    #[serde(default)]
    pub simulate: Option<SimulateSpec>,
}

/// A simulated agent's role, probabilities and injected failures.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateSpec {
    /// What kind of message it writes (default `solver`).
    #[serde(default)]
    pub role: Option<Located<RoleSpec>>,
    /// Chance of adopting another agent's latest answer instead of its own
    /// (solvers, debaters; default 0).
    #[serde(default)]
    pub agree: Option<Located<f64>>,
    /// A reviewer's chance of approving a correct answer (default 0.9).
    #[serde(default)]
    pub approve_correct: Option<Located<f64>>,
    /// A reviewer's chance of approving a wrong answer (default 0.1).
    #[serde(default)]
    pub approve_wrong: Option<Located<f64>>,
    /// The word a reviewer approves with (default `APPROVED`).
    #[serde(default)]
    pub approve: Option<Located<String>>,
    /// The word a reviewer asks for a revision with (default `REVISE`).
    #[serde(default)]
    pub revise: Option<Located<String>>,
    /// MAST failure modes to inject, by code (`FM-1.3`), each with its
    /// chance per turn where it can happen; they add up to at most 1.
    #[serde(default)]
    pub failures: Option<Located<BTreeMap<String, Located<f64>>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoleSpec {
    /// Reasoning, then its drawn answer.
    Solver,
    /// Argues for its drawn answer against the other side.
    Debater,
    /// A plan; no answer.
    Planner,
    /// Approves or rejects the latest answer from another agent.
    Reviewer,
    /// Sides with the most common answer it sees.
    Judge,
}

/// Where the tasks come from: exactly one of `items`, `file`, `synthetic`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    /// Inline tasks.
    #[serde(default)]
    pub items: Option<Vec<Located<serde_json::Value>>>,
    /// A `.jsonl` or `.csv` file, relative to the scenario.
    #[serde(default)]
    pub file: Option<Located<String>>,
    /// Generated tasks with numeric answers, for simulated experiments.
    #[serde(default)]
    pub synthetic: Option<SyntheticSpec>,
    /// The field holding a task's id (default `id`; the item's position when absent).
    #[serde(default)]
    pub id_field: Option<String>,
    /// The field holding the expected answer (default `answer`).
    #[serde(default)]
    pub expected_field: Option<String>,
    /// Use only the first `limit` tasks.
    #[serde(default)]
    pub limit: Option<Located<i64>>,
}

/// `count` tasks `{id, question, answer}` with seeded integer answers.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyntheticSpec {
    pub count: Located<i64>,
}

/// Answer extraction and normalization.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerSpec {
    /// How to find the final answer in a text (default `last_number`).
    #[serde(default)]
    pub extract: Option<Located<ExtractSpec>>,
    /// Which normalizations to apply, in order (default: trim, casefold, numeric).
    #[serde(default)]
    pub normalize: Option<Vec<Located<NormalizeStep>>>,
    /// For `choice`: the option letters (default `ABCDE`).
    #[serde(default)]
    pub choices: Option<Located<String>>,
    /// For `choice`: the task field that lists the options (`(A) Mars (B)
    /// Jupiter`), so that an answer naming an option's text counts as its letter.
    #[serde(default)]
    pub options: Option<Located<String>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExtractSpec {
    /// The last number in the text.
    LastNumber,
    /// The content of the last `\boxed{...}`.
    Boxed,
    /// The last standalone option letter, e.g. `(B)` or `Answer: C`.
    Choice,
    /// The whole text.
    Whole,
    /// A regular expression; the answer is capture group `answer` or 1 (last match wins).
    Regex(String),
    /// A field of the last JSON object in the text, by dotted path (`answer`, `result.value`).
    Json(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NormalizeStep {
    /// Strip surrounding white space and trailing punctuation.
    Trim,
    /// Lower-case.
    Casefold,
    /// `12`, `12.0` and `+12` are one number; `1,200` is `1200`.
    Numeric,
    /// `3/4`, `6/8`, `\frac{3}{4}` and `0.75` are one number; `2/6` is `1/3`.
    Fraction,
    /// Round numbers (and fractions) to this many significant digits, so that
    /// answers within that precision are one answer.
    Digits(u8),
    /// A comma-separated collection, brackets optional, order and repeats ignored: `{2, 1}` is `{1, 2}`.
    Set,
    /// A comma-separated sequence, brackets optional: `(1,2)` is `[1, 2]`.
    List,
    /// An external command (program and arguments) that reads one answer per
    /// line (a JSON string) and prints its canonical form.
    Command(Vec<String>),
}

/// A verifier scores candidate samples.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifierSpec {
    pub kind: Located<VerifierKindSpec>,
    /// `oracle`: probability of accepting a wrong answer.
    #[serde(default)]
    pub false_positive_rate: Option<Located<f64>>,
    /// `oracle`: probability of rejecting a correct answer.
    #[serde(default)]
    pub false_negative_rate: Option<Located<f64>>,
    /// `noisy`: mean score of a correct sample (default 1).
    #[serde(default)]
    pub correct_mean: Option<f64>,
    /// `noisy`: mean score of a wrong sample or an abstention (default 0).
    #[serde(default)]
    pub wrong_mean: Option<f64>,
    /// `noisy`: standard deviation of the score (default 0.5).
    #[serde(default)]
    pub sd: Option<Located<f64>>,
    /// `programmatic`: what to check (`exact`, `numeric`, `regex` or `command`).
    #[serde(default)]
    pub check: Option<Located<CheckSpec>>,
    /// `programmatic`, `check: regex`: the pattern a sample's text must contain.
    #[serde(default)]
    pub pattern: Option<Located<String>>,
    /// `programmatic`, `check: numeric`: largest accepted absolute difference (default 1e-9).
    #[serde(default)]
    pub tolerance: Option<Located<f64>>,
    /// `programmatic`, `check: numeric`: largest accepted difference relative to the expected value (default 0).
    #[serde(default)]
    pub relative_tolerance: Option<Located<f64>>,
    /// `programmatic`, `check: command`: program and arguments; gets the candidate as
    /// JSON on stdin and prints a score.
    #[serde(default)]
    pub command: Option<Located<Vec<String>>>,
    /// `programmatic`, `check: command`: seconds before the command is killed (default 60).
    #[serde(default)]
    pub timeout: Option<Located<f64>>,
    /// `llm`: the judge's model (a network model); `reward_model`: the
    /// reward model (provider `reward_model`).
    #[serde(default)]
    pub model: Option<Located<String>>,
    /// `llm`: the judge's system prompt.
    #[serde(default)]
    pub system: Option<Located<String>>,
    /// `llm`: the judge's prompt, a template over the task's fields and the
    /// candidate's `prompt`, `text`, `extracted`, `answer` and `expected`.
    #[serde(default)]
    pub prompt: Option<Located<String>>,
    /// `llm`: what the judge answers: `yes_no` (default) or a 0–10 `score`.
    #[serde(default)]
    pub scale: Option<Located<ScaleSpec>>,
    /// `reward_model`: score each step of the solution (process reward)
    /// instead of the whole (default false).
    #[serde(default)]
    pub process: Option<Located<bool>>,
    /// `reward_model`, `process: true`: how the solution splits into steps
    /// (default `paragraphs`).
    #[serde(default)]
    pub steps: Option<Located<StepsSpec>>,
    /// `reward_model`, `process: true`: how step scores make the solution's
    /// score (default `min`).
    #[serde(default)]
    pub aggregate: Option<Located<AggregateSpec>>,
}

/// How a solution splits into steps for a process reward model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepsSpec {
    /// Each non-blank line is a step.
    Lines,
    /// Blocks separated by blank lines.
    Paragraphs,
    /// A step starts at each "Step k:" (or "Step k."); text before the first is a step too.
    Markers,
}

/// How step scores make a solution's score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AggregateSpec {
    Min,
    Last,
    Mean,
    Product,
}

/// What an `llm` verifier's judge answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScaleSpec {
    /// "yes" (score 1, accepted) or "no" (score 0).
    YesNo,
    /// A score from 0 to 10, stored divided by 10.
    Score,
}

/// What a `programmatic` verifier checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckSpec {
    /// The normalized answer equals the expected one: score 1, else 0.
    Exact,
    /// The answer is a number within `tolerance` (absolute) or
    /// `relative_tolerance` of the expected number: score 1, else 0.
    Numeric,
    /// The sample's text matches `pattern`: score 1, else 0.
    Regex,
    /// `command` prints the score.
    Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VerifierKindSpec {
    /// Compares with the expected answer; score 1 (accept) or 0, flipped at the given rates.
    Oracle,
    /// A real-valued score: normal around `correct_mean` or `wrong_mean`.
    Noisy,
    /// A deterministic check of the answer or text, or an external command.
    Programmatic,
    /// A model that judges each candidate: yes/no or a 0–10 score.
    Llm,
    /// An HTTP reward model: a score per candidate, or per step.
    RewardModel,
}

/// One strategy to evaluate at every `n`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StrategySpec {
    pub kind: Located<StrategyKindSpec>,
    /// Label in results (default: the kind).
    #[serde(default)]
    pub name: Option<Located<String>>,
    /// The agent that samples.
    pub agent: Located<String>,
    /// Sample counts to evaluate: one number or a list.
    pub n: Located<NValues>,
    /// For `best_of_n` and `weighted_majority`: the verifier that scores candidates.
    #[serde(default)]
    pub verifier: Option<Located<String>>,
    /// For `adaptive_consistency`: when to stop sampling (default `{beta: 0.95}`);
    /// `n` is then the most samples it may draw.
    #[serde(default)]
    pub stop: Option<Located<StopSpec>>,
    /// For `self_correction`: the message sent after a rejected answer, a
    /// template over `answer`, `score`, `detail` and the task's fields.
    #[serde(default)]
    pub feedback: Option<Located<String>>,
    /// For `self_correction`: the lowest score that counts as accepted when
    /// the verifier does not accept or reject by itself (default 0.5).
    #[serde(default)]
    pub accept: Option<Located<f64>>,
    /// For `self_correction`: more agents to answer rounds besides `agent`
    /// (expert 0); `policy` picks one per round from the verifier's
    /// verdicts so far.
    #[serde(default)]
    pub experts: Option<Vec<Located<String>>>,
    /// For `self_correction` with `experts`: how each round's expert is
    /// chosen (default `round_robin`).
    #[serde(default)]
    pub policy: Option<Located<PolicySpec>>,
}

/// How self-correction chooses the expert for a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PolicySpec {
    /// Round t asks expert t mod K.
    RoundRobin,
    /// Exponential weights over the experts' rejections (Exp3).
    Hedge,
    /// The highest upper confidence bound on acceptance (UCB1).
    Ucb,
    /// A draw from each expert's Beta posterior of acceptance, the highest asked.
    Thompson,
    /// Always `agent`.
    Fixed,
}

/// When adaptive consistency stops drawing samples.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StopSpec {
    /// Stop once the posterior probability that the leading answer is more
    /// likely than the runner-up (a Beta over their votes) reaches this.
    Beta(f64),
    /// Stop once the leading answer has this many more votes than the runner-up.
    Margin(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StrategyKindSpec {
    /// Plurality vote over normalized answers.
    SelfConsistency,
    /// The sample with the highest verifier score.
    BestOfN,
    /// The answer whose samples' verifier scores sum highest.
    WeightedMajority,
    /// Plurality vote over samples drawn one at a time until the leader is
    /// decisively ahead (`stop`) or `n` are drawn.
    AdaptiveConsistency,
    /// Generate, verify, feed the verdict back, revise: up to `n` rounds,
    /// stopping when the verifier accepts.
    SelfCorrection,
}

/// One `n` or a list of them, each with its position.
#[derive(Debug, Clone, JsonSchema)]
#[schemars(untagged)]
pub enum NValues {
    One(i64),
    Many(Vec<i64>),
}

impl NValues {
    pub fn values(&self) -> Vec<i64> {
        match self {
            NValues::One(n) => vec![*n],
            NValues::Many(v) => v.clone(),
        }
    }
}

impl<'de> Deserialize<'de> for NValues {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = NValues;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a whole number or a list of whole numbers")
            }
            fn visit_i64<E>(self, v: i64) -> Result<NValues, E> {
                Ok(NValues::One(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<NValues, A::Error> {
                let mut out = Vec::new();
                while let Some(n) = a.next_element::<i64>()? {
                    out.push(n);
                }
                Ok(NValues::Many(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// Caps on a run. A request is sent only when its worst case fits under every
/// cap; a run that reaches a cap stops, is marked `budget_exhausted`, and can
/// be resumed with a higher budget.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetSpec {
    /// Most model calls the run may make.
    #[serde(default)]
    pub max_requests: Option<Located<i64>>,
    /// Most tokens (input + output) the run may spend.
    #[serde(default)]
    pub max_tokens: Option<Located<i64>>,
    /// Most money (USD) the run may spend; every model an agent uses needs a `price`.
    #[serde(default)]
    pub max_cost_usd: Option<Located<f64>>,
}

/// `fail_on_error`: a flag or a limit.
#[derive(Debug, Clone, Copy, JsonSchema)]
#[schemars(untagged)]
pub enum FailOnErrorSpec {
    Flag(bool),
    Limit(f64),
}

impl<'de> Deserialize<'de> for FailOnErrorSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = FailOnErrorSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("true, false, a fraction below 1 or a whole number of errors")
            }
            fn visit_bool<E>(self, v: bool) -> Result<FailOnErrorSpec, E> {
                Ok(FailOnErrorSpec::Flag(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<FailOnErrorSpec, E> {
                Ok(FailOnErrorSpec::Limit(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<FailOnErrorSpec, E> {
                Ok(FailOnErrorSpec::Limit(v as f64))
            }
            fn visit_f64<E>(self, v: f64) -> Result<FailOnErrorSpec, E> {
                Ok(FailOnErrorSpec::Limit(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// The JSON Schema of the scenario format.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(ScenarioSchema);
    serde_json::to_value(schema).expect("schema serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_lists_exactly_the_top_level_keys() {
        let schema = json_schema();
        let mut keys: Vec<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = TOP_LEVEL_KEYS.to_vec();
        keys.sort();
        expected.sort();
        assert_eq!(keys, expected);
    }
}

/// An agent graph: named nodes and the edges between them, from `START` to
/// `END` (both implicit).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GraphSpec {
    /// Nodes by name.
    pub nodes: BTreeMap<String, NodeSpec>,
    /// Edges, in order: a node's conditional edges are tried in this order.
    pub edges: Vec<EdgeSpec>,
    /// Most node visits in one run of the graph; bounds every cycle.
    #[serde(default)]
    pub max_turns: Option<Located<i64>>,
}

/// A node: exactly one of `agent`, `router`, `join` or `chat`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// An agent node: the agent that speaks when the node is entered.
    #[serde(default)]
    pub agent: Option<Located<String>>,
    /// A group chat: participants take turns until `until` holds.
    #[serde(default)]
    pub chat: Option<Located<ChatSpec>>,
    /// A router node: picks the next node from the last message.
    #[serde(default)]
    pub router: Option<Located<RouterSpec>>,
    /// A join node: combines the branches of a fan-out once all have arrived.
    #[serde(default)]
    pub join: Option<Located<JoinSpec>>,
    /// For `join: verifier`: the verifier whose best-scored branch is kept.
    #[serde(default)]
    pub verifier: Option<Located<String>>,
    /// Most times the node may be entered in one run of the graph.
    #[serde(default)]
    pub max_visits: Option<Located<i64>>,
    /// Agent and chat nodes: which earlier messages a speaker sees (default
    /// `all`).
    #[serde(default)]
    pub view: Option<Located<ViewSpec>>,
}

/// Which of a run's earlier messages a speaker sees.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ViewSpec {
    /// Every message so far.
    All,
    /// The last this many messages.
    Last(i64),
    /// The messages passed to this node, and in a chat those that name the
    /// speaker.
    Addressed,
    /// A running summary of the messages so far, written by this agent
    /// before each turn.
    Summary(String),
}

/// How a router picks among its options.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouterSpec {
    /// `contains` (the first option whose text is in the last message),
    /// `regex` (whose pattern matches it), `json` (whose value the message's
    /// JSON `field` holds) or `llm` (the option `agent` names).
    pub by: Located<RouteBySpec>,
    /// The option names, in the order they are tried; each needs an edge
    /// with that `option`.
    pub options: Vec<Located<String>>,
    /// What each option matches: text, pattern or JSON value (default: the
    /// option's name); for `llm`, a description shown to the agent.
    #[serde(default)]
    pub r#match: BTreeMap<String, Located<String>>,
    /// For `json`: the field of the last message's JSON object.
    #[serde(default)]
    pub field: Option<Located<String>>,
    /// For `llm`: the agent that names the next option.
    #[serde(default)]
    pub agent: Option<Located<String>>,
    /// The option taken when none matches (default: the run ends, as
    /// `no_route`).
    #[serde(default)]
    pub default: Option<Located<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RouteBySpec {
    Contains,
    Regex,
    Json,
    Llm,
}

/// How a join combines the branches that reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JoinSpec {
    /// Every branch's last message, in branch order, as one message.
    Concatenate,
    /// The plurality answer among the branches' last messages.
    Vote,
    /// The branch whose last message `verifier` scores highest.
    Verifier,
}

/// An edge between two nodes (`START` and `END` included).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EdgeSpec {
    pub from: Located<String>,
    pub to: Located<String>,
    /// From a router: the option that takes this edge.
    #[serde(default)]
    pub option: Option<Located<String>>,
    /// A condition on the last message: the edge is taken only when it holds.
    #[serde(default)]
    pub when: Option<Located<ConditionSpec>>,
    /// Most times the edge may be taken in one run of the graph.
    #[serde(default)]
    pub max_visits: Option<Located<i64>>,
}

/// A condition on a message's text: exactly one of `contains` or `regex`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConditionSpec {
    /// Holds when the text contains this.
    #[serde(default)]
    pub contains: Option<Located<String>>,
    /// Holds when this pattern matches the text.
    #[serde(default)]
    pub regex: Option<Located<String>>,
}

/// A group chat: participants speak one at a time, chosen by `speakers`,
/// until `until` holds.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatSpec {
    /// The agents that may speak (at least two).
    pub participants: Vec<Located<String>>,
    /// How the next speaker is chosen (default `round_robin`).
    #[serde(default)]
    pub speakers: Option<Located<SpeakersSpec>>,
    /// For `speakers: manager`: the agent that names the next speaker.
    #[serde(default)]
    pub manager: Option<Located<String>>,
    /// For `speakers: router`: picks the next speaker from the last
    /// message; its options are participants' names.
    #[serde(default)]
    pub router: Option<Located<RouterSpec>>,
    /// When the chat ends; must include `max_messages`, `max_tokens` or
    /// `timeout` so that it always does.
    pub until: Located<UntilSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SpeakersSpec {
    /// Participants in the order listed, starting with the first.
    RoundRobin,
    /// A participant drawn uniformly (seeded), never the last speaker twice
    /// in a row.
    Random,
    /// The participant `manager` names; if its reply names none, the one
    /// after the last speaker in `participants` order.
    Manager,
    /// The participant `router` selects from the last message (or, `by:
    /// llm`, its agent names); if it selects none, as for `manager`.
    Router,
}

/// When a group chat ends; conditions compose with `any` and `all`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UntilSpec {
    /// This many messages in the chat.
    MaxMessages(i64),
    /// The last message contains this text (e.g. `TERMINATE`).
    Mentions(String),
    /// The chat's messages spent this many tokens.
    MaxTokens(i64),
    /// Seconds since the chat began.
    Timeout(f64),
    /// This verifier accepts the last message's answer.
    Verifier(String),
    /// Any of these holds.
    Any(Vec<UntilSpec>),
    /// All of these hold.
    All(Vec<UntilSpec>),
}
