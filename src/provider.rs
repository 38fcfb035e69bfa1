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
    pub first_sample: usize,
    pub n: usize,
}

/// One generated text.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    pub output_tokens: u64,
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
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("model \"{model}\": {message}")]
pub struct ProviderError {
    pub model: String,
    pub message: String,
    pub latency_ms: f64,
}

#[async_trait]
pub trait Provider: Send + Sync {
    /// The model's name in the scenario.
    fn model(&self) -> &str;
    /// Name of the provider kind, e.g. `simulated`.
    fn kind(&self) -> &'static str;
    /// Most samples one request may ask for.
    fn max_n_per_request(&self) -> usize;
    async fn complete(&self, request: CallRequest<'_>) -> Result<CallResponse, ProviderError>;
}
