//! Reads for replay and resume: a run's recorded responses by cache key, and
//! the outcomes of the tasks it finished.

use super::{Result, Store};

impl Store {
    /// Successful recorded calls by cache key, as provider responses: of one
    /// run, or of every run when `run_id` is `None`.
    pub fn recorded_responses(
        &self,
        run_id: Option<i64>,
    ) -> Result<std::collections::HashMap<String, crate::model::provider::CallResponse>> {
        // A call's completions are its samples, or a judge's reply.
        const COMPLETIONS: [&str; 2] = [
            "SELECT c.id, c.cache_key, c.input_tokens, c.latency_ms, c.request, rb.text,
                s.text, s.output_tokens
             FROM calls c
             JOIN samples s ON s.call_id = c.id
             LEFT JOIN blobs rb ON rb.hash = c.response_hash
             WHERE c.status = 'ok' AND c.cache_key IS NOT NULL AND (?1 IS NULL OR c.run_id = ?1)
             ORDER BY c.id, s.sample_index",
            "SELECT c.id, c.cache_key, c.input_tokens, c.latency_ms, c.request, rb.text,
                r.text, c.output_tokens
             FROM calls c
             JOIN replies r ON r.call_id = c.id
             LEFT JOIN blobs rb ON rb.hash = c.response_hash
             WHERE c.status = 'ok' AND c.cache_key IS NOT NULL AND (?1 IS NULL OR c.run_id = ?1)
             ORDER BY c.id",
        ];
        let mut out: std::collections::HashMap<String, crate::model::provider::CallResponse> =
            std::collections::HashMap::new();
        for sql in COMPLETIONS {
            let mut st = self.conn.prepare(sql).map_err(self.err())?;
            let mut rows = st.query([run_id]).map_err(self.err())?;
            // The call being read, and whether it is the first with its key.
            let mut current: Option<(i64, String, bool)> = None;
            while let Some(r) = rows.next().map_err(self.err())? {
                let call_id: i64 = r.get(0).map_err(self.err())?;
                if current.as_ref().is_none_or(|c| c.0 != call_id) {
                    let key: String = r.get(1).map_err(self.err())?;
                    let first = !out.contains_key(&key);
                    if first {
                        let head = || -> rusqlite::Result<crate::model::provider::CallResponse> {
                            Ok(crate::model::provider::CallResponse {
                                completions: Vec::new(),
                                input_tokens: r.get::<_, i64>(2)? as u64,
                                latency_ms: r.get(3)?,
                                request: Some(r.get(4)?),
                                raw: r.get(5)?,
                                attempts: Vec::new(),
                            })
                        };
                        out.insert(key.clone(), head().map_err(self.err())?);
                    }
                    current = Some((call_id, key, first));
                }
                let Some((_, key, true)) = &current else {
                    continue;
                };
                let completion = crate::model::provider::Completion {
                    text: r.get(6).map_err(self.err())?,
                    output_tokens: r.get::<_, i64>(7).map_err(self.err())? as u64,
                };
                if let Some(resp) = out.get_mut(key) {
                    resp.completions.push(completion);
                }
            }
        }
        Ok(out)
    }

    /// Strategy outcomes of the tasks of `run_id` that finished, in the order
    /// the executor produces them (strategies, then their `n`); `None` for a
    /// task that did not finish.
    pub fn finished_tasks(
        &self,
        run_id: i64,
        scenario: &crate::scenario::Scenario,
    ) -> Result<Vec<Option<Vec<crate::stats::strategy::TaskOutcome>>>> {
        let slots: Vec<(usize, usize)> = scenario
            .strategies
            .iter()
            .enumerate()
            .flat_map(|(si, s)| s.ns.iter().map(move |&n| (si, n)))
            .collect();
        let mut found: Vec<Vec<Option<crate::stats::strategy::TaskOutcome>>> =
            vec![vec![None; slots.len()]; scenario.tasks.len()];
        let mut st = self
            .conn
            .prepare(
                "SELECT strategy, n, task_index, accuracy, abstain, tokens, selected, selected_correct,
                    coalesce(samples, n), coalesce(verifier_tokens, 0)
                 FROM task_results WHERE run_id = ?1",
            )
            .map_err(self.err())?;
        let mut rows = st.query([run_id]).map_err(self.err())?;
        while let Some(r) = rows.next().map_err(self.err())? {
            let read = || -> rusqlite::Result<_> {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)? as usize,
                    r.get::<_, i64>(2)? as usize,
                    r.get::<_, Option<f64>>(3)?.unwrap_or(f64::NAN),
                    r.get::<_, f64>(4)?,
                    r.get::<_, f64>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, bool>(7)?,
                    r.get::<_, f64>(8)?,
                    r.get::<_, f64>(9)?,
                ))
            };
            let (
                name,
                n,
                task,
                accuracy,
                abstain,
                tokens,
                selected,
                selected_correct,
                samples,
                verifier_tokens,
            ) = read().map_err(self.err())?;
            let Some(si) = scenario.strategies.iter().position(|s| s.name == name) else {
                continue;
            };
            let Some(slot) = slots.iter().position(|&(i, m)| i == si && m == n) else {
                continue;
            };
            if let Some(row) = found.get_mut(task) {
                row[slot] = Some(crate::stats::strategy::TaskOutcome {
                    strategy: si,
                    n,
                    accuracy,
                    abstain,
                    tokens,
                    verifier_tokens,
                    samples,
                    selected,
                    selected_correct,
                });
            }
        }
        Ok(found
            .into_iter()
            .map(|row| row.into_iter().collect::<Option<Vec<_>>>())
            .collect())
    }
}
