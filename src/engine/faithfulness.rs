//! A faithfulness experiment's calls: each explained variant (agent ×
//! layout) answers and explains every case once; then, per reference case,
//! every predictor guesses the variant's answer on each counterfactual with
//! its explanation, without, and with another variant's (`external`), as
//! often as `repeats` says. A generated data set's counterfactuals are
//! written (and checked) first, per reference; the measures over the
//! reasoning (`measures`: early answering, adding a mistake, a suggested
//! answer) run per reference on each variant's reply to it.
//!
//! Every call goes through [`Caller::send`] (budget, cache key, retries,
//! trace, replay) and is stored with what was read from it
//! (`faith_answers`, `faith_predictions`). Nothing depends on scheduling:
//! a call's sample index says which variant, condition, predictor and
//! repeat it is (positions in the section's lists), so
//! its cache key is the same at any concurrency, and a case's answer is
//! asked once and shared by every reference that needs it. A resumed run
//! walks everything again: calls already in its trace are read back, not
//! made, and the rows read from them are written again in place.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt;
use tokio::sync::OnceCell;

use crate::engine::caller::{Caller, Reply, Stop};
use crate::engine::executor::{Status, schedule};
use crate::model::explaining::{CaseView, Explaining};
use crate::model::provider::CallRequest;
use crate::scenario::Scenario;
use crate::scenario::explanation::{Reading, read_explanation, read_prediction};
use crate::scenario::faithfulness::{
    Condition, FaithDataset, Faithfulness, Layout, REPEAT_STRIDE, feature_lines, shown,
};
use crate::scenario::generation::{Verdict, read_written};
use crate::store::{
    CallRole, FaithAnswerRecord, FaithGeneratedRecord, FaithPairRecord, FaithPredictionRecord,
    Record,
};

mod measures;

use measures::Subject;

/// The counterfactual pairs of `scenario`'s experiment, as stored with the run.
pub fn faith_pairs(scenario: &Scenario) -> Vec<FaithPairRecord> {
    let Some(f) = &scenario.faithfulness else {
        return Vec::new();
    };
    f.datasets
        .iter()
        .flat_map(|d| {
            let c = &d.counterfactuals;
            c.groups.iter().flat_map(move |g| {
                g.members.iter().map(move |m| FaithPairRecord {
                    dataset: d.name.clone(),
                    reference: d.first_task + g.reference,
                    counterfactual: d.first_task + m.case,
                    source: d.source.as_str(),
                    distance: Some(m.distance),
                    differing: m.differing.clone(),
                })
            })
        })
        .collect()
}

/// What an explained variant's reply to a case said.
#[derive(Debug, Clone)]
struct Answered {
    reading: Reading,
    explanation: Option<String>,
    /// What a predictor is shown as the explanation: its section, or the
    /// whole reply when it has none (small models often write no sections).
    shown: String,
    factors: Vec<String>,
    /// Why the call failed, when it did.
    error: Option<String>,
}

impl Answered {
    /// The answer, when exactly one was read.
    fn answer(&self) -> Option<usize> {
        match self.reading {
            Reading::Answer(a) if self.error.is_none() => Some(a),
            _ => None,
        }
    }
}

/// A generated counterfactual as written, when it checked out.
#[derive(Debug, Clone)]
struct Written {
    description: String,
    values: Vec<f64>,
}

/// A variant's replies to the cases of one group (reference first;
/// `None`: not asked, as a counterfactual that was not written).
type Replies = Vec<Vec<Option<Answered>>>;

/// A call (or two) to make for a reference, once its answers are in.
enum Job {
    Predict(Ask),
    /// The reference again, with another answer suggested.
    Biased {
        variant: usize,
    },
    /// The answer after the first `step` reasoning steps.
    Early {
        variant: usize,
        step: usize,
    },
    /// Step `step` rewritten with a mistake, then the reasoning resumed.
    Mistake {
        variant: usize,
        step: usize,
    },
}

/// One prediction to make.
struct Ask {
    dataset: usize,
    variant: usize,
    reference: usize,
    counterfactual: usize,
    predictor: usize,
    repeat: usize,
    condition: Condition,
    /// The variant whose explanation is shown (`None`: no explanation).
    explainer: Option<usize>,
    reference_answer: usize,
    actual: usize,
}

/// A faithfulness experiment being run.
pub struct Experiment {
    scenario: Arc<Scenario>,
    caller: Caller,
    variants: Vec<(usize, Layout)>,
    /// Per variant and task, the variant's reply, asked once.
    answers: Vec<OnceCell<Answered>>,
    /// Per task, a generated counterfactual as written, when it is one and
    /// it checked out.
    written: Vec<OnceCell<Option<Written>>>,
    names: Vec<Arc<str>>,
}

impl Experiment {
    pub fn new(scenario: Arc<Scenario>, caller: Caller) -> Experiment {
        let f = scenario
            .faithfulness
            .as_ref()
            .expect("a faithfulness scenario");
        let variants = f.variants();
        let answers = (0..variants.len() * scenario.tasks.len())
            .map(|_| OnceCell::new())
            .collect();
        let written = (0..scenario.tasks.len()).map(|_| OnceCell::new()).collect();
        let names = scenario
            .agents
            .iter()
            .map(|a| a.name.as_str().into())
            .collect();
        Experiment {
            scenario,
            caller,
            variants,
            answers,
            written,
            names,
        }
    }

    /// The experiment's section.
    fn experiment(&self) -> &Faithfulness {
        self.scenario
            .faithfulness
            .as_ref()
            .expect("a faithfulness scenario")
    }

    /// Every reference case's calls, `concurrency` calls at a time.
    pub async fn run(self, concurrency: usize, cancel: &AtomicBool) -> (Status, Option<String>) {
        let sc = self.scenario.clone();
        let f = sc.faithfulness.as_ref().expect("a faithfulness scenario");
        let groups: Vec<(usize, usize)> = f
            .datasets
            .iter()
            .enumerate()
            .flat_map(|(d, set)| (0..set.counterfactuals.groups.len()).map(move |g| (d, g)))
            .collect();
        let this = Arc::new(self);
        schedule(
            &sc,
            (0..groups.len()).collect(),
            concurrency.max(2),
            cancel,
            |i| {
                let this = this.clone();
                let (d, g) = groups[i];
                async move { (i, this.reference(d, g, concurrency).await) }
            },
            |_, ()| {},
        )
        .await
    }

    /// Group `g` of data set `d`: its counterfactuals written (when
    /// generated), the answers it needs, then its predictions and measures.
    async fn reference(&self, d: usize, g: usize, concurrency: usize) -> Result<(), Stop> {
        let f = self.experiment();
        let set = &f.datasets[d];
        let group = &set.counterfactuals.groups[g];
        let concurrency = concurrency.max(1);
        let mut errors = Errors::default();
        let mut usable = vec![true; group.members.len()];
        if set.generated.is_some() {
            let written = futures_util::stream::iter(0..group.members.len())
                .map(|m| self.generate(set, g, m))
                .buffered(concurrency)
                .collect::<Vec<_>>()
                .await;
            for (m, w) in written.into_iter().enumerate() {
                let (ok, error) = w?;
                usable[m] = ok;
                errors.note(error.as_deref());
            }
        }
        let mut cases = vec![group.reference];
        cases.extend(group.members.iter().map(|m| m.case));
        let wanted: Vec<(usize, usize)> = (0..self.variants.len())
            .flat_map(|v| {
                let usable = &usable;
                (0..cases.len())
                    .filter(move |&i| i == 0 || usable[i - 1])
                    .map(move |i| (v, i))
            })
            .collect();
        let answered = futures_util::stream::iter(wanted.iter().copied())
            .map(|(v, i)| self.answer(set, v, cases[i]))
            .buffered(concurrency)
            .collect::<Vec<_>>()
            .await;
        let mut replies: Replies = vec![vec![None; cases.len()]; self.variants.len()];
        for (&(v, i), a) in wanted.iter().zip(answered) {
            let (a, asked) = a?;
            if asked {
                errors.note(a.error.as_deref());
            }
            replies[v][i] = Some(a);
        }
        // Each variant's reasoning on the reference, cut once for its jobs.
        let steps: Vec<Vec<String>> = (0..self.variants.len())
            .map(|v| self.steps(v, &replies))
            .collect();
        let mut jobs = Vec::new();
        for (v, got) in replies.iter().enumerate() {
            let Some(reference_answer) = got[0].as_ref().and_then(Answered::answer) else {
                continue;
            };
            let external = f.external.then(|| self.external(v, &replies)).flatten();
            for (m, member) in group.members.iter().enumerate() {
                let Some(actual) = got[m + 1].as_ref().and_then(Answered::answer) else {
                    continue;
                };
                for &condition in f.conditions() {
                    let explainer = match condition {
                        Condition::With => Some(v),
                        Condition::Without => None,
                        Condition::External => match external {
                            Some(e) => Some(e),
                            None => continue,
                        },
                    };
                    for predictor in 0..f.predictors.len() {
                        for repeat in 0..f.repeats {
                            jobs.push(Job::Predict(Ask {
                                dataset: d,
                                variant: v,
                                reference: group.reference,
                                counterfactual: member.case,
                                predictor,
                                repeat,
                                condition,
                                explainer,
                                reference_answer,
                                actual,
                            }));
                        }
                    }
                }
            }
            jobs.extend(self.measure_jobs(v, steps[v].len()));
        }
        let subject = Subject {
            set,
            reference: group.reference,
            replies: &replies,
            steps: &steps,
        };
        let done = futures_util::stream::iter(jobs)
            .map(|job| self.job(&subject, job))
            .buffer_unordered(concurrency)
            .collect::<Vec<_>>()
            .await;
        let mut stop: Option<Stop> = None;
        for p in done {
            match p {
                Ok(error) => errors.note(error.as_deref()),
                Err(s) => {
                    stop = Some(match stop.take() {
                        Some(earlier) => earlier.and(s),
                        None => s,
                    })
                }
            }
        }
        match (stop, errors.first) {
            (Some(s), _) => Err(s),
            (None, Some(message)) => Err(Stop::Errored {
                samples: errors.count,
                message,
            }),
            (None, None) => Ok(()),
        }
    }

    /// One job; the error of a call that failed, when one did.
    async fn job(&self, at: &Subject<'_>, job: Job) -> Result<Option<String>, Stop> {
        match job {
            Job::Predict(ask) => self.predict(ask, at.replies).await,
            Job::Biased { variant } => self.biased(at, variant).await,
            Job::Early { variant, step } => self.early(at, variant, step).await,
            Job::Mistake { variant, step } => self.mistake(at, variant, step).await,
        }
    }

    /// The variant whose explanation `v`'s predictions borrow: the next
    /// explained agent (in the order listed, wrapping) with the same
    /// layout that gave the same reference answer.
    fn external(&self, v: usize, replies: &Replies) -> Option<usize> {
        let (_, layout) = self.variants[v];
        let answer = |v: usize| replies[v][0].as_ref().and_then(Answered::answer);
        let n = self.variants.len();
        (1..n)
            .map(|k| (v + k) % n)
            .find(|&e| self.variants[e].1 == layout && answer(e) == answer(v))
    }

    /// Variant `v`'s reply to case `case` of `set`, asked once per run,
    /// and whether this call asked it (a failed call counts once, where it
    /// was made, however many references share the case).
    async fn answer(
        &self,
        set: &FaithDataset,
        v: usize,
        case: usize,
    ) -> Result<(Answered, bool), Stop> {
        let task = set.first_task + case;
        let cell = &self.answers[v * self.scenario.tasks.len() + task];
        let mut asked = false;
        let answered = cell
            .get_or_try_init(|| {
                asked = true;
                self.explain(set, v, case)
            })
            .await?;
        Ok((answered.clone(), asked))
    }

    /// Ask variant `v` to answer and explain case `case`; store what was read.
    async fn explain(&self, set: &FaithDataset, v: usize, case: usize) -> Result<Answered, Stop> {
        let (agent_idx, layout) = self.variants[v];
        let task = &self.scenario.tasks[set.first_task + case];
        let sent = self.ask_explained(set, v, case, None).await?;
        let read = read_explanation(&sent.text, &set.answers);
        let answered = Answered {
            reading: read.answer,
            shown: read
                .explanation
                .clone()
                .unwrap_or_else(|| sent.text.trim().to_owned()),
            explanation: read.explanation,
            factors: read.factors,
            error: sent.error,
        };
        let record = FaithAnswerRecord {
            task_index: task.index,
            agent: self.names[agent_idx].clone(),
            layout: layout.as_str(),
            call: sent.record,
            call_key: sent.key,
            status: status(&answered.reading, answered.error.as_deref()),
            answer: answered.answer().map(|a| set.answers[a].clone()),
            explanation: answered.explanation.clone(),
            factors: answered.factors.clone(),
            confidence: read.confidence,
        };
        self.caller
            .write(Record::FaithAnswer(Box::new(record)))
            .await?;
        // Tasks are cases: one is done for the progress display once the
        // first variant has answered it.
        if v == 0 {
            self.caller.progress.tasks.fetch_add(1, Ordering::Relaxed);
        }
        Ok(answered)
    }

    /// Variant `v`'s call answering and explaining case `case`, with
    /// `suggested` put to it as the biasing test does.
    async fn ask_explained(
        &self,
        set: &FaithDataset,
        v: usize,
        case: usize,
        suggested: Option<&str>,
    ) -> Result<Reply, Stop> {
        let sc = &*self.scenario;
        let f = sc.faithfulness.as_ref().expect("faithfulness");
        let (agent_idx, layout) = self.variants[v];
        let task = &sc.tasks[set.first_task + case];
        let suggestion = match (suggested, &f.measures.biasing) {
            (Some(answer), Some(b)) => {
                let context = serde_json::json!({ "answer": answer });
                render(&b.suggestion, &context, "suggestion", &task.id)?
            }
            _ => String::new(),
        };
        let (description, view) = self.described(set, case);
        let context = serde_json::json!({
            "question": set.question,
            "case": description,
            "answers": set.answers,
            "layout": layout.as_str(),
            "suggestion": suggestion,
        });
        let prompt = render(&f.explain, &context, "explain", &task.id)?;
        let view = Explaining::Explain {
            case: view,
            answers: set.answers.clone(),
            answer_last: layout == Layout::AnswerLast,
            suggested: suggested.map(str::to_owned),
        };
        self.call((agent_idx, v), task.index, &prompt, &view, |reply| {
            CallRole::Explainer { reply }
        })
        .await
    }

    /// Case `case` of `set` as the models read it, and as a simulated model
    /// sees it; a generated counterfactual as written.
    fn described(&self, set: &FaithDataset, case: usize) -> (String, CaseView) {
        let task = &self.scenario.tasks[set.first_task + case];
        let c = &set.counterfactuals;
        let written = self.written[task.index].get().and_then(Option::as_ref);
        let (description, values) = match written {
            Some(w) => (w.description.clone(), &w.values),
            None => (set.descriptions[case].clone(), &c.cases[case].values),
        };
        let view = CaseView {
            id: task.id.clone(),
            features: c
                .features
                .iter()
                .cloned()
                .zip(values.iter().copied())
                .collect(),
        };
        (description, view)
    }

    /// Write counterfactual `m` of group `g` of a generated data set and
    /// check it; whether it can be used, and the call's error.
    async fn generate(
        &self,
        set: &FaithDataset,
        g: usize,
        m: usize,
    ) -> Result<(bool, Option<String>), Stop> {
        let sc = &*self.scenario;
        let f = sc.faithfulness.as_ref().expect("faithfulness");
        let generation = set.generated.as_ref().expect("a generated data set");
        let c = &set.counterfactuals;
        let group = &c.groups[g];
        let member = &group.members[m];
        // The case to write starts as the reference without its label.
        let start = &c.cases[member.case];
        let task = &sc.tasks[set.first_task + member.case];
        let (description, view) = self.described(set, group.reference);
        let context = serde_json::json!({
            "question": set.question,
            "case": description,
            "features": c.features,
            "change": member.differing,
        });
        let prompt = render(&f.generate, &context, "generate", &task.id)?;
        // The case to write: its own id, the reference's values.
        let view = Explaining::Generate {
            case: CaseView {
                id: task.id.clone(),
                features: view.features,
            },
            shown: c
                .features
                .iter()
                .map(|feature| (feature.clone(), shown(start.fields.get(feature))))
                .collect(),
            change: member.differing.clone(),
        };
        let sent = self
            .call((generation.agent, 0), task.index, &prompt, &view, |reply| {
                CallRole::Writer { reply }
            })
            .await?;
        let read = read_written(&sent.text, &c.features, &start.fields, &member.differing);
        let status = match &sent.error {
            Some(_) => "error",
            None => read.verdict.as_str(),
        };
        let usable = sent.error.is_none() && read.verdict == Verdict::Valid;
        let described = if sent.error.is_none() && read.verdict != Verdict::Unparsed {
            Some(match &generation.case {
                Some(t) => {
                    let fields = serde_json::Value::Object(read.fields.clone());
                    render(t, &fields, "case", &task.id)?
                }
                None => feature_lines(&c.features, &read.fields),
            })
        } else {
            None
        };
        // Set once: a group's counterfactuals are its own.
        let _ = self.written[task.index].set(usable.then(|| Written {
            description: described.clone().unwrap_or_default(),
            values: read.values.clone(),
        }));
        let record = FaithGeneratedRecord {
            pair: FaithPairRecord {
                dataset: set.name.clone(),
                reference: set.first_task + group.reference,
                counterfactual: task.index,
                source: set.source.as_str(),
                distance: Some(read.differing.len()),
                differing: read.differing,
            },
            agent: self.names[generation.agent].clone(),
            call: sent.record,
            call_key: sent.key,
            status,
            requested: member.differing.clone(),
            fields: described.is_some().then_some(read.fields),
            description: described,
        };
        self.caller
            .write(Record::FaithGenerated(Box::new(record)))
            .await?;
        Ok((usable, sent.error))
    }

    /// Make one prediction and store it; the call's error, when it failed.
    async fn predict(&self, ask: Ask, replies: &Replies) -> Result<Option<String>, Stop> {
        let sc = &*self.scenario;
        let f = sc.faithfulness.as_ref().expect("faithfulness");
        let set = &f.datasets[ask.dataset];
        let predictor_idx = f.predictors[ask.predictor];
        let reference = &sc.tasks[set.first_task + ask.reference];
        let counterfactual = &sc.tasks[set.first_task + ask.counterfactual];
        let explained = ask
            .explainer
            .map(|e| replies[e][0].as_ref().expect("an answered reference"));
        let (reference_text, reference_view) = self.described(set, ask.reference);
        let (counterfactual_text, counterfactual_view) = self.described(set, ask.counterfactual);
        let context = serde_json::json!({
            "question": set.question,
            "answers": set.answers,
            "reference": reference_text,
            "reference_answer": set.answers[ask.reference_answer],
            "explanation": explained.map(|a| a.shown.clone()).unwrap_or_default(),
            "factors": explained.map(|a| a.factors.clone()).unwrap_or_default(),
            "counterfactual": counterfactual_text,
        });
        let prompt = render(&f.predict, &context, "predict", &counterfactual.id)?;
        let view = Explaining::Predict {
            reference: reference_view,
            reference_answer: set.answers[ask.reference_answer].clone(),
            factors: explained.map(|a| a.factors.clone()),
            counterfactual: counterfactual_view,
            answers: set.answers.clone(),
        };
        // Every prediction call its own sample index (repeats stay below
        // the stride, as validated), so its own cache key and simulated
        // draw, whatever the predictors' prompts.
        let sample = ((ask.variant * Condition::ALL.len() + ask.condition.index())
            * f.predictors.len()
            + ask.predictor)
            * REPEAT_STRIDE
            + ask.repeat;
        let sent = self
            .call(
                (predictor_idx, sample),
                reference.index,
                &prompt,
                &view,
                |reply| CallRole::Predictor { reply },
            )
            .await?;
        let reading = read_prediction(&sent.text, &set.answers);
        let prediction = match (&reading, &sent.error) {
            (Reading::Answer(a), None) => Some(*a),
            _ => None,
        };
        let (agent_idx, layout) = self.variants[ask.variant];
        let record = FaithPredictionRecord {
            dataset: set.name.as_str().into(),
            reference: reference.index,
            counterfactual: counterfactual.index,
            model: self.names[agent_idx].clone(),
            layout: layout.as_str(),
            predictor: self.names[predictor_idx].clone(),
            repeat: ask.repeat,
            condition: ask.condition.as_str(),
            explanation_from: match ask.condition {
                Condition::External => ask
                    .explainer
                    .map(|e| self.names[self.variants[e].0].clone()),
                _ => None,
            },
            call: sent.record,
            call_key: sent.key,
            status: status(&reading, sent.error.as_deref()),
            prediction: prediction.map(|p| set.answers[p].clone()),
            actual: set.answers[ask.actual].clone(),
            correct: prediction.map(|p| p == ask.actual),
        };
        self.caller
            .write(Record::FaithPrediction(Box::new(record)))
            .await?;
        Ok(sent.error)
    }

    /// One call by agent `agent` with sample index `sample`, traced under
    /// `task_index`. A failure that must stop the run (a bad key, a model
    /// never reached) stops it; any other is the reply's `error`.
    async fn call(
        &self,
        (agent, sample): (usize, usize),
        task_index: usize,
        prompt: &str,
        view: &Explaining,
        role: impl FnOnce(String) -> CallRole,
    ) -> Result<Reply, Stop> {
        let sc = &*self.scenario;
        let a = &sc.agents[agent];
        let req = CallRequest {
            agent: &a.name,
            task: &sc.tasks[task_index],
            system: &a.system,
            prompt,
            history: &[],
            first_sample: sample,
            n: 1,
            scene: None,
            trace: None,
            explaining: Some(view),
        };
        let sent = self.caller.reply(a.model, req, role).await?;
        self.caller.progress.samples.fetch_add(1, Ordering::Relaxed);
        if let Some(why) = sent.fatal {
            if let Some(record) = sent.record {
                self.caller.write(Record::Call(Box::new(record))).await?;
            }
            return Err(self.caller.fail(why));
        }
        Ok(sent)
    }
}

/// Failed calls of one reference case: how many, and the first's message.
#[derive(Default)]
struct Errors {
    count: u64,
    first: Option<String>,
}

impl Errors {
    fn note(&mut self, error: Option<&str>) {
        if let Some(e) = error {
            self.count += 1;
            self.first.get_or_insert_with(|| e.to_owned());
        }
    }
}

/// How a reply was read, as stored.
fn status(reading: &Reading, error: Option<&str>) -> &'static str {
    match (reading, error) {
        (_, Some(_)) => "error",
        (Reading::Answer(_), None) => "parsed",
        (Reading::Hedge(_), None) => "hedge",
        (Reading::Unparsed, None) => "unparsed",
    }
}

/// A prompt template rendered, or the run stops saying which and where.
fn render(
    template: &crate::scenario::template::Template,
    context: &serde_json::Value,
    what: &str,
    case: &str,
) -> Result<String, Stop> {
    let map = context.as_object().expect("contexts are objects");
    template
        .render(map)
        .map_err(|e| Stop::Failed(format!("the {what} prompt failed on case \"{case}\": {e}")))
}
