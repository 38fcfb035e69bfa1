//! The loader: reads a scenario file and the files it refers to (agent files,
//! dataset files) into the serialized types of [`crate::scenario::spec`].
//!
//! It reads the document section by section — each model, agent, verifier and
//! strategy from its own subtree — so one mistake produces one diagnostic and
//! every other section is still checked. Semantic checks (references, ranges,
//! templates) belong to the [`crate::scenario::validator`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::scenario::dataset::{self, RawItem};
use crate::scenario::diagnostic::{Diagnostic, Diagnostics, SourceFile, Span, did_you_mean};
use crate::scenario::environment;
use crate::scenario::judge_file::JudgeFile;
use crate::scenario::node::{Located, Node, from_node};
use crate::scenario::spec::{
    AgentSpec, AnswerSpec, BudgetSpec, DatasetSpec, EdgeSpec, FailOnErrorSpec, FaithfulnessSpec,
    JudgeSpec, ModelSpec, NodeSpec, RESERVED_KEYS, StrategySpec, TOP_LEVEL_KEYS, VerifierSpec,
};

/// A scenario as written, section by section, with where each part came from.
#[derive(Debug, Default)]
pub struct Loaded {
    pub source: Option<Arc<SourceFile>>,
    pub name: Option<Located<String>>,
    pub description: Option<String>,
    pub seed: Option<u64>,
    pub models: Vec<(Located<String>, ModelSpec)>,
    /// Agents with the file their fields were read from.
    pub agents: Vec<(Located<String>, AgentSpec, Arc<SourceFile>)>,
    /// Every agent name written, including those whose definition failed to
    /// load (references to them are not reported again).
    pub declared_agents: Vec<String>,
    pub dataset: Option<(Span, DatasetSpec)>,
    pub items: Vec<RawItem>,
    pub answer: AnswerSpec,
    pub verifiers: Vec<(Located<String>, VerifierSpec)>,
    pub strategies: Vec<Located<StrategySpec>>,
    pub budget: BudgetSpec,
    pub fail_on_error: Option<Located<FailOnErrorSpec>>,
    pub graph: Option<LoadedGraph>,
    /// Failure judges with their files, where the file could be read and checked.
    pub judges: Vec<(JudgeSpec, Option<Arc<JudgeFile>>)>,
    /// Referenced files (path relative to the scenario, text), for the run record.
    pub files: Vec<(String, String)>,
    /// The `faithfulness` section, with its data sets' files.
    pub faithfulness: Option<LoadedFaithfulness>,
}

/// The `faithfulness` section and, per data set in order, its counterfactual
/// source's file (path, text) where it could be read.
#[derive(Debug)]
pub struct LoadedFaithfulness {
    pub span: Span,
    pub spec: FaithfulnessSpec,
    pub files: Vec<Option<(PathBuf, String)>>,
}

/// The `graph` section, node by node and edge by edge.
#[derive(Debug)]
pub struct LoadedGraph {
    pub span: Span,
    pub nodes: Vec<(Located<String>, NodeSpec)>,
    pub edges: Vec<EdgeSpec>,
    pub max_turns: Option<Located<i64>>,
    /// Whether every node and edge loaded: checks of the graph's shape
    /// (reachability, cycles) would be misled by a missing one.
    pub complete: bool,
}

/// Keys of the `graph` section.
const GRAPH_KEYS: &[&str] = &["nodes", "edges", "max_turns"];

/// Reads scenario files.
pub struct Loader {
    diags: Diagnostics,
    loaded: Loaded,
    dir: PathBuf,
    /// Top-level keys the file must have.
    required: &'static [&'static str],
}

/// What a scenario must have.
const SCENARIO_KEYS: &[&str] = &["name", "models", "agents", "dataset", "strategies"];

/// What a faithfulness experiment must have: its cases are its tasks.
const FAITHFULNESS_KEYS: &[&str] = &["name", "models", "agents", "faithfulness"];

impl Loader {
    /// Load `path` with `overrides` (`PATH=VALUE`, as `--set` takes them)
    /// appended to its text; the diagnostics list every problem found.
    pub fn load(path: &Path, overrides: &[String]) -> (Loaded, Diagnostics) {
        Loader::load_requiring(path, overrides, SCENARIO_KEYS)
    }

    /// [`Loader::load`] for a file that needs only `models` (a models file,
    /// or any scenario whose models another command borrows).
    pub fn load_models(path: &Path, overrides: &[String]) -> (Loaded, Diagnostics) {
        Loader::load_requiring(path, overrides, &["models"])
    }

    fn load_requiring(
        path: &Path,
        overrides: &[String],
        required: &'static [&'static str],
    ) -> (Loaded, Diagnostics) {
        let mut loader = Loader {
            diags: Diagnostics::default(),
            loaded: Loaded::default(),
            dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
            required,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let text = crate::scenario::overrides::with_overrides(&text, overrides);
                loader.load_text(SourceFile::new(path, text))
            }
            Err(e) => loader.diags.push(Diagnostic::file(
                path,
                format!("cannot read scenario file: {e}"),
            )),
        }
        (loader.loaded, loader.diags)
    }

    fn load_text(&mut self, source: SourceFile) {
        let mut source = Arc::new(source);
        self.loaded.source = Some(source.clone());
        let mut root = match Node::parse(&source) {
            Ok(n) => n,
            Err((span, msg)) => {
                self.diags.push(source.error(span, msg));
                return;
            }
        };
        for (span, msg) in crate::scenario::overrides::apply(&source, &mut root) {
            self.diags.push(source.error(span, msg));
        }
        let (used, problems) =
            environment::expand(&source, &mut root, |name| std::env::var(name).ok());
        for (span, msg) in problems {
            self.diags.push(source.error(span, msg));
        }
        if !used.is_empty() {
            // Appended lines move no position: diagnostics stay where they point.
            let text = environment::with_recorded(&source.text, &used);
            source = Arc::new(SourceFile::new(&source.path, text));
            self.loaded.source = Some(source.clone());
        }
        let Some(entries) = root.as_map() else {
            self.diags.push(source.error(
                root.span,
                format!(
                    "a scenario must be a mapping of keys, found {}",
                    root.kind()
                ),
            ));
            return;
        };
        let required = match root.get("faithfulness") {
            Some(_) if self.required == SCENARIO_KEYS => FAITHFULNESS_KEYS,
            _ => self.required,
        };
        for &required in required {
            if root.get(required).is_none() {
                self.diags
                    .push(source.error(root.span, format!("missing required key `{required}`")));
            }
        }
        // Synthetic datasets draw from the seed, wherever `seed:` stands.
        self.loaded.seed = root.get("seed").and_then(|n| from_node(n).ok());
        for (key, value) in entries {
            let Some(k) = key.as_str() else {
                self.diags
                    .push(source.error(key.span, "keys must be strings"));
                continue;
            };
            match k {
                "name" => self.loaded.name = self.section(&source, value),
                "description" => self.loaded.description = self.section(&source, value),
                "seed" => self.loaded.seed = self.section(&source, value),
                "models" => self.loaded.models = self.named(&source, value),
                "agents" => self.agents(&source, value),
                "dataset" => self.dataset(&source, value),
                "answer" => self.loaded.answer = self.section(&source, value).unwrap_or_default(),
                "verifiers" => self.loaded.verifiers = self.named(&source, value),
                "strategies" => self.strategies(&source, value),
                "budget" => self.loaded.budget = self.section(&source, value).unwrap_or_default(),
                "fail_on_error" => self.loaded.fail_on_error = self.section(&source, value),
                "graph" => self.graph(&source, value),
                "judges" => self.judges(&source, value),
                "faithfulness" => self.faithfulness(&source, value),
                k if RESERVED_KEYS.contains(&k) => self.diags.push(source.error(
                    key.span,
                    format!("`{k}` is not supported yet in this version of crucible; remove it"),
                )),
                other => self.diags.push(source.error(
                    key.span,
                    format!(
                        "unknown key `{other}` (expected one of: {}){}",
                        TOP_LEVEL_KEYS.join(", "),
                        did_you_mean(other, TOP_LEVEL_KEYS.iter().copied())
                    ),
                )),
            }
        }
    }

    /// Deserialize one section, recording its error.
    fn section<'a, T: Deserialize<'a>>(
        &mut self,
        source: &SourceFile,
        node: &'a Node,
    ) -> Option<T> {
        match from_node::<T>(node) {
            Ok(v) => Some(v),
            Err(e) => {
                self.diags
                    .push(source.error(e.span.unwrap_or(node.span), e.message));
                None
            }
        }
    }

    /// A mapping of name → entry, each entry read on its own.
    fn named<T: for<'a> Deserialize<'a>>(
        &mut self,
        source: &SourceFile,
        node: &Node,
    ) -> Vec<(Located<String>, T)> {
        let Some(entries) = self.mapping(source, node) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in entries {
            let Some(name) = k.scalar_text() else {
                self.diags
                    .push(source.error(k.span, "names must be strings"));
                continue;
            };
            if let Some(entry) = self.section::<T>(source, v) {
                out.push((Located::new(k.span, name), entry));
            }
        }
        out
    }

    fn mapping<'n>(&mut self, source: &SourceFile, node: &'n Node) -> Option<&'n [(Node, Node)]> {
        if matches!(node.value, crate::scenario::node::Value::Null) {
            return Some(&[]);
        }
        let m = node.as_map();
        if m.is_none() {
            self.diags.push(source.error(
                node.span,
                format!(
                    "expected a mapping of names to entries, found {}",
                    node.kind()
                ),
            ));
        }
        m
    }

    fn agents(&mut self, source: &Arc<SourceFile>, node: &Node) {
        if let Some(entries) = node.as_map() {
            self.loaded.declared_agents = entries
                .iter()
                .filter_map(|(k, _)| k.scalar_text())
                .collect();
        }
        for (name, spec) in self.named::<AgentSpec>(source, node) {
            let Some(file) = &spec.file else {
                self.loaded.agents.push((name, spec, source.clone()));
                continue;
            };
            if spec.model.is_some()
                || spec.system.is_some()
                || spec.prompt.is_some()
                || spec.simulate.is_some()
            {
                self.diags.push(source.error(
                    file.span,
                    "an agent with `file` takes all its keys from that file; move the others there",
                ));
            }
            let Some(text) = self.read_relative(source, file) else {
                continue;
            };
            let agent_source = Arc::new(SourceFile::new(self.dir.join(&file.value), text));
            let parsed = match Node::parse(&agent_source) {
                Ok(n) => n,
                Err((span, msg)) => {
                    self.diags.push(agent_source.error(span, msg));
                    continue;
                }
            };
            if let Some(inner) = self.section::<AgentSpec>(&agent_source, &parsed) {
                if let Some(f) = &inner.file {
                    self.diags.push(
                        agent_source.error(f.span, "an agent file cannot refer to another file"),
                    );
                    continue;
                }
                self.loaded.agents.push((name, inner, agent_source));
            }
        }
    }

    /// Each judge of the `judges` list with its judge file, read and checked.
    fn judges(&mut self, source: &Arc<SourceFile>, node: &Node) {
        let Some(specs) = self.section::<Vec<JudgeSpec>>(source, node) else {
            return;
        };
        for spec in specs {
            let file = self.read_relative(source, &spec.file).and_then(|text| {
                JudgeFile::from_text(&self.dir.join(&spec.file.value), text)
                    .map_err(|diags| diags.into_iter().for_each(|d| self.diags.push(d)))
                    .ok()
            });
            self.loaded.judges.push((spec, file.map(Arc::new)));
        }
    }

    /// Read a file named relative to the scenario, recording it for the run.
    fn read_relative(&mut self, source: &SourceFile, rel: &Located<String>) -> Option<String> {
        let path = self.dir.join(&rel.value);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                if !self.loaded.files.iter().any(|(p, _)| *p == rel.value) {
                    self.loaded.files.push((rel.value.clone(), text.clone()));
                }
                Some(text)
            }
            Err(e) => {
                self.diags.push(source.error(
                    rel.span,
                    format!(
                        "cannot read `{}` ({}): {e}; paths are relative to the scenario file",
                        rel.value,
                        path.display()
                    ),
                ));
                None
            }
        }
    }

    fn dataset(&mut self, source: &Arc<SourceFile>, node: &Node) {
        let Some(spec) = self.section::<DatasetSpec>(source, node) else {
            return;
        };
        let sources = [
            spec.items.is_some(),
            spec.file.is_some(),
            spec.synthetic.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if sources != 1 {
            self.diags.push(source.error(
                node.span,
                "a dataset needs exactly one of `items`, `file` or `synthetic`",
            ));
        }
        if let Some(nodes) = &spec.items {
            self.loaded.items = dataset::from_values(source, nodes, &mut self.diags);
        } else if let Some(file) = &spec.file {
            if let Some(text) = self.read_relative(source, file) {
                let path = self.dir.join(&file.value);
                self.loaded.items = dataset::from_file(&path, text, &mut self.diags);
            }
        } else if let Some(syn) = &spec.synthetic {
            if *syn.count < 1 {
                self.diags.push(source.error(
                    syn.count.span,
                    format!("`count` must be at least 1, found {}", *syn.count),
                ));
            } else {
                let seed = self.loaded.seed.unwrap_or(0);
                self.loaded.items =
                    dataset::synthetic(source, syn.count.span, *syn.count as usize, seed);
            }
        }
        self.loaded.dataset = Some((node.span, spec));
    }

    fn graph(&mut self, source: &SourceFile, node: &Node) {
        let Some(entries) = node.as_map() else {
            self.diags.push(source.error(
                node.span,
                format!(
                    "`graph` must be a mapping with `nodes` and `edges`, found {}",
                    node.kind()
                ),
            ));
            return;
        };
        let before = self.diags.len();
        let mut graph = LoadedGraph {
            span: node.span,
            nodes: Vec::new(),
            edges: Vec::new(),
            max_turns: None,
            complete: true,
        };
        for required in ["nodes", "edges"] {
            if node.get(required).is_none() {
                self.diags
                    .push(source.error(node.span, format!("`graph` needs `{required}`")));
            }
        }
        for (key, value) in entries {
            match key.as_str() {
                Some("nodes") => graph.nodes = self.named(source, value),
                Some("edges") => match &value.value {
                    crate::scenario::node::Value::Seq(items) => {
                        graph.edges = items
                            .iter()
                            .filter_map(|item| self.section::<EdgeSpec>(source, item))
                            .collect();
                    }
                    _ => self.diags.push(source.error(
                        value.span,
                        format!("`edges` must be a list, found {}", value.kind()),
                    )),
                },
                Some("max_turns") => graph.max_turns = self.section(source, value),
                other => self.diags.push(source.error(
                    key.span,
                    format!(
                        "unknown key `{}` in `graph` (expected one of: {}){}",
                        other.unwrap_or("?"),
                        GRAPH_KEYS.join(", "),
                        did_you_mean(other.unwrap_or(""), GRAPH_KEYS.iter().copied())
                    ),
                )),
            }
        }
        graph.complete = self.diags.len() == before;
        self.loaded.graph = Some(graph);
    }

    fn strategies(&mut self, source: &SourceFile, node: &Node) {
        let crate::scenario::node::Value::Seq(items) = &node.value else {
            self.diags.push(source.error(
                node.span,
                format!("`strategies` must be a list, found {}", node.kind()),
            ));
            return;
        };
        if items.is_empty() {
            self.diags.push(source.error(
                node.span,
                "`strategies` is empty; add at least one strategy",
            ));
        }
        for item in items {
            if let Some(s) = self.section::<StrategySpec>(source, item) {
                self.loaded.strategies.push(Located::new(item.span, s));
            }
        }
    }

    fn faithfulness(&mut self, source: &SourceFile, node: &Node) {
        let Some(spec) = self.section::<FaithfulnessSpec>(source, node) else {
            return;
        };
        let mut files = Vec::with_capacity(spec.datasets.len());
        for d in &spec.datasets {
            let file = [
                d.natural.as_ref().map(|n| &n.file),
                d.given.as_ref().map(|g| &g.file),
                d.generated.as_ref().map(|g| &g.file),
            ];
            let mut named = file.into_iter().flatten();
            let read = match (named.next(), named.next()) {
                (Some(file), None) => self
                    .read_relative(source, file)
                    .map(|text| (self.dir.join(&file.value), text)),
                _ => {
                    self.diags.push(source.error(
                        d.name.span,
                        format!(
                            "data set `{}` needs exactly one of `natural`, `given` or `generated`",
                            d.name.value
                        ),
                    ));
                    None
                }
            };
            files.push(read);
        }
        self.loaded.faithfulness = Some(LoadedFaithfulness {
            span: node.span,
            spec,
            files,
        });
    }
}
