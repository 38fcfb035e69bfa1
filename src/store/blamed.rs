//! `crucible blame`'s part of the store: a run's graph runs and who spoke
//! when (what is blamed), replay runs (a run re-executing another's graph
//! runs with turns intervened on, found again by its plan's hash to be
//! resumed) with their counterfactual outcomes, and the attributions and
//! credits each method gives.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};

use super::{AttributionRecord, CreditRecord, GROUND_TRUTH, Result, Store, now, sqlite_err};

/// `runs.kind` of a replay run.
pub const REPLAY_KIND: &str = "replay";

/// One graph run of a run, as blame sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphOutcome {
    pub task_index: usize,
    pub task_id: String,
    pub attempt: usize,
    /// Whether its final answer was right; `None` where the run has no pool
    /// for it (an imported trace, an unfinished task).
    pub correct: Option<bool>,
    /// Every message's sender (`None`: a join), by position.
    pub senders: Vec<Option<String>>,
    /// Which messages are summaries.
    pub summaries: Vec<bool>,
}

/// One stored counterfactual outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterfactualRow {
    pub task_index: usize,
    pub attempt: usize,
    pub origin_attempt: usize,
    pub level: String,
    pub coalition: String,
    pub replay: u32,
    pub correct: Option<bool>,
    pub calls: u64,
    pub tokens: u64,
    pub cost_usd: f64,
}

/// A failure a simulated agent acted out: where, and whose.
#[derive(Debug, Clone, PartialEq)]
pub struct InjectedAt {
    pub task_index: usize,
    pub attempt: usize,
    pub agent: String,
    pub position: usize,
}

/// A replay run already made for an origin and plan.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayRun {
    pub id: i64,
    pub status: String,
}

impl Store {
    /// The graph runs of `run_id`, with their outcome and senders.
    pub fn graph_outcomes(&self, run_id: i64) -> Result<Vec<GraphOutcome>> {
        let err = self.err();
        let mut st = self
            .conn
            .prepare(
                "SELECT g.task_index, t.task_id, g.attempt,
                    (SELECT substr(p.correct, g.attempt + 1, 1) FROM pools p
                     WHERE p.run_id = g.run_id AND p.task_index = g.task_index AND p.agent = 'graph')
                 FROM graph_runs g JOIN tasks t ON t.run_id = g.run_id AND t.task_index = g.task_index
                 WHERE g.run_id = ?1 ORDER BY g.task_index, g.attempt",
            )
            .map_err(err)?;
        let heads: Vec<(usize, String, usize, Option<Vec<u8>>)> = st
            .query_map([run_id], |r| {
                Ok((
                    r.get::<_, i64>(0)? as usize,
                    r.get(1)?,
                    r.get::<_, i64>(2)? as usize,
                    r.get(3)?,
                ))
            })
            .and_then(|rows| rows.collect())
            .map_err(self.err())?;
        let mut messages = self
            .conn
            .prepare(
                "SELECT sender, summary FROM messages
                 WHERE run_id = ?1 AND task_index = ?2 AND attempt = ?3 ORDER BY position",
            )
            .map_err(self.err())?;
        heads
            .into_iter()
            .map(|(task_index, task_id, attempt, correct)| {
                let rows: Vec<(Option<String>, bool)> = messages
                    .query_map(params![run_id, task_index as i64, attempt as i64], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })
                    .and_then(|rows| rows.collect())
                    .map_err(self.err())?;
                let (senders, summaries) = rows.into_iter().unzip();
                Ok(GraphOutcome {
                    task_index,
                    task_id,
                    attempt,
                    correct: correct.and_then(|c| c.first().map(|&b| b == 1)),
                    senders,
                    summaries,
                })
            })
            .collect()
    }

    /// The latest replay run of `origin` made for the plan hashed `plan_hash`.
    pub fn replay_run(&self, origin: i64, plan_hash: &str) -> Result<Option<ReplayRun>> {
        self.conn
            .query_row(
                "SELECT r.id, r.status FROM replay_plans p JOIN runs r ON r.id = p.run_id
                 WHERE p.origin_run = ?1 AND p.plan_hash = ?2 ORDER BY r.id DESC LIMIT 1",
                params![origin, plan_hash],
                |r| {
                    Ok(ReplayRun {
                        id: r.get(0)?,
                        status: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(self.err())
    }

    /// A new replay run of `origin` for `plan`: the origin's scenario and
    /// tasks, no samples.
    pub fn create_replay_run(
        &mut self,
        origin: i64,
        plan: &str,
        plan_hash: &str,
        concurrency: usize,
    ) -> Result<i64> {
        let err = sqlite_err(&self.path);
        let tx = self.conn.transaction().map_err(err)?;
        tx.execute(
            "INSERT INTO runs (name, scenario_path, scenario_text, scenario_hash, seed,
                crucible_version, status, concurrency, planned_samples, started_at, kind, origin_run)
             SELECT name, scenario_path, scenario_text, scenario_hash, seed, ?2, 'running', ?3, 0,
                ?4, ?5, id
             FROM runs WHERE id = ?1",
            params![
                origin,
                env!("CARGO_PKG_VERSION"),
                concurrency as i64,
                now(),
                REPLAY_KIND
            ],
        )
        .map_err(err)?;
        let id = tx.last_insert_rowid();
        tx.execute(
            "INSERT INTO run_files (run_id, path, text) SELECT ?2, path, text FROM run_files WHERE run_id = ?1",
            params![origin, id],
        )
        .map_err(err)?;
        tx.execute(
            "INSERT INTO tasks (run_id, task_index, task_id, inputs, expected)
             SELECT ?2, task_index, task_id, inputs, expected FROM tasks WHERE run_id = ?1",
            params![origin, id],
        )
        .map_err(err)?;
        tx.execute(
            "INSERT INTO replay_plans (run_id, origin_run, plan, plan_hash) VALUES (?1, ?2, ?3, ?4)",
            params![id, origin, plan, plan_hash],
        )
        .map_err(err)?;
        tx.execute(
            "INSERT INTO events (run_id, at, kind, detail) VALUES (?1, ?2, 'run_started', ?3)",
            params![id, now(), format!("replaying run {origin}")],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(id)
    }

    /// Mark replay run `run_id` running again.
    pub fn reopen_replay_run(&mut self, run_id: i64) -> Result<()> {
        self.conn
            .execute(
                "UPDATE runs SET status = 'running', finished_at = NULL, error = NULL WHERE id = ?1",
                [run_id],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// The counterfactual outcomes replay run `run_id` holds.
    pub fn counterfactuals(&self, run_id: i64) -> Result<Vec<CounterfactualRow>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT task_index, attempt, origin_attempt, level, coalition, replay, correct,
                    calls, tokens, cost_usd
                 FROM counterfactuals WHERE run_id = ?1 ORDER BY task_index, attempt",
            )
            .map_err(self.err())?;
        st.query_map([run_id], |r| {
            Ok(CounterfactualRow {
                task_index: r.get::<_, i64>(0)? as usize,
                attempt: r.get::<_, i64>(1)? as usize,
                origin_attempt: r.get::<_, i64>(2)? as usize,
                level: r.get(3)?,
                coalition: r.get(4)?,
                replay: r.get(5)?,
                correct: r.get(6)?,
                calls: r.get::<_, i64>(7)? as u64,
                tokens: r.get::<_, i64>(8)? as u64,
                cost_usd: r.get(9)?,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(self.err())
    }

    /// Store `rows` as run `run_id`'s attributions, each replacing its
    /// method's earlier one for the same graph run, credits and all.
    pub fn save_attributions(&mut self, run_id: i64, rows: &[AttributionRecord]) -> Result<()> {
        let err = sqlite_err(&self.path);
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut attribution = tx
                .prepare(
                    "INSERT OR REPLACE INTO attributions (run_id, task_index, attempt, method, agent,
                        turn, reason, score, stderr, replays, calls, tokens, cost_usd, replay_run)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                )
                .map_err(err)?;
            let mut clear = tx
                .prepare(
                    "DELETE FROM attribution_credits
                     WHERE run_id = ?1 AND task_index = ?2 AND attempt = ?3 AND method = ?4",
                )
                .map_err(err)?;
            let mut credit = tx
                .prepare(
                    "INSERT INTO attribution_credits (run_id, task_index, attempt, method, level,
                        player, value, stderr)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(err)?;
            for a in rows {
                let (task, attempt) = (a.task_index as i64, a.attempt as i64);
                attribution
                    .execute(params![
                        run_id,
                        task,
                        attempt,
                        a.method,
                        a.agent,
                        a.turn.map(|t| t as i64),
                        a.reason,
                        a.score,
                        a.stderr,
                        a.replays.map(|r| r as i64),
                        a.calls as i64,
                        a.tokens as i64,
                        a.cost_usd,
                        a.replay_run
                    ])
                    .map_err(err)?;
                clear
                    .execute(params![run_id, task, attempt, a.method])
                    .map_err(err)?;
                for c in &a.credits {
                    credit
                        .execute(params![
                            run_id, task, attempt, a.method, c.level, c.player, c.value, c.stderr
                        ])
                        .map_err(err)?;
                }
            }
        }
        tx.commit().map_err(err)?;
        Ok(())
    }

    /// Every attribution of run `run_id` (the imported ground truth too),
    /// with credits, by trace and method.
    pub fn attributions(&self, run_id: i64) -> Result<Vec<AttributionRecord>> {
        self.attributions_of(run_id, None)
    }

    /// The attributions of one trace, (task, attempt), of run `run_id`.
    pub fn trace_attributions(
        &self,
        run_id: i64,
        (task, attempt): (usize, usize),
    ) -> Result<Vec<AttributionRecord>> {
        self.attributions_of(run_id, Some((task, attempt)))
    }

    fn attributions_of(
        &self,
        run_id: i64,
        trace: Option<(usize, usize)>,
    ) -> Result<Vec<AttributionRecord>> {
        let (task, attempt) = trace.map_or((None, None), |(t, a)| (Some(t as i64), Some(a as i64)));
        let mut st = self
            .conn
            .prepare(
                "SELECT task_index, attempt, method, agent, turn, reason, score, stderr, replays,
                    calls, tokens, cost_usd, replay_run
                 FROM attributions WHERE run_id = ?1
                   AND (?2 IS NULL OR (task_index = ?2 AND attempt = ?3))
                 ORDER BY task_index, attempt, method",
            )
            .map_err(self.err())?;
        let mut rows: Vec<AttributionRecord> = st
            .query_map(params![run_id, task, attempt], |r| {
                Ok(AttributionRecord {
                    task_index: r.get::<_, i64>(0)? as usize,
                    attempt: r.get::<_, i64>(1)? as usize,
                    method: r.get(2)?,
                    agent: r.get(3)?,
                    turn: r.get::<_, Option<i64>>(4)?.map(|t| t as usize),
                    reason: r.get(5)?,
                    score: r.get(6)?,
                    stderr: r.get(7)?,
                    replays: r.get::<_, Option<i64>>(8)?.map(|x| x as u64),
                    calls: r.get::<_, Option<i64>>(9)?.unwrap_or(0) as u64,
                    tokens: r.get::<_, Option<i64>>(10)?.unwrap_or(0) as u64,
                    cost_usd: r.get::<_, Option<f64>>(11)?.unwrap_or(0.0),
                    replay_run: r.get(12)?,
                    credits: Vec::new(),
                })
            })
            .and_then(|rows| rows.collect())
            .map_err(self.err())?;
        let mut credits = self
            .conn
            .prepare(
                "SELECT level, player, value, stderr FROM attribution_credits
                 WHERE run_id = ?1 AND task_index = ?2 AND attempt = ?3 AND method = ?4
                 ORDER BY level, value DESC",
            )
            .map_err(self.err())?;
        for a in &mut rows {
            a.credits = credits
                .query_map(
                    params![run_id, a.task_index as i64, a.attempt as i64, a.method],
                    |r| {
                        let level: String = r.get(0)?;
                        Ok(CreditRecord {
                            level: if level == "agent" { "agent" } else { "turn" },
                            player: r.get(1)?,
                            value: r.get(2)?,
                            stderr: r.get(3)?,
                        })
                    },
                )
                .and_then(|rows| rows.collect())
                .map_err(self.err())?;
        }
        Ok(rows)
    }

    /// Every failure injected into run `run_id`'s graph runs, in (task,
    /// attempt, position) order.
    pub fn injected(&self, run_id: i64) -> Result<Vec<InjectedAt>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT task_index, attempt, agent, position FROM injected_failures
                 WHERE run_id = ?1 ORDER BY task_index, attempt, position",
            )
            .map_err(self.err())?;
        st.query_map([run_id], |r| {
            Ok(InjectedAt {
                task_index: r.get::<_, i64>(0)? as usize,
                attempt: r.get::<_, i64>(1)? as usize,
                agent: r.get(2)?,
                position: r.get::<_, i64>(3)? as usize,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(self.err())
    }

    /// Where each graph run of `run_id` with a known culprit really
    /// failed, (task, attempt) → (agent, message position): an imported
    /// trace's own blame, else a simulated run's first injected failure.
    pub fn culprits(&self, run_id: i64) -> Result<HashMap<(usize, usize), (String, usize)>> {
        let mut out = HashMap::new();
        for f in self.injected(run_id)? {
            out.entry((f.task_index, f.attempt))
                .or_insert((f.agent, f.position));
        }
        for a in self.attributions(run_id)? {
            if let (GROUND_TRUTH, Some(agent), Some(turn)) = (a.method.as_str(), a.agent, a.turn) {
                out.insert((a.task_index, a.attempt), (agent, turn));
            }
        }
        Ok(out)
    }
}
