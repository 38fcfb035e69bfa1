//! Counterfactual cases for faithfulness experiments (Normalized
//! Simulatability Gain): for each reference case, other cases that differ
//! from it in a few features.
//!
//! Owns reading a faithfulness data set's cases: a CSV table whose rows are
//! binned and grouped by Hamming distance over their binned features
//! ([`natural`]), or a JSONL file of given `{reference, counterfactual}`
//! pairs ([`given`]). No I/O: the validator reads the files and passes their
//! text in. Problems with a data set's settings are diagnostics at their
//! place in the scenario, problems with a file's content at the file's line
//! and column. Every random choice draws from [`seed`], keyed by the rows'
//! ids, so the groups depend on the table's rows but not on their order.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

use rand::RngExt;
use rand::seq::SliceRandom;
use serde_json::{Map, Number, Value};

use crate::scenario::diagnostic::{Diagnostic, Diagnostics, SourceFile, Span, did_you_mean};
use crate::scenario::json_text::{kind, object_entries};
use crate::scenario::node::Located;
use crate::scenario::spec::{BinsSpec, NaturalSpec};
use crate::seed;

/// Counterfactual groups read from a table or a pairs file.
#[derive(Debug, Clone, PartialEq)]
pub struct Counterfactuals {
    /// Feature names, in order.
    pub features: Vec<String>,
    /// Per feature, the label of each bin (e.g. "[40, 50)", "≥ 60", "male",
    /// "missing"), indexed by bin index.
    pub bin_labels: Vec<Vec<String>>,
    /// The cases used (references and their counterfactuals only, each
    /// once), in file order.
    pub cases: Vec<Case>,
    /// One group per reference used, in the references' file order.
    pub groups: Vec<Group>,
    /// Rows eligible as references (with at least `min_group` candidates)
    /// before `references` sampling; for given pairs, the references.
    pub eligible: usize,
    /// Rows not eligible as references (0 for given pairs).
    pub too_few: usize,
    /// Duplicate rows (natural) or repeated pairs (given) dropped.
    pub duplicates: usize,
}

/// One case: a row of the table, or a reference or counterfactual of a pairs file.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub id: String,
    /// 1-based line of the file the case was read from (its first, for a
    /// given case on several lines).
    pub line: usize,
    /// Every column's value as read: numbers as JSON numbers, other text as
    /// strings, empty, `?` or `nan` cells as null. For given pairs, the
    /// case's object as written.
    pub fields: Map<String, Value>,
    /// Per feature: the bin index (natural), or for given pairs the index of
    /// the value among the feature's distinct values in file order.
    pub bins: Vec<u32>,
    /// Per feature, a number for simulated models: the bin index (natural)
    /// or the value's number (given; 0 for anything but a number).
    pub values: Vec<f64>,
    /// The label's value as text ("" for given cases without a `label`).
    pub label: String,
}

/// A reference and its counterfactuals.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Index into [`Counterfactuals::cases`].
    pub reference: usize,
    /// In the order they were chosen (natural) or written (given).
    pub members: Vec<Member>,
}

/// One counterfactual of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// Index into [`Counterfactuals::cases`].
    pub case: usize,
    /// How many features differ from the reference.
    pub distance: usize,
    /// The names of the features that differ, in feature order.
    pub differing: Vec<String>,
}

pub(super) const DEFAULT_QUANTILES: usize = 4;
const DEFAULT_MAX_DISTANCE: usize = 2;
const DEFAULT_MIN_GROUP: usize = 5;
const DEFAULT_MAX_GROUP: usize = 10;
/// The neighbour index keeps a set of features as the bits of a `u64`.
const MAX_FEATURES: usize = 64;
const MISSING: &str = "missing";

/// Natural counterfactuals from CSV text.
///
/// `scenario` is the scenario file (diagnostics about `spec`'s settings are
/// at their spans in it), `csv_path` the CSV's path (diagnostics about its
/// content are at its line and column), `seed` the scenario's seed. Every
/// problem is pushed to `diags`; the result is `None` when there is one.
///
/// - Rows identical in every column but the id column are duplicates: the
///   first is kept, the others dropped and counted.
/// - Missing cells (empty, `?`, or `nan` as Python prints one) get a bin of
///   their own, after the others, labelled `missing`.
/// - A column `bins` gives edges `[e1..ek]` has k+1 bins (`< e1`,
///   `[e1, e2)`, ..., `≥ ek`); one it gives a number q has q quantile bins.
///   A numeric column `bins` does not name, with more distinct values than
///   `quantiles`, has `quantiles` quantile bins. Quantile edges are the
///   values at ⌊j·n/q⌋ (j = 1..q−1) of the kept rows' sorted values, equal
///   edges merged and an edge at the smallest value dropped (its lower bin
///   would be empty). Other columns are categorical: a bin per distinct
///   value, numbers in numeric order and text with runs of digits compared
///   as numbers (`5-9` before `10-14`).
/// - A row's candidates are the rows at Hamming distance 1..=`max_distance`
///   over the binned features; a row with at least `min_group` is eligible.
/// - `references` eligible rows are drawn by a seeded key of their id (all
///   when absent or larger). Each reference's candidates are put in a
///   seeded order of their own (keyed by the reference's id), nearer
///   distances first; with `balance`, members are taken round-robin over
///   the label's classes in a seeded order, else from the front, up to
///   `max_group`.
pub fn natural(
    spec: &NaturalSpec,
    scenario: &SourceFile,
    csv_path: &Path,
    csv_text: &str,
    seed: u64,
    diags: &mut Diagnostics,
) -> Option<Counterfactuals> {
    let before = diags.len();
    let settings = settings(spec, scenario, diags);
    let quantiles = settings.as_ref().map_or(DEFAULT_QUANTILES, |s| s.quantiles);
    let file = FileText::new(csv_path, csv_text);
    let table = binned_table(spec, scenario, &file, quantiles, diags);
    if diags.len() > before {
        return None;
    }
    choose(table?, &settings?, seed, spec, scenario, csv_path, diags)
}

/// A data set's settings, checked, with their defaults.
struct Settings {
    quantiles: usize,
    max_distance: usize,
    min_group: usize,
    max_group: usize,
    balance: bool,
    references: Option<usize>,
}

fn settings(
    spec: &NaturalSpec,
    scenario: &SourceFile,
    diags: &mut Diagnostics,
) -> Option<Settings> {
    let mut valid = true;
    let mut whole = |setting: &Option<Located<i64>>, name: &str, least: i64, why: &str| {
        whole_setting(setting, name, least..=i64::MAX, why, scenario, diags)
            .map_err(|()| valid = false)
            .ok()
            .flatten()
    };
    let quantiles = whole(
        &spec.quantiles,
        "quantiles",
        2,
        "one bin would make every row alike",
    );
    let max_distance = whole(
        &spec.max_distance,
        "max_distance",
        1,
        "a counterfactual differs from its reference in at least one feature",
    );
    let min_group = whole(
        &spec.min_group,
        "min_group",
        1,
        "a reference needs a counterfactual to be measured",
    );
    let max_group = whole(
        &spec.max_group,
        "max_group",
        1,
        "a reference needs a counterfactual to be measured",
    );
    let references = whole(
        &spec.references,
        "references",
        1,
        "leave it out to use every eligible row",
    );
    let (min_group, max_group) = (
        min_group.unwrap_or(DEFAULT_MIN_GROUP),
        max_group.unwrap_or(DEFAULT_MAX_GROUP),
    );
    if valid && max_group < min_group {
        let at = spec.max_group.as_ref().or(spec.min_group.as_ref());
        let span = at.map_or(spec.file.span, |s| s.span);
        diags.push(scenario.error(
            span,
            format!(
                "`max_group` ({max_group}) is smaller than `min_group` ({min_group}); \
                 raise `max_group` or lower `min_group`"
            ),
        ));
        valid = false;
    }
    valid.then_some(Settings {
        quantiles: quantiles.unwrap_or(DEFAULT_QUANTILES),
        max_distance: max_distance.unwrap_or(DEFAULT_MAX_DISTANCE),
        min_group,
        max_group,
        balance: spec.balance.as_ref().is_none_or(|b| b.value),
        references,
    })
}

/// A whole-number setting of a data set, `None` when absent; outside
/// `range`, reported at its place in the scenario (with `why`, when there
/// is one) and an error.
pub(super) fn whole_setting(
    setting: &Option<Located<i64>>,
    name: &str,
    range: std::ops::RangeInclusive<i64>,
    why: &str,
    scenario: &SourceFile,
    diags: &mut Diagnostics,
) -> Result<Option<usize>, ()> {
    let Some(value) = setting.as_ref() else {
        return Ok(None);
    };
    if range.contains(&value.value) {
        return Ok(Some(usize::try_from(value.value).unwrap_or(usize::MAX)));
    }
    let bounds = match *range.end() {
        i64::MAX => format!("at least {}", range.start()),
        end => format!("from {} to {end}", range.start()),
    };
    let why = if why.is_empty() {
        String::new()
    } else {
        format!(": {why}")
    };
    diags.push(scenario.error(
        value.span,
        format!("`{name}` must be {bounds}, not {}{why}", value.value),
    ));
    Err(())
}

/// A data file's text with where its lines start, so that a diagnostic at
/// a byte offset costs a binary search rather than a scan from the top (a
/// large table may have a problem in every row).
pub(super) struct FileText<'a> {
    path: &'a Path,
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> FileText<'a> {
    pub(super) fn new(path: &'a Path, text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        FileText {
            path,
            text,
            line_starts,
        }
    }

    /// An error at byte `offset`, quoting its line.
    pub(super) fn error(&self, offset: usize, message: impl Into<String>) -> Diagnostic {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let start = self.line_starts[line - 1];
        let end = self
            .line_starts
            .get(line)
            .copied()
            .unwrap_or(self.text.len());
        Diagnostic {
            path: self.path.to_path_buf(),
            span: Span::new(line, self.text[start..offset].chars().count() + 1),
            message: message.into(),
            snippet: Some(
                self.text[start..end]
                    .trim_end_matches(['\n', '\r'])
                    .to_owned(),
            ),
        }
    }
}

/// Empty, `?`, or `nan` (how Python prints a missing number).
pub(super) fn is_missing(cell: &str) -> bool {
    cell.is_empty() || cell == "?" || cell.eq_ignore_ascii_case("nan")
}

/// A cell's number, when it is a finite one.
pub(super) fn number(cell: &str) -> Option<f64> {
    cell.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// A cell as JSON: a number, a string, or null when missing.
pub(super) fn cell_value(cell: &str) -> Value {
    if is_missing(cell) {
        Value::Null
    } else if let Ok(i) = cell.parse::<i64>() {
        Value::from(i)
    } else {
        number(cell)
            .and_then(Number::from_f64)
            .map_or_else(|| Value::String(cell.to_owned()), Value::Number)
    }
}

/// One record of the CSV, its cells trimmed.
struct Record {
    line: usize,
    /// Byte offset of the record in the file, to place a cell's diagnostic.
    offset: usize,
    cells: Vec<String>,
}

/// The header and the well-formed records; `None` when there is no header.
fn read_csv(file: &FileText, diags: &mut Diagnostics) -> Option<(Vec<String>, Vec<Record>)> {
    if file.text.trim().is_empty() {
        diags.push(file.error(
            0,
            "the file is empty: a table needs a header row, then one row per case",
        ));
        return None;
    }
    let mut reader = csv::ReaderBuilder::new().from_reader(file.text.as_bytes());
    let header: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|c| c.trim().to_owned()).collect(),
        Err(e) => {
            diags.push(file.error(0, format!("invalid CSV header: {e}")));
            return None;
        }
    };
    let mut first_at: HashMap<&str, usize> = HashMap::new();
    for (i, name) in header.iter().enumerate() {
        if let Some(first) = first_at.insert(name, i) {
            diags.push(file.error(
                cell_offset(file.text, 0, i),
                format!(
                    "column `{name}` is also column {}; rename one of them",
                    first + 1
                ),
            ));
        }
    }
    let mut records = Vec::new();
    let mut unreadable = false;
    for record in reader.records() {
        match record {
            Ok(r) => {
                let position = r
                    .position()
                    .expect("records read from text have a position");
                records.push(Record {
                    line: position.line() as usize,
                    offset: position.byte() as usize,
                    cells: r.iter().map(|c| c.trim().to_owned()).collect(),
                });
            }
            Err(e) => {
                unreadable = true;
                let offset = e.position().map_or(0, |p| p.byte() as usize);
                let message = match e.kind() {
                    csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => format!(
                        "this row has {len} cells but the header has {expected_len}; \
                         give every row one cell per column (an empty cell is a missing value)"
                    ),
                    _ => format!("invalid CSV: {e}"),
                };
                diags.push(file.error(offset, message));
            }
        }
    }
    if records.is_empty() && !unreadable {
        diags.push(file.error(
            0,
            "the table has a header but no rows: give one row per case",
        ));
    }
    Some((header, records))
}

/// The byte offset of cell `field` of the record at byte `offset`: past
/// `field` commas outside quotes.
fn cell_offset(text: &str, offset: usize, field: usize) -> usize {
    let bytes = text.as_bytes();
    let (mut at, mut current, mut quoted) = (offset, 0, false);
    while current < field && at < bytes.len() {
        match bytes[at] {
            b'"' => quoted = !quoted,
            b',' if !quoted => current += 1,
            b'\n' if !quoted => break,
            _ => {}
        }
        at += 1;
    }
    at
}

/// Which columns play which part, by index in the header.
struct Columns {
    label: usize,
    id: Option<usize>,
    features: Vec<usize>,
    /// Per feature, the bins `bins` gives it.
    bins: Vec<Option<BinsSpec>>,
}

fn columns(
    spec: &NaturalSpec,
    header: &[String],
    scenario: &SourceFile,
    csv_path: &Path,
    diags: &mut Diagnostics,
) -> Option<Columns> {
    let before = diags.len();
    let file = csv_path.display();
    let names = || header.iter().map(String::as_str);
    let find = |name: &Located<String>, what: &str, diags: &mut Diagnostics| {
        let found = header.iter().position(|h| *h == name.value);
        if found.is_none() {
            diags.push(scenario.error(
                name.span,
                format!(
                    "{what} `{}` is not a column of {file} (its columns: {}){}",
                    name.value,
                    header.join(", "),
                    did_you_mean(&name.value, names())
                ),
            ));
        }
        found
    };
    let label = find(&spec.label, "the label column", diags);
    let id = match &spec.id {
        Some(name) => {
            let id = find(name, "the id column", diags);
            if id.is_some() && id == label {
                diags.push(scenario.error(
                    name.span,
                    "the id column cannot be the label column; name another, or leave out \
                     `id` to use line numbers",
                ));
            }
            id
        }
        None => None,
    };
    let role = |c: usize| {
        if Some(c) == label {
            Some("the label column")
        } else if Some(c) == id {
            Some("the id column")
        } else {
            None
        }
    };
    let features: Vec<usize> = match &spec.features {
        Some(list) => {
            let mut features = Vec::new();
            for name in list {
                let Some(c) = find(name, "the feature", diags) else {
                    continue;
                };
                if let Some(role) = role(c) {
                    diags.push(scenario.error(
                        name.span,
                        format!("`{}` is {role}; it cannot also be a feature", name.value),
                    ));
                } else if features.contains(&c) {
                    diags.push(
                        scenario.error(name.span, format!("`{}` is listed twice", name.value)),
                    );
                } else {
                    features.push(c);
                }
            }
            features
        }
        None => (0..header.len()).filter(|&c| role(c).is_none()).collect(),
    };
    if diags.len() == before && features.is_empty() {
        diags.push(scenario.error(
            spec.file.span,
            format!("{file} has no feature columns besides the label and the id"),
        ));
    }
    if features.len() > MAX_FEATURES {
        diags.push(scenario.error(
            spec.features.as_ref().and_then(|f| f.first()).map_or(spec.file.span, |f| f.span),
            format!(
                "{} features, but counterfactuals compare at most {MAX_FEATURES}; name fewer in `features`",
                features.len()
            ),
        ));
    }
    let mut bins = vec![None; features.len()];
    for (name, given) in spec.bins.iter().flat_map(|b| b.value.iter()) {
        let Some(c) = header.iter().position(|h| h == name) else {
            diags.push(scenario.error(
                given.span,
                format!(
                    "`bins` names `{name}`, which is not a column of {file}{}",
                    did_you_mean(name, names())
                ),
            ));
            continue;
        };
        let Some(f) = features.iter().position(|&f| f == c) else {
            let why = role(c).unwrap_or("not listed in `features`");
            diags.push(scenario.error(
                given.span,
                format!("`bins` names `{name}`, which is {why}, not a feature"),
            ));
            continue;
        };
        if let Some(problem) = bins_problem(name, &given.value) {
            diags.push(scenario.error(given.span, problem));
        } else {
            bins[f] = Some(given.value.clone());
        }
    }
    (diags.len() == before).then(|| Columns {
        label: label.expect("found, else a diagnostic"),
        id,
        features,
        bins,
    })
}

/// What is wrong with a column's `bins`, if anything.
fn bins_problem(name: &str, bins: &BinsSpec) -> Option<String> {
    match bins {
        BinsSpec::Quantiles(q) if *q < 2 => Some(format!(
            "`{name}`: {q} quantile bins would make every row alike; give 2 or more, or a list of edges"
        )),
        BinsSpec::Quantiles(_) => None,
        BinsSpec::Edges(edges) if edges.is_empty() => Some(format!(
            "`{name}`: give at least one bin edge, or a number of quantile bins"
        )),
        BinsSpec::Edges(edges) => {
            if let Some(bad) = edges.iter().find(|e| !e.is_finite()) {
                return Some(format!("`{name}`: bin edge {bad} is not a finite number"));
            }
            edges.windows(2).find(|w| w[0] >= w[1]).map(|w| {
                format!(
                    "`{name}`: bin edges must increase, but {} is followed by {}; sort them and drop repeats",
                    w[0], w[1]
                )
            })
        }
    }
}

/// The table read, checked, deduplicated and binned.
pub(super) struct Table {
    pub(super) header: Vec<String>,
    pub(super) features: Vec<usize>,
    pub(super) bin_labels: Vec<Vec<String>>,
    /// The rows kept, in file order.
    pub(super) rows: Vec<Row>,
    pub(super) duplicates: usize,
}

pub(super) struct Row {
    pub(super) id: String,
    pub(super) line: usize,
    pub(super) cells: Vec<String>,
    pub(super) label: String,
    pub(super) bins: Vec<u32>,
}

pub(super) fn binned_table(
    spec: &NaturalSpec,
    scenario: &SourceFile,
    file: &FileText,
    quantiles: usize,
    diags: &mut Diagnostics,
) -> Option<Table> {
    let before = diags.len();
    let (header, records) = read_csv(file, diags)?;
    let columns = columns(spec, &header, scenario, file.path, diags)?;
    let ids = record_ids(&records, columns.id, &header, file, diags);
    for r in &records {
        if is_missing(&r.cells[columns.label]) {
            diags.push(file.error(
                cell_offset(file.text, r.offset, columns.label),
                format!(
                    "this row has no label in `{}`; fill it in or remove the row",
                    header[columns.label]
                ),
            ));
        }
    }
    // Duplicates are found before binning, so that quantiles count each
    // distinct row once.
    let mut seen: HashSet<Vec<&str>> = HashSet::new();
    let kept: Vec<usize> = (0..records.len())
        .filter(|&r| {
            let key = records[r]
                .cells
                .iter()
                .enumerate()
                .filter(|&(c, _)| Some(c) != columns.id)
                .map(|(_, cell)| cell.as_str())
                .collect();
            seen.insert(key)
        })
        .collect();
    let duplicates = records.len() - kept.len();
    let mut bin_labels = Vec::new();
    let mut row_bins = vec![Vec::with_capacity(columns.features.len()); kept.len()];
    for (&column, bins) in columns.features.iter().zip(&columns.bins) {
        let cells: Vec<(&str, usize)> = kept
            .iter()
            .map(|&r| (records[r].cells[column].as_str(), records[r].offset))
            .collect();
        let name = &header[column];
        let Some(feature) =
            bin_feature(name, column, &cells, bins.as_ref(), quantiles, file, diags)
        else {
            continue;
        };
        for (row, bin) in row_bins.iter_mut().zip(feature.bin_of_row) {
            row.push(bin);
        }
        bin_labels.push(feature.labels);
    }
    let classes: BTreeSet<&str> = kept
        .iter()
        .map(|&r| records[r].cells[columns.label].as_str())
        .filter(|l| !is_missing(l))
        .collect();
    if let (1, Some(class)) = (classes.len(), classes.first()) {
        diags.push(scenario.error(
            spec.label.span,
            format!(
                "the label `{}` has one class, `{class}`, in {}: groups cannot be balanced on it \
                 and simulatability gain means nothing; choose a label column with two or more values",
                spec.label.value,
                file.path.display()
            ),
        ));
    }
    if diags.len() > before {
        return None;
    }
    let mut records: Vec<Option<Record>> = records.into_iter().map(Some).collect();
    let rows = kept
        .iter()
        .zip(row_bins)
        .map(|(&r, bins)| {
            let record = records[r].take().expect("each row is kept once");
            Row {
                id: ids[r].clone(),
                line: record.line,
                label: record.cells[columns.label].clone(),
                cells: record.cells,
                bins,
            }
        })
        .collect();
    Some(Table {
        header,
        features: columns.features,
        bin_labels,
        rows,
        duplicates,
    })
}

/// Each record's id: its id column's cell, or its line number.
fn record_ids(
    records: &[Record],
    id: Option<usize>,
    header: &[String],
    file: &FileText,
    diags: &mut Diagnostics,
) -> Vec<String> {
    let Some(column) = id else {
        return records.iter().map(|r| r.line.to_string()).collect();
    };
    let mut line_of: HashMap<&str, usize> = HashMap::new();
    for r in records {
        let id = r.cells[column].as_str();
        let at = || cell_offset(file.text, r.offset, column);
        if is_missing(id) {
            diags.push(file.error(
                at(),
                format!(
                    "this row has no id in `{}`; give every row one, or leave out `id` to use line numbers",
                    header[column]
                ),
            ));
        } else if let Some(first) = line_of.get(id) {
            diags.push(file.error(
                at(),
                format!("id `{id}` is also on line {first}; ids must be unique"),
            ));
        } else {
            line_of.insert(id, r.line);
        }
    }
    records.iter().map(|r| r.cells[column].clone()).collect()
}

/// One feature binned: its bins' labels, and each kept row's bin.
struct FeatureBins {
    labels: Vec<String>,
    bin_of_row: Vec<u32>,
}

/// Bins a column's `cells` (each with its record's byte offset), as
/// [`natural`] describes.
fn bin_feature(
    name: &str,
    column: usize,
    cells: &[(&str, usize)],
    bins: Option<&BinsSpec>,
    quantiles: usize,
    file: &FileText,
    diags: &mut Diagnostics,
) -> Option<FeatureBins> {
    let present = || cells.iter().map(|&(c, _)| c).filter(|c| !is_missing(c));
    let not_numbers: Vec<&(&str, usize)> = cells
        .iter()
        .filter(|(c, _)| !is_missing(c) && number(c).is_none())
        .collect();
    let numbers = || present().filter_map(number);
    let edges = match bins {
        Some(given) => {
            if let Some(&&(cell, offset)) = not_numbers.first() {
                let more = match not_numbers.len() - 1 {
                    0 => String::new(),
                    n => format!(" (nor are {n} more of its cells)"),
                };
                diags.push(file.error(
                    cell_offset(file.text, offset, column),
                    format!(
                        "`{name}` has bins in the scenario, but `{cell}` is not a number{more}; \
                         fix the cell, or leave it empty or `?` for a missing value"
                    ),
                ));
                return None;
            }
            match given {
                BinsSpec::Edges(edges) => Some(edges.clone()),
                BinsSpec::Quantiles(q) => Some(quantile_edges(
                    numbers().collect(),
                    usize::try_from(*q).unwrap_or(usize::MAX),
                )),
            }
        }
        None => {
            let distinct = numbers().map(f64::to_bits).collect::<HashSet<_>>().len();
            (not_numbers.is_empty() && distinct > quantiles)
                .then(|| quantile_edges(numbers().collect(), quantiles))
        }
    };
    // Each cell's bin, `None` for a missing one.
    let (mut labels, present_bins): (Vec<String>, Vec<Option<u32>>) = match edges {
        Some(edges) => (
            edge_labels(&edges),
            cells
                .iter()
                .map(|(c, _)| number(c).map(|x| edges.partition_point(|&e| e <= x) as u32))
                .collect(),
        ),
        None => {
            let mut values: Vec<&str> = present().collect::<BTreeSet<_>>().into_iter().collect();
            let order = if values.iter().all(|v| number(v).is_some()) {
                numeric_order
            } else {
                natural_order
            };
            values.sort_by(|a, b| order(a, b).then(a.cmp(b)));
            let index: HashMap<&str, u32> = values
                .iter()
                .enumerate()
                .map(|(i, v)| (*v, i as u32))
                .collect();
            (
                values.iter().map(|v| (*v).to_owned()).collect(),
                cells.iter().map(|(c, _)| index.get(c).copied()).collect(),
            )
        }
    };
    let missing = labels.len() as u32;
    if present_bins.iter().any(Option::is_none) {
        labels.push(MISSING.to_owned());
    }
    Some(FeatureBins {
        labels,
        bin_of_row: present_bins
            .into_iter()
            .map(|b| b.unwrap_or(missing))
            .collect(),
    })
}

/// Edges of `q` quantile bins of `values`, as [`natural`] describes.
fn quantile_edges(mut values: Vec<f64>, q: usize) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    let Some(&smallest) = values.first() else {
        return Vec::new();
    };
    let n = values.len();
    // More bins than values cut at every value, as `n` bins do.
    let q = q.min(n);
    let mut edges: Vec<f64> = (1..q)
        .map(|j| values[j * n / q])
        .filter(|&e| e > smallest)
        .collect();
    edges.dedup();
    edges
}

/// `< e1`, `[e1, e2)`, ..., `≥ ek`; one bin without edges.
fn edge_labels(edges: &[f64]) -> Vec<String> {
    let (Some(first), Some(last)) = (edges.first(), edges.last()) else {
        return vec!["any".to_owned()];
    };
    std::iter::once(format!("< {first}"))
        .chain(edges.windows(2).map(|w| format!("[{}, {})", w[0], w[1])))
        .chain(std::iter::once(format!("≥ {last}")))
        .collect()
}

/// Numbers in numeric order (both are numbers).
fn numeric_order(a: &str, b: &str) -> Ordering {
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        _ => Ordering::Equal,
    }
}

/// Text order with runs of digits compared as numbers: `5-9` < `10-14`.
fn natural_order(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a, b);
    loop {
        let (Some(x), Some(y)) = (a.chars().next(), b.chars().next()) else {
            return a.len().cmp(&b.len());
        };
        if x.is_ascii_digit() && y.is_ascii_digit() {
            let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            let (da, db) = (digits(a), digits(b));
            let (na, nb) = (
                a[..da].trim_start_matches('0'),
                b[..db].trim_start_matches('0'),
            );
            let order = na.len().cmp(&nb.len()).then(na.cmp(nb));
            if order.is_ne() {
                return order;
            }
            (a, b) = (&a[da..], &b[db..]);
        } else {
            if x != y {
                return x.cmp(&y);
            }
            (a, b) = (&a[x.len_utf8()..], &b[y.len_utf8()..]);
        }
    }
}

/// Rows grouped into cells (equal binned features), and each cell's
/// neighbours: the other cells within `max_distance` of it.
struct Neighbourhood {
    cell_of: Vec<usize>,
    rows_of: Vec<Vec<usize>>,
    /// Per cell, each neighbouring cell and its distance.
    near: Vec<Vec<(u32, u8)>>,
}

impl Neighbourhood {
    fn new(rows: &[&[u32]], max_distance: usize) -> Self {
        let mut cell_index: HashMap<&[u32], usize> = HashMap::new();
        let (mut cells, mut cell_of, mut rows_of) =
            (Vec::new(), Vec::new(), Vec::<Vec<usize>>::new());
        for (r, &bins) in rows.iter().enumerate() {
            let cell = *cell_index.entry(bins).or_insert_with(|| {
                cells.push(bins);
                rows_of.push(Vec::new());
                cells.len() - 1
            });
            cell_of.push(cell);
            rows_of[cell].push(r);
        }
        Neighbourhood {
            near: neighbour_cells(&cells, max_distance),
            cell_of,
            rows_of,
        }
    }

    /// The rows at distance 1..=max_distance of `row`, with their distances.
    fn candidates(&self, row: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.near[self.cell_of[row]].iter().flat_map(|&(cell, d)| {
            self.rows_of[cell as usize]
                .iter()
                .map(move |&r| (r, usize::from(d)))
        })
    }

    fn count(&self, row: usize) -> usize {
        self.near[self.cell_of[row]]
            .iter()
            .map(|&(cell, _)| self.rows_of[cell as usize].len())
            .sum()
    }
}

/// For each of `cells` (distinct vectors of bins, of at most 64 features),
/// the others within Hamming distance `max_distance`, with their distance.
///
/// Two cells within distance D agree on every feature outside some set of
/// exactly D features (D at most the number of features). So for each such
/// set (a mask), the cells are sorted by a hash of their bins outside it,
/// and only cells with equal hashes are compared: the cost is the number of
/// masks, C(features, D), times the cells, plus the pairs found. When that
/// is more than comparing every pair of cells (a large D), one mask of
/// every feature does that instead.
fn neighbour_cells(cells: &[&[u32]], max_distance: usize) -> Vec<Vec<(u32, u8)>> {
    let features = cells.first().map_or(0, |c| c.len());
    let size = max_distance.min(features);
    let masks = (0..size).fold(1usize, |c, k| c.saturating_mul(features - k) / (k + 1));
    if masks > cells.len() / 2 {
        near_by_masks(cells, max_distance, features)
    } else {
        near_by_masks(cells, max_distance, size)
    }
}

/// [`neighbour_cells`] through the masks of `size` features (at least
/// `max_distance`, at most every feature). A pair is kept under one mask
/// only — the features it differs in, filled up with the lowest-numbered
/// others — so that it is found once.
fn near_by_masks(cells: &[&[u32]], max_distance: usize, size: usize) -> Vec<Vec<(u32, u8)>> {
    let mut near = vec![Vec::new(); cells.len()];
    let features = cells.first().map_or(0, |c| c.len());
    if size == 0 || cells.len() < 2 {
        return near;
    }
    let mut keyed: Vec<(u64, u32)> = Vec::with_capacity(cells.len());
    for mask in masks(features, size) {
        keyed.clear();
        keyed.extend(
            cells
                .iter()
                .enumerate()
                .map(|(i, bins)| (unmasked_hash(bins, mask), i as u32)),
        );
        keyed.sort_unstable();
        for run in keyed.chunk_by(|a, b| a.0 == b.0) {
            for (k, &(_, a)) in run.iter().enumerate() {
                for &(_, b) in &run[k + 1..] {
                    let differ = differing(cells[a as usize], cells[b as usize]);
                    let distance = differ.count_ones() as u8;
                    if usize::from(distance) <= max_distance && filled(differ, size) == mask {
                        near[a as usize].push((b, distance));
                        near[b as usize].push((a, distance));
                    }
                }
            }
        }
    }
    near
}

/// Every set of `size` (≥ 1) of the first `features` features, as bits
/// (Gosper's hack, in u128 so that the last step past 64 bits cannot overflow).
fn masks(features: usize, size: usize) -> impl Iterator<Item = u64> {
    let end = 1u128 << features;
    std::iter::successors(Some((1u128 << size) - 1), |&m| {
        let low = m & m.wrapping_neg();
        let ripple = m + low;
        Some((((ripple ^ m) >> 2) / low) | ripple)
    })
    .take_while(move |&m| m < end)
    .map(|m| m as u64)
}

/// A hash of the bins of the features not in `mask` (FxHash's mixing step).
fn unmasked_hash(bins: &[u32], mask: u64) -> u64 {
    bins.iter()
        .enumerate()
        .filter(|&(f, _)| (mask >> f) & 1 == 0)
        .fold(0, |h, (_, &b)| {
            (h.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x517c_c1b7_2722_0a95)
        })
}

/// The features two cells differ in, as bits.
fn differing(a: &[u32], b: &[u32]) -> u64 {
    a.iter()
        .zip(b)
        .enumerate()
        .filter(|(_, (x, y))| x != y)
        .fold(0, |bits, (f, _)| bits | 1 << f)
}

/// `bits` with its lowest clear bits set until `size` are set (unchanged
/// when more are).
fn filled(bits: u64, size: usize) -> u64 {
    let (mut bits, mut clear) = (bits, !bits);
    while (bits.count_ones() as usize) < size {
        let lowest = clear & clear.wrapping_neg();
        bits |= lowest;
        clear &= !lowest;
    }
    bits
}

/// References drawn, members chosen, and the cases they use.
fn choose(
    table: Table,
    settings: &Settings,
    seed: u64,
    spec: &NaturalSpec,
    scenario: &SourceFile,
    csv_path: &Path,
    diags: &mut Diagnostics,
) -> Option<Counterfactuals> {
    let rows = &table.rows;
    let bins: Vec<&[u32]> = rows.iter().map(|r| r.bins.as_slice()).collect();
    let neighbourhood = Neighbourhood::new(&bins, settings.max_distance);
    let eligible: Vec<usize> = (0..rows.len())
        .filter(|&r| neighbourhood.count(r) >= settings.min_group)
        .collect();
    if eligible.is_empty() {
        let span = spec.min_group.as_ref().map_or(spec.file.span, |m| m.span);
        diags.push(scenario.error(
            span,
            format!(
                "no row of {} ({} rows) has {} counterfactuals within {} binned features; \
                 raise `max_distance`, lower `min_group`, or bin the features more coarsely",
                csv_path.display(),
                rows.len(),
                settings.min_group,
                settings.max_distance
            ),
        ));
        return None;
    }
    let rank = id_ranks(rows);
    let references = drawn_references(rows, eligible.clone(), settings.references, &rank, seed);
    let chosen: Vec<(usize, Vec<(usize, usize)>)> = references
        .iter()
        .map(|&r| (r, members(r, &neighbourhood, rows, &rank, settings, seed)))
        .collect();

    let used: BTreeSet<usize> = chosen
        .iter()
        .flat_map(|(r, members)| std::iter::once(*r).chain(members.iter().map(|&(m, _)| m)))
        .collect();
    let case_of: HashMap<usize, usize> = used.iter().enumerate().map(|(i, &r)| (r, i)).collect();
    let features: Vec<String> = table
        .features
        .iter()
        .map(|&c| table.header[c].clone())
        .collect();
    let cases = used
        .iter()
        .map(|&r| {
            let row = &rows[r];
            Case {
                id: row.id.clone(),
                line: row.line,
                fields: table
                    .header
                    .iter()
                    .zip(&row.cells)
                    .map(|(h, cell)| (h.clone(), cell_value(cell)))
                    .collect(),
                bins: row.bins.clone(),
                values: row.bins.iter().map(|&b| f64::from(b)).collect(),
                label: row.label.clone(),
            }
        })
        .collect();
    let groups = chosen
        .iter()
        .map(|(r, members)| Group {
            reference: case_of[r],
            members: members
                .iter()
                .map(|&(m, distance)| Member {
                    case: case_of[&m],
                    distance,
                    differing: differing_names(&features, &rows[*r].bins, &rows[m].bins),
                })
                .collect(),
        })
        .collect();
    Some(Counterfactuals {
        bin_labels: table.bin_labels,
        features,
        cases,
        groups,
        eligible: eligible.len(),
        too_few: rows.len() - eligible.len(),
        duplicates: table.duplicates,
    })
}

/// Each row's rank by id: an order of the rows that does not depend on the
/// file's.
pub(super) fn id_ranks(rows: &[Row]) -> Vec<usize> {
    let mut by_id: Vec<usize> = (0..rows.len()).collect();
    by_id.sort_unstable_by(|&a, &b| rows[a].id.cmp(&rows[b].id));
    let mut rank = vec![0; rows.len()];
    for (i, &r) in by_id.iter().enumerate() {
        rank[r] = i;
    }
    rank
}

/// `n` of the `eligible` rows (all when `n` is absent or larger), drawn by
/// a seeded key of their ids, in file order.
pub(super) fn drawn_references(
    rows: &[Row],
    mut eligible: Vec<usize>,
    n: Option<usize>,
    rank: &[usize],
    seed: u64,
) -> Vec<usize> {
    if let Some(n) = n
        && n < eligible.len()
    {
        let key = |r: usize| {
            seed::rng(
                seed,
                &[
                    "counterfactual reference".into(),
                    rows[r].id.as_str().into(),
                ],
            )
            .random::<u64>()
        };
        eligible.sort_by_cached_key(|&r| (key(r), rank[r]));
        eligible.truncate(n);
        eligible.sort_unstable();
    }
    eligible
}

/// Up to `max_group` of `reference`'s candidates, each with its distance,
/// as [`natural`] describes.
fn members(
    reference: usize,
    neighbourhood: &Neighbourhood,
    rows: &[Row],
    rank: &[usize],
    settings: &Settings,
    seed: u64,
) -> Vec<(usize, usize)> {
    let mut candidates: Vec<(usize, usize)> = neighbourhood.candidates(reference).collect();
    // From the order of ids, so that the file's order cannot show through.
    candidates.sort_unstable_by_key(|&(r, _)| rank[r]);
    let mut rng = seed::rng(
        seed,
        &[
            "counterfactual members".into(),
            rows[reference].id.as_str().into(),
        ],
    );
    candidates.shuffle(&mut rng);
    candidates.sort_by_key(|&(_, distance)| distance);
    if !settings.balance {
        candidates.truncate(settings.max_group);
        return candidates;
    }
    let mut by_class: BTreeMap<&str, Vec<(usize, usize)>> = BTreeMap::new();
    for candidate in candidates {
        by_class
            .entry(&rows[candidate.0].label)
            .or_default()
            .push(candidate);
    }
    let mut classes: Vec<_> = by_class.into_values().map(Vec::into_iter).collect();
    classes.shuffle(&mut rng);
    let mut chosen = Vec::new();
    loop {
        let before = chosen.len();
        for class in &mut classes {
            if chosen.len() == settings.max_group {
                return chosen;
            }
            chosen.extend(class.next());
        }
        if chosen.len() == before {
            return chosen;
        }
    }
}

fn differing_names(features: &[String], a: &[u32], b: &[u32]) -> Vec<String> {
    features
        .iter()
        .zip(a.iter().zip(b))
        .filter(|(_, (x, y))| x != y)
        .map(|(name, _)| name.clone())
        .collect()
}

const REFERENCE: &str = "reference";
const COUNTERFACTUAL: &str = "counterfactual";

/// Given pairs from JSONL text: one `{"reference": {...}, "counterfactual":
/// {...}}` per line, each case an object of fields.
///
/// - A case's `id` (a string or a number) names it; without one it is
///   `LINE:reference` or `LINE:counterfactual`. Cases with the same id are
///   one case, and must be written with the same fields.
/// - A case's `label`, when written, is its label (as text), not a feature.
/// - The features are the keys of the first case (the first line's
///   reference) other than `id` and `label`, in written order; every case
///   must have exactly those.
/// - A feature's bins are its distinct values in file order; its number
///   for simulated models is the value when it is a number, else 0.
/// - A counterfactual must differ from its reference in some feature; a
///   pair written again is dropped and counted in `duplicates`.
///
/// Every problem is pushed to `diags` at its line and column; the result
/// is `None` when there is one.
pub fn given(path: &Path, text: &str, diags: &mut Diagnostics) -> Option<Counterfactuals> {
    let before = diags.len();
    let mut pairs = PairsReader {
        file: FileText::new(path, text),
        features: None,
        cases: Vec::new(),
        case_of_id: HashMap::new(),
        pairs: Vec::new(),
        pairs_seen: HashSet::new(),
        duplicates: 0,
    };
    let mut start = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        pairs.read_line(i + 1, start, line.trim_end_matches(['\n', '\r']), diags);
        start += line.len();
    }
    if diags.len() == before && pairs.pairs.is_empty() {
        diags.push(pairs.file.error(
            0,
            "no pairs: write one {\"reference\": {...}, \"counterfactual\": {...}} per line",
        ));
    }
    if diags.len() > before {
        return None;
    }
    Some(pairs.finish())
}

struct PairsReader<'a> {
    file: FileText<'a>,
    features: Option<Vec<String>>,
    cases: Vec<GivenCase>,
    case_of_id: HashMap<String, usize>,
    /// (reference, counterfactual) indexes into `cases`, in file order.
    pairs: Vec<(usize, usize)>,
    pairs_seen: HashSet<(usize, usize)>,
    duplicates: usize,
}

struct GivenCase {
    id: String,
    line: usize,
    fields: Map<String, Value>,
}

impl PairsReader<'_> {
    /// Reads the line at byte `start`, numbered `line_no`, without its line ending.
    fn read_line(&mut self, line_no: usize, start: usize, line: &str, diags: &mut Diagnostics) {
        if line.trim().is_empty() {
            return;
        }
        let pair = match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(pair)) => pair,
            Ok(other) => {
                diags.push(self.file.error(
                    start,
                    format!(
                        "each line must be an object {{\"reference\": {{...}}, \"counterfactual\": {{...}}}}, not {}",
                        kind(&other)
                    ),
                ));
                return;
            }
            Err(e) => {
                // serde_json counts columns in bytes from 1 (0 at the end).
                let at = start + e.column().saturating_sub(1).min(line.len());
                diags.push(self.file.error(
                    at,
                    format!("invalid JSON: {}", without_position(&e.to_string())),
                ));
                return;
            }
        };
        let entries = object_entries(self.file.text, start);
        for (key, key_at, _) in &entries {
            if key != REFERENCE && key != COUNTERFACTUAL {
                diags.push(self.file.error(
                    *key_at,
                    format!(
                        "unknown key `{key}`: a line holds `reference` and `counterfactual`{}",
                        did_you_mean(key, [REFERENCE, COUNTERFACTUAL])
                    ),
                ));
            }
        }
        let mut ids = [None, None];
        for (slot, role) in [REFERENCE, COUNTERFACTUAL].into_iter().enumerate() {
            let Some((_, _, value_at)) = entries.iter().find(|(k, _, _)| k == role) else {
                diags.push(self.file.error(start, format!("this line has no `{role}`")));
                continue;
            };
            match &pair[role] {
                Value::Object(fields) => {
                    ids[slot] = self.read_case(role, line_no, *value_at, fields, diags);
                }
                other => diags.push(self.file.error(
                    *value_at,
                    format!("`{role}` must be an object of fields, not {}", kind(other)),
                )),
            }
        }
        let [Some(reference), Some(counterfactual)] = ids else {
            return;
        };
        let (r, c) = (&self.cases[reference], &self.cases[counterfactual]);
        let features = self.features.as_deref().unwrap_or_default();
        if reference == counterfactual {
            diags.push(self.file.error(
                start,
                format!("the counterfactual is the reference itself (id `{}`)", r.id),
            ));
        } else if features
            .iter()
            .all(|f| same_value(&r.fields[f], &c.fields[f]))
        {
            diags.push(self.file.error(
                start,
                "the counterfactual has the same features as its reference; change at least one",
            ));
        } else if self.pairs_seen.insert((reference, counterfactual)) {
            self.pairs.push((reference, counterfactual));
        } else {
            self.duplicates += 1;
        }
    }

    /// The case `fields` (the object at byte `at`), checked against the
    /// features and the case of the same id; its index in `cases`.
    fn read_case(
        &mut self,
        role: &str,
        line_no: usize,
        at: usize,
        fields: &Map<String, Value>,
        diags: &mut Diagnostics,
    ) -> Option<usize> {
        let before = diags.len();
        let entries = object_entries(self.file.text, at);
        let is_feature = |key: &str| key != "id" && key != "label";
        let features = self.features.get_or_insert_with(|| {
            entries
                .iter()
                .map(|(k, _, _)| k.clone())
                .filter(|k| is_feature(k))
                .collect()
        });
        let missing: Vec<String> = features
            .iter()
            .filter(|f| !fields.contains_key(*f))
            .map(|f| format!("`{f}`"))
            .collect();
        if !missing.is_empty() {
            diags.push(self.file.error(
                at,
                format!(
                    "`{role}` lacks {}, which the first reference has; every case needs the same features",
                    missing.join(", ")
                ),
            ));
        }
        for (key, key_at, _) in &entries {
            if is_feature(key) && !features.contains(key) {
                diags.push(self.file.error(
                    *key_at,
                    format!(
                        "`{role}` has `{key}`, which the first reference does not; every case needs the same features"
                    ),
                ));
            }
        }
        let value_at = |key: &str| {
            entries
                .iter()
                .find(|(k, _, _)| k == key)
                .map_or(at, |e| e.2)
        };
        let id = match fields.get("id") {
            None => format!("{line_no}:{role}"),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(other) => {
                diags.push(self.file.error(
                    value_at("id"),
                    format!("`id` must be a string or a number, not {}", kind(other)),
                ));
                return None;
            }
        };
        if let Some(label @ (Value::Array(_) | Value::Object(_))) = fields.get("label") {
            diags.push(self.file.error(
                value_at("label"),
                format!(
                    "`label` must be a string, a number or a boolean, not {}",
                    kind(label)
                ),
            ));
        }
        if diags.len() > before {
            return None;
        }
        if let Some(&case) = self.case_of_id.get(&id) {
            let first = &self.cases[case];
            let same = first.fields.len() == fields.len()
                && fields
                    .iter()
                    .all(|(k, v)| first.fields.get(k).is_some_and(|w| same_value(v, w)));
            if !same {
                diags.push(self.file.error(
                    at,
                    format!(
                        "case `{id}` is also on line {} with other values; give one of them another id",
                        first.line
                    ),
                ));
                return None;
            }
            return Some(case);
        }
        self.case_of_id.insert(id.clone(), self.cases.len());
        self.cases.push(GivenCase {
            id,
            line: line_no,
            fields: fields.clone(),
        });
        Some(self.cases.len() - 1)
    }

    /// The cases in pairs, their bins and the groups.
    fn finish(self) -> Counterfactuals {
        let features = self.features.unwrap_or_default();
        let mut bin_labels = vec![Vec::new(); features.len()];
        let mut bin_index: Vec<HashMap<String, u32>> = vec![HashMap::new(); features.len()];
        let cases: Vec<Case> = self
            .cases
            .into_iter()
            .map(|case| {
                let bins = features
                    .iter()
                    .enumerate()
                    .map(|(f, name)| {
                        let value = &case.fields[name];
                        *bin_index[f].entry(value_key(value)).or_insert_with(|| {
                            bin_labels[f].push(value_label(value));
                            bin_labels[f].len() as u32 - 1
                        })
                    })
                    .collect();
                let label = match case.fields.get("label") {
                    None | Some(Value::Null) => String::new(),
                    Some(label) => value_label(label),
                };
                Case {
                    values: features
                        .iter()
                        .map(|f| case.fields[f].as_f64().unwrap_or(0.0))
                        .collect(),
                    id: case.id,
                    line: case.line,
                    fields: case.fields,
                    bins,
                    label,
                }
            })
            .collect();
        let mut members_of: BTreeMap<usize, Vec<Member>> = BTreeMap::new();
        for (reference, counterfactual) in self.pairs {
            let differing = differing_names(
                &features,
                &cases[reference].bins,
                &cases[counterfactual].bins,
            );
            members_of.entry(reference).or_default().push(Member {
                case: counterfactual,
                distance: differing.len(),
                differing,
            });
        }
        let groups: Vec<Group> = members_of
            .into_iter()
            .map(|(reference, members)| Group { reference, members })
            .collect();
        Counterfactuals {
            features,
            bin_labels,
            eligible: groups.len(),
            too_few: 0,
            duplicates: self.duplicates,
            cases,
            groups,
        }
    }
}

/// Whether two JSON values are the same value: numbers by their value
/// (`1` and `1.0` are one), anything else as written.
fn same_value(a: &Value, b: &Value) -> bool {
    value_key(a) == value_key(b)
}

/// A value's identity as text, for bins and comparisons.
fn value_key(value: &Value) -> String {
    match value {
        Value::Number(n) => format!("n{}", n.as_f64().unwrap_or(f64::NAN)),
        other => other.to_string(),
    }
}

/// A value as a bin's label: text as written, null as `missing`.
fn value_label(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => MISSING.to_owned(),
        other => other.to_string(),
    }
}

/// serde_json's message without its " at line L column C": the diagnostic
/// says where.
fn without_position(message: &str) -> &str {
    message.rsplit_once(" at line ").map_or(message, |(m, _)| m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::node::{Node, from_node};
    use proptest::prelude::*;
    use rand::seq::SliceRandom;

    const HEART: &str = include_str!("../../scenarios/data/heart-cleveland.csv");
    const BREAST: &str = include_str!("../../scenarios/data/breast-cancer-ljubljana.csv");

    /// A `natural:` block, read from `yaml` as the scenario file `s.yaml`.
    fn spec(yaml: &str) -> (NaturalSpec, SourceFile) {
        let scenario = SourceFile::new("s.yaml", yaml);
        let node = Node::parse(&scenario).expect("valid YAML");
        (from_node(&node).expect("a natural block"), scenario)
    }

    /// `natural` on `csv` as `t.csv`: the groups, or the diagnostics as printed.
    fn run(yaml: &str, csv: &str, seed: u64) -> Result<Counterfactuals, Vec<String>> {
        let (spec, scenario) = spec(yaml);
        let mut diags = Diagnostics::default();
        match natural(&spec, &scenario, Path::new("t.csv"), csv, seed, &mut diags) {
            Some(found) => {
                assert!(diags.is_empty(), "{diags}");
                Ok(found)
            }
            None => {
                assert!(!diags.is_empty(), "None without a diagnostic");
                Err(diags
                    .into_sorted()
                    .iter()
                    .map(ToString::to_string)
                    .collect())
            }
        }
    }

    /// The first line of each diagnostic: `path:line:col: error: message`.
    fn errors(yaml: &str, csv: &str) -> Vec<String> {
        let printed = run(yaml, csv, 1).expect_err("diagnostics");
        printed
            .iter()
            .map(|d| d.lines().next().unwrap().to_owned())
            .collect()
    }

    /// Every kept row of `csv`, binned as `natural` bins it.
    fn table(yaml: &str, csv: &str) -> Table {
        let (spec, scenario) = spec(yaml);
        let mut diags = Diagnostics::default();
        let file = FileText::new(Path::new("t.csv"), csv);
        let table = binned_table(&spec, &scenario, &file, DEFAULT_QUANTILES, &mut diags);
        assert!(diags.is_empty(), "{diags}");
        table.expect("a table")
    }

    fn hamming(a: &[u32], b: &[u32]) -> usize {
        a.iter().zip(b).filter(|(x, y)| x != y).count()
    }

    /// Every row's candidates by comparing it with every other row.
    fn brute_candidates(bins: &[&[u32]], max_distance: usize) -> Vec<Vec<(usize, usize)>> {
        (0..bins.len())
            .map(|r| {
                (0..bins.len())
                    .map(|s| (s, hamming(bins[r], bins[s])))
                    .filter(|&(_, d)| (1..=max_distance).contains(&d))
                    .collect()
            })
            .collect()
    }

    /// Every row's candidates found by [`Neighbourhood`], its cells' neighbours
    /// found through masks of `max_distance` features and through one of all.
    fn indexed_candidates(bins: &[&[u32]], max_distance: usize) -> Vec<Vec<(usize, usize)>> {
        let neighbourhood = Neighbourhood::new(bins, max_distance);
        let cells: Vec<&[u32]> = neighbourhood
            .rows_of
            .iter()
            .map(|rows| bins[rows[0]])
            .collect();
        let features = bins.first().map_or(0, |b| b.len());
        let sorted = |mut near: Vec<Vec<(u32, u8)>>| {
            near.iter_mut().for_each(|n| n.sort_unstable());
            near
        };
        let through_masks = sorted(near_by_masks(
            &cells,
            max_distance,
            max_distance.min(features),
        ));
        let all_pairs = sorted(near_by_masks(&cells, max_distance, features));
        assert_eq!(through_masks, all_pairs);
        assert_eq!(sorted(neighbourhood.near.clone()), through_masks);
        (0..bins.len())
            .map(|r| {
                let mut found: Vec<_> = neighbourhood.candidates(r).collect();
                found.sort_unstable();
                assert_eq!(neighbourhood.count(r), found.len());
                found
            })
            .collect()
    }

    const SHIPPED: [(&str, &str); 2] = [(HEART, "num"), (BREAST, "class")];

    #[test]
    fn the_index_finds_what_a_brute_force_scan_finds_on_the_shipped_tables() {
        for (csv, label) in SHIPPED {
            let table = table(&format!("file: t.csv\nlabel: {label}\n"), csv);
            let bins: Vec<&[u32]> = table.rows.iter().map(|r| r.bins.as_slice()).collect();
            for max_distance in 1..=4 {
                assert_eq!(
                    indexed_candidates(&bins, max_distance),
                    brute_candidates(&bins, max_distance),
                    "{label} at distance {max_distance}"
                );
            }
        }
    }

    #[test]
    fn groups_on_the_shipped_tables_keep_distances_sizes_and_balance() {
        let settings = [
            "max_distance: 2\nmin_group: 5\nmax_group: 10",
            "max_distance: 1\nmin_group: 1\nmax_group: 3",
            "max_distance: 3\nmin_group: 4\nmax_group: 7",
            "max_distance: 3\nmin_group: 2\nmax_group: 6\nbalance: false",
        ];
        for (csv, label) in SHIPPED {
            for setting in settings {
                let yaml = format!("file: t.csv\nlabel: {label}\n{setting}\n");
                let (spec, _) = spec(&yaml);
                let (max_distance, min_group, max_group) = (
                    spec.max_distance.as_ref().unwrap().value as usize,
                    spec.min_group.as_ref().unwrap().value as usize,
                    spec.max_group.as_ref().unwrap().value as usize,
                );
                let balance = spec.balance.as_ref().is_none_or(|b| b.value);
                let found = run(&yaml, csv, 7).unwrap();
                check_groups(
                    &table(&yaml, csv),
                    &found,
                    max_distance,
                    min_group,
                    max_group,
                    balance,
                );
            }
        }
    }

    /// Every property of `found` against brute force over `table`'s rows.
    fn check_groups(
        table: &Table,
        found: &Counterfactuals,
        max_distance: usize,
        min_group: usize,
        max_group: usize,
        balance: bool,
    ) {
        let bins: Vec<&[u32]> = table.rows.iter().map(|r| r.bins.as_slice()).collect();
        let candidates = brute_candidates(&bins, max_distance);
        let eligible = candidates.iter().filter(|c| c.len() >= min_group).count();
        assert_eq!(found.eligible, eligible);
        assert_eq!(found.too_few, table.rows.len() - eligible);
        assert_eq!(
            found.groups.len(),
            eligible,
            "every eligible row without `references`"
        );
        let row_of: HashMap<&str, usize> = table
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.as_str(), i))
            .collect();
        let row = |case: usize| row_of[found.cases[case].id.as_str()];

        let mut used = BTreeSet::new();
        for group in &found.groups {
            let reference = row(group.reference);
            used.insert(group.reference);
            let mine = &candidates[reference];
            assert!(
                (min_group..=max_group).contains(&group.members.len()),
                "group of {} members",
                group.members.len()
            );
            assert_eq!(group.members.len(), mine.len().min(max_group));
            let mut seen = HashSet::new();
            for member in &group.members {
                used.insert(member.case);
                let r = row(member.case);
                assert!(seen.insert(r), "a member twice");
                let distance = hamming(&table.rows[reference].bins, &table.rows[r].bins);
                assert_eq!(member.distance, distance);
                assert!((1..=max_distance).contains(&distance));
                assert!(mine.contains(&(r, distance)));
                let differing: Vec<&String> = found
                    .features
                    .iter()
                    .enumerate()
                    .filter(|&(f, _)| table.rows[reference].bins[f] != table.rows[r].bins[f])
                    .map(|(_, name)| name)
                    .collect();
                assert_eq!(member.differing.iter().collect::<Vec<_>>(), differing);
            }
            // Per class: how many candidates there are and how many were chosen.
            let class = |r: usize| {
                if balance {
                    table.rows[r].label.as_str()
                } else {
                    ""
                }
            };
            let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
            for &(r, _) in mine {
                counts.entry(class(r)).or_default().0 += 1;
            }
            for member in &group.members {
                counts.entry(class(row(member.case))).or_default().1 += 1;
            }
            for (a, &(offered_a, chosen_a)) in &counts {
                for (b, &(_, chosen_b)) in &counts {
                    assert!(
                        chosen_a == offered_a || chosen_b <= chosen_a + 1,
                        "class {a} has {chosen_a} of {offered_a} but {b} has {chosen_b}"
                    );
                }
            }
            // Nearer first within a class: a candidate left out is no nearer
            // than any member of its class.
            let chosen: HashSet<usize> = group.members.iter().map(|m| row(m.case)).collect();
            for &(r, d) in mine.iter().filter(|(r, _)| !chosen.contains(r)) {
                for member in &group.members {
                    if class(row(member.case)) == class(r) {
                        assert!(member.distance <= d, "a nearer candidate was left out");
                    }
                }
            }
        }
        assert_eq!(
            used.len(),
            found.cases.len(),
            "the cases are exactly those used"
        );
        assert!(
            found.cases.windows(2).all(|w| w[0].line < w[1].line),
            "cases in file order"
        );
        let references: Vec<usize> = found
            .groups
            .iter()
            .map(|g| found.cases[g.reference].line)
            .collect();
        assert!(
            references.windows(2).all(|w| w[0] < w[1]),
            "groups in file order"
        );
        for case in &found.cases {
            let r = &table.rows[row_of[case.id.as_str()]];
            assert_eq!(case.bins, r.bins);
            assert_eq!(
                case.values,
                r.bins.iter().map(|&b| f64::from(b)).collect::<Vec<_>>()
            );
            assert_eq!(case.label, r.label);
            assert_eq!(case.fields.len(), table.header.len());
        }
    }

    proptest! {
        #[test]
        fn index_neighbours_match_brute_force(
            features in 1usize..7,
            levels in 1u32..4,
            max_distance in 1usize..5,
            seeds in prop::collection::vec(any::<u64>(), 0..50),
        ) {
            let rows: Vec<Vec<u32>> = seeds
                .iter()
                .map(|s| (0..features).map(|f| ((s >> (3 * f)) % u64::from(levels)) as u32).collect())
                .collect();
            let bins: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
            prop_assert_eq!(indexed_candidates(&bins, max_distance), brute_candidates(&bins, max_distance));
        }
    }

    #[test]
    fn the_index_handles_sixty_four_features() {
        let mut rng = seed::rng(3, &["test".into()]);
        let rows: Vec<Vec<u32>> = (0..40)
            .map(|_| {
                (0..64)
                    .map(|_| u32::from(rng.random::<u8>() % 8 == 0))
                    .collect()
            })
            .collect();
        let bins: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
        for max_distance in [1, 2, 3, 64] {
            assert_eq!(
                indexed_candidates(&bins, max_distance),
                brute_candidates(&bins, max_distance)
            );
        }
        assert_eq!(masks(64, 1).count(), 64);
        assert_eq!(masks(64, 64).collect::<Vec<_>>(), [u64::MAX]);
        assert_eq!(masks(5, 2).collect::<BTreeSet<_>>().len(), 10);
    }

    /// Each group as its reference's id and its members' ids, by reference id.
    fn by_ids(found: &Counterfactuals) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<_> = found
            .groups
            .iter()
            .map(|g| {
                let id = |c: usize| found.cases[c].id.clone();
                (
                    id(g.reference),
                    g.members.iter().map(|m| id(m.case)).collect(),
                )
            })
            .collect();
        groups.sort();
        groups
    }

    #[test]
    fn the_same_seed_gives_the_same_groups_and_another_seed_others() {
        let yaml = "file: t.csv\nlabel: num\nmin_group: 3\nmax_group: 4\nreferences: 30\n";
        let first = run(yaml, HEART, 1).unwrap();
        assert_eq!(run(yaml, HEART, 1).unwrap(), first);
        assert_eq!(first.groups.len(), 30);
        let other = run(yaml, HEART, 2).unwrap();
        let references =
            |c: &Counterfactuals| by_ids(c).into_iter().map(|g| g.0).collect::<Vec<_>>();
        assert_ne!(references(&other), references(&first));
        // All references: only the members can change with the seed.
        let all = "file: t.csv\nlabel: num\nmin_group: 3\nmax_group: 4\n";
        let (a, b) = (run(all, HEART, 1).unwrap(), run(all, HEART, 2).unwrap());
        assert_eq!(references(&a), references(&b));
        assert_ne!(by_ids(&a), by_ids(&b));
    }

    /// `csv` without repeated rows, with an `id` column, its rows shuffled by `seed`.
    fn with_ids_shuffled(csv: &str, seed: u64) -> String {
        let mut lines = csv.lines();
        let header = lines.next().unwrap();
        let mut seen = HashSet::new();
        let mut rows: Vec<String> = lines
            .filter(|l| seen.insert(*l))
            .enumerate()
            .map(|(i, l)| format!("row-{i},{l}"))
            .collect();
        rows.shuffle(&mut seed::rng(seed, &["shuffle".into()]));
        format!("id,{header}\n{}\n", rows.join("\n"))
    }

    #[test]
    fn shuffled_rows_give_the_same_groups() {
        for (csv, label) in SHIPPED {
            for setting in ["", "references: 25\n", "max_distance: 3\nbalance: false\n"] {
                let yaml = format!("file: t.csv\nlabel: {label}\nid: id\nmin_group: 3\n{setting}");
                let original = run(&yaml, &with_ids_shuffled(csv, 0), 5).unwrap();
                for shuffle in 1..4 {
                    let shuffled = run(&yaml, &with_ids_shuffled(csv, shuffle), 5).unwrap();
                    assert_eq!(by_ids(&shuffled), by_ids(&original), "{label} {setting}");
                    assert_eq!(shuffled.bin_labels, original.bin_labels);
                    assert_eq!(shuffled.eligible, original.eligible);
                }
            }
        }
    }

    #[test]
    fn edges_quantiles_categories_and_missing_values_bin_as_documented() {
        let csv = "id,age,colour,size,grade,range,y\n\
                   a,30,red,1,10,10-14,0\n\
                   b,45,blue,2,9.5,5-9,1\n\
                   c,,green,3,2,0-4,0\n\
                   d,61,?,10,10,5-9,1\n\
                   e,50,red,4,2,0-4,0\n\
                   f,70,blue,5,9.5,nan,1\n";
        let yaml = "file: t.csv\nlabel: y\nid: id\nbins:\n  age: [40, 60]\n";
        let table = table(yaml, csv);
        assert_eq!(
            table.bin_labels,
            [
                vec!["< 40", "[40, 60)", "≥ 60", "missing"],
                vec!["blue", "green", "red", "missing"],
                // 1 2 3 4 5 10: the values at 6/4, 12/4 and 18/4.
                vec!["< 2", "[2, 4)", "[4, 5)", "≥ 5"],
                vec!["2", "9.5", "10"],
                vec!["0-4", "5-9", "10-14", "missing"],
            ]
        );
        let bins: Vec<&[u32]> = table.rows.iter().map(|r| r.bins.as_slice()).collect();
        assert_eq!(
            bins,
            [
                [0, 2, 0, 2, 2].as_slice(),
                &[1, 0, 1, 1, 1],
                &[3, 1, 1, 0, 0],
                &[2, 3, 3, 2, 1],
                &[1, 2, 2, 0, 0],
                &[2, 0, 3, 1, 3],
            ]
        );
    }

    #[test]
    fn quantiles_merge_equal_edges_and_drop_one_at_the_smallest_value() {
        assert_eq!(quantile_edges(vec![1.0, 1.0, 1.0, 2.0, 3.0, 3.0], 3), [3.0]);
        assert_eq!(quantile_edges(vec![4.0, 3.0, 2.0, 1.0], 2), [3.0]);
        assert_eq!(quantile_edges(vec![5.0; 9], 4), Vec::<f64>::new());
        assert_eq!(quantile_edges(vec![3.0, 1.0, 2.0], usize::MAX), [2.0, 3.0]);
        assert_eq!(edge_labels(&[]), ["any"]);
    }

    #[test]
    fn repeated_rows_are_dropped_and_counted() {
        let found = run("file: t.csv\nlabel: class\nmin_group: 1\n", BREAST, 1).unwrap();
        assert_eq!(found.duplicates, 14);
        assert_eq!(found.eligible + found.too_few, 286 - 14);
        let csv = "id,a,b,y\n1,x,p,0\n2,x,p,0\n3,x,q,1\n4,x,p,1\n";
        let found = run("file: t.csv\nlabel: y\nid: id\nmin_group: 1\n", csv, 1).unwrap();
        assert_eq!(found.duplicates, 1);
        assert!(
            found.cases.iter().all(|c| c.id != "2"),
            "the first of the two is kept"
        );
    }

    #[test]
    fn cases_keep_every_column_as_read() {
        let csv = "id,age,sex,y\nr1,40,m,yes\nr2,45.5,?,no\n";
        let yaml = "file: t.csv\nlabel: y\nid: id\nmin_group: 1\nquantiles: 2\n";
        let found = run(yaml, csv, 1).unwrap();
        let fields = |i: usize| Value::Object(found.cases[i].fields.clone());
        assert_eq!(
            fields(0),
            serde_json::json!({"id": "r1", "age": 40, "sex": "m", "y": "yes"})
        );
        assert_eq!(
            fields(1),
            serde_json::json!({"id": "r2", "age": 45.5, "sex": null, "y": "no"})
        );
        assert_eq!(
            (found.cases[1].line, found.cases[1].label.as_str()),
            (3, "no")
        );
        assert_eq!(found.bin_labels[1], ["m", "missing"]);
    }

    #[test]
    fn a_ragged_row_is_reported_at_its_line() {
        let csv = "a,b,y\n1,2,0\n3,4\n5,6,1\n7,8,9,1\n";
        assert_eq!(
            errors("file: t.csv\nlabel: y\n", csv),
            [
                "t.csv:3:1: error: this row has 2 cells but the header has 3; give every row \
                 one cell per column (an empty cell is a missing value)",
                "t.csv:5:1: error: this row has 4 cells but the header has 3; give every row \
                 one cell per column (an empty cell is a missing value)",
            ]
        );
    }

    #[test]
    fn an_unknown_bin_column_is_reported_in_the_scenario() {
        let csv = "age,sex,y\n40,m,0\n50,f,1\n";
        let printed = run(
            "file: t.csv\nlabel: y\nbins:\n  agee: [40, 50]\n  y: 2\n",
            csv,
            1,
        )
        .expect_err("unknown column");
        assert_eq!(
            printed,
            [
                "s.yaml:4:9: error: `bins` names `agee`, which is not a column of t.csv; did you mean `age`?\n \
                 4 |   agee: [40, 50]\n   |         ^",
                "s.yaml:5:6: error: `bins` names `y`, which is the label column, not a feature\n \
                 5 |   y: 2\n   |      ^",
            ]
        );
    }

    #[test]
    fn a_label_with_one_class_is_an_error() {
        let csv = "age,sex,y\n40,m,1\n50,f,1\n60,f,1\n";
        assert_eq!(
            errors("file: t.csv\nlabel: y\n", csv),
            [
                "s.yaml:2:8: error: the label `y` has one class, `1`, in t.csv: groups cannot be \
              balanced on it and simulatability gain means nothing; choose a label column with \
              two or more values"
            ]
        );
    }

    #[test]
    fn a_non_numeric_cell_under_edges_is_reported_at_its_cell() {
        let csv = "note,age,y\n\"a, b\",40,0\n\"c\",forty,1\nd,old,0\ne,,1\n";
        assert_eq!(
            errors("file: t.csv\nlabel: y\nbins: {age: [45]}\n", csv),
            [
                "t.csv:3:5: error: `age` has bins in the scenario, but `forty` is not a number \
              (nor are 1 more of its cells); fix the cell, or leave it empty or `?` for a missing value"
            ]
        );
    }

    #[test]
    fn every_bad_setting_is_reported_at_its_place() {
        let yaml = "file: t.csv\nlabel: y\nquantiles: 1\nmax_distance: 0\nmin_group: 0\n\
                    references: 0\nbins:\n  a: [50, 40]\n  b: 1\n";
        let csv = "a,b,y\n1,2,0\n3,4,1\n";
        assert_eq!(
            errors(yaml, csv),
            [
                "s.yaml:3:12: error: `quantiles` must be at least 2, not 1: one bin would make every row alike",
                "s.yaml:4:15: error: `max_distance` must be at least 1, not 0: a counterfactual \
                 differs from its reference in at least one feature",
                "s.yaml:5:12: error: `min_group` must be at least 1, not 0: a reference needs a \
                 counterfactual to be measured",
                "s.yaml:6:13: error: `references` must be at least 1, not 0: leave it out to use every eligible row",
                "s.yaml:8:6: error: `a`: bin edges must increase, but 50 is followed by 40; sort them and drop repeats",
                "s.yaml:9:6: error: `b`: 1 quantile bins would make every row alike; give 2 or more, or a list of edges",
            ]
        );
        assert_eq!(
            errors("file: t.csv\nlabel: y\nmin_group: 12\n", csv),
            [
                "s.yaml:3:12: error: `max_group` (10) is smaller than `min_group` (12); raise \
              `max_group` or lower `min_group`"
            ]
        );
    }

    #[test]
    fn unknown_columns_are_reported_with_suggestions() {
        let yaml = "file: t.csv\nlabel: yy\nid: ident\nfeatures: [age, sexx, age]\n";
        let csv = "ident,age,sex,y\n1,40,m,0\n2,50,f,1\n";
        assert_eq!(
            errors(yaml, csv),
            [
                "s.yaml:2:8: error: the label column `yy` is not a column of t.csv (its columns: \
                 ident, age, sex, y); did you mean `y`?",
                "s.yaml:4:17: error: the feature `sexx` is not a column of t.csv (its columns: \
                 ident, age, sex, y); did you mean `sex`?",
                "s.yaml:4:23: error: `age` is listed twice",
            ]
        );
        assert_eq!(
            errors("file: t.csv\nlabel: y\nid: ident\nfeatures: [ident]\n", csv),
            ["s.yaml:4:12: error: `ident` is the id column; it cannot also be a feature"]
        );
    }

    #[test]
    fn repeated_ids_and_missing_labels_are_reported_at_their_cells() {
        let csv = "id,a,y\nr1,1,0\nr2,2,\nr1,3,1\n,4,0\n";
        assert_eq!(
            errors("file: t.csv\nlabel: y\nid: id\n", csv),
            [
                "t.csv:3:6: error: this row has no label in `y`; fill it in or remove the row",
                "t.csv:4:1: error: id `r1` is also on line 2; ids must be unique",
                "t.csv:5:1: error: this row has no id in `id`; give every row one, or leave out \
                 `id` to use line numbers",
            ]
        );
    }

    #[test]
    fn an_empty_table_and_no_eligible_row_are_errors() {
        let yaml = "file: t.csv\nlabel: y\n";
        assert_eq!(
            errors(yaml, ""),
            [
                "t.csv:1:1: error: the file is empty: a table needs a header row, then one row per case"
            ]
        );
        assert_eq!(
            errors(yaml, "a,y\n"),
            ["t.csv:1:1: error: the table has a header but no rows: give one row per case"]
        );
        assert_eq!(
            errors(yaml, "a,b,y\n1,1,0\n2,2,1\n"),
            [
                "s.yaml:1:7: error: no row of t.csv (2 rows) has 5 counterfactuals within 2 binned \
              features; raise `max_distance`, lower `min_group`, or bin the features more coarsely"
            ]
        );
    }

    fn run_given(text: &str) -> Result<Counterfactuals, Vec<String>> {
        let mut diags = Diagnostics::default();
        match given(Path::new("p.jsonl"), text, &mut diags) {
            Some(found) => {
                assert!(diags.is_empty(), "{diags}");
                Ok(found)
            }
            None => Err(diags
                .into_sorted()
                .iter()
                .map(|d| d.to_string().lines().next().unwrap().to_owned())
                .collect()),
        }
    }

    #[test]
    fn given_pairs_become_groups_with_their_distances() {
        let text = r#"{"reference": {"id": "r1", "sex": "m", "age": 40, "label": "yes"}, "counterfactual": {"id": "c1", "sex": "m", "age": 50}}
{"reference": {"id": "r1", "sex": "m", "age": 40, "label": "yes"}, "counterfactual": {"sex": "f", "age": 40.0}}

{"reference": {"sex": "f", "age": 30}, "counterfactual": {"id": "c1", "sex": "m", "age": 50}}
{"reference": {"id": "r1", "sex": "m", "age": 40, "label": "yes"}, "counterfactual": {"id": "c1", "sex": "m", "age": 50}}
"#;
        let found = run_given(text).unwrap();
        assert_eq!(found.features, ["sex", "age"], "in written order");
        assert_eq!(found.bin_labels, [vec!["m", "f"], vec!["40", "50", "30"]]);
        let cases = |field: fn(&Case) -> String| found.cases.iter().map(field).collect::<Vec<_>>();
        assert_eq!(
            cases(|c| format!("{} {} {}", c.id, c.line, c.label)),
            ["r1 1 yes", "c1 1 ", "2:counterfactual 2 ", "4:reference 4 "]
        );
        assert_eq!(
            cases(|c| format!("{:?} {:?}", c.bins, c.values)),
            [
                "[0, 0] [0.0, 40.0]",
                "[0, 1] [0.0, 50.0]",
                "[1, 0] [0.0, 40.0]",
                "[1, 2] [0.0, 30.0]",
            ]
        );
        let member = |case, differing: &[&str]| Member {
            case,
            distance: differing.len(),
            differing: differing.iter().map(|s| s.to_string()).collect(),
        };
        assert_eq!(
            found.groups,
            [
                Group {
                    reference: 0,
                    members: vec![member(1, &["age"]), member(2, &["sex"])]
                },
                Group {
                    reference: 3,
                    members: vec![member(1, &["sex", "age"])]
                },
            ]
        );
        assert_eq!((found.eligible, found.too_few, found.duplicates), (2, 0, 1));
    }

    #[test]
    fn given_reports_each_bad_line_at_its_line_and_column() {
        let text = r#"{"reference": {"id": "r1", "a": 1, "b": 2}, "counterfactual": {"a": 2, "b": 2}}
{"reference": {"a": 1,, }
{"reference": {"a": 1}, "counterfactual": {"a": 2, "b": 2}}
{"reference": {"a": 1, "b": 2, "c": 3}, "counterfactual": {"a": 2, "b": 2}}
{"reference": {"a": 1, "b": 2}}
[1, 2]
{"reference": {"id": "r1", "a": 9, "b": 2}, "counterfactual": {"a": 2, "b": 2}}
{"reference": {"a": 1, "b": 2}, "counterfactual": {"a": 1.0, "b": 2}}
{"refrence": {"a": 1, "b": 2}, "counterfactual": {"a": 1, "b": 2}}
{"reference": {"id": [1], "a": 1, "b": 2}, "counterfactual": 3}
"#;
        assert_eq!(
            run_given(text).unwrap_err(),
            [
                "p.jsonl:2:23: error: invalid JSON: key must be a string",
                "p.jsonl:3:15: error: `reference` lacks `b`, which the first reference has; every \
                 case needs the same features",
                "p.jsonl:4:32: error: `reference` has `c`, which the first reference does not; \
                 every case needs the same features",
                "p.jsonl:5:1: error: this line has no `counterfactual`",
                "p.jsonl:6:1: error: each line must be an object {\"reference\": {...}, \
                 \"counterfactual\": {...}}, not a list",
                "p.jsonl:7:15: error: case `r1` is also on line 1 with other values; give one of \
                 them another id",
                "p.jsonl:8:1: error: the counterfactual has the same features as its reference; \
                 change at least one",
                "p.jsonl:9:1: error: this line has no `reference`",
                "p.jsonl:9:2: error: unknown key `refrence`: a line holds `reference` and \
                 `counterfactual`; did you mean `reference`?",
                "p.jsonl:10:22: error: `id` must be a string or a number, not a list",
                "p.jsonl:10:62: error: `counterfactual` must be an object of fields, not a number",
            ]
        );
        assert_eq!(
            run_given("\n").unwrap_err(),
            [
                "p.jsonl:1:1: error: no pairs: write one {\"reference\": {...}, \"counterfactual\": {...}} per line"
            ]
        );
    }
}
