//! HTTP exchanges for the network providers: one POST with retries.
//!
//! Retries use exponential backoff with full jitter on 408, 429, 5xx,
//! connection errors, timeouts and unreadable bodies, and honour
//! `Retry-After` (seconds or an HTTP date). 400, 401, 403 and 404 are never
//! retried. Every attempt is returned for the trace; time spent waiting is
//! kept apart from latency. Credentials go into headers only, and headers are
//! never returned or stored.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use rand::RngExt;

use crate::model::provider::Attempt;

/// How hard to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base: Duration,
    pub cap: Duration,
}

/// Why an exchange did not produce a usable body.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// Retrying will not help this request (e.g. 400); other requests may work.
    Request(String),
    /// Retrying anything will not help (bad key, wrong URL or model).
    Fatal(String),
    /// The server said `n` is too large and named its maximum.
    NTooLarge { max: usize, message: String },
    /// Retries ran out.
    GaveUp(String),
    /// Retries ran out without a connection ever being made: nothing
    /// listens at the URL.
    Unreachable(String),
}

/// A configured endpoint.
pub struct Endpoint<'a> {
    pub client: &'a reqwest::Client,
    pub url: &'a str,
    pub headers: &'a [(&'static str, String)],
    pub model: &'a str,
    /// The environment variable holding the key, for error hints.
    pub key_env: Option<&'a str>,
    pub policy: RetryPolicy,
    /// Incremented while a call waits to retry (for the progress display).
    pub waiting: &'a Arc<AtomicU64>,
}

/// POST `body`, parse a 200 response with `parse`; retry what is worth retrying.
pub async fn post<T>(
    ep: &Endpoint<'_>,
    body: &str,
    n: usize,
    parse: impl Fn(&str) -> Result<T, String>,
) -> (Result<(T, String), Failure>, Vec<Attempt>) {
    let mut attempts = Vec::new();
    let mut connected = false;
    let mut wait = Duration::ZERO;
    let mut rng = jitter_rng();
    for attempt in 0..=ep.policy.max_retries {
        if !wait.is_zero() {
            ep.waiting.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(wait).await;
            ep.waiting.fetch_sub(1, Ordering::Relaxed);
        }
        let started = Instant::now();
        let mut req = ep
            .client
            .post(ep.url)
            .header("content-type", "application/json")
            .body(body.to_owned());
        for (k, v) in ep.headers {
            req = req.header(*k, v);
        }
        let result = match req.send().await {
            Ok(resp) => {
                connected = true;
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after);
                match resp.text().await {
                    Ok(text) => Ok((status, retry_after, text)),
                    Err(e) => Err(format!("reading the response body: {}", error_chain(&e))),
                }
            }
            Err(e) => {
                connected |= !e.is_connect();
                Err(error_chain(&e))
            }
        };
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let mut record = Attempt {
            status: None,
            error: None,
            latency_ms,
            wait_ms: wait.as_secs_f64() * 1000.0,
            n,
        };
        let backoff = full_jitter(ep.policy, attempt, &mut rng);
        match result {
            Err(e) => {
                record.error = Some(e);
                wait = backoff;
            }
            Ok((status, retry_after, text)) => {
                record.status = Some(status);
                match status {
                    200..=299 => match parse(&text) {
                        Ok(v) => {
                            attempts.push(record);
                            return (Ok((v, text)), attempts);
                        }
                        Err(e) => {
                            record.error = Some(format!("unreadable response: {e}"));
                            wait = backoff;
                        }
                    },
                    408 | 429 | 500..=599 => {
                        record.error = Some(format!("{} {}", status, short(&text)));
                        wait = retry_after.unwrap_or(backoff);
                    }
                    _ => {
                        let failure = classify(ep, status, &text);
                        record.error = Some(format!("{status} {}", short(&text)));
                        attempts.push(record);
                        return (Err(failure), attempts);
                    }
                }
            }
        }
        attempts.push(record);
    }
    let last = attempts
        .last()
        .and_then(|a| a.error.clone())
        .unwrap_or_default();
    let failure = if connected {
        Failure::GaveUp(format!(
            "gave up after {} attempts at {}; last error: {last}",
            attempts.len(),
            ep.url
        ))
    } else {
        // The innermost cause says it: "Connection refused (os error 111)".
        let cause = last.rsplit(": ").next().unwrap_or(&last);
        Failure::Unreachable(format!(
            "cannot connect to {} ({cause}; {} attempts)",
            ep.url,
            attempts.len()
        ))
    };
    (Err(failure), attempts)
}

/// What a non-retryable status means, in words a person can act on.
fn classify(ep: &Endpoint<'_>, status: u16, body: &str) -> Failure {
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let head = format!("{status} {reason} from {}", ep.url);
    match status {
        401 | 403 => Failure::Fatal(match ep.key_env {
            Some(env) => format!("{head} — is {env} set to a valid key?"),
            None => {
                format!("{head} — does this server need an API key? Set `api_key_env` on the model")
            }
        }),
        404 => Failure::Fatal(format!(
            "{head} — check `base_url` (usually ending in /v1) and the model name `{}`: {}",
            ep.model,
            short(body)
        )),
        400 => match n_limit(body) {
            Some(max) => Failure::NTooLarge {
                max,
                message: short(body),
            },
            None => Failure::Request(format!("{head}: {}", short(body))),
        },
        _ => Failure::Request(format!("{head}: {}", short(body))),
    }
}

/// The largest `n` a server allows, from a 400 such as llama.cpp's
/// "Value must be between 1 <= value <= 4" (only when the message is about `n`).
fn n_limit(body: &str) -> Option<usize> {
    if !body.contains("value <=") && !body.contains("'n'") && !body.contains("\"n\"") {
        return None;
    }
    let at = body.rfind("<=")?;
    let digits: String = body[at + 2..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok().filter(|&m: &usize| m >= 1)
}

/// Seconds or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs >= 0.0 && secs.is_finite())
            .then(|| Duration::from_secs_f64(secs.min(3600.0)));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .min(Duration::from_secs(3600)),
    )
}

/// Uniform in [0, min(cap, base·2^attempt)].
fn full_jitter(p: RetryPolicy, attempt: u32, rng: &mut impl RngExt) -> Duration {
    let ceiling = p.base.saturating_mul(1u32 << attempt.min(16)).min(p.cap);
    ceiling.mul_f64(rng.random::<f64>())
}

/// Jitter only spreads retries in time; it never touches results.
fn jitter_rng() -> rand::rngs::ChaCha8Rng {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    crate::seed::rng(nanos, &[COUNTER.fetch_add(1, Ordering::Relaxed).into()])
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let text = inner.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        src = inner.source();
    }
    s
}

/// A body trimmed for messages.
fn short(body: &str) -> String {
    let t = body.trim();
    let mut s: String = t.chars().take(300).collect();
    if t.chars().count() > 300 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
        let past = httpdate::fmt_http_date(SystemTime::UNIX_EPOCH);
        assert_eq!(parse_retry_after(&past), Some(Duration::ZERO));
        let future = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        let d = parse_retry_after(&future).unwrap();
        assert!(
            d > Duration::from_secs(27) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn n_limit_reads_llama_cpp_message() {
        let body = r#"{"error":{"code":400,"message":"Value must be between 1 <= value <= 4","type":"invalid_request_error"}}"#;
        assert_eq!(n_limit(body), Some(4));
        assert_eq!(n_limit(r#"{"error":"prompt too long"}"#), None);
    }

    #[test]
    fn jitter_stays_under_the_ceiling() {
        let p = RetryPolicy {
            max_retries: 5,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
        };
        let mut rng = jitter_rng();
        for attempt in 0..10 {
            let d = full_jitter(p, attempt, &mut rng);
            let ceiling = Duration::from_millis(100 * (1 << attempt)).min(Duration::from_secs(1));
            assert!(d <= ceiling);
        }
    }
}
