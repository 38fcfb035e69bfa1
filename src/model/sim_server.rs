//! `crucible sim-server`: the scenario's simulated models behind an
//! OpenAI-compatible API (`POST /v1/chat/completions` with `n`, `GET
//! /v1/models`), with fault injection, so that any client — crucible's own
//! `openai` provider included — can be pointed at models whose answer
//! distributions are known; and a stand-in reward model (`POST /v1/reward`)
//! whose scores are known too.
//!
//! Determinism: a request's user prompt is matched to the scenario task (and
//! agent) it was rendered from, and its samples are numbered from the
//! request's `seed` (0 when absent): sample k is the same text the in-process
//! simulated model draws for sample k. Faults are drawn per request from a
//! seeded counter and never change which samples a successful response holds.
//! With `logprobs`, the answer's token carries the distribution's other
//! answers at their probabilities, so judges that weigh verdicts by
//! log-probabilities can be tested against known numbers.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rand::RngExt;
use serde_json::{Value, json};

use crate::model::simulated::estimate_tokens;
use crate::scenario::simulation::SimulatedModel;
use crate::scenario::{ModelKind, Scenario, Task};
use crate::seed;

/// Fault rates (each a probability per request) and shapes.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Added latency: mean and standard deviation in ms (overrides the models').
    pub latency_ms: Option<(f64, f64)>,
    pub rate_429: f64,
    /// `Retry-After` seconds sent with 429.
    pub retry_after: f64,
    pub rate_500: f64,
    pub rate_503: f64,
    /// Headers are sent, then the connection is cut.
    pub rate_reset: f64,
    /// The response comes only after `stall_ms` (past a client's timeout).
    pub rate_stall: f64,
    pub stall_ms: u64,
    pub rate_malformed: f64,
    pub rate_truncated: f64,
    /// Reject `n` above this, as llama.cpp does above its slot count.
    pub max_n: Option<usize>,
    pub seed: u64,
    /// Require `Authorization: Bearer <key>` (401 otherwise).
    pub api_key: Option<String>,
}

/// The server's state.
pub struct SimServer {
    scenario: Arc<Scenario>,
    /// Rendered user prompt → (agent, task index).
    prompts: HashMap<String, (String, usize)>,
    faults: Faults,
    requests: AtomicU64,
}

enum Fault {
    TooMany,
    Internal,
    Unavailable,
    Reset,
    Stall,
    Malformed,
    Truncated,
}

impl SimServer {
    pub fn new(scenario: Arc<Scenario>, faults: Faults) -> Self {
        let mut prompts = HashMap::new();
        for agent in &scenario.agents {
            for task in &scenario.tasks {
                if let Ok(p) = agent.prompt.render(&task.inputs) {
                    prompts.entry(p).or_insert((agent.name.clone(), task.index));
                }
            }
        }
        SimServer {
            scenario,
            prompts,
            faults,
            requests: AtomicU64::new(0),
        }
    }

    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/reward", post(reward))
            .route("/v1/models", get(models))
            .with_state(self)
    }

    fn model(&self, name: &str) -> Option<&SimulatedModel> {
        self.scenario.models.iter().find_map(|m| match &m.kind {
            ModelKind::Simulated(s) if m.name == name => Some(s),
            _ => None,
        })
    }

    fn draw_fault(&self) -> Option<Fault> {
        let counter = self.requests.fetch_add(1, Ordering::Relaxed);
        let u: f64 = seed::rng(self.faults.seed, &["fault".into(), counter.into()]).random();
        let f = &self.faults;
        let mut acc = 0.0;
        for (rate, fault) in [
            (f.rate_429, 0),
            (f.rate_500, 1),
            (f.rate_503, 2),
            (f.rate_reset, 3),
            (f.rate_stall, 4),
            (f.rate_malformed, 5),
            (f.rate_truncated, 6),
        ] {
            acc += rate;
            if u < acc {
                return Some(match fault {
                    0 => Fault::TooMany,
                    1 => Fault::Internal,
                    2 => Fault::Unavailable,
                    3 => Fault::Reset,
                    4 => Fault::Stall,
                    5 => Fault::Malformed,
                    _ => Fault::Truncated,
                });
            }
        }
        None
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = json!({"error": {"code": status.as_u16(), "message": message, "type": "invalid_request_error"}});
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn models(State(server): State<Arc<SimServer>>) -> Response {
    let data: Vec<Value> = server
        .scenario
        .models
        .iter()
        .filter(|m| matches!(m.kind, ModelKind::Simulated(_)))
        .map(|m| json!({"id": m.name, "object": "model", "owned_by": "crucible"}))
        .collect();
    let body = json!({"object": "list", "data": data});
    ([("content-type", "application/json")], body.to_string()).into_response()
}

async fn chat(State(server): State<Arc<SimServer>>, headers: HeaderMap, body: Bytes) -> Response {
    let f = &server.faults;
    if let Some(key) = &f.api_key {
        let sent = headers.get("authorization").and_then(|v| v.to_str().ok());
        if sent != Some(format!("Bearer {key}").as_str()) {
            return error(StatusCode::UNAUTHORIZED, "invalid API key");
        }
    }
    let fault = server.draw_fault();
    match fault {
        Some(Fault::TooMany) => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "rate limited (injected)");
            if let Ok(v) = HeaderValue::from_str(&f.retry_after.to_string()) {
                r.headers_mut().insert("retry-after", v);
            }
            return r;
        }
        Some(Fault::Internal) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error (injected)",
            );
        }
        Some(Fault::Unavailable) => {
            return error(StatusCode::SERVICE_UNAVAILABLE, "unavailable (injected)");
        }
        Some(Fault::Reset) => {
            let cut = futures_util::stream::once(async {
                Err::<Bytes, std::io::Error>(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "connection reset (injected)",
                ))
            });
            return Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/json")
                .body(Body::from_stream(cut))
                .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "reset"));
        }
        Some(Fault::Stall) => tokio::time::sleep(Duration::from_millis(f.stall_ms)).await,
        _ => {}
    }
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid JSON body: {e}")),
    };
    let name = req.get("model").and_then(Value::as_str).unwrap_or_default();
    let Some(model) = server.model(name) else {
        return error(StatusCode::NOT_FOUND, &format!("model `{name}` not found"));
    };
    let n = req.get("n").and_then(Value::as_u64).unwrap_or(1) as usize;
    if n == 0 || f.max_n.is_some_and(|max| n > max) {
        let max = f.max_n.unwrap_or(128);
        return error(
            StatusCode::BAD_REQUEST,
            &format!("Value must be between 1 <= value <= {max}"),
        );
    }
    let first = req.get("seed").and_then(Value::as_u64).unwrap_or(0) as usize;
    let messages = req
        .get("messages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let content = |role: &str| {
        messages
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some(role))
            .and_then(|m| m.get("content").and_then(Value::as_str))
            .unwrap_or_default()
            .to_owned()
    };
    let (system, prompt) = (content("system"), content("user"));
    let unknown;
    let (agent, task): (&str, &Task) = match server.prompts.get(&prompt) {
        Some((agent, idx)) => (agent, &server.scenario.tasks[*idx]),
        None => {
            unknown = Task {
                index: 0,
                id: format!("prompt-{}", &blake3::hash(prompt.as_bytes()).to_hex()[..32]),
                inputs: Default::default(),
                expected: None,
                distribution: None,
            };
            ("client", &unknown)
        }
    };
    let dist = model.distribution_for(task);
    let mut latency: f64 = 0.0;
    let mut choices = Vec::with_capacity(n);
    let mut completion_tokens = 0;
    let top_logprobs = match (req.get("logprobs"), req.get("top_logprobs")) {
        (Some(Value::Bool(true)), top) => Some(top.and_then(Value::as_u64).unwrap_or(0) as usize),
        _ => None,
    };
    for (i, k) in (first..first + n).enumerate() {
        let (c, ms, _) = model.sample(agent, task, k, &dist, None);
        latency = latency.max(ms);
        completion_tokens += c.output_tokens;
        let mut choice = json!({"index": i, "message": {"role": "assistant", "content": c.text}, "finish_reason": "stop"});
        if let Some(top) = top_logprobs {
            choice["logprobs"] = json!({"content": logprobs(model, &c.text, &dist, top)});
        }
        choices.push(choice);
    }
    let delay = match f.latency_ms {
        Some((mean, sd)) => {
            let mut rng = seed::rng(
                f.seed,
                &[
                    "latency".into(),
                    prompt.as_str().into(),
                    (first as u64).into(),
                ],
            );
            (mean + sd * seed::standard_normal(&mut rng)).max(0.0)
        }
        None => latency,
    };
    if delay > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(delay / 1000.0)).await;
    }
    let prompt_tokens = estimate_tokens(&system) + estimate_tokens(&prompt);
    let text = json!({
        "id": format!("chatcmpl-{}-{first}", task.id),
        "object": "chat.completion",
        "created": 0,
        "model": name,
        "choices": choices,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    })
    .to_string();
    let text = match fault {
        Some(Fault::Malformed) => "{\"choices\": [oops".to_owned(),
        Some(Fault::Truncated) => text[..text.len() / 2].to_owned(),
        _ => text,
    };
    ([("content-type", "application/json")], text).into_response()
}

/// Log-probabilities of a simulated text, as chat completions report them:
/// the text is three tokens — before the answer, the answer, after it — and
/// only the answer is uncertain, its alternatives being the other answers
/// of the distribution at their probabilities (`top` of them, most likely
/// first). An abstention is one certain token.
fn logprobs(
    model: &SimulatedModel,
    text: &str,
    dist: &[(Option<String>, f64)],
    top: usize,
) -> Vec<Value> {
    let certain = |t: &str| json!({"token": t, "logprob": 0.0, "top_logprobs": [{"token": t, "logprob": 0.0}]});
    let (before, after) = model
        .style
        .format
        .split_once("{answer}")
        .unwrap_or((&model.style.format, ""));
    let answer_span = text
        .strip_suffix(after)
        .and_then(|t| t.rfind(before).map(|at| (at + before.len(), t.len())));
    let mut answers: Vec<(String, f64)> = dist
        .iter()
        .filter_map(|(a, p)| Some((model.shown(a.as_deref()?), *p)))
        .filter(|(_, p)| *p > 0.0)
        .collect();
    answers.sort_by(|a, b| b.1.total_cmp(&a.1));
    let Some((start, end)) =
        answer_span.filter(|&(s, e)| answers.iter().any(|(a, _)| *a == text[s..e]))
    else {
        return vec![certain(text)];
    };
    let chosen = &text[start..end];
    let p = answers
        .iter()
        .find(|(a, _)| a == chosen)
        .map_or(0.0, |a| a.1);
    let alternatives: Vec<Value> = answers
        .iter()
        .take(top.max(1))
        .map(|(a, p)| json!({"token": a, "logprob": p.ln()}))
        .collect();
    let mut tokens = Vec::new();
    if start > 0 {
        tokens.push(certain(&text[..start]));
    }
    tokens.push(json!({"token": chosen, "logprob": p.ln(), "top_logprobs": alternatives}));
    if end < text.len() {
        tokens.push(certain(&text[end..]));
    }
    tokens
}

/// A stand-in reward model (`POST /v1/reward`, crucible's reward protocol):
/// the request's `prompt` names the task; `{"score": s}` of the `response`,
/// or with `steps`, `{"step_scores": [...]}`, each by [`stand_in_reward`].
async fn reward(State(server): State<Arc<SimServer>>, body: Bytes) -> Response {
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid JSON body: {e}")),
    };
    let text = |key: &str| req.get(key).and_then(Value::as_str).unwrap_or_default();
    let expected = server
        .prompts
        .get(text("prompt"))
        .and_then(|(_, idx)| server.scenario.tasks[*idx].expected.as_deref());
    let mut out = match req.get("steps").and_then(Value::as_array) {
        Some(steps) => {
            let scores: Vec<f64> = steps
                .iter()
                .map(|s| stand_in_reward(s.as_str().unwrap_or_default(), expected))
                .collect();
            json!({"step_scores": scores})
        }
        None => json!({"score": stand_in_reward(text("response"), expected)}),
    };
    out["usage"] = json!({"prompt_tokens": estimate_tokens(text("prompt")) + estimate_tokens(text("response"))});
    ([("content-type", "application/json")], out.to_string()).into_response()
}

/// The stand-in reward model's score of a piece of text: 0.9 when it states
/// the task's expected answer as a word of its own, else 0.2 + 0.1 × (its
/// number of words mod 4) — known numbers, not a model of anything.
pub fn stand_in_reward(text: &str, expected: Option<&str>) -> f64 {
    let words: Vec<&str> = text
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
        .collect();
    if expected.is_some_and(|e| words.contains(&e)) {
        0.9
    } else {
        0.2 + 0.1 * (words.len() % 4) as f64
    }
}

/// Serve until the listener fails or the process is stopped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    server: Arc<SimServer>,
) -> std::io::Result<()> {
    axum::serve(listener, server.router()).await
}
