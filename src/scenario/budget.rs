//! What a run may spend and what it has spent, in requests, tokens and
//! dollars: the caps of `budget:`, model prices, and which caps a
//! scenario's models cannot be held to (a validation error). The engine's
//! ledger (`engine::budget`) holds a run to these caps.

use crate::scenario::Scenario;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Budget {
    pub max_requests: Option<u64>,
    pub max_tokens: Option<u64>,
    pub max_cost_usd: Option<f64>,
}

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input: f64,
    pub output: f64,
}

impl Price {
    pub fn cost(&self, input_tokens: u64, output_tokens: u64) -> f64 {
        (self.input * input_tokens as f64 + self.output * output_tokens as f64) / 1e6
    }
}

/// Requests, tokens and dollars.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Spend {
    pub requests: u64,
    pub tokens: u64,
    pub cost_usd: f64,
}

impl Spend {
    /// One request's worth of `input` and `output` tokens at `price`.
    pub fn call(price: Option<Price>, input: u64, output: u64) -> Spend {
        Spend {
            requests: 1,
            tokens: input + output,
            cost_usd: price.map_or(0.0, |p| p.cost(input, output)),
        }
    }

    pub(crate) fn plus(self, o: Spend) -> Spend {
        Spend {
            requests: self.requests + o.requests,
            tokens: self.tokens + o.tokens,
            cost_usd: self.cost_usd + o.cost_usd,
        }
    }

    pub(crate) fn minus(self, o: Spend) -> Spend {
        Spend {
            requests: self.requests.saturating_sub(o.requests),
            tokens: self.tokens.saturating_sub(o.tokens),
            cost_usd: (self.cost_usd - o.cost_usd).max(0.0),
        }
    }
}

/// A cap in `budget:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    Tokens,
    Cost,
}

/// Caps that a model some agent uses cannot be held to: token and cost caps
/// reserve a request's worst case, so its output must be bounded, and a cost
/// cap needs every such model priced.
pub fn unenforceable(scenario: &Scenario) -> Vec<(Cap, String)> {
    let mut used: Vec<usize> = scenario
        .agents
        .iter()
        .map(|a| a.model)
        .chain(scenario.verifiers.iter().filter_map(|v| v.model()))
        .chain(
            scenario
                .judges
                .iter()
                .flat_map(|j| j.models.iter().copied()),
        )
        .collect();
    used.sort_unstable();
    used.dedup();
    unenforceable_on(
        &scenario.budget,
        used.into_iter().map(|i| &scenario.models[i]),
    )
}

/// The caps of `b` that calls to `models` could pass unnoticed, each with
/// what to do about it.
pub fn unenforceable_on<'m>(
    b: &Budget,
    models: impl Iterator<Item = &'m crate::scenario::Model>,
) -> Vec<(Cap, String)> {
    let mut out = Vec::new();
    for model in models {
        let unbounded = |cap: &str| {
            format!(
                "`{cap}` in the budget needs `max_tokens` on model `{}`, so that a request's worst case is known before it is sent",
                model.name
            )
        };
        if b.max_tokens.is_some() && !model.output_bounded() {
            out.push((Cap::Tokens, unbounded("max_tokens")));
        }
        if b.max_cost_usd.is_some() {
            if model.price.is_none() {
                out.push((
                    Cap::Cost,
                    format!(
                        "`max_cost_usd` in the budget needs a `price` on model `{}`, e.g. `price: {{input: 2.5, output: 10}}` (USD per million tokens)",
                        model.name
                    ),
                ));
            } else if !model.output_bounded() {
                out.push((Cap::Cost, unbounded("max_cost_usd")));
            }
        }
    }
    out
}
