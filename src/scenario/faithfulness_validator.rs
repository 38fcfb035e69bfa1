//! Validating the `faithfulness:` section: its agents, answer sets, layouts
//! and templates, and each data set's counterfactuals (read by
//! [`crate::scenario::counterfactual`]), every problem at `path:line:col`.
//! The cases become the scenario's tasks, data set after data set.

use std::collections::BTreeSet;

use crate::scenario::Task;
use crate::scenario::counterfactual::{self, Counterfactuals};
use crate::scenario::diagnostic::{Diagnostics, SourceFile, Span, did_you_mean};
use crate::scenario::explanation::{EXPLAIN_PROMPT, PREDICT_PROMPT};
use crate::scenario::faithfulness::{
    AddingMistake, Biasing, CounterfactualSource, FaithDataset, Faithfulness, Generation, Layout,
    Measures, REPEAT_STRIDE, feature_lines,
};
use crate::scenario::generation::{self, GENERATE_PROMPT};
use crate::scenario::loader::{Loaded, LoadedFaithfulness};
use crate::scenario::node::Located;
use crate::scenario::reasoning::{
    CUES, DEFAULT_MAX_STEPS, EARLY_PROMPT, MISTAKE_PROMPT, RESUME_PROMPT, SUGGESTION,
};
use crate::scenario::spec::{FaithDatasetSpec, LayoutSpec, MeasuresSpec, ModelSpec};
use crate::scenario::template::{Template, line_span};

/// Most predictions per (counterfactual, predictor, condition).
const MAX_REPEATS: i64 = REPEAT_STRIDE as i64;

/// Variables the explain prompt is rendered with.
const EXPLAIN_FIELDS: &[&str] = &["question", "case", "answers", "layout", "suggestion"];

/// Variables of the other prompts.
const GENERATE_FIELDS: &[&str] = &["question", "case", "features", "change"];
const EARLY_FIELDS: &[&str] = &["question", "case", "answers", "reasoning"];
const MISTAKE_FIELDS: &[&str] = &["question", "case", "reasoning", "step"];
const SUGGESTION_FIELDS: &[&str] = &["answer"];

/// Most steps a reasoning may be cut into.
const MOST_STEPS: i64 = 50;

/// Variables the predict prompt is rendered with.
const PREDICT_FIELDS: &[&str] = &[
    "question",
    "answers",
    "reference",
    "reference_answer",
    "explanation",
    "factors",
    "counterfactual",
];

/// Checks one `faithfulness:` section.
pub struct FaithfulnessValidator<'a> {
    pub loaded: &'a Loaded,
    pub source: &'a SourceFile,
    pub diags: &'a mut Diagnostics,
}

impl<'a> FaithfulnessValidator<'a> {
    fn err(&mut self, span: Span, msg: impl Into<String>) {
        let d = self.source.error(span, msg);
        self.diags.push(d);
    }

    /// The experiment and its cases as tasks; `agents` are the scenario's
    /// agent names in order.
    pub fn validate(
        &mut self,
        section: &LoadedFaithfulness,
        agents: &[&str],
        seed: u64,
    ) -> Option<(Faithfulness, Vec<Task>)> {
        let spec = &section.spec;
        if let Some((span, _)) = &self.loaded.dataset {
            self.err(
                *span,
                "a faithfulness experiment's tasks are its cases; remove `dataset` (or run it from another scenario)",
            );
        }
        if let Some(s) = self.loaded.strategies.first() {
            self.err(
                s.span,
                "`strategies` and `faithfulness` cannot share a scenario; put them in two scenarios",
            );
        }
        let explained = self.agents(&spec.explained, "explained", agents, Role::Explained);
        let predictors = self.agents(&spec.predictors, "predictors", agents, Role::Predictor);
        let repeats = match &spec.repeats {
            Some(r) if !(1..=MAX_REPEATS).contains(&r.value) => {
                self.err(
                    r.span,
                    format!(
                        "`repeats` must be from 1 to {MAX_REPEATS}, found {}",
                        r.value
                    ),
                );
                1
            }
            Some(r) => r.value as usize,
            None => 1,
        };
        let layouts = match spec.layout.as_ref().map(|l| l.value) {
            None | Some(LayoutSpec::AnswerFirst) => vec![Layout::AnswerFirst],
            Some(LayoutSpec::AnswerLast) => vec![Layout::AnswerLast],
            Some(LayoutSpec::Both) => vec![Layout::AnswerFirst, Layout::AnswerLast],
        };
        let external = match &spec.external {
            Some(e) if e.value && explained.len() < 2 => {
                self.err(
                    e.span,
                    "`external: true` predicts with another explained agent's explanation; list two or more `explained` agents",
                );
                false
            }
            Some(e) => e.value,
            None => explained.len() >= 2,
        };
        let prompts = spec.prompts.as_ref();
        let explain = self.template(
            prompts.and_then(|p| p.explain.as_ref()),
            EXPLAIN_PROMPT,
            "explain",
            EXPLAIN_FIELDS,
        );
        let predict = self.template(
            prompts.and_then(|p| p.predict.as_ref()),
            PREDICT_PROMPT,
            "predict",
            PREDICT_FIELDS,
        );
        let generate = self.template(
            prompts.and_then(|p| p.generate.as_ref()),
            GENERATE_PROMPT,
            "generate",
            GENERATE_FIELDS,
        );
        let early = self.template(
            prompts.and_then(|p| p.early.as_ref()),
            EARLY_PROMPT,
            "early",
            EARLY_FIELDS,
        );
        let mistake = self.template(
            prompts.and_then(|p| p.mistake.as_ref()),
            MISTAKE_PROMPT,
            "mistake",
            MISTAKE_FIELDS,
        );
        let resume = self.template(
            prompts.and_then(|p| p.resume.as_ref()),
            RESUME_PROMPT,
            "resume",
            EARLY_FIELDS,
        );
        let measures = spec
            .measures
            .as_ref()
            .map(|m| self.measures(m, agents))
            .unwrap_or_default();
        if measures.biasing.is_some()
            && let (Some(given), Some(t)) = (prompts.and_then(|p| p.explain.as_ref()), &explain)
            && !t.variables().iter().any(|v| v == "suggestion")
        {
            self.err(
                given.span,
                "the biasing measure puts a suggested answer in the explain prompt, and this one does not use `suggestion`; add `{{ suggestion }}` to it",
            );
        }
        if spec.datasets.is_empty() {
            self.err(
                section.span,
                "`datasets` is empty; add at least one data set",
            );
        }
        let mut names = BTreeSet::new();
        let mut datasets = Vec::new();
        let mut tasks = Vec::new();
        for (d, file) in spec.datasets.iter().zip(&section.files) {
            if !names.insert(d.name.value.as_str()) {
                self.err(
                    d.name.span,
                    format!("two data sets are named `{}`; rename one", d.name.value),
                );
            }
            let answers = self.answers(d, spec.answers.as_deref());
            let Some((path, text)) = file else { continue };
            let read = if let Some(natural) = &d.natural {
                counterfactual::natural(natural, self.source, path, text, seed, self.diags)
                    .map(|c| (c, CounterfactualSource::Natural))
            } else if d.given.is_some() {
                counterfactual::given(path, text, self.diags)
                    .map(|c| (c, CounterfactualSource::Given))
            } else if let Some(g) = &d.generated {
                generation::generated(g, self.source, path, text, seed, self.diags)
                    .map(|c| (c, CounterfactualSource::Generated))
            } else {
                None
            };
            let generated = d.generated.as_ref().and_then(|g| {
                let agent = self.agent(&g.agent, "agent", agents, Role::Writer)?;
                let case = d
                    .case
                    .as_ref()
                    .map(|c| Template::compile(&c.value).ok())
                    .unwrap_or(None);
                Some(Generation { agent, case })
            });
            if d.generated.is_some() && generated.is_none() {
                continue;
            }
            let (Some((counterfactuals, source)), Some(answers)) = (read, answers) else {
                continue;
            };
            let Some(descriptions) = self.describe(d, &counterfactuals) else {
                continue;
            };
            let first_task = tasks.len();
            let prefix = spec.datasets.len() > 1;
            for (i, case) in counterfactuals.cases.iter().enumerate() {
                tasks.push(Task {
                    index: first_task + i,
                    id: if prefix {
                        format!("{}/{}", d.name.value, case.id)
                    } else {
                        case.id.clone()
                    },
                    inputs: case.fields.clone(),
                    expected: None,
                    distribution: None,
                });
            }
            datasets.push(FaithDataset {
                name: d.name.value.clone(),
                question: d.question.value.clone(),
                answers,
                source,
                counterfactuals,
                first_task,
                descriptions,
                generated,
            });
        }
        for name in &spec.explained {
            self.simulated_rule(name, &datasets);
        }
        let experiment = Faithfulness {
            explained,
            predictors,
            repeats,
            layouts,
            external,
            explain: explain?,
            predict: predict?,
            generate: generate?,
            early: early?,
            mistake: mistake?,
            resume: resume?,
            measures,
            datasets,
        };
        Some((experiment, tasks))
    }

    /// Agent names as indices, each defined and fit for its role.
    fn agents(
        &mut self,
        names: &[Located<String>],
        key: &str,
        agents: &[&str],
        role: Role,
    ) -> Vec<usize> {
        let mut out = Vec::new();
        for name in names {
            let Some(i) = self.agent(name, key, agents, role) else {
                continue;
            };
            if out.contains(&i) {
                self.err(name.span, format!("agent `{}` is listed twice", name.value));
                continue;
            }
            out.push(i);
        }
        if names.is_empty() {
            self.err(
                self.section_span(),
                format!("`{key}` is empty; name at least one agent"),
            );
        }
        out
    }

    /// An agent's name as an index, when it is defined (and fit for its role).
    fn agent(
        &mut self,
        name: &Located<String>,
        key: &str,
        agents: &[&str],
        role: Role,
    ) -> Option<usize> {
        let Some(i) = agents.iter().position(|a| *a == name.value) else {
            self.err(
                name.span,
                format!(
                    "`{key}` names undefined agent `{}`{}",
                    name.value,
                    did_you_mean(&name.value, agents.iter().copied())
                ),
            );
            return None;
        };
        self.simulated_role(name, role);
        Some(i)
    }

    /// The measures asked for besides NSG.
    fn measures(&mut self, spec: &MeasuresSpec, agents: &[&str]) -> Measures {
        let early_answering = spec
            .early_answering
            .as_ref()
            .map(|e| self.max_steps(e.max_steps.as_ref()));
        let adding_mistake = spec.adding_mistake.as_ref().and_then(|m| {
            let max_steps = self.max_steps(m.max_steps.as_ref());
            let agent = self.agent(&m.agent, "agent", agents, Role::Writer)?;
            Some(AddingMistake { agent, max_steps })
        });
        let biasing = spec.biasing.as_ref().and_then(|b| {
            let suggestion = self.template(
                b.suggestion.as_ref(),
                SUGGESTION,
                "suggestion",
                SUGGESTION_FIELDS,
            )?;
            let cues = match &b.cues {
                None => CUES.iter().map(|c| (*c).to_owned()).collect(),
                Some(given) => {
                    let mut cues = Vec::new();
                    for c in given {
                        let cue = c.value.trim().to_lowercase();
                        if cue.is_empty() {
                            self.err(c.span, "a cue must not be empty: every explanation contains it");
                            return None;
                        }
                        cues.push(cue);
                    }
                    if cues.is_empty() {
                        self.err(
                            b.suggestion.as_ref().map_or(self.section_span(), |s| s.span),
                            "`cues` is empty; give the words that mention a suggestion, or leave it out",
                        );
                        return None;
                    }
                    cues
                }
            };
            Some(Biasing { suggestion, cues })
        });
        Measures {
            early_answering,
            adding_mistake,
            biasing,
        }
    }

    /// `max_steps`: from 1 to [`MOST_STEPS`], by default [`DEFAULT_MAX_STEPS`].
    fn max_steps(&mut self, given: Option<&Located<i64>>) -> usize {
        match given {
            Some(m) if !(1..=MOST_STEPS).contains(&m.value) => {
                self.err(
                    m.span,
                    format!(
                        "`max_steps` must be from 1 to {MOST_STEPS}, found {}",
                        m.value
                    ),
                );
                DEFAULT_MAX_STEPS
            }
            Some(m) => m.value as usize,
            None => DEFAULT_MAX_STEPS,
        }
    }

    fn section_span(&self) -> Span {
        self.loaded
            .faithfulness
            .as_ref()
            .map_or(Span::new(1, 1), |f| f.span)
    }

    /// The simulated model agent `agent` uses, with its name; `None` for a
    /// network model or one that is not defined (reported elsewhere).
    fn simulated_model(&self, agent: &str) -> Option<(&'a str, &'a ModelSpec)> {
        let loaded: &'a Loaded = self.loaded;
        let (_, spec, _) = loaded.agents.iter().find(|(n, _, _)| n.value == agent)?;
        let model = spec.model.as_ref()?;
        let (name, m) = loaded.models.iter().find(|(n, _)| n.value == model.value)?;
        (m.provider.as_str() == "simulated").then_some((name.as_str(), m))
    }

    /// A simulated agent's model must know how to play `role`.
    fn simulated_role(&mut self, agent: &Located<String>, role: Role) {
        let Some((model, m)) = self.simulated_model(&agent.value) else {
            return;
        };
        let (has, section, what) = match role {
            Role::Explained => (
                m.explainer.is_some(),
                "explainer",
                "answer and explain a case",
            ),
            Role::Predictor => (
                m.predictor.is_some(),
                "predictor",
                "predict another model's answer",
            ),
            Role::Writer => (
                m.explainer.is_some(),
                "explainer",
                "rewrite a case or a reasoning step",
            ),
        };
        if !has {
            self.err(
                agent.span,
                format!(
                    "agent `{}` uses simulated model `{model}`, which has no `{section}` section, so it cannot {what}; add one",
                    agent.value
                ),
            );
        }
    }

    /// A simulated explainer's rule must fit every data set: two answers to
    /// choose between, and weights on features the cases have.
    fn simulated_rule(&mut self, agent: &Located<String>, datasets: &[FaithDataset]) {
        let Some((model, m)) = self.simulated_model(&agent.value) else {
            return;
        };
        let Some(explainer) = &m.explainer else {
            return;
        };
        for d in datasets {
            if d.answers.len() != 2 {
                self.err(
                    agent.span,
                    format!(
                        "agent `{}` uses simulated explainer `{model}`, which chooses between two answers, and data set `{}` has {}; give it two",
                        agent.value,
                        d.name,
                        d.answers.len()
                    ),
                );
            }
            let features = &d.counterfactuals.features;
            for feature in explainer.weights.keys() {
                if !features.contains(feature) {
                    self.err(
                        explainer.weights.span,
                        format!(
                            "simulated explainer `{model}` weighs `{feature}`, which is not a feature of data set `{}`{}",
                            d.name,
                            did_you_mean(feature, features.iter().map(String::as_str))
                        ),
                    );
                }
            }
        }
    }

    /// A data set's answer set (or the section's), at least two distinct answers.
    fn answers(
        &mut self,
        d: &FaithDatasetSpec,
        section: Option<&[Located<String>]>,
    ) -> Option<Vec<String>> {
        let Some(given) = d.answers.as_deref().or(section) else {
            self.err(
                d.name.span,
                format!(
                    "data set `{}` has no answer set; give `answers: [YES, NO]` here or in the `faithfulness` section",
                    d.name.value
                ),
            );
            return None;
        };
        let mut out: Vec<String> = Vec::new();
        for a in given {
            let text = a.value.trim();
            if text.is_empty() {
                self.err(a.span, "an answer must not be empty");
                return None;
            }
            if out.iter().any(|o| o.eq_ignore_ascii_case(text)) {
                self.err(a.span, format!("answer `{text}` is listed twice"));
                return None;
            }
            out.push(text.to_owned());
        }
        if out.len() < 2 {
            let span = given.first().map_or(d.name.span, |a| a.span);
            self.err(span, "an answer set needs at least two answers");
            return None;
        }
        Some(out)
    }

    /// A prompt template (the built-in one when none is given) that reads
    /// only `fields`.
    fn template(
        &mut self,
        given: Option<&Located<String>>,
        default: &str,
        what: &str,
        fields: &[&str],
    ) -> Option<Template> {
        let Some(given) = given else {
            return Some(Template::compile(default).expect("built-in prompts compile"));
        };
        match Template::compile(&given.value) {
            Ok(t) => {
                for var in t.variables() {
                    if !fields.contains(&var.as_str()) {
                        self.err(
                            given.span,
                            format!(
                                "the {what} prompt uses `{var}`, which it is not given (it has: {}){}",
                                fields.join(", "),
                                did_you_mean(&var, fields.iter().copied())
                            ),
                        );
                    }
                }
                Some(t)
            }
            Err(e) => {
                let span = line_span(self.source, given.span, e.line);
                self.err(
                    span,
                    format!("template syntax error in the {what} prompt: {}", e.message),
                );
                None
            }
        }
    }

    /// Every case of `d` rendered by its `case` template, or as one
    /// `feature: value` line per feature.
    fn describe(&mut self, d: &FaithDatasetSpec, c: &Counterfactuals) -> Option<Vec<String>> {
        let Some(case) = &d.case else {
            return Some(
                c.cases
                    .iter()
                    .map(|case| feature_lines(&c.features, &case.fields))
                    .collect(),
            );
        };
        let template = match Template::compile(&case.value) {
            Ok(t) => t,
            Err(e) => {
                let span = line_span(self.source, case.span, e.line);
                self.err(
                    span,
                    format!("template syntax error in `case`: {}", e.message),
                );
                return None;
            }
        };
        let columns: BTreeSet<&str> = c
            .cases
            .iter()
            .flat_map(|case| case.fields.keys().map(String::as_str))
            .collect();
        let unknown: Vec<String> = template
            .variables()
            .into_iter()
            .filter(|v| !columns.contains(v.as_str()))
            .collect();
        for var in &unknown {
            self.err(
                case.span,
                format!(
                    "`case` uses `{var}`, which is not a column of data set `{}`{}",
                    d.name.value,
                    did_you_mean(var, columns.iter().copied())
                ),
            );
        }
        if !unknown.is_empty() {
            return None;
        }
        let mut out = Vec::with_capacity(c.cases.len());
        for row in &c.cases {
            match template.render(&row.fields) {
                Ok(text) => out.push(text),
                Err(e) => {
                    self.err(
                        case.span,
                        format!(
                            "`case` failed on case `{}` (line {}): {e}",
                            row.id, row.line
                        ),
                    );
                    return None;
                }
            }
        }
        Some(out)
    }
}

/// What an agent of the experiment does.
#[derive(Clone, Copy)]
enum Role {
    Explained,
    Predictor,
    /// Writes counterfactuals or mistakes.
    Writer,
}
