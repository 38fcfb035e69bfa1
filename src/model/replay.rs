//! Serving recorded responses instead of calling models: `crucible replay`
//! (every response from one recorded run; with `strict`, a missing one is an
//! error, never a live call) and `crucible run --cache` (any recorded
//! response with the same key, else a live call).
//!
//! Responses are keyed by [`call_key`]: the provider's fingerprint, the
//! messages and the samples asked for.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::model::provider::{
    CallRequest, CallResponse, Provider, ProviderError, UsageBound, call_key,
};

/// A provider that answers from recorded responses.
pub struct Recorded {
    /// The model as configured: its fingerprint keys lookups; with `live`,
    /// it answers what was not recorded.
    inner: Arc<dyn Provider>,
    responses: Arc<HashMap<String, CallResponse>>,
    live: bool,
}

impl Recorded {
    pub fn new(
        inner: Arc<dyn Provider>,
        responses: Arc<HashMap<String, CallResponse>>,
        live: bool,
    ) -> Self {
        Recorded {
            inner,
            responses,
            live,
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

    async fn complete(&self, req: CallRequest<'_>) -> Result<CallResponse, ProviderError> {
        let key = call_key(&self.inner.fingerprint(), &req);
        if let Some(r) = self.responses.get(&key) {
            return Ok(CallResponse {
                attempts: Vec::new(),
                ..r.clone()
            });
        }
        if self.live {
            return self.inner.complete(req).await;
        }
        Err(ProviderError {
            model: self.inner.name().to_owned(),
            message: format!(
                "strict replay: no recorded response for agent \"{}\", task \"{}\", samples {}..{} (key {key}); \
                 the recorded run does not hold this call — replay without --strict to make it live",
                req.agent,
                req.task.id,
                req.first_sample,
                req.first_sample + req.n
            ),
            latency_ms: 0.0,
            attempts: Vec::new(),
            fatal: true,
            unreachable: false,
        })
    }
}
