//! Reads for `crucible view` and `crucible report`: one page of a list at a
//! time (runs, a run's tasks and samples, a comparison of two runs), and
//! the detail of one task, trace or call. Every list is filtered and
//! paginated in SQL, so a page costs the same on a run of a hundred samples
//! and on one of 640,000; nothing here reads a whole run.

use rusqlite::types::Value;
use rusqlite::{OptionalExtension, params, params_from_iter};

use super::{Result, Store};

/// One page of a list, with the size of the whole filtered list.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Page<T> {
    pub rows: Vec<T>,
    /// Rows the filters let through, on every page.
    pub total: u64,
    /// 0-based.
    pub page: u64,
    pub per_page: u64,
}

impl<T> Page<T> {
    pub fn pages(&self) -> u64 {
        self.total.div_ceil(self.per_page.max(1)).max(1)
    }
}

/// Most rows a page may have.
pub const MAX_PER_PAGE: u64 = 1000;

/// Which page of a list, and how long pages are.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    /// 0-based.
    pub page: u64,
    pub per_page: u64,
}

impl PageRequest {
    /// Page `page` (0-based) of `per_page` rows, 1 to [`MAX_PER_PAGE`].
    pub fn new(page: u64, per_page: u64) -> PageRequest {
        PageRequest {
            page,
            per_page: per_page.clamp(1, MAX_PER_PAGE),
        }
    }

    /// The first row's place in the whole list, 0-based.
    pub fn offset(&self) -> u64 {
        self.page.saturating_mul(self.per_page)
    }

    fn limit(&self) -> [Value; 2] {
        [
            Value::Integer(self.per_page as i64),
            Value::Integer(self.offset().min(i64::MAX as u64) as i64),
        ]
    }
}

/// A `WHERE` clause built from the filters a user set, with its parameters.
#[derive(Default)]
struct Filter {
    clauses: Vec<String>,
    params: Vec<Value>,
}

impl Filter {
    fn new(first: &str, value: Value) -> Filter {
        Filter {
            clauses: vec![first.to_owned()],
            params: vec![value],
        }
    }

    /// Add `clause`, whose `?` placeholders take `values` in order.
    fn and(&mut self, clause: &str, values: impl IntoIterator<Item = Value>) {
        self.clauses.push(clause.to_owned());
        self.params.extend(values);
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            "1".into()
        } else {
            self.clauses.join(" AND ")
        }
    }
}

/// `%text%` for `LIKE`, with the user's `%`, `_` and `\` taken literally.
fn contains(text: &str) -> Value {
    let escaped: String = text
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    Value::Text(format!("%{escaped}%"))
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

/// How many failure modes some rater (not the injected truth, not one
/// repeat of a judge) found in the traces of task `{alias}.task_index` —
/// of graph run `{alias}.attempt` only, when `per_trace`.
fn modes_found(alias: &str, per_trace: bool) -> String {
    let attempt = if per_trace {
        format!(" AND l.attempt = {alias}.attempt")
    } else {
        String::new()
    };
    format!(
        "(SELECT count(DISTINCT l.code) FROM labels l WHERE l.run_id = {alias}.run_id
            AND l.task_index = {alias}.task_index{attempt} AND l.present = 1
            AND l.rater <> 'injected' AND l.rater NOT LIKE '%#%')"
    )
}

/// Whether graph run `g` answered right: its entry in the graph's pool
/// (`pools.correct`, one byte per graph run); NULL without a pool row (an
/// imported trace, an unfinished task).
const GRAPH_RUN_CORRECT: &str = "(SELECT substr(p.correct, g.attempt + 1, 1) = x'01' FROM pools p
    WHERE p.run_id = g.run_id AND p.task_index = g.task_index AND p.agent = 'graph')";

/// Where a failure label comes from, for filtering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelSource {
    /// A failure judge's (any rater that is neither injected truth nor a person).
    Judged,
    /// A person's, in the viewer or imported (`human:` raters).
    Annotated,
    /// Injected on purpose by a simulated agent.
    Injected,
}

impl LabelSource {
    pub fn parse(s: &str) -> Option<LabelSource> {
        match s {
            "judged" => Some(LabelSource::Judged),
            "annotated" => Some(LabelSource::Annotated),
            "injected" => Some(LabelSource::Injected),
            _ => None,
        }
    }

    fn clause(self) -> &'static str {
        match self {
            LabelSource::Judged => {
                "l.rater <> 'injected' AND l.rater NOT LIKE 'human:%' AND l.rater NOT LIKE '%#%'"
            }
            LabelSource::Annotated => "l.rater LIKE 'human:%'",
            LabelSource::Injected => "l.rater = 'injected'",
        }
    }
}

/// A failure mode filter: traces some rater of `source` labelled `code` present.
#[derive(Debug, Clone)]
pub struct ModeFilter {
    pub code: String,
    pub source: Option<LabelSource>,
}

impl ModeFilter {
    fn clause(&self, trace: &str) -> (String, Vec<Value>) {
        let source = self.source.map_or("1", LabelSource::clause);
        (
            format!(
                "EXISTS (SELECT 1 FROM labels l WHERE l.run_id = {trace}.run_id
                 AND l.task_index = {trace}.task_index AND l.code = ? AND l.present = 1 AND {source})"
            ),
            vec![text(&self.code)],
        )
    }
}

/// The run list's filters and order.
#[derive(Debug, Clone, Default)]
pub struct RunQuery {
    /// This run only.
    pub id: Option<i64>,
    /// In the name or scenario path.
    pub search: Option<String>,
    pub status: Option<String>,
    pub sort: RunSort,
    pub descending: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RunSort {
    #[default]
    Id,
    Name,
    Started,
    Samples,
    Cost,
}

impl RunSort {
    pub fn parse(s: &str) -> Option<RunSort> {
        Some(match s {
            "id" => RunSort::Id,
            "name" => RunSort::Name,
            "started" => RunSort::Started,
            "samples" => RunSort::Samples,
            "cost" => RunSort::Cost,
            _ => return None,
        })
    }

    fn column(self) -> &'static str {
        match self {
            RunSort::Id => "id",
            RunSort::Name => "name",
            RunSort::Started => "started_at",
            RunSort::Samples => "samples",
            RunSort::Cost => "cost_usd",
        }
    }
}

/// One run in the viewer's list.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunRow {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub status: String,
    pub scenario_path: String,
    pub seed: i64,
    pub planned_samples: i64,
    pub error: Option<String>,
    pub started_at: f64,
    pub finished_at: Option<f64>,
    pub tasks: i64,
    pub samples: i64,
    pub calls: i64,
    pub tokens: i64,
    pub cost_usd: f64,
}

/// A run as the pages under it name it: no counts, nothing read but its row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunHead {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub status: String,
    pub started_at: f64,
    pub finished_at: Option<f64>,
}

/// A strategy at one n: whose choices a task list or a comparison shows.
/// Written `STRATEGY@N` in addresses and forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub strategy: String,
    pub n: usize,
}

impl Outcome {
    /// `STRATEGY@N`, or `None`.
    pub fn parse(text: &str) -> Option<Outcome> {
        let (strategy, n) = text.rsplit_once('@')?;
        Some(Outcome {
            strategy: strategy.to_owned(),
            n: n.parse().ok()?,
        })
    }

    /// Of a run's `choices` (its summary's order), the one a page shows
    /// unless asked: the first strategy at its largest n, then the other
    /// strategies at theirs, then every other n, largest first — skipping
    /// `avoid` (the other side of a run compared with itself).
    pub fn preferred<'a>(choices: &'a [Outcome], avoid: Option<&Outcome>) -> Option<&'a Outcome> {
        let first_row = |o: &Outcome| choices.iter().position(|c| c.strategy == o.strategy);
        let largest = |o: &Outcome| {
            choices
                .iter()
                .filter(|c| c.strategy == o.strategy)
                .map(|c| c.n)
                .max()
        };
        let mut ranked: Vec<&Outcome> = choices.iter().collect();
        ranked.sort_by_key(|o| {
            (
                Some(o.n) != largest(o),
                first_row(o),
                std::cmp::Reverse(o.n),
            )
        });
        ranked.into_iter().find(|o| Some(*o) != avoid)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.strategy, self.n)
    }
}

impl serde::Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A run's tasks' filters.
#[derive(Debug, Clone, Default)]
pub struct TaskQuery {
    /// In the task id or inputs.
    pub search: Option<String>,
    /// Whether `outcome`'s choice was right.
    pub correct: Option<bool>,
    /// The strategy and n whose choice each task shows.
    pub outcome: Option<Outcome>,
    /// Tasks some sample of this agent answered (or a graph message of it).
    pub agent: Option<String>,
    pub mode: Option<ModeFilter>,
}

/// One task in a run's task list.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskListRow {
    pub task_index: i64,
    pub task_id: String,
    pub expected: Option<String>,
    /// The chosen strategy's answer at its n, and whether it was right.
    pub selected: Option<String>,
    pub selected_correct: Option<bool>,
    pub samples: i64,
    pub correct_samples: i64,
    pub graph_runs: i64,
    /// Failure modes labelled present by any rater but the injected truth.
    pub failures: i64,
}

/// A run's samples' filters.
#[derive(Debug, Clone, Default)]
pub struct SampleQuery {
    pub agent: Option<String>,
    pub correct: Option<bool>,
    /// A self-correction strategy's rounds, `graph`, …: `samples.strategy`.
    pub strategy: Option<String>,
    pub task_index: Option<usize>,
    /// In the sample's text.
    pub search: Option<String>,
    /// Samples of tasks some rater found this mode in.
    pub mode: Option<ModeFilter>,
}

/// One sample.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SampleRow {
    pub id: i64,
    pub task_index: i64,
    pub task_id: String,
    pub agent: String,
    pub model: String,
    pub sample_index: i64,
    pub answer: Option<String>,
    pub normalized: Option<String>,
    pub correct: Option<bool>,
    pub abstained: bool,
    pub error: Option<String>,
    pub output_tokens: i64,
    pub latency_ms: f64,
    pub call_id: i64,
    pub strategy: Option<String>,
    pub round: Option<i64>,
    /// The first 300 characters of the text.
    pub excerpt: String,
    /// The whole text is longer than the excerpt.
    pub cut: bool,
    /// (verifier, score): `None` where it could not score.
    pub scores: Vec<(String, Option<f64>)>,
}

/// One task in full.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskDetail {
    pub task_index: i64,
    pub task_id: String,
    pub inputs: String,
    pub expected: Option<String>,
    /// Each strategy's choice at each n.
    pub outcomes: Vec<OutcomeRow>,
    /// The answers of each agent's pool, most votes first.
    pub votes: Vec<VoteRow>,
    pub graph_runs: Vec<GraphRunRow>,
}

/// A strategy's choice on one task at one n.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OutcomeRow {
    pub strategy: String,
    pub kind: String,
    pub n: i64,
    pub selected: Option<String>,
    pub selected_correct: bool,
    pub accuracy: Option<f64>,
    pub tokens: f64,
}

/// How often one agent's pool gave one answer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VoteRow {
    pub agent: String,
    pub answer: Option<String>,
    pub votes: i64,
    pub correct: Option<bool>,
}

/// One graph run (trace) of a task.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GraphRunRow {
    pub attempt: i64,
    pub ending: String,
    pub turns: i64,
    pub messages: i64,
    pub correct: Option<bool>,
    pub failures: i64,
}

/// A graph's event, as the walker recorded it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GraphEventRow {
    pub position: i64,
    pub kind: String,
    pub node: Option<String>,
    pub detail: Option<String>,
}

/// A call in a trace's or a task's list.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CallListRow {
    pub id: i64,
    pub role: String,
    pub agent: String,
    pub model: String,
    pub first_sample: i64,
    pub n: i64,
    pub status: String,
    pub latency_ms: f64,
    pub tokens: i64,
}

/// One call in full.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CallDetail {
    pub id: i64,
    pub run_id: i64,
    pub task_id: String,
    pub task_index: i64,
    pub role: String,
    pub agent: String,
    pub subject: Option<String>,
    pub model: String,
    pub provider: String,
    pub first_sample: i64,
    pub n: i64,
    pub status: String,
    pub error: Option<String>,
    pub latency_ms: f64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: Option<f64>,
    pub cached: bool,
    pub cache_key: Option<String>,
    pub system: String,
    pub prompt: String,
    pub request: String,
    pub response: Option<String>,
    pub reply: Option<String>,
    pub attempts: Vec<AttemptRow>,
}

/// One HTTP exchange of a call.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AttemptRow {
    pub attempt: i64,
    pub n: i64,
    pub status: Option<i64>,
    pub error: Option<String>,
    pub latency_ms: f64,
    pub wait_ms: f64,
}

/// Two runs (or two strategies of one) side by side on one task.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CompareRow {
    pub task_id: String,
    pub task_index_a: i64,
    pub task_index_b: i64,
    pub selected_a: Option<String>,
    pub correct_a: bool,
    pub selected_b: Option<String>,
    pub correct_b: bool,
}

/// How two sides' choices agree over every shared task.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CompareCounts {
    pub both: u64,
    pub only_a: u64,
    pub only_b: u64,
    pub neither: u64,
}

/// One side of a comparison: a run, and the strategy and n whose choices it shows.
#[derive(Debug, Clone)]
pub struct Side {
    pub run_id: i64,
    pub outcome: Outcome,
}

/// How far a live run has got.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Progress {
    pub status: String,
    pub samples: i64,
    pub planned_samples: i64,
    pub graph_runs: i64,
    pub calls: i64,
    pub tokens: i64,
    pub cost_usd: f64,
    pub finished_at: Option<f64>,
}

impl Store {
    /// One page of the run list.
    pub fn run_page(&self, q: &RunQuery, page: PageRequest) -> Result<Page<RunRow>> {
        let mut f = Filter::default();
        if let Some(id) = q.id {
            f.and("r.id = ?", [Value::Integer(id)]);
        }
        if let Some(s) = &q.search {
            f.and(
                "(r.name LIKE ? ESCAPE '\\' OR r.scenario_path LIKE ? ESCAPE '\\')",
                [contains(s), contains(s)],
            );
        }
        if let Some(s) = &q.status {
            f.and("r.status = ?", [text(s)]);
        }
        let order = format!(
            "{col} {dir}, id {dir}",
            col = q.sort.column(),
            dir = if q.descending { "DESC" } else { "ASC" }
        );
        // Sorted by a column of `runs`, the page's runs are chosen before
        // their samples and calls are counted; by a count, every run's is.
        let (runs, outer_limit) = match q.sort {
            RunSort::Samples | RunSort::Cost => (
                format!("(SELECT * FROM runs r WHERE {})", f.sql()),
                " LIMIT ? OFFSET ?",
            ),
            _ => (
                format!(
                    "(SELECT * FROM runs r WHERE {} ORDER BY {order} LIMIT ? OFFSET ?)",
                    f.sql()
                ),
                "",
            ),
        };
        let sql = format!(
            "SELECT * FROM (SELECT r.id, r.name, r.kind, r.status, r.scenario_path, r.seed, r.planned_samples,
                r.error, r.started_at, r.finished_at,
                (SELECT count(*) FROM tasks t WHERE t.run_id = r.id) AS tasks,
                (SELECT count(*) FROM samples s WHERE s.run_id = r.id) AS samples,
                (SELECT count(*) FROM calls c WHERE c.run_id = r.id AND NOT c.cached) AS calls,
                (SELECT coalesce(sum(c.input_tokens + c.output_tokens), 0) FROM calls c
                    WHERE c.run_id = r.id AND NOT c.cached) AS tokens,
                (SELECT coalesce(sum(c.cost_usd), 0.0) FROM calls c
                    WHERE c.run_id = r.id AND NOT c.cached) AS cost_usd
             FROM {runs} r) ORDER BY {order}{outer_limit}"
        );
        let total = self.count(
            &format!("SELECT count(*) FROM runs r WHERE {}", f.sql()),
            &f.params,
        )?;
        let rows = self.rows(&sql, f.params.iter().cloned().chain(page.limit()), |r| {
            Ok(RunRow {
                id: r.get(0)?,
                name: r.get(1)?,
                kind: r.get(2)?,
                status: r.get(3)?,
                scenario_path: r.get(4)?,
                seed: r.get(5)?,
                planned_samples: r.get(6)?,
                error: r.get(7)?,
                started_at: r.get(8)?,
                finished_at: r.get(9)?,
                tasks: r.get(10)?,
                samples: r.get(11)?,
                calls: r.get(12)?,
                tokens: r.get(13)?,
                cost_usd: r.get(14)?,
            })
        })?;
        Ok(self.page(rows, total, page))
    }

    /// Run `run_id`'s name, kind and status.
    pub fn run_head(&self, run_id: i64) -> Result<RunHead> {
        self.conn
            .prepare_cached(
                "SELECT id, name, kind, status, started_at, finished_at FROM runs WHERE id = ?1",
            )
            .and_then(|mut st| {
                st.query_row([run_id], |r| {
                    Ok(RunHead {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        kind: r.get(2)?,
                        status: r.get(3)?,
                        started_at: r.get(4)?,
                        finished_at: r.get(5)?,
                    })
                })
                .optional()
            })
            .map_err(self.err())?
            .ok_or_else(|| self.no_such_run(run_id))
    }

    /// Run `run_id` as the run list shows it.
    pub fn run_row(&self, run_id: i64) -> Result<RunRow> {
        let q = RunQuery {
            id: Some(run_id),
            ..RunQuery::default()
        };
        let page = PageRequest {
            page: 0,
            per_page: 1,
        };
        self.run_page(&q, page)?
            .rows
            .pop()
            .ok_or_else(|| self.no_such_run(run_id))
    }

    /// One page of run `run_id`'s tasks, in task order.
    pub fn task_page(
        &self,
        run_id: i64,
        q: &TaskQuery,
        page: PageRequest,
    ) -> Result<Page<TaskListRow>> {
        self.require_run(run_id)?;
        let mut f = Filter::new("t.run_id = ?", Value::Integer(run_id));
        let (strategy, n) = q.outcome.as_ref().map_or((Value::Null, Value::Null), |o| {
            (text(&o.strategy), Value::Integer(o.n as i64))
        });
        if let Some(s) = &q.search {
            f.and(
                "(t.task_id LIKE ? ESCAPE '\\' OR t.inputs LIKE ? ESCAPE '\\')",
                [contains(s), contains(s)],
            );
        }
        if let (Some(c), Some(_)) = (q.correct, &q.outcome) {
            f.and(
                "EXISTS (SELECT 1 FROM task_results tr WHERE tr.run_id = t.run_id AND tr.strategy = ?
                 AND tr.n = ? AND tr.task_index = t.task_index AND tr.selected_correct = ?)",
                [strategy.clone(), n.clone(), Value::Integer(c as i64)],
            );
        }
        if let Some(a) = &q.agent {
            f.and(
                "(EXISTS (SELECT 1 FROM samples s WHERE s.run_id = t.run_id AND s.agent = ?
                    AND s.task_index = t.task_index)
                  OR EXISTS (SELECT 1 FROM messages m WHERE m.run_id = t.run_id
                    AND m.task_index = t.task_index AND m.sender = ?))",
                [text(a), text(a)],
            );
        }
        if let Some(m) = &q.mode {
            let (clause, values) = m.clause("t");
            f.and(&clause, values);
        }
        let total = self.count(
            &format!("SELECT count(*) FROM tasks t WHERE {}", f.sql()),
            &f.params,
        )?;
        let sql = format!(
            "SELECT t.task_index, t.task_id, t.expected,
                (SELECT tr.selected FROM task_results tr WHERE tr.run_id = t.run_id AND tr.strategy = ?
                    AND tr.n = ? AND tr.task_index = t.task_index),
                (SELECT tr.selected_correct FROM task_results tr WHERE tr.run_id = t.run_id
                    AND tr.strategy = ? AND tr.n = ? AND tr.task_index = t.task_index),
                (SELECT count(*) FROM samples s WHERE s.run_id = t.run_id AND s.task_index = t.task_index),
                (SELECT count(*) FROM samples s WHERE s.run_id = t.run_id AND s.task_index = t.task_index
                    AND s.correct = 1),
                (SELECT count(*) FROM graph_runs g WHERE g.run_id = t.run_id AND g.task_index = t.task_index),
                {}
             FROM tasks t WHERE {} ORDER BY t.task_index LIMIT ? OFFSET ?",
            modes_found("t", false),
            f.sql()
        );
        let params = [strategy.clone(), n.clone(), strategy, n]
            .into_iter()
            .chain(f.params.iter().cloned())
            .chain(page.limit());
        let rows = self.rows(&sql, params, |r| {
            Ok(TaskListRow {
                task_index: r.get(0)?,
                task_id: r.get(1)?,
                expected: r.get(2)?,
                selected: r.get(3)?,
                selected_correct: r.get::<_, Option<i64>>(4)?.map(|c| c != 0),
                samples: r.get(5)?,
                correct_samples: r.get(6)?,
                graph_runs: r.get(7)?,
                failures: r.get(8)?,
            })
        })?;
        Ok(self.page(rows, total, page))
    }

    /// One page of run `run_id`'s samples, in (agent, task, sample) order.
    pub fn sample_page(
        &self,
        run_id: i64,
        q: &SampleQuery,
        page: PageRequest,
    ) -> Result<Page<SampleRow>> {
        self.require_run(run_id)?;
        let mut f = Filter::new("s.run_id = ?", Value::Integer(run_id));
        if let Some(a) = &q.agent {
            f.and("s.agent = ?", [text(a)]);
        }
        if let Some(c) = q.correct {
            f.and("s.correct = ?", [Value::Integer(c as i64)]);
        }
        if let Some(s) = &q.strategy {
            f.and("s.strategy = ?", [text(s)]);
        }
        if let Some(t) = q.task_index {
            f.and("s.task_index = ?", [Value::Integer(t as i64)]);
        }
        if let Some(s) = &q.search {
            f.and("s.text LIKE ? ESCAPE '\\'", [contains(s)]);
        }
        if let Some(m) = &q.mode {
            let (clause, values) = m.clause("s");
            f.and(&clause, values);
        }
        let sql = format!(
            "SELECT s.id, s.task_index, t.task_id, s.agent, s.model, s.sample_index, s.answer,
                s.normalized, s.correct, s.abstained, s.error, s.output_tokens, s.latency_ms,
                s.call_id, s.strategy, s.round, substr(s.text, 1, 300), length(s.text) > 300,
                (SELECT json_group_array(json_array(verifier, score)) FROM scores WHERE sample_id = s.id)
             FROM (SELECT * FROM samples s WHERE {} ORDER BY s.agent, s.task_index, s.sample_index
                   LIMIT ? OFFSET ?) s
             JOIN tasks t ON t.run_id = s.run_id AND t.task_index = s.task_index
             ORDER BY s.agent, s.task_index, s.sample_index",
            f.sql()
        );
        let rows = self.rows(
            &sql,
            f.params.iter().cloned().chain(page.limit()),
            sample_row,
        )?;
        // A page short of rows ends the list, so the list's length is known
        // without counting it: a text search whose matches fit on one page
        // then reads the run's texts once, not twice.
        let (per, offset) = (page.per_page, page.offset());
        let total = if (rows.len() as u64) < per && (!rows.is_empty() || offset == 0) {
            offset + rows.len() as u64
        } else {
            self.count(
                &format!("SELECT count(*) FROM samples s WHERE {}", f.sql()),
                &f.params,
            )?
        };
        Ok(self.page(rows, total, page))
    }

    /// Task `task_index` of run `run_id` in full, or `None` when the run has no such task.
    pub fn task_detail(&self, run_id: i64, task_index: usize) -> Result<Option<TaskDetail>> {
        let head = self
            .conn
            .query_row(
                "SELECT task_index, task_id, inputs, expected FROM tasks WHERE run_id = ?1 AND task_index = ?2",
                params![run_id, task_index as i64],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(self.err())?;
        let Some((index, task_id, inputs, expected)) = head else {
            return Ok(None);
        };
        let key = || [Value::Integer(run_id), Value::Integer(task_index as i64)];
        let outcomes = self.rows(
            "SELECT tr.strategy, tr.kind, tr.n, tr.selected, tr.selected_correct, tr.accuracy, tr.tokens
             FROM task_results tr LEFT JOIN results r
                ON r.run_id = tr.run_id AND r.strategy = tr.strategy AND r.n = tr.n
             WHERE tr.run_id = ?1 AND tr.task_index = ?2 ORDER BY r.rowid, tr.strategy, tr.n",
            key(),
            |r| {
                Ok(OutcomeRow {
                    strategy: r.get(0)?,
                    kind: r.get(1)?,
                    n: r.get(2)?,
                    selected: r.get(3)?,
                    selected_correct: r.get::<_, i64>(4)? != 0,
                    accuracy: r.get(5)?,
                    tokens: r.get(6)?,
                })
            },
        )?;
        let votes = self.rows(
            "SELECT agent, normalized, count(*), max(correct) FROM samples
             WHERE run_id = ?1 AND task_index = ?2 AND error IS NULL
             GROUP BY agent, normalized ORDER BY agent, count(*) DESC, normalized",
            key(),
            |r| {
                Ok(VoteRow {
                    agent: r.get(0)?,
                    answer: r.get(1)?,
                    votes: r.get(2)?,
                    correct: r.get::<_, Option<i64>>(3)?.map(|c| c != 0),
                })
            },
        )?;
        let graph_runs = self.rows(
            &format!(
                "SELECT g.attempt, g.ending, g.turns,
                    (SELECT count(*) FROM messages m WHERE m.run_id = g.run_id
                        AND m.task_index = g.task_index AND m.attempt = g.attempt),
                    {GRAPH_RUN_CORRECT}, {}
                 FROM graph_runs g WHERE g.run_id = ?1 AND g.task_index = ?2 ORDER BY g.attempt",
                modes_found("g", true)
            ),
            key(),
            |r| {
                Ok(GraphRunRow {
                    attempt: r.get(0)?,
                    ending: r.get(1)?,
                    turns: r.get(2)?,
                    messages: r.get(3)?,
                    correct: r.get::<_, Option<i64>>(4)?.map(|c| c != 0),
                    failures: r.get(5)?,
                })
            },
        )?;
        Ok(Some(TaskDetail {
            task_index: index,
            task_id,
            inputs,
            expected,
            outcomes,
            votes,
            graph_runs,
        }))
    }

    /// The events of one graph run, in order.
    pub fn graph_events(
        &self,
        run_id: i64,
        task_index: usize,
        attempt: usize,
    ) -> Result<Vec<GraphEventRow>> {
        self.rows(
            "SELECT position, kind, node, detail FROM graph_events
             WHERE run_id = ?1 AND task_index = ?2 AND attempt = ?3 ORDER BY position",
            [
                Value::Integer(run_id),
                Value::Integer(task_index as i64),
                Value::Integer(attempt as i64),
            ],
            |r| {
                Ok(GraphEventRow {
                    position: r.get(0)?,
                    kind: r.get(1)?,
                    node: r.get(2)?,
                    detail: r.get(3)?,
                })
            },
        )
    }

    /// The calls made for task `task_index` of run `run_id`, at most 500:
    /// its agents' and verifiers' (of every graph run of the task), and its
    /// failure judges' (of graph run `attempt` only, when given).
    pub fn task_calls(
        &self,
        run_id: i64,
        task_index: usize,
        attempt: Option<usize>,
    ) -> Result<Vec<CallListRow>> {
        self.rows(
            "SELECT c.id, c.role, c.agent, c.model, c.first_sample, c.n, c.status, c.latency_ms,
                c.input_tokens + c.output_tokens
             FROM calls c WHERE c.run_id = ?1 AND c.task_index = ?2
                AND (?3 IS NULL OR c.role <> 'judge' OR c.first_sample / ?4 = ?3)
             ORDER BY c.id LIMIT 500",
            [
                Value::Integer(run_id),
                Value::Integer(task_index as i64),
                attempt.map_or(Value::Null, |a| Value::Integer(a as i64)),
                // Judge call k of graph run a asks for sample a × MAX_REPEATS + k.
                Value::Integer(crate::scenario::validator::MAX_REPEATS as i64),
            ],
            |r| {
                Ok(CallListRow {
                    id: r.get(0)?,
                    role: r.get(1)?,
                    agent: r.get(2)?,
                    model: r.get(3)?,
                    first_sample: r.get(4)?,
                    n: r.get(5)?,
                    status: r.get(6)?,
                    latency_ms: r.get(7)?,
                    tokens: r.get(8)?,
                })
            },
        )
    }

    /// Call `call_id` in full, or `None` when there is none.
    pub fn call_detail(&self, call_id: i64) -> Result<Option<CallDetail>> {
        let call = self
            .conn
            .query_row(
                "SELECT v.call_id, v.run_id, v.task_id, v.task_index, v.role, v.agent, v.subject, v.model,
                    v.provider, v.first_sample, v.n, v.status, v.error, v.latency_ms, v.input_tokens,
                    v.output_tokens, v.cost_usd, c.cached, v.cache_key, v.system, v.prompt, v.request,
                    v.response, v.reply
                 FROM call_view v JOIN calls c ON c.id = v.call_id WHERE v.call_id = ?1",
                [call_id],
                |r| {
                    Ok(CallDetail {
                        id: r.get(0)?,
                        run_id: r.get(1)?,
                        task_id: r.get(2)?,
                        task_index: r.get(3)?,
                        role: r.get(4)?,
                        agent: r.get(5)?,
                        subject: r.get(6)?,
                        model: r.get(7)?,
                        provider: r.get(8)?,
                        first_sample: r.get(9)?,
                        n: r.get(10)?,
                        status: r.get(11)?,
                        error: r.get(12)?,
                        latency_ms: r.get(13)?,
                        input_tokens: r.get(14)?,
                        output_tokens: r.get(15)?,
                        cost_usd: r.get(16)?,
                        cached: r.get::<_, i64>(17)? != 0,
                        cache_key: r.get(18)?,
                        system: r.get(19)?,
                        prompt: r.get(20)?,
                        request: r.get(21)?,
                        response: r.get(22)?,
                        reply: r.get(23)?,
                        attempts: Vec::new(),
                    })
                },
            )
            .optional()
            .map_err(self.err())?;
        let Some(mut call) = call else {
            return Ok(None);
        };
        call.attempts = self.rows(
            "SELECT attempt, n, status, error, latency_ms, wait_ms FROM attempts
             WHERE call_id = ?1 ORDER BY attempt",
            [Value::Integer(call_id)],
            |r| {
                Ok(AttemptRow {
                    attempt: r.get(0)?,
                    n: r.get(1)?,
                    status: r.get(2)?,
                    error: r.get(3)?,
                    latency_ms: r.get(4)?,
                    wait_ms: r.get(5)?,
                })
            },
        )?;
        Ok(Some(call))
    }

    /// The (strategy, n) pairs of a run's summary, in its order.
    pub fn outcome_choices(&self, run_id: i64) -> Result<Vec<Outcome>> {
        self.rows(
            "SELECT strategy, n FROM results WHERE run_id = ?1 ORDER BY rowid",
            [Value::Integer(run_id)],
            |r| {
                Ok(Outcome {
                    strategy: r.get(0)?,
                    n: r.get::<_, i64>(1)? as usize,
                })
            },
        )
    }

    /// Tasks two sides share (by task id), the ones where exactly one side
    /// chose right first, then in side A's task order; and the counts over
    /// every shared task.
    pub fn compare_page(
        &self,
        a: &Side,
        b: &Side,
        only_different: bool,
        page: PageRequest,
    ) -> Result<(Page<CompareRow>, CompareCounts)> {
        self.require_run(a.run_id)?;
        self.require_run(b.run_id)?;
        // Side B's task is found by id (`tasks_by_id`) before its result:
        // left to choose, SQLite reads B's results first and, for each of
        // A's tasks, every one of them (10,000 × 10,000 rows on the
        // 10,000-task run). `CROSS JOIN` keeps that order.
        let pair = "FROM tasks ta JOIN task_results ra ON ra.run_id = ta.run_id AND ra.task_index = ta.task_index
                    JOIN tasks tb ON tb.run_id = ?4 AND tb.task_id = ta.task_id
                    CROSS JOIN task_results rb ON rb.run_id = tb.run_id AND rb.task_index = tb.task_index
                    WHERE ta.run_id = ?1 AND ra.strategy = ?2 AND ra.n = ?3 AND rb.strategy = ?5 AND rb.n = ?6";
        let sides = || {
            [
                Value::Integer(a.run_id),
                text(&a.outcome.strategy),
                Value::Integer(a.outcome.n as i64),
                Value::Integer(b.run_id),
                text(&b.outcome.strategy),
                Value::Integer(b.outcome.n as i64),
            ]
        };
        let mut counts = CompareCounts::default();
        let tallies = self.rows(
            &format!(
                "SELECT ra.selected_correct, rb.selected_correct, count(*) {pair} GROUP BY 1, 2"
            ),
            sides(),
            |r| {
                Ok((
                    r.get::<_, i64>(0)? != 0,
                    r.get::<_, i64>(1)? != 0,
                    r.get::<_, i64>(2)? as u64,
                ))
            },
        )?;
        for (ca, cb, k) in tallies {
            match (ca, cb) {
                (true, true) => counts.both += k,
                (true, false) => counts.only_a += k,
                (false, true) => counts.only_b += k,
                (false, false) => counts.neither += k,
            }
        }
        let differ = "ra.selected_correct <> rb.selected_correct";
        let filter = if only_different {
            format!(" AND {differ}")
        } else {
            String::new()
        };
        let total = if only_different {
            counts.only_a + counts.only_b
        } else {
            counts.both + counts.only_a + counts.only_b + counts.neither
        };
        let rows = self.rows(
            &format!(
                "SELECT ta.task_id, ta.task_index, tb.task_index, ra.selected, ra.selected_correct,
                    rb.selected, rb.selected_correct
                 {pair}{filter} ORDER BY ({differ}) DESC, ta.task_index LIMIT ?7 OFFSET ?8"
            ),
            sides().into_iter().chain(page.limit()),
            |r| {
                Ok(CompareRow {
                    task_id: r.get(0)?,
                    task_index_a: r.get(1)?,
                    task_index_b: r.get(2)?,
                    selected_a: r.get(3)?,
                    correct_a: r.get::<_, i64>(4)? != 0,
                    selected_b: r.get(5)?,
                    correct_b: r.get::<_, i64>(6)? != 0,
                })
            },
        )?;
        Ok((self.page(rows, total, page), counts))
    }

    /// How far run `run_id` has got: what a live page polls.
    pub fn progress(&self, run_id: i64) -> Result<Progress> {
        self.conn
            .query_row(
                "SELECT r.status, (SELECT count(*) FROM samples WHERE run_id = r.id), r.planned_samples,
                    (SELECT count(*) FROM graph_runs WHERE run_id = r.id),
                    (SELECT count(*) FROM calls WHERE run_id = r.id AND NOT cached),
                    (SELECT coalesce(sum(input_tokens + output_tokens), 0) FROM calls
                        WHERE run_id = r.id AND NOT cached),
                    (SELECT coalesce(sum(cost_usd), 0.0) FROM calls WHERE run_id = r.id AND NOT cached),
                    r.finished_at
                 FROM runs r WHERE r.id = ?1",
                [run_id],
                |r| {
                    Ok(Progress {
                        status: r.get(0)?,
                        samples: r.get(1)?,
                        planned_samples: r.get(2)?,
                        graph_runs: r.get(3)?,
                        calls: r.get(4)?,
                        tokens: r.get(5)?,
                        cost_usd: r.get(6)?,
                        finished_at: r.get(7)?,
                    })
                },
            )
            .optional()
            .map_err(self.err())?
            .ok_or_else(|| self.no_such_run(run_id))
    }

    /// Graph runs (traces) of run `run_id`.
    pub fn trace_count(&self, run_id: i64) -> Result<u64> {
        self.count(
            "SELECT count(*) FROM graph_runs WHERE run_id = ?",
            &[Value::Integer(run_id)],
        )
    }

    /// Up to `limit` traces worth reading first: failed graph runs (their
    /// answer wrong), the most failure modes found in them first.
    pub fn worst_traces(&self, run_id: i64, limit: usize) -> Result<Vec<(usize, usize)>> {
        self.rows(
            &format!(
                "SELECT g.task_index, g.attempt FROM graph_runs g
                 WHERE g.run_id = ?1 AND coalesce({GRAPH_RUN_CORRECT}, 0) = 0
                 ORDER BY {} DESC, g.task_index, g.attempt LIMIT ?2",
                modes_found("g", true)
            ),
            [Value::Integer(run_id), Value::Integer(limit as i64)],
            |r| Ok((r.get::<_, i64>(0)? as usize, r.get::<_, i64>(1)? as usize)),
        )
    }

    /// Distinct agents of a run's samples and messages: a filter's choices.
    pub fn run_agents(&self, run_id: i64) -> Result<Vec<String>> {
        // Each next name is one seek in an index (`samples`' unique key,
        // `messages_by_sender`), so this reads as many index entries as
        // there are names, not every sample of the run.
        self.rows(
            "WITH RECURSIVE
                a(name) AS (SELECT (SELECT min(agent) FROM samples WHERE run_id = ?1)
                    UNION ALL SELECT (SELECT min(agent) FROM samples WHERE run_id = ?1 AND agent > a.name)
                    FROM a WHERE a.name IS NOT NULL),
                m(name) AS (SELECT (SELECT min(sender) FROM messages WHERE run_id = ?1 AND sender IS NOT NULL)
                    UNION ALL SELECT (SELECT min(sender) FROM messages WHERE run_id = ?1 AND sender > m.name)
                    FROM m WHERE m.name IS NOT NULL)
             SELECT name FROM a WHERE name IS NOT NULL
             UNION SELECT name FROM m WHERE name IS NOT NULL
             ORDER BY 1",
            [Value::Integer(run_id)],
            |r| r.get(0),
        )
    }

    /// Distinct `samples.strategy` values of a run: a filter's choices.
    pub fn sample_strategies(&self, run_id: i64) -> Result<Vec<String>> {
        // One seek in `samples_by_strategy` per value, as in `run_agents`.
        self.rows(
            "WITH RECURSIVE s(name) AS (
                SELECT (SELECT min(strategy) FROM samples WHERE run_id = ?1 AND strategy IS NOT NULL)
                UNION ALL SELECT (SELECT min(strategy) FROM samples WHERE run_id = ?1 AND strategy > s.name)
                FROM s WHERE s.name IS NOT NULL)
             SELECT name FROM s WHERE name IS NOT NULL",
            [Value::Integer(run_id)],
            |r| r.get(0),
        )
    }

    fn count(&self, sql: &str, params: &[Value]) -> Result<u64> {
        self.conn
            .query_row(sql, params_from_iter(params.iter()), |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(self.err())
    }

    fn rows<T>(
        &self,
        sql: &str,
        params: impl IntoIterator<Item = Value>,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let mut st = self.conn.prepare_cached(sql).map_err(self.err())?;
        st.query_map(params_from_iter(params), row)
            .and_then(|rows| rows.collect())
            .map_err(self.err())
    }

    fn page<T>(&self, rows: Vec<T>, total: u64, page: PageRequest) -> Page<T> {
        Page {
            rows,
            total,
            page: page.page,
            per_page: page.per_page,
        }
    }
}

fn sample_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SampleRow> {
    let scores: Option<String> = r.get(18)?;
    Ok(SampleRow {
        id: r.get(0)?,
        task_index: r.get(1)?,
        task_id: r.get(2)?,
        agent: r.get(3)?,
        model: r.get(4)?,
        sample_index: r.get(5)?,
        answer: r.get(6)?,
        normalized: r.get(7)?,
        correct: r.get::<_, Option<i64>>(8)?.map(|c| c != 0),
        abstained: r.get::<_, i64>(9)? != 0,
        error: r.get(10)?,
        output_tokens: r.get(11)?,
        latency_ms: r.get(12)?,
        call_id: r.get(13)?,
        strategy: r.get(14)?,
        round: r.get(15)?,
        excerpt: r.get(16)?,
        cut: r.get::<_, i64>(17)? != 0,
        scores: scores
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preferred_outcome_is_the_first_strategy_at_its_largest_n() {
        let o = |s: &str, n| Outcome {
            strategy: s.into(),
            n,
        };
        let choices = [o("vote", 1), o("vote", 8), o("best", 1), o("best", 4)];
        assert_eq!(Outcome::preferred(&choices, None), Some(&o("vote", 8)));
        assert_eq!(
            Outcome::preferred(&choices, Some(&o("vote", 8))),
            Some(&o("best", 4))
        );
        assert_eq!(
            Outcome::preferred(&choices[..2], Some(&o("vote", 8))),
            Some(&o("vote", 1))
        );
        assert_eq!(Outcome::preferred(&[], None), None);
        assert_eq!(Outcome::parse("best_of_n@16"), Some(o("best_of_n", 16)));
        assert_eq!(
            Outcome::parse("a@b@2").map(|o| o.strategy),
            Some("a@b".into())
        );
        assert_eq!(Outcome::parse("vote"), None);
        assert_eq!(o("vote", 8).to_string(), "vote@8");
    }

    #[test]
    fn like_patterns_take_the_users_wildcards_literally() {
        assert_eq!(
            contains("50%_off\\"),
            Value::Text("%50\\%\\_off\\\\%".into())
        );
    }

    #[test]
    fn a_page_past_the_end_is_empty_with_the_true_total() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let page = store
            .run_page(
                &RunQuery::default(),
                PageRequest {
                    page: 7,
                    per_page: 10,
                },
            )
            .unwrap();
        assert_eq!((page.rows.len(), page.total, page.pages()), (0, 0, 1));
        assert!(matches!(
            store.task_page(
                3,
                &TaskQuery::default(),
                PageRequest {
                    page: 0,
                    per_page: 5
                }
            ),
            Err(crate::store::StoreError::NoSuchRun { run: 3, .. })
        ));
    }

    #[test]
    fn a_read_only_open_refuses_a_schema_it_cannot_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = Store::open(&path).unwrap();
        assert!(Store::open_read_only(&path).is_ok());
        store
            .connection()
            .pragma_update(None, "user_version", crate::store::SCHEMA_VERSION - 1)
            .unwrap();
        let err = Store::open_read_only(&path)
            .err()
            .expect("an older schema is refused");
        assert!(err.to_string().contains("without --read-only"), "{err}");
    }
}
