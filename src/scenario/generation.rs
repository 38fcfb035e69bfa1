//! Generated counterfactuals: an agent is asked to change one or two stated
//! features of a reference case and keep the rest.
//!
//! Owns the plan (which reference rows of a CSV, and per counterfactual
//! which features to change, drawn with the scenario's seed keyed by row
//! ids), the built-in prompt, and reading what the agent wrote back into a
//! case and checking it: the stated features changed and, where the
//! reference's value is known, nothing else. The table is read as
//! [`crate::scenario::counterfactual::natural`] reads one; no I/O. The
//! engine (`engine::faithfulness`) makes the calls and stores each check.

use std::path::Path;

use rand::RngExt;
use rand::seq::SliceRandom;
use serde_json::{Map, Value};

use crate::scenario::counterfactual::{
    Case, Counterfactuals, DEFAULT_QUANTILES, FileText, Group, Member, binned_table, cell_value,
    drawn_references, id_ranks, is_missing, number, whole_setting,
};
use crate::scenario::diagnostic::{Diagnostics, SourceFile};
use crate::scenario::spec::{GeneratedSpec, NaturalSpec};
use crate::seed;

/// Counterfactuals asked for per reference when `per_reference` is absent.
const DEFAULT_PER_REFERENCE: usize = 5;
/// Most counterfactuals per reference.
const MOST_PER_REFERENCE: i64 = 100;

/// The built-in prompt of a counterfactual's writer, a minijinja template
/// over `question`, `case` (the reference as text), `features` (a list) and
/// `change` (the features to change, a list).
pub const GENERATE_PROMPT: &str = "Here is a case for the question: {{ question }}

{{ case }}

Write the same case with {{ change | join(\" and \") }} changed to a \
different, plausible value, and every other feature exactly as it is. Reply \
with one `feature: value` line for each of {{ features | join(\", \") }}, in \
that order, and nothing else.
";

/// A generated data set's plan, read from its table: the reference cases,
/// each followed by the counterfactuals to write, whose `fields` are (until
/// written) the reference's without its label and whose group member says
/// what to change. Features' values for simulated models are the cells'
/// numbers (0 for text or a missing cell).
pub fn generated(
    spec: &GeneratedSpec,
    scenario: &SourceFile,
    csv_path: &Path,
    csv_text: &str,
    seed: u64,
    diags: &mut Diagnostics,
) -> Option<Counterfactuals> {
    let before = diags.len();
    let per_reference = whole_setting(
        &spec.per_reference,
        "per_reference",
        1..=MOST_PER_REFERENCE,
        "",
        scenario,
        diags,
    )
    .unwrap_or_default()
    .unwrap_or(DEFAULT_PER_REFERENCE);
    let references = whole_setting(
        &spec.references,
        "references",
        1..=i64::MAX,
        "leave it out to use every eligible row",
        scenario,
        diags,
    )
    .unwrap_or_default();
    // Read as a natural table is (columns, ids, labels, duplicates); its
    // bins are not used.
    let table_spec = NaturalSpec {
        file: spec.file.clone(),
        label: spec.label.clone(),
        id: spec.id.clone(),
        features: spec.features.clone(),
        bins: None,
        quantiles: None,
        max_distance: None,
        min_group: None,
        max_group: None,
        balance: None,
        references: None,
    };
    let file = FileText::new(csv_path, csv_text);
    let table = binned_table(&table_spec, scenario, &file, DEFAULT_QUANTILES, diags);
    if diags.len() > before {
        return None;
    }
    let table = table?;
    let features: Vec<String> = table
        .features
        .iter()
        .map(|&c| table.header[c].clone())
        .collect();
    if features.len() < 2 {
        diags.push(scenario.error(
            spec.file.span,
            format!(
                "generated counterfactuals change one or two features and keep the rest, and {} has {} feature{}; give at least two",
                csv_path.display(),
                features.len(),
                if features.len() == 1 { "" } else { "s" }
            ),
        ));
        return None;
    }
    let rows = &table.rows;
    let rank = id_ranks(rows);
    // Only features a row knows are changed, and one is kept: a row needs
    // two it knows.
    let known = |r: usize| -> Vec<String> {
        table
            .features
            .iter()
            .zip(&features)
            .filter(|&(&c, _)| !is_missing(&rows[r].cells[c]))
            .map(|(_, f)| f.clone())
            .collect()
    };
    let eligible: Vec<usize> = (0..rows.len()).filter(|&r| known(r).len() >= 2).collect();
    if eligible.is_empty() {
        diags.push(scenario.error(
            spec.file.span,
            format!(
                "no row of {} ({} rows) knows two of its features, so none can have one changed and another kept; fill in missing cells or choose other `features`",
                csv_path.display(),
                rows.len()
            ),
        ));
        return None;
    }
    let chosen = drawn_references(rows, eligible.clone(), references, &rank, seed);
    let mut cases = Vec::new();
    let mut groups = Vec::new();
    for &r in &chosen {
        let row = &rows[r];
        let known = known(r);
        let fields: Map<String, Value> = table
            .header
            .iter()
            .zip(&row.cells)
            .map(|(h, cell)| (h.clone(), cell_value(cell)))
            .collect();
        let values: Vec<f64> = table
            .features
            .iter()
            .map(|&c| number(&row.cells[c]).unwrap_or(0.0))
            .collect();
        let reference = cases.len();
        cases.push(Case {
            id: row.id.clone(),
            line: row.line,
            fields: fields.clone(),
            bins: row.bins.clone(),
            values: values.clone(),
            label: row.label.clone(),
        });
        // A counterfactual's label is not known: it starts as the
        // reference without one.
        let mut unlabelled = fields.clone();
        unlabelled.insert(spec.label.value.clone(), Value::Null);
        let mut members = Vec::with_capacity(per_reference);
        for j in 0..per_reference {
            let change = changes(&known, &row.id, j, seed);
            members.push(Member {
                case: cases.len(),
                distance: change.len(),
                differing: change,
            });
            cases.push(Case {
                id: format!("{}~{}", row.id, j + 1),
                line: row.line,
                fields: unlabelled.clone(),
                bins: row.bins.clone(),
                values: values.clone(),
                label: String::new(),
            });
        }
        groups.push(Group { reference, members });
    }
    Some(Counterfactuals {
        features,
        bin_labels: table.bin_labels,
        cases,
        groups,
        eligible: eligible.len(),
        too_few: rows.len() - eligible.len(),
        duplicates: table.duplicates,
    })
}

/// The features counterfactual `j` of reference `id` changes, of those
/// its row knows (`features`): one or two (one when there are only two, so
/// that one is kept), drawn with the seed keyed by the reference's id, in
/// feature order. A row that knows fewer than two features gets none.
pub fn changes(features: &[String], id: &str, j: usize, seed: u64) -> Vec<String> {
    let mut rng = seed::rng(seed, &["generated change".into(), id.into(), j.into()]);
    let count = if features.len() >= 3 {
        rng.random_range(1..=2)
    } else {
        1
    };
    let mut order: Vec<usize> = (0..features.len()).collect();
    order.shuffle(&mut rng);
    let mut picked: Vec<usize> = order[..count].to_vec();
    picked.sort_unstable();
    picked.into_iter().map(|i| features[i].clone()).collect()
}

/// How a written counterfactual checked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The stated features changed and no other known one.
    Valid,
    /// A feature not stated changed (where the reference's value is known).
    ExtraChange,
    /// A stated feature was left as it was (or left out).
    Unchanged,
    /// No `feature: value` line was read.
    Unparsed,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::ExtraChange => "extra_change",
            Verdict::Unchanged => "unchanged",
            Verdict::Unparsed => "unparsed",
        }
    }
}

/// A written counterfactual, read and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub verdict: Verdict,
    /// The reference's fields with the written features' values in place
    /// (a feature left out keeps the reference's value).
    pub fields: Map<String, Value>,
    /// Per feature, a number for simulated models (0 for text).
    pub values: Vec<f64>,
    /// The features whose written value differs from a known reference
    /// value, in feature order.
    pub differing: Vec<String>,
}

/// Reads `text`, a writer's reply, as a case: `feature: value` lines (in
/// any order, with list markers, markdown emphasis or backticks around
/// either side; a feature's name matched case-insensitively, with spaces
/// for underscores), the first line per feature counting. Then checks it
/// against the reference's `fields`: `change` must differ, and no other
/// feature whose reference value is known. Values compare as numbers when
/// both are, else as trimmed text without regard to case.
pub fn read_written(
    text: &str,
    features: &[String],
    fields: &Map<String, Value>,
    change: &[String],
) -> Written {
    let wanted: Vec<String> = features.iter().map(|f| normalized(f)).collect();
    let mut written: Vec<Option<String>> = vec![None; features.len()];
    for line in text.lines() {
        let line = line
            .trim()
            .trim_start_matches(['-', '*', '•', '+', '>', ' ']);
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let Some(f) = wanted.iter().position(|w| *w == normalized(name)) else {
            continue;
        };
        if written[f].is_none() {
            written[f] = Some(unmarked(value).to_owned());
        }
    }
    let mut out = fields.clone();
    if written.iter().all(Option::is_none) {
        return Written {
            verdict: Verdict::Unparsed,
            values: values(features, &out),
            fields: out,
            differing: Vec::new(),
        };
    }
    let mut differing = Vec::new();
    for (feature, value) in features.iter().zip(&written) {
        let Some(value) = value else { continue };
        let before = fields.get(feature).unwrap_or(&Value::Null);
        // `unknown` is how a missing value is shown to models.
        let after = if value.eq_ignore_ascii_case("unknown") {
            Value::Null
        } else {
            cell_value(value)
        };
        if !before.is_null() && !same(before, &after) {
            differing.push(feature.clone());
        }
        out.insert(feature.clone(), after);
    }
    let verdict = if differing.iter().any(|d| !change.contains(d)) {
        Verdict::ExtraChange
    } else if change.iter().any(|c| !differing.contains(c)) {
        Verdict::Unchanged
    } else {
        Verdict::Valid
    };
    Written {
        verdict,
        values: values(features, &out),
        fields: out,
        differing,
    }
}

/// Per feature, its value's number (0 for text or a missing value).
fn values(features: &[String], fields: &Map<String, Value>) -> Vec<f64> {
    features
        .iter()
        .map(|f| fields.get(f).and_then(Value::as_f64).unwrap_or(0.0))
        .collect()
}

/// A feature's name as compared: lower case, spaces and hyphens as
/// underscores, without markup.
fn normalized(name: &str) -> String {
    unmarked(name).to_lowercase().replace([' ', '-'], "_")
}

/// Text without surrounding whitespace, emphasis, backticks or quotes.
fn unmarked(text: &str) -> &str {
    text.trim().trim_matches(['*', '_', '`', '"', '\'', ' '])
}

/// Whether two cells hold one value: numbers by value, text trimmed and
/// without regard to case; missing only equals missing.
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => match (a, b) {
            (Value::String(x), Value::String(y)) => x.trim().eq_ignore_ascii_case(y.trim()),
            _ => a == b,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features() -> Vec<String> {
        ["age", "chest pain", "sex"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn reference() -> Map<String, Value> {
        serde_json::json!({"age": 63, "chest pain": "typical", "sex": null, "label": "1"})
            .as_object()
            .unwrap()
            .clone()
    }

    fn check(text: &str, change: &[&str]) -> Written {
        let change: Vec<String> = change.iter().map(|s| s.to_string()).collect();
        read_written(text, &features(), &reference(), &change)
    }

    #[test]
    fn a_stated_change_alone_is_valid() {
        let w = check("age: 70\nchest pain: typical\nsex: male", &["age"]);
        assert_eq!(w.verdict, Verdict::Valid);
        assert_eq!(w.differing, vec!["age"]);
        assert_eq!(w.fields["age"], serde_json::json!(70));
        // The reference's unknown `sex` may be written without counting.
        assert_eq!(w.fields["sex"], serde_json::json!("male"));
        assert_eq!(w.fields["label"], serde_json::json!("1"));
        assert_eq!(w.values, vec![70.0, 0.0, 0.0]);
    }

    #[test]
    fn markup_case_and_order_do_not_matter() {
        let w = check(
            "Here it is:\n- **Chest_Pain**: `atypical`\n* AGE: 63.0\n",
            &["chest pain"],
        );
        assert_eq!(w.verdict, Verdict::Valid, "{w:?}");
        assert_eq!(w.differing, vec!["chest pain"]);
    }

    #[test]
    fn another_change_is_an_extra_change() {
        let w = check("age: 70\nchest pain: atypical", &["age"]);
        assert_eq!(w.verdict, Verdict::ExtraChange);
        assert_eq!(w.differing, vec!["age", "chest pain"]);
    }

    #[test]
    fn a_stated_feature_kept_or_left_out_is_unchanged() {
        assert_eq!(
            check("age: 63\nchest pain: atypical", &["age", "chest pain"]).verdict,
            Verdict::Unchanged
        );
        assert_eq!(
            check("chest pain: atypical", &["age", "chest pain"]).verdict,
            Verdict::Unchanged
        );
    }

    #[test]
    fn a_reply_without_features_is_unparsed() {
        let w = check("I cannot do that.", &["age"]);
        assert_eq!(w.verdict, Verdict::Unparsed);
        assert_eq!(w.fields, reference());
    }

    #[test]
    fn changes_are_one_or_two_seeded_features() {
        let f = features();
        let mut sizes = [0; 3];
        for j in 0..200 {
            let c = changes(&f, "r1", j, 7);
            assert_eq!(c, changes(&f, "r1", j, 7));
            assert!(c.iter().all(|x| f.contains(x)));
            sizes[c.len()] += 1;
        }
        assert!(sizes[1] > 50 && sizes[2] > 50, "{sizes:?}");
        let two = &f[..2];
        assert!((0..50).all(|j| changes(two, "r", j, 1).len() == 1));
    }
}
