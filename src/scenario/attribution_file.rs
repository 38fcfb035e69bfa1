//! The attribution prompts file (`judges/attribution.yaml`): the prompts
//! of `crucible blame`'s judge methods — all at once, step by step, binary
//! search — checked like a judge file, every problem at its line and
//! column, each template allowed only the variables its method fills in.
//! The judge layer renders them and reads the replies.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::scenario::diagnostic::{Diagnostic, Diagnostics, SourceFile};
use crate::scenario::judge_file::{check_named, checked_template, parse_spec, read_file};
use crate::scenario::node::Located;
use crate::scenario::template::Template;

/// The text of `judges/attribution.yaml`, built into the binary.
pub const ATTRIBUTION: &str = include_str!("../../judges/attribution.yaml");

/// What every method's prompt may read.
const COMMON: &[&str] = &["task", "expected", "transcript", "steps", "agents"];
/// And what each method adds.
const STEP_BY_STEP: &[&str] = &["step", "agent"];
const BINARY_SEARCH: &[&str] = &["start", "mid", "next", "end"];

/// The agent a message's sender names: Who&When's hand-crafted logs name
/// senders by agent and action, "Orchestrator (thought)", and blame the
/// agent, "Orchestrator"; a trailing action in parentheses is dropped,
/// nothing else. Replies and ground truth are compared through it.
pub fn agent_of(sender: &str) -> &str {
    match sender.find(" (") {
        Some(i) if sender.ends_with(')') => &sender[..i],
        _ => sender,
    }
}

/// One method's prompt.
#[derive(Debug, Clone)]
pub struct MethodPrompt {
    pub system: String,
    pub user: Template,
}

/// A checked attribution prompts file.
#[derive(Debug, Clone)]
pub struct AttributionFile {
    pub name: String,
    pub version: String,
    pub description: String,
    pub path: PathBuf,
    /// blake3 (64 hex digits) of the text.
    pub hash: String,
    pub all_at_once: MethodPrompt,
    pub step_by_step: MethodPrompt,
    pub binary_search: MethodPrompt,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    judge: Located<String>,
    version: Located<String>,
    #[serde(default)]
    description: Option<String>,
    all_at_once: PromptSpec,
    step_by_step: PromptSpec,
    binary_search: PromptSpec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromptSpec {
    system: String,
    user: Located<String>,
}

impl AttributionFile {
    /// The prompts shipped with crucible, built in.
    pub fn builtin() -> AttributionFile {
        AttributionFile::from_text(Path::new("judges/attribution.yaml"), ATTRIBUTION.to_owned())
            .expect("the built-in judges/attribution.yaml is valid (a unit test checks it)")
    }

    /// Read and check the file at `path`.
    pub fn load(path: &Path) -> Result<AttributionFile, Vec<Diagnostic>> {
        AttributionFile::from_text(path, read_file(path, "attribution prompts")?)
    }

    /// Check `text`, the file at `path`.
    pub fn from_text(path: &Path, text: String) -> Result<AttributionFile, Vec<Diagnostic>> {
        let src = SourceFile::new(path, text);
        let mut diags = Diagnostics::default();
        let spec: FileSpec = parse_spec(&src)?;
        check_named(&src, &spec.judge, &spec.version, &mut diags);
        let mut method = |p: &PromptSpec, extra: &[&str], whose: &str| {
            let allowed: Vec<&str> = COMMON.iter().chain(extra).copied().collect();
            checked_template(&src, &p.user, &allowed, whose, &mut diags).map(|user| MethodPrompt {
                system: p.system.trim().to_owned(),
                user,
            })
        };
        let all_at_once = method(&spec.all_at_once, &[], "the all-at-once prompt");
        let step_by_step = method(&spec.step_by_step, STEP_BY_STEP, "the step-by-step prompt");
        let binary_search = method(
            &spec.binary_search,
            BINARY_SEARCH,
            "the binary-search prompt",
        );
        match (all_at_once, step_by_step, binary_search) {
            (Some(all_at_once), Some(step_by_step), Some(binary_search)) if diags.is_empty() => {
                Ok(AttributionFile {
                    name: spec.judge.value,
                    version: spec.version.value,
                    description: spec.description.unwrap_or_default().trim().to_owned(),
                    path: src.path.clone(),
                    hash: blake3::hash(src.text.as_bytes()).to_hex().to_string(),
                    all_at_once,
                    step_by_step,
                    binary_search,
                })
            }
            _ => Err(diags.into_sorted()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_prompts_are_valid() {
        let f = AttributionFile::builtin();
        assert_eq!(f.name, "attribution");
        assert!(f.binary_search.user.variables().contains("next"));
    }

    #[test]
    fn a_variable_the_method_lacks_is_reported_where_it_is() {
        let text = ATTRIBUTION.replace(
            "The most recent step (Step {{ step }})",
            "The step ({{ start }})",
        );
        let diags = AttributionFile::from_text(Path::new("a.yaml"), text).unwrap_err();
        let shown = diags[0].to_string();
        assert!(shown.contains("a.yaml:"), "{shown}");
        assert!(
            shown.contains("`start`, which the step-by-step prompt does not have"),
            "{shown}"
        );
    }
}
