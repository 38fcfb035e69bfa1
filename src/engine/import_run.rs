//! `crucible import`: other tools' trace files read, checked and stored as
//! a run of kind `imported`, whole or not at all.
//!
//! Failure-mode names in the files are mapped onto the fourteen MAST modes
//! through a judge file's names and aliases (never by their numbers, which
//! differ between taxonomy versions).

use std::path::{Path, PathBuf};

use crate::engine::error::Error;
use crate::engine::runner::Runner;
use crate::import::{Imported, mad, messages, who_when};
use crate::scenario::diagnostic::Diagnostic;
use crate::scenario::judge_file::JudgeFile;
use crate::store::{ImportedRun, NewImport, Store};

/// The file formats `crucible import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    /// MAD, the MAST study's traces (full or human-labelled).
    Mad,
    /// Who&When's failure-attribution traces: files or folders of them.
    WhoWhen,
    /// One trace per line, chat messages with optional labels.
    Messages,
}

impl ImportFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportFormat::Mad => "mad",
            ImportFormat::WhoWhen => "who-when",
            ImportFormat::Messages => "messages",
        }
    }
}

/// What an import stored, and the source labels kept under their own
/// name because they have no counterpart among the fourteen modes.
#[derive(Debug, Clone)]
pub struct ImportOutcome {
    pub run: ImportedRun,
    pub unmapped: Vec<String>,
}

impl Runner {
    /// Read `paths` as `format`, mapping mode names through `judge`, and
    /// store them as a new run. Any problem in any file fails the import,
    /// naming every problem, and writes nothing.
    pub fn import(
        &self,
        format: ImportFormat,
        paths: &[PathBuf],
        judge: &Path,
    ) -> Result<ImportOutcome, Error> {
        let files = read_files(format, paths)?;
        let imported: Imported = match format {
            ImportFormat::WhoWhen => who_when::read(&files),
            ImportFormat::Mad | ImportFormat::Messages => {
                let judge = JudgeFile::load(judge).map_err(Error::Invalid)?;
                let names = |name: &str| judge.match_name(name);
                let mut traces = Vec::new();
                let mut problems = Vec::new();
                for (path, text) in &files {
                    let read = match format {
                        ImportFormat::Mad => mad::read(path, text, &names),
                        _ => messages::read(path, text, &names),
                    };
                    match read {
                        Ok(i) => traces.extend(i.traces),
                        Err(d) => problems.extend(d),
                    }
                }
                if problems.is_empty() {
                    Ok(Imported::new(traces))
                } else {
                    Err(problems)
                }
            }
        }
        .map_err(Error::Invalid)?;
        let mut store = Store::open(&self.options.db)?;
        let named: Vec<(String, String)> = files
            .into_iter()
            .map(|(p, t)| (p.display().to_string(), t))
            .collect();
        let run = store.import_run(
            &NewImport {
                format: format.as_str(),
                files: &named,
            },
            &imported.traces,
            &imported.unmapped,
        )?;
        Ok(ImportOutcome {
            run,
            unmapped: imported.unmapped,
        })
    }
}

/// Every file to read, with its text: folders (Who&When's) are searched for
/// `.json` files, in sorted order.
fn read_files(format: ImportFormat, paths: &[PathBuf]) -> Result<Vec<(PathBuf, String)>, Error> {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for path in paths {
        if path.is_dir() && format == ImportFormat::WhoWhen {
            match json_files(path) {
                Ok(found) if found.is_empty() => problems.push(Diagnostic::file(
                    path,
                    "this folder holds no .json files; name Who&When trace files or folders of them",
                )),
                Ok(found) => files.extend(found),
                Err(e) => problems.push(Diagnostic::file(path, format!("cannot read folder: {e}"))),
            }
        } else {
            files.push(path.clone());
        }
    }
    let mut read = Vec::new();
    for f in files {
        match std::fs::read_to_string(&f) {
            Ok(text) => read.push((f, text)),
            Err(e) => problems.push(Diagnostic::file(&f, format!("cannot read trace file: {e}"))),
        }
    }
    if problems.is_empty() {
        Ok(read)
    } else {
        Err(Error::Invalid(problems))
    }
}

/// The `.json` files under `dir`, sorted.
fn json_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}
