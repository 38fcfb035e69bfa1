//! The scenario language: YAML in, a validated [`Scenario`] out.
//!
//! Owns everything a scenario file means — located YAML nodes and their
//! diagnostics, `--set` overrides, the serialized `spec` types, the loader
//! and datasets, prompt templates, answer extraction and normalization, agent
//! graphs, the failure-mode taxonomy, faithfulness experiments (their
//! counterfactual cases, self-explanation replies and prompts), and the
//! validator that builds the engine's types. Model settings are data here;
//! `model` builds providers from them.
//!
//! May use: `seed`. Nothing here imports `model`, `stats`, `store`,
//! `engine` or `report`.

pub mod answer;
pub mod attribution_file;
pub mod budget;
pub mod canonicalizer;
pub mod counterfactual;
pub mod dataset;
pub mod diagnostic;
pub mod environment;
pub mod explanation;
pub mod failure;
pub mod faithfulness;
mod faithfulness_validator;
pub mod generation;
pub mod graph;
pub mod json_text;
pub mod judge_file;
pub mod loader;
pub mod node;
pub mod overrides;
pub mod persona;
pub mod reasoning;
pub mod simulation;
pub mod spec;
pub mod template;
pub mod tolerance;
mod validated;
pub mod validator;

pub use validated::*;
