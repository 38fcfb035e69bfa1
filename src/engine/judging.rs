//! Failure judging: a judge file applied to traces by one or more models,
//! every call made through the [`Caller`] (budget, cache key, retries,
//! trace, replay) and every reading stored with its labels.
//!
//! Inline, the executor judges each graph run as it finishes; post hoc,
//! [`judge_traces`] judges a stored or imported run's traces. Both go
//! through [`judge_trace`], so a judgement is the same either way.
//!
//! Raters are named after the judge and model: `mast:MODEL#2` is the second
//! repeat, `mast:MODEL` the majority of the repeats (or the one reading,
//! when the judge judges once), and `mast` the majority of the models'
//! majorities when several models judge (an ensemble).

use futures_util::StreamExt;

use crate::engine::caller::{Caller, Stop};
use crate::judge::evidence::quoted_in;
use crate::judge::prompt::{self, Prompt};
use crate::judge::reply::{self, Reading, ReplyFormat};
use crate::model::judged::{InjectedFailure, TraceView, TracedMessage};
use crate::model::provider::{CallRequest, Turn};
use crate::scenario::Task;
use crate::scenario::failure::FailureMode;
use crate::scenario::judge_file::JudgeUse;
use crate::store::{CallRole, JudgementRecord, LabelRecord, MessageRecord, Record};

/// One trace to judge: a graph run (`attempt`) of `task`.
pub struct Subject<'a> {
    pub task: &'a Task,
    pub attempt: usize,
    pub view: TraceView,
}

impl<'a> Subject<'a> {
    /// Graph run `attempt` of `task` with its `messages` (in order) and the
    /// failures injected into them (mode, message position, agent).
    pub fn new(
        task: &'a Task,
        attempt: usize,
        messages: &[MessageRecord],
        injected: impl Iterator<Item = (FailureMode, usize, String)>,
    ) -> Self {
        let view = TraceView {
            task: task_text(task),
            messages: messages
                .iter()
                .enumerate()
                .map(|(position, m)| TracedMessage {
                    position,
                    sender: m.sender.as_deref().map(str::to_owned),
                    text: m.text.clone(),
                })
                .collect(),
            injected: injected
                .map(|(mode, position, agent)| InjectedFailure {
                    mode,
                    position,
                    agent,
                })
                .collect(),
            modes: Vec::new(),
            question: None,
            culprit: None,
        };
        Subject {
            task,
            attempt,
            view,
        }
    }
}

/// The task as a judge is told it: an imported trace's `task`, else the
/// item's fields, one `name: value` line each.
fn task_text(task: &Task) -> String {
    if let Some(serde_json::Value::String(t)) = task.inputs.get("task") {
        return t.clone();
    }
    task.inputs
        .iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(s) => Some(format!("{k}: {s}")),
            serde_json::Value::Number(n) => Some(format!("{k}: {n}")),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What judging traces came to.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub traces: usize,
    pub judgements: usize,
    /// Replies with no readable verdict, after any re-ask.
    pub unparsed: usize,
    /// Judge calls that failed after their retries: no judgement.
    pub errors: usize,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.traces += other.traces;
        self.judgements += other.judgements;
        self.unparsed += other.unparsed;
        self.errors += other.errors;
    }
}

/// What a judge is told when its reply could not be read.
fn reask_feedback(why: &str) -> String {
    format!(
        "Your reply could not be read: {why}. Reply again with only the JSON object described above, one entry per listed mode."
    )
}

/// Repeats a judge may make of one trace: a judgement's call asks for
/// sample `attempt × REPEAT_STRIDE + repeat`, so its cache key does not
/// change when the number of repeats does.
pub const REPEAT_STRIDE: usize = crate::scenario::validator::MAX_REPEATS;

/// The rater of repeat `repeat` of `repeats` of `model` running `judge`: a
/// judge that judges once is its model's rater itself.
pub fn repeat_rater(judge: &str, model: &str, (repeat, repeats): (usize, usize)) -> String {
    if repeats == 1 {
        model_rater(judge, model)
    } else {
        format!("{judge}:{model}#{}", repeat + 1)
    }
}

/// The rater of `model`'s majority over its repeats.
pub fn model_rater(judge: &str, model: &str) -> String {
    format!("{judge}:{model}")
}

/// Judge every subject with every judge, `concurrency` traces at a time;
/// stops at the first stop (budget, Ctrl-C, a fatal error), keeping what
/// was judged before it.
pub async fn judge_traces(
    caller: &Caller,
    judges: &[JudgeUse],
    subjects: Vec<Subject<'_>>,
    concurrency: usize,
) -> (Tally, Option<Stop>) {
    let jobs = subjects
        .iter()
        .flat_map(|s| judges.iter().map(move |j| (j, s)))
        .map(|(j, s)| judge_trace(caller, j, s));
    let mut results = futures_util::stream::iter(jobs).buffer_unordered(concurrency.max(1));
    let mut tally = Tally::default();
    let mut stop = None;
    while let Some(r) = results.next().await {
        match r {
            Ok(t) => tally.add(t),
            Err(s) => {
                stop.get_or_insert(s);
            }
        }
    }
    (tally, stop)
}

/// Judge `subject` with `judge`: every model, every repeat; write the
/// judgements and the majority labels.
pub async fn judge_trace(
    caller: &Caller,
    judge: &JudgeUse,
    subject: &Subject<'_>,
) -> Result<Tally, Stop> {
    let file = &judge.file;
    let mut view = subject.view.clone();
    view.modes = file.modes.iter().map(|m| m.mode).collect();
    let prompt = prompt::render(file, &view, judge.max_trace_tokens).map_err(|e| {
        caller.fail(format!(
            "judge `{}` ({}): prompt template failed on task \"{}\": {e}",
            file.name,
            file.path.display(),
            subject.task.id
        ))
    })?;
    let asks = judge
        .models
        .iter()
        .flat_map(|&m| (0..judge.repeats).map(move |r| (m, r)))
        .map(|(m, r)| ask(caller, judge, subject, &view, &prompt, (m, r)));
    let asked = futures_util::future::join_all(asks).await;
    let mut tally = Tally {
        traces: 1,
        ..Tally::default()
    };
    let mut stop = None;
    // Per model, each repeat's present/absent per mode (None: errored).
    let mut by_model: Vec<Vec<Option<Vec<Option<bool>>>>> = vec![Vec::new(); judge.models.len()];
    let mut firsts: Vec<Vec<LabelRecord>> = vec![Vec::new(); judge.models.len()];
    for (i, a) in asked.into_iter().enumerate() {
        let (record, fatal) = match a {
            Ok(x) => x,
            Err(s) => {
                stop.get_or_insert(s);
                continue;
            }
        };
        let model = i / judge.repeats;
        match record.status {
            "error" => tally.errors += 1,
            "unparsed" => tally.unparsed += 1,
            _ => {}
        }
        tally.judgements += usize::from(record.status != "error");
        by_model[model].push(
            (record.status != "error").then(|| record.labels.iter().map(|l| l.present).collect()),
        );
        if firsts[model].is_empty() && record.status == "parsed" {
            firsts[model] = record.labels.clone();
        }
        caller.write(Record::Judgement(Box::new(record))).await?;
        if let Some(why) = fatal {
            stop.get_or_insert(caller.fail(why));
        }
    }
    if let Some(s) = stop {
        return Err(s);
    }
    let mut labels = Vec::new();
    let mut model_votes: Vec<Vec<Option<bool>>> = Vec::new();
    for (k, &m) in judge.models.iter().enumerate() {
        let repeats: Vec<&Vec<Option<bool>>> = by_model[k].iter().flatten().collect();
        if repeats.is_empty() {
            continue;
        }
        let votes: Vec<Option<bool>> = (0..view.modes.len())
            .map(|i| majority(repeats.iter().map(|r| r[i])))
            .collect();
        // One reading is its own majority, already stored as the model's.
        if judge.repeats > 1 {
            let rater = model_rater(&file.name, &caller.models[m].name);
            labels.extend(majority_labels(subject, &view, &rater, &votes, &firsts[k]));
        }
        model_votes.push(votes);
    }
    if judge.models.len() > 1 && !model_votes.is_empty() {
        let votes: Vec<Option<bool>> = (0..view.modes.len())
            .map(|i| majority(model_votes.iter().map(|v| v[i])))
            .collect();
        let evidence = firsts
            .iter()
            .find(|f| !f.is_empty())
            .cloned()
            .unwrap_or_default();
        labels.extend(majority_labels(
            subject, &view, &file.name, &votes, &evidence,
        ));
    }
    caller.write(Record::Labels(labels)).await?;
    Ok(tally)
}

/// The majority of the known votes; `None` on a tie or with none known.
pub fn majority(votes: impl Iterator<Item = Option<bool>>) -> Option<bool> {
    let (mut yes, mut no) = (0, 0);
    for v in votes.flatten() {
        if v {
            yes += 1;
        } else {
            no += 1;
        }
    }
    match yes.cmp(&no) {
        std::cmp::Ordering::Greater => Some(true),
        std::cmp::Ordering::Less => Some(false),
        std::cmp::Ordering::Equal => None,
    }
}

/// Labels of `rater` for `votes` (one per mode of `view`); a present one
/// with the evidence `evidence` (the first readable repeat's) gives for it,
/// when that repeat found it present too.
fn majority_labels(
    subject: &Subject<'_>,
    view: &TraceView,
    rater: &str,
    votes: &[Option<bool>],
    evidence: &[LabelRecord],
) -> Vec<LabelRecord> {
    view.modes
        .iter()
        .zip(votes)
        .map(|(&mode, &present)| {
            let cited = evidence
                .iter()
                .find(|l| l.mode == Some(mode) && present == Some(true) && l.present == Some(true));
            LabelRecord {
                task_index: subject.task.index,
                attempt: subject.attempt,
                rater: rater.to_owned(),
                mode: Some(mode),
                original: mode.code().to_owned(),
                present,
                agent: cited.and_then(|l| l.agent.clone()),
                turn: cited.and_then(|l| l.turn),
                quote: cited.and_then(|l| l.quote.clone()),
                evidence_verified: cited.and_then(|l| l.evidence_verified),
            }
        })
        .collect()
}

/// One judgement: repeat `repeat` of model `model` on `subject`, re-asked
/// once with the parse error when its reply cannot be read (if the judge
/// says so). Returns the judgement and, when its call failed in a way that
/// must stop the run, why.
async fn ask(
    caller: &Caller,
    judge: &JudgeUse,
    subject: &Subject<'_>,
    view: &TraceView,
    prompt: &Prompt,
    (model, repeat): (usize, usize),
) -> Result<(JudgementRecord, Option<String>), Stop> {
    let file = &judge.file;
    let first_sample = subject.attempt * REPEAT_STRIDE + repeat;
    let mut history: Vec<Turn> = Vec::new();
    let mut calls = Vec::new();
    loop {
        let req = CallRequest {
            agent: &file.name,
            task: subject.task,
            system: &prompt.system,
            prompt: &prompt.user,
            history: &history,
            first_sample,
            n: 1,
            scene: None,
            trace: Some(view),
            explaining: None,
        };
        let sent = caller
            .reply(model, req, |reply| CallRole::Judge { reply })
            .await?;
        let (key, reply, error, fatal) = (sent.key, sent.text, sent.error, sent.fatal);
        calls.extend(sent.record);
        let reading = match error {
            Some(e) => Err(("error", e)),
            None => reply::read(&reply).map_err(|why| ("unparsed", why)),
        };
        if let Err(("unparsed", why)) = &reading
            && judge.reask
            && history.is_empty()
        {
            history.push(Turn {
                reply,
                feedback: reask_feedback(why),
            });
            continue;
        }
        let record = judgement(subject, view, (model, repeat), caller, judge, reading);
        return Ok((
            JudgementRecord {
                calls,
                read_key: key,
                reasked: !history.is_empty(),
                cut: prompt.cut,
                ..record
            },
            fatal,
        ));
    }
}

/// The judgement record of a reading (or of why there is none), with one
/// label per mode: unknown where the reply gave no verdict.
fn judgement(
    subject: &Subject<'_>,
    view: &TraceView,
    (model, repeat): (usize, usize),
    caller: &Caller,
    judge: &JudgeUse,
    reading: Result<Reading, (&'static str, String)>,
) -> JudgementRecord {
    let file = &judge.file;
    let model_name = caller.models[model].name.clone();
    let rater = repeat_rater(&file.name, &model_name, (repeat, judge.repeats));
    let label = |mode: FailureMode, verdict: Option<&reply::ModeVerdict>| {
        let evidence = verdict.map(|v| &v.evidence);
        let turn = evidence.and_then(|e| e.turn);
        let quote = evidence.and_then(|e| e.quote.clone());
        let cited = turn.and_then(|t| view.messages.iter().find(|m| m.position as u64 == t));
        LabelRecord {
            task_index: subject.task.index,
            attempt: subject.attempt,
            rater: rater.clone(),
            mode: Some(mode),
            original: mode.code().to_owned(),
            present: verdict.and_then(|v| v.present),
            agent: evidence.and_then(|e| e.agent.clone()),
            turn,
            evidence_verified: quote
                .as_deref()
                .map(|q| cited.is_some_and(|m| quoted_in(q, &m.text))),
            quote,
        }
    };
    let base = JudgementRecord {
        task_index: subject.task.index,
        attempt: subject.attempt,
        judge: file.name.as_str().into(),
        judge_version: file.version.as_str().into(),
        judge_hash: file.hash.as_str().into(),
        model: model_name.clone(),
        repeat,
        calls: Vec::new(),
        read_key: String::new(),
        reasked: false,
        status: "parsed",
        format: None,
        error: None,
        summary: None,
        task_completed: None,
        notes: Vec::new(),
        cut: (0, 0),
        labels: Vec::new(),
    };
    match reading {
        Ok(r) => JudgementRecord {
            format: Some(match r.format {
                ReplyFormat::Json => "json",
                ReplyFormat::TruncatedJson => "truncated_json",
                ReplyFormat::Lines => "lines",
            }),
            summary: r.summary.clone(),
            task_completed: r.task_completed,
            notes: r.notes.clone(),
            labels: view
                .modes
                .iter()
                .map(|&m| label(m, r.modes.iter().find(|(x, _)| *x == m).map(|(_, v)| v)))
                .collect(),
            ..base
        },
        Err(("error", e)) => JudgementRecord {
            status: "error",
            error: Some(e),
            ..base
        },
        Err((_, why)) => JudgementRecord {
            status: "unparsed",
            error: Some(why),
            labels: view.modes.iter().map(|&m| label(m, None)).collect(),
            ..base
        },
    }
}
