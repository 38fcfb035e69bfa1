//! Network providers: the OpenAI-compatible chat-completions API (OpenAI,
//! vLLM, SGLang, llama.cpp, Ollama, LM Studio) and Anthropic's Messages API,
//! behind one [`NetworkModel`] that differs only in its wire format ([`Api`]).
//!
//! Written by hand over reqwest for exact control of the body: `n`, `seed`,
//! `logprobs` and vendor `extra` fields go in as configured, and the raw
//! response (unknown fields such as llama.cpp's `timings` included) goes to
//! the trace. A server that caps `n` (llama.cpp answers 400 "Value must be
//! between 1 <= value <= 4") is asked again in smaller requests; the cap is
//! remembered and every request is recorded. Anthropic has no `n`: one
//! request per sample. `rpm` and `tpm` limits are token buckets
//! ([`RateLimit`]) taken before each request; `tpm` debits the request's
//! bound and is settled with the usage the server reports.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use tokio::sync::Semaphore;

use crate::model::http::{self, Endpoint, Failure, RetryPolicy};
use crate::model::provider::{
    CallRequest, CallResponse, Completion, Provider, ProviderError, Turn, UsageBound,
    input_token_bound,
};
use crate::model::rate_limit::RateLimit;
use crate::model::simulated::{estimate_input_tokens, estimate_tokens};
use crate::model::verdict::TokenChoice;
use crate::scenario::{ANTHROPIC_DEFAULT_MAX_TOKENS, Api, HttpModel};

/// The provider for one network model.
pub struct NetworkModel {
    config: HttpModel,
    client: reqwest::Client,
    url: String,
    headers: Vec<(&'static str, String)>,
    /// Largest `n` the server accepted or announced.
    cap: AtomicUsize,
    slots: Option<Semaphore>,
    rpm: Option<RateLimit>,
    tpm: Option<RateLimit>,
    waiting: Arc<AtomicU64>,
}

/// Install the TLS crypto provider once per process.
pub fn install_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl NetworkModel {
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
        let root = config.base_url.trim_end_matches('/');
        let (url, mut headers) = match config.api {
            Api::OpenAi => (format!("{root}/chat/completions"), Vec::new()),
            Api::Anthropic => (
                format!("{root}/messages"),
                vec![("anthropic-version", "2023-06-01".to_owned())],
            ),
            Api::RewardModel => (root.to_owned(), Vec::new()),
        };
        if let Some(k) = api_key {
            headers.push(match config.api {
                Api::OpenAi | Api::RewardModel => ("authorization", format!("Bearer {k}")),
                Api::Anthropic => ("x-api-key", k),
            });
        }
        let n_cap = match config.api {
            Api::OpenAi => config.n_per_request.max(1),
            Api::Anthropic | Api::RewardModel => 1,
        };
        Ok(NetworkModel {
            cap: AtomicUsize::new(n_cap),
            slots: config.concurrency.map(Semaphore::new),
            rpm: config.rpm.map(RateLimit::per_minute),
            tpm: config.tpm.map(RateLimit::per_minute),
            client,
            url,
            headers,
            config,
            waiting,
        })
    }

    /// Wait for the rate limits to admit one request that may use `tokens`
    /// tokens; returns how long it waited.
    async fn admit(&self, tokens: u64) -> Duration {
        let wait = [(&self.rpm, 1.0), (&self.tpm, tokens as f64)]
            .into_iter()
            .filter_map(|(limit, units)| limit.as_ref().map(|l| l.take(units)))
            .max()
            .unwrap_or_default();
        if !wait.is_zero() {
            self.waiting.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
            self.waiting.fetch_sub(1, Ordering::Relaxed);
        }
        wait
    }

    /// The JSON body for `n` samples starting at `first`.
    pub fn body(
        &self,
        system: &str,
        prompt: &str,
        history: &[Turn],
        first: usize,
        n: usize,
    ) -> Value {
        match self.config.api {
            Api::OpenAi => self.openai_body(system, prompt, history, first, n),
            Api::Anthropic => self.anthropic_body(system, prompt, history),
            Api::RewardModel => self.reward_body(prompt),
        }
    }

    /// A reward request: the verifier's request document (`prompt`, a JSON
    /// object) with the model id added.
    fn reward_body(&self, document: &str) -> Value {
        let mut body = match serde_json::from_str(document) {
            Ok(Value::Object(m)) => m,
            _ => Map::from_iter([("input".to_owned(), json!(document))]),
        };
        body.insert("model".into(), json!(self.config.model));
        Value::Object(body)
    }

    /// Messages API: `system` is a top-level field, `max_tokens` is required,
    /// `stop` is `stop_sequences`; there is no `n` and no `seed`.
    fn anthropic_body(&self, system: &str, prompt: &str, history: &[Turn]) -> Value {
        let mut body = Map::new();
        body.insert("model".into(), json!(self.config.model));
        body.insert("max_tokens".into(), json!(ANTHROPIC_DEFAULT_MAX_TOKENS));
        if !system.is_empty() {
            body.insert("system".into(), json!(system));
        }
        body.insert(
            "messages".into(),
            Value::Array(conversation(prompt, history)),
        );
        for (k, v) in &self.config.params {
            match k.as_str() {
                "stop" => {
                    let list = match v {
                        Value::String(s) => json!([s]),
                        other => other.clone(),
                    };
                    body.insert("stop_sequences".into(), list);
                }
                "logprobs" | "top_logprobs" => {}
                _ => {
                    body.insert(k.clone(), v.clone());
                }
            }
        }
        Value::Object(body)
    }

    fn openai_body(
        &self,
        system: &str,
        prompt: &str,
        history: &[Turn],
        first: usize,
        n: usize,
    ) -> Value {
        let mut messages = Vec::new();
        if !system.is_empty() {
            messages.push(json!({"role": "system", "content": system}));
        }
        messages.extend(conversation(prompt, history));
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

/// The user prompt, then each earlier reply and the feedback on it.
fn conversation(prompt: &str, history: &[Turn]) -> Vec<Value> {
    let mut messages = vec![json!({"role": "user", "content": prompt})];
    for t in history {
        messages.push(json!({"role": "assistant", "content": t.reply}));
        messages.push(json!({"role": "user", "content": t.feedback}));
    }
    messages
}

/// The texts of a chat-completions response and its usage, if reported.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub texts: Vec<String>,
    /// (prompt tokens, completion tokens)
    pub usage: Option<(u64, u64)>,
}

/// Read a Messages API response: the text blocks of `content`, and `usage`.
pub fn parse_anthropic(text: &str) -> Result<Parsed, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let content = v
        .get("content")
        .and_then(Value::as_array)
        .ok_or("no `content` array")?;
    let text: String = content
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect();
    let usage = v.get("usage").and_then(|u| {
        Some((
            u.get("input_tokens")?.as_u64()?,
            u.get("output_tokens")?.as_u64()?,
        ))
    });
    Ok(Parsed {
        texts: vec![text],
        usage,
    })
}

/// Read a reward model's response: the whole body is the one "text" (the
/// verifier reads its `score` or `step_scores`); usage only as reported, and
/// no output tokens.
pub fn parse_reward(text: &str) -> Result<Parsed, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if !v.is_object() {
        return Err("the response is not a JSON object".into());
    }
    let input = v.pointer("/usage/prompt_tokens").and_then(Value::as_u64);
    Ok(Parsed {
        texts: vec![text.to_owned()],
        usage: Some((input.unwrap_or(0), 0)),
    })
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

/// The first choice's tokens and their top alternatives, from a
/// chat-completions response that carries log-probabilities
/// (`choices[0].logprobs.content[].top_logprobs`); `None` without them, and
/// for Messages API responses, which have none.
pub fn token_logprobs(body: &str) -> Option<Vec<TokenChoice>> {
    let v: Value = serde_json::from_str(body).ok()?;
    let content = v.pointer("/choices/0/logprobs/content")?.as_array()?;
    content
        .iter()
        .map(|t| {
            let pair = |x: &Value| -> Option<(String, f64)> {
                Some((
                    x.get("token")?.as_str()?.to_owned(),
                    x.get("logprob")?.as_f64()?,
                ))
            };
            let (token, logprob) = pair(t)?;
            let mut top: Vec<(String, f64)> = t
                .get("top_logprobs")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(pair).collect())
                .unwrap_or_default();
            if !top.iter().any(|(t, _)| *t == token) {
                top.push((token.clone(), logprob));
            }
            Some(TokenChoice { token, top })
        })
        .collect()
}

#[async_trait]
impl Provider for NetworkModel {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn kind(&self) -> &'static str {
        self.config.api.as_str()
    }

    fn max_n_per_request(&self) -> usize {
        match self.config.api {
            Api::OpenAi => self.config.n_per_request,
            Api::Anthropic | Api::RewardModel => 1,
        }
    }

    fn usage_bound(&self, req: &CallRequest<'_>) -> UsageBound {
        let requests = req.n.div_ceil(self.cap.load(Ordering::Relaxed).max(1)) as u64;
        UsageBound {
            input_tokens: input_token_bound(req, requests),
            output_tokens: self.config.max_tokens().map(|m| m * req.n as u64),
        }
    }

    fn fingerprint(&self) -> String {
        let c = &self.config;
        // serde_json maps are sorted, so the parameters print canonically.
        format!(
            "{} {} {} seed={:?} {}",
            c.api.as_str(),
            c.base_url,
            c.model,
            c.seed,
            Value::Object(c.params.clone())
        )
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
                .body(
                    req.system,
                    req.prompt,
                    req.history,
                    req.first_sample + done,
                    n,
                )
                .to_string();
            let _slot = match &self.slots {
                Some(s) => Some(s.acquire().await.expect("semaphore open")),
                None => None,
            };
            let parse = match self.config.api {
                Api::OpenAi => parse_response,
                Api::Anthropic => parse_anthropic,
                Api::RewardModel => parse_reward,
            };
            let bound = self.usage_bound(&CallRequest { n, ..req });
            let reserved = bound.input_tokens + bound.output_tokens.unwrap_or(0);
            let waited = self.admit(reserved).await;
            let (result, mut tried) = http::post(&ep, &body, n, parse).await;
            if let Some(first) = tried.first_mut() {
                first.wait_ms += waited.as_secs_f64() * 1000.0;
            }
            latency += tried.iter().map(|a| a.latency_ms).sum::<f64>();
            attempts.extend(tried);
            let usage = result.as_ref().ok().map(|(Parsed { texts, usage }, _)| {
                usage.unwrap_or_else(|| {
                    (
                        estimate_input_tokens(&req),
                        texts.iter().map(|t| estimate_tokens(t)).sum(),
                    )
                })
            });
            if let Some(tpm) = &self.tpm {
                let used = usage.map_or(0, |(i, o)| i + o);
                tpm.adjust(reserved as f64 - used as f64);
            }
            match result {
                Ok((Parsed { texts, .. }, raw)) => {
                    let count = texts.len().min(n);
                    let (prompt_tokens, completion_tokens) = usage.unwrap_or_default();
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
                Err(Failure::Unreachable(message)) => {
                    let hint = format!(
                        "{message} — is the server running? Start it, or point the model at one: --set models.{}.base_url=URL",
                        self.config.name
                    );
                    return Err(ProviderError {
                        unreachable: true,
                        ..self.error(hint, latency, attempts, false)
                    });
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

impl NetworkModel {
    fn error(
        &self,
        message: String,
        latency_ms: f64,
        attempts: Vec<crate::model::provider::Attempt>,
        fatal: bool,
    ) -> ProviderError {
        ProviderError {
            model: self.config.name.clone(),
            message,
            latency_ms,
            attempts,
            fatal,
            unreachable: false,
        }
    }
}

#[cfg(test)]
mod tests {
    //! Anthropic has no local server: these tests check the request and
    //! response shapes of its Messages API documentation, and the retry and
    //! error mapping against a small loopback stand-in that answers in those
    //! shapes (the OpenAI-compatible path is tested against a real llama.cpp
    //! server and `crucible sim-server` in tests/cli.rs).
    use super::*;
    use crate::scenario::Task;
    use axum::http::{HeaderMap, StatusCode};
    use std::sync::Mutex;

    fn config(api: Api, base_url: &str) -> HttpModel {
        let mut params = Map::new();
        params.insert("temperature".into(), json!(0.5));
        params.insert("stop".into(), json!("\n\nHuman:"));
        HttpModel {
            api,
            name: "claude".into(),
            base_url: base_url.into(),
            model: "claude-sonnet-4-5".into(),
            api_key_env: Some("ANTHROPIC_API_KEY".into()),
            params,
            seed: None,
            n_per_request: usize::MAX,
            timeout: Duration::from_secs(5),
            max_retries: 4,
            concurrency: None,
            rpm: None,
            tpm: None,
        }
    }

    fn task() -> Task {
        Task {
            index: 0,
            id: "t".into(),
            inputs: Default::default(),
            expected: None,
            distribution: None,
        }
    }

    /// A model that is never called: for request bodies.
    fn offline(api: Api, url: &str) -> NetworkModel {
        NetworkModel::new(config(api, url), None, Default::default()).unwrap()
    }

    #[test]
    fn anthropic_request_has_the_messages_api_shape() {
        let m = offline(Api::Anthropic, "https://api.anthropic.com/v1");
        let body = m.body("Be brief.", "What is 2+2?", &[], 3, 1);
        assert_eq!(
            body,
            json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": 1024,
                "system": "Be brief.",
                "messages": [{"role": "user", "content": "What is 2+2?"}],
                "temperature": 0.5,
                "stop_sequences": ["\n\nHuman:"],
            })
        );
        assert_eq!(m.url, "https://api.anthropic.com/v1/messages");
        assert_eq!(m.max_n_per_request(), 1);
    }

    #[test]
    fn a_conversation_sends_each_reply_and_its_feedback_in_order() {
        let m = offline(Api::OpenAi, "http://127.0.0.1:8080/v1");
        let history = [Turn {
            reply: "It is 5.".into(),
            feedback: "That was checked and rejected. Try again.".into(),
        }];
        let body = m.body("", "What is 2+2?", &history, 0, 1);
        assert_eq!(
            body["messages"],
            json!([
                {"role": "user", "content": "What is 2+2?"},
                {"role": "assistant", "content": "It is 5."},
                {"role": "user", "content": "That was checked and rejected. Try again."},
            ])
        );
    }

    #[test]
    fn anthropic_response_text_and_usage_are_read() {
        let doc = r#"{"id":"msg_013Zva2CMHLNnXjNJJKqJ2EF","type":"message","role":"assistant",
            "content":[{"type":"text","text":"Hi! My name is Claude."}],
            "model":"claude-sonnet-4-5","stop_reason":"end_turn","stop_sequence":null,
            "usage":{"input_tokens":2095,"output_tokens":503}}"#;
        let p = parse_anthropic(doc).unwrap();
        assert_eq!(p.texts, vec!["Hi! My name is Claude.".to_owned()]);
        assert_eq!(p.usage, Some((2095, 503)));
        assert!(parse_anthropic(r#"{"type":"error"}"#).is_err());
    }

    #[test]
    fn openai_request_numbers_seeds_by_sample() {
        let mut c = config(Api::OpenAi, "http://127.0.0.1:1/v1");
        c.seed = Some(100);
        let m = NetworkModel::new(c, None, Default::default()).unwrap();
        let body = m.body("", "hi", &[], 8, 4);
        assert_eq!(body["seed"], 108);
        assert_eq!(body["n"], 4);
        assert_eq!(body["stop"], "\n\nHuman:");
        assert_eq!(body["messages"], json!([{"role": "user", "content": "hi"}]));
    }

    /// Answers 429 (retry-after: 0), then 529 overloaded, then a message.
    async fn stand_in(seen: Arc<Mutex<Vec<HeaderMap>>>, statuses: Vec<u16>) -> String {
        let calls = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new().route(
            "/v1/messages",
            axum::routing::post(move |headers: HeaderMap| {
                let seen = seen.clone();
                let calls = calls.clone();
                let statuses = statuses.clone();
                async move {
                    seen.lock().unwrap().push(headers);
                    let i = calls.fetch_add(1, Ordering::SeqCst);
                    let status = StatusCode::from_u16(statuses.get(i).copied().unwrap_or(200)).unwrap();
                    let body = match status.as_u16() {
                        200 => json!({"id": "msg_1", "type": "message", "role": "assistant",
                            "content": [{"type": "text", "text": "4"}], "model": "claude-sonnet-4-5",
                            "stop_reason": "end_turn", "usage": {"input_tokens": 12, "output_tokens": 1}}),
                        429 => json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}),
                        529 => json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
                        _ => json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}),
                    };
                    (status, [("retry-after", "0")], body.to_string())
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/v1")
    }

    fn request(task: &Task) -> CallRequest<'_> {
        CallRequest {
            agent: "a",
            task,
            system: "Be brief.",
            prompt: "What is 2+2?",
            history: &[],
            first_sample: 0,
            n: 1,
            scene: None,
            trace: None,
            explaining: None,
        }
    }

    fn anthropic(url: &str, key: &str) -> NetworkModel {
        NetworkModel::new(
            config(Api::Anthropic, url),
            Some(key.into()),
            Default::default(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn anthropic_429_and_529_are_retried_and_traced() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let url = stand_in(seen.clone(), vec![429, 529]).await;
        let m = anthropic(&url, "sk-ant-test");
        let t = task();
        let r = m.complete(request(&t)).await.unwrap();
        assert_eq!(r.completions[0].text, "4");
        assert_eq!(r.input_tokens, 12);
        let statuses: Vec<_> = r.attempts.iter().map(|a| a.status).collect();
        assert_eq!(statuses, vec![Some(429), Some(529), Some(200)]);
        let headers = seen.lock().unwrap();
        assert_eq!(headers[0]["x-api-key"], "sk-ant-test");
        assert_eq!(headers[0]["anthropic-version"], "2023-06-01");
        assert!(headers[0].get("authorization").is_none());
    }

    #[tokio::test]
    async fn anthropic_401_is_fatal_and_names_the_variable() {
        let url = stand_in(Default::default(), vec![401]).await;
        let m = anthropic(&url, "sk-ant-bad");
        let t = task();
        let e = m.complete(request(&t)).await.unwrap_err();
        assert!(e.fatal);
        assert_eq!(e.attempts.len(), 1);
        assert!(
            e.message.contains("401 Unauthorized") && e.message.contains("ANTHROPIC_API_KEY"),
            "{}",
            e.message
        );
        assert!(!e.to_string().contains("sk-ant-bad"));
    }
}
