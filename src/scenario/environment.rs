//! `${NAME}` and `${NAME:-default}` in a scenario's string values: the
//! environment fills them in (a server's URL, a model's name), so one file
//! runs wherever its server is.
//!
//! The values used become part of the scenario's text, as `--set` overrides
//! do: the loader appends one comment line per variable, `# crucible: --env
//! NAME=VALUE` (or `# crucible: --env NAME` for one that was unset, so its
//! defaults apply). A stored scenario carries those lines, and they take
//! precedence over the environment, so resume and replay see exactly the
//! values the run was made with. An unset variable without a default is an
//! error at its value's position. `$${` writes a literal `${`; a `${` not
//! followed by a name and `}` or `:-` (a template's `${{ price }}`) is left
//! as written. Variables that look like secrets are refused: the text is
//! stored with the run, and keys belong in `api_key_env`.

use std::collections::BTreeMap;

use crate::scenario::diagnostic::{SourceFile, Span};
use crate::scenario::node::{Node, Value};

/// Variables a scenario used: each name with its value (`None`: unset).
pub type Used = Vec<(String, Option<String>)>;

/// What starts a line recording a variable's value.
pub const PREFIX: &str = "# crucible: --env ";

/// Each variable a text records: its value, or `None` if it was unset.
fn recorded(text: &str) -> BTreeMap<String, Option<String>> {
    text.lines()
        .filter_map(|l| l.strip_prefix(PREFIX))
        .map(|rest| match rest.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (rest.to_owned(), None),
        })
        .collect()
}

/// Expand every variable in `root`'s string values. Values come from the
/// `--env` lines of `source`, then from `lookup` (the process environment).
/// Returns the variables used that `source` does not record yet, to be
/// appended with [`with_recorded`], and the problems at their values.
pub fn expand(
    source: &SourceFile,
    root: &mut Node,
    lookup: impl Fn(&str) -> Option<String>,
) -> (Used, Vec<(Span, String)>) {
    let known = recorded(&source.text);
    let mut fresh: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut value_of = |name: &str| -> Result<Option<String>, String> {
        if looks_secret(name) {
            return Err(format!(
                "`${{{name}}}` would store a secret with the run's scenario; name the variable in the model's `api_key_env` instead"
            ));
        }
        if let Some(v) = known.get(name).or_else(|| fresh.get(name)) {
            return Ok(v.clone());
        }
        let v = lookup(name);
        if v.as_deref().is_some_and(|v| v.contains('\n')) {
            return Err(format!(
                "environment variable {name} holds a line break, which a scenario value cannot take from it"
            ));
        }
        fresh.insert(name.to_owned(), v.clone());
        Ok(v)
    };
    visit(
        root,
        &mut |span, text| match substitute(text, &mut value_of) {
            Ok(out) => Some(out),
            Err(message) => {
                problems.push((span, message));
                None
            }
        },
    );
    (fresh.into_iter().collect(), problems)
}

/// `text` with one `--env` line per variable in `used`.
pub fn with_recorded(text: &str, used: &Used) -> String {
    let mut out = text.to_owned();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    for (name, value) in used {
        out.push_str(PREFIX);
        out.push_str(name);
        if let Some(v) = value {
            out.push('=');
            out.push_str(v);
        }
        out.push('\n');
    }
    out
}

/// Call `f` on every string value under `node` (not on keys), replacing
/// the value with what it returns.
fn visit(node: &mut Node, f: &mut impl FnMut(Span, &str) -> Option<String>) {
    match &mut node.value {
        Value::Str(s) if s.contains("${") => {
            if let Some(out) = f(node.span, s) {
                *s = out;
            }
        }
        Value::Seq(items) => items.iter_mut().for_each(|n| visit(n, f)),
        Value::Map(entries) => entries.iter_mut().for_each(|(_, v)| visit(v, f)),
        _ => {}
    }
}

/// `text` with its variables replaced by `value_of`'s values.
fn substitute(
    text: &str,
    value_of: &mut impl FnMut(&str) -> Result<Option<String>, String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        let (before, from) = rest.split_at(at);
        if let Some(kept) = before.strip_suffix('$') {
            // `$${` is a literal `${`.
            out.push_str(kept);
            out.push_str("${");
            rest = &from[2..];
            continue;
        }
        out.push_str(before);
        let Some((name, default, len)) = reference(&from[2..]) else {
            out.push_str("${");
            rest = &from[2..];
            continue;
        };
        match (value_of(name)?, default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err(format!(
                    "environment variable {name} is not set; export it, or give a default: ${{{name}:-VALUE}}"
                ));
            }
        }
        rest = &from[2 + len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A variable reference after `${`: its name, its default, and its length
/// up to and including the closing `}`.
fn reference(after: &str) -> Option<(&str, Option<&str>, usize)> {
    let name_len = after
        .char_indices()
        .take_while(|&(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()))
        .count();
    if name_len == 0 {
        return None;
    }
    let (name, tail) = after.split_at(name_len);
    if tail.starts_with('}') {
        return Some((name, None, name_len + 1));
    }
    let default = tail.strip_prefix(":-")?;
    let end = default.find('}')?;
    Some((name, Some(&default[..end]), name_len + 2 + end + 1))
}

/// Names of variables that hold credentials by convention.
fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["KEY", "TOKEN", "SECRET", "PASSWORD"]
        .iter()
        .any(|w| upper.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_with(text: &str, env: &[(&str, &str)]) -> (serde_json::Value, Used, Vec<String>) {
        let source = SourceFile::new("s.yaml", text);
        let mut root = Node::parse(&source).unwrap();
        let (used, problems) = expand(&source, &mut root, |k| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        });
        let problems = problems
            .into_iter()
            .map(|(span, m)| format!("{}:{}: {m}", span.line, span.col))
            .collect();
        (root.to_json(), used, problems)
    }

    #[test]
    fn variables_take_the_environment_then_their_default() {
        let (json, used, problems) = expand_with(
            "a: ${HOST:-localhost}:${PORT}/v1\nb: ['${HOST:-h}x', {c: '${PORT}'}]\nc: plain\n",
            &[("PORT", "8080")],
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(json["a"], "localhost:8080/v1");
        assert_eq!(json["b"], serde_json::json!(["hx", {"c": "8080"}]));
        assert_eq!(
            used,
            vec![("HOST".into(), None), ("PORT".into(), Some("8080".into()))]
        );
        // An unset variable without a default is an error, at its value.
        let (_, _, problems) = expand_with("a: x\nb: ${HOST}\n", &[]);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with("2:4: environment variable HOST is not set"),
            "{problems:?}"
        );
    }

    #[test]
    fn recorded_values_outrank_the_environment() {
        let text = with_recorded(
            "a: ${HOST:-localhost}/${PORT}\n",
            &vec![("HOST".into(), None), ("PORT".into(), Some("9".into()))],
        );
        assert!(
            text.ends_with("# crucible: --env HOST\n# crucible: --env PORT=9\n"),
            "{text}"
        );
        let (json, used, problems) = expand_with(&text, &[("HOST", "elsewhere"), ("PORT", "1")]);
        assert!(
            problems.is_empty() && used.is_empty(),
            "{problems:?} {used:?}"
        );
        assert_eq!(json["a"], "localhost/9");
    }

    #[test]
    fn dollar_braces_that_are_not_variables_stay_as_written() {
        let (json, used, problems) = expand_with(
            "a: 'costs ${{ price }} or $${HOME} or ${ x }'\n",
            &[("HOME", "/h")],
        );
        assert!(
            problems.is_empty() && used.is_empty(),
            "{problems:?} {used:?}"
        );
        assert_eq!(json["a"], "costs ${{ price }} or ${HOME} or ${ x }");
    }

    #[test]
    fn secrets_are_refused() {
        let (_, _, problems) = expand_with("a: ${OPENAI_API_KEY}\n", &[("OPENAI_API_KEY", "sk")]);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("api_key_env"), "{problems:?}");
    }
}
