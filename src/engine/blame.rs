//! `crucible blame` by counterfactual replay: which agent, and which turn,
//! made a graph run fail. For every failed graph run of a stored run, the
//! players (the agents that spoke; the turns they spoke in) are credited
//! by Shapley values of the game "re-run with these players' turns
//! re-sampled (or, for simulated agents, repaired) and every other turn
//! drawn as before: is the answer right?" ([`crate::stats::shapley`] plans
//! which coalitions to replay under which seeds). The replays are graph
//! runs of a replay run linked to the origin, made by
//! `Executor::replay_graphs`: traced, served from the origin's recorded
//! calls up to the first intervened turn, found again by the plan's hash
//! and resumed, and reproducible under `--strict` from the recordings
//! alone. The attribution (the top agent and turn, when their credit is
//! clear of zero) and every player's credit go to `attributions` and
//! `attribution_credits` of the origin run.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rand::RngExt;
use serde::Serialize;

use super::error::Error;
use super::executor::{Executor, Intervention, Redraw, ReplayJob, Status, Target};
use super::runner::Runner;
use crate::model::provider::Provider;
use crate::model::replay::{Recorded, Recordings};
use crate::scenario::{ModelKind, Scenario};
use crate::stats::shapley::{self, Estimate, MAX_PLAYERS, Plan, Query};
use crate::store::{
    AttributionRecord, CounterfactualRow, CreditRecord, GraphOutcome, InjectedAt, Store,
};

/// `attributions.method` of counterfactual replay.
pub const COUNTERFACTUAL: &str = "counterfactual";

/// What to attribute, and how hard to try.
#[derive(Debug, Clone, Serialize)]
pub struct BlameRequest {
    pub run: i64,
    /// Only these tasks (ids); all when empty.
    pub tasks: Vec<String>,
    pub redraw: RedrawArg,
    /// Replays of each coalition in an exact plan.
    pub replays: u32,
    /// Orders in a permutation plan (each walked both ways).
    pub samples: u32,
    /// Stop after this many new replays (the rest on the next call).
    #[serde(skip)]
    pub max_replays: Option<usize>,
    /// No call may go to a model: every one from the recordings.
    #[serde(skip)]
    pub strict: bool,
    /// A new replay run even when one for this plan exists.
    #[serde(skip)]
    pub fresh: bool,
}

/// `--intervention`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RedrawArg {
    Resample,
    Repair,
}

/// What `blame` did and found.
#[derive(Debug, Clone)]
pub struct BlameOutcome {
    pub replay_run: i64,
    pub status: Status,
    pub error: Option<String>,
    /// Replays made this time, and in all.
    pub new_replays: usize,
    pub replays: usize,
    /// One per failed graph run whose replays are all in.
    pub attributions: Vec<Attributed>,
    /// Failed graph runs still missing replays.
    pub incomplete: usize,
}

/// One failed graph run's attribution, with the task it is of.
#[derive(Debug, Clone)]
pub struct Attributed {
    pub task_id: String,
    pub record: AttributionRecord,
}

/// The players of one failed graph run.
struct Trace<'a> {
    outcome: &'a GraphOutcome,
    /// Agents that spoke, as scenario agent indices.
    agents: Vec<usize>,
    /// Positions of the messages agents wrote (no joins, no summaries).
    turns: Vec<usize>,
    agent_plan: Plan,
    turn_plan: Plan,
}

impl Runner {
    /// Attribute the failed graph runs of `req.run` by counterfactual replay.
    pub fn blame(&self, req: &BlameRequest) -> Result<BlameOutcome, Error> {
        // A repaired turn is drawn as before: replays beyond one are moot.
        let req = &BlameRequest {
            replays: match req.redraw {
                RedrawArg::Repair => 1,
                RedrawArg::Resample => req.replays.max(1),
            },
            ..req.clone()
        };
        let mut store = Store::open(&self.options.db)?;
        let source = store.run_source(req.run)?;
        if source.text.is_empty() {
            return Err(Error::Setup(format!(
                "run {} is imported: counterfactual replay re-executes a run, which needs the scenario it was made from; blame it with a judge method instead",
                req.run
            )));
        }
        let mut scenario = Runner::stored_scenario(&self.options.db, req.run)?;
        if scenario.graph_agent.is_none() {
            return Err(Error::Setup(format!(
                "run {} ({}) has no agent graph: blame attributes the failures of graph runs",
                req.run, source.path
            )));
        }
        self.override_limits(&mut scenario)?;
        if req.redraw == RedrawArg::Repair
            && let Some(a) = scenario.agents.iter().enumerate().find_map(|(i, a)| {
                (Some(i) != scenario.graph_agent
                    && !matches!(scenario.models[a.model].kind, ModelKind::Simulated(_)))
                .then_some(a)
            })
        {
            return Err(Error::Setup(format!(
                "agent \"{}\" is not simulated, so its turns cannot be repaired (only simulated agents act out injected failures); use --intervention resample",
                a.name
            )));
        }
        let outcomes = store.graph_outcomes(req.run)?;
        for t in &req.tasks {
            if !outcomes.iter().any(|o| &o.task_id == t) {
                return Err(Error::Setup(format!(
                    "run {} has no graph run of task \"{t}\"; `crucible show {}` lists its tasks",
                    req.run, req.run
                )));
            }
        }
        let injected = store.injected(req.run)?;
        let traces = plan_traces(&scenario, &outcomes, &injected, req);
        let plan_json = serde_json::json!({"method": COUNTERFACTUAL, "request": req}).to_string();
        let plan_hash = blake3::hash(plan_json.as_bytes()).to_hex()[..32].to_owned();
        let existing = if req.fresh {
            None
        } else {
            store.replay_run(req.run, &plan_hash)?
        };
        let replay_run = match &existing {
            Some(r) => {
                store.reopen_replay_run(r.id)?;
                r.id
            }
            None => store.create_replay_run(
                req.run,
                &plan_json,
                &plan_hash,
                self.options.concurrency,
            )?,
        };
        let done = store.counterfactuals(replay_run)?;
        let done_keys: std::collections::HashSet<JobKey> =
            done.iter().map(JobKey::of_row).collect();
        let mut jobs = plan_jobs(&traces, req.redraw);
        jobs.retain(|j| !done_keys.contains(&JobKey::of_job(j)));
        if let Some(max) = req.max_replays {
            jobs.truncate(max);
        }
        let new_replays = jobs.len();
        let names: Vec<String> = scenario.agents.iter().map(|a| a.name.clone()).collect();
        let (status, error) = if jobs.is_empty() {
            (Status::Completed, None)
        } else {
            self.replay_jobs(&store, scenario, req, replay_run, existing.is_some(), jobs)?
        };
        store.finish_run(replay_run, status.as_str(), error.as_deref(), &[])?;
        let rows = store.counterfactuals(replay_run)?;
        let (attributions, incomplete) = attribute(&names, &traces, &rows, replay_run);
        let records: Vec<AttributionRecord> =
            attributions.iter().map(|a| a.record.clone()).collect();
        store.save_attributions(req.run, &records)?;
        Ok(BlameOutcome {
            replay_run,
            status,
            error,
            new_replays,
            replays: rows.len(),
            attributions,
            incomplete,
        })
    }

    /// Make `jobs` in replay run `replay_run`.
    fn replay_jobs(
        &self,
        store: &Store,
        scenario: Scenario,
        req: &BlameRequest,
        replay_run: i64,
        resuming: bool,
        jobs: Vec<ReplayJob>,
    ) -> Result<(Status, Option<String>), Error> {
        let scenario = Arc::new(scenario);
        let recordings: Arc<dyn Recordings> = Arc::new(store.lineage_recordings(req.run)?);
        let providers: Vec<Arc<dyn Provider>> = self
            .providers(&scenario.models, req.strict)?
            .into_iter()
            .map(|p| {
                Arc::new(Recorded::new(p, recordings.clone(), !req.strict)) as Arc<dyn Provider>
            })
            .collect();
        let writer = store.writer(replay_run, resuming)?;
        let mut executor = Executor::new(
            scenario,
            providers,
            self.options.concurrency,
            self.progress.clone(),
            self.cancel.clone(),
        );
        if resuming {
            let stored: Arc<dyn Recordings> = Arc::new(store.recordings(Some(replay_run))?);
            executor = executor.resuming(Vec::new(), stored, store.spent(replay_run)?);
        }
        let (status, error) = self.block_on(executor.replay_graphs(writer.sender(), jobs))?;
        match writer.finish() {
            Err(e) => Ok((Status::Failed, Some(e.to_string()))),
            Ok(_) => Ok((status, error)),
        }
    }
}

/// The failed graph runs asked about, with their players and plans.
fn plan_traces<'a>(
    scenario: &Scenario,
    outcomes: &'a [GraphOutcome],
    injected: &[InjectedAt],
    req: &BlameRequest,
) -> Vec<Trace<'a>> {
    let index_of: HashMap<&str, usize> = scenario
        .agents
        .iter()
        .enumerate()
        .map(|(i, a)| (a.name.as_str(), i))
        .collect();
    let replays = req.replays;
    outcomes
        .iter()
        .filter(|o| o.correct == Some(false))
        .filter(|o| req.tasks.is_empty() || req.tasks.contains(&o.task_id))
        .map(|o| {
            // Repairing a turn with no failure changes nothing: such turns
            // are dummies, with no credit and no effect on the others'.
            let failed: Vec<usize> = injected
                .iter()
                .filter(|f| (f.task_index, f.attempt) == (o.task_index, o.attempt))
                .map(|f| f.position)
                .collect();
            let turns: Vec<usize> = (0..o.senders.len())
                .filter(|&p| o.senders[p].is_some() && !o.summaries[p])
                .filter(|p| req.redraw == RedrawArg::Resample || failed.contains(p))
                .take(MAX_PLAYERS)
                .collect();
            // In the order they first spoke, so that ties go to the earlier.
            let mut agents: Vec<usize> = Vec::new();
            for a in turns
                .iter()
                .filter_map(|&p| index_of.get(o.senders[p].as_deref()?).copied())
            {
                if !agents.contains(&a) {
                    agents.push(a);
                }
            }
            let seed: u64 = crate::seed::rng(
                scenario.seed,
                &["blame".into(), o.task_id.as_str().into(), o.attempt.into()],
            )
            .random();
            Trace {
                outcome: o,
                agent_plan: agent_plan(agents.len(), replays, req.samples, seed),
                turn_plan: turn_plan(turns.len(), replays, req.samples, seed ^ 1),
                agents,
                turns,
            }
        })
        .collect()
}

/// Agents are few: every coalition of up to [`EXACT_AGENTS`] of them,
/// else paired orders.
fn agent_plan(players: usize, replays: u32, samples: u32, seed: u64) -> Plan {
    if players <= EXACT_AGENTS {
        Plan::exact(players, replays)
    } else {
        Plan::permutations(players, samples, true, seed)
    }
}

/// Turns are many: every coalition only when, under `replays` seeds, that
/// costs no more than `samples` orders walked both ways; else paired orders.
fn turn_plan(players: usize, replays: u32, samples: u32, seed: u64) -> Plan {
    let exact_cost = (1u64 << players.min(63)).saturating_mul(u64::from(replays));
    let orders_cost = 2 * u64::from(samples.max(1)) * (players as u64 + 1);
    if players <= shapley::MAX_EXACT && exact_cost <= orders_cost {
        Plan::exact(players, replays)
    } else {
        Plan::permutations(players, samples, true, seed)
    }
}

/// Most agents whose Shapley values are computed over every coalition.
pub const EXACT_AGENTS: usize = 8;

/// What identifies a replay across calls of `blame`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct JobKey {
    task_index: usize,
    origin_attempt: usize,
    level: String,
    coalition: String,
    replay: u32,
}

impl JobKey {
    fn of_row(r: &CounterfactualRow) -> JobKey {
        JobKey {
            task_index: r.task_index,
            origin_attempt: r.origin_attempt,
            level: r.level.clone(),
            coalition: r.coalition.clone(),
            replay: r.replay,
        }
    }

    fn of_job(j: &ReplayJob) -> JobKey {
        JobKey {
            task_index: j.task_index,
            origin_attempt: j.intervention.origin_attempt,
            level: j.level.to_owned(),
            coalition: j.coalition.clone(),
            replay: j.intervention.replay,
        }
    }
}

/// The players (agent indices or message positions) of a coalition.
fn members(players: &[usize], coalition: u64) -> Vec<usize> {
    (0..players.len())
        .filter(|&i| coalition & (1 << i) != 0)
        .map(|i| players[i])
        .collect()
}

/// A coalition as stored: its players' ids, JSON.
fn coalition_json(players: &[usize], coalition: u64) -> String {
    serde_json::to_string(&members(players, coalition)).expect("numbers serialize")
}

/// Every replay the plans need but the empty coalition's (the failed
/// original itself), numbered per task in a fixed order.
fn plan_jobs(traces: &[Trace<'_>], redraw: RedrawArg) -> Vec<ReplayJob> {
    let redraw = match redraw {
        RedrawArg::Resample => Redraw::Resample,
        RedrawArg::Repair => Redraw::Repair,
    };
    let mut next: BTreeMap<usize, usize> = BTreeMap::new();
    let mut jobs = Vec::new();
    for t in traces {
        let o = t.outcome;
        for (level, plan, players) in [
            ("agent", &t.agent_plan, &t.agents),
            ("turn", &t.turn_plan, &t.turns),
        ] {
            for q in plan.queries().into_iter().filter(|q| q.coalition != 0) {
                let set = members(players, q.coalition);
                let coalition = serde_json::to_string(&set).expect("numbers serialize");
                let target = match level {
                    "agent" => Target::Agents(set),
                    _ => Target::Turns(set),
                };
                let attempt = next.entry(o.task_index).or_default();
                jobs.push(ReplayJob {
                    task_index: o.task_index,
                    attempt: *attempt,
                    intervention: Intervention {
                        origin_attempt: o.attempt,
                        target,
                        redraw,
                        replay: q.replay,
                    },
                    level,
                    coalition,
                });
                *attempt += 1;
            }
        }
    }
    jobs
}

/// Each trace's attribution from the stored outcomes, and how many traces
/// are still missing some.
fn attribute(
    agent_names: &[String],
    traces: &[Trace<'_>],
    rows: &[CounterfactualRow],
    replay_run: i64,
) -> (Vec<Attributed>, usize) {
    let by_key: HashMap<JobKey, &CounterfactualRow> =
        rows.iter().map(|r| (JobKey::of_row(r), r)).collect();
    let mut out = Vec::new();
    let mut incomplete = 0;
    for t in traces {
        let o = t.outcome;
        let mut used: Vec<&CounterfactualRow> = Vec::new();
        let mut credits = |level: &'static str, plan: &Plan, players: &[usize]| {
            let mut worths = HashMap::new();
            for q in plan.queries() {
                let worth = if q.coalition == 0 {
                    Some(0.0)
                } else {
                    let key = JobKey {
                        task_index: o.task_index,
                        origin_attempt: o.attempt,
                        level: level.to_owned(),
                        coalition: coalition_json(players, q.coalition),
                        replay: q.replay,
                    };
                    // An errored replay is no evidence either way.
                    by_key.get(&key).and_then(|r| {
                        used.push(r);
                        r.correct.map(|c| f64::from(u8::from(c)))
                    })
                };
                worths.insert(q, worth?);
            }
            Some(plan.estimate(|q: Query| worths[&q]))
        };
        let agent_credit = credits("agent", &t.agent_plan, &t.agents);
        let turn_credit = credits("turn", &t.turn_plan, &t.turns);
        let (Some(agent_credit), Some(turn_credit)) = (agent_credit, turn_credit) else {
            incomplete += 1;
            continue;
        };
        let name = |a: usize| agent_names.get(a).cloned().unwrap_or_default();
        let agent = clear_top(&agent_credit);
        let turn = clear_top(&turn_credit);
        let top = turn
            .map(|i| turn_credit[i])
            .or(agent.map(|i| agent_credit[i]));
        let mut records: Vec<CreditRecord> = Vec::new();
        for (i, e) in agent_credit.iter().enumerate() {
            records.push(CreditRecord {
                level: "agent",
                player: name(t.agents[i]),
                value: e.value,
                stderr: e.stderr,
            });
        }
        for (i, e) in turn_credit.iter().enumerate() {
            records.push(CreditRecord {
                level: "turn",
                player: t.turns[i].to_string(),
                value: e.value,
                stderr: e.stderr,
            });
        }
        out.push(Attributed {
            task_id: o.task_id.clone(),
            record: AttributionRecord {
                task_index: o.task_index,
                attempt: o.attempt,
                method: COUNTERFACTUAL.to_owned(),
                agent: agent.map(|i| name(t.agents[i])),
                turn: turn.map(|i| t.turns[i]),
                reason: None,
                score: top.map(|e| e.value),
                stderr: top.and_then(|e| e.stderr),
                replays: Some(used.len() as u64),
                calls: used.iter().map(|r| r.calls).sum(),
                tokens: used.iter().map(|r| r.tokens).sum(),
                cost_usd: used.iter().map(|r| r.cost_usd).sum(),
                replay_run: Some(replay_run),
                credits: records,
            },
        });
    }
    (out, incomplete)
}

/// The player with the most credit (the earliest of equals), if that
/// credit is clear of zero: more than two standard errors above it (above
/// it at all, when exact).
fn clear_top(credit: &[Estimate]) -> Option<usize> {
    let (i, e) = credit
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.value.total_cmp(&b.1.value).then(b.0.cmp(&a.0)))?;
    (e.value - 2.0 * e.stderr.unwrap_or(0.0) > 1e-9).then_some(i)
}
