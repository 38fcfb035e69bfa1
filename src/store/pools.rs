//! Reads for `crucible analyze`: stored pools, samples in pool order, and
//! scores, streamed a row at a time.

use super::{ABSTAINED, PoolRecord, Result, Store};

/// One stored sample, as analysis reads it.
pub struct PoolSampleRow<'a> {
    pub sample_id: i64,
    pub agent: &'a str,
    pub task_index: usize,
    /// The normalized answer; `None` for an abstention.
    pub normalized: Option<&'a str>,
    pub correct: Option<bool>,
    /// Output tokens, plus the request's input tokens on its first sample.
    pub tokens: u64,
    /// Whether its call failed: an error, not an answer or an abstention.
    pub errored: bool,
}

impl Store {
    /// Every pool sample of `run_id` (self-correction rounds are not pool
    /// samples) as analysis reads it, in (agent, task, sample) order, so that
    /// each pool arrives in one piece.
    pub fn for_each_pool_sample(
        &self,
        run_id: i64,
        mut f: impl FnMut(PoolSampleRow<'_>),
    ) -> Result<()> {
        let mut st = self
            .conn
            .prepare(
                "SELECT id, agent, task_index, normalized, correct, input_tokens + output_tokens,
                    error IS NOT NULL
                 FROM samples WHERE run_id = ?1 AND round IS NULL
                 ORDER BY agent, task_index, sample_index",
            )
            .map_err(self.err())?;
        let mut rows = st.query([run_id]).map_err(self.err())?;
        while let Some(r) = rows.next().map_err(self.err())? {
            let row = (|| -> rusqlite::Result<PoolSampleRow<'_>> {
                Ok(PoolSampleRow {
                    sample_id: r.get(0)?,
                    agent: r.get_ref(1)?.as_str()?,
                    task_index: r.get::<_, i64>(2)? as usize,
                    normalized: r.get_ref(3)?.as_str_or_null()?,
                    correct: r.get::<_, Option<i64>>(4)?.map(|c| c != 0),
                    tokens: r.get::<_, i64>(5)? as u64,
                    errored: r.get(6)?,
                })
            })()
            .map_err(self.err())?;
            f(row);
        }
        Ok(())
    }

    /// Whether `run_id` has self-correction rounds.
    pub fn has_rounds(&self, run_id: i64) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM samples WHERE run_id = ?1 AND strategy IS NOT NULL)",
                [run_id],
                |r| r.get(0),
            )
            .map_err(self.err())
    }

    /// Every self-correction round of strategy `strategy` in `run_id`, in
    /// (task, round) order: the task's index, the agent that answered,
    /// whether it was right (`None`: no expected answer) and the tokens of
    /// its call.
    pub fn for_each_round(
        &self,
        run_id: i64,
        strategy: &str,
        mut f: impl FnMut(usize, &str, Option<bool>, u64),
    ) -> Result<()> {
        let mut st = self
            .conn
            .prepare(
                "SELECT task_index, agent, correct, input_tokens + output_tokens FROM samples
                 WHERE run_id = ?1 AND strategy = ?2
                 ORDER BY task_index, sample_index",
            )
            .map_err(self.err())?;
        let mut rows = st
            .query(rusqlite::params![run_id, strategy])
            .map_err(self.err())?;
        while let Some(r) = rows.next().map_err(self.err())? {
            let row = (|| -> rusqlite::Result<(i64, &str, Option<i64>, i64)> {
                Ok((r.get(0)?, r.get_ref(1)?.as_str()?, r.get(2)?, r.get(3)?))
            })()
            .map_err(self.err())?;
            f(row.0 as usize, row.1, row.2.map(|c| c != 0), row.3 as u64);
        }
        Ok(())
    }

    /// How many of `run_id`'s tasks have a stored pool row (every finished
    /// task of a run written at schema 7 or later).
    pub fn tasks_with_pools(&self, run_id: i64) -> Result<usize> {
        self.conn
            .query_row(
                "SELECT count(DISTINCT task_index) FROM pools WHERE run_id = ?1",
                [run_id],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as usize)
            .map_err(self.err())
    }

    /// Every stored pool row of `run_id`, in (agent, task) order.
    pub fn for_each_pool(&self, run_id: i64, mut f: impl FnMut(PoolRecord)) -> Result<()> {
        let mut st = self
            .conn
            .prepare(
                "SELECT agent, task_index, answers, verifiers, classes, correct, tokens, scores,
                    verifier_tokens
                 FROM pools WHERE run_id = ?1 ORDER BY agent, task_index",
            )
            .map_err(self.err())?;
        let mut rows = st.query([run_id]).map_err(self.err())?;
        while let Some(r) = rows.next().map_err(self.err())? {
            let pool = (|| -> rusqlite::Result<PoolRecord> {
                let json = |i: usize| -> rusqlite::Result<Vec<String>> {
                    serde_json::from_str(r.get_ref(i)?.as_str()?).map_err(|e| {
                        rusqlite::Error::FromSqlConversionFailure(
                            i,
                            rusqlite::types::Type::Text,
                            e.into(),
                        )
                    })
                };
                let blob = |i: usize| -> rusqlite::Result<&[u8]> { Ok(r.get_ref(i)?.as_blob()?) };
                let classes = blob(4)?.chunks_exact(4).map(|b| {
                    let c = u32::from_le_bytes(b.try_into().expect("4 bytes"));
                    (c != ABSTAINED).then_some(c)
                });
                let correct = blob(5)?.iter().map(|&c| c != 0);
                let tokens = blob(6)?
                    .chunks_exact(8)
                    .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
                let samples: Vec<(Option<u32>, bool, u64)> = classes
                    .zip(correct)
                    .zip(tokens)
                    .map(|((class, correct), tokens)| (class, correct, tokens))
                    .collect();
                let verifiers = json(3)?;
                let mut scores = blob(7)?
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")));
                let scores: Vec<(String, Vec<f64>)> = verifiers
                    .into_iter()
                    .map(|v| (v, scores.by_ref().take(samples.len()).collect()))
                    .collect();
                let verifier_tokens = match r.get_ref(8)?.as_blob_or_null()? {
                    Some(b) => {
                        let mut t = b
                            .chunks_exact(8)
                            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
                        scores
                            .iter()
                            .map(|_| t.by_ref().take(samples.len()).collect())
                            .collect()
                    }
                    None => Vec::new(),
                };
                Ok(PoolRecord {
                    agent: r.get_ref(0)?.as_str()?.into(),
                    task_index: r.get::<_, i64>(1)? as usize,
                    answers: json(2)?,
                    samples,
                    scores,
                    verifier_tokens,
                })
            })()
            .map_err(self.err())?;
            f(pool);
        }
        Ok(())
    }

    /// Mean tokens each verifier's model spent per pool sample it judged,
    /// by (judged agent, verifier): what a verifier adds to a sample's cost.
    pub fn verifier_tokens_per_sample(&self, run_id: i64) -> Result<Vec<(String, String, f64)>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT c.subject, c.agent, avg(c.input_tokens + c.output_tokens)
                 FROM calls c JOIN samples s ON s.run_id = c.run_id AND s.agent = c.subject
                   AND s.task_index = c.task_index AND s.sample_index = c.first_sample
                 WHERE c.run_id = ?1 AND c.role = 'verifier' AND s.round IS NULL
                 GROUP BY c.subject, c.agent",
            )
            .map_err(self.err())?;
        st.query_map([run_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .and_then(|rows| rows.collect())
            .map_err(self.err())
    }

    /// The smallest and largest sample id of `run_id` (`None`: no samples).
    pub fn sample_id_range(&self, run_id: i64) -> Result<Option<std::ops::RangeInclusive<i64>>> {
        let (lo, hi): (Option<i64>, Option<i64>) = self
            .conn
            .query_row(
                "SELECT min(id), max(id) FROM samples WHERE run_id = ?1",
                [run_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(self.err())?;
        Ok(lo.zip(hi).map(|(lo, hi)| lo..=hi))
    }

    /// Every verifier score of the samples with ids in `ids` (inclusive), in
    /// sample-id order: `(sample id, verifier, score)`, the score `None` where
    /// the verifier could not score. Scores of other runs' samples in that
    /// range are passed too; the caller knows its ids.
    pub fn for_each_score(
        &self,
        ids: std::ops::RangeInclusive<i64>,
        mut f: impl FnMut(i64, &str, Option<f64>),
    ) -> Result<()> {
        let mut st = self
            .conn
            .prepare(
                "SELECT sample_id, verifier, score FROM scores
                 WHERE sample_id BETWEEN ?1 AND ?2 ORDER BY sample_id",
            )
            .map_err(self.err())?;
        let mut rows = st.query([ids.start(), ids.end()]).map_err(self.err())?;
        while let Some(r) = rows.next().map_err(self.err())? {
            let (id, verifier, score) = (|| -> rusqlite::Result<(i64, &str, Option<f64>)> {
                Ok((r.get(0)?, r.get_ref(1)?.as_str()?, r.get(2)?))
            })()
            .map_err(self.err())?;
            f(id, verifier, score);
        }
        Ok(())
    }
}
