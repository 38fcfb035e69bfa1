//! Everything that produces model output.
//!
//! Owns the [`provider::Provider`] trait and its request and response
//! types, HTTP with retries, the OpenAI-compatible and Anthropic wire
//! formats, rate limits, the simulated model and the personas its agents
//! act out in graph scenes, the simulated judge, explainer and predictor,
//! replay of recorded responses, reading a judge's verdict, and `crucible
//! sim-server`. It is the only layer that does
//! network I/O to models.
//!
//! May use: `scenario`, `seed`.

pub mod actor;
pub mod explainer;
pub mod explaining;
pub mod http;
pub mod judged;
pub mod network;
pub mod predictor;
pub mod provider;
pub mod rate_limit;
pub mod replay;
pub mod scene;
pub mod sim_server;
pub mod simulated;
pub mod verdict;
