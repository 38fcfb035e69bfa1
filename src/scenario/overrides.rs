//! Command-line overrides: `--set PATH=VALUE` replaces one value of the
//! scenario, so the same file runs on a simulated model or a real one.
//!
//! An override becomes part of the scenario's text: the loader appends one
//! comment line per override, `# crucible: --set PATH=VALUE`, and applies
//! every such line at the end of a text to its parsed tree before any section
//! is read. So an overridden value is validated like a written one, its
//! diagnostics point at that line, and the text stored with a run (and its
//! hash) carries the overrides, which resume and replay apply again.

use crate::scenario::diagnostic::{SourceFile, Span};
use crate::scenario::node::{Node, Value};

/// What starts an override line.
pub const PREFIX: &str = "# crucible: --set ";

/// `text` with one override line per `PATH=VALUE` in `overrides`.
pub fn with_overrides(text: &str, overrides: &[String]) -> String {
    if overrides.is_empty() {
        return text.to_owned();
    }
    let mut out = text.to_owned();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    for o in overrides {
        out.push_str(PREFIX);
        out.push_str(o);
        out.push('\n');
    }
    out
}

/// Check one `--set` argument's form: `PATH=VALUE`, a dotted path of keys
/// and list indices, and a one-line YAML value.
pub fn parse_argument(arg: &str) -> Result<String, String> {
    let Some((path, value)) = arg.split_once('=') else {
        return Err(format!(
            "`{arg}` is not PATH=VALUE (e.g. models.solver.provider=openai)"
        ));
    };
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err(format!(
            "`{path}` is not a dotted path of keys (e.g. models.solver.base_url)"
        ));
    }
    if value.contains('\n') {
        return Err(format!(
            "the value of `{path}` spans lines; write it on one line, in flow style (e.g. {path}='{{a: 1, b: [2, 3]}}')"
        ));
    }
    Ok(arg.to_owned())
}

/// Apply every override line of `source` to `root`; a problem is returned
/// at the override's line.
pub fn apply(source: &SourceFile, root: &mut Node) -> Vec<(Span, String)> {
    let mut problems = Vec::new();
    for (i, line) in source.text.lines().enumerate() {
        let Some(arg) = line.strip_prefix(PREFIX) else {
            continue;
        };
        let at = |col: usize| Span::new(i + 1, PREFIX.len() + col);
        let Some((path, value)) = arg.split_once('=') else {
            problems.push((at(1), format!("`{arg}` is not PATH=VALUE")));
            continue;
        };
        let value_col = path.len() + 2;
        let mut value = match Node::parse(&SourceFile::new(&source.path, value)) {
            Ok(v) => v,
            Err((span, message)) => {
                problems.push((at(value_col + span.col - 1), message));
                continue;
            }
        };
        // The value is one line: place its nodes on the override's line.
        relocate(&mut value, i + 1, PREFIX.len() + value_col - 1);
        if let Err(message) = set(root, path, value, at(1)) {
            problems.push((at(1), message));
        }
    }
    problems
}

fn relocate(node: &mut Node, line: usize, offset: usize) {
    node.span = Span::new(line, node.span.col + offset);
    match &mut node.value {
        Value::Seq(items) => items.iter_mut().for_each(|n| relocate(n, line, offset)),
        Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
            relocate(k, line, offset);
            relocate(v, line, offset);
        }),
        _ => {}
    }
}

/// Replace the value at dotted `path` under `root` with `value`, creating
/// missing keys (a key written by an override is located at `at`).
fn set(root: &mut Node, path: &str, value: Node, at: Span) -> Result<(), String> {
    let mut node = root;
    let mut walked = String::new();
    let segments: Vec<&str> = path.split('.').collect();
    for (depth, segment) in segments.iter().enumerate() {
        let last = depth + 1 == segments.len();
        if matches!(node.value, Value::Null) {
            node.value = Value::Map(Vec::new());
        }
        let kind = node.kind();
        let here = if walked.is_empty() {
            "the document".to_owned()
        } else {
            format!("`{walked}`")
        };
        let next = match &mut node.value {
            Value::Map(entries) => {
                let found = entries
                    .iter()
                    .position(|(k, _)| k.scalar_text().as_deref() == Some(segment));
                let index = found.unwrap_or_else(|| {
                    entries.push((
                        Node {
                            span: at,
                            value: Value::Str((*segment).to_owned()),
                        },
                        Node {
                            span: at,
                            value: Value::Null,
                        },
                    ));
                    entries.len() - 1
                });
                &mut entries[index].1
            }
            Value::Seq(items) => {
                let len = items.len();
                let index = segment
                    .parse::<usize>()
                    .ok()
                    .filter(|&i| i < len)
                    .ok_or_else(|| {
                        format!(
                            "cannot set `{path}`: {here} is a list of {len}, so `{segment}` must be an index from 0 to {}",
                            len.saturating_sub(1)
                        )
                    })?;
                &mut items[index]
            }
            _ => {
                return Err(format!(
                    "cannot set `{path}`: {here} is {kind}, not a mapping or a list"
                ));
            }
        };
        if !walked.is_empty() {
            walked.push('.');
        }
        walked.push_str(segment);
        if last {
            *next = value;
            return Ok(());
        }
        node = next;
    }
    unreachable!("a path has at least one segment")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, overrides: &[&str], want: &str) {
        let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        let source = SourceFile::new("s.yaml", with_overrides(text, &overrides));
        let mut root = Node::parse(&source).unwrap();
        let problems = apply(&source, &mut root);
        let got = if problems.is_empty() {
            root.to_json().to_string()
        } else {
            problems
                .iter()
                .map(|(s, m)| format!("{}:{} {m}", s.line, s.col))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(got, want, "{overrides:?}");
    }

    #[test]
    fn overrides_replace_insert_and_index() {
        let text = "a: {b: 1, c: [x, y]}\nd: 2\n";
        check(text, &["a.b=5"], r#"{"a":{"b":5,"c":["x","y"]},"d":2}"#);
        check(text, &["a.c.1=z"], r#"{"a":{"b":1,"c":["x","z"]},"d":2}"#);
        check(
            text,
            &["e.f={g: [1, 2]}"],
            r#"{"a":{"b":1,"c":["x","y"]},"d":2,"e":{"f":{"g":[1,2]}}}"#,
        );
        check(text, &["a=null", "a.b=3"], r#"{"a":{"b":3},"d":2}"#);
        // A later override wins.
        check(
            text,
            &["d=3", "d=4"],
            r#"{"a":{"b":1,"c":["x","y"]},"d":4}"#,
        );
    }

    #[test]
    fn override_problems_point_at_their_line() {
        let text = "a: {b: 1, c: [x, y]}\nd: 2\n";
        check(
            text,
            &["a.c.2=z"],
            "3:19 cannot set `a.c.2`: `a.c` is a list of 2, so `2` must be an index from 0 to 1",
        );
        check(
            text,
            &["d.e=1"],
            "3:19 cannot set `d.e`: `d` is an integer, not a mapping or a list",
        );
        check(text, &["d=[1"], "3:21 invalid YAML: unclosed bracket '['");
        check(
            "[1, 2]",
            &["models.x=1"],
            "2:19 cannot set `models.x`: the document is a list of 2, so `models` must be an index from 0 to 1",
        );
    }

    #[test]
    fn override_values_are_located_on_their_line() {
        let source = SourceFile::new("s.yaml", with_overrides("a: 1", &["b={c: 2}".into()]));
        let mut root = Node::parse(&source).unwrap();
        assert!(apply(&source, &mut root).is_empty());
        let b = root.get("b").unwrap();
        assert_eq!(b.span, Span::new(2, 21));
        assert_eq!(b.get("c").unwrap().span, Span::new(2, 25));
    }

    #[test]
    fn arguments_need_a_path_and_one_line() {
        assert!(parse_argument("models.sim.provider=openai").is_ok());
        assert!(parse_argument("a=").is_ok());
        for bad in ["novalue", "=x", "a..b=1", "a=1\n2"] {
            assert!(parse_argument(bad).is_err(), "{bad}");
        }
    }
}
