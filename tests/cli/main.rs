//! Integration tests: the `crucible` binary driven on real scenario files and
//! real SQLite databases in temporary directories.

/// People's labels: `labels import` round trips, corrections as history,
/// annotators in agreement against Python, every problem of a bad file.
mod annotations;
/// Failure attribution: counterfactual replay against injected failures,
/// Shapley efficiency, strict replay, resumed blames, refusals.
mod blame;
/// The browser harness: headless Chromium over WebDriver, for the viewer.
mod browser;
/// Failed calls: errors that are never scored, `fail_on_error`, a model
/// nobody serves, resume retrying errors, environment variables in scenarios.
mod errors;
/// Faithfulness experiments: NSG of the simulated explainer against its
/// known faithfulness, metrics recomputed in Python, determinism, resume,
/// replay, malformed sections, a llama.cpp explainer.
mod faithfulness;
/// Graphs: validation of `graph:` and simulated agents, the walker, group
/// chats, strategies over graph runs, injected failures, graph scoring.
mod graphs;
/// Failure judges: inline and post hoc, simulated and llama.cpp, budgets,
/// imported traces (MAD, Who&When), agreement against Python.
mod judges;
/// Providers: HTTP models on the sim-server (faults, split requests, budgets,
/// rate limits, API keys), llama.cpp, LLM judges and reward models.
mod providers;
/// Reports: `analyze` of stored pools, `plot` charts, `show`, table snapshots.
mod report;
/// Scenario files: validation and its diagnostics, `--set` overrides, the
/// JSON schema, answer extraction and normalization.
mod scenario;
/// The store: determinism across concurrency, `runs`, `export`, reading
/// commands, strict replay, the response cache, ctrl-c and kill -9 resumes.
mod store;
/// Strategies and estimators: curves against analytic ones and brute force
/// (proptests), adaptive consistency, self-correction, programmatic verifiers.
mod strategies;
/// Theory: `crucible theory`'s exact curves against Python's enumeration
/// and its own Monte Carlo, a scenario's simulated model, bad input.
mod theory;
/// Tidy: invariants of the source tree (the layer table of `src/`'s
/// folders, SQLite and HTTP clients in their layers, module docs).
mod tidy;
/// Helpers shared by the modules: the `Crucible` command builder, scratch
/// directories, database queries, the sim-server, shared scenarios.
mod util;
/// The viewer in headless Chromium: browsing, keyboard labelling, blind
/// mode, comparison, live runs, an XSS corpus; its guard over raw HTTP;
/// the self-contained report.
mod viewer;
