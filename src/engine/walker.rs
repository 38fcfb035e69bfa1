//! One run of an agent graph, as a state machine: the [`Walker`] decides
//! which node comes next, keeps the transcript, the visit counts and the
//! events of the run, and asks its caller for what only a model can say.
//!
//! The walker does no I/O: [`Walker::step`] returns a [`Step`] — an agent
//! to speak, a router's or chat's chooser to name an option or speaker, a
//! join to combine its branches, a verifier to judge a chat's last message —
//! and the caller answers with [`Walker::deliver`] (or [`Walker::accept`]). So the same
//! walk serves real and simulated models, sync tests and the async executor,
//! and it is a pure function of the graph and the texts delivered.
//!
//! Semantics (`docs/scenario.md`, "graph"): branches are processed in the
//! order their edges are written (first in, first out). After a message, a
//! router takes the edge of the option it selects; another node takes the
//! first conditional edge whose condition holds, else all its edges without
//! a condition (a fan-out). An edge or node at its `max_visits` is not taken;
//! a branch with no edge left to take ends there. A join waits for one
//! arrival per incoming edge. A chat node lets its participants speak, one
//! message a turn, until its `until` holds, then passes its last message on.
//! The run ends when no branch is left, or at `max_turns` turns (node
//! visits, plus every chat message after a chat's first).

use std::collections::VecDeque;

use petgraph::Direction;
use petgraph::graph::{EdgeIndex, NodeIndex};
use petgraph::visit::EdgeRef;

use rand::RngExt;

use crate::scenario::graph::{
    Chat, ChatProgress, Graph, NodeKind, RouteBy, Router, Speakers, View,
};
use crate::seed::{self, Part};

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
    /// A running summary written for `node`'s speakers (`view: {summary:
    /// AGENT}`); no other view shows it.
    pub summary: bool,
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
    /// A router selected an option (`None`: none matched and no default);
    /// a chat's speaker router, the next speaker's name.
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
    /// A verifier scored a message: a join's branch, or a chat's last
    /// message against its `until` (the caller's verdicts, recorded here
    /// so that the trace has them in order).
    Verified {
        node: NodeIndex,
        message: usize,
        verifier: usize,
        score: Option<f64>,
        accepted: Option<bool>,
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
    /// A chat's `until` names a verifier: say with [`Walker::accept`]
    /// whether it accepts message `message`.
    Verify {
        node: NodeIndex,
        message: usize,
        verifier: usize,
    },
    /// A `view: {summary: AGENT}` node is about to speak: `agent` writes
    /// the running summary of `messages` (the new ones since `previous`,
    /// the last summary); deliver it.
    Summarize {
        node: NodeIndex,
        agent: usize,
        /// Who speaks once the summary is in.
        speaker: usize,
        messages: Vec<usize>,
        previous: Option<usize>,
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
    /// The group chat in progress.
    chat: Option<ChatState>,
    /// Per node: its latest summary message, and how many messages the
    /// run had when it was asked for.
    summaries: Vec<Option<(usize, usize)>>,
    /// Seconds since the run began, as the caller's clock says.
    seconds: f64,
    seed: u64,
}

/// One visit of a chat node.
#[derive(Debug, Clone)]
struct ChatState {
    node: NodeIndex,
    /// The chat's last message (or the one that reached it).
    last: Option<usize>,
    said: usize,
    tokens: u64,
    started: f64,
    /// Index into the participants of the last speaker.
    speaker: Option<usize>,
}

impl<'g> Walker<'g> {
    /// A run of `graph`; `seed` seeds random speaker choices.
    pub fn new(graph: &'g Graph, seed: u64) -> Walker<'g> {
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
            chat: None,
            summaries: vec![None; graph.graph.node_count()],
            seconds: 0.0,
            seed,
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
        self.final_index().map(|i| &self.messages[i])
    }

    /// The position of [`Walker::final_message`] among the messages.
    pub fn final_index(&self) -> Option<usize> {
        self.finished.or(self.messages.len().checked_sub(1))
    }

    /// The caller's clock: seconds since the run began (for chats'
    /// `timeout`).
    pub fn set_clock(&mut self, seconds: f64) {
        self.seconds = seconds;
    }

    /// What the caller must do next. Asking again before delivering returns
    /// the same step.
    pub fn step(&mut self) -> Step {
        if let Some(step) = &self.pending {
            return step.clone();
        }
        if let Some(t) = self.done {
            return Step::Done(t);
        }
        if let Some(step) = self.chat_turn() {
            self.pending = Some(step.clone());
            return step;
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
    /// reply or a join's combined text, and the tokens it cost (counted
    /// against a chat's `max_tokens`).
    pub fn deliver(&mut self, text: String, tokens: u64) {
        let Some(step) = self.pending.take() else {
            return;
        };
        if let Some(chat) = &mut self.chat {
            chat.tokens += tokens;
        }
        match step {
            Step::Speak { node, agent } if self.chat.is_some() => {
                let last = self.chat.as_ref().and_then(|c| c.last);
                let i = self.push(node, Some(agent), text, last);
                self.chat_said(i, agent);
            }
            Step::Speak { node, agent } => {
                let i = self.push(node, Some(agent), text, self.pending_from);
                self.after(node, i);
            }
            Step::Choose { node, .. } => match &self.graph.graph[node].kind {
                NodeKind::Router(router) => {
                    let option = chosen(router, &text);
                    self.route(node, self.pending_from, option);
                }
                NodeKind::Chat(chat) => {
                    let picked = match &chat.speakers {
                        Speakers::Router(router) => {
                            self.speaker_routed(node, chat, router, chosen(router, &text))
                        }
                        _ => named(&chat.names, &text),
                    };
                    let last = self.chat.as_ref().and_then(|c| c.speaker);
                    let next = picked.unwrap_or_else(|| after(last, chat.participants.len()));
                    self.pending = Some(self.speak(node, chat.participants[next]));
                }
                _ => unreachable!("Choose is asked at routers and chats"),
            },
            Step::Summarize {
                node,
                agent,
                speaker,
                previous,
                ..
            } => {
                let upto = self.messages.len();
                let i = self.push(node, Some(agent), text, previous);
                self.messages[i].summary = true;
                self.summaries[node.index()] = Some((i, upto));
                self.pending = Some(Step::Speak {
                    node,
                    agent: speaker,
                });
            }
            Step::Verify { .. } => {
                // A verdict comes through `accept`.
                self.pending = Some(step);
            }
            Step::Join { node, branches } => {
                let i = self.push(node, None, text, branches.last().copied());
                self.after(node, i);
            }
            Step::Done(_) => {}
        }
    }

    /// Record a verifier's verdict on `message` at `node`.
    pub fn verified(
        &mut self,
        node: NodeIndex,
        message: usize,
        verifier: usize,
        score: Option<f64>,
        accepted: Option<bool>,
    ) {
        self.events.push(Event::Verified {
            node,
            message,
            verifier,
            score,
            accepted,
        });
    }

    /// The verdict on the message of the pending [`Step::Verify`].
    pub fn accept(&mut self, accepted: bool) {
        if matches!(self.pending, Some(Step::Verify { .. })) {
            self.pending = None;
            self.chat_check(accepted);
        }
    }

    fn chat_of(&self, node: NodeIndex) -> &'g Chat {
        match &self.graph.graph[node].kind {
            NodeKind::Chat(chat) => chat,
            _ => unreachable!("a chat state is kept at chat nodes"),
        }
    }

    /// The chat's next message: who speaks (or the manager's pick of who).
    fn chat_turn(&mut self) -> Option<Step> {
        let state = self.chat.as_ref()?;
        let (node, said, speaker, last) = (state.node, state.said, state.speaker, state.last);
        let chat = self.chat_of(node);
        if said > 0 {
            // The first message is the node visit's turn; each further one
            // is a turn of its own.
            if self.out_of_turns() {
                self.chat = None;
                return None;
            }
            self.turns += 1;
        }
        let n = chat.participants.len();
        let next = match &chat.speakers {
            Speakers::RoundRobin => said % n,
            Speakers::Random => {
                let mut rng = seed::rng(
                    self.seed,
                    &[
                        Part::Str("chat"),
                        Part::Str(&self.graph.graph[node].name),
                        Part::Int(self.node_visits[node.index()] as u64),
                        Part::Int(said as u64),
                    ],
                );
                // Never the last speaker twice in a row.
                match speaker {
                    Some(last) => (last + 1 + rng.random_range(0..n - 1)) % n,
                    None => rng.random_range(0..n),
                }
            }
            Speakers::Manager(agent)
            | Speakers::Router(Router {
                by: RouteBy::Llm { agent },
                ..
            }) => {
                return Some(Step::Choose {
                    node,
                    agent: *agent,
                });
            }
            Speakers::Router(router) => {
                let text = last.map_or("", |m| self.messages[m].text.as_str());
                let option = matched(router, text);
                self.speaker_routed(node, chat, router, option)
                    .unwrap_or_else(|| after(speaker, n))
            }
        };
        Some(self.speak(node, chat.participants[next]))
    }

    /// Chat `node`'s speaker router selected `option`: the participant it
    /// names (index into `participants`), traced as a routing.
    fn speaker_routed(
        &mut self,
        node: NodeIndex,
        chat: &Chat,
        router: &Router,
        option: Option<usize>,
    ) -> Option<usize> {
        self.events.push(Event::Routed { node, option });
        option.and_then(|o| chat.picked(router, o))
    }

    /// `agent` is to speak at `node`: first its running summary, when its
    /// view is one and there is something new to summarize.
    fn speak(&self, node: NodeIndex, agent: usize) -> Step {
        let View::Summary(summarizer) = self.graph.graph[node].view else {
            return Step::Speak { node, agent };
        };
        let (previous, upto) = match self.summaries[node.index()] {
            Some((m, upto)) => (Some(m), upto),
            None => (None, 0),
        };
        let messages: Vec<usize> = (upto..self.messages.len())
            .filter(|&m| !self.messages[m].summary)
            .collect();
        if messages.is_empty() {
            return Step::Speak { node, agent };
        }
        Step::Summarize {
            node,
            agent: summarizer,
            speaker: agent,
            messages,
            previous,
        }
    }

    /// The messages (indices, in order) that `agent` sees when it speaks at
    /// `node`, by the node's `view`.
    pub fn view(&self, node: NodeIndex, agent: usize) -> Vec<usize> {
        let said = (0..self.messages.len()).filter(|&m| !self.messages[m].summary);
        match self.graph.graph[node].view {
            View::All => said.collect(),
            View::Last(k) => {
                let all: Vec<usize> = said.collect();
                all[all.len().saturating_sub(k)..].to_vec()
            }
            View::Addressed => {
                let name = match &self.graph.graph[node].kind {
                    NodeKind::Chat(chat) => chat
                        .participants
                        .iter()
                        .position(|&p| p == agent)
                        .map(|i| chat.names[i].to_lowercase()),
                    _ => None,
                };
                said.filter(|&m| {
                    let msg = &self.messages[m];
                    let passed = msg.node != node && msg.receivers.contains(&node);
                    let named = msg.node == node
                        && name
                            .as_ref()
                            .is_some_and(|n| msg.text.to_lowercase().contains(n.as_str()));
                    passed || named
                })
                .collect()
            }
            View::Summary(_) => self.summaries[node.index()]
                .map(|(m, _)| m)
                .into_iter()
                .collect(),
        }
    }

    /// Message `i` was said in the chat by `agent`: check `until`.
    fn chat_said(&mut self, i: usize, agent: usize) {
        let node = self.chat.as_ref().expect("a chat is in progress").node;
        let chat = self.chat_of(node);
        let state = self.chat.as_mut().expect("a chat is in progress");
        state.last = Some(i);
        state.said += 1;
        state.speaker = chat.participants.iter().position(|&p| p == agent);
        self.messages[i].receivers.push(node);
        match chat.until.verifier() {
            Some(verifier) => {
                self.pending = Some(Step::Verify {
                    node,
                    message: i,
                    verifier,
                })
            }
            None => self.chat_check(false),
        }
    }

    /// End the chat if its `until` holds (`accepted`: the verifier's verdict
    /// on the last message), passing its last message on.
    fn chat_check(&mut self, accepted: bool) {
        let Some(state) = self.chat.clone() else {
            return;
        };
        let last = state.last.expect("a message was said");
        let chat = self.chat_of(state.node);
        let progress = ChatProgress {
            messages: state.said,
            tokens: state.tokens,
            seconds: self.seconds - state.started,
            last: &self.messages[last].text,
            accepted,
        };
        if chat.until.holds(&progress) {
            self.chat = None;
            self.after(state.node, last);
        }
    }

    /// Whether the run has used its turns (and so ends, as `max_turns`).
    fn out_of_turns(&mut self) -> bool {
        let limit = self
            .graph
            .max_turns
            .unwrap_or(HARD_TURN_LIMIT)
            .min(HARD_TURN_LIMIT);
        let out = self.turns >= limit;
        if out {
            self.finish(Termination::MaxTurns);
        }
        out
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
            summary: false,
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
        if self.out_of_turns() {
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
            NodeKind::Agent(agent) => Some(self.speak(node, *agent)),
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
                let m = from?;
                self.arrived[node.index()].push(m);
                let needed = g.edges_directed(node, Direction::Incoming).count();
                if self.arrived[node.index()].len() < needed {
                    // Not every branch is in: this visit only delivered one.
                    return None;
                }
                let branches = std::mem::take(&mut self.arrived[node.index()]);
                match join {
                    crate::scenario::graph::Join::Concatenate => {
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
            NodeKind::Chat(_) => {
                self.chat = Some(ChatState {
                    node,
                    last: from,
                    said: 0,
                    tokens: 0,
                    started: self.seconds,
                    speaker: None,
                });
                self.chat_turn()
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

/// A chat's next speaker when nothing picks one: the participant after the
/// last speaker, so a confused chooser cannot stall the chat.
fn after(last: Option<usize>, participants: usize) -> usize {
    last.map_or(0, |s| (s + 1) % participants)
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
            let value = crate::scenario::answer::last_json_field(text, &path);
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
    let names: Vec<&str> = router.options.iter().map(|o| o.name.as_str()).collect();
    named(&names, reply)
}

/// Which of `names` a reply names: the whole reply (any case), or else the
/// name it mentions first.
fn named(names: &[impl AsRef<str>], reply: &str) -> Option<usize> {
    let reply = reply.trim();
    names
        .iter()
        .position(|n| n.as_ref().eq_ignore_ascii_case(reply))
        .or_else(|| {
            let lower = reply.to_lowercase();
            names
                .iter()
                .enumerate()
                .filter_map(|(i, n)| lower.find(&n.as_ref().to_lowercase()).map(|at| (at, i)))
                .min()
                .map(|(_, i)| i)
        })
}
