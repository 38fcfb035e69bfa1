//! crucible: a YAML-scripted engine for experiments on LLM agents and
//! test-time scaling, with every sample traced to SQLite.
//!
//! The pipeline is `Loader` (YAML → [`spec`] types) → `Validator` (→ the
//! engine's [`scenario::Scenario`]) → `Executor` (samples, verifier scores and
//! strategy outcomes, streamed to the [`store`]) → [`summary`] (accuracy with
//! bootstrap intervals). See ARCHITECTURE.md for the map and the invariants.

pub mod analysis;
pub mod answer;
pub mod bootstrap;
pub mod budget;
pub mod canonicalizer;
pub mod dataset;
pub mod diagnostic;
pub mod error;
pub mod estimator;
pub mod executor;
pub mod export;
pub mod failure;
pub mod graph;
pub mod http;
pub mod loader;
pub mod network;
pub mod node;
pub mod overrides;
pub mod persona;
pub mod plot;
pub mod provider;
pub mod rate_limit;
pub mod replay;
pub mod runner;
pub mod scenario;
pub mod scene;
pub mod seed;
pub mod sim_server;
pub mod simulated;
pub mod spec;
pub mod store;
pub mod strategy;
pub mod summary;
pub mod template;
pub mod validator;
pub mod verdict;
pub mod verifier;
pub mod walker;

pub use error::Error;
pub use runner::{RunOptions, Runner};
