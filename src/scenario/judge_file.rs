//! Judge files (`judges/*.yaml`): a failure taxonomy and the judge that
//! applies it — the modes with their definitions, the names earlier
//! taxonomy versions gave them (for import), and the prompt.
//!
//! A judge file is read and checked here like a scenario, every problem
//! reported at its line and column. The engine renders its prompt over a
//! transcript; importers map foreign mode names through [`JudgeFile::match_name`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::scenario::diagnostic::{Diagnostic, Diagnostics, SourceFile, Span, did_you_mean};
use crate::scenario::failure::FailureMode;
use crate::scenario::node::{Located, Node, from_node};
use crate::scenario::template::{Template, line_span};

/// What a failure mode's name from elsewhere (an imported file, an earlier
/// taxonomy version) is, in a judge file's taxonomy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameMatch {
    /// One of the taxonomy's modes, by its name or a listed alias.
    Mode(FailureMode),
    /// A name the judge file lists as having no counterpart: kept under its
    /// own label.
    Unmapped,
    /// A name the judge file does not know.
    Unknown,
}

/// A mode's name as compared: lowercase words, punctuation and extra
/// spaces dropped, so "Derailment from task " and "derailment from task"
/// are one name.
pub fn normalized_name(name: &str) -> String {
    name.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The variables a judge's user prompt may read.
pub const PROMPT_VARIABLES: &[&str] = &["task", "transcript", "modes", "truncated"];

/// The text of `judges/mast.yaml`, built into the binary.
pub const MAST: &str = include_str!("../../judges/mast.yaml");

/// A checked judge file.
#[derive(Debug, Clone)]
pub struct JudgeFile {
    pub name: String,
    pub version: String,
    pub description: String,
    pub path: PathBuf,
    /// The file's text, stored with the run that uses it.
    pub text: String,
    /// blake3 (64 hex digits) of the text: stored with every judgement.
    pub hash: String,
    /// (code, name) in order.
    pub categories: Vec<(String, String)>,
    /// The modes judged, in the file's order.
    pub modes: Vec<JudgeMode>,
    /// Normalized name (own names and aliases) → mode.
    names: HashMap<String, FailureMode>,
    /// Names earlier versions used that have no counterpart, with why.
    pub unmapped: Vec<(String, Option<String>)>,
    pub system: String,
    pub user: Template,
}

/// One mode as a judge file describes it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JudgeMode {
    #[serde(skip)]
    pub mode: FailureMode,
    /// `FM-1.1`.
    pub code: String,
    /// `1.1`, as replies cite it.
    pub short: String,
    pub name: String,
    pub category: String,
    pub category_name: String,
    pub definition: String,
    pub examples: Vec<Example>,
}

/// A few-shot example of a mode.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    pub present: bool,
    pub text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    judge: Located<String>,
    version: Located<String>,
    #[serde(default)]
    description: Option<String>,
    categories: Vec<CategorySpec>,
    modes: Vec<ModeSpec>,
    #[serde(default)]
    unmapped: Vec<UnmappedSpec>,
    prompt: PromptSpec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CategorySpec {
    code: Located<String>,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModeSpec {
    code: Located<String>,
    name: Located<String>,
    category: Located<String>,
    definition: Located<String>,
    #[serde(default)]
    aliases: Vec<Located<String>>,
    #[serde(default)]
    examples: Vec<Example>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnmappedSpec {
    name: Located<String>,
    #[serde(default)]
    why: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromptSpec {
    system: String,
    user: Located<String>,
}

impl JudgeFile {
    /// Read and check the judge file at `path`.
    /// The MAST judge shipped with crucible (`judges/mast.yaml`), built in.
    pub fn mast() -> JudgeFile {
        JudgeFile::from_text(Path::new("judges/mast.yaml"), MAST.to_owned())
            .expect("the built-in judges/mast.yaml is valid (a unit test checks it)")
    }

    pub fn load(path: &Path) -> Result<JudgeFile, Vec<Diagnostic>> {
        JudgeFile::from_text(path, read_file(path, "judge file")?)
    }

    /// Check `text`, the judge file at `path`.
    pub fn from_text(path: &Path, text: String) -> Result<JudgeFile, Vec<Diagnostic>> {
        let src = SourceFile::new(path, text);
        let mut diags = Diagnostics::default();
        let spec: FileSpec = parse_spec(&src)?;
        let judge = build(&src, spec, &mut diags);
        if diags.is_empty() {
            Ok(judge.expect("no diagnostics means a judge was built"))
        } else {
            Err(diags.into_sorted())
        }
    }

    /// What `name` (a mode's name in some other file) is here.
    pub fn match_name(&self, name: &str) -> NameMatch {
        let key = normalized_name(name);
        match self.names.get(&key) {
            Some(&m) => NameMatch::Mode(m),
            None if self.unmapped.iter().any(|(n, _)| normalized_name(n) == key) => {
                NameMatch::Unmapped
            }
            None => NameMatch::Unknown,
        }
    }

    pub fn mode(&self, mode: FailureMode) -> Option<&JudgeMode> {
        self.modes.iter().find(|m| m.mode == mode)
    }
}

fn build(src: &SourceFile, spec: FileSpec, diags: &mut Diagnostics) -> Option<JudgeFile> {
    check_named(src, &spec.judge, &spec.version, diags);
    let mut err = |span: Span, msg: String| diags.push(src.error(span, msg));
    let mut categories: Vec<(String, String)> = Vec::new();
    for c in &spec.categories {
        if categories.iter().any(|(code, _)| *code == c.code.value) {
            err(
                c.code.span,
                format!("category `{}` is listed twice", *c.code),
            );
        }
        categories.push((c.code.value.clone(), c.name.clone()));
    }
    let mut names: HashMap<String, FailureMode> = HashMap::new();
    let mut name_at: HashMap<String, Span> = HashMap::new();
    let mut modes: Vec<JudgeMode> = Vec::new();
    for m in &spec.modes {
        let Some(mode) = FailureMode::from_code(&m.code) else {
            let codes: Vec<&str> = FailureMode::all().map(|m| m.code()).collect();
            err(
                m.code.span,
                format!(
                    "`{}` is not a MAST mode code (expected one of: {}){}",
                    *m.code,
                    codes.join(", "),
                    did_you_mean(&m.code, codes.iter().copied())
                ),
            );
            continue;
        };
        if modes.iter().any(|x| x.mode == mode) {
            err(m.code.span, format!("mode `{}` is listed twice", *m.code));
            continue;
        }
        let category_name = match categories.iter().find(|(c, _)| *c == m.category.value) {
            Some((_, n)) => n.clone(),
            None => {
                let listed: Vec<&str> = categories.iter().map(|(c, _)| c.as_str()).collect();
                err(
                    m.category.span,
                    format!(
                        "category `{}` is not among `categories` ({}){}",
                        *m.category,
                        listed.join(", "),
                        did_you_mean(&m.category, listed.iter().copied())
                    ),
                );
                String::new()
            }
        };
        if m.definition.trim().is_empty() {
            err(
                m.definition.span,
                "a mode's `definition` must not be empty".into(),
            );
        }
        for name in std::iter::once(&m.name).chain(&m.aliases) {
            let key = normalized_name(name);
            match names.get(&key) {
                Some(&other) if other != mode => err(
                    name.span,
                    format!(
                        "the name `{}` already stands for {} (line {})",
                        **name,
                        other.code(),
                        name_at[&key].line
                    ),
                ),
                _ => {
                    names.insert(key.clone(), mode);
                    name_at.entry(key).or_insert(name.span);
                }
            }
        }
        modes.push(JudgeMode {
            mode,
            code: mode.code().to_owned(),
            short: mode.code().trim_start_matches("FM-").to_owned(),
            name: m.name.value.clone(),
            category: m.category.value.clone(),
            category_name,
            definition: m.definition.trim().to_owned(),
            examples: m.examples.clone(),
        });
    }
    if spec.modes.is_empty() {
        err(spec.judge.span, "`modes` lists no mode".into());
    }
    let mut unmapped = Vec::new();
    for u in &spec.unmapped {
        let key = normalized_name(&u.name);
        if let Some(m) = names.get(&key) {
            err(
                u.name.span,
                format!(
                    "`{}` is unmapped here but is a name of {}",
                    *u.name,
                    m.code()
                ),
            );
        }
        unmapped.push((u.name.value.clone(), u.why.clone()));
    }
    let user = checked_template(
        src,
        &spec.prompt.user,
        PROMPT_VARIABLES,
        "a judge's prompt",
        diags,
    );
    Some(JudgeFile {
        name: spec.judge.value,
        version: spec.version.value,
        description: spec.description.unwrap_or_default(),
        path: src.path.clone(),
        hash: blake3::hash(src.text.as_bytes()).to_hex().to_string(),
        text: src.text.clone(),
        categories,
        modes,
        names,
        unmapped,
        system: spec.prompt.system,
        user: user?,
    })
}

/// The text of the file at `path`, `what` it is naming it when it cannot
/// be read.
pub(crate) fn read_file(path: &Path, what: &str) -> Result<String, Vec<Diagnostic>> {
    std::fs::read_to_string(path).map_err(|e| {
        vec![Diagnostic::file(
            path,
            format!("cannot read the {what}: {e}"),
        )]
    })
}

/// `src` read as YAML into `T`, the first problem at its line and column.
pub(crate) fn parse_spec<T: serde::de::DeserializeOwned>(
    src: &SourceFile,
) -> Result<T, Vec<Diagnostic>> {
    let root = Node::parse(src).map_err(|(span, msg)| vec![src.error(span, msg)])?;
    from_node(&root).map_err(|e| vec![src.error(e.span.unwrap_or(root.span), e.message)])
}

/// A judge's `judge` (its name) and `version`, neither empty.
pub(crate) fn check_named(
    src: &SourceFile,
    judge: &Located<String>,
    version: &Located<String>,
    diags: &mut Diagnostics,
) {
    for (what, x) in [("judge", judge), ("version", version)] {
        if x.trim().is_empty() {
            diags.push(src.error(x.span, format!("`{what}` must not be empty")));
        }
    }
}

/// `text` compiled as a prompt template that reads only `variables` (what
/// `whose` prompt has); every problem reported at its line in `src`.
pub(crate) fn checked_template(
    src: &SourceFile,
    text: &Located<String>,
    variables: &[&str],
    whose: &str,
    diags: &mut Diagnostics,
) -> Option<Template> {
    match Template::compile(text) {
        Ok(t) => {
            for v in t.variables() {
                if !variables.contains(&v.as_str()) {
                    diags.push(src.error(
                        text.span,
                        format!(
                            "the prompt uses `{v}`, which {whose} does not have (it has: {}){}",
                            variables.join(", "),
                            did_you_mean(&v, variables.iter().copied())
                        ),
                    ));
                }
            }
            Some(t)
        }
        Err(e) => {
            diags.push(src.error(
                line_span(src, text.span, e.line),
                format!("prompt template: {}", e.message),
            ));
            None
        }
    }
}

/// A judge as a run applies it: its file, the models that run it, and how.
#[derive(Debug, Clone)]
pub struct JudgeUse {
    pub file: std::sync::Arc<JudgeFile>,
    /// Indices into the scenario's models; several make an ensemble.
    pub models: Vec<usize>,
    /// Judgements per model and trace; the label is their majority.
    pub repeats: usize,
    /// Fit each transcript into about this many tokens.
    pub max_trace_tokens: Option<usize>,
    /// Ask once more, with the parse error, when a reply cannot be read.
    pub reask: bool,
}
