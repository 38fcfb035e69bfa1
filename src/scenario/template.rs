//! Prompt templates: minijinja over a task's fields, where an undefined
//! variable is an error rather than an empty string.

use std::collections::BTreeSet;
use std::sync::Arc;

use minijinja::{Environment, UndefinedBehavior};

use crate::scenario::diagnostic::{SourceFile, Span};

/// A compiled prompt template.
#[derive(Clone)]
pub struct Template {
    env: Arc<Environment<'static>>,
    source: String,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Template").field(&self.source).finish()
    }
}

/// A template syntax error with its 1-based line within the template.
#[derive(Debug, Clone)]
pub struct TemplateError {
    pub line: usize,
    pub message: String,
}

const NAME: &str = "prompt";

impl Template {
    pub fn compile(source: &str) -> Result<Template, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.add_template_owned(NAME, source.to_owned())
            .map_err(|e| TemplateError {
                line: e.line().unwrap_or(1),
                message: e.detail().unwrap_or("syntax error").to_owned(),
            })?;
        Ok(Template {
            env: Arc::new(env),
            source: source.to_owned(),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Top-level variables the template reads.
    pub fn variables(&self) -> BTreeSet<String> {
        let t = self.env.get_template(NAME).expect("template was added");
        t.undeclared_variables(false).into_iter().collect()
    }

    pub fn render(
        &self,
        ctx: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String, String> {
        let t = self.env.get_template(NAME).expect("template was added");
        t.render(minijinja::value::Serde(ctx)).map_err(|e| {
            let mut msg = e.kind().to_string();
            if let Some(d) = e.detail() {
                msg.push_str(": ");
                msg.push_str(d);
            }
            msg
        })
    }
}

/// Where line `line` of a template written at `span` stands in the file.
pub fn line_span(src: &SourceFile, span: Span, line: usize) -> Span {
    let block = src
        .line_text(span.line)
        .and_then(|l| l.get(span.col.saturating_sub(1)..))
        .is_some_and(|rest| rest.starts_with('|') || rest.starts_with('>'));
    if line <= 1 && !block {
        return span;
    }
    let target = span.line + line - 1 + usize::from(block);
    let indent = src
        .line_text(target)
        .map_or(0, |l| l.len() - l.trim_start().len());
    Span::new(target, indent + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_fields_and_lists_variables() {
        let t = Template::compile("Q: {{ question }} ({{ n + 1 }})").unwrap();
        let ctx = json!({"question": "2+2?", "n": 1});
        assert_eq!(t.render(ctx.as_object().unwrap()).unwrap(), "Q: 2+2? (2)");
        assert_eq!(
            t.variables().into_iter().collect::<Vec<_>>(),
            vec!["n", "question"]
        );
    }

    #[test]
    fn undefined_variable_is_an_error() {
        let t = Template::compile("{{ missing }}").unwrap();
        assert!(t.render(&serde_json::Map::new()).is_err());
    }

    #[test]
    fn syntax_error_reports_its_line() {
        let e = Template::compile("line one\n{{ oops ").unwrap_err();
        assert_eq!(e.line, 2);
    }
}
