//! What the engine hands the writer: one [`Record`] per finished piece of
//! work (a request's samples and their scores, a task's results and pools, a
//! graph run's messages and events).

use std::sync::Arc;

use super::blob_hash;

/// One sample to store.
#[derive(Debug, Clone)]
pub struct SampleRecord {
    pub sample_index: usize,
    pub text: String,
    pub extracted: Option<String>,
    pub normalized: Option<String>,
    pub correct: Option<bool>,
    pub output_tokens: u64,
    pub error: Option<String>,
    pub scores: Vec<ScoreRecord>,
    /// For a self-correction round: the strategy and the round (0-based).
    pub round: Option<(Arc<str>, usize)>,
}

/// One verifier's judgement of a sample, as stored in `scores`.
#[derive(Debug, Clone)]
pub struct ScoreRecord {
    pub verifier: Arc<str>,
    /// `None`: the verifier could not score the sample.
    pub value: Option<f64>,
    pub accepted: Option<bool>,
    pub detail: Option<String>,
}

/// A text stored once under its content hash.
#[derive(Debug, Clone)]
pub struct Blob {
    pub hash: Arc<str>,
    pub text: Arc<str>,
}

impl Blob {
    pub fn new(text: &str) -> Blob {
        Blob {
            hash: blob_hash(text).into(),
            text: text.into(),
        }
    }
}

/// One model call and the samples it produced.
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub task_index: usize,
    pub agent: Arc<str>,
    pub model: Arc<str>,
    pub provider: &'static str,
    pub first_sample: usize,
    pub n: usize,
    pub system: Blob,
    pub prompt: Blob,
    /// The request body (JSON) as sent, or its parameters for the simulated provider.
    pub request: String,
    /// HTTP exchanges behind the call, retries included.
    pub attempts: Vec<crate::model::provider::Attempt>,
    /// See [`crate::model::provider::call_key`].
    pub cache_key: String,
    pub response: Option<String>,
    pub error: Option<String>,
    pub latency_ms: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// At the model's price; `None` when it has none.
    pub cost_usd: Option<f64>,
    pub samples: Vec<SampleRecord>,
    /// What the call was for: an agent's samples, a verifier's or a
    /// failure judge's reply.
    pub role: CallRole,
    /// Served from a recording (replay, `run --cache`), not made: it cost
    /// nothing and counts in no budget.
    pub cached: bool,
}

/// What a call was for (`calls.role`).
#[derive(Debug, Clone, PartialEq)]
pub enum CallRole {
    /// An agent's call: its samples are in the record.
    Generator,
    /// A verifier's: the agent whose sample it judged (the sample is
    /// `first_sample`), and the reply.
    Verifier { subject: Arc<str>, reply: String },
    /// A failure judge's, on one trace: the reply.
    Judge { reply: String },
    /// An explained agent's answer and explanation of a case: the reply.
    Explainer { reply: String },
    /// A predictor's guess of an explained agent's answer: the reply.
    Predictor { reply: String },
    /// A writer's counterfactual or mistaken step: the reply.
    Writer { reply: String },
}

/// A verifier's score of a sample stored before (an `llm` verifier's, which
/// comes after the sample's own call).
#[derive(Debug, Clone)]
pub struct LateScore {
    pub task_index: usize,
    pub agent: Arc<str>,
    pub sample_index: usize,
    pub score: ScoreRecord,
    /// A process reward model's steps and their scores, in order.
    pub steps: Vec<(String, f64)>,
}

/// A strategy's outcome on one task, as stored in `task_results`.
#[derive(Debug, Clone)]
pub struct TaskResultRecord {
    pub strategy: Arc<str>,
    pub kind: &'static str,
    pub n: usize,
    pub task_index: usize,
    pub accuracy: f64,
    pub abstain: f64,
    pub tokens: f64,
    pub verifier_tokens: f64,
    pub samples: f64,
    pub selected: Option<String>,
    pub selected_correct: bool,
}

/// One agent's pool of one finished task, as `analyze` reads it (the
/// `pools` table).
#[derive(Debug, Clone, PartialEq)]
pub struct PoolRecord {
    pub agent: Arc<str>,
    pub task_index: usize,
    /// The pool's distinct normalized answers, in order of first appearance.
    pub answers: Vec<String>,
    /// Per sample, in sample order: index into `answers` (`None`: an
    /// abstention), correct, and generator tokens.
    pub samples: Vec<(Option<u32>, bool, u64)>,
    /// Each verifier that scored the pool, with a score per sample (NaN: not
    /// scored; −∞: the verifier could not score it).
    pub scores: Vec<(String, Vec<f64>)>,
    /// For each verifier of `scores`, the tokens its model spent on each
    /// sample (0 for one that calls no model); empty in rows written before
    /// schema version 10.
    pub verifier_tokens: Vec<Vec<u64>>,
}

/// The `classes` entry of an abstention in a stored pool.
pub(super) const ABSTAINED: u32 = u32::MAX;

/// What a finished task leaves: its strategies' outcomes and its pools,
/// written in one transaction.
#[derive(Debug, Clone)]
pub struct TaskRecord {
    pub results: Vec<TaskResultRecord>,
    pub pools: Vec<PoolRecord>,
}

/// One run of the graph on a task, as traced (`graph_runs`, `messages`,
/// `graph_events`).
#[derive(Debug, Clone)]
pub struct GraphRunRecord {
    pub task_index: usize,
    pub attempt: usize,
    pub ending: &'static str,
    pub turns: usize,
    /// Position of the run's answer among `messages`.
    pub final_message: Option<usize>,
    pub messages: Vec<MessageRecord>,
    /// (kind, node, detail) in order.
    pub events: Vec<(&'static str, Option<String>, Option<String>)>,
    /// The failures simulated agents acted out on purpose.
    pub injected: Vec<InjectedRecord>,
    /// Whether the run's agents inject failures: then `injected` is ground
    /// truth for every mode (absent unless injected), stored as labels.
    pub truth: bool,
}

/// A failure injected into one message of a graph run: ground truth for
/// failure judges (`injected_failures`).
#[derive(Debug, Clone)]
pub struct InjectedRecord {
    /// The message's position in the run.
    pub position: usize,
    pub turn: usize,
    pub agent: Arc<str>,
    pub node: String,
    pub mode: crate::scenario::failure::FailureMode,
}

#[derive(Debug, Clone)]
pub struct MessageRecord {
    pub turn: usize,
    pub node: String,
    pub sender: Option<Arc<str>>,
    pub reply_to: Option<usize>,
    pub receivers: Vec<String>,
    pub summary: bool,
    pub text: String,
}

/// One rater's label of one trace for one failure mode (`labels`).
#[derive(Debug, Clone, PartialEq)]
pub struct LabelRecord {
    pub task_index: usize,
    pub attempt: usize,
    pub rater: String,
    /// `None`: `original` has no 14-mode counterpart.
    pub mode: Option<crate::scenario::failure::FailureMode>,
    /// The label as its source named it.
    pub original: String,
    /// `None`: unknown.
    pub present: Option<bool>,
    pub agent: Option<String>,
    /// The message's position in the trace.
    pub turn: Option<u64>,
    pub quote: Option<String>,
    /// Whether `quote` is found in the cited message; `None` without a quote.
    pub evidence_verified: Option<bool>,
}

/// A failure judge's reading of one trace: the calls it made (one, or two
/// when re-asked), what was read, and the labels (`judgements`, `labels`).
#[derive(Debug, Clone)]
pub struct JudgementRecord {
    pub task_index: usize,
    pub attempt: usize,
    pub judge: Arc<str>,
    pub judge_version: Arc<str>,
    pub judge_hash: Arc<str>,
    pub model: Arc<str>,
    pub repeat: usize,
    /// Calls new to the trace (a call found in the run's trace is not
    /// written again); the judgement refers to the one with `read_key`.
    pub calls: Vec<CallRecord>,
    pub read_key: String,
    pub reasked: bool,
    /// `parsed`, `unparsed` or `error` (the call failed).
    pub status: &'static str,
    pub format: Option<&'static str>,
    pub error: Option<String>,
    pub summary: Option<String>,
    pub task_completed: Option<bool>,
    pub notes: Vec<String>,
    /// Messages shortened to fit, and characters cut from them.
    pub cut: (usize, usize),
    pub labels: Vec<LabelRecord>,
}

/// Who and when a failure is blamed on by a method (`attributions`), with
/// every player's credit behind it (`attribution_credits`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AttributionRecord {
    pub task_index: usize,
    pub attempt: usize,
    pub method: String,
    pub agent: Option<String>,
    pub turn: Option<usize>,
    pub reason: Option<String>,
    pub score: Option<f64>,
    pub stderr: Option<f64>,
    pub replays: Option<u64>,
    pub calls: u64,
    pub tokens: u64,
    pub cost_usd: f64,
    pub replay_run: Option<i64>,
    pub credits: Vec<CreditRecord>,
}

/// One player's credit: an agent's (`level` `agent`) or a turn's.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CreditRecord {
    pub level: &'static str,
    pub player: String,
    pub value: f64,
    pub stderr: Option<f64>,
}

/// A replayed graph run of `crucible blame`: which origin graph run, what
/// was intervened on, and how it came out (`counterfactuals`).
#[derive(Debug, Clone, PartialEq)]
pub struct CounterfactualRecord {
    pub task_index: usize,
    /// Its graph run in the replay run.
    pub attempt: usize,
    pub origin_attempt: usize,
    /// `agent` or `turn`.
    pub level: &'static str,
    /// The agents' names or the message positions intervened on, as JSON.
    pub coalition: String,
    pub replay: u32,
    /// `None`: the replay ended in an error.
    pub correct: Option<bool>,
    pub calls: u64,
    pub tokens: u64,
    pub cost_usd: f64,
}

/// An explained agent's reply to one case in one layout, as read
/// (`faith_answers`).
#[derive(Debug, Clone)]
pub struct FaithAnswerRecord {
    pub task_index: usize,
    pub agent: Arc<str>,
    pub layout: &'static str,
    /// The call, when new to the trace; the row refers to the call with
    /// `call_key` either way.
    pub call: Option<CallRecord>,
    pub call_key: String,
    /// `parsed`, `hedge`, `unparsed` or `error`.
    pub status: &'static str,
    pub answer: Option<String>,
    pub explanation: Option<String>,
    pub factors: Vec<String>,
    pub confidence: Option<f64>,
}

/// One prediction of an explained agent's answer on a counterfactual
/// (`faith_predictions`).
#[derive(Debug, Clone)]
pub struct FaithPredictionRecord {
    pub dataset: Arc<str>,
    pub reference: usize,
    pub counterfactual: usize,
    pub model: Arc<str>,
    pub layout: &'static str,
    pub predictor: Arc<str>,
    pub repeat: usize,
    pub condition: &'static str,
    pub explanation_from: Option<Arc<str>>,
    pub call: Option<CallRecord>,
    pub call_key: String,
    pub status: &'static str,
    pub prediction: Option<String>,
    pub actual: String,
    pub correct: Option<bool>,
}

/// A reference case's counterfactual (`faith_pairs`), stored with the run.
#[derive(Debug, Clone)]
pub struct FaithPairRecord {
    pub dataset: String,
    pub reference: usize,
    pub counterfactual: usize,
    pub source: &'static str,
    pub distance: Option<usize>,
    pub differing: Vec<String>,
}

/// A generated counterfactual as written and checked (`faith_generated`).
#[derive(Debug, Clone)]
pub struct FaithGeneratedRecord {
    pub pair: FaithPairRecord,
    pub agent: Arc<str>,
    pub call: Option<CallRecord>,
    pub call_key: String,
    /// `valid`, `extra_change`, `unchanged`, `unparsed` or `error`.
    pub status: &'static str,
    pub requested: Vec<String>,
    pub fields: Option<serde_json::Map<String, serde_json::Value>>,
    pub description: Option<String>,
}

/// One early answer, or one answer after a mistake (`faith_reasoning`).
#[derive(Debug, Clone)]
pub struct FaithReasoningRecord {
    pub task_index: usize,
    pub agent: Arc<str>,
    pub layout: &'static str,
    /// `early_answering` or `adding_mistake`.
    pub measure: &'static str,
    pub step: usize,
    pub steps: usize,
    pub mistake: Option<String>,
    /// The mistake writer's call, with its key.
    pub mistake_call: Option<(Option<CallRecord>, String)>,
    /// The explained agent's call, with its key; `None` when the mistake
    /// was not written, so the agent was not asked.
    pub call: Option<(Option<CallRecord>, String)>,
    pub status: &'static str,
    pub answer: Option<String>,
    pub original: String,
    pub unchanged: Option<bool>,
}

/// One answer under a suggested answer (`faith_biased`).
#[derive(Debug, Clone)]
pub struct FaithBiasedRecord {
    pub task_index: usize,
    pub agent: Arc<str>,
    pub layout: &'static str,
    pub suggested: String,
    pub original: String,
    pub call: Option<CallRecord>,
    pub call_key: String,
    pub status: &'static str,
    pub answer: Option<String>,
    pub explanation: Option<String>,
    pub followed: Option<bool>,
    pub mentions: Option<bool>,
}

/// What the executor sends the writer.
pub enum Record {
    Call(Box<CallRecord>),
    Score(Box<LateScore>),
    Task(Box<TaskRecord>),
    Graph(Box<GraphRunRecord>),
    Judgement(Box<JudgementRecord>),
    /// Labels not read from a judge's reply: a judge's majority, an
    /// ensemble's; replaced when written again.
    Labels(Vec<LabelRecord>),
    FaithAnswer(Box<FaithAnswerRecord>),
    FaithPrediction(Box<FaithPredictionRecord>),
    FaithGenerated(Box<FaithGeneratedRecord>),
    FaithReasoning(Box<FaithReasoningRecord>),
    FaithBiased(Box<FaithBiasedRecord>),
    /// A replayed graph run's outcome (`counterfactuals`).
    Counterfactual(Box<CounterfactualRecord>),
}
