//! The writer thread: one connection fed by a bounded channel, committing
//! in batched transactions (so finished work is durable within a batch of
//! being done, and a stopped run holds no score without its sample).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::mpsc::{Receiver, Sender, channel};

use super::{
    ABSTAINED, Blob, CallRecord, CallRole, GraphRunRecord, JudgementRecord, LabelRecord,
    PoolRecord, Record, Result, Store, StoreError, open_conn, sqlite_err,
};

impl Store {
    /// Start the writer thread for `run_id`; `resumed`: the run holds samples
    /// from earlier sessions, which a new call must not draw again.
    pub fn writer(&self, run_id: i64, resumed: bool) -> Result<StoreWriter> {
        let conn = open_conn(&self.path)?;
        // A record carries one request's samples; 4096 of them keep the
        // writer fed while bounding memory (~110 MB at 64 samples a request).
        let (tx, rx) = channel::<Record>(4096);
        let path = self.path.clone();
        let handle = std::thread::Builder::new()
            .name("crucible-store".into())
            .spawn(move || write_loop(conn, path, run_id, resumed, rx))
            .expect("spawn store writer thread");
        Ok(StoreWriter {
            tx: Some(tx),
            handle: Some(handle),
            path: self.path.clone(),
        })
    }
}

/// Sends records to the writer thread.
pub struct StoreWriter {
    tx: Option<Sender<Record>>,
    handle: Option<JoinHandle<Result<WriterStats>>>,
    path: PathBuf,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct WriterStats {
    pub calls: u64,
    pub samples: u64,
    pub transactions: u64,
}

impl StoreWriter {
    /// A sender for executor tasks; sending waits while the writer is behind,
    /// which keeps memory bounded.
    pub fn sender(&self) -> Sender<Record> {
        self.tx.clone().expect("writer is open")
    }

    /// Flush everything sent so far and stop the thread.
    pub fn finish(mut self) -> Result<WriterStats> {
        self.tx.take();
        let handle = self.handle.take().expect("writer is open");
        match handle.join() {
            Ok(r) => r,
            Err(_) => Err(StoreError::WriterGone {
                path: self.path.clone(),
            }),
        }
    }
}

const BATCH_RECORDS: usize = 20_000;
const BATCH_TIME: Duration = Duration::from_millis(200);

fn write_loop(
    mut conn: Connection,
    path: PathBuf,
    run_id: i64,
    resumed: bool,
    mut rx: Receiver<Record>,
) -> Result<WriterStats> {
    let err = sqlite_err(&path);
    let mut stats = WriterStats::default();
    let mut seen_blobs: HashSet<Arc<str>> = HashSet::new();
    while let Some(first) = rx.blocking_recv() {
        let tx = conn.transaction().map_err(err)?;
        let mut conflict = None;
        {
            let mut w = BatchWriter::new(&tx, run_id).map_err(err)?;
            let started = Instant::now();
            let mut count = 0;
            let mut next = Some(first);
            while let Some(record) = next.take() {
                if let Record::Call(c) = &record
                    && resumed
                    && let Some(sample) = w.held(c).map_err(err)?
                {
                    conflict = Some((c.agent.to_string(), c.task_index, sample));
                    break;
                }
                w.write(record, &mut seen_blobs, &mut stats).map_err(err)?;
                count += 1;
                if count >= BATCH_RECORDS || started.elapsed() >= BATCH_TIME {
                    break;
                }
                next = rx.try_recv().ok();
            }
        }
        // What came before a conflict is kept.
        tx.commit().map_err(err)?;
        stats.transactions += 1;
        if let Some((agent, task_index, sample)) = conflict {
            return Err(StoreError::SampleConflict {
                path,
                run: run_id,
                agent,
                task_index,
                sample,
            });
        }
        // Bound memory on long runs with many distinct texts.
        if seen_blobs.len() > 1_000_000 {
            seen_blobs.clear();
        }
    }
    Ok(stats)
}

/// Prepared statements for one transaction.
struct BatchWriter<'c> {
    run_id: i64,
    blob: rusqlite::CachedStatement<'c>,
    call: rusqlite::CachedStatement<'c>,
    sample: rusqlite::CachedStatement<'c>,
    score: rusqlite::CachedStatement<'c>,
    late_score: rusqlite::CachedStatement<'c>,
    step_score: rusqlite::CachedStatement<'c>,
    reply: rusqlite::CachedStatement<'c>,
    attempt: rusqlite::CachedStatement<'c>,
    result: rusqlite::CachedStatement<'c>,
    pool: rusqlite::CachedStatement<'c>,
    graph_run: rusqlite::CachedStatement<'c>,
    message: rusqlite::CachedStatement<'c>,
    event: rusqlite::CachedStatement<'c>,
    injected: rusqlite::CachedStatement<'c>,
    held: rusqlite::CachedStatement<'c>,
    call_by_key: rusqlite::CachedStatement<'c>,
    judgement: rusqlite::CachedStatement<'c>,
    label: rusqlite::CachedStatement<'c>,
    faith_answer: rusqlite::CachedStatement<'c>,
    faith_prediction: rusqlite::CachedStatement<'c>,
    faith_pair: rusqlite::CachedStatement<'c>,
    faith_generated: rusqlite::CachedStatement<'c>,
    faith_reasoning: rusqlite::CachedStatement<'c>,
    faith_biased: rusqlite::CachedStatement<'c>,
    counterfactual: rusqlite::CachedStatement<'c>,
}

impl<'c> BatchWriter<'c> {
    fn new(tx: &'c rusqlite::Transaction<'_>, run_id: i64) -> rusqlite::Result<Self> {
        Ok(BatchWriter {
            run_id,
            blob: tx.prepare_cached("INSERT OR IGNORE INTO blobs (hash, text) VALUES (?1, ?2)")?,
            held: tx.prepare_cached(
                "SELECT sample_index FROM samples
                 WHERE run_id = ?1 AND agent = ?2 AND task_index = ?3
                   AND sample_index >= ?4 AND sample_index < ?4 + ?5
                 ORDER BY sample_index LIMIT 1",
            )?,
            call: tx.prepare_cached(
                "INSERT INTO calls (run_id, task_index, agent, model, provider, first_sample, n,
                    system_hash, prompt_hash, request, response_hash, status, error, latency_ms,
                    input_tokens, output_tokens, cache_key, cost_usd, role, subject, cached)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
                    ?19, ?20, ?21)",
            )?,
            sample: tx.prepare_cached(
                "INSERT INTO samples (run_id, task_index, agent, model, sample_index, call_id, text,
                    answer, normalized, correct, abstained, input_tokens, output_tokens, latency_ms, error,
                    strategy, round)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            )?,
            score: tx.prepare_cached(
                "INSERT INTO scores (sample_id, verifier, score, accepted, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?,
            // A judge's score may replace an earlier failed one (a resumed run judges again).
            late_score: tx.prepare_cached(
                "INSERT OR REPLACE INTO scores (sample_id, verifier, score, accepted, detail)
                 SELECT id, ?5, ?6, ?7, ?8 FROM samples
                 WHERE run_id = ?1 AND agent = ?2 AND task_index = ?3 AND sample_index = ?4",
            )?,
            step_score: tx.prepare_cached(
                "INSERT OR REPLACE INTO step_scores (sample_id, verifier, step, text, score)
                 SELECT id, ?5, ?6, ?7, ?8 FROM samples
                 WHERE run_id = ?1 AND agent = ?2 AND task_index = ?3 AND sample_index = ?4",
            )?,
            reply: tx.prepare_cached("INSERT INTO replies (call_id, text) VALUES (?1, ?2)")?,
            attempt: tx.prepare_cached(
                "INSERT INTO attempts (call_id, attempt, n, status, error, latency_ms, wait_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?,
            result: tx.prepare_cached(
                "INSERT INTO task_results (run_id, strategy, kind, n, task_index, accuracy, abstain,
                    tokens, selected, selected_correct, samples, verifier_tokens)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?,
            graph_run: tx.prepare_cached(
                "INSERT OR REPLACE INTO graph_runs (run_id, task_index, attempt, ending, turns, final)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?,
            message: tx.prepare_cached(
                "INSERT OR REPLACE INTO messages (run_id, task_index, attempt, position, turn, node,
                    sender, reply_to, receivers, summary, text)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?,
            event: tx.prepare_cached(
                "INSERT OR REPLACE INTO graph_events (run_id, task_index, attempt, position, kind, node, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?,
            injected: tx.prepare_cached(
                "INSERT OR REPLACE INTO injected_failures (run_id, task_index, attempt, position,
                    turn, agent, node, mode, name)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?,
            counterfactual: tx.prepare_cached(
                "INSERT OR REPLACE INTO counterfactuals (run_id, task_index, attempt, origin_attempt,
                    level, coalition, replay, correct, calls, tokens, cost_usd)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?,
            call_by_key: tx.prepare_cached(
                // The call a recording serves: the first that succeeded.
                "SELECT id FROM calls WHERE run_id = ?1 AND cache_key = ?2 AND status = 'ok'
                 ORDER BY id LIMIT 1",
            )?,
            // Judged again (a resumed or repeated `crucible judge`): the new
            // reading replaces the old in place, keeping its id, which labels
            // refer to.
            judgement: tx.prepare_cached(
                "INSERT INTO judgements (run_id, task_index, attempt, judge, judge_version,
                    judge_hash, model, repeat, call_id, reasked, status, format, error, summary,
                    task_completed, notes, cut_messages, cut_chars)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)
                 ON CONFLICT (run_id, task_index, attempt, judge_hash, model, repeat) DO UPDATE SET
                    judge = excluded.judge, judge_version = excluded.judge_version,
                    call_id = excluded.call_id, reasked = excluded.reasked, status = excluded.status,
                    format = excluded.format, error = excluded.error, summary = excluded.summary,
                    task_completed = excluded.task_completed, notes = excluded.notes,
                    cut_messages = excluded.cut_messages, cut_chars = excluded.cut_chars
                 RETURNING id",
            )?,
            label: tx.prepare_cached(
                "INSERT OR REPLACE INTO labels (run_id, task_index, attempt, rater, code, original,
                    present, agent, turn, quote, evidence_verified, judgement_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?,
            // Written again when a resumed run reads its stored calls again.
            faith_answer: tx.prepare_cached(
                "INSERT OR REPLACE INTO faith_answers (run_id, task_index, agent, layout, call_id,
                    status, answer, explanation, factors, confidence)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?,
            faith_prediction: tx.prepare_cached(
                "INSERT OR REPLACE INTO faith_predictions (run_id, dataset, reference, counterfactual,
                    model, layout, predictor, repeat, condition, explanation_from, call_id, status,
                    prediction, actual, correct)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            )?,
            // A generated counterfactual's pair, as written.
            faith_pair: tx.prepare_cached(
                "INSERT OR REPLACE INTO faith_pairs (run_id, dataset, reference, counterfactual,
                    source, distance, differing)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?,
            faith_generated: tx.prepare_cached(
                "INSERT OR REPLACE INTO faith_generated (run_id, dataset, reference,
                    counterfactual, agent, call_id, status, requested, differing, fields,
                    description)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?,
            faith_reasoning: tx.prepare_cached(
                "INSERT OR REPLACE INTO faith_reasoning (run_id, task_index, agent, layout,
                    measure, step, steps, mistake, mistake_call_id, call_id, status, answer,
                    original, unchanged)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?,
            faith_biased: tx.prepare_cached(
                "INSERT OR REPLACE INTO faith_biased (run_id, task_index, agent, layout,
                    suggested, original, call_id, status, answer, explanation, followed, mentions)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?,
            pool: tx.prepare_cached(
                "INSERT OR REPLACE INTO pools (run_id, agent, task_index, answers, verifiers,
                    classes, correct, tokens, scores, verifier_tokens)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?,
        })
    }

    /// The first of `call`'s samples the run already holds, if any: drawn in
    /// an earlier session by a call this one does not make again.
    fn held(&mut self, call: &CallRecord) -> rusqlite::Result<Option<usize>> {
        if call.samples.is_empty() {
            return Ok(None);
        }
        self.held
            .query_row(
                params![
                    self.run_id,
                    &*call.agent,
                    call.task_index as i64,
                    call.first_sample as i64,
                    call.n as i64
                ],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|s| s.map(|s| s as usize))
    }

    fn blob(&mut self, b: &Blob, seen: &mut HashSet<Arc<str>>) -> rusqlite::Result<()> {
        if seen.insert(b.hash.clone()) {
            self.blob.execute(params![&*b.hash, &*b.text])?;
        }
        Ok(())
    }

    fn write_pool(&mut self, p: &PoolRecord) -> rusqlite::Result<()> {
        let json = |v: &[String]| serde_json::to_string(v).expect("strings serialize");
        let verifiers: Vec<String> = p.scores.iter().map(|(v, _)| v.clone()).collect();
        let classes: Vec<u8> = p
            .samples
            .iter()
            .flat_map(|s| s.0.unwrap_or(ABSTAINED).to_le_bytes())
            .collect();
        let correct: Vec<u8> = p.samples.iter().map(|s| u8::from(s.1)).collect();
        let tokens: Vec<u8> = p.samples.iter().flat_map(|s| s.2.to_le_bytes()).collect();
        let scores: Vec<u8> = p
            .scores
            .iter()
            .flat_map(|(_, s)| s.iter().flat_map(|x| x.to_le_bytes()))
            .collect();
        let verifier_tokens: Vec<u8> = p
            .verifier_tokens
            .iter()
            .flat_map(|t| t.iter().flat_map(|x| x.to_le_bytes()))
            .collect();
        self.pool.execute(params![
            self.run_id,
            &*p.agent,
            p.task_index as i64,
            json(&p.answers),
            json(&verifiers),
            classes,
            correct,
            tokens,
            scores,
            verifier_tokens,
        ])?;
        Ok(())
    }

    /// Insert call `c` with its attempts, samples and scores; its id.
    fn write_call(
        &mut self,
        c: &CallRecord,
        seen: &mut HashSet<Arc<str>>,
        stats: &mut WriterStats,
    ) -> rusqlite::Result<i64> {
        self.blob(&c.system, seen)?;
        self.blob(&c.prompt, seen)?;
        let response_hash = match &c.response {
            Some(body) => {
                let b = Blob::new(body);
                self.blob(&b, seen)?;
                Some(b.hash)
            }
            None => None,
        };
        let call_id = self.call.insert(params![
            self.run_id,
            c.task_index as i64,
            &*c.agent,
            &*c.model,
            c.provider,
            c.first_sample as i64,
            c.n as i64,
            &*c.system.hash,
            &*c.prompt.hash,
            c.request,
            response_hash.as_deref(),
            if c.error.is_some() { "error" } else { "ok" },
            c.error,
            c.latency_ms,
            c.input_tokens as i64,
            c.output_tokens as i64,
            c.cache_key,
            c.cost_usd,
            match &c.role {
                CallRole::Generator => "generator",
                CallRole::Verifier { .. } => "verifier",
                CallRole::Judge { .. } => "judge",
                CallRole::Explainer { .. } => "explainer",
                CallRole::Predictor { .. } => "predictor",
                CallRole::Writer { .. } => "writer",
            },
            match &c.role {
                CallRole::Verifier { subject, .. } => Some(&**subject),
                _ => None,
            },
            c.cached,
        ])?;
        stats.calls += 1;
        if let CallRole::Verifier { reply, .. }
        | CallRole::Judge { reply }
        | CallRole::Explainer { reply }
        | CallRole::Predictor { reply }
        | CallRole::Writer { reply } = &c.role
        {
            self.reply.execute(params![call_id, reply])?;
        }
        for (i, a) in c.attempts.iter().enumerate() {
            self.attempt.execute(params![
                call_id,
                i as i64 + 1,
                a.n as i64,
                a.status,
                a.error,
                a.latency_ms,
                a.wait_ms
            ])?;
        }
        // Input tokens are per request; attribute them to its first sample.
        for (i, s) in c.samples.iter().enumerate() {
            let sample_id = self.sample.insert(params![
                self.run_id,
                c.task_index as i64,
                &*c.agent,
                &*c.model,
                s.sample_index as i64,
                call_id,
                s.text,
                s.extracted,
                s.normalized,
                s.correct,
                s.normalized.is_none() && s.error.is_none(),
                if i == 0 { c.input_tokens as i64 } else { 0 },
                s.output_tokens as i64,
                c.latency_ms,
                s.error,
                s.round.as_ref().map(|r| &*r.0),
                s.round.as_ref().map(|r| r.1 as i64),
            ])?;
            stats.samples += 1;
            for sc in &s.scores {
                self.score.execute(params![
                    sample_id,
                    &*sc.verifier,
                    sc.value,
                    sc.accepted,
                    sc.detail
                ])?;
            }
        }
        Ok(call_id)
    }

    fn write_label(&mut self, l: &LabelRecord, judgement: Option<i64>) -> rusqlite::Result<()> {
        self.label.execute(params![
            self.run_id,
            l.task_index as i64,
            l.attempt as i64,
            l.rater,
            l.mode.map(|m| m.code()),
            l.original,
            l.present,
            l.agent,
            l.turn.map(|t| t as i64),
            l.quote,
            l.evidence_verified,
            judgement,
        ])?;
        Ok(())
    }

    /// Write a faithfulness call when it is new to the trace; the id of the
    /// call with `key` either way (`None` when a failed call left no answer).
    fn faith_call(
        &mut self,
        call: Option<&CallRecord>,
        key: &str,
        seen: &mut HashSet<Arc<str>>,
        stats: &mut WriterStats,
    ) -> rusqlite::Result<Option<i64>> {
        if let Some(c) = call {
            return self.write_call(c, seen, stats).map(Some);
        }
        self.call_by_key
            .query_row(params![self.run_id, key], |r| r.get::<_, i64>(0))
            .optional()
    }

    fn write_judgement(
        &mut self,
        j: &JudgementRecord,
        seen: &mut HashSet<Arc<str>>,
        stats: &mut WriterStats,
    ) -> rusqlite::Result<()> {
        let mut read = None;
        for c in &j.calls {
            let id = self.write_call(c, seen, stats)?;
            if c.cache_key == j.read_key {
                read = Some(id);
            }
        }
        // A call made in an earlier session is in the trace already.
        if read.is_none() {
            read = self
                .call_by_key
                .query_row(params![self.run_id, j.read_key], |r| r.get::<_, i64>(0))
                .optional()?;
        }
        let id: i64 = self.judgement.query_row(
            params![
                self.run_id,
                j.task_index as i64,
                j.attempt as i64,
                &*j.judge,
                &*j.judge_version,
                &*j.judge_hash,
                &*j.model,
                j.repeat as i64,
                read,
                j.reasked,
                j.status,
                j.format,
                j.error,
                j.summary,
                j.task_completed,
                (!j.notes.is_empty())
                    .then(|| serde_json::to_string(&j.notes).expect("strings serialize")),
                j.cut.0 as i64,
                j.cut.1 as i64,
            ],
            |r| r.get(0),
        )?;
        for l in &j.labels {
            self.write_label(l, Some(id))?;
        }
        Ok(())
    }

    fn write(
        &mut self,
        record: Record,
        seen: &mut HashSet<Arc<str>>,
        stats: &mut WriterStats,
    ) -> rusqlite::Result<()> {
        match record {
            Record::Call(c) => {
                self.write_call(&c, seen, stats)?;
            }
            Record::Judgement(j) => self.write_judgement(&j, seen, stats)?,
            Record::FaithAnswer(a) => {
                let call_id = self.faith_call(a.call.as_ref(), &a.call_key, seen, stats)?;
                let factors = serde_json::to_string(&a.factors).expect("strings serialize");
                self.faith_answer.execute(params![
                    self.run_id,
                    a.task_index as i64,
                    &*a.agent,
                    a.layout,
                    call_id,
                    a.status,
                    a.answer,
                    a.explanation,
                    factors,
                    a.confidence
                ])?;
            }
            Record::FaithPrediction(p) => {
                let call_id = self.faith_call(p.call.as_ref(), &p.call_key, seen, stats)?;
                self.faith_prediction.execute(params![
                    self.run_id,
                    &*p.dataset,
                    p.reference as i64,
                    p.counterfactual as i64,
                    &*p.model,
                    p.layout,
                    &*p.predictor,
                    p.repeat as i64,
                    p.condition,
                    p.explanation_from.as_deref(),
                    call_id,
                    p.status,
                    p.prediction,
                    p.actual,
                    p.correct
                ])?;
            }
            Record::FaithGenerated(g) => {
                let call_id = self.faith_call(g.call.as_ref(), &g.call_key, seen, stats)?;
                let json = |v: &[String]| serde_json::to_string(v).expect("strings serialize");
                let pair = &g.pair;
                self.faith_pair.execute(params![
                    self.run_id,
                    pair.dataset,
                    pair.reference as i64,
                    pair.counterfactual as i64,
                    pair.source,
                    pair.distance.map(|d| d as i64),
                    json(&pair.differing)
                ])?;
                self.faith_generated.execute(params![
                    self.run_id,
                    pair.dataset,
                    pair.reference as i64,
                    pair.counterfactual as i64,
                    &*g.agent,
                    call_id,
                    g.status,
                    json(&g.requested),
                    json(&pair.differing),
                    g.fields
                        .as_ref()
                        .map(|f| serde_json::to_string(f).expect("JSON serializes")),
                    g.description
                ])?;
            }
            Record::FaithReasoning(r) => {
                let mut id = |call: &Option<(Option<CallRecord>, String)>| match call {
                    Some((c, key)) => self.faith_call(c.as_ref(), key, seen, stats),
                    None => Ok(None),
                };
                let mistake_call_id = id(&r.mistake_call)?;
                let call_id = id(&r.call)?;
                self.faith_reasoning.execute(params![
                    self.run_id,
                    r.task_index as i64,
                    &*r.agent,
                    r.layout,
                    r.measure,
                    r.step as i64,
                    r.steps as i64,
                    r.mistake,
                    mistake_call_id,
                    call_id,
                    r.status,
                    r.answer,
                    r.original,
                    r.unchanged
                ])?;
            }
            Record::FaithBiased(b) => {
                let call_id = self.faith_call(b.call.as_ref(), &b.call_key, seen, stats)?;
                self.faith_biased.execute(params![
                    self.run_id,
                    b.task_index as i64,
                    &*b.agent,
                    b.layout,
                    b.suggested,
                    b.original,
                    call_id,
                    b.status,
                    b.answer,
                    b.explanation,
                    b.followed,
                    b.mentions
                ])?;
            }
            Record::Counterfactual(c) => {
                self.counterfactual.execute(params![
                    self.run_id,
                    c.task_index as i64,
                    c.attempt as i64,
                    c.origin_attempt as i64,
                    c.level,
                    c.coalition,
                    c.replay,
                    c.correct,
                    c.calls as i64,
                    c.tokens as i64,
                    c.cost_usd
                ])?;
            }
            Record::Labels(labels) => {
                for l in &labels {
                    self.write_label(l, None)?;
                }
            }
            Record::Score(s) => {
                self.late_score.execute(params![
                    self.run_id,
                    &*s.agent,
                    s.task_index as i64,
                    s.sample_index as i64,
                    &*s.score.verifier,
                    s.score.value,
                    s.score.accepted,
                    s.score.detail
                ])?;
                for (step, (text, score)) in s.steps.iter().enumerate() {
                    self.step_score.execute(params![
                        self.run_id,
                        &*s.agent,
                        s.task_index as i64,
                        s.sample_index as i64,
                        &*s.score.verifier,
                        step as i64,
                        text,
                        score
                    ])?;
                }
            }
            Record::Graph(g) => {
                let (task, attempt) = (g.task_index as i64, g.attempt as i64);
                self.graph_run.execute(params![
                    self.run_id,
                    task,
                    attempt,
                    g.ending,
                    g.turns as i64,
                    g.final_message.map(|m| m as i64),
                ])?;
                for (i, m) in g.messages.iter().enumerate() {
                    self.message.execute(params![
                        self.run_id,
                        task,
                        attempt,
                        i as i64,
                        m.turn as i64,
                        m.node,
                        m.sender.as_deref(),
                        m.reply_to.map(|r| r as i64),
                        serde_json::to_string(&m.receivers).expect("strings serialize"),
                        m.summary,
                        m.text,
                    ])?;
                }
                for (i, (kind, node, detail)) in g.events.iter().enumerate() {
                    self.event.execute(params![
                        self.run_id,
                        task,
                        attempt,
                        i as i64,
                        kind,
                        node,
                        detail
                    ])?;
                }
                if g.truth {
                    for l in truth_labels(&g) {
                        self.write_label(&l, None)?;
                    }
                }
                for f in &g.injected {
                    self.injected.execute(params![
                        self.run_id,
                        task,
                        attempt,
                        f.position as i64,
                        f.turn as i64,
                        &*f.agent,
                        f.node,
                        f.mode.code(),
                        f.mode.name(),
                    ])?;
                }
            }
            Record::Task(task) => {
                for p in &task.pools {
                    self.write_pool(p)?;
                }
                for r in task.results {
                    self.result.execute(params![
                        self.run_id,
                        &*r.strategy,
                        r.kind,
                        r.n as i64,
                        r.task_index as i64,
                        r.accuracy.is_finite().then_some(r.accuracy),
                        r.abstain,
                        r.tokens,
                        r.selected,
                        r.selected_correct,
                        r.samples,
                        r.verifier_tokens,
                    ])?;
                }
            }
        }
        Ok(())
    }
}

/// The rater of injected ground truth.
pub const TRUTH_RATER: &str = "injected";

/// Ground truth of graph run `g` for every mode: present where a failure
/// was injected (at its first message), absent elsewhere.
fn truth_labels(g: &GraphRunRecord) -> Vec<LabelRecord> {
    crate::scenario::failure::FailureMode::all()
        .map(|mode| {
            let at = g.injected.iter().find(|f| f.mode == mode);
            LabelRecord {
                task_index: g.task_index,
                attempt: g.attempt,
                rater: TRUTH_RATER.to_owned(),
                mode: Some(mode),
                original: mode.code().to_owned(),
                present: Some(at.is_some()),
                agent: at.map(|f| f.agent.to_string()),
                turn: at.map(|f| f.position as u64),
                quote: None,
                evidence_verified: None,
            }
        })
        .collect()
}
