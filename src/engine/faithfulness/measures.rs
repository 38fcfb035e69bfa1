//! The measures over an explained variant's reply to a reference case:
//! the biasing-feature test (the case again with another answer
//! suggested), early answering (an answer after the first k of its n
//! reasoning steps) and adding a mistake (step k rewritten with a mistake
//! by a writer agent, then the reasoning resumed). Each is stored with the
//! variant's original answer (`faith_biased`, `faith_reasoning`); the
//! formulas that score them are in `stats::reasoning`.
//!
//! Calls take the variant's sample index, as its answer did: their
//! prompts and views differ from it and from each other, so their cache
//! keys do, and a simulated explainer draws a biased reply as it drew the
//! plain one, up to the suggestion.

use super::{Answered, Experiment, Job, Replies, render, status};
use crate::engine::caller::{Reply, Stop};
use crate::model::explaining::{CaseView, Explaining};
use crate::scenario::explanation::{Reading, read_explanation};
use crate::scenario::faithfulness::FaithDataset;
use crate::scenario::reasoning::{self, mentions_suggestion, read_mistake};
use crate::scenario::template::Template;
use crate::store::{CallRole, FaithBiasedRecord, FaithReasoningRecord, Record};

/// The reference case a job is about, with every variant's replies to the
/// cases of its group and its reasoning on the reference cut into steps.
pub(super) struct Subject<'a> {
    pub set: &'a FaithDataset,
    pub reference: usize,
    pub replies: &'a Replies,
    pub steps: &'a [Vec<String>],
}

/// What an early answer or an answer after a mistake is.
struct Probe {
    variant: usize,
    measure: &'static str,
    step: usize,
    steps: usize,
}

impl Experiment {
    /// The measures' jobs for variant `v`, whose reply to the group's
    /// reference has a parsed answer.
    pub(super) fn measure_jobs(&self, v: usize, steps: usize) -> Vec<Job> {
        let m = &self.experiment().measures;
        let mut jobs = Vec::new();
        if m.biasing.is_some() {
            jobs.push(Job::Biased { variant: v });
        }
        if m.early_answering.is_some() {
            jobs.extend((0..steps).map(|step| Job::Early { variant: v, step }));
        }
        if m.adding_mistake.is_some() {
            jobs.extend((0..steps).map(|step| Job::Mistake { variant: v, step }));
        }
        jobs
    }

    /// Variant `v`'s reasoning on the group's reference cut into steps, at
    /// most as many as the measure that allows the most.
    pub(super) fn steps(&self, v: usize, replies: &Replies) -> Vec<String> {
        match (self.experiment().measures.max_steps(), &replies[v][0]) {
            (Some(most), Some(a)) => reasoning::steps(&a.shown, most),
            _ => Vec::new(),
        }
    }

    /// The variant's original answer on the group's reference.
    fn original(v: usize, replies: &Replies) -> usize {
        replies[v][0]
            .as_ref()
            .and_then(Answered::answer)
            .expect("measures run on parsed reference answers")
    }

    /// The biasing test: variant `v` answers `reference` again with the
    /// next answer of the answer set (after its own) suggested.
    pub(super) async fn biased(&self, at: &Subject<'_>, v: usize) -> Result<Option<String>, Stop> {
        let (set, reference, replies) = (at.set, at.reference, at.replies);
        let cues = &self
            .experiment()
            .measures
            .biasing
            .as_ref()
            .expect("biasing")
            .cues;
        let original = Self::original(v, replies);
        let suggested = (original + 1) % set.answers.len();
        let sent = self
            .ask_explained(set, v, reference, Some(&set.answers[suggested]))
            .await?;
        let read = read_explanation(&sent.text, &set.answers);
        let answer = parsed(&read.answer, &sent);
        // Where the reply has no explanation section, all of it explains.
        let explanation = read.explanation.as_deref().unwrap_or(&sent.text);
        let mentions = mentions_suggestion(explanation, cues);
        let (agent, layout) = self.variants[v];
        let record = FaithBiasedRecord {
            task_index: set.first_task + reference,
            agent: self.names[agent].clone(),
            layout: layout.as_str(),
            suggested: set.answers[suggested].clone(),
            original: set.answers[original].clone(),
            status: status(&read.answer, sent.error.as_deref()),
            answer: answer.map(|a| set.answers[a].clone()),
            explanation: read.explanation,
            followed: answer.map(|a| a == suggested),
            mentions: answer.map(|_| mentions),
            call: sent.record,
            call_key: sent.key,
        };
        self.caller
            .write(Record::FaithBiased(Box::new(record)))
            .await?;
        Ok(sent.error)
    }

    /// Early answering: variant `v` answers `reference` after the first
    /// `step` steps of its reasoning.
    pub(super) async fn early(
        &self,
        at: &Subject<'_>,
        v: usize,
        step: usize,
    ) -> Result<Option<String>, Stop> {
        let steps = &at.steps[v];
        let probe = Probe {
            variant: v,
            measure: "early_answering",
            step,
            steps: steps.len(),
        };
        let view = |case, answers| Explaining::Early {
            case,
            answers,
            shown: step,
            steps: steps.len(),
        };
        let reasoning = reasoning::prefix(steps, step);
        let early = &self.experiment().early;
        let sent = self
            .reasoned(at, v, (early, "early"), &reasoning, view)
            .await?;
        self.probed(at, &probe, None, Some(sent)).await
    }

    /// Adding a mistake: the writer rewrites step `step` of variant `v`'s
    /// reasoning on `reference` with a mistake; the variant resumes from it
    /// and answers.
    pub(super) async fn mistake(
        &self,
        at: &Subject<'_>,
        v: usize,
        step: usize,
    ) -> Result<Option<String>, Stop> {
        let (set, reference) = (at.set, at.reference);
        let f = self.experiment();
        let writer = f
            .measures
            .adding_mistake
            .as_ref()
            .expect("adding_mistake")
            .agent;
        let steps = &at.steps[v];
        let probe = Probe {
            variant: v,
            measure: "adding_mistake",
            step,
            steps: steps.len(),
        };
        let task = &self.scenario.tasks[set.first_task + reference];
        let (description, case) = self.described(set, reference);
        let before = reasoning::prefix(steps, step);
        let context = serde_json::json!({
            "question": set.question,
            "case": description,
            "reasoning": before,
            "step": steps[step],
        });
        let prompt = render(&f.mistake, &context, "mistake", &task.id)?;
        let view = Explaining::Mistake {
            case,
            step: steps[step].clone(),
        };
        let wrote = self
            .call((writer, v), task.index, &prompt, &view, |reply| {
                CallRole::Writer { reply }
            })
            .await?;
        let mistake = match &wrote.error {
            None => read_mistake(&wrote.text),
            Some(_) => None,
        };
        let Some(mistake) = mistake else {
            return self.probed(at, &probe, Some((wrote, None)), None).await;
        };
        let reasoning = [before.as_str(), mistake.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        let view = |case, answers| Explaining::Resume {
            case,
            answers,
            mistake_at: step,
            steps: steps.len(),
        };
        let sent = self
            .reasoned(at, v, (&f.resume, "resume"), &reasoning, view)
            .await?;
        self.probed(at, &probe, Some((wrote, Some(mistake))), Some(sent))
            .await
    }

    /// Variant `v` answers `reference` given `reasoning` (early answering,
    /// or resuming after a mistake), by `template`.
    async fn reasoned(
        &self,
        at: &Subject<'_>,
        v: usize,
        (template, what): (&Template, &str),
        reasoning: &str,
        view: impl FnOnce(CaseView, Vec<String>) -> Explaining,
    ) -> Result<Reply, Stop> {
        let set = at.set;
        let task = &self.scenario.tasks[set.first_task + at.reference];
        let (description, case) = self.described(set, at.reference);
        let context = serde_json::json!({
            "question": set.question,
            "case": description,
            "answers": set.answers,
            "reasoning": reasoning,
        });
        let prompt = render(template, &context, what, &task.id)?;
        let view = view(case, set.answers.clone());
        let (agent, _) = self.variants[v];
        self.call((agent, v), task.index, &prompt, &view, |reply| {
            CallRole::Explainer { reply }
        })
        .await
    }

    /// Store a probe: the mistake written (its call, and the step when one
    /// was read) and the answer's call, when it was asked. The error of the
    /// call that failed, if one did.
    async fn probed(
        &self,
        at: &Subject<'_>,
        probe: &Probe,
        wrote: Option<(Reply, Option<String>)>,
        sent: Option<Reply>,
    ) -> Result<Option<String>, Stop> {
        let set = at.set;
        let original = Self::original(probe.variant, at.replies);
        let read = sent
            .as_ref()
            .map(|s| read_explanation(&s.text, &set.answers).answer);
        let answer = match (&read, &sent) {
            (Some(r), Some(s)) => parsed(r, s),
            _ => None,
        };
        let error = wrote
            .as_ref()
            .and_then(|(w, _)| w.error.clone())
            .or_else(|| sent.as_ref().and_then(|s| s.error.clone()));
        let status = match (&error, &read) {
            (Some(e), _) => status(&Reading::Unparsed, Some(e)),
            (None, Some(r)) => status(r, None),
            (None, None) => "unparsed",
        };
        let (agent, layout) = self.variants[probe.variant];
        let (mistake_call, mistake) = match wrote {
            Some((w, m)) => (Some((w.record, w.key)), m),
            None => (None, None),
        };
        let record = FaithReasoningRecord {
            task_index: set.first_task + at.reference,
            agent: self.names[agent].clone(),
            layout: layout.as_str(),
            measure: probe.measure,
            step: probe.step,
            steps: probe.steps,
            mistake,
            mistake_call,
            call: sent.map(|s| (s.record, s.key)),
            status,
            answer: answer.map(|a| set.answers[a].clone()),
            original: set.answers[original].clone(),
            unchanged: answer.map(|a| a == original),
        };
        self.caller
            .write(Record::FaithReasoning(Box::new(record)))
            .await?;
        Ok(error)
    }
}

/// The answer read from a reply, when exactly one was and the call did
/// not fail.
fn parsed(reading: &Reading, sent: &Reply) -> Option<usize> {
    match (reading, &sent.error) {
        (Reading::Answer(a), None) => Some(*a),
        _ => None,
    }
}
