//! Runs of the scenario's agent graph as samples: each sample of the graph
//! pseudo-agent is one walk ([`crate::engine::walker::Walker`]), every agent turn a
//! traced call through the executor's [`Conversation`], and the walk's final
//! message the sample's text, extracted and scored like any other.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rand::RngExt;

use super::{Conversation, Shared, correctness, judge_one, render_prompt};
use crate::engine::caller::Stop;
use crate::engine::judging::{self, Subject};
use crate::engine::verifier::{Candidate, Score};
use crate::engine::walker::{Event, HARD_TURN_LIMIT, Step, Termination, Walker};
use crate::model::scene::{Scene, SceneStep, Seen};
use crate::scenario::ModelKind;
use crate::scenario::Task;
use crate::scenario::graph::{Join, NodeKind};
use crate::seed::{self, Part};
use crate::stats::strategy::{PoolSample, UNSCORED};
use crate::store::{GraphRunRecord, InjectedRecord, MessageRecord, Record};

/// What `samples.strategy` says of a graph turn's call.
const GRAPH_STRATEGY: &str = "graph";

/// Draw `size` runs of the graph on `task` as the pool of the graph
/// pseudo-agent `graph_agent`, one after another.
pub(super) async fn draw_graph_pool(
    sh: &Shared,
    task: &Task,
    graph_agent: usize,
    size: usize,
) -> Result<Vec<PoolSample>, Stop> {
    let mut pool = Vec::with_capacity(size);
    for attempt in 0..size {
        pool.push(run_once(sh, task, graph_agent, attempt, None).await?.sample);
    }
    Ok(pool)
}

/// Calls one run may make, at most: every turn an agent's message, a
/// summary and a chooser's pick.
fn calls_per_run(sh: &Shared) -> usize {
    let graph = sh
        .scenario
        .graph
        .as_ref()
        .expect("a graph pseudo-agent has a graph");
    3 * graph
        .max_turns
        .unwrap_or(HARD_TURN_LIMIT)
        .min(HARD_TURN_LIMIT)
}

/// How a replayed graph run departs from the one it replays (`crucible
/// blame`): the turns intervened on are re-sampled or repaired, and every
/// other turn draws what it drew in the original, so that up to the first
/// intervention the replay is the original (served from its recorded
/// calls) and after it differs only through what the intervention changed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Intervention {
    /// The graph run replayed: its walker seed, failure draws and sample
    /// indices are the replay's.
    pub origin_attempt: usize,
    pub target: Target,
    pub redraw: Redraw,
    /// The replay seed a re-sampled turn draws from.
    pub replay: u32,
}

/// Which agent turns an intervention takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// Every turn of these agents (scenario agent indices).
    Agents(Vec<usize>),
    /// The turns that write the messages at these positions.
    Turns(Vec<usize>),
}

/// What an intervened turn does instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Redraw {
    /// Draw the turn afresh: another sample, and another failure draw.
    Resample,
    /// Draw it as before, but without the failure a simulated agent was
    /// picked to act out.
    Repair,
}

impl Intervention {
    fn takes(&self, agent: usize, position: usize) -> bool {
        match &self.target {
            Target::Agents(set) => set.contains(&agent),
            Target::Turns(set) => set.contains(&position),
        }
    }
}

/// Sample indices of re-sampled turns: far above any run's own, one block
/// per replay seed. Odd below 2³², so that servers that keep only 32 bits
/// of a request's seed (offset by the sample index) still draw anew.
const RESAMPLE_STRIDE: usize = (1 << 40) | 0x9E37_79B9;

/// A graph run as walked: its sample, and what it spent from its first
/// intervened turn on (all of it without an intervention).
pub(crate) struct Walked {
    pub sample: PoolSample,
    /// Whether a call failed on the way.
    pub errored: bool,
    pub calls: u64,
    pub tokens: u64,
    pub cost_usd: f64,
}

/// One walk of the graph on `task`, stored as graph run `attempt`; with an
/// `intervention`, a replay of another graph run (no judges, no verifiers
/// of the final answer: only whether it is right matters).
pub(crate) async fn run_once(
    sh: &Shared,
    task: &Task,
    graph_agent: usize,
    attempt: usize,
    intervention: Option<&Intervention>,
) -> Result<Walked, Stop> {
    let sc = &*sh.scenario;
    let graph = sc.graph.as_ref().expect("a graph pseudo-agent has a graph");
    // Whose draws these are: the original's, for a replay.
    let drawn_as = intervention.map_or(attempt, |i| i.origin_attempt);
    let mut rng = seed::rng(
        sc.seed,
        &[
            Part::Str("graph"),
            Part::Str(&task.id),
            Part::Int(drawn_as as u64),
        ],
    );
    let mut walker = Walker::new(graph, rng.random());
    let started = std::time::Instant::now();
    let mut tokens = 0;
    let mut calls = vec![0usize; sc.agents.len()];
    let mut injected = Vec::new();
    let mut diverged = intervention.is_none();
    let (mut errored, mut spent_calls, mut spent_tokens, mut cost_usd) = (false, 0, 0, 0.0);
    let mut judge = Judging {
        sh,
        task,
        graph_agent,
        attempt,
        verdicts: HashMap::new(),
        prompts: HashMap::new(),
    };
    let ending = loop {
        walker.set_clock(started.elapsed().as_secs_f64());
        let step = walker.step();
        // An intervention takes agents' turns, which write messages.
        let intervened = match (&step, intervention) {
            (Step::Speak { agent, .. }, Some(i)) => {
                i.takes(*agent, walker.messages().len()).then_some(i)
            }
            _ => None,
        };
        let resampled = intervened
            .filter(|i| i.redraw == Redraw::Resample)
            .map(|i| i.replay);
        let mut scene = scene_of(sh, task, drawn_as, resampled, &walker, &step);
        if let (Some(s), Some(i)) = (scene.as_mut(), intervened)
            && i.redraw == Redraw::Repair
        {
            s.failure = None;
        }
        diverged |= intervened.is_some();
        let (agent, ask) = match &step {
            Step::Done(ending) => break *ending,
            Step::Speak { node, agent } => {
                let seen = walker.view(*node, *agent);
                (
                    *agent,
                    transcript(sc, walker.messages(), &seen, "The conversation so far:"),
                )
            }
            Step::Choose { node, agent } => {
                let options = graph.graph[*node].kind.choices();
                let all: Vec<usize> = (0..walker.messages().len()).collect();
                let mut ask = transcript(sc, walker.messages(), &all, "The conversation so far:");
                ask.push_str(&format!("\n\nReply with one of: {}.", options.join(", ")));
                (*agent, ask)
            }
            Step::Summarize {
                agent,
                messages,
                previous,
                ..
            } => {
                let mut ask = String::from("\n\nSummarize this conversation.");
                if let Some(p) = previous {
                    ask.push_str(&format!(
                        "\nThe summary so far: {}",
                        walker.messages()[*p].text
                    ));
                }
                ask.push_str(&transcript(
                    sc,
                    walker.messages(),
                    messages,
                    "New messages:",
                ));
                (*agent, ask)
            }
            Step::Join { node, branches } => {
                let texts: Vec<&str> = branches
                    .iter()
                    .map(|&b| walker.messages()[b].text.as_str())
                    .collect();
                let writers: Vec<Option<usize>> =
                    branches.iter().map(|&b| writer(&walker, b)).collect();
                let mut verdicts = Vec::new();
                let text = match &graph.graph[*node].kind {
                    // The best-scored branch; the first of equals.
                    NodeKind::Join(Join::Verifier(v)) => {
                        let mut best: Option<(usize, f64)> = None;
                        for (i, t) in texts.iter().enumerate() {
                            let (verdict, spent) =
                                judge.score(t, writers[i], Some(branches[i]), *v).await?;
                            verdicts.push((branches[i], *v, verdict.value, verdict.accepted));
                            let x = verdict.value.unwrap_or(UNSCORED);
                            tokens += spent;
                            if best.is_none_or(|(_, b)| x > b) {
                                best = Some((i, x));
                            }
                        }
                        best.map_or(String::new(), |(i, _)| texts[i].to_owned())
                    }
                    _ => vote(sc, task, &texts),
                };
                for (message, v, score, accepted) in verdicts {
                    walker.verified(*node, message, v, score, accepted);
                }
                walker.deliver(text, 0);
                continue;
            }
            Step::Verify {
                node,
                message,
                verifier,
            } => {
                let text = walker.messages()[*message].text.clone();
                let (verdict, spent) = judge
                    .score(&text, writer(&walker, *message), Some(*message), *verifier)
                    .await?;
                tokens += spent;
                // An accept/reject verifier's verdict; else a score of at least 0.5.
                let accepted = verdict
                    .accepted
                    .unwrap_or_else(|| verdict.value.is_some_and(|x| x >= 0.5));
                walker.verified(*node, *message, *verifier, verdict.value, Some(accepted));
                walker.accept(accepted);
                continue;
            }
        };
        let prompt = render_prompt(sh, task, agent)? + &ask;
        let mut conversation = Conversation::with_prompt(task, agent, prompt, Vec::new());
        let failure = scene.as_ref().and_then(|s| s.failure);
        conversation.scene = scene;
        conversation.planned = false;
        // Stored under this run's indices, drawn under the original's (or,
        // re-sampled, under the replay seed's block).
        let first = sc.first_graph_call(agent) + attempt * calls_per_run(sh);
        let index = first + calls[agent];
        let drawn = sc.first_graph_call(agent)
            + drawn_as * calls_per_run(sh)
            + calls[agent]
            + resampled.map_or(0, |r| RESAMPLE_STRIDE * (r as usize + 1));
        calls[agent] += 1;
        let sent = conversation.send(sh, &[], drawn, 1).await?;
        let round = Some((Arc::<str>::from(GRAPH_STRATEGY), first));
        let (samples, records) = conversation
            .record(sh, (&[], round), index, 1, sent)
            .await?;
        tokens += samples[0].tokens;
        errored |= records[0].error.is_some();
        if diverged {
            let output = records[0].output_tokens;
            spent_calls += 1;
            spent_tokens += samples[0].tokens;
            cost_usd += crate::scenario::budget::Spend::call(
                sc.models[sc.agents[agent].model].price,
                samples[0].tokens.saturating_sub(output),
                output,
            )
            .cost_usd;
        }
        walker.deliver(records[0].text.clone(), samples[0].tokens);
        if let Some(mode) = failure {
            let position = walker.messages().len() - 1;
            injected.push(InjectedRecord {
                position,
                turn: walker.messages()[position].turn,
                agent: sh.agent_names[agent].clone(),
                node: graph.graph[walker.messages()[position].node].name.clone(),
                mode,
            });
        }
    };
    let mut record = GraphRunRecord {
        injected,
        ..trace(sh, task, attempt, &walker, ending)
    };
    // A replay's injected failures are kept, but are no one's ground truth.
    record.truth &= intervention.is_none();
    let subject = (!sc.judges.is_empty() && intervention.is_none()).then(|| {
        let injected = record
            .injected
            .iter()
            .map(|f| (f.mode, f.position, f.agent.to_string()));
        Subject::new(task, attempt, &record.messages, injected)
    });
    sh.caller.write(Record::Graph(Box::new(record))).await?;
    if let Some(subject) = subject {
        for judge in &sc.judges {
            judging::judge_trace(&sh.caller, judge, &subject).await?;
        }
    }
    sh.caller.progress.samples.fetch_add(1, Ordering::Relaxed);
    let text = walker
        .final_message()
        .map_or(String::new(), |m| m.text.clone());
    let final_writer = walker.final_index().and_then(|m| writer(&walker, m));
    let answer = sc.answer.extract_for(&text, task);
    let correct = correctness(answer.as_ref(), task);
    let mut scores = vec![f64::NAN; sc.verifiers.len()];
    let mut verifier_tokens = vec![0; sc.verifiers.len()];
    if intervention.is_none() {
        for v in sc.verifiers_of(graph_agent) {
            let (verdict, spent) = judge.score(&text, final_writer, None, v).await?;
            (scores[v], verifier_tokens[v]) = (verdict.value.unwrap_or(UNSCORED), spent);
        }
    }
    Ok(Walked {
        sample: PoolSample {
            answer: answer.map(|a| a.normalized),
            correct: correct.unwrap_or(false),
            tokens,
            scores,
            verifier_tokens,
        },
        errored,
        calls: spent_calls,
        tokens: spent_tokens,
        cost_usd,
    })
}

/// The run as the store keeps it: its end, messages and events.
fn trace(
    sh: &Shared,
    task: &Task,
    attempt: usize,
    walker: &Walker<'_>,
    ending: Termination,
) -> GraphRunRecord {
    let sc = &*sh.scenario;
    let graph = &sc.graph.as_ref().expect("a graph").graph;
    let node = |n: petgraph::graph::NodeIndex| graph[n].name.clone();
    let edge = |e: petgraph::graph::EdgeIndex| {
        let (from, to) = graph.edge_endpoints(e).expect("edge of the graph");
        (
            graph[from].name.clone(),
            format!("{} -> {}", graph[from].name, graph[to].name),
        )
    };
    let messages = walker
        .messages()
        .iter()
        .map(|m| MessageRecord {
            turn: m.turn,
            node: node(m.node),
            sender: m.sender.map(|a| sh.agent_names[a].clone()),
            reply_to: m.reply_to,
            receivers: m.receivers.iter().map(|&r| node(r)).collect(),
            summary: m.summary,
            text: m.text.clone(),
        })
        .collect();
    let events = walker
        .events()
        .iter()
        .map(|e| match e {
            Event::Entered { node: n, turn } => {
                ("entered", Some(node(*n)), Some(format!("turn {turn}")))
            }
            Event::Condition { edge: e, held } => {
                let (from, label) = edge(*e);
                (
                    "condition",
                    Some(from),
                    Some(format!(
                        "{label}: {}",
                        if *held { "held" } else { "did not hold" }
                    )),
                )
            }
            Event::Routed { node: n, option } => {
                let name = match (graph[*n].kind.router(), option) {
                    (Some(r), Some(o)) => r.options[*o].name.clone(),
                    _ => "no option".to_owned(),
                };
                ("routed", Some(node(*n)), Some(name))
            }
            Event::EdgeTaken { edge: e } => {
                let (from, label) = edge(*e);
                ("edge", Some(from), Some(label))
            }
            Event::BranchEnded { node: n, why } => (
                "branch_ended",
                Some(node(*n)),
                Some(why.as_str().to_owned()),
            ),
            Event::Verified {
                node: n,
                message,
                verifier,
                score,
                accepted,
            } => {
                let score = score.map_or("no score".to_owned(), |x| format!("score {x}"));
                let verdict = match accepted {
                    Some(true) => ", accepted",
                    Some(false) => ", rejected",
                    None => "",
                };
                (
                    "verified",
                    Some(node(*n)),
                    Some(format!(
                        "{} on [{message}]: {score}{verdict}",
                        sc.verifiers[*verifier].name
                    )),
                )
            }
            Event::Terminated(why) => ("terminated", None, Some(why.as_str().to_owned())),
        })
        .collect();
    GraphRunRecord {
        task_index: task.index,
        attempt,
        ending: ending.as_str(),
        turns: walker.turns(),
        final_message: walker.final_index(),
        messages,
        events,
        injected: Vec::new(),
        // Only simulated models act personas out.
        truth: sc.agents.iter().any(|a| {
            !a.persona.failures.is_empty()
                && matches!(sc.models[a.model].kind, ModelKind::Simulated(_))
        }),
    }
}

/// What a turn shows its speaker when the speaker's model is simulated
/// (`None` otherwise, and for steps no agent speaks in), with the failure
/// its persona acts out, drawn per (task, run, message) from the seed —
/// and, for a turn `resampled` by a replay, from that replay's seed too.
fn scene_of(
    sh: &Shared,
    task: &Task,
    attempt: usize,
    resampled: Option<u32>,
    walker: &Walker<'_>,
    step: &Step,
) -> Option<Scene> {
    let sc = &*sh.scenario;
    let graph = sc.graph.as_ref().expect("a graph pseudo-agent has a graph");
    let (agent, node) = match step {
        Step::Speak { node, agent } | Step::Choose { node, agent } => (*agent, *node),
        Step::Summarize { agent, node, .. } => (*agent, *node),
        _ => return None,
    };
    if !matches!(
        sc.models[sc.agents[agent].model].kind,
        ModelKind::Simulated(_)
    ) {
        return None;
    }
    let all = walker.messages();
    let seen_of = |m: &crate::engine::walker::Message| {
        let answer = sc.answer.extract_for(&m.text, task);
        Seen {
            sender: m.sender.map(|a| sc.agents[a].name.clone()),
            text: m.text.clone(),
            correct: answer.as_ref().and_then(|a| correctness(Some(a), task)),
            answer: answer.map(|a| a.normalized),
        }
    };
    let last_speaker = all.iter().rev().find(|m| !m.summary).and_then(|m| m.sender);
    let (scene_step, seen) = match step {
        Step::Speak { .. } => (
            SceneStep::Speak,
            walker
                .view(node, agent)
                .iter()
                .map(|&i| seen_of(&all[i]))
                .collect(),
        ),
        Step::Choose { .. } => {
            let kind = &graph.graph[node].kind;
            let options = kind.choices().into_iter().map(str::to_owned).collect();
            let last = match kind {
                NodeKind::Chat(_) => last_speaker.map(|a| sc.agents[a].name.clone()),
                _ => None,
            };
            (SceneStep::Choose { options, last }, Vec::new())
        }
        Step::Summarize { messages, .. } => (
            SceneStep::Summarize,
            messages.iter().map(|&i| seen_of(&all[i])).collect(),
        ),
        _ => return None,
    };
    let stop = match &graph.graph[node].kind {
        NodeKind::Chat(c) => c.until.mention().map(str::to_owned),
        _ => None,
    };
    let own_last = all
        .iter()
        .rev()
        .find(|m| m.sender == Some(agent) && !m.summary)
        .map(seen_of);
    let mut scene = Scene {
        speaker: sc.agents[agent].name.clone(),
        persona: sc.agents[agent].persona.clone(),
        step: scene_step,
        seen,
        own_last,
        stop,
        failure: None,
    };
    if !scene.persona.failures.is_empty() {
        let mut parts = vec![
            Part::Str("failure"),
            Part::Str(&task.id),
            Part::Int(attempt as u64),
            Part::Int(all.len() as u64),
        ];
        if let Some(replay) = resampled {
            parts.extend([Part::Str("replay"), Part::Int(u64::from(replay))]);
        }
        let mut rng = seed::rng(sc.seed, &parts);
        scene.failure = scene.pick_failure(rng.random());
    }
    Some(scene)
}

/// `messages` (indices into `all`) as "speaker: text" lines under `heading`;
/// empty when there are none.
fn transcript(
    sc: &crate::scenario::Scenario,
    all: &[crate::engine::walker::Message],
    messages: &[usize],
    heading: &str,
) -> String {
    if messages.is_empty() {
        return String::new();
    }
    let mut out = format!("\n\n{heading}");
    for &m in messages {
        let m = &all[m];
        let who = m.sender.map_or("(joined)", |a| sc.agents[a].name.as_str());
        out.push_str(&format!("\n{who}: {}", m.text));
    }
    out
}

/// The agent that wrote message `i`: its sender; for a join's message, the
/// sender of the branch it picked (the same text), or else of the branch it
/// gathered last.
fn writer(walker: &Walker<'_>, i: usize) -> Option<usize> {
    let all = walker.messages();
    if all[i].sender.is_some() {
        return all[i].sender;
    }
    all[..i]
        .iter()
        .rev()
        .find(|m| m.sender.is_some() && m.text == all[i].text)
        .and_then(|m| m.sender)
        .or_else(|| {
            all[i]
                .reply_to
                .filter(|&r| r < i)
                .and_then(|r| writer(walker, r))
        })
}

/// A `vote` join's pick among its branches' texts: the first giving the
/// most common answer.
fn vote(sc: &crate::scenario::Scenario, task: &Task, texts: &[&str]) -> String {
    let answers: Vec<Option<String>> = texts
        .iter()
        .map(|t| sc.answer.extract_for(t, task).map(|a| a.normalized))
        .collect();
    let count = |a: &Option<String>| answers.iter().filter(|x| a.is_some() && *x == a).count();
    let best = (0..texts.len()).max_by_key(|&i| (count(&answers[i]), std::cmp::Reverse(i)));
    best.map_or(String::new(), |i| texts[i].to_owned())
}

/// The verifiers' verdicts in one graph run.
struct Judging<'a> {
    sh: &'a Shared,
    task: &'a Task,
    graph_agent: usize,
    attempt: usize,
    /// Verdicts so far, by verifier and what it is given (a judge's
    /// request, else the text): what is scored twice (a join's pick, again
    /// as the run's answer) is scored once, so that a resumed or replayed
    /// run reads back the one verdict it was given.
    verdicts: HashMap<(usize, String), Score>,
    /// Agents' rendered prompts, as verifiers are shown them.
    prompts: HashMap<usize, String>,
}

impl Judging<'_> {
    /// Verifier `v`'s verdict on `text` (a branch or a chat message at
    /// position `within`, or the run's answer) written by agent `writer`,
    /// whose prompt the verifier is shown, and the tokens its model spent
    /// on it now. A judge's call is traced under the graph pseudo-agent,
    /// like its turns.
    async fn score(
        &mut self,
        text: &str,
        writer: Option<usize>,
        within: Option<usize>,
        v: usize,
    ) -> Result<(Score, u64), Stop> {
        let (sh, task) = (self.sh, self.task);
        if let Some(agent) = writer
            && !self.prompts.contains_key(&agent)
        {
            self.prompts.insert(agent, render_prompt(sh, task, agent)?);
        }
        let prompt = writer.map_or("", |a| self.prompts[&a].as_str());
        let sc = &*sh.scenario;
        let answer = sc.answer.extract_for(text, task);
        let correct = correctness(answer.as_ref(), task);
        let candidate = Candidate {
            agent: &sh.agent_names[self.graph_agent],
            task,
            prompt,
            index: self.attempt,
            within,
            text,
            extracted: answer.as_ref().map(|a| a.raw.as_str()),
            answer: answer.as_ref().map(|a| a.normalized.as_str()),
            correct,
        };
        let verifier = &sc.verifiers[v];
        // A judge's request can be the same for two texts (its prompt may
        // show only the answer), and so is its call.
        let request = verifier
            .model()
            .and_then(|_| verifier.request(&candidate).ok());
        let given = request.map_or_else(|| text.to_owned(), |(system, p)| format!("{system}\0{p}"));
        if let Some(known) = self.verdicts.get(&(v, given.clone())) {
            return Ok((known.clone(), 0));
        }
        let (score, tokens) = if verifier.runs_command() {
            let _permit = sh.commands.acquire().await.expect("semaphore open");
            (verifier.score_by_command(&candidate).await, 0)
        } else if verifier.model().is_some() {
            let verdict = judge_one(sh, self.graph_agent, v, candidate).await?;
            if let Some(call) = verdict.call {
                sh.caller.write(Record::Call(call)).await?;
            }
            if let Some(fatal) = verdict.fatal {
                return Err(sh.fail(fatal));
            }
            (verdict.score, verdict.tokens)
        } else {
            let score = verifier
                .score_now(sc.seed, &candidate)
                .expect("a verifier without command or model scores at once");
            (score, 0)
        };
        self.verdicts.insert((v, given), score.clone());
        Ok((score, tokens))
    }
}
