//! The OpenAI-compatible provider: `POST {base_url}/chat/completions`, as
//! served by OpenAI, vLLM, SGLang, llama.cpp, Ollama and LM Studio.
//!
//! Written by hand over reqwest for exact control of the body: `n`, `seed`,
//! `logprobs` and vendor `extra` fields go in as configured, and the raw
//! response (unknown fields such as llama.cpp's `timings` included) goes to
//! the trace. A server that caps `n` (llama.cpp answers 400 "Value must be
//! between 1 <= value <= 4") is asked again in smaller requests; the cap is
//! remembered and every request is recorded.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use tokio::sync::Semaphore;

use crate::http::{self, Endpoint, Failure, RetryPolicy};
use crate::provider::{CallRequest, CallResponse, Completion, Provider, ProviderError};
use crate::simulated::estimate_tokens;

/// A network model's settings, validated.
#[derive(Debug, Clone)]
pub struct HttpModel {
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
    pub timeout: Duration,
    pub max_retries: u32,
    /// Most requests in flight to this model.
    pub concurrency: Option<usize>,
}

/// The provider for one OpenAI-compatible model.
pub struct OpenAiModel {
    config: HttpModel,
    client: reqwest::Client,
    url: String,
    headers: Vec<(&'static str, String)>,
    /// Largest `n` the server accepted or announced.
    cap: AtomicUsize,
    slots: Option<Semaphore>,
    waiting: Arc<AtomicU64>,
}

/// Install the TLS crypto provider once per process.
pub fn install_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl OpenAiModel {
    /// `api_key` comes from the environment variable the scenario names.
    pub fn new(
        config: HttpModel,
        api_key: Option<String>,
        waiting: Arc<AtomicU64>,
    ) -> Result<Self, String> {
        install_tls();
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| {
                format!(
                    "model \"{}\": cannot build an HTTP client: {e}",
                    config.name
                )
            })?;
        let url = format!("{}/chat/completions", config.base_url.trim_end_matches('/'));
        let headers = api_key
            .map(|k| vec![("authorization", format!("Bearer {k}"))])
            .unwrap_or_default();
        Ok(OpenAiModel {
            cap: AtomicUsize::new(config.n_per_request.max(1)),
            slots: config.concurrency.map(Semaphore::new),
            client,
            url,
            headers,
            config,
            waiting,
        })
    }

    /// The JSON body for `n` samples starting at `first`.
    pub fn body(&self, system: &str, prompt: &str, first: usize, n: usize) -> Value {
        let mut messages = Vec::new();
        if !system.is_empty() {
            messages.push(json!({"role": "system", "content": system}));
        }
        messages.push(json!({"role": "user", "content": prompt}));
        let mut body = Map::new();
        body.insert("model".into(), json!(self.config.model));
        body.insert("messages".into(), Value::Array(messages));
        if n != 1 {
            body.insert("n".into(), json!(n));
        }
        if let Some(seed) = self.config.seed {
            body.insert("seed".into(), json!(seed.wrapping_add(first as u64)));
        }
        for (k, v) in &self.config.params {
            body.insert(k.clone(), v.clone());
        }
        Value::Object(body)
    }
}

/// The texts of a chat-completions response and its usage, if reported.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub texts: Vec<String>,
    /// (prompt tokens, completion tokens)
    pub usage: Option<(u64, u64)>,
}

/// Read a chat-completions response body.
pub fn parse_response(text: &str) -> Result<Parsed, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let choices = v
        .get("choices")
        .and_then(Value::as_array)
        .ok_or("no `choices` array")?;
    let mut texts = Vec::with_capacity(choices.len());
    for c in choices {
        let content = c.pointer("/message/content").or_else(|| c.get("text"));
        texts.push(
            content
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        );
    }
    let usage = v.get("usage").and_then(|u| {
        Some((
            u.get("prompt_tokens")?.as_u64()?,
            u.get("completion_tokens")?.as_u64()?,
        ))
    });
    Ok(Parsed { texts, usage })
}

#[async_trait]
impl Provider for OpenAiModel {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn kind(&self) -> &'static str {
        "openai"
    }

    fn max_n_per_request(&self) -> usize {
        self.config.n_per_request
    }

    async fn complete(&self, req: CallRequest<'_>) -> Result<CallResponse, ProviderError> {
        let ep = Endpoint {
            client: &self.client,
            url: &self.url,
            headers: &self.headers,
            model: &self.config.model,
            key_env: self.config.api_key_env.as_deref(),
            policy: RetryPolicy {
                max_retries: self.config.max_retries,
                base: Duration::from_millis(250),
                cap: Duration::from_secs(20),
            },
            waiting: &self.waiting,
        };
        let mut completions = Vec::with_capacity(req.n);
        let mut attempts = Vec::new();
        let mut bodies = Vec::new();
        let mut raws = Vec::new();
        let (mut input_tokens, mut latency) = (0u64, 0.0f64);
        let mut done = 0;
        while done < req.n {
            let n = (req.n - done).min(self.cap.load(Ordering::Relaxed).max(1));
            let body = self
                .body(req.system, req.prompt, req.first_sample + done, n)
                .to_string();
            let _slot = match &self.slots {
                Some(s) => Some(s.acquire().await.expect("semaphore open")),
                None => None,
            };
            let (result, tried) = http::post(&ep, &body, n, parse_response).await;
            latency += tried.iter().map(|a| a.latency_ms).sum::<f64>();
            attempts.extend(tried);
            match result {
                Ok((Parsed { texts, usage }, raw)) => {
                    let count = texts.len().min(n);
                    let (prompt_tokens, completion_tokens) = usage.unwrap_or_else(|| {
                        let out: u64 = texts.iter().map(|t| estimate_tokens(t)).sum();
                        (
                            estimate_tokens(req.system) + estimate_tokens(req.prompt),
                            out,
                        )
                    });
                    input_tokens += prompt_tokens;
                    // Usage covers all choices; split output tokens by text length.
                    let chars: usize = texts.iter().map(String::len).sum::<usize>().max(1);
                    for t in texts.into_iter().take(count) {
                        let share = (completion_tokens as f64 * t.len() as f64 / chars as f64)
                            .round() as u64;
                        completions.push(Completion {
                            output_tokens: share,
                            text: t,
                        });
                    }
                    if count < n {
                        return Err(self.error(
                            format!("asked for {n} choices, got {count}"),
                            latency,
                            attempts,
                            false,
                        ));
                    }
                    done += n;
                    bodies.push(body);
                    raws.push(raw);
                }
                Err(Failure::NTooLarge { max, message }) if max < n => {
                    tracing::info!(model = %self.config.name, max, "server caps n; splitting requests: {message}");
                    self.cap.store(max, Ordering::Relaxed);
                }
                Err(Failure::NTooLarge { message, .. }) | Err(Failure::Request(message)) => {
                    return Err(self.error(message, latency, attempts, false));
                }
                Err(Failure::GaveUp(message)) => {
                    return Err(self.error(message, latency, attempts, false));
                }
                Err(Failure::Fatal(message)) => {
                    return Err(self.error(message, latency, attempts, true));
                }
            }
        }
        let join = |parts: Vec<String>| match parts.len() {
            1 => parts.into_iter().next().unwrap_or_default(),
            _ => format!("[{}]", parts.join(",")),
        };
        Ok(CallResponse {
            completions,
            input_tokens,
            latency_ms: latency,
            raw: Some(join(raws)),
            request: Some(join(bodies)),
            attempts,
        })
    }
}

impl OpenAiModel {
    fn error(
        &self,
        message: String,
        latency_ms: f64,
        attempts: Vec<crate::provider::Attempt>,
        fatal: bool,
    ) -> ProviderError {
        ProviderError {
            model: self.config.name.clone(),
            message,
            latency_ms,
            attempts,
            fatal,
        }
    }
}
