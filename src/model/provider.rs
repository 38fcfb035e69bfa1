//! The provider layer: the one place that produces model responses.
//!
//! A [`Provider`] turns one request (system prompt, user prompt, how many
//! samples) into completions. Only providers do network I/O; the simulated
//! provider does none and draws from seeded generators instead. The executor
//! calls providers through `dyn Provider` and never knows which one it has.

use async_trait::async_trait;

use crate::scenario::Task;

/// One request for `n` samples, numbered from `first_sample`.
#[derive(Debug, Clone, Copy)]
pub struct CallRequest<'a> {
    pub agent: &'a str,
    pub task: &'a Task,
    pub system: &'a str,
    pub prompt: &'a str,
    /// Earlier rounds of the conversation, after `prompt` (self-correction).
    pub history: &'a [Turn],
    pub first_sample: usize,
    pub n: usize,
    /// A graph turn's structured view, for simulated agents only.
    pub scene: Option<&'a crate::model::scene::Scene>,
    /// For a failure judge's call: the trace it judges, for simulated judges only.
    pub trace: Option<&'a crate::model::judged::TraceView>,
    /// For a faithfulness experiment's call: its case(s), for simulated
    /// explainers and predictors only.
    pub explaining: Option<&'a crate::model::explaining::Explaining>,
}

/// One round of a conversation after the first prompt: the model's reply and
/// the user's answer to it (a verifier's feedback).
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub reply: String,
    pub feedback: String,
}

impl CallRequest<'_> {
    /// Bytes of every message the request sends.
    pub fn text_len(&self) -> usize {
        self.system.len()
            + self.prompt.len()
            + self
                .history
                .iter()
                .map(|t| t.reply.len() + t.feedback.len())
                .sum::<usize>()
    }
}

/// One generated text.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    pub output_tokens: u64,
}

/// One HTTP exchange (or attempt at one) behind a call, for the trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// What went wrong, when something did.
    pub error: Option<String>,
    /// Time the exchange took, excluding any wait before it.
    pub latency_ms: f64,
    /// Time waited before this attempt (backoff, Retry-After).
    pub wait_ms: f64,
    /// Samples this exchange asked for.
    pub n: usize,
}

/// What a provider returns for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct CallResponse {
    pub completions: Vec<Completion>,
    pub input_tokens: u64,
    /// Time the call took (simulated providers report their drawn latency).
    pub latency_ms: f64,
    /// The response body as a server sent it (JSON), for the trace. `None`
    /// for the simulated provider, whose whole response is its texts and usage.
    pub raw: Option<String>,
    /// The request body as sent (JSON, never with credentials), if any.
    pub request: Option<String>,
    /// Every HTTP exchange, retries included; empty for the simulated provider.
    pub attempts: Vec<Attempt>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("model \"{model}\": {message}")]
pub struct ProviderError {
    pub model: String,
    pub message: String,
    pub latency_ms: f64,
    /// Every exchange tried before giving up.
    pub attempts: Vec<Attempt>,
    /// Whether the whole run should stop (bad key, wrong URL): retrying
    /// other samples would fail the same way. The executor also sets it for
    /// an `unreachable` model that has never answered.
    pub fatal: bool,
    /// Whether no connection to the model could be made at all.
    pub unreachable: bool,
}

/// The cache key of a call: blake3 of the provider's fingerprint, the
/// messages, and which samples it asks for — so n identical requests for
/// different samples are n keys and never collapse into one.
pub fn call_key(fingerprint: &str, req: &CallRequest<'_>) -> String {
    let mut h = blake3::Hasher::new();
    let turns = req.history.iter().flat_map(|t| [&*t.reply, &*t.feedback]);
    for part in [fingerprint, req.system, req.prompt]
        .into_iter()
        .chain(turns)
    {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.update(&(req.first_sample as u64).to_le_bytes());
    h.update(&(req.n as u64).to_le_bytes());
    if let Some(scene) = req.scene {
        h.update(scene.key().as_bytes());
    }
    // A simulated judge answers from the trace's task and injected failures,
    // which two traces of the same text need not share.
    if let Some(trace) = req.trace {
        h.update(req.task.id.as_bytes());
        h.update(trace.key().as_bytes());
    }
    if let Some(explaining) = req.explaining {
        h.update(explaining.key().as_bytes());
    }
    h.finalize().to_hex()[..32].to_owned()
}

/// The most tokens a call can use, known before it is sent: what budgets and
/// rate limits reserve.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageBound {
    pub input_tokens: u64,
    /// `None` when the model does not cap its output (no `max_tokens`).
    pub output_tokens: Option<u64>,
}

/// Tokens a chat template may add to a request's text (role markers, a
/// default system prompt). An allowance, not a measurement.
pub const TEMPLATE_ALLOWANCE: u64 = 64;

/// Input tokens of `requests` requests with `req`'s messages, at most: with
/// byte-level BPE tokenizers a token covers at least one byte of text, and
/// each message may get a template's worth of role markers.
pub fn input_token_bound(req: &CallRequest<'_>, requests: u64) -> u64 {
    let messages = 2 + 2 * req.history.len() as u64;
    (req.text_len() as u64 + TEMPLATE_ALLOWANCE * messages.div_ceil(2)) * requests
}

#[async_trait]
pub trait Provider: Send + Sync {
    /// The model's name in the scenario.
    fn name(&self) -> &str;
    /// Name of the provider kind, e.g. `simulated`.
    fn kind(&self) -> &'static str;
    /// Most samples one request may ask for.
    fn max_n_per_request(&self) -> usize;
    /// Everything besides the messages that decides a response (model id,
    /// sampling parameters, seed...), canonical, for cache keys.
    fn fingerprint(&self) -> String;
    /// The most tokens `request` can use.
    fn usage_bound(&self, request: &CallRequest<'_>) -> UsageBound;
    /// A recorded response to the request with cache key `key` (its
    /// [`call_key`] under this provider's fingerprint), served without
    /// calling the model (replay, the response cache); `None` when there is
    /// none, and then [`Provider::complete`] makes the call.
    fn recorded(&self, _key: &str) -> Option<Result<CallResponse, ProviderError>> {
        None
    }
    async fn complete(&self, request: CallRequest<'_>) -> Result<CallResponse, ProviderError>;
}
