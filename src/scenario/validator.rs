//! The validator: checks a loaded scenario's meaning and builds the engine's
//! [`Scenario`]. It reports every problem (undefined references, bad regexes
//! and templates, template variables no item has, out-of-range numbers), each
//! at the line and column where it was written.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::scenario::answer::{AnswerRule, Extractor, Step};
use crate::scenario::budget::{Budget, Cap, Price};
use crate::scenario::canonicalizer::Canonicalizer;
use crate::scenario::diagnostic::{Diagnostic, Diagnostics, SourceFile, Span, did_you_mean};
use crate::scenario::failure::FailureMode;
use crate::scenario::faithfulness_validator::FaithfulnessValidator;
use crate::scenario::judge_file::JudgeUse;
use crate::scenario::loader::Loaded;
use crate::scenario::node::Located;
use crate::scenario::persona::{Persona, Role};
use crate::scenario::simulation::{
    AnswerStyle, Correlation, Distribution, SimulatedExplainer, SimulatedJudge, SimulatedModel,
    SimulatedPredictor, Skills, spread_shares,
};
use crate::scenario::spec::{
    AggregateSpec, CheckSpec, CorrelationSpec, ExtractSpec, FailOnErrorSpec, ModelSpec,
    NormalizeStep, PolicySpec, RoleSpec, ScaleSpec, SimulateSpec, SimulatedExplainerSpec,
    SimulatedJudgeSpec, SimulatedPredictorSpec, SkillsSpec, Spread, StepsSpec, StopSpec,
    StrategyKindSpec, StrategySpec, VerifierKindSpec, VerifierSpec,
};
use crate::scenario::template::{Template, line_span};
use crate::scenario::tolerance::ErrorTolerance;
use crate::scenario::{
    Agent, Aggregate, CANDIDATE_FIELDS, Check, Correction, DEFAULT_FEEDBACK, DEFAULT_JUDGE_SCORE,
    DEFAULT_JUDGE_YES_NO, Judge, Model, ModelKind, Policy, RewardModel, Scale, Scenario,
    ScenarioSource, Steps, StopRule, Strategy, StrategyKind, Task, Verifier, VerifierKind,
};
use crate::scenario::{Api, HttpModel};

/// The name strategies use for the scenario's graph: `agent: graph` makes
/// each sample one run of the graph.
pub const GRAPH_AGENT: &str = "graph";

/// Largest `n` a strategy may ask for (exact estimators use f64 binomials).
pub const MAX_N: i64 = 1000;

/// Most judgements one judge model makes of one trace (`repeats`).
pub const MAX_REPEATS: usize = 1024;

/// The dataset field that overrides a simulated distribution per item.
pub const DISTRIBUTION_FIELD: &str = "distribution";

pub struct Validator<'a> {
    loaded: &'a Loaded,
    source: Arc<SourceFile>,
    /// Where commands run (default: the scenario's directory).
    workdir: Option<&'a std::path::Path>,
    diags: Diagnostics,
}

impl<'a> Validator<'a> {
    /// Validate; `Err` holds every diagnostic found. Commands run in
    /// `workdir`, or else in the scenario's directory.
    pub fn validate(
        loaded: &'a Loaded,
        workdir: Option<&'a std::path::Path>,
    ) -> Result<Scenario, Diagnostics> {
        let source = loaded
            .source
            .clone()
            .expect("validate is only called on a file that was read");
        let mut v = Validator {
            loaded,
            source,
            workdir,
            diags: Diagnostics::default(),
        };
        let scenario = v.build();
        if v.diags.is_empty() {
            Ok(scenario.expect("no diagnostics means a scenario was built"))
        } else {
            Err(v.diags)
        }
    }

    /// Only the models of `loaded` (a models file, or a scenario whose
    /// models another command borrows): the models, or every diagnostic.
    pub fn validate_models(loaded: &'a Loaded) -> Result<Vec<Model>, Diagnostics> {
        let source = loaded
            .source
            .clone()
            .expect("validate_models is only called on a file that was read");
        let mut v = Validator {
            loaded,
            source,
            workdir: None,
            diags: Diagnostics::default(),
        };
        let answer = v.answer_rule();
        let models = v.models(loaded.seed.unwrap_or(0), answer.as_ref(), &[]);
        match models {
            Some(m) if v.diags.is_empty() => Ok(m),
            _ => Err(v.diags),
        }
    }

    /// An optional whole number that must be at least `min`; reported and
    /// dropped when it is not.
    fn at_least(&mut self, x: &Option<Located<i64>>, what: &str, min: i64) -> Option<i64> {
        let x = x.as_ref()?;
        if x.value < min {
            self.err(
                x.span,
                format!("`{what}` must be at least {min}, found {}", x.value),
            );
            return None;
        }
        Some(x.value)
    }

    /// Samples per request: a whole pool unless the model says otherwise.
    fn n_per_request(&mut self, spec: &ModelSpec) -> usize {
        self.at_least(&spec.n_per_request, "n_per_request", 1)
            .map_or(usize::MAX, |n| n as usize)
    }

    fn err(&mut self, span: Span, msg: impl Into<String>) {
        let d = self.source.error(span, msg);
        self.diags.push(d);
    }

    fn build(&mut self) -> Option<Scenario> {
        let l = self.loaded;
        let name = match &l.name {
            Some(n) if n.trim().is_empty() => {
                self.err(n.span, "`name` must not be empty");
                String::new()
            }
            Some(n) => n.value.clone(),
            None => String::new(),
        };
        let seed = l.seed.unwrap_or(0);
        let answer = self.answer_rule();
        let (faithfulness, tasks) = match &l.faithfulness {
            Some(section) => {
                let names: Vec<&str> = l.agents.iter().map(|(n, _, _)| n.as_str()).collect();
                let mut checker = FaithfulnessValidator {
                    loaded: l,
                    source: &self.source,
                    diags: &mut self.diags,
                };
                match checker.validate(section, &names, seed) {
                    Some((f, tasks)) => (Some(f), tasks),
                    None => (None, Vec::new()),
                }
            }
            None => (None, self.tasks(answer.as_ref())),
        };
        let models = self.models(seed, answer.as_ref(), &tasks);
        let mut agents = self.agents();
        let graph_agent = self.graph_agent(&mut agents);
        let verifiers = self.verifiers(&tasks);
        let strategies = self.strategies(&agents, &verifiers);
        let budget = self.budget();
        let fail_on_error = self.fail_on_error();
        let graph = self.graph(&agents, &verifiers);
        let mut models = models;
        let judges = self.judges(graph.is_some(), &mut models);
        self.unreachable_failures(&agents, graph.as_ref());
        if let Some((span, _)) = &l.dataset
            && tasks.is_empty()
            && self.diags.is_empty()
        {
            self.err(*span, "the dataset has no items");
        }
        if !self.diags.is_empty() {
            return None;
        }
        let scenario = Scenario {
            name,
            description: l.description.clone().unwrap_or_default(),
            seed,
            source: ScenarioSource {
                path: self.source.path.clone(),
                text: self.source.text.clone(),
                files: l.files.clone(),
                hash: crate::scenario::source_hash(&self.source.text, &l.files),
            },
            models: models?,
            agents: agents.into_iter().map(|(a, _)| a).collect(),
            tasks,
            answer: answer?,
            verifiers,
            strategies,
            budget,
            fail_on_error,
            graph,
            graph_agent,
            judges,
            faithfulness,
        };
        for (cap, message) in crate::scenario::budget::unenforceable(&scenario) {
            let b = &l.budget;
            let span = match cap {
                Cap::Tokens => b.max_tokens.as_ref().map(|c| c.span),
                Cap::Cost => b.max_cost_usd.as_ref().map(|c| c.span),
            };
            if let Some(span) = span {
                self.err(span, message);
            }
        }
        self.diags.is_empty().then_some(scenario)
    }

    /// With a `graph`, the pseudo-agent [`GRAPH_AGENT`] whose samples are
    /// whole graph runs, so that strategies can wrap them; added to `agents`.
    fn graph_agent(&mut self, agents: &mut Vec<(Agent, Span)>) -> Option<usize> {
        let graph = self.loaded.graph.as_ref()?;
        if let Some((_, span)) = agents.iter().find(|(a, _)| a.name == GRAPH_AGENT) {
            let span = *span;
            self.err(
                span,
                format!(
                    "`{GRAPH_AGENT}` names the scenario's graph in strategies; rename this agent"
                ),
            );
            return None;
        }
        // A graph run calls its agents' models; the pseudo-agent borrows the
        // first agent's so that budget checks see a model in use.
        let model = agents.first()?.0.model;
        agents.push((
            Agent {
                name: GRAPH_AGENT.to_owned(),
                model,
                system: String::new(),
                prompt: Template::compile("").expect("an empty template compiles"),
                persona: Arc::default(),
            },
            graph.span,
        ));
        Some(agents.len() - 1)
    }

    /// The agent graph, if the scenario has one.
    fn graph(
        &mut self,
        agents: &[(Agent, Span)],
        verifiers: &[Verifier],
    ) -> Option<crate::scenario::graph::Graph> {
        let spec = self.loaded.graph.as_ref()?;
        // Not the graph pseudo-agent (last, so indices hold): no node runs
        // the graph itself.
        let agent_names: Vec<&str> = agents
            .iter()
            .map(|(a, _)| a.name.as_str())
            .filter(|&a| a != GRAPH_AGENT)
            .collect();
        let verifier_names: Vec<&str> = verifiers.iter().map(|v| v.name.as_str()).collect();
        let declared = &self.loaded.declared_agents;
        match crate::scenario::graph::GraphBuilder::build(
            spec,
            &agent_names,
            declared,
            &verifier_names,
        ) {
            Ok(graph) => Some(graph),
            Err(problems) => {
                for (span, message) in problems {
                    self.err(span, message);
                }
                None
            }
        }
    }

    /// Failures that no turn of the scenario can act out: any, without a
    /// graph; ending the conversation early or ignoring that it should end
    /// (FM-1.5, FM-3.1), for an agent that is no reviewer and speaks in no
    /// chat ending on a mention.
    fn unreachable_failures(
        &mut self,
        agents: &[(Agent, Span)],
        graph: Option<&crate::scenario::graph::Graph>,
    ) {
        use crate::scenario::failure::FailureMode;
        use crate::scenario::graph::NodeKind;
        let has_graph = self.loaded.graph.is_some();
        for (name, spec, src) in &self.loaded.agents {
            let Some(failures) = spec.simulate.as_ref().and_then(|s| s.failures.as_ref()) else {
                continue;
            };
            if !has_graph {
                if !failures.value.is_empty() {
                    self.diags.push(src.error(
                        failures.span,
                        "failures are acted out only in the turns of a graph, and this scenario has no `graph`",
                    ));
                }
                continue;
            }
            let (Some(graph), Some(agent)) =
                (graph, agents.iter().position(|(a, _)| a.name == name.value))
            else {
                continue;
            };
            if agents[agent].0.persona.role == Role::Reviewer {
                continue;
            }
            let in_mention_chat = graph.graph.node_weights().any(|n| match &n.kind {
                NodeKind::Chat(c) => c.participants.contains(&agent) && c.until.mention().is_some(),
                _ => false,
            });
            if in_mention_chat {
                continue;
            }
            for (code, rate) in &failures.value {
                let Some(mode) = FailureMode::from_code(code) else {
                    continue;
                };
                if matches!(
                    mode,
                    FailureMode::PrematureTermination | FailureMode::UnawareOfTermination
                ) {
                    self.diags.push(src.error(
                        rate.span,
                        format!(
                            "{code} ({}) never happens for `{}`: only a reviewer (`role: reviewer`) or a speaker in a chat that ends on `mentions` can end the conversation",
                            mode.name(),
                            name.value
                        ),
                    ));
                }
            }
        }
    }

    /// The task field listing a choice question's options: present in every
    /// item, listing at least two options of `letters`.
    fn options_field(&mut self, letters: &str) -> Option<String> {
        let field = self.loaded.answer.options.clone()?;
        for item in &self.loaded.items {
            let problem = match item.fields.get(&field.value).and_then(|v| v.as_str()) {
                None => format!(
                    "`answer.options` names `{}`, which this item has no text in",
                    field.value
                ),
                Some(text) if crate::scenario::answer::options(text, letters).len() < 2 => format!(
                    "`{}` of this item lists fewer than two options such as `(A) …` or a line `A) …` (`answer.options`)",
                    field.value
                ),
                Some(_) => continue,
            };
            self.diags.push(item.error(problem));
        }
        Some(field.value)
    }

    fn answer_rule(&mut self) -> Option<AnswerRule> {
        let spec = &self.loaded.answer;
        let choices = spec
            .choices
            .as_ref()
            .map(|c| c.value.clone())
            .unwrap_or_else(|| "ABCDE".into());
        if let Some(c) = &spec.choices
            && (c.is_empty() || !c.chars().all(|ch| ch.is_ascii_uppercase()))
        {
            self.err(c.span, "`choices` must be upper-case letters, e.g. ABCD");
        }
        let extractor = match spec.extract.as_ref().map(|e| &e.value) {
            None | Some(ExtractSpec::LastNumber) => Extractor::LastNumber,
            Some(ExtractSpec::Boxed) => Extractor::Boxed,
            Some(ExtractSpec::Choice) => Extractor::Choice {
                options_field: self.options_field(&choices),
                letters: choices,
            },
            Some(ExtractSpec::Whole) => Extractor::Whole,
            Some(ExtractSpec::Json(path)) => {
                let keys: Vec<String> = path.split('.').map(str::to_owned).collect();
                if keys.iter().any(String::is_empty) {
                    let span = spec.extract.as_ref().map(|e| e.span).unwrap_or_default();
                    self.err(
                        span,
                        format!("`json` takes a dotted field path such as `answer` or `result.value`, found `{path}`"),
                    );
                    return None;
                }
                Extractor::Json(keys)
            }
            Some(ExtractSpec::Regex(pattern)) => match regex::Regex::new(pattern) {
                Ok(re) => Extractor::Regex(re),
                Err(e) => {
                    let span = spec.extract.as_ref().map(|e| e.span).unwrap_or_default();
                    let detail = e.to_string();
                    let last = detail.lines().last().unwrap_or("invalid").trim().to_owned();
                    self.err(span, format!("invalid regex `{pattern}`: {last}"));
                    return None;
                }
            },
        };
        let steps = match &spec.normalize {
            None => AnswerRule::default_steps(),
            Some(steps) => {
                let mut out = Vec::with_capacity(steps.len());
                for step in steps {
                    match &step.value {
                        NormalizeStep::Digits(d) if !(1..=15).contains(d) => self.err(
                            step.span,
                            format!("`digits` must be between 1 and 15, found {d}"),
                        ),
                        NormalizeStep::Command(argv) if argv.first().is_none_or(String::is_empty) => {
                            self.err(
                                step.span,
                                "`command` must name a program, e.g. {command: [python3, canon.py]}",
                            )
                        }
                        NormalizeStep::Command(argv) => {
                            let (argv, dir) = self.in_scenario_dir(argv.clone());
                            out.push(Step::Command(Arc::new(Canonicalizer::new(
                                argv,
                                dir,
                                crate::scenario::canonicalizer::ANSWER_TIMEOUT,
                            ))));
                        }
                        builtin => out.push(Step::Builtin(builtin.clone())),
                    }
                }
                out
            }
        };
        Some(AnswerRule { extractor, steps })
    }

    fn tasks(&mut self, answer: Option<&AnswerRule>) -> Vec<Task> {
        let Some((_, spec)) = &self.loaded.dataset else {
            return Vec::new();
        };
        let id_field = spec.id_field.as_deref().unwrap_or("id");
        let expected_field = spec.expected_field.as_deref().unwrap_or("answer");
        let mut items: &[crate::scenario::dataset::RawItem] = &self.loaded.items;
        if let Some(limit) = &spec.limit {
            if limit.value < 1 {
                self.err(
                    limit.span,
                    format!("`limit` must be at least 1, found {}", limit.value),
                );
            } else {
                items = &items[..items.len().min(limit.value as usize)];
            }
        }
        let mut seen: HashMap<String, Span> = HashMap::new();
        let mut tasks = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let id = match item.fields.get(id_field) {
                None => (index + 1).to_string(),
                Some(v) => match scalar(v) {
                    Some(s) => s,
                    None => {
                        self.diags
                            .push(item.error(format!("`{id_field}` must be a string or number")));
                        continue;
                    }
                },
            };
            if let Some(first) = seen.insert(id.clone(), item.span) {
                self.diags.push(item.error(format!(
                    "duplicate task id `{id}` (first at line {}); ids seed the samples and must be unique",
                    first.line
                )));
            }
            let expected = match item.fields.get(expected_field) {
                None | Some(serde_json::Value::Null) => None,
                Some(v) => match scalar(v) {
                    Some(s) => answer.and_then(|a| match a.try_normalize(&s) {
                        Ok(n) => Some(n),
                        Err(e) => {
                            self.diags.push(item.error(format!(
                                "the expected answer {s:?} cannot be normalized: {e}"
                            )));
                            None
                        }
                    }),
                    None => {
                        self.diags.push(
                            item.error(format!("`{expected_field}` must be a string or number")),
                        );
                        None
                    }
                },
            };
            let distribution = match item.fields.get(DISTRIBUTION_FIELD) {
                None => None,
                Some(serde_json::Value::Object(m)) => {
                    let pairs: Vec<(String, f64)> = m
                        .iter()
                        .filter_map(|(k, v)| v.as_f64().map(|p| (k.clone(), p)))
                        .collect();
                    if pairs.len() != m.len() {
                        self.diags
                            .push(item.error("`distribution` probabilities must be numbers"));
                    }
                    match check_probabilities(&pairs, answer) {
                        Ok(d) => Some(d),
                        Err(msg) => {
                            self.diags.push(item.error(msg));
                            None
                        }
                    }
                }
                Some(_) => {
                    self.diags
                        .push(item.error("`distribution` must map answers to probabilities"));
                    None
                }
            };
            let mut inputs = item.fields.clone();
            inputs.remove(DISTRIBUTION_FIELD);
            tasks.push(Task {
                index,
                id,
                inputs,
                expected,
                distribution,
            });
        }
        tasks
    }

    fn models(
        &mut self,
        seed: u64,
        answer: Option<&AnswerRule>,
        tasks: &[Task],
    ) -> Option<Vec<Model>> {
        let mut models = Vec::new();
        for (name, spec) in &self.loaded.models {
            match spec.provider.as_str() {
                "simulated" => {
                    let price = self.price(spec);
                    if let Some(m) = self.simulated(name, spec, seed, answer, tasks) {
                        models.push(Model {
                            name: name.value.clone(),
                            kind: ModelKind::Simulated(m),
                            price,
                        });
                    }
                }
                p @ ("openai" | "anthropic" | "reward_model") => {
                    let api = match p {
                        "openai" => Api::OpenAi,
                        "anthropic" => Api::Anthropic,
                        _ => Api::RewardModel,
                    };
                    let price = self.price(spec);
                    if let Some(m) = self.http_model(name, spec, api) {
                        models.push(Model {
                            name: name.value.clone(),
                            kind: ModelKind::Network(m),
                            price,
                        });
                    }
                }
                other => self.err(
                    spec.provider.span,
                    format!(
                        "unknown provider `{other}` (expected one of: simulated, openai, anthropic, reward_model){}",
                        did_you_mean(other, ["simulated", "openai", "anthropic", "reward_model"])
                    ),
                ),
            }
        }
        Some(models)
    }

    fn http_model(
        &mut self,
        name: &Located<String>,
        spec: &ModelSpec,
        api: Api,
    ) -> Option<HttpModel> {
        let simulated_only = [
            ("distribution", spec.distribution.is_some()),
            ("format", spec.format.is_some()),
            ("latency_ms", spec.latency_ms.is_some()),
            ("failure_rate", spec.failure_rate.is_some()),
            ("correlation", spec.correlation.is_some()),
            ("skills", spec.skills.is_some()),
        ];
        for (key, present) in simulated_only {
            if present {
                self.err(
                    name.span,
                    format!(
                        "`{key}` applies only to simulated models; remove it from `{}`",
                        name.value
                    ),
                );
            }
        }
        let base_url = match &spec.base_url {
            None => {
                self.err(
                    name.span,
                    format!(
                        "model `{}` needs a `base_url`, e.g. http://127.0.0.1:8080/v1",
                        name.value
                    ),
                );
                None
            }
            Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => {
                self.err(
                    u.span,
                    format!(
                        "`base_url` must start with http:// or https://, found `{}`",
                        u.value
                    ),
                );
                None
            }
            Some(u) => Some(u.value.clone()),
        };
        let model = match &spec.model {
            None => {
                self.err(
                    name.span,
                    format!(
                        "model `{}` needs `model`: the model id the server knows",
                        name.value
                    ),
                );
                None
            }
            Some(m) => Some(m.value.clone()),
        };
        let mut params = serde_json::Map::new();
        if let Some(t) = &spec.temperature {
            if !(0.0..=5.0).contains(&t.value) {
                self.err(
                    t.span,
                    format!("`temperature` must be between 0 and 5, found {}", t.value),
                );
            }
            params.insert("temperature".into(), t.value.into());
        }
        if let Some(p) = &spec.top_p {
            if !(0.0..=1.0).contains(&p.value) {
                self.err(
                    p.span,
                    format!("`top_p` must be in [0, 1], found {}", p.value),
                );
            }
            params.insert("top_p".into(), p.value.into());
        }
        if let Some(m) = &spec.max_tokens {
            if m.value < 1 {
                self.err(
                    m.span,
                    format!("`max_tokens` must be at least 1, found {}", m.value),
                );
            }
            params.insert("max_tokens".into(), m.value.into());
        }
        if let Some(stop) = &spec.stop {
            let ok = match &stop.value {
                serde_json::Value::String(_) => true,
                serde_json::Value::Array(a) => a.iter().all(|v| v.is_string()),
                _ => false,
            };
            if !ok {
                self.err(stop.span, "`stop` must be a string or a list of strings");
            }
            params.insert("stop".into(), stop.value.clone());
        }
        if let Some(lp) = &spec.logprobs {
            match &lp.value {
                serde_json::Value::Bool(b) => {
                    params.insert("logprobs".into(), (*b).into());
                }
                serde_json::Value::Number(k) if k.as_u64().is_some_and(|k| k <= 20) => {
                    params.insert("logprobs".into(), true.into());
                    params.insert("top_logprobs".into(), lp.value.clone());
                }
                _ => self.err(
                    lp.span,
                    "`logprobs` must be true/false or a number of top log-probabilities (0 to 20)",
                ),
            }
        }
        if let Some(extra) = &spec.extra {
            match &extra.value {
                serde_json::Value::Object(m) => params.extend(m.clone()),
                _ => self.err(extra.span, "`extra` must be a mapping of JSON fields"),
            }
        }
        let timeout = self.seconds(&spec.timeout, 120.0);
        if let Some(env) = &spec.api_key_env
            && (env.is_empty() || env.contains(char::is_whitespace) || env.starts_with("sk-"))
        {
            self.err(env.span, "`api_key_env` is the NAME of an environment variable (e.g. OPENAI_API_KEY), not the key itself");
        }
        if api == Api::Anthropic {
            if let Some(n) = &spec.n_per_request
                && n.value != 1
            {
                self.err(n.span, "Anthropic's API has no `n`: each request gives one sample; remove `n_per_request`");
            }
            if let Some(lp) = &spec.logprobs {
                self.err(lp.span, "Anthropic's API does not return log-probabilities");
            }
            if spec.seed.is_some() {
                self.err(
                    spec.provider.span,
                    "Anthropic's API takes no `seed`; remove it",
                );
            }
        }
        if api == Api::RewardModel {
            let sampling = [
                ("temperature", spec.temperature.is_some()),
                ("top_p", spec.top_p.is_some()),
                ("max_tokens", spec.max_tokens.is_some()),
                ("stop", spec.stop.is_some()),
                ("logprobs", spec.logprobs.is_some()),
                ("seed", spec.seed.is_some()),
                ("n_per_request", spec.n_per_request.is_some()),
            ];
            for (key, _) in sampling.into_iter().filter(|(_, present)| *present) {
                self.err(
                    spec.provider.span,
                    format!("a reward model writes no text, so `{key}` does not apply to `{}`; remove it", name.value),
                );
            }
        }
        Some(HttpModel {
            api,
            name: name.value.clone(),
            base_url: base_url?,
            model: model?,
            api_key_env: spec.api_key_env.as_ref().map(|e| e.value.clone()),
            params,
            seed: spec.seed,
            n_per_request: self.n_per_request(spec),
            timeout: std::time::Duration::from_secs_f64(timeout),
            max_retries: self
                .at_least(&spec.max_retries, "max_retries", 0)
                .map_or(5, |n| n as u32),
            concurrency: self
                .at_least(&spec.concurrency, "concurrency", 1)
                .map(|n| n as usize),
            rpm: self.at_least(&spec.rpm, "rpm", 1).map(|n| n as u64),
            tpm: self.at_least(&spec.tpm, "tpm", 1).map(|n| n as u64),
        })
    }

    fn price(&mut self, spec: &ModelSpec) -> Option<Price> {
        let p = spec.price.as_ref()?;
        let mut ok = true;
        for (what, x) in [("input", &p.input), ("output", &p.output)] {
            if !(x.value >= 0.0 && x.value.is_finite()) {
                self.err(
                    x.span,
                    format!(
                        "`price.{what}` is USD per million tokens and must be 0 or more, found {}",
                        x.value
                    ),
                );
                ok = false;
            }
        }
        ok.then_some(Price {
            input: p.input.value,
            output: p.output.value,
        })
    }

    fn simulated(
        &mut self,
        name: &Located<String>,
        spec: &ModelSpec,
        seed: u64,
        answer: Option<&AnswerRule>,
        tasks: &[Task],
    ) -> Option<SimulatedModel> {
        let network_only = [
            ("base_url", spec.base_url.is_some()),
            ("model", spec.model.is_some()),
            ("api_key_env", spec.api_key_env.is_some()),
            ("temperature", spec.temperature.is_some()),
            ("top_p", spec.top_p.is_some()),
            ("max_tokens", spec.max_tokens.is_some()),
            ("seed", spec.seed.is_some()),
            ("stop", spec.stop.is_some()),
            ("logprobs", spec.logprobs.is_some()),
            ("extra", spec.extra.is_some()),
            ("timeout", spec.timeout.is_some()),
            ("max_retries", spec.max_retries.is_some()),
            ("concurrency", spec.concurrency.is_some()),
            ("rpm", spec.rpm.is_some()),
            ("tpm", spec.tpm.is_some()),
        ];
        for (key, present) in network_only {
            if present {
                self.err(
                    spec.provider.span,
                    format!("`{key}` applies only to network models; the simulated model `{}` does not take it", name.value),
                );
            }
        }
        let judge = spec
            .judge
            .as_ref()
            .and_then(|j| self.simulated_judge(j, name.span));
        let explainer = spec
            .explainer
            .as_ref()
            .and_then(|e| self.simulated_explainer(e));
        let predictor = spec
            .predictor
            .as_ref()
            .and_then(|p| self.simulated_predictor(p));
        // Every call of a simulated model may fail at this rate, a judge's,
        // explainer's or predictor's too.
        let failure_rate = match &spec.failure_rate {
            Some(f) if !(0.0..1.0).contains(&f.value) => {
                self.err(
                    f.span,
                    format!("`failure_rate` must be in [0, 1), found {}", f.value),
                );
                0.0
            }
            Some(f) => f.value,
            None => 0.0,
        };
        let Some(d) = &spec.distribution else {
            let roles = [
                (spec.judge.is_some(), judge.is_some()),
                (spec.explainer.is_some(), explainer.is_some()),
                (spec.predictor.is_some(), predictor.is_some()),
            ];
            if roles.iter().any(|(given, _)| *given) {
                // A judge, explainer or predictor only: as an agent it
                // would always abstain. A section that failed to validate
                // has said why.
                return roles
                    .iter()
                    .all(|(given, valid)| given == valid)
                    .then(|| SimulatedModel {
                        name: name.value.clone(),
                        seed,
                        distribution: Distribution::Explicit(Vec::new()),
                        style: AnswerStyle {
                            format: "{answer}".into(),
                            reasoning: false,
                            choices: None,
                        },
                        latency: None,
                        failure_rate,
                        correlation: None,
                        skills: None,
                        n_per_request: usize::MAX,
                        judge,
                        explainer,
                        predictor,
                    });
            }
            self.err(
                name.span,
                format!("simulated model `{}` needs a `distribution`", name.value),
            );
            return None;
        };
        let prob = |v: &mut Self, x: &Option<Located<f64>>, what: &str| -> Option<f64> {
            probability(&v.source, x.as_ref()?, what)
                .map_err(|d| v.diags.push(d))
                .ok()
        };
        let abstain = prob(self, &d.abstain, "abstain").unwrap_or(0.0);
        let choices = match answer.map(|a| &a.extractor) {
            Some(Extractor::Choice { letters, .. }) => Some(letters.clone()),
            _ => None,
        };
        let distribution = if let Some(answers) = &d.answers {
            if d.p_correct.is_some() || d.delta.is_some() {
                self.err(
                    answers.span,
                    "give either `answers` or `p_correct`/`delta`, not both",
                );
                return None;
            }
            let pairs: Vec<(String, f64)> = answers.value.clone().into_iter().collect();
            match check_probabilities(&pairs, answer) {
                Ok(mut pairs) => {
                    let total: f64 = pairs.iter().map(|p| p.1).sum::<f64>() + abstain;
                    if total > 1.0 + 1e-9 {
                        self.err(
                            answers.span,
                            format!("probabilities and `abstain` add up to {total}, more than 1"),
                        );
                        return None;
                    }
                    if abstain > 0.0 {
                        // Explicit abstention shrinks nothing: it is the remainder.
                        pairs.retain(|p| p.1 > 0.0);
                    }
                    Distribution::Explicit(pairs)
                }
                Err(msg) => {
                    self.err(answers.span, msg);
                    return None;
                }
            }
        } else {
            let Some(p) = prob(self, &d.p_correct, "p_correct") else {
                if d.p_correct.is_none() {
                    self.err(
                        name.span,
                        format!(
                            "the distribution of `{}` needs `p_correct` (and `delta`) or `answers`",
                            name.value
                        ),
                    );
                }
                return None;
            };
            let delta = match &d.delta {
                Some(x) if x.value < 0.0 || x.value > p => {
                    self.err(
                        x.span,
                        format!(
                            "`delta` must be between 0 and p_correct ({p}), found {}",
                            x.value
                        ),
                    );
                    return None;
                }
                Some(x) => x.value,
                None => 0.0,
            };
            let wrong = match &d.wrong_answers {
                Some(w) if w.value < 1 => {
                    self.err(
                        w.span,
                        format!("`wrong_answers` must be at least 1, found {}", w.value),
                    );
                    return None;
                }
                Some(w) => w.value as usize,
                None => 5,
            };
            if let Some(letters) = &choices
                && wrong >= letters.len()
            {
                let span = d.wrong_answers.as_ref().map_or(name.span, |w| w.span);
                self.err(
                    span,
                    format!(
                        "only {} other choice letters exist for {wrong} wrong answers",
                        letters.len() - 1
                    ),
                );
                return None;
            }
            let runner_up = p - delta;
            let rest = 1.0 - p - runner_up - abstain;
            let span = d.p_correct.as_ref().map_or(name.span, |x| x.span);
            if rest < -1e-9 {
                self.err(
                    span,
                    format!("p_correct ({p}) + runner-up ({runner_up}) + abstain ({abstain}) exceed 1; raise `delta` or lower `p_correct`"),
                );
                return None;
            }
            let spread = d.spread.unwrap_or(Spread::Uniform);
            let shares = spread_shares(spread, wrong - 1, rest.max(0.0));
            if wrong == 1 && rest > 1e-9 {
                self.err(span, format!("with one wrong answer, p_correct + runner-up + abstain must be 1 (they are {})", 1.0 - rest));
                return None;
            }
            if shares.first().is_some_and(|s| *s > runner_up + 1e-9) {
                self.err(
                    span,
                    format!(
                        "the other wrong answers get {:.3} each, more than the runner-up's {runner_up:.3}, so Δ would not be the gap to the top wrong answer; add `wrong_answers` or lower `delta`",
                        shares[0]
                    ),
                );
                return None;
            }
            if let Some(t) = tasks
                .iter()
                .find(|t| t.expected.is_none() && t.distribution.is_none())
            {
                let item = &self.loaded.items[t.index];
                self.diags.push(item.error(format!(
                    "task `{}` has no expected answer, which simulated model `{}` needs to place p_correct",
                    t.id, name.value
                )));
            }
            Distribution::Gap {
                p_correct: p,
                delta,
                wrong,
                spread,
                abstain,
            }
        };
        let rule = answer?;
        let (default_format, reasoning) = match &rule.extractor {
            Extractor::LastNumber => ("So the answer is {answer}.".to_owned(), true),
            Extractor::Boxed => ("The final answer is \\boxed{{answer}}.".to_owned(), true),
            Extractor::Choice { .. } => ("Answer: ({answer})".to_owned(), true),
            Extractor::Whole => ("{answer}".to_owned(), false),
            Extractor::Regex(_) => ("Answer: {answer}".to_owned(), true),
            // {"result": {"value": "{answer}"}} for `result.value`.
            Extractor::Json(keys) => (
                keys.iter()
                    .rev()
                    .fold("\"{answer}\"".to_owned(), |inner, k| {
                        format!("{{\"{k}\": {inner}}}")
                    }),
                true,
            ),
        };
        let format = spec
            .format
            .as_ref()
            .map_or(default_format, |f| f.value.clone());
        let format_span = spec.format.as_ref().map_or(name.span, |f| f.span);
        if !format.contains("{answer}") {
            self.err(format_span, "`format` must contain `{answer}`");
            return None;
        }
        let model = SimulatedModel {
            name: name.value.clone(),
            seed,
            distribution,
            style: AnswerStyle {
                format,
                reasoning,
                choices,
            },
            latency: spec
                .latency_ms
                .as_ref()
                .map(|l| (l.mean.value, l.sd.as_ref().map_or(0.0, |s| s.value))),
            failure_rate: 0.0,
            correlation: None,
            skills: None,
            n_per_request: usize::MAX,
            judge,
            explainer,
            predictor,
        };
        if let Some(l) = &spec.latency_ms
            && (l.mean.value < 0.0 || l.sd.as_ref().is_some_and(|s| s.value < 0.0))
        {
            self.err(l.mean.span, "latency `mean` and `sd` must not be negative");
        }
        // The simulated text must read back as the answer it was written with.
        let probe = if model.style.choices.is_some() {
            "b"
        } else {
            "42"
        };
        let mut rng = crate::seed::rng(0, &[]);
        let text = model.write(Some(probe), &mut rng);
        if rule.extract(&text).map(|a| a.normalized).as_deref() != Some(&rule.normalize(probe)) {
            self.err(
                format_span,
                format!(
                    "simulated model `{}` writes answers as `{}`, which `answer.extract` does not read back; set a `format` it reads",
                    name.value, model.style.format
                ),
            );
        }
        let abstained = model.write(None, &mut rng);
        if rule.extract(&abstained).is_some() {
            self.err(format_span, "`answer.extract` finds an answer in the simulated abstention text; make the rule stricter");
        }
        let n_per_request = self.n_per_request(spec);
        let correlation = spec.correlation.as_ref().and_then(|c| self.correlation(c));
        let skills = spec
            .skills
            .as_ref()
            .and_then(|s| self.skills(s, tasks, abstain));
        Some(SimulatedModel {
            failure_rate,
            n_per_request,
            correlation,
            skills,
            ..model
        })
    }

    fn skills(&mut self, spec: &SkillsSpec, tasks: &[Task], abstain: f64) -> Option<Skills> {
        let field = &spec.field.value;
        if !tasks.iter().any(|t| t.inputs.contains_key(field)) {
            self.err(
                spec.field.span,
                format!("no task has a field `{field}` for `skills` to read"),
            );
            return None;
        }
        let mut p_correct = Vec::new();
        for (value, &p) in &spec.p_correct.value {
            if !(0.0..=1.0 - abstain).contains(&p) {
                self.err(
                    spec.p_correct.span,
                    format!(
                        "`skills.p_correct` of `{value}` must be a probability in [0, {}] (1 less `abstain`), found {p}",
                        1.0 - abstain
                    ),
                );
                return None;
            }
            p_correct.push((value.clone(), p));
        }
        Some(Skills {
            field: field.clone(),
            p_correct,
        })
    }

    fn correlation(&mut self, spec: &CorrelationSpec) -> Option<Correlation> {
        let rho = probability(&self.source, &spec.rho, "correlation.rho")
            .map_err(|d| self.diags.push(d))
            .ok();
        let block = match &spec.block {
            None => Some(8),
            Some(b) if b.value >= 2 => Some(b.value as usize),
            Some(b) => {
                self.err(
                    b.span,
                    format!(
                        "`correlation.block` must be at least 2 samples, found {}",
                        b.value
                    ),
                );
                None
            }
        };
        Some(Correlation {
            rho: rho?,
            block: block?,
        })
    }

    fn agents(&mut self) -> Vec<(Agent, Span)> {
        let fields: BTreeSet<&str> = self
            .loaded
            .items
            .iter()
            .flat_map(|i| i.fields.keys().map(String::as_str))
            .filter(|k| *k != DISTRIBUTION_FIELD)
            .collect();
        let mut out = Vec::new();
        for (name, spec, src) in &self.loaded.agents {
            let model = match &spec.model {
                None => {
                    self.diags.push(
                        src.error(name.span, format!("agent `{}` needs a `model`", name.value)),
                    );
                    None
                }
                Some(m) => {
                    let idx = self
                        .loaded
                        .models
                        .iter()
                        .position(|(n, _)| n.value == m.value);
                    if idx.is_none() {
                        let names: Vec<&str> =
                            self.loaded.models.iter().map(|(n, _)| n.as_str()).collect();
                        self.diags.push(src.error(
                            m.span,
                            format!(
                                "agent `{}` uses undefined model `{}` (defined: {}){}",
                                name.value,
                                m.value,
                                list(&names),
                                did_you_mean(&m.value, names.iter().copied())
                            ),
                        ));
                    }
                    if let Some(i) = idx
                        && self.loaded.models[i].1.provider.as_str() == "reward_model"
                    {
                        self.diags.push(src.error(
                            m.span,
                            format!(
                                "agent `{}` uses model `{}`, a reward model, which scores text and writes none; give the agent a chat model",
                                name.value, m.value
                            ),
                        ));
                    }
                    if let Some(i) = idx
                        && self.loaded.models[i].1.provider.as_str() == "simulated"
                        && self.loaded.models[i].1.distribution.is_none()
                        && self.loaded.models[i].1.judge.is_some()
                    {
                        self.diags.push(src.error(
                            m.span,
                            format!(
                                "agent `{}` uses model `{}`, a simulated judge with no `distribution`, which has no answers to draw; give the model a `distribution` or the agent another model",
                                name.value, m.value
                            ),
                        ));
                    }
                    idx
                }
            };
            // A faithfulness experiment's prompts are its own.
            let unused = Located::new(name.span, String::new());
            let prompt = match &spec.prompt {
                Some(p) => p,
                None if self.loaded.faithfulness.is_some() => &unused,
                None => {
                    self.diags.push(src.error(
                        name.span,
                        format!("agent `{}` needs a `prompt`", name.value),
                    ));
                    continue;
                }
            };
            let template = match Template::compile(&prompt.value) {
                Ok(t) => t,
                Err(e) => {
                    let span = line_span(src, prompt.span, e.line);
                    self.diags.push(src.error(
                        span,
                        format!(
                            "template syntax error in prompt of agent `{}`: {}",
                            name.value, e.message
                        ),
                    ));
                    continue;
                }
            };
            for var in template.variables() {
                if !fields.contains(var.as_str()) {
                    self.diags.push(src.error(
                        prompt.span,
                        format!(
                            "prompt of agent `{}` uses `{var}`, which no dataset item has (fields: {}){}",
                            name.value,
                            list(&fields.iter().copied().collect::<Vec<_>>()),
                            did_you_mean(&var, fields.iter().copied())
                        ),
                    ));
                } else if let Some(item) = self
                    .loaded
                    .items
                    .iter()
                    .find(|i| !i.fields.contains_key(&var))
                {
                    self.diags.push(item.error(format!(
                        "this item has no field `{var}`, which the prompt of agent `{}` uses",
                        name.value
                    )));
                }
            }
            if let Some(model) = model {
                out.push((
                    Agent {
                        name: name.value.clone(),
                        model,
                        system: spec
                            .system
                            .as_ref()
                            .map(|s| s.value.clone())
                            .unwrap_or_default(),
                        prompt: template,
                        persona: Arc::new(
                            spec.simulate.as_ref().map_or_else(Persona::default, |p| {
                                persona(src, p, &mut self.diags)
                            }),
                        ),
                    },
                    name.span,
                ));
            }
        }
        out
    }

    fn verifiers(&mut self, tasks: &[Task]) -> Vec<Verifier> {
        let mut out = Vec::new();
        for (name, spec) in &self.loaded.verifiers {
            let rate = |v: &mut Self, x: &Option<Located<f64>>, what: &str| -> f64 {
                let Some(x) = x else { return 0.0 };
                probability(&v.source, x, what).unwrap_or_else(|d| {
                    v.diags.push(d);
                    0.0
                })
            };
            let kind = match spec.kind.value {
                VerifierKindSpec::Oracle => {
                    if let Some(t) = tasks.iter().find(|t| t.expected.is_none()) {
                        self.err(
                            spec.kind.span,
                            format!("the oracle verifier `{}` needs an expected answer for every task; task `{}` has none", name.value, t.id),
                        );
                    }
                    VerifierKind::Oracle {
                        false_positive_rate: rate(
                            self,
                            &spec.false_positive_rate,
                            "false_positive_rate",
                        ),
                        false_negative_rate: rate(
                            self,
                            &spec.false_negative_rate,
                            "false_negative_rate",
                        ),
                    }
                }
                VerifierKindSpec::Noisy => {
                    let sd = match &spec.sd {
                        Some(s) if s.value < 0.0 => {
                            self.err(s.span, "`sd` must not be negative");
                            0.0
                        }
                        Some(s) => s.value,
                        None => 0.5,
                    };
                    VerifierKind::Noisy {
                        correct_mean: spec.correct_mean.unwrap_or(1.0),
                        wrong_mean: spec.wrong_mean.unwrap_or(0.0),
                        sd,
                    }
                }
                VerifierKindSpec::Programmatic => {
                    VerifierKind::Programmatic(self.check(&name.value, spec, tasks))
                }
                VerifierKindSpec::Llm => VerifierKind::Llm(self.judge(&name.value, spec)),
                VerifierKindSpec::RewardModel => {
                    VerifierKind::RewardModel(self.reward_model(&name.value, spec))
                }
            };
            out.push(Verifier {
                name: name.value.clone(),
                kind,
            });
        }
        out
    }

    fn strategies(&mut self, agents: &[(Agent, Span)], verifiers: &[Verifier]) -> Vec<Strategy> {
        let mut out: Vec<Strategy> = Vec::new();
        let agent_names: Vec<&str> = self
            .loaded
            .agents
            .iter()
            .map(|(n, _, _)| n.as_str())
            .collect();
        let verifier_names: Vec<&str> = verifiers.iter().map(|v| v.name.as_str()).collect();
        for s in &self.loaded.strategies {
            let kind = match s.kind.value {
                StrategyKindSpec::SelfConsistency => StrategyKind::SelfConsistency,
                StrategyKindSpec::BestOfN => StrategyKind::BestOfN,
                StrategyKindSpec::WeightedMajority => StrategyKind::WeightedMajority,
                StrategyKindSpec::AdaptiveConsistency => StrategyKind::AdaptiveConsistency,
                StrategyKindSpec::SelfCorrection => StrategyKind::SelfCorrection,
            };
            let name = s
                .name
                .as_ref()
                .map_or(kind.as_str().to_owned(), |n| n.value.clone());
            if out.iter().any(|o| o.name == name) {
                let span = s.name.as_ref().map_or(s.kind.span, |n| n.span);
                self.err(
                    span,
                    format!("two strategies are named `{name}`; give one a distinct `name`"),
                );
            }
            let agent = agents.iter().position(|(a, _)| a.name == s.agent.value);
            if agent.is_none() && !self.loaded.declared_agents.contains(&s.agent.value) {
                self.err(
                    s.agent.span,
                    format!(
                        "undefined agent `{}` (defined: {}){}",
                        s.agent.value,
                        list(&agent_names),
                        did_you_mean(&s.agent.value, agent_names.iter().copied())
                    ),
                );
            }
            let mut ns = Vec::new();
            let values = s.n.values();
            if values.is_empty() {
                self.err(s.n.span, "`n` must list at least one sample count");
            }
            for n in values {
                if !(1..=MAX_N).contains(&n) {
                    self.err(
                        s.n.span,
                        format!("every `n` must be between 1 and {MAX_N}, found {n}"),
                    );
                } else {
                    ns.push(n as usize);
                }
            }
            ns.sort_unstable();
            ns.dedup();
            let verifier = match (kind, &s.verifier) {
                (
                    StrategyKind::BestOfN
                    | StrategyKind::WeightedMajority
                    | StrategyKind::SelfCorrection,
                    None,
                ) => {
                    self.err(
                        s.kind.span,
                        format!("`{}` needs a `verifier`", kind.as_str()),
                    );
                    None
                }
                (StrategyKind::SelfConsistency | StrategyKind::AdaptiveConsistency, Some(v)) => {
                    self.err(v.span, format!("`{}` takes no `verifier`", kind.as_str()));
                    None
                }
                (_, Some(v)) => {
                    let idx = verifiers.iter().position(|x| x.name == v.value);
                    if idx.is_none() {
                        self.err(
                            v.span,
                            format!(
                                "undefined verifier `{}` (defined: {}){}",
                                v.value,
                                list(&verifier_names),
                                did_you_mean(&v.value, verifier_names.iter().copied())
                            ),
                        );
                    }
                    idx
                }
                (_, None) => None,
            };
            let stop = self.stop_rule(kind, s.stop.as_ref());
            let correction = self.correction(kind, s, agents, agent);
            if s.agent.value == GRAPH_AGENT && agent.is_some() {
                // A graph run's answer is scored as it ends, in the run.
                if kind == StrategyKind::SelfCorrection {
                    self.err(
                        s.kind.span,
                        "`self_correction` revises one agent's answers; it cannot wrap the graph",
                    );
                }
            }
            if let Some(agent) = agent {
                out.push(Strategy {
                    name,
                    kind,
                    agent,
                    ns,
                    verifier,
                    stop,
                    correction,
                });
            }
        }
        out
    }

    /// A `timeout` in seconds: positive, `default` when absent.
    fn seconds(&mut self, x: &Option<Located<f64>>, default: f64) -> f64 {
        match x {
            Some(t) if !(t.value > 0.0 && t.value.is_finite()) => {
                self.err(
                    t.span,
                    format!(
                        "`timeout` must be a positive number of seconds, found {}",
                        t.value
                    ),
                );
                default
            }
            Some(t) => t.value,
            None => default,
        }
    }

    /// A programmatic verifier's check, with the fields it needs.
    fn check(&mut self, name: &str, spec: &VerifierSpec, tasks: &[Task]) -> Check {
        let Some(check) = &spec.check else {
            self.err(
                spec.kind.span,
                format!("the programmatic verifier `{name}` needs a `check`: exact, numeric, regex or command"),
            );
            return Check::Exact;
        };
        let needs_expected = matches!(check.value, CheckSpec::Exact | CheckSpec::Numeric);
        if needs_expected && let Some(t) = tasks.iter().find(|t| t.expected.is_none()) {
            self.err(
                check.span,
                format!(
                    "the `{}` check of verifier `{name}` compares with the expected answer; task `{}` has none",
                    if check.value == CheckSpec::Exact { "exact" } else { "numeric" },
                    t.id
                ),
            );
        }
        let tolerance = |v: &mut Self, x: &Option<Located<f64>>, what: &str, default: f64| match x {
            Some(t) if !(t.value >= 0.0 && t.value.is_finite()) => {
                v.err(
                    t.span,
                    format!("`{what}` must be a number ≥ 0, found {}", t.value),
                );
                default
            }
            Some(t) => t.value,
            None => default,
        };
        match check.value {
            CheckSpec::Exact => Check::Exact,
            CheckSpec::Numeric => Check::Numeric {
                absolute: tolerance(self, &spec.tolerance, "tolerance", 1e-9),
                relative: tolerance(self, &spec.relative_tolerance, "relative_tolerance", 0.0),
            },
            CheckSpec::Regex => match &spec.pattern {
                None => {
                    self.err(check.span, "`check: regex` needs a `pattern`");
                    Check::Exact
                }
                Some(p) => match regex::Regex::new(&p.value) {
                    Ok(re) => Check::Regex(re),
                    Err(e) => {
                        self.err(p.span, format!("invalid regular expression: {e}"));
                        Check::Exact
                    }
                },
            },
            CheckSpec::Command => {
                let argv = match &spec.command {
                    Some(c) if !c.value.is_empty() && !c.value[0].is_empty() => c.value.clone(),
                    Some(c) => {
                        self.err(
                            c.span,
                            "`command` must name a program, e.g. [python3, check.py]",
                        );
                        Vec::new()
                    }
                    None => {
                        self.err(
                            check.span,
                            "`check: command` needs a `command`, e.g. [python3, check.py]",
                        );
                        Vec::new()
                    }
                };
                let timeout = self.seconds(&spec.timeout, 60.0);
                let (argv, dir) = self.in_scenario_dir(argv);
                Check::Command {
                    argv,
                    dir,
                    timeout: std::time::Duration::from_secs_f64(timeout),
                }
            }
        }
    }

    /// An `llm` verifier's model, prompts and scale (with placeholders where
    /// they are invalid, so that strategies naming it are not reported too).
    fn judge(&mut self, name: &str, spec: &VerifierSpec) -> Judge {
        let model = self.verifier_model(name, spec, "llm", |provider| match provider {
            "simulated" => Some("a simulated model writes answers, not verdicts; use a network model (provider openai or anthropic), or an `oracle`/`noisy` verifier to simulate a judge"),
            "reward_model" => Some("a reward model gives scores, not verdicts; use `kind: reward_model` for it"),
            _ => None,
        });
        let scale = match spec.scale.as_ref().map(|s| s.value) {
            None | Some(ScaleSpec::YesNo) => Scale::YesNo,
            Some(ScaleSpec::Score) => Scale::Score,
        };
        let (source, span) = match &spec.prompt {
            Some(p) => (p.value.as_str(), p.span),
            None if scale == Scale::YesNo => (DEFAULT_JUDGE_YES_NO, spec.kind.span),
            None => (DEFAULT_JUDGE_SCORE, spec.kind.span),
        };
        let prompt = Template::compile(source).unwrap_or_else(|e| {
            let at = line_span(&self.source, span, e.line);
            self.err(
                at,
                format!(
                    "template syntax error in prompt of verifier `{name}`: {}",
                    e.message
                ),
            );
            Template::compile("").expect("the empty template compiles")
        });
        self.template_fields(
            &prompt,
            span,
            &format!("prompt of verifier `{name}`"),
            (
                &CANDIDATE_FIELDS,
                &format!(
                    "a candidate field ({})",
                    CANDIDATE_FIELDS.map(|f| format!("`{f}`")).join(", ")
                ),
            ),
        );
        Judge {
            model: model.unwrap_or(0),
            system: spec
                .system
                .as_ref()
                .map(|s| s.value.clone())
                .unwrap_or_default(),
            prompt,
            scale,
        }
    }

    /// The model a verifier of `kind` calls: its `model`, which must exist
    /// and be one that `unfit` (given its provider) does not object to.
    fn verifier_model(
        &mut self,
        name: &str,
        spec: &VerifierSpec,
        kind: &str,
        unfit: fn(&str) -> Option<&'static str>,
    ) -> Option<usize> {
        let models = &self.loaded.models;
        let Some(m) = &spec.model else {
            self.err(
                spec.kind.span,
                format!("the {kind} verifier `{name}` needs a `model` to call"),
            );
            return None;
        };
        let Some(i) = models.iter().position(|(n, _)| n.value == m.value) else {
            let names: Vec<&str> = models.iter().map(|(n, _)| n.as_str()).collect();
            self.err(
                m.span,
                format!(
                    "verifier `{name}` uses undefined model `{}` (defined: {}){}",
                    m.value,
                    list(&names),
                    did_you_mean(&m.value, names.iter().copied())
                ),
            );
            return None;
        };
        if let Some(why) = unfit(models[i].1.provider.as_str()) {
            self.err(
                m.span,
                format!("verifier `{name}` cannot call model `{}`: {why}", m.value),
            );
            return None;
        }
        Some(i)
    }

    /// A simulated judge's error rates, each a probability.
    fn simulated_judge(&mut self, spec: &SimulatedJudgeSpec, at: Span) -> Option<SimulatedJudge> {
        let before = self.diags.len();
        let sensitivity = self.rate(&spec.sensitivity, "sensitivity", 1.0);
        let specificity = self.rate(&spec.specificity, "specificity", 1.0);
        let malformed = self.rate(&spec.malformed, "malformed", 0.0);
        let attribution = self.rate(&spec.attribution, "attribution", 0.5);
        let mut judge = SimulatedJudge {
            sensitivity: vec![sensitivity; FailureMode::all().count()],
            specificity: vec![specificity; FailureMode::all().count()],
            malformed,
            attribution,
        };
        for (code, m) in &spec.modes {
            let Some(i) = FailureMode::all().position(|f| f.code() == code) else {
                let codes: Vec<&str> = FailureMode::all().map(|m| m.code()).collect();
                let span = m
                    .sensitivity
                    .as_ref()
                    .or(m.specificity.as_ref())
                    .map_or(at, |x| x.span);
                self.err(
                    span,
                    format!(
                        "`{code}` is not a MAST mode code (expected one of: {}){}",
                        codes.join(", "),
                        did_you_mean(code, codes.iter().copied())
                    ),
                );
                continue;
            };
            judge.sensitivity[i] = self.rate(&m.sensitivity, "sensitivity", sensitivity);
            judge.specificity[i] = self.rate(&m.specificity, "specificity", specificity);
        }
        (self.diags.len() == before).then_some(judge)
    }

    /// A simulated explainer's rule and rates: at least one weight, rates
    /// probabilities. (Weights and threshold are finite: the YAML reader
    /// rejects `.inf` and `.nan` where they are written.)
    fn simulated_explainer(&mut self, spec: &SimulatedExplainerSpec) -> Option<SimulatedExplainer> {
        let before = self.diags.len();
        if spec.weights.value.is_empty() {
            self.err(
                spec.weights.span,
                "`weights` needs at least one feature and its weight, e.g. {age: 1.0}",
            );
        }
        let threshold = spec.threshold.as_ref().map_or(0.0, |t| t.value);
        let faithfulness = self.rate(&spec.faithfulness, "faithfulness", 1.0);
        let malformed = self.rate(&spec.malformed, "malformed", 0.0);
        let post_hoc = self.rate(&spec.post_hoc, "post_hoc", 0.0);
        let susceptibility = self.rate(&spec.susceptibility, "susceptibility", 0.0);
        let acknowledge = self.rate(&spec.acknowledge, "acknowledge", 0.0);
        (self.diags.len() == before).then(|| SimulatedExplainer {
            weights: spec.weights.value.clone().into_iter().collect(),
            threshold,
            faithfulness,
            malformed,
            post_hoc,
            susceptibility,
            acknowledge,
        })
    }

    /// A simulated predictor's guess (at least one feature) and rates
    /// (probabilities that add up to at most 1, as they share one draw).
    fn simulated_predictor(&mut self, spec: &SimulatedPredictorSpec) -> Option<SimulatedPredictor> {
        let before = self.diags.len();
        let guess = match &spec.guess {
            Some(g) if g.value < 1 => {
                self.err(
                    g.span,
                    format!("`guess` must be at least 1 feature, found {}", g.value),
                );
                1
            }
            Some(g) => g.value as usize,
            None => 2,
        };
        let hedge = self.rate(&spec.hedge, "hedge", 0.0);
        let malformed = self.rate(&spec.malformed, "malformed", 0.0);
        if let Some(h) = &spec.hedge
            && hedge + malformed > 1.0 + 1e-9
        {
            self.err(
                h.span,
                format!(
                    "`hedge` and `malformed` add up to {}, more than 1",
                    hedge + malformed
                ),
            );
        }
        (self.diags.len() == before).then_some(SimulatedPredictor {
            guess,
            hedge,
            malformed,
        })
    }

    /// `x` as a probability, `default` when absent or (with its diagnostic
    /// reported) out of range.
    fn rate(&mut self, x: &Option<Located<f64>>, what: &str, default: f64) -> f64 {
        x.as_ref().map_or(default, |x| {
            probability(&self.source, x, what)
                .map_err(|d| self.diags.push(d))
                .unwrap_or(default)
        })
    }

    /// The `judges` list: each judge's file (read by the loader) and models.
    fn judges(&mut self, has_graph: bool, built: &mut Option<Vec<Model>>) -> Vec<JudgeUse> {
        let mut out = Vec::new();
        for (spec, file) in &self.loaded.judges {
            if !has_graph {
                self.err(
                    spec.file.span,
                    "judges read graph runs' transcripts, and this scenario has no `graph`; \
                     judge another run's transcripts with `crucible judge RUN`",
                );
            }
            let names: Vec<&Located<String>> = match (&spec.model, &spec.models) {
                (Some(m), None) => vec![m],
                (None, Some(ms)) if !ms.is_empty() => ms.iter().collect(),
                (Some(m), Some(_)) => {
                    self.err(m.span, "give a judge `model` or `models`, not both");
                    continue;
                }
                _ => {
                    self.err(
                        spec.file.span,
                        "a judge needs a `model` (or `models`, for an ensemble) to call",
                    );
                    continue;
                }
            };
            let mut models = Vec::new();
            for m in names {
                let known = &self.loaded.models;
                match known.iter().position(|(n, _)| n.value == m.value) {
                    Some(i)
                        if known[i].1.provider.as_str() == "simulated"
                            && known[i].1.judge.is_none() =>
                    {
                        self.err(
                            m.span,
                            format!(
                                "simulated model `{}` has no `judge` section, so it cannot judge; add one (sensitivity, specificity)",
                                m.value
                            ),
                        )
                    }
                    Some(i) if known[i].1.provider.as_str() == "reward_model" => self.err(
                        m.span,
                        format!(
                            "judge model `{}` is a reward model, which cannot write a verdict",
                            m.value
                        ),
                    ),
                    Some(i) if models.contains(&i) => {
                        self.err(m.span, format!("model `{}` is listed twice", m.value))
                    }
                    Some(i) => models.push(i),
                    None => {
                        let defined: Vec<&str> = known.iter().map(|(n, _)| n.as_str()).collect();
                        self.err(
                            m.span,
                            format!(
                                "judge uses undefined model `{}` (defined: {}){}",
                                m.value,
                                list(&defined),
                                did_you_mean(&m.value, defined.iter().copied())
                            ),
                        );
                    }
                }
            }
            let mut repeats = self.at_least(&spec.repeats, "repeats", 1).unwrap_or(1) as usize;
            if let Some(r) = spec.repeats.as_ref().filter(|_| repeats > MAX_REPEATS) {
                self.err(
                    r.span,
                    format!("`repeats` must be at most {MAX_REPEATS}, found {}", r.value),
                );
                repeats = 1;
            }
            let max_trace_tokens = self
                .at_least(&spec.max_trace_tokens, "max_trace_tokens", 64)
                .map(|t| t as usize);
            // Its own sampling: a copy of each model with those settings.
            let temperature = spec.temperature.as_ref().map(|t| t.value);
            if let Some(t) = spec
                .temperature
                .as_ref()
                .filter(|t| t.value < 0.0 || t.value.is_nan())
            {
                self.err(
                    t.span,
                    format!("`temperature` must not be negative, found {}", t.value),
                );
            }
            let seed = spec.seed.as_ref().map(|s| s.value);
            if (temperature.is_some() || seed.is_some())
                && let Some(all) = built.as_mut()
            {
                let at = spec.temperature.as_ref().map_or_else(
                    || spec.seed.as_ref().map_or(spec.file.span, |s| s.span),
                    |t| t.span,
                );
                for m in &mut models {
                    match all[*m].with_sampling(temperature, seed) {
                        Ok(own) => {
                            *m = all
                                .iter()
                                .position(|x| x.name == own.name)
                                .unwrap_or_else(|| {
                                    all.push(own);
                                    all.len() - 1
                                });
                        }
                        Err(why) => self.err(at, why),
                    }
                }
            }
            if let Some(file) = file {
                // Raters are named by judge and model: two judges of one name
                // must not share a model, nor both be ensembles.
                let clash = out.iter().any(|j: &JudgeUse| {
                    j.file.name == file.name
                        && (j.models.iter().any(|m| models.contains(m))
                            || (j.models.len() > 1 && models.len() > 1))
                });
                if clash {
                    self.err(
                        spec.file.span,
                        format!(
                            "another judge named `{}` runs on the same model, so their raters' labels would overwrite each other; give one judge file another `judge:` name, or this judge its own `seed` or `temperature`",
                            file.name
                        ),
                    );
                }
                out.push(JudgeUse {
                    file: file.clone(),
                    models,
                    repeats,
                    max_trace_tokens,
                    reask: spec.reask.unwrap_or(true),
                });
            }
        }
        out
    }

    /// A `reward_model` verifier: its model, and for process rewards how to
    /// split and aggregate.
    fn reward_model(&mut self, name: &str, spec: &VerifierSpec) -> RewardModel {
        let model = self.verifier_model(name, spec, "reward_model", |provider| {
            (provider != "reward_model")
                .then_some("a reward_model verifier needs a model with `provider: reward_model`")
        });
        let process = spec.process.as_ref().is_some_and(|p| p.value);
        if !process {
            self.misplaced(
                [
                    ("steps", spec.steps.as_ref().map(|s| s.span)),
                    ("aggregate", spec.aggregate.as_ref().map(|a| a.span)),
                ],
                |key| {
                    format!("`{key}` applies to process rewards; add `process: true` or remove it")
                },
            );
        }
        let steps = match spec.steps.as_ref().map(|s| s.value) {
            None | Some(StepsSpec::Paragraphs) => Steps::Paragraphs,
            Some(StepsSpec::Lines) => Steps::Lines,
            Some(StepsSpec::Markers) => Steps::Markers,
        };
        let aggregate = match spec.aggregate.as_ref().map(|a| a.value) {
            None | Some(AggregateSpec::Min) => Aggregate::Min,
            Some(AggregateSpec::Last) => Aggregate::Last,
            Some(AggregateSpec::Mean) => Aggregate::Mean,
            Some(AggregateSpec::Product) => Aggregate::Product,
        };
        RewardModel {
            model: model.unwrap_or(0),
            process: process.then_some((steps, aggregate)),
        }
    }

    /// Report, at `span`, every variable of `template` (written in `owner`)
    /// that is neither a dataset field nor one of the `extra` fields (as
    /// described).
    fn template_fields(
        &mut self,
        template: &Template,
        span: Span,
        owner: &str,
        (extra, described): (&[&str], &str),
    ) {
        let fields: BTreeSet<&str> = self
            .loaded
            .items
            .iter()
            .flat_map(|i| i.fields.keys().map(String::as_str))
            .filter(|k| *k != DISTRIBUTION_FIELD)
            .chain(extra.iter().copied())
            .collect();
        for var in template.variables() {
            if !fields.contains(var.as_str()) {
                self.err(
                    span,
                    format!(
                        "{owner} uses `{var}`, which is neither {described} nor a dataset field{}",
                        did_you_mean(&var, fields.iter().copied())
                    ),
                );
            }
        }
    }

    /// A command to run in the scenario's directory, like the paths it names:
    /// its program resolved there when it is a relative path, and the directory.
    fn in_scenario_dir(&self, mut argv: Vec<String>) -> (Vec<String>, std::path::PathBuf) {
        let dir = self
            .workdir
            .unwrap_or_else(|| directory_of(&self.source.path));
        // Absolute, so that a program relative to it is found from there
        // however the child resolves its path.
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        if let Some(program) = argv.first_mut()
            && program.contains('/')
            && std::path::Path::new(program.as_str()).is_relative()
        {
            *program = dir.join(program.as_str()).to_string_lossy().into_owned();
        }
        (argv, dir)
    }

    /// Report each key of `keys` that is present (at its span) as out of
    /// place, saying `why`.
    fn misplaced<const N: usize>(
        &mut self,
        keys: [(&str, Option<Span>); N],
        why: impl Fn(&str) -> String,
    ) {
        for (key, span) in keys {
            if let Some(span) = span {
                self.err(span, why(key));
            }
        }
    }

    /// Self-correction's feedback, acceptance, experts and policy; other
    /// kinds take none of them.
    fn correction(
        &mut self,
        kind: StrategyKind,
        s: &StrategySpec,
        agents: &[(Agent, Span)],
        agent: Option<usize>,
    ) -> Option<Correction> {
        if kind != StrategyKind::SelfCorrection {
            self.misplaced(
                [
                    ("feedback", s.feedback.as_ref().map(|f| f.span)),
                    ("accept", s.accept.as_ref().map(|a| a.span)),
                    (
                        "experts",
                        s.experts.as_ref().and_then(|e| e.first()).map(|e| e.span),
                    ),
                    ("policy", s.policy.as_ref().map(|p| p.span)),
                ],
                |key| {
                    format!(
                        "`{key}` belongs to `self_correction`, not `{}`",
                        kind.as_str()
                    )
                },
            );
            return None;
        }
        let source = s
            .feedback
            .as_ref()
            .map_or(DEFAULT_FEEDBACK, |f| f.value.as_str());
        let span = s.feedback.as_ref().map_or(s.kind.span, |f| f.span);
        let feedback = match Template::compile(source) {
            Ok(t) => t,
            Err(e) => {
                self.err(
                    span,
                    format!("template syntax error in `feedback`: {}", e.message),
                );
                return None;
            }
        };
        // What a rejected round offers the template, besides the task's fields.
        const ROUND_FIELDS: [&str; 3] = ["answer", "score", "detail"];
        self.template_fields(
            &feedback,
            span,
            "`feedback`",
            (&ROUND_FIELDS, "a round's `answer`, `score` or `detail`"),
        );
        let accept = match &s.accept {
            Some(a) if !a.value.is_finite() => {
                self.err(a.span, "`accept` must be a number");
                0.5
            }
            Some(a) => a.value,
            None => 0.5,
        };
        let (experts, policy) = self.experts(s, agents, agent);
        Some(Correction {
            feedback,
            accept,
            experts,
            policy,
        })
    }

    /// Self-correction's experts besides its agent, each a defined agent
    /// named once, and the policy among them.
    fn experts(
        &mut self,
        s: &StrategySpec,
        agents: &[(Agent, Span)],
        agent: Option<usize>,
    ) -> (Vec<usize>, Policy) {
        let mut experts = Vec::new();
        for e in s.experts.iter().flatten() {
            if e.value == GRAPH_AGENT {
                self.err(
                    e.span,
                    "`self_correction` revises agents' answers; the graph cannot be an expert",
                );
                continue;
            }
            let Some(i) = agents.iter().position(|(a, _)| a.name == e.value) else {
                let names: Vec<&str> = agents.iter().map(|(a, _)| a.name.as_str()).collect();
                self.err(
                    e.span,
                    format!(
                        "undefined agent `{}` in `experts` (defined: {}){}",
                        e.value,
                        list(&names),
                        did_you_mean(&e.value, names.iter().copied())
                    ),
                );
                continue;
            };
            if Some(i) == agent || experts.contains(&i) {
                self.err(
                    e.span,
                    format!(
                        "`{}` is already an expert (the strategy's `agent` is the first); name each agent once",
                        e.value
                    ),
                );
                continue;
            }
            experts.push(i);
        }
        let policy = match s.policy.as_ref().map(|p| (p.value, p.span)) {
            None if experts.is_empty() => Policy::Fixed,
            None => Policy::RoundRobin,
            Some((p, span)) => {
                if s.experts.as_ref().is_none_or(|e| e.is_empty()) && p != PolicySpec::Fixed {
                    self.err(
                        span,
                        "`policy` chooses among `experts`; list the agents besides `agent` in `experts`",
                    );
                }
                match p {
                    PolicySpec::RoundRobin => Policy::RoundRobin,
                    PolicySpec::Hedge => Policy::Hedge,
                    PolicySpec::Ucb => Policy::Ucb,
                    PolicySpec::Thompson => Policy::Thompson,
                    PolicySpec::Fixed => Policy::Fixed,
                }
            }
        };
        (experts, policy)
    }

    /// An adaptive strategy's stop rule (default: Beta at 0.95); other kinds take none.
    fn stop_rule(
        &mut self,
        kind: StrategyKind,
        stop: Option<&Located<StopSpec>>,
    ) -> Option<StopRule> {
        if kind != StrategyKind::AdaptiveConsistency {
            if let Some(s) = stop {
                self.err(
                    s.span,
                    format!(
                        "`stop` belongs to `adaptive_consistency`, not `{}`",
                        kind.as_str()
                    ),
                );
            }
            return None;
        }
        match stop.map(|s| (s.value, s.span)) {
            None => Some(StopRule::Beta(0.95)),
            Some((StopSpec::Beta(p), _)) if p > 0.5 && p < 1.0 => Some(StopRule::Beta(p)),
            Some((StopSpec::Beta(p), span)) => {
                self.err(
                    span,
                    format!("`beta` must be a probability between 0.5 and 1 (exclusive), such as 0.95; found {p}"),
                );
                None
            }
            Some((StopSpec::Margin(m), _)) if m >= 1 => Some(StopRule::Margin(m as usize)),
            Some((StopSpec::Margin(m), span)) => {
                self.err(
                    span,
                    format!("`margin` must be a whole number of votes ≥ 1, found {m}"),
                );
                None
            }
        }
    }

    /// How many failed calls the run tolerates.
    fn fail_on_error(&mut self) -> ErrorTolerance {
        let Some(setting) = &self.loaded.fail_on_error else {
            return ErrorTolerance::default();
        };
        match setting.value {
            FailOnErrorSpec::Flag(fail) => ErrorTolerance::from_flag(fail),
            FailOnErrorSpec::Limit(v) => ErrorTolerance::from_number(v).unwrap_or_else(|e| {
                self.err(setting.span, e);
                ErrorTolerance::default()
            }),
        }
    }

    /// The run's caps (whether the models can be held to them is checked
    /// once the scenario is built).
    fn budget(&mut self) -> Budget {
        let b = &self.loaded.budget;
        let max_cost_usd = match &b.max_cost_usd {
            Some(c) if !(c.value > 0.0 && c.value.is_finite()) => {
                self.err(
                    c.span,
                    format!(
                        "`max_cost_usd` must be a positive number of dollars, found {}",
                        c.value
                    ),
                );
                None
            }
            Some(c) => Some(c.value),
            None => None,
        };
        Budget {
            max_requests: self
                .at_least(&b.max_requests, "max_requests", 1)
                .map(|n| n as u64),
            max_tokens: self
                .at_least(&b.max_tokens, "max_tokens", 1)
                .map(|n| n as u64),
            max_cost_usd,
        }
    }
}

fn scalar(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// Normalize answers, merge duplicates, check the probabilities.
fn check_probabilities(
    pairs: &[(String, f64)],
    answer: Option<&AnswerRule>,
) -> Result<Vec<(String, f64)>, String> {
    let mut out: Vec<(String, f64)> = Vec::new();
    for (a, p) in pairs {
        if !(0.0..=1.0).contains(p) {
            return Err(format!("probability of `{a}` must be in [0, 1], found {p}"));
        }
        let key = answer.map_or(a.clone(), |r| r.normalize(a));
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some(e) => e.1 += p,
            None => out.push((key, *p)),
        }
    }
    let total: f64 = out.iter().map(|p| p.1).sum();
    if total > 1.0 + 1e-9 {
        return Err(format!("probabilities add up to {total}, more than 1"));
    }
    Ok(out)
}

/// The directory `file` is in (`.` for a bare file name).
pub fn directory_of(file: &std::path::Path) -> &std::path::Path {
    match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    }
}

/// Load `path` with `overrides` (`PATH=VALUE`) and validate it: the
/// scenario, or every diagnostic.
pub fn load_scenario(
    path: &std::path::Path,
    overrides: &[String],
) -> Result<Scenario, Vec<Diagnostic>> {
    load_scenario_in(path, overrides, None)
}

/// [`load_scenario`], its commands run in `workdir` instead of the
/// scenario's directory: for a stored copy of a scenario, whose commands
/// belong where the original was.
pub fn load_scenario_in(
    path: &std::path::Path,
    overrides: &[String],
    workdir: Option<&std::path::Path>,
) -> Result<Scenario, Vec<Diagnostic>> {
    let (loaded, diags) = crate::scenario::loader::Loader::load(path, overrides);
    if loaded.source.is_none() {
        return Err(diags.into_sorted());
    }
    match Validator::validate(&loaded, workdir) {
        Ok(s) if diags.is_empty() => Ok(s),
        Ok(_) => Err(diags.into_sorted()),
        Err(more) => {
            let mut all = diags;
            for d in more.iter() {
                all.push(d.clone());
            }
            Err(all.into_sorted())
        }
    }
}

/// The models of the file at `path` (a models file with a `models:`
/// section, or any scenario), with `overrides` applied.
pub fn load_models(
    path: &std::path::Path,
    overrides: &[String],
) -> Result<Vec<Model>, Vec<Diagnostic>> {
    let (loaded, mut diags) = crate::scenario::loader::Loader::load_models(path, overrides);
    if loaded.source.is_none() {
        return Err(diags.into_sorted());
    }
    match Validator::validate_models(&loaded) {
        Ok(m) if diags.is_empty() => Ok(m),
        Ok(_) => Err(diags.into_sorted()),
        Err(more) => {
            for d in more.iter() {
                diags.push(d.clone());
            }
            Err(diags.into_sorted())
        }
    }
}

/// `x` as a probability, or the diagnostic saying it is not one.
fn probability(src: &SourceFile, x: &Located<f64>, what: &str) -> Result<f64, Diagnostic> {
    if (0.0..=1.0).contains(&x.value) {
        Ok(x.value)
    } else {
        Err(src.error(
            x.span,
            format!(
                "`{what}` must be a probability in [0, 1], found {}",
                x.value
            ),
        ))
    }
}

/// An agent's `simulate` block as a persona; problems go to `diags`.
fn persona(src: &SourceFile, spec: &SimulateSpec, diags: &mut Diagnostics) -> Persona {
    let mut p = Persona::default();
    let mut prob = |x: &Option<Located<f64>>, what: &str, default: f64| match x {
        None => default,
        Some(x) => probability(src, x, what).unwrap_or_else(|d| {
            diags.push(d);
            default
        }),
    };
    p.agree = prob(&spec.agree, "agree", p.agree);
    p.approve_correct = prob(&spec.approve_correct, "approve_correct", p.approve_correct);
    p.approve_wrong = prob(&spec.approve_wrong, "approve_wrong", p.approve_wrong);
    if let Some(role) = &spec.role {
        p.role = match role.value {
            RoleSpec::Solver => Role::Solver,
            RoleSpec::Debater => Role::Debater,
            RoleSpec::Planner => Role::Planner,
            RoleSpec::Reviewer => Role::Reviewer,
            RoleSpec::Judge => Role::Judge,
        };
    }
    for (word, field, what) in [
        (&spec.approve, &mut p.approve, "approve"),
        (&spec.revise, &mut p.revise, "revise"),
    ] {
        match word {
            Some(w) if w.trim().is_empty() => {
                diags.push(src.error(w.span, format!("`{what}` needs a word, e.g. APPROVED")));
            }
            Some(w) => *field = w.value.clone(),
            None => {}
        }
    }
    if p.approve.contains(&p.revise) || p.revise.contains(&p.approve) {
        let span = spec
            .approve
            .as_ref()
            .or(spec.revise.as_ref())
            .map(|w| w.span);
        if let Some(span) = span {
            diags.push(src.error(
                span,
                "`approve` and `revise` must not contain each other, or a router could not tell them apart",
            ));
        }
    }
    let Some(failures) = &spec.failures else {
        return p;
    };
    let mut total = 0.0;
    for (code, rate) in &failures.value {
        let Some(mode) = FailureMode::from_code(code) else {
            let codes: Vec<&str> = FailureMode::all().map(|m| m.code()).collect();
            diags.push(src.error(
                rate.span,
                format!(
                    "unknown failure mode `{code}`; MAST codes are FM-1.1 to FM-3.3{}",
                    did_you_mean(code, codes)
                ),
            ));
            continue;
        };
        if !mode.injectable() {
            let can: Vec<&str> = FailureMode::all()
                .filter(|m| m.injectable())
                .map(|m| m.code())
                .collect();
            diags.push(src.error(
                rate.span,
                format!(
                    "{code} ({}) cannot be simulated; simulated agents can act out {}",
                    mode.name(),
                    can.join(", ")
                ),
            ));
            continue;
        }
        if mode == FailureMode::NoVerification && !p.role.verifies() {
            diags.push(src.error(
                rate.span,
                format!(
                    "{code} ({}) needs an agent that verifies: give it `role: reviewer` or `role: judge`",
                    mode.name()
                ),
            ));
            continue;
        }
        match probability(src, rate, code) {
            Ok(r) => {
                total += r;
                p.failures.push((mode, r));
            }
            Err(d) => diags.push(d),
        }
    }
    if total > 1.0 + 1e-9 {
        diags.push(src.error(
            failures.span,
            format!("failure rates add up to {total}, more than 1: at most one failure is injected per turn"),
        ));
    }
    p.failures.sort_by_key(|f| f.0);
    p
}
