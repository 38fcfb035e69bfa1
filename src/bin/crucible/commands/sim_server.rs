//! `crucible sim-server`: the scenario's simulated models behind an
//! OpenAI-compatible API, with fault injection, until Ctrl-C.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use crucible::Runner;
use crucible::model::sim_server::{Faults, SimServer, serve};

#[derive(clap::Args)]
pub struct Args {
    /// Scenario file (YAML) defining simulated models, agents and tasks.
    pub file: PathBuf,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one; the address is printed).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Latency per request in ms: MEAN or MEAN,SD (default: the models' own).
    #[arg(long, value_parser = parse_latency)]
    pub latency_ms: Option<(f64, f64)>,
    /// Share of requests answered 429 with Retry-After.
    #[arg(long, default_value_t = 0.0)]
    pub fail_429: f64,
    /// Retry-After seconds sent with 429.
    #[arg(long, default_value_t = 1.0)]
    pub retry_after: f64,
    /// Share of requests answered 500.
    #[arg(long, default_value_t = 0.0)]
    pub fail_500: f64,
    /// Share of requests answered 503.
    #[arg(long, default_value_t = 0.0)]
    pub fail_503: f64,
    /// Share of requests whose connection is cut after the headers.
    #[arg(long, default_value_t = 0.0)]
    pub reset: f64,
    /// Share of requests that stall for --stall-ms before answering.
    #[arg(long, default_value_t = 0.0)]
    pub stall: f64,
    #[arg(long, default_value_t = 30_000)]
    pub stall_ms: u64,
    /// Share of requests answered with malformed JSON.
    #[arg(long, default_value_t = 0.0)]
    pub malformed: f64,
    /// Share of requests answered with truncated JSON.
    #[arg(long, default_value_t = 0.0)]
    pub truncated: f64,
    /// Reject `n` above this (llama.cpp rejects n above its slot count).
    #[arg(long)]
    pub max_n: Option<usize>,
    /// Seed for fault draws.
    #[arg(long, default_value_t = 0)]
    pub fault_seed: u64,
    /// Require clients to send this key (`Authorization: Bearer KEY`).
    #[arg(long, env = "CRUCIBLE_SIM_SERVER_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

pub fn exec(
    Args {
        file,
        host,
        port,
        latency_ms,
        fail_429,
        retry_after,
        fail_500,
        fail_503,
        reset,
        stall,
        stall_ms,
        malformed,
        truncated,
        max_n,
        fault_seed,
        api_key,
    }: Args,
) -> anyhow::Result<ExitCode> {
    let scenario = Arc::new(Runner::validate(&file, &[])?);
    let faults = Faults {
        latency_ms,
        rate_429: fail_429,
        retry_after,
        rate_500: fail_500,
        rate_503: fail_503,
        rate_reset: reset,
        rate_stall: stall,
        stall_ms,
        rate_malformed: malformed,
        rate_truncated: truncated,
        max_n,
        seed: fault_seed,
        api_key,
    };
    let total = fail_429 + fail_500 + fail_503 + reset + stall + malformed + truncated;
    anyhow::ensure!(
        (0.0..=1.0).contains(&total),
        "fault rates add up to {total}; they must add up to at most 1"
    );
    let server = Arc::new(SimServer::new(scenario, faults));
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind((host.as_str(), port))
            .await
            .with_context(|| format!("cannot listen on {host}:{port}"))?;
        let addr = listener.local_addr()?;
        outln!("listening on http://{addr}/v1");
        std::io::stdout().flush()?;
        tokio::select! {
            r = serve(listener, server) => r.context("serving")?,
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn parse_latency(s: &str) -> Result<(f64, f64), String> {
    let mut parts = s.split(',').map(|p| p.trim().parse::<f64>());
    let mean = parts
        .next()
        .and_then(Result::ok)
        .ok_or("expected MEAN or MEAN,SD in ms")?;
    let sd = parts
        .next()
        .transpose()
        .map_err(|e| e.to_string())?
        .unwrap_or(0.0);
    if mean < 0.0 || sd < 0.0 {
        return Err("latency must not be negative".into());
    }
    Ok((mean, sd))
}
