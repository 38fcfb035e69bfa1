//! Agent graphs: the engine's [`Graph`] (nodes and edges on petgraph, `START`
//! and `END` included), built from the scenario's `graph` section by
//! [`GraphBuilder`], and its Graphviz DOT rendering (`crucible graph --dot`).
//!
//! The builder reports every problem at the YAML position it comes from:
//! unknown nodes, agents and verifiers, router options without edges (or
//! edges naming no option), nodes unreachable from `START`, nodes with no
//! path to `END`, and cycles that nothing limits. The validator turns those
//! problems into diagnostics. Running a graph is the executor's business.

use std::collections::HashMap;

use petgraph::Direction;
use petgraph::graph::{DiGraph, EdgeIndex, NodeIndex};
use petgraph::visit::{Dfs, EdgeRef, Reversed};
use regex::Regex;

use crate::scenario::diagnostic::{Span, did_you_mean};
use crate::scenario::loader::LoadedGraph;
use crate::scenario::node::Located;
use crate::scenario::spec::{
    ChatSpec, ConditionSpec, EdgeSpec, JoinSpec, NodeSpec, RouteBySpec, RouterSpec, SpeakersSpec,
    UntilSpec, ViewSpec,
};

/// The implicit entry node.
pub const START: &str = "START";
/// The implicit exit node.
pub const END: &str = "END";

/// A validated agent graph.
#[derive(Debug)]
pub struct Graph {
    pub graph: DiGraph<Node, Edge>,
    pub start: NodeIndex,
    pub end: NodeIndex,
    /// Most node visits in one run of the graph.
    pub max_turns: Option<usize>,
}

#[derive(Debug)]
pub struct Node {
    pub name: String,
    pub kind: NodeKind,
    /// Most times the node may be entered in one run.
    pub max_visits: Option<usize>,
    /// Which earlier messages its speakers see.
    pub view: View,
}

/// Which of a run's earlier messages a speaker sees.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum View {
    #[default]
    All,
    Last(usize),
    /// Messages passed to the node, and in a chat those naming the speaker.
    Addressed,
    /// A running summary by this agent (index).
    Summary(usize),
}

#[derive(Debug)]
pub enum NodeKind {
    Start,
    End,
    /// The agent (index into the scenario's agents) that speaks.
    Agent(usize),
    Router(Router),
    Join(Join),
    Chat(Chat),
}

/// A group chat: participants speak one at a time until `until` holds.
#[derive(Debug)]
pub struct Chat {
    /// Agents (indices), in the order listed.
    pub participants: Vec<usize>,
    /// Their names, for reading a manager's choice.
    pub names: Vec<String>,
    pub speakers: Speakers,
    pub until: Until,
}

#[derive(Debug)]
pub enum Speakers {
    RoundRobin,
    Random,
    /// The agent (index) that names the next speaker.
    Manager(usize),
    /// Selects the next speaker; its options are participants' names.
    Router(Router),
}

impl NodeKind {
    /// The names an agent choosing at this node picks among: a router's
    /// options, or a chat's next speakers.
    pub fn choices(&self) -> Vec<&str> {
        match (self.router(), self) {
            (Some(r), _) => r.options.iter().map(|o| o.name.as_str()).collect(),
            (None, NodeKind::Chat(c)) => c.names.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// A router node's router, or a chat's speaker router.
    pub fn router(&self) -> Option<&Router> {
        match self {
            NodeKind::Router(r)
            | NodeKind::Chat(Chat {
                speakers: Speakers::Router(r),
                ..
            }) => Some(r),
            _ => None,
        }
    }
}

impl Chat {
    /// The participant (index into `participants`) picked by option
    /// `option` of the chat's router.
    pub fn picked(&self, router: &Router, option: usize) -> Option<usize> {
        self.names
            .iter()
            .position(|n| *n == router.options[option].name)
    }
}

/// When a group chat ends.
#[derive(Debug, Clone, PartialEq)]
pub enum Until {
    MaxMessages(usize),
    Mentions(String),
    MaxTokens(u64),
    /// Seconds since the chat began.
    Timeout(f64),
    /// The verifier (index) accepts the last message's answer.
    Verifier(usize),
    Any(Vec<Until>),
    All(Vec<Until>),
}

/// What a chat's `until` is checked against.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChatProgress<'a> {
    pub messages: usize,
    pub tokens: u64,
    pub seconds: f64,
    pub last: &'a str,
    /// The verifier's verdict on the last message, when one was asked.
    pub accepted: bool,
}

impl Until {
    /// Whether the condition is sure to hold eventually (a count, a budget
    /// or a clock bounds it).
    pub fn bounded(&self) -> bool {
        match self {
            Until::MaxMessages(_) | Until::MaxTokens(_) | Until::Timeout(_) => true,
            Until::Mentions(_) | Until::Verifier(_) => false,
            Until::Any(all) => all.iter().any(Until::bounded),
            Until::All(all) => !all.is_empty() && all.iter().all(Until::bounded),
        }
    }

    /// The verifier whose verdict the condition needs, if any.
    pub fn verifier(&self) -> Option<usize> {
        match self {
            Until::Verifier(v) => Some(*v),
            Until::Any(all) | Until::All(all) => all.iter().find_map(Until::verifier),
            _ => None,
        }
    }

    /// The first text whose mention ends the chat, if any.
    pub fn mention(&self) -> Option<&str> {
        match self {
            Until::Mentions(s) => Some(s),
            Until::Any(all) | Until::All(all) => all.iter().find_map(Until::mention),
            _ => None,
        }
    }

    pub fn holds(&self, p: &ChatProgress<'_>) -> bool {
        match self {
            Until::MaxMessages(n) => p.messages >= *n,
            Until::Mentions(s) => p.last.contains(s.as_str()),
            Until::MaxTokens(n) => p.tokens >= *n,
            Until::Timeout(secs) => p.seconds >= *secs,
            Until::Verifier(_) => p.accepted,
            Until::Any(all) => all.iter().any(|u| u.holds(p)),
            Until::All(all) => all.iter().all(|u| u.holds(p)),
        }
    }
}

/// Picks one outgoing edge by the option the last message selects.
#[derive(Debug)]
pub struct Router {
    pub by: RouteBy,
    pub options: Vec<RouteOption>,
    /// The option taken when none matches.
    pub default: Option<usize>,
}

#[derive(Debug)]
pub enum RouteBy {
    Contains,
    Regex,
    Json {
        field: String,
    },
    /// The agent (index) that names an option.
    Llm {
        agent: usize,
    },
}

#[derive(Debug)]
pub struct RouteOption {
    pub name: String,
    /// `contains`: the text; `json`: the value; `llm`: a description.
    pub text: String,
    /// `regex`: the pattern.
    pub pattern: Option<Regex>,
}

#[derive(Debug)]
pub enum Join {
    Concatenate,
    Vote,
    /// Keep the branch this verifier (index) scores highest.
    Verifier(usize),
}

#[derive(Debug)]
pub struct Edge {
    /// From a router: the option (index into its options) that takes it.
    pub option: Option<usize>,
    pub when: Option<Condition>,
    /// Most times the edge may be taken in one run.
    pub max_visits: Option<usize>,
}

#[derive(Debug)]
pub enum Condition {
    Contains(String),
    Regex(Regex),
}

impl Condition {
    pub fn holds(&self, text: &str) -> bool {
        match self {
            Condition::Contains(s) => text.contains(s.as_str()),
            Condition::Regex(r) => r.is_match(text),
        }
    }
}

/// A problem with the graph, at the YAML position it comes from.
pub type Problem = (Span, String);

/// Builds a [`Graph`] from the loaded section, collecting every problem.
pub struct GraphBuilder<'a> {
    spec: &'a LoadedGraph,
    agents: &'a [&'a str],
    /// Every agent name written, including those whose definition failed.
    declared_agents: &'a [String],
    verifiers: &'a [&'a str],
    problems: Vec<Problem>,
    /// Node index by name: `START`, `END`, then the nodes as written.
    index: HashMap<&'a str, usize>,
}

impl<'a> GraphBuilder<'a> {
    /// The graph, or every problem found. `agents` and `verifiers` are the
    /// scenario's names, in index order.
    pub fn build(
        spec: &'a LoadedGraph,
        agents: &'a [&'a str],
        declared_agents: &'a [String],
        verifiers: &'a [&'a str],
    ) -> Result<Graph, Vec<Problem>> {
        let mut b = GraphBuilder {
            spec,
            agents,
            declared_agents,
            verifiers,
            problems: Vec::new(),
            index: HashMap::new(),
        };
        b.index.insert(START, 0);
        b.index.insert(END, 1);
        for (name, _) in &spec.nodes {
            if name.value == START || name.value == END {
                b.problem(
                    name.span,
                    format!(
                        "`{}` is implicit in every graph; give this node another name",
                        name.value
                    ),
                );
                continue;
            }
            let next = b.index.len();
            b.index.insert(&name.value, next);
        }
        let nodes: Vec<Option<Node>> = spec
            .nodes
            .iter()
            .filter(|(name, _)| name.value != START && name.value != END)
            .map(|(name, node)| b.node(name, node))
            .collect();
        let edges: Vec<Option<(usize, usize, Edge)>> =
            spec.edges.iter().map(|e| b.edge(e)).collect();
        let max_turns = spec
            .max_turns
            .as_ref()
            .and_then(|m| b.limit(m, "max_turns"));
        // The shape checks need every node and edge: with one missing they
        // would report its neighbours as unreachable. A node is missing
        // without a problem of its own when its agent's definition failed
        // (reported there), and the indices would no longer line up.
        let missing = nodes.iter().any(Option::is_none) || edges.iter().any(Option::is_none);
        if !b.problems.is_empty() || !spec.complete || missing {
            return Err(b.problems);
        }
        let mut graph = DiGraph::new();
        let start = graph.add_node(Node {
            name: START.into(),
            kind: NodeKind::Start,
            max_visits: None,
            view: View::All,
        });
        let end = graph.add_node(Node {
            name: END.into(),
            kind: NodeKind::End,
            max_visits: None,
            view: View::All,
        });
        for node in nodes.into_iter().flatten() {
            graph.add_node(node);
        }
        for (from, to, edge) in edges.into_iter().flatten() {
            graph.add_edge(NodeIndex::new(from), NodeIndex::new(to), edge);
        }
        let graph = Graph {
            graph,
            start,
            end,
            max_turns,
        };
        let spans: Vec<Span> = spec.edges.iter().map(|e| e.from.span).collect();
        b.shape(&graph, &spans);
        if b.problems.is_empty() {
            Ok(graph)
        } else {
            Err(b.problems)
        }
    }

    fn problem(&mut self, span: Span, message: impl Into<String>) {
        self.problems.push((span, message.into()));
    }

    fn limit(&mut self, value: &Located<i64>, what: &str) -> Option<usize> {
        if value.value < 1 {
            self.problem(
                value.span,
                format!("`{what}` must be at least 1, found {}", value.value),
            );
            return None;
        }
        Some(value.value as usize)
    }

    /// Index of `name` among `names`, or a problem naming the alternatives
    /// (none for an agent whose definition failed: that is reported already).
    fn find(&mut self, name: &Located<String>, what: &str, names: &[&str]) -> Option<usize> {
        let found = names.iter().position(|n| *n == name.value);
        let failed = what == "agent" && self.declared_agents.contains(&name.value);
        if found.is_none() && !failed {
            self.problem(
                name.span,
                format!(
                    "unknown {what} `{}`{}",
                    name.value,
                    did_you_mean(&name.value, names.iter().copied())
                ),
            );
        }
        found
    }

    fn node(&mut self, name: &Located<String>, spec: &NodeSpec) -> Option<Node> {
        let kinds = [
            spec.agent.as_ref().map(|a| a.span),
            spec.router.as_ref().map(|r| r.span),
            spec.join.as_ref().map(|j| j.span),
            spec.chat.as_ref().map(|c| c.span),
        ];
        let given: Vec<Span> = kinds.iter().flatten().copied().collect();
        if given.len() != 1 {
            let at = given.get(1).copied().unwrap_or(name.span);
            self.problem(
                at,
                format!(
                    "node `{}` must have exactly one of `agent`, `router`, `join` or `chat`",
                    name.value
                ),
            );
            return None;
        }
        if let (Some(v), false) = (
            &spec.verifier,
            matches!(spec.join.as_deref(), Some(JoinSpec::Verifier)),
        ) {
            self.problem(v.span, "`verifier` belongs to `join: verifier` nodes");
        }
        let max_visits = match &spec.max_visits {
            Some(m) => Some(self.limit(m, "max_visits")?),
            None => None,
        };
        let kind = if let Some(agent) = &spec.agent {
            NodeKind::Agent(self.find(agent, "agent", self.agents)?)
        } else if let Some(router) = &spec.router {
            NodeKind::Router(self.router(name, router)?)
        } else if let Some(chat) = &spec.chat {
            NodeKind::Chat(self.chat(name, chat)?)
        } else {
            let join = spec.join.as_ref().expect("one kind was given");
            NodeKind::Join(match join.value {
                JoinSpec::Concatenate => Join::Concatenate,
                JoinSpec::Vote => Join::Vote,
                JoinSpec::Verifier => {
                    let Some(v) = &spec.verifier else {
                        self.problem(join.span, "`join: verifier` needs `verifier: NAME`");
                        return None;
                    };
                    Join::Verifier(self.find(v, "verifier", self.verifiers)?)
                }
            })
        };
        let view = match &spec.view {
            None => View::All,
            Some(v) if !matches!(kind, NodeKind::Agent(_) | NodeKind::Chat(_)) => {
                self.problem(v.span, "`view` applies to agent and chat nodes");
                return None;
            }
            Some(v) => match &v.value {
                ViewSpec::All => View::All,
                ViewSpec::Addressed => View::Addressed,
                ViewSpec::Last(k) if *k < 1 => {
                    self.problem(v.span, format!("`last` must be at least 1, found {k}"));
                    return None;
                }
                ViewSpec::Last(k) => View::Last(*k as usize),
                ViewSpec::Summary(agent) => {
                    let agent = Located::new(v.span, agent.clone());
                    View::Summary(self.find(&agent, "agent", self.agents)?)
                }
            },
        };
        Some(Node {
            name: name.value.clone(),
            kind,
            max_visits,
            view,
        })
    }

    fn router(&mut self, name: &Located<String>, spec: &Located<RouterSpec>) -> Option<Router> {
        let before = self.problems.len();
        if spec.options.is_empty() {
            self.problem(
                spec.span,
                format!("router `{}` has no `options`", name.value),
            );
        }
        for (i, option) in spec.options.iter().enumerate() {
            if spec.options[..i].iter().any(|o| o.value == option.value) {
                self.problem(
                    option.span,
                    format!("option `{}` is listed twice", option.value),
                );
            }
        }
        let names: Vec<&str> = spec.options.iter().map(|o| o.value.as_str()).collect();
        for (option, matched) in &spec.r#match {
            if !names.contains(&option.as_str()) {
                self.problem(
                    matched.span,
                    format!(
                        "`match` names `{option}`, which is not an option{}",
                        did_you_mean(option, names.iter().copied())
                    ),
                );
            }
        }
        let by = match spec.by.value {
            RouteBySpec::Contains => RouteBy::Contains,
            RouteBySpec::Regex => RouteBy::Regex,
            RouteBySpec::Json => match &spec.field {
                Some(f) => RouteBy::Json {
                    field: f.value.clone(),
                },
                None => {
                    self.problem(
                        spec.by.span,
                        "`by: json` needs `field`: the JSON field holding the option",
                    );
                    return None;
                }
            },
            RouteBySpec::Llm => match &spec.agent {
                Some(a) => RouteBy::Llm {
                    agent: self.find(a, "agent", self.agents)?,
                },
                None => {
                    self.problem(
                        spec.by.span,
                        "`by: llm` needs `agent`: the agent that names the next option",
                    );
                    return None;
                }
            },
        };
        for (key, given, wanted) in [
            (
                "field",
                spec.field.as_ref(),
                matches!(by, RouteBy::Json { .. }),
            ),
            (
                "agent",
                spec.agent.as_ref(),
                matches!(by, RouteBy::Llm { .. }),
            ),
        ] {
            if let (Some(k), false) = (given, wanted) {
                self.problem(
                    k.span,
                    format!("`{key}` does not apply to `by: {}`", by_name(spec.by.value)),
                );
            }
        }
        let mut options = Vec::new();
        for option in &spec.options {
            let text = spec
                .r#match
                .get(&option.value)
                .map_or(option.value.clone(), |m| m.value.clone());
            let pattern = match by {
                RouteBy::Regex => match Regex::new(&text) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        let at = spec
                            .r#match
                            .get(&option.value)
                            .map_or(option.span, |m| m.span);
                        self.problem(at, format!("invalid regex `{text}`: {e}"));
                        None
                    }
                },
                _ => None,
            };
            options.push(RouteOption {
                name: option.value.clone(),
                text,
                pattern,
            });
        }
        let default = match &spec.default {
            Some(d) => Some(self.find(d, "option", &names)?),
            None => None,
        };
        (self.problems.len() == before).then_some(Router {
            by,
            options,
            default,
        })
    }

    fn chat(&mut self, name: &Located<String>, spec: &Located<ChatSpec>) -> Option<Chat> {
        let before = self.problems.len();
        if spec.participants.len() < 2 {
            self.problem(
                spec.span,
                format!("chat `{}` needs at least two `participants`", name.value),
            );
        }
        let mut participants = Vec::new();
        for (i, p) in spec.participants.iter().enumerate() {
            if spec.participants[..i].iter().any(|q| q.value == p.value) {
                self.problem(p.span, format!("participant `{}` is listed twice", p.value));
            } else if let Some(a) = self.find(p, "agent", self.agents) {
                participants.push(a);
            }
        }
        let speakers = match (spec.speakers.as_deref(), &spec.manager) {
            (Some(SpeakersSpec::Manager), Some(m)) => {
                self.find(m, "agent", self.agents).map(Speakers::Manager)
            }
            (Some(SpeakersSpec::Manager), None) => {
                let at = spec.speakers.as_ref().map_or(spec.span, |s| s.span);
                self.problem(
                    at,
                    "`speakers: manager` needs `manager`: the agent that names the next speaker",
                );
                None
            }
            (_, Some(m)) => {
                self.problem(m.span, "`manager` applies to `speakers: manager`");
                None
            }
            (Some(SpeakersSpec::Router), None) => match &spec.router {
                Some(r) => self.chat_router(name, r, &spec.participants),
                None => {
                    let at = spec.speakers.as_ref().map_or(spec.span, |s| s.span);
                    self.problem(
                        at,
                        "`speakers: router` needs `router`: what picks the next speaker from the last message",
                    );
                    None
                }
            },
            (Some(SpeakersSpec::Random), None) => Some(Speakers::Random),
            (Some(SpeakersSpec::RoundRobin) | None, None) => Some(Speakers::RoundRobin),
        };
        if let (Some(r), false) = (
            &spec.router,
            matches!(spec.speakers.as_deref(), Some(SpeakersSpec::Router)),
        ) {
            self.problem(r.span, "`router` applies to `speakers: router`");
        }
        let until = self.until(&spec.until.value, spec.until.span);
        if let Some(u) = &until
            && !u.bounded()
        {
            self.problem(
                spec.until.span,
                format!(
                    "chat `{}` might never end: `until` needs `max_messages`, `max_tokens` or `timeout` (e.g. `until: {{any: [{{mentions: TERMINATE}}, {{max_messages: 12}}]}}`)",
                    name.value
                ),
            );
        }
        // Either may be missing without a problem of its own: an agent whose
        // definition failed is reported there.
        let (Some(speakers), Some(until), true) = (speakers, until, self.problems.len() == before)
        else {
            return None;
        };
        Some(Chat {
            names: participants
                .iter()
                .map(|&a| self.agents[a].to_owned())
                .collect(),
            participants,
            speakers,
            until,
        })
    }

    /// A chat's speaker router: its options must name participants.
    fn chat_router(
        &mut self,
        name: &Located<String>,
        spec: &Located<RouterSpec>,
        participants: &[Located<String>],
    ) -> Option<Speakers> {
        let before = self.problems.len();
        let names: Vec<&str> = participants.iter().map(|p| p.value.as_str()).collect();
        for option in &spec.options {
            if !names.contains(&option.value.as_str()) {
                self.problem(
                    option.span,
                    format!(
                        "option `{}` is not a participant of chat `{}`{}",
                        option.value,
                        name.value,
                        did_you_mean(&option.value, names.iter().copied())
                    ),
                );
            }
        }
        let router = self.router(name, spec)?;
        (self.problems.len() == before).then_some(Speakers::Router(router))
    }

    fn until(&mut self, spec: &UntilSpec, at: Span) -> Option<Until> {
        let positive = |b: &mut Self, n: i64, what: &str| {
            if n < 1 {
                b.problem(at, format!("`{what}` must be at least 1, found {n}"));
                None
            } else {
                Some(n)
            }
        };
        Some(match spec {
            UntilSpec::MaxMessages(n) => {
                Until::MaxMessages(positive(self, *n, "max_messages")? as usize)
            }
            UntilSpec::MaxTokens(n) => Until::MaxTokens(positive(self, *n, "max_tokens")? as u64),
            UntilSpec::Mentions(s) if s.is_empty() => {
                self.problem(at, "`mentions` needs some text, e.g. TERMINATE");
                return None;
            }
            UntilSpec::Mentions(s) => Until::Mentions(s.clone()),
            UntilSpec::Timeout(secs) if !(*secs > 0.0 && secs.is_finite()) => {
                self.problem(
                    at,
                    format!("`timeout` must be a positive number of seconds, found {secs}"),
                );
                return None;
            }
            UntilSpec::Timeout(secs) => Until::Timeout(*secs),
            UntilSpec::Verifier(v) => {
                let name = Located::new(at, v.clone());
                Until::Verifier(self.find(&name, "verifier", self.verifiers)?)
            }
            UntilSpec::Any(all) | UntilSpec::All(all) => {
                let parts: Vec<Option<Until>> = all.iter().map(|u| self.until(u, at)).collect();
                let parts: Option<Vec<Until>> = parts.into_iter().collect();
                match spec {
                    UntilSpec::Any(_) => Until::Any(parts?),
                    _ => Until::All(parts?),
                }
            }
        })
    }

    /// The options of `node`'s router, if it is one.
    fn router_options(&self, node: usize) -> Option<&'a [Located<String>]> {
        let spec = self.spec;
        let (_, n) = spec
            .nodes
            .iter()
            .filter(|(name, _)| name.value != START && name.value != END)
            .nth(node.checked_sub(2)?)?;
        n.router.as_ref().map(|r| r.options.as_slice())
    }

    fn endpoint(&mut self, name: &Located<String>) -> Option<usize> {
        let found = self.index.get(name.value.as_str()).copied();
        if found.is_none() {
            let mut known: Vec<&str> = self.index.keys().copied().collect();
            known.sort();
            self.problem(
                name.span,
                format!(
                    "unknown node `{}`{}",
                    name.value,
                    did_you_mean(&name.value, known.iter().copied())
                ),
            );
        }
        found
    }

    fn edge(&mut self, spec: &EdgeSpec) -> Option<(usize, usize, Edge)> {
        let from = self.endpoint(&spec.from);
        let to = self.endpoint(&spec.to);
        let (from, to) = (from?, to?);
        let before = self.problems.len();
        if from == 1 {
            self.problem(spec.from.span, "no edge may leave `END`");
        }
        if to == 0 {
            self.problem(spec.to.span, "no edge may enter `START`");
        }
        let max_visits = match &spec.max_visits {
            Some(m) => self.limit(m, "max_visits"),
            None => None,
        };
        let option = match (self.router_options(from), &spec.option) {
            (Some(options), Some(o)) => {
                let names: Vec<&str> = options.iter().map(|o| o.value.as_str()).collect();
                names.iter().position(|n| *n == o.value).or_else(|| {
                    self.problem(
                        o.span,
                        format!(
                            "router `{}` has no option `{}` (options: {}){}",
                            spec.from.value,
                            o.value,
                            names.join(", "),
                            did_you_mean(&o.value, names.iter().copied())
                        ),
                    );
                    None
                })
            }
            (Some(options), None) => {
                let names: Vec<&str> = options.iter().map(|o| o.value.as_str()).collect();
                self.problem(
                    spec.from.span,
                    format!(
                        "an edge from router `{}` needs `option`: one of {}",
                        spec.from.value,
                        names.join(", ")
                    ),
                );
                None
            }
            (None, Some(o)) => {
                self.problem(
                    o.span,
                    format!(
                        "`option` is for edges from a router, and `{}` is not one; use `when` for a condition",
                        spec.from.value
                    ),
                );
                None
            }
            (None, None) => None,
        };
        let when = match &spec.when {
            Some(w) if self.router_options(from).is_some() => {
                self.problem(w.span, "edges from a router take `option`, not `when`");
                None
            }
            Some(w) => self.condition(w),
            None => None,
        };
        (self.problems.len() == before).then_some((
            from,
            to,
            Edge {
                option,
                when,
                max_visits,
            },
        ))
    }

    fn condition(&mut self, spec: &Located<ConditionSpec>) -> Option<Condition> {
        match (&spec.contains, &spec.regex) {
            (Some(text), None) => Some(Condition::Contains(text.value.clone())),
            (None, Some(pattern)) => match Regex::new(&pattern.value) {
                Ok(r) => Some(Condition::Regex(r)),
                Err(e) => {
                    self.problem(
                        pattern.span,
                        format!("invalid regex `{}`: {e}", pattern.value),
                    );
                    None
                }
            },
            _ => {
                self.problem(
                    spec.span,
                    "`when` needs exactly one of `contains` or `regex`",
                );
                None
            }
        }
    }

    /// Checks of the whole graph: every edge resolved.
    fn shape(&mut self, g: &Graph, edge_spans: &[Span]) {
        let spec = self.spec;
        let named: Vec<&Located<String>> = spec
            .nodes
            .iter()
            .map(|(name, _)| name)
            .filter(|name| name.value != START && name.value != END)
            .collect();
        let name_span = |i: NodeIndex| named[i.index() - 2].span;
        let graph = &g.graph;
        if graph
            .edges_directed(g.start, Direction::Outgoing)
            .next()
            .is_none()
        {
            self.problem(
                spec.span,
                "no edge leaves `START`: add `{from: START, to: NODE}`",
            );
            return;
        }
        for i in graph.node_indices().skip(2) {
            let name = &graph[i].name;
            let out: Vec<_> = graph.edges_directed(i, Direction::Outgoing).collect();
            if let Some(options) = self.router_options(i.index()) {
                for (k, option) in options.iter().enumerate() {
                    let taking = out.iter().filter(|e| e.weight().option == Some(k)).count();
                    if taking == 0 {
                        self.problem(
                            option.span,
                            format!("option `{}` of router `{name}` has no edge", option.value),
                        );
                    } else if taking > 1 {
                        self.problem(
                            option.span,
                            format!(
                                "option `{}` of router `{name}` has {taking} edges; give it one",
                                option.value
                            ),
                        );
                    }
                }
            } else if !out.is_empty() && out.iter().all(|e| e.weight().when.is_some()) {
                self.problem(
                    name_span(i),
                    format!("every edge from `{name}` has `when`: add one without, taken when none holds"),
                );
            }
            if matches!(graph[i].kind, NodeKind::Join(_)) {
                let incoming = graph.edges_directed(i, Direction::Incoming).count();
                if incoming < 2 {
                    self.problem(
                        name_span(i),
                        format!("join `{name}` has {incoming} incoming edge(s); a join combines the branches of a fan-out"),
                    );
                }
            }
        }
        let reachable = reach(graph, g.start);
        let finishing = reach(Reversed(graph), g.end);
        for i in graph.node_indices().skip(2) {
            let name = &graph[i].name;
            if !reachable[i.index()] {
                self.problem(
                    name_span(i),
                    format!("node `{name}` cannot be reached from `START`"),
                );
            } else if !finishing[i.index()] {
                self.problem(
                    name_span(i),
                    format!("no path leads from `{name}` to `END`"),
                );
            }
        }
        if g.max_turns.is_none() {
            for cycle in unlimited_cycles(g) {
                let names: Vec<&str> = cycle
                    .iter()
                    .map(|&e| {
                        graph[graph.edge_endpoints(e).expect("edge").0]
                            .name
                            .as_str()
                    })
                    .chain(std::iter::once(
                        graph[graph.edge_endpoints(cycle[0]).expect("edge").0]
                            .name
                            .as_str(),
                    ))
                    .collect();
                self.problem(
                    edge_spans[cycle[0].index()],
                    format!(
                        "the cycle {} has no limit: set `max_visits` on one of its nodes or edges, or `graph.max_turns`",
                        names.join(" → ")
                    ),
                );
            }
        }
    }
}

fn by_name(by: RouteBySpec) -> &'static str {
    match by {
        RouteBySpec::Contains => "contains",
        RouteBySpec::Regex => "regex",
        RouteBySpec::Json => "json",
        RouteBySpec::Llm => "llm",
    }
}

/// How a router picks, for DOT labels: "router by json field verdict".
fn router_kind(r: &Router, agents: &[&str]) -> String {
    match &r.by {
        RouteBy::Contains => "router by contains".to_owned(),
        RouteBy::Regex => "router by regex".to_owned(),
        RouteBy::Json { field } => format!("router by json field {field}"),
        RouteBy::Llm { agent } => format!("router by llm {}", agents[*agent]),
    }
}

/// Which nodes can be reached from `from` (by node index).
fn reach<G>(graph: G, from: NodeIndex) -> Vec<bool>
where
    G: petgraph::visit::IntoNeighbors<NodeId = NodeIndex>
        + petgraph::visit::Visitable<NodeId = NodeIndex>
        + petgraph::visit::NodeCount,
{
    let mut seen = vec![false; graph.node_count()];
    let mut dfs = Dfs::new(graph, from);
    while let Some(n) = dfs.next(graph) {
        seen[n.index()] = true;
    }
    seen
}

/// One cycle (its edges, in order) in each strongly connected part of the
/// graph that remains once every limited node and edge is taken out.
fn unlimited_cycles(g: &Graph) -> Vec<Vec<EdgeIndex>> {
    let graph = &g.graph;
    let free = graph.filter_map(
        |i, n| n.max_visits.is_none().then_some(i),
        |e, edge| edge.max_visits.is_none().then_some(e),
    );
    let mut cycles = Vec::new();
    for part in petgraph::algo::tarjan_scc(&free) {
        let first = part[0];
        let self_loop = free.find_edge(first, first);
        if part.len() == 1 && self_loop.is_none() {
            continue;
        }
        if let Some(e) = self_loop {
            cycles.push(vec![free[e]]);
            continue;
        }
        // A path from `first` back to itself inside the part: breadth-first
        // from its successors, remembering the edge each node was reached by.
        let inside: std::collections::HashSet<_> = part.iter().copied().collect();
        let mut via: HashMap<NodeIndex, petgraph::graph::EdgeIndex> = HashMap::new();
        let mut queue = std::collections::VecDeque::from([first]);
        'search: while let Some(n) = queue.pop_front() {
            for e in free.edges_directed(n, Direction::Outgoing) {
                let t = e.target();
                if !inside.contains(&t) || via.contains_key(&t) {
                    continue;
                }
                via.insert(t, e.id());
                if t == first {
                    break 'search;
                }
                queue.push_back(t);
            }
        }
        let mut path = Vec::new();
        let mut at = first;
        while let Some(&e) = via.get(&at) {
            path.push(free[e]);
            at = free.edge_endpoints(e).expect("edge").0;
            if at == first {
                break;
            }
        }
        path.reverse();
        cycles.push(path);
    }
    cycles.sort();
    cycles
}

impl Graph {
    /// Graphviz DOT: agents as boxes, routers as diamonds, joins as
    /// trapezia; edges labelled with their option or condition and limit.
    pub fn dot(&self, name: &str, agents: &[&str], verifiers: &[&str]) -> String {
        let mut out = format!("digraph {} {{\n  rankdir=TB;\n", quote(name));
        for i in self.graph.node_indices() {
            let node = &self.graph[i];
            let shape = match &node.kind {
                NodeKind::Start => "circle",
                NodeKind::End => "doublecircle",
                NodeKind::Agent(_) => "box",
                NodeKind::Router(_) => "diamond",
                NodeKind::Join(_) => "trapezium",
                NodeKind::Chat(_) => "octagon",
            };
            let label = [node.name.clone()]
                .into_iter()
                .chain(self.node_details(i, agents, verifiers))
                .collect::<Vec<_>>()
                .join("\n");
            out += &format!(
                "  {} [shape={shape}, label={}];\n",
                quote(&node.name),
                quote(&label)
            );
        }
        for e in self.graph.edge_references() {
            let label = self.edge_label(e.id());
            let attrs = if label.is_empty() {
                String::new()
            } else {
                format!(" [label={}]", quote(&label.join("\n")))
            };
            out += &format!(
                "  {} -> {}{attrs};\n",
                quote(&self.graph[e.source()].name),
                quote(&self.graph[e.target()].name)
            );
        }
        out.push_str("}\n");
        out
    }

    /// One line per node with what it is, then one per edge.
    pub fn outline(&self, agents: &[&str], verifiers: &[&str]) -> String {
        let mut out = String::new();
        if let Some(m) = self.max_turns {
            out += &format!("max turns {m}\n");
        }
        for i in self.graph.node_indices().skip(2) {
            let details = self.node_details(i, agents, verifiers).join(", ");
            out += &format!("{}: {details}\n", self.graph[i].name);
        }
        for e in self.graph.edge_references() {
            let label = self.edge_label(e.id()).join(", ");
            let (from, to) = (&self.graph[e.source()].name, &self.graph[e.target()].name);
            if label.is_empty() {
                out += &format!("{from} -> {to}\n");
            } else {
                out += &format!("{from} -> {to}  [{label}]\n");
            }
        }
        out
    }

    /// What a node is, and its limit.
    fn node_details(&self, i: NodeIndex, agents: &[&str], verifiers: &[&str]) -> Vec<String> {
        let node = &self.graph[i];
        let kind = match &node.kind {
            NodeKind::Start | NodeKind::End => None,
            NodeKind::Agent(a) => Some(format!("agent {}", agents[*a])),
            NodeKind::Router(r) => Some(router_kind(r, agents)),
            NodeKind::Join(Join::Concatenate) => Some("join concatenate".to_owned()),
            NodeKind::Join(Join::Vote) => Some("join vote".to_owned()),
            NodeKind::Join(Join::Verifier(v)) => Some(format!("join verifier {}", verifiers[*v])),
            NodeKind::Chat(c) => Some(format!(
                "chat {} ({})",
                c.participants
                    .iter()
                    .map(|&a| agents[a])
                    .collect::<Vec<_>>()
                    .join(", "),
                match &c.speakers {
                    Speakers::RoundRobin => "round robin".to_owned(),
                    Speakers::Random => "random".to_owned(),
                    Speakers::Manager(m) => format!("manager {}", agents[*m]),
                    Speakers::Router(r) => format!("speaker {}", router_kind(r, agents)),
                }
            )),
        };
        let view = match node.view {
            View::All => None,
            View::Last(k) => Some(format!("sees the last {k}")),
            View::Addressed => Some("sees what is addressed to it".to_owned()),
            View::Summary(a) => Some(format!("sees a summary by {}", agents[a])),
        };
        kind.into_iter()
            .chain(view)
            .chain(node.max_visits.map(|m| format!("max visits {m}")))
            .collect()
    }

    /// An edge's option or condition, and its limit.
    fn edge_label(&self, e: EdgeIndex) -> Vec<String> {
        let edge = &self.graph[e];
        let (from, _) = self.graph.edge_endpoints(e).expect("edge of this graph");
        let mut label = Vec::new();
        if let (Some(k), NodeKind::Router(r)) = (edge.option, &self.graph[from].kind) {
            label.push(format!("option {}", r.options[k].name));
        }
        match &edge.when {
            Some(Condition::Contains(s)) => label.push(format!("contains {s:?}")),
            Some(Condition::Regex(r)) => label.push(format!("regex /{}/", r.as_str())),
            None => {}
        }
        if let Some(m) = edge.max_visits {
            label.push(format!("max visits {m}"));
        }
        label
    }
}

/// A DOT string literal.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
