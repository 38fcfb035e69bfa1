//! What a faithfulness experiment's call is about, as a structured view: the
//! case an explained model answers, or the reference, its answer and
//! explanation, and the counterfactual a predictor is asked about. The
//! engine renders the same things into prompts for language models; the
//! simulated explainer and predictor read them from here.

/// One case: its id and its features' values (a bin's index for natural
/// counterfactuals, a number for given ones, 0 for text).
#[derive(Debug, Clone, PartialEq)]
pub struct CaseView {
    pub id: String,
    pub features: Vec<(String, f64)>,
}

/// A faithfulness call's subject.
#[derive(Debug, Clone, PartialEq)]
pub enum Explaining {
    /// An explained model answers (and explains) a case.
    Explain {
        case: CaseView,
        answers: Vec<String>,
        /// Whether the answer comes after the explanation.
        answer_last: bool,
        /// The answer the prompt suggests (the biasing test), if any.
        suggested: Option<String>,
    },
    /// An explained model answers after only the first `shown` of the
    /// `steps` steps of its reasoning (early answering).
    Early {
        case: CaseView,
        answers: Vec<String>,
        shown: usize,
        steps: usize,
    },
    /// An explained model reasons on from its reasoning with step
    /// `mistake_at` of `steps` replaced by a mistaken one, and answers.
    Resume {
        case: CaseView,
        answers: Vec<String>,
        mistake_at: usize,
        steps: usize,
    },
    /// A writer rewrites a reasoning step with a mistake.
    Mistake { case: CaseView, step: String },
    /// A writer writes a counterfactual of `case` changing `change`:
    /// `shown` is each feature's value as the case's text gives it.
    Generate {
        case: CaseView,
        shown: Vec<(String, String)>,
        change: Vec<String>,
    },
    /// A predictor guesses the explained model's answer on `counterfactual`.
    Predict {
        reference: CaseView,
        reference_answer: String,
        /// The factors the explanation named; `None` without an explanation.
        factors: Option<Vec<String>>,
        counterfactual: CaseView,
        answers: Vec<String>,
    },
}

impl Explaining {
    /// What of the view is not in the prompt, for cache keys: the feature
    /// values a template may leave out.
    pub fn key(&self) -> String {
        format!("{self:?}")
    }
}
