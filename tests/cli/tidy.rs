//! Tidy tests: invariants of the source tree itself, read from `src/`.
//!
//! The library's folders are layers. A folder may import only the folders
//! [`LAYERS`] lists for it, so dependencies point one way and no import
//! circle can form between folders: the scenario language knows nothing of
//! models, the store nothing of the engine. Each folder's `mod.rs` states
//! its row of the table ("May use: ..."), and these tests hold the code and
//! that sentence to it.

use std::path::{Path, PathBuf};

use crate::util::root;

/// What each top-level module of the library may import (`crate::NAME`),
/// lowest layer first. `seed` is a leaf every layer draws from.
/// Why this order: a scenario is data (model settings included), so it
/// comes first; `model` turns settings into providers; `stats` is pure
/// arithmetic on pools; `store` persists what they produce; `judge` reads
/// traces and verdicts without I/O; `engine` runs scenarios (and judges)
/// against providers into the store; `report` reads the store. `engine` and
/// `report` do not know each other. `import` parses other tools' trace
/// files into crucible's form without I/O. `view` serves the store and the
/// reports as web pages, on top of everything that reads.
const LAYERS: &[(&str, &[&str])] = &[
    ("seed", &[]),
    ("scenario", &["seed"]),
    ("model", &["scenario", "seed"]),
    ("stats", &["scenario", "seed"]),
    ("import", &["scenario", "seed"]),
    ("store", &["scenario", "model", "stats", "import", "seed"]),
    ("judge", &["scenario", "model", "stats", "seed"]),
    (
        "engine",
        &[
            "scenario", "model", "stats", "import", "store", "judge", "seed",
        ],
    ),
    ("report", &["scenario", "stats", "store", "seed"]),
    (
        "view",
        &["scenario", "stats", "store", "report", "judge", "seed"],
    ),
];

/// Crates whose use marks a layer's job: SQLite belongs to the store, HTTP
/// clients to the model layer.
const OWNED_CRATES: &[(&str, &str)] = &[("rusqlite", "store"), ("reqwest", "model")];

fn allowed(layer: &str) -> Option<&'static [&'static str]> {
    LAYERS.iter().find(|(l, _)| *l == layer).map(|(_, a)| *a)
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The library layer a file under `src/` belongs to: its folder, or the
/// file's own name at the top. `None` for the crate root and the binary.
fn layer_of(relative: &Path) -> Option<String> {
    let mut parts = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy());
    let first = parts.next()?.into_owned();
    match (first.as_str(), parts.next()) {
        ("lib.rs", None) | ("bin", _) => None,
        (file, None) => Some(file.trim_end_matches(".rs").to_owned()),
        (folder, Some(_)) => Some(folder.to_owned()),
    }
}

/// Code without its comments (line comments, doc comments included), so a
/// doc link to a higher layer is not an import.
fn code_of(text: &str) -> String {
    text.lines()
        .map(|l| match l.trim_start().starts_with("//") {
            true => "",
            false => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules named by `crate::` paths in `code`, with the line
/// each is on: `crate::a::b` names `a`; `use crate::{a::x, b}` names `a`
/// and `b`.
fn crate_imports(code: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        // `$crate::` in a macro is not a path into this library.
        if code[..at].ends_with('$')
            || code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_')
        {
            continue;
        }
        let line = code[..at].matches('\n').count() + 1;
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    _ => {}
                }
                if c == ',' && depth == 0 {
                    out.push((line, first_ident(&item)));
                    item.clear();
                } else {
                    item.push(c);
                }
            }
            if !item.trim().is_empty() {
                out.push((line, first_ident(&item)));
            }
        } else {
            out.push((line, first_ident(rest)));
        }
    }
    out
}

fn first_ident(s: &str) -> String {
    s.trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Every import in `src/` that breaks the table, as `file:line: why`.
fn layering_violations(files: &[(PathBuf, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (relative, text) in files {
        let Some(layer) = layer_of(relative) else {
            continue;
        };
        let Some(may_use) = allowed(&layer) else {
            out.push(format!(
                "src/{}: `{layer}` is not in the layer table of tests/cli/tidy.rs; add it with what it may use",
                relative.display()
            ));
            continue;
        };
        for (line, target) in crate_imports(&code_of(text)) {
            if target != layer && !may_use.contains(&target.as_str()) {
                out.push(format!(
                    "src/{}:{line}: `{layer}` imports `crate::{target}`, but may use only {may_use:?}",
                    relative.display()
                ));
            }
        }
    }
    out
}

fn sources() -> Vec<(PathBuf, String)> {
    let src = root().join("src");
    rust_files(&src)
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p.strip_prefix(&src).unwrap().to_path_buf(), text)
        })
        .collect()
}

#[test]
fn folders_import_only_the_layers_below_them() {
    let violations = layering_violations(&sources());
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_layering_check_catches_an_upward_import() {
    let files = [
        (
            PathBuf::from("scenario/validator.rs"),
            "//! Doc that names [`crate::engine`] is fine.\nuse crate::engine::budget::Ledger;\n"
                .to_owned(),
        ),
        (
            PathBuf::from("store/mod.rs"),
            "use crate::{scenario::Task, report::x};\nfn f() { crate::engine::y(); }\n".to_owned(),
        ),
        (
            PathBuf::from("model/scene.rs"),
            "use crate::model::provider;\nuse crate::scenario::Task;\n".to_owned(),
        ),
        (PathBuf::from("viewer/mod.rs"), String::new()),
    ];
    let found = layering_violations(&files);
    let expected = [
        "src/scenario/validator.rs:2: `scenario` imports `crate::engine`",
        "src/store/mod.rs:1: `store` imports `crate::report`",
        "src/store/mod.rs:2: `store` imports `crate::engine`",
        "src/viewer/mod.rs: `viewer` is not in the layer table",
    ];
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    for (f, e) in found.iter().zip(expected) {
        assert!(f.starts_with(e), "{f}\nshould start with\n{e}");
    }
}

/// The "May use:" sentence of each folder's `mod.rs`, as module names.
fn stated_uses(doc: &str) -> Option<Vec<String>> {
    let start = doc.find("May use:")? + "May use:".len();
    let sentence = &doc[start..doc[start..].find('.').map_or(doc.len(), |e| start + e)];
    let mut names: Vec<String> = sentence
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    names.sort();
    Some(names)
}

#[test]
fn each_folder_states_what_it_may_use_as_the_table_does() {
    let mut problems = Vec::new();
    for (layer, may_use) in LAYERS {
        let path = root().join("src").join(layer).join("mod.rs");
        let Ok(text) = std::fs::read_to_string(&path) else {
            // A single-file layer (`seed.rs`) has no folder to describe.
            continue;
        };
        let doc: String = text
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .map(|l| format!("{}\n", l.trim_start_matches("//!")))
            .collect();
        let mut want: Vec<String> = may_use.iter().map(|s| s.to_string()).collect();
        want.sort();
        match stated_uses(&doc) {
            Some(stated) if stated == want => {}
            Some(stated) => problems.push(format!(
                "src/{layer}/mod.rs says it may use {stated:?}; the table says {want:?}"
            )),
            None => problems.push(format!(
                "src/{layer}/mod.rs: its doc comment has no \"May use: ...\" sentence"
            )),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn sqlite_and_http_clients_stay_in_their_layers() {
    let mut problems = Vec::new();
    for (relative, text) in sources() {
        let code = code_of(&text);
        for (krate, owner) in OWNED_CRATES {
            let uses =
                code.contains(&format!("{krate}::")) || code.contains(&format!("use {krate}"));
            if uses && layer_of(&relative).as_deref() != Some(owner) {
                problems.push(format!(
                    "src/{}: uses `{krate}`, which only `{owner}` may",
                    relative.display()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Outside the model layer, which implements providers, only the caller
/// asks a provider for a completion: so every call — an agent's, a
/// verifier's, a failure judge's — goes through the same budget, cache
/// key, retries, trace and replay.
#[test]
fn models_are_called_only_through_the_caller() {
    let problems: Vec<String> = sources()
        .into_iter()
        .filter(|(relative, _)| {
            layer_of(relative).as_deref() != Some("model")
                && relative != Path::new("engine/caller.rs")
        })
        .filter(|(_, text)| code_of(text).contains(".complete("))
        .map(|(p, _)| {
            format!(
                "src/{}: calls a provider's `complete` directly; send through `Caller::send`",
                p.display()
            )
        })
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_source_file_opens_with_a_doc_comment() {
    let missing: Vec<String> = sources()
        .into_iter()
        .filter(|(_, text)| !text.starts_with("//!"))
        .map(|(p, _)| format!("src/{}", p.display()))
        .collect();
    assert!(
        missing.is_empty(),
        "no `//!` doc comment saying what the file owns: {missing:?}"
    );
}

/// Model output reaches the viewer's pages only escaped: no template marks
/// a value `safe` but the stylesheet, which is the binary's own.
#[test]
fn viewer_templates_escape_every_value_but_the_stylesheet() {
    let dir = root().join("src/view/templates");
    let mut unsafe_uses = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, line) in text.lines().enumerate() {
            let marked = line.matches("|safe").count() + line.matches("| safe").count();
            let allowed = line.matches("css|safe").count();
            if marked > allowed || line.contains("autoescape false") {
                unsafe_uses.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(
        unsafe_uses.is_empty(),
        "unescaped values in templates:\n{}",
        unsafe_uses.join("\n")
    );
}
