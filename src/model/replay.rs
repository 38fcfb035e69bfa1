//! Serving recorded responses instead of calling models: `crucible replay`
//! (every response from one recorded run; with `strict`, a missing one is an
//! error, never a live call) and `crucible run --cache` (any recorded
//! response with the same key, else a live call).
//!
//! Responses are keyed by [`call_key`]: the provider's fingerprint, the
//! messages and the samples asked for. They are looked up one call at a time
//! ([`Recordings`]), so a run's recordings are never all in memory; the
//! store provides them. A response served from a recording was not a model
//! call: it costs nothing and is traced as cached.

use std::sync::Arc;

use async_trait::async_trait;

use crate::model::provider::{
    CallRequest, CallResponse, Provider, ProviderError, UsageBound, call_key,
};

/// Recorded responses, by cache key.
pub trait Recordings: Send + Sync {
    /// The first successful recorded call with `key`, as a response.
    fn get(&self, key: &str) -> Result<Option<CallResponse>, String>;
}

/// A provider that answers from recorded responses.
pub struct Recorded {
    /// The model as configured: its fingerprint keys lookups; with `live`,
    /// it answers what was not recorded.
    inner: Arc<dyn Provider>,
    recordings: Arc<dyn Recordings>,
    live: bool,
}

impl Recorded {
    pub fn new(inner: Arc<dyn Provider>, recordings: Arc<dyn Recordings>, live: bool) -> Self {
        Recorded {
            inner,
            recordings,
            live,
        }
    }

    fn error(&self, message: String) -> ProviderError {
        ProviderError {
            model: self.inner.name().to_owned(),
            message,
            latency_ms: 0.0,
            attempts: Vec::new(),
            fatal: true,
            unreachable: false,
        }
    }
}

#[async_trait]
impl Provider for Recorded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn max_n_per_request(&self) -> usize {
        self.inner.max_n_per_request()
    }

    fn fingerprint(&self) -> String {
        self.inner.fingerprint()
    }

    fn usage_bound(&self, request: &CallRequest<'_>) -> UsageBound {
        self.inner.usage_bound(request)
    }

    fn recorded(&self, key: &str) -> Option<Result<CallResponse, ProviderError>> {
        match self.recordings.get(key) {
            Ok(found) => found.map(Ok),
            Err(e) => Some(Err(self.error(format!("reading recorded responses: {e}")))),
        }
    }

    /// Only for calls [`Provider::recorded`] does not hold.
    async fn complete(&self, req: CallRequest<'_>) -> Result<CallResponse, ProviderError> {
        if self.live {
            return self.inner.complete(req).await;
        }
        let key = call_key(&self.inner.fingerprint(), &req);
        Err(self.error(format!(
            "strict replay: no recorded response for agent \"{}\", task \"{}\", samples {}..{} (key {key}); \
             the recorded run does not hold this call — replay without --strict to make it live",
            req.agent,
            req.task.id,
            req.first_sample,
            req.first_sample + req.n
        )))
    }
}
