//! One run of an agent graph, as a state machine: the [`Walker`] decides
//! which node comes next, keeps the transcript, the visit counts and the
//! events of the run, and asks its caller for what only a model can say.
//!
//! The walker does no I/O: [`Walker::next`] returns a [`Step`] — an agent
//! to speak, a router's chooser to name an option, a join to combine its
//! branches — and the caller answers with [`Walker::deliver`]. So the same
//! walk serves real and simulated models, sync tests and the async executor,
//! and it is a pure function of the graph and the texts delivered.
//!
//! Semantics (`docs/scenario.md`, "graph"): branches are processed in the
//! order their edges are written (first in, first out). After a message, a
//! router takes the edge of the option it selects; another node takes the
//! first conditional edge whose condition holds, else all its edges without
//! a condition (a fan-out). An edge or node at its `max_visits` is not taken;
//! a branch with no edge left to take ends there. A join waits for one
//! arrival per incoming edge. The run ends when no branch is left, or at
//! `max_turns` node visits.

use std::collections::VecDeque;

use petgraph::Direction;
use petgraph::graph::{EdgeIndex, NodeIndex};
use petgraph::visit::EdgeRef;

use crate::graph::{Graph, NodeKind, RouteBy, Router};

/// Node visits after which a walk stops even without `max_turns` (graphs
/// are validated so that every cycle is bounded; this guards the rest).
pub const HARD_TURN_LIMIT: usize = 10_000;

/// One message of a graph run.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Node visits before this message (0-based).
    pub turn: usize,
    pub node: NodeIndex,
    /// The speaking agent (`None` for a join's combined message).
    pub sender: Option<usize>,
    pub text: String,
    /// The message this one answers (the one that reached its node).
    pub reply_to: Option<usize>,
    /// The nodes it was passed on to.
    pub receivers: Vec<NodeIndex>,
}

/// What happened in a run, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Entered {
        node: NodeIndex,
        turn: usize,
    },
    /// A conditional edge was tested on a message.
    Condition {
        edge: EdgeIndex,
        held: bool,
    },
    /// A router selected an option (`None`: none matched and no default).
    Routed {
        node: NodeIndex,
        option: Option<usize>,
    },
    EdgeTaken {
        edge: EdgeIndex,
    },
    /// A branch could go no further: every edge it could take (or the node
    /// it would enter) is at its `max_visits`, or a router found no option.
    BranchEnded {
        node: NodeIndex,
        why: Termination,
    },
    Terminated(Termination),
}

/// Why a run (or a branch) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// Reached `END`.
    End,
    /// `max_turns` node visits (or the hard limit).
    MaxTurns,
    /// An edge or node it needed was at its `max_visits`.
    MaxVisits,
    /// A router matched no option and has no default.
    NoRoute,
    /// A join waited for branches that never came.
    Unjoined,
}

impl Termination {
    pub fn as_str(self) -> &'static str {
        match self {
            Termination::End => "end",
            Termination::MaxTurns => "max_turns",
            Termination::MaxVisits => "max_visits",
            Termination::NoRoute => "no_route",
            Termination::Unjoined => "unjoined",
        }
    }
}

/// What the walker needs from its caller next.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// `agent` speaks at `node`; deliver its message.
    Speak { node: NodeIndex, agent: usize },
    /// A `by: llm` router: `agent` names one of the router's options;
    /// deliver its reply.
    Choose { node: NodeIndex, agent: usize },
    /// A `vote` or `verifier` join: deliver the combined text of
    /// `branches` (message indices, in arrival order).
    Join {
        node: NodeIndex,
        branches: Vec<usize>,
    },
    /// The run is over.
    Done(Termination),
}

/// One run of a graph.
pub struct Walker<'g> {
    graph: &'g Graph,
    messages: Vec<Message>,
    events: Vec<Event>,
    /// Branches waiting: the node to enter and the message that reached it.
    frontier: VecDeque<(NodeIndex, Option<usize>)>,
    node_visits: Vec<usize>,
    edge_visits: Vec<usize>,
    /// Messages waiting at each join, in arrival order.
    arrived: Vec<Vec<usize>>,
    turns: usize,
    /// What the caller was last asked, awaiting `deliver`.
    pending: Option<Step>,
    /// The message that reached the node of the pending step.
    pending_from: Option<usize>,
    /// The message that last reached `END`.
    finished: Option<usize>,
    /// How the last branch ended (the run's reason when no branch reached `END`).
    last_end: Option<Termination>,
    done: Option<Termination>,
}

impl<'g> Walker<'g> {
    pub fn new(graph: &'g Graph) -> Walker<'g> {
        let mut w = Walker {
            graph,
            messages: Vec::new(),
            events: Vec::new(),
            frontier: VecDeque::new(),
            node_visits: vec![0; graph.graph.node_count()],
            edge_visits: vec![0; graph.graph.edge_count()],
            arrived: vec![Vec::new(); graph.graph.node_count()],
            turns: 0,
            pending: None,
            pending_from: None,
            finished: None,
            last_end: None,
            done: None,
        };
        w.pass_on(graph.start, None, "");
        w
    }

    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Node visits so far.
    pub fn turns(&self) -> usize {
        self.turns
    }

    pub fn node_visits(&self, node: NodeIndex) -> usize {
        self.node_visits[node.index()]
    }

    pub fn edge_visits(&self, edge: EdgeIndex) -> usize {
        self.edge_visits[edge.index()]
    }

    /// The run's answer: the last message to reach `END`, else the last
    /// message of the run.
    pub fn final_message(&self) -> Option<&Message> {
        self.finished
            .or(self.messages.len().checked_sub(1))
            .map(|i| &self.messages[i])
    }

    /// What the caller must do next. Asking again before delivering returns
    /// the same step.
    pub fn next(&mut self) -> Step {
        if let Some(step) = &self.pending {
            return step.clone();
        }
        if let Some(t) = self.done {
            return Step::Done(t);
        }
        while let Some((node, from)) = self.frontier.pop_front() {
            if let Some(step) = self.enter(node, from) {
                self.pending = Some(step.clone());
                return step;
            }
            if self.done.is_some() {
                break;
            }
        }
        let reason = self.done.unwrap_or_else(|| {
            if self.finished.is_some() {
                Termination::End
            } else if self.arrived.iter().any(|a| !a.is_empty()) {
                Termination::Unjoined
            } else {
                self.last_end.unwrap_or(Termination::End)
            }
        });
        self.finish(reason);
        Step::Done(reason)
    }

    /// The caller's answer to the last [`Step`]: a message, a chooser's
    /// reply or a join's combined text.
    pub fn deliver(&mut self, text: String) {
        let Some(step) = self.pending.take() else {
            return;
        };
        match step {
            Step::Speak { node, agent } => {
                let i = self.push(node, Some(agent), text, self.pending_from);
                self.after(node, i);
            }
            Step::Choose { node, .. } => {
                let NodeKind::Router(router) = &self.graph.graph[node].kind else {
                    unreachable!("Choose is asked at routers")
                };
                let option = chosen(router, &text);
                self.route(node, self.pending_from, option);
            }
            Step::Join { node, branches } => {
                let i = self.push(node, None, text, branches.last().copied());
                self.after(node, i);
            }
            Step::Done(_) => {}
        }
    }

    fn finish(&mut self, reason: Termination) {
        if self.done.is_none() {
            self.done = Some(reason);
            self.events.push(Event::Terminated(reason));
        }
    }

    fn push(
        &mut self,
        node: NodeIndex,
        sender: Option<usize>,
        text: String,
        reply_to: Option<usize>,
    ) -> usize {
        self.messages.push(Message {
            turn: self.turns - 1,
            node,
            sender,
            text,
            reply_to,
            receivers: Vec::new(),
        });
        self.messages.len() - 1
    }

    /// Enter `node` with message `from`; a step for the caller, or `None`
    /// when the walker could go on by itself.
    fn enter(&mut self, node: NodeIndex, from: Option<usize>) -> Option<Step> {
        let g = &self.graph.graph;
        if matches!(g[node].kind, NodeKind::End) {
            self.events.push(Event::Entered {
                node,
                turn: self.turns,
            });
            self.finished = from.or(self.finished);
            return None;
        }
        let limit = self
            .graph
            .max_turns
            .unwrap_or(HARD_TURN_LIMIT)
            .min(HARD_TURN_LIMIT);
        if self.turns >= limit {
            self.finish(Termination::MaxTurns);
            return None;
        }
        if g[node]
            .max_visits
            .is_some_and(|m| self.node_visits[node.index()] >= m)
        {
            self.end_branch(node, Termination::MaxVisits);
            return None;
        }
        self.node_visits[node.index()] += 1;
        self.turns += 1;
        self.events.push(Event::Entered {
            node,
            turn: self.turns - 1,
        });
        self.pending_from = from;
        match &g[node].kind {
            NodeKind::Agent(agent) => Some(Step::Speak {
                node,
                agent: *agent,
            }),
            NodeKind::Router(router) => match router.by {
                RouteBy::Llm { agent } => Some(Step::Choose { node, agent }),
                _ => {
                    let text = from.map_or("", |m| self.messages[m].text.as_str());
                    let option = matched(router, text);
                    self.route(node, from, option);
                    None
                }
            },
            NodeKind::Join(join) => {
                let Some(m) = from else { return None };
                self.arrived[node.index()].push(m);
                let needed = g.edges_directed(node, Direction::Incoming).count();
                if self.arrived[node.index()].len() < needed {
                    // Not every branch is in: this visit only delivered one.
                    return None;
                }
                let branches = std::mem::take(&mut self.arrived[node.index()]);
                match join {
                    crate::graph::Join::Concatenate => {
                        let text = branches
                            .iter()
                            .map(|&b| self.messages[b].text.as_str())
                            .collect::<Vec<_>>()
                            .join("\n\n");
                        let i = self.push(node, None, text, branches.last().copied());
                        self.after(node, i);
                        None
                    }
                    _ => Some(Step::Join { node, branches }),
                }
            }
            NodeKind::Start | NodeKind::End => None,
        }
    }

    fn end_branch(&mut self, node: NodeIndex, why: Termination) {
        self.events.push(Event::BranchEnded { node, why });
        self.last_end = Some(why);
    }

    /// A router at `node` selected `option` for message `from`.
    fn route(&mut self, node: NodeIndex, from: Option<usize>, option: Option<usize>) {
        self.events.push(Event::Routed { node, option });
        let Some(option) = option else {
            self.end_branch(node, Termination::NoRoute);
            return;
        };
        let edge = self
            .graph
            .graph
            .edges_directed(node, Direction::Outgoing)
            .find(|e| e.weight().option == Some(option))
            .map(|e| e.id());
        match edge {
            Some(e) if self.edge_open(e) => self.take(&[e], from),
            _ => self.end_branch(node, Termination::MaxVisits),
        }
    }

    /// Message `i` was said at `node`: pass it on.
    fn after(&mut self, node: NodeIndex, i: usize) {
        let text = self.messages[i].text.clone();
        self.pass_on(node, Some(i), &text);
    }

    /// Take `node`'s edges for a message with `text`: the first conditional
    /// edge that holds, else every edge without a condition.
    fn pass_on(&mut self, node: NodeIndex, message: Option<usize>, text: &str) {
        let g = &self.graph.graph;
        // Outgoing edges in the order they were written.
        let mut edges: Vec<EdgeIndex> = g
            .edges_directed(node, Direction::Outgoing)
            .map(|e| e.id())
            .collect();
        edges.sort();
        let mut chosen = Vec::new();
        for &e in &edges {
            let Some(condition) = &g[e].when else {
                continue;
            };
            if !self.edge_open(e) {
                continue;
            }
            let held = condition.holds(text);
            self.events.push(Event::Condition { edge: e, held });
            if held {
                chosen.push(e);
                break;
            }
        }
        if chosen.is_empty() {
            chosen = edges
                .iter()
                .copied()
                .filter(|&e| g[e].when.is_none() && self.edge_open(e))
                .collect();
        }
        if chosen.is_empty() {
            let why = if edges.is_empty() {
                Termination::End
            } else {
                Termination::MaxVisits
            };
            self.end_branch(node, why);
            return;
        }
        self.take(&chosen, message);
    }

    fn edge_open(&self, e: EdgeIndex) -> bool {
        self.graph.graph[e]
            .max_visits
            .is_none_or(|m| self.edge_visits[e.index()] < m)
    }

    fn take(&mut self, edges: &[EdgeIndex], message: Option<usize>) {
        for &e in edges {
            self.edge_visits[e.index()] += 1;
            self.events.push(Event::EdgeTaken { edge: e });
            let (_, target) = self
                .graph
                .graph
                .edge_endpoints(e)
                .expect("edge of the graph");
            if let Some(m) = message {
                self.messages[m].receivers.push(target);
            }
            self.frontier.push_back((target, message));
        }
    }
}

/// The option a `contains`, `regex` or `json` router selects for `text`.
fn matched(router: &Router, text: &str) -> Option<usize> {
    let found = match &router.by {
        RouteBy::Contains => router
            .options
            .iter()
            .position(|o| text.contains(o.text.as_str())),
        RouteBy::Regex => router
            .options
            .iter()
            .position(|o| o.pattern.as_ref().is_some_and(|p| p.is_match(text))),
        RouteBy::Json { field } => {
            let path: Vec<String> = field.split('.').map(str::to_owned).collect();
            let value = crate::answer::last_json_field(text, &path);
            value.and_then(|v| router.options.iter().position(|o| o.text == v.trim()))
        }
        RouteBy::Llm { .. } => chosen_name(router, text),
    };
    found.or(router.default)
}

/// The option an `llm` router's chooser named: its reply is the option's
/// name (any case), or else the first option name it mentions; otherwise
/// the default.
fn chosen(router: &Router, reply: &str) -> Option<usize> {
    chosen_name(router, reply).or(router.default)
}

fn chosen_name(router: &Router, reply: &str) -> Option<usize> {
    let reply = reply.trim();
    router
        .options
        .iter()
        .position(|o| o.name.eq_ignore_ascii_case(reply))
        .or_else(|| {
            let lower = reply.to_lowercase();
            router
                .options
                .iter()
                .enumerate()
                .filter_map(|(i, o)| lower.find(&o.name.to_lowercase()).map(|at| (at, i)))
                .min()
                .map(|(_, i)| i)
        })
}
