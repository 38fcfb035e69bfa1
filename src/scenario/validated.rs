//! The engine's view of a scenario: validated, resolved, ready to run.
//!
//! Built only by the [`crate::scenario::validator`]; every reference is an index, every
//! number is in range, every template compiles. The executor and strategies
//! read these types and never the YAML ones in [`crate::scenario::spec`].

use std::path::PathBuf;

use crate::scenario::answer::AnswerRule;
use serde_json::{Map, Value};

use crate::scenario::budget::{Budget, Price};
use crate::scenario::persona::Persona;
use crate::scenario::simulation::SimulatedModel;
use crate::scenario::template::Template;
use crate::scenario::tolerance::ErrorTolerance;

#[derive(Debug)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub seed: u64,
    pub source: ScenarioSource,
    pub models: Vec<Model>,
    pub agents: Vec<Agent>,
    pub tasks: Vec<Task>,
    pub answer: AnswerRule,
    pub verifiers: Vec<Verifier>,
    pub strategies: Vec<Strategy>,
    pub budget: Budget,
    /// How many errored samples the run tolerates before it fails.
    pub fail_on_error: ErrorTolerance,
    pub graph: Option<crate::scenario::graph::Graph>,
    /// The pseudo-agent (index into `agents`) whose samples are runs of
    /// `graph`.
    pub graph_agent: Option<usize>,
    /// Failure judges applied to every graph run when it finishes.
    pub judges: Vec<crate::scenario::judge_file::JudgeUse>,
    /// A self-explanation faithfulness experiment; its cases are `tasks`.
    pub faithfulness: Option<crate::scenario::faithfulness::Faithfulness>,
}

/// blake3 of a scenario's text and the files it refers to.
pub fn source_hash(text: &str, files: &[(String, String)]) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(text.as_bytes());
    for (path, body) in files {
        hasher.update(&(path.len() as u64).to_le_bytes());
        hasher.update(path.as_bytes());
        hasher.update(&(body.len() as u64).to_le_bytes());
        hasher.update(body.as_bytes());
    }
    hasher.finalize().to_hex().to_string()
}

/// Top-level keys that say when a run stops, not what it draws.
pub const LIMIT_KEYS: [&str; 2] = ["budget", "fail_on_error"];

/// The hash of what a scenario means apart from its limits ([`LIMIT_KEYS`]):
/// its YAML document, with its `--set` overrides and recorded environment
/// variables applied, as canonical JSON
/// without those keys, and its files. Two scenarios with the same one draw
/// the same samples, so a run may be resumed from either (with a higher
/// budget, say). `None` if the text does not parse.
pub fn hash_without_limits(text: &str, files: &[(String, String)]) -> Option<String> {
    let source = crate::scenario::diagnostic::SourceFile::new("", text);
    let mut root = crate::scenario::node::Node::parse(&source).ok()?;
    if !crate::scenario::overrides::apply(&source, &mut root).is_empty() {
        return None;
    }
    // A loaded scenario's text records every variable it uses.
    let (_, problems) = crate::scenario::environment::expand(&source, &mut root, |_| None);
    if !problems.is_empty() {
        return None;
    }
    let mut json = root.to_json();
    let document = json.as_object_mut()?;
    for key in LIMIT_KEYS {
        document.remove(key);
    }
    Some(source_hash(&json.to_string(), files))
}

/// The text a run was made from, stored with the run.
#[derive(Debug, Clone)]
pub struct ScenarioSource {
    pub path: PathBuf,
    pub text: String,
    /// Files the scenario refers to (agents, dataset), relative path and text.
    pub files: Vec<(String, String)>,
    /// blake3 of the scenario text and every referenced file.
    pub hash: String,
}

#[derive(Debug)]
pub struct Model {
    pub name: String,
    pub kind: ModelKind,
    pub price: Option<Price>,
}

#[derive(Debug)]
pub enum ModelKind {
    Simulated(SimulatedModel),
    /// OpenAI-compatible or Anthropic, over HTTP.
    Network(HttpModel),
}

impl Model {
    /// Whether a request's output tokens are capped (simulated texts always are).
    pub fn output_bounded(&self) -> bool {
        match &self.kind {
            ModelKind::Simulated(_) => true,
            ModelKind::Network(h) => h.max_tokens().is_some(),
        }
    }

    /// This model with its sampling temperature and seed replaced, under a
    /// name that says so (`judge[temperature=0.2,seed=7]`); `Err` says why
    /// it has no such setting.
    pub fn with_sampling(
        &self,
        temperature: Option<f64>,
        seed: Option<u64>,
    ) -> Result<Model, String> {
        let mut settings = Vec::new();
        if let Some(t) = temperature {
            settings.push(format!("temperature={t}"));
        }
        if let Some(s) = seed {
            settings.push(format!("seed={s}"));
        }
        let name = format!("{}[{}]", self.name, settings.join(","));
        let kind = match &self.kind {
            ModelKind::Simulated(_) if temperature.is_some() => {
                return Err(format!(
                    "model `{}` is simulated and has no temperature; leave `temperature` out",
                    self.name
                ));
            }
            ModelKind::Simulated(m) => ModelKind::Simulated(SimulatedModel {
                name: name.clone(),
                seed: seed.unwrap_or(m.seed),
                ..m.clone()
            }),
            ModelKind::Network(h) => {
                let mut h = h.clone();
                h.name = name.clone();
                if let Some(t) = temperature {
                    h.params.insert("temperature".into(), t.into());
                }
                h.seed = seed.or(h.seed);
                ModelKind::Network(h)
            }
        };
        Ok(Model {
            name,
            kind,
            price: self.price,
        })
    }

    pub fn provider_name(&self) -> &'static str {
        match &self.kind {
            ModelKind::Simulated(_) => "simulated",
            ModelKind::Network(h) => h.api.as_str(),
        }
    }
}

/// Which wire format a network model speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `POST {base_url}/chat/completions`, `Authorization: Bearer`.
    OpenAi,
    /// `POST {base_url}/messages`, `x-api-key`, `anthropic-version: 2023-06-01`.
    Anthropic,
    /// `POST {base_url}` with a reward request (see [`crate::model::network::parse_reward`]).
    RewardModel,
}

impl Api {
    pub fn as_str(self) -> &'static str {
        match self {
            Api::OpenAi => "openai",
            Api::Anthropic => "anthropic",
            Api::RewardModel => "reward_model",
        }
    }
}

/// Anthropic requires `max_tokens`; this is used when the scenario sets none.
pub const ANTHROPIC_DEFAULT_MAX_TOKENS: u64 = 1024;

/// A network model's settings, validated.
#[derive(Debug, Clone)]
pub struct HttpModel {
    pub api: Api,
    /// The model's name in the scenario.
    pub name: String,
    pub base_url: String,
    /// The model id the server knows.
    pub model: String,
    pub api_key_env: Option<String>,
    /// Sampling parameters and `extra` fields, merged into every request body.
    pub params: Map<String, Value>,
    /// Request seed; request i of a task sends `seed + first sample index`.
    pub seed: Option<u64>,
    pub n_per_request: usize,
    pub timeout: std::time::Duration,
    pub max_retries: u32,
    /// Most requests in flight to this model.
    pub concurrency: Option<usize>,
    /// Most requests per minute.
    pub rpm: Option<u64>,
    /// Most tokens (input + output) per minute.
    pub tpm: Option<u64>,
}

impl HttpModel {
    /// Most output tokens per completion, when the request caps them.
    pub fn max_tokens(&self) -> Option<u64> {
        let set = ["max_tokens", "max_completion_tokens"]
            .iter()
            .filter_map(|k| self.params.get(*k).and_then(Value::as_u64))
            .min();
        match self.api {
            Api::Anthropic => set.or(Some(ANTHROPIC_DEFAULT_MAX_TOKENS)),
            Api::OpenAi => set,
            // A reward model writes no text.
            Api::RewardModel => Some(0),
        }
    }
}

#[derive(Debug)]
pub struct Agent {
    pub name: String,
    pub model: usize,
    pub system: String,
    pub prompt: Template,
    /// How it behaves in graph runs on the simulated model.
    pub persona: std::sync::Arc<Persona>,
}

/// One dataset item.
#[derive(Debug, Clone)]
pub struct Task {
    /// Position in the dataset, 0-based.
    pub index: usize,
    pub id: String,
    /// Every field of the item except the reserved `distribution`.
    pub inputs: serde_json::Map<String, serde_json::Value>,
    /// The expected answer, normalized by the scenario's answer rule.
    pub expected: Option<String>,
    /// A per-item simulated distribution (answer → probability), normalized.
    pub distribution: Option<Vec<(String, f64)>>,
}

#[derive(Debug, Clone)]
pub struct Verifier {
    pub name: String,
    pub kind: VerifierKind,
}

#[derive(Debug, Clone)]
pub enum VerifierKind {
    Oracle {
        false_positive_rate: f64,
        false_negative_rate: f64,
    },
    Noisy {
        correct_mean: f64,
        wrong_mean: f64,
        sd: f64,
    },
    Programmatic(Check),
    Llm(Judge),
    RewardModel(RewardModel),
}

/// A `reward_model` verifier.
#[derive(Debug, Clone)]
pub struct RewardModel {
    /// Index into the scenario's models (provider `reward_model`).
    pub model: usize,
    /// For a process reward model: how to split and how to aggregate.
    pub process: Option<(Steps, Aggregate)>,
}

/// How a solution splits into steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steps {
    Lines,
    Paragraphs,
    Markers,
}

/// How step scores make a solution's score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    Min,
    Last,
    Mean,
    Product,
}

/// An `llm` verifier: a model asked about each candidate.
#[derive(Debug, Clone)]
pub struct Judge {
    /// Index into the scenario's models (a network model).
    pub model: usize,
    pub system: String,
    /// Over the task's fields and the candidate's `prompt`, `text`,
    /// `extracted`, `answer` and `expected`.
    pub prompt: Template,
    pub scale: Scale,
}

/// What a judge answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// yes (1, accepted) or no (0).
    YesNo,
    /// 0 to 10, stored divided by 10.
    Score,
}

/// What a judge's prompt may use of the candidate, besides the task's fields:
/// the prompt the agent was given, its reply, and its answer as written,
/// normalized and expected.
pub const CANDIDATE_FIELDS: [&str; 5] = ["prompt", "text", "extracted", "answer", "expected"];

/// The judge prompts used when a scenario sets none.
pub const DEFAULT_JUDGE_YES_NO: &str = "Question:\n{{ prompt }}\n\nResponse:\n{{ text }}\n\nIs the final answer of the response correct? Reply with \"Verdict: yes\" or \"Verdict: no\".";
pub const DEFAULT_JUDGE_SCORE: &str = "Question:\n{{ prompt }}\n\nResponse:\n{{ text }}\n\nHow likely is the final answer of the response to be correct, from 0 (certainly wrong) to 10 (certainly right)? Reply with \"Score: N\".";

/// A programmatic verifier's check.
#[derive(Debug, Clone)]
pub enum Check {
    Exact,
    Numeric {
        absolute: f64,
        relative: f64,
    },
    Regex(regex::Regex),
    Command {
        /// Program and arguments.
        argv: Vec<String>,
        /// Where it runs: the scenario's directory.
        dir: std::path::PathBuf,
        timeout: std::time::Duration,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrategyKind {
    SelfConsistency,
    BestOfN,
    WeightedMajority,
    AdaptiveConsistency,
    SelfCorrection,
}

impl StrategyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StrategyKind::SelfConsistency => "self_consistency",
            StrategyKind::BestOfN => "best_of_n",
            StrategyKind::WeightedMajority => "weighted_majority",
            StrategyKind::AdaptiveConsistency => "adaptive_consistency",
            StrategyKind::SelfCorrection => "self_correction",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Strategy {
    pub name: String,
    pub kind: StrategyKind,
    pub agent: usize,
    /// Ascending, distinct, positive.
    pub ns: Vec<usize>,
    pub verifier: Option<usize>,
    /// For adaptive consistency.
    pub stop: Option<StopRule>,
    /// For self-correction.
    pub correction: Option<Correction>,
}

impl Strategy {
    /// The agents whose calls it makes: `agent`, then its experts.
    pub fn callers(&self) -> Vec<usize> {
        let mut all = vec![self.agent];
        if let Some(c) = &self.correction {
            all.extend(&c.experts);
        }
        all
    }
}

/// How self-correction talks back to the model.
#[derive(Debug, Clone)]
pub struct Correction {
    /// The message after a rejected answer.
    pub feedback: Template,
    /// Score at or above which an answer counts as accepted, for verifiers
    /// that only score.
    pub accept: f64,
    /// Agents besides the strategy's own that may answer a round.
    pub experts: Vec<usize>,
    /// How a round's expert is chosen (`Fixed(0)`: always the agent).
    pub policy: Policy,
}

/// How self-correction chooses a round's expert (see `stats::online`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    RoundRobin,
    Hedge,
    Ucb,
    Thompson,
    /// Always the strategy's agent.
    Fixed,
}

/// The feedback sent when a scenario sets none.
pub const DEFAULT_FEEDBACK: &str = "Your answer {{ answer }} was checked and not accepted (score {{ score }}). Check your work step by step and give your final answer again.";

/// When adaptive consistency stops drawing samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StopRule {
    /// P(leader's share > runner-up's | votes) under a uniform prior reaches this.
    Beta(f64),
    /// The leader has this many more votes than the runner-up.
    Margin(usize),
}

impl Scenario {
    /// For each agent, how many samples per task its strategies need (0 =
    /// unused). Self-correction draws its own rounds, after the pool.
    pub fn pool_sizes(&self) -> Vec<usize> {
        let mut sizes = vec![0; self.agents.len()];
        for s in self.strategies.iter().filter(|s| s.correction.is_none()) {
            let max = s.ns.last().copied().unwrap_or(0);
            sizes[s.agent] = sizes[s.agent].max(max);
        }
        sizes
    }

    /// The sample index of strategy `si`'s first self-correction round:
    /// rounds are numbered after the pools of the agents they call and the
    /// rounds of the self-correction strategies before it that call them,
    /// so no two samples of an agent share one.
    pub fn first_round(&self, si: usize) -> usize {
        self.round_numbering(Some(si)).0
    }

    /// The sample index of `agent`'s first call in a graph run: after its
    /// pool and every self-correction round it may take.
    pub fn first_graph_call(&self, agent: usize) -> usize {
        self.round_numbering(None).1[agent]
    }

    /// Strategy `upto`'s first round, and each agent's next free sample
    /// index after the self-correction strategies before it (all of them
    /// when `None`).
    fn round_numbering(&self, upto: Option<usize>) -> (usize, Vec<usize>) {
        let mut next = self.pool_sizes();
        for (i, s) in self.strategies.iter().enumerate() {
            if s.correction.is_none() {
                continue;
            }
            let callers = s.callers();
            let first = callers.iter().map(|&a| next[a]).max().unwrap_or(0);
            if upto == Some(i) {
                return (first, next);
            }
            for a in callers {
                next[a] = first + s.most_rounds();
            }
        }
        (0, next)
    }

    /// For each agent, the verifiers that score its samples.
    pub fn verifiers_of(&self, agent: usize) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .strategies
            .iter()
            .filter(|s| s.callers().contains(&agent))
            .filter_map(|s| s.verifier)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Samples one run draws in total, at most (self-correction may stop early).
    pub fn planned_samples(&self) -> u64 {
        let rounds: usize = self
            .strategies
            .iter()
            .filter(|s| s.correction.is_some())
            .map(Strategy::most_rounds)
            .sum();
        let faithfulness = self.faithfulness.as_ref().map_or(0, |f| f.planned_calls());
        (self.pool_sizes().iter().sum::<usize>() + rounds) as u64 * self.tasks.len() as u64
            + faithfulness
    }
}

impl Strategy {
    /// The largest `n`: rounds, for self-correction.
    pub fn most_rounds(&self) -> usize {
        self.ns.last().copied().unwrap_or(0)
    }
}
