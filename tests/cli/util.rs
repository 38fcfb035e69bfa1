use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Builds and runs one `crucible` invocation.
pub struct Crucible {
    pub cmd: Command,
}

impl Crucible {
    pub fn new(args: &[&str]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_crucible"));
        cmd.args(args)
            .env_remove("CRUCIBLE_DB")
            .env_remove("CRUCIBLE_LOG");
        Crucible { cmd }
    }

    pub fn db(mut self, db: &Path) -> Self {
        self.cmd.arg("--db").arg(db);
        self
    }

    pub fn arg(mut self, a: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.arg(a);
        self
    }

    pub fn env(mut self, name: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.env(name, value);
        self
    }

    pub fn args(mut self, a: &[&str]) -> Self {
        self.cmd.args(a);
        self
    }

    pub fn output(mut self) -> Output {
        self.cmd.output().expect("run crucible")
    }

    /// Run with `--json`, require exit status 0, and parse what it prints.
    #[track_caller]
    pub fn json(self) -> serde_json::Value {
        let out = self.arg("--json").ok();
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }

    /// Run and require exit status 0; returns stdout.
    #[track_caller]
    pub fn ok(self) -> String {
        let out = self.output();
        assert!(
            out.status.success(),
            "crucible failed: {}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// The summary row of `strategy` at `n` in a `run --json` object.
pub fn result<'v>(run: &'v serde_json::Value, strategy: &str, n: u64) -> &'v serde_json::Value {
    run["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["strategy"] == strategy && r["n"] == n)
        .unwrap_or_else(|| panic!("no {strategy} at n={n}"))
}

/// A number field of a JSON object.
pub fn num(v: &serde_json::Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("no number {key} in {v}"))
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch directory holding scenario files.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

pub fn query<T: rusqlite::types::FromSql>(db: &Path, sql: &str) -> T {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

pub const BASE: &str = r#"name: t
seed: 1
models:
  sim:
    provider: simulated
    distribution: {p_correct: 0.6, delta: 0.3, wrong_answers: 2}
agents:
  solver:
    model: sim
    prompt: "Q: {{ question }}"
dataset:
  items:
    - {id: a, question: "1+1", answer: 2}
    - {id: b, question: "2+2", answer: 4}
verifiers:
  oracle: {kind: oracle}
strategies:
  - kind: self_consistency
    agent: solver
    n: [1, 2]
  - kind: best_of_n
    agent: solver
    verifier: oracle
    n: 2
"#;

/// One malformed scenario: `BASE` with `from` replaced by `to` (or a whole
/// text), plus extra files; the diagnostic expected at `file:line:col`.
pub struct Case {
    pub name: &'static str,
    pub edit: (&'static str, &'static str),
    pub files: &'static [(&'static str, &'static str)],
    pub at: &'static str,
    pub message: &'static str,
}

/// Run every case (`base` edited) and check its diagnostic; report every
/// case that fails.
pub fn check_cases(base: &str, cases: &[Case]) {
    let mut failures = Vec::new();
    for case in cases {
        let s = Scratch::new();
        assert!(
            base.contains(case.edit.0),
            "case {}: edit not found",
            case.name
        );
        let file = s.write("s.yaml", &base.replacen(case.edit.0, case.edit.1, 1));
        for (name, text) in case.files {
            s.write(name, text);
        }
        let db = s.path("t.db");
        let out = Crucible::new(&["run"]).arg(&file).db(&db).output();
        let stderr = String::from_utf8_lossy(&out.stderr)
            .replace(&format!("{}/", s.dir.path().display()), "");
        let expected = format!("{}: error: ", case.at);
        let line = stderr.lines().find(|l| l.starts_with(&expected));
        let ok = out.status.code() == Some(2)
            && line.is_some_and(|l| l.contains(case.message))
            && !db.exists();
        if !ok {
            failures.push(format!(
                "{}: exit {:?}, db written: {}, wanted `{expected}…{}`, got:\n{stderr}",
                case.name,
                out.status.code(),
                db.exists(),
                case.message
            ));
        }
        // `validate` reports the same diagnostic with the same exit status.
        let v = Crucible::new(&["validate"]).arg(&file).output();
        if v.status.code() != Some(2) {
            failures.push(format!(
                "{}: validate exit {:?}",
                case.name,
                v.status.code()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The rows `sql` selects, each as its values joined by `|` (NULL as nothing).
pub fn table_rows(db: &Path, sql: &str) -> Vec<String> {
    use rusqlite::types::Value;
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut st = conn.prepare(sql).unwrap();
    let n = st.column_count();
    st.query_map([], |r| {
        Ok((0..n)
            .map(|i| match r.get::<_, Value>(i).unwrap() {
                Value::Null => String::new(),
                Value::Integer(v) => v.to_string(),
                Value::Real(v) => format!("{v:?}"),
                Value::Text(v) => v,
                Value::Blob(v) => format!("{v:?}"),
            })
            .collect::<Vec<_>>()
            .join("|"))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

impl Crucible {
    pub fn args_concurrency(self, n: usize) -> Self {
        self.arg("--concurrency").arg(n.to_string())
    }
}

/// Start `crucible run FILE --db DB` and return once it has stored samples.
pub fn spawn_run_until_samples(
    file: &Path,
    db: &Path,
    stdio: std::process::Stdio,
) -> std::process::Child {
    let child = Command::new(env!("CARGO_BIN_EXE_crucible"))
        .arg("run")
        .arg(file)
        .arg("--db")
        .arg(db)
        .stdout(stdio)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(50));
        // Opening a missing file would create it: wait for the run to.
        if !db.exists() {
            continue;
        }
        let stored = rusqlite::Connection::open(db)
            .and_then(|c| c.query_row("SELECT count(*) FROM samples", [], |r| r.get::<_, i64>(0)));
        if stored.is_ok_and(|n| n > 0) {
            break;
        }
    }
    child
}

/// Run `scenario`, written into `s`, with `--json`: the database and the summary.
pub fn run_json(s: &Scratch, scenario: &str) -> (PathBuf, serde_json::Value) {
    let db = s.path("run.db");
    let summary = Crucible::new(&["run"])
        .arg(s.write("scenario.yaml", scenario))
        .db(&db)
        .json();
    (db, summary)
}

/// `run --json` of the shipped `scenarios/{name}` into a fresh database.
pub fn run_shipped(s: &Scratch, name: &str) -> (PathBuf, serde_json::Value) {
    let db = s.path("run.db");
    let summary = Crucible::new(&["run"])
        .arg(root().join("scenarios").join(name))
        .db(&db)
        .json();
    (db, summary)
}

/// A scenario: one simulated model `sim` with `distribution` behind agent
/// `solver`, `count` synthetic tasks, then `rest` (verifiers, strategies).
pub fn simulated_scenario(
    name: &str,
    seed: u64,
    distribution: &str,
    count: usize,
    rest: &str,
) -> String {
    format!(
        "name: {name}\nseed: {seed}\nmodels:\n  sim:\n    provider: simulated\n    distribution: {distribution}\n\
         agents:\n  solver:\n    model: sim\n    prompt: \"Q: {{{{ question }}}}\"\n\
         dataset:\n  synthetic: {{count: {count}}}\n{rest}"
    )
}

/// The first line a started server printed on stdout (its address).
pub fn first_line(child: &mut std::process::Child) -> String {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout piped"))
        .read_line(&mut line)
        .unwrap();
    line
}

/// A running `crucible sim-server`, killed on drop.
pub struct SimServer {
    child: std::process::Child,
    pub url: String,
}

impl SimServer {
    pub fn start(scenario: &Path, args: &[&str]) -> SimServer {
        SimServer::start_on(scenario, 0, args)
    }

    /// [`SimServer::start`] on `port` (0: a free one).
    pub fn start_on(scenario: &Path, port: u16, args: &[&str]) -> SimServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_crucible"))
            .arg("sim-server")
            .arg(scenario)
            .args(["--port", &port.to_string()])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let line = first_line(&mut child);
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .expect("address line")
            .to_owned();
        SimServer { child, url }
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small simulated scenario: 30 tasks, pools of 8.
pub fn small_sim_scenario() -> String {
    std::fs::read_to_string(root().join("scenarios/quickstart.yaml"))
        .unwrap()
        .replace("count: 200", "count: 30")
        .replace("n: [1, 2, 4, 8, 16, 32, 64]", "n: [1, 2, 4, 8]")
}

/// A client of a fresh sim-server for the small simulated scenario, its
/// model settings `model_lines`: the scenario file, and the server.
pub fn served_client(s: &Scratch, model_lines: &str) -> (PathBuf, SimServer) {
    let (sim, server) = served(s, &[]);
    let client = s.write(
        "client.yaml",
        &http_client_scenario(&sim, &server.url, model_lines),
    );
    (client, server)
}

/// `scenarios/llama-arithmetic.yaml` and its dataset, copied into `s`.
pub fn llama_scenario(s: &Scratch) -> PathBuf {
    s.write(
        "data/arithmetic.jsonl",
        &std::fs::read_to_string(root().join("scenarios/data/arithmetic.jsonl")).unwrap(),
    );
    let text = std::fs::read_to_string(root().join("scenarios/llama-arithmetic.yaml")).unwrap();
    s.write("llama.yaml", &text)
}

/// The small simulated scenario, and a sim-server for it started with `server_args`.
pub fn served(s: &Scratch, server_args: &[&str]) -> (String, SimServer) {
    let sim = small_sim_scenario();
    let server = SimServer::start(&s.write("server.yaml", &sim), server_args);
    (sim, server)
}

/// The same scenario with its model served over HTTP at `url`.
pub fn http_client_scenario(sim: &str, url: &str, model_lines: &str) -> String {
    let start = sim.find("    provider: simulated").unwrap();
    let end = sim.find("\nagents:").unwrap();
    format!(
        "{}    provider: openai\n    base_url: {url}\n    model: sim\n    seed: 0\n{model_lines}\n{}",
        &sim[..start],
        &sim[end..]
    )
}

/// What must not change between serving a model in-process and over HTTP.
pub fn sample_content(db: &Path) -> Vec<String> {
    table_rows(
        db,
        "SELECT s.task_index, s.sample_index, s.text, s.normalized, s.correct, s.abstained,
            (SELECT group_concat(score) FROM scores WHERE sample_id = s.id)
         FROM samples s ORDER BY s.task_index, s.sample_index",
    )
}

/// The base URL of a real llama.cpp server: `$CRUCIBLE_LLAMA_URL`, or one that
/// `scripts/llama-server.sh` installs (cached) and starts.
pub fn llama_url() -> String {
    if let Ok(url) = std::env::var("CRUCIBLE_LLAMA_URL") {
        return url;
    }
    let out = Command::new("bash")
        .arg(root().join("scripts/llama-server.sh"))
        .arg("url")
        .output()
        .expect("run scripts/llama-server.sh");
    assert!(
        out.status.success(),
        "llama-server setup failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

pub fn results_without_ids(json: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v["results"].clone()
}

/// `crucible replay 1 --strict` on `db`, which must reproduce the results of
/// the recorded run's `run --json` output; the replay's own output.
pub fn replay_strictly(db: &Path, recorded: &str) -> serde_json::Value {
    let replayed = Crucible::new(&["replay", "1", "--strict", "--json"])
        .db(db)
        .ok();
    assert_eq!(
        results_without_ids(&replayed),
        results_without_ids(recorded)
    );
    serde_json::from_str(&replayed).unwrap()
}

/// A sim-server whose model answers any judge prompt "Verdict: yes" (p 0.5),
/// "Verdict: no" (0.3) or "Verdict: perhaps" (0.2, which no judge can read).
pub const JUDGE_SERVER: &str = r#"name: judge-server
models:
  judge:
    provider: simulated
    distribution: {answers: {"yes": 0.5, "no": 0.3, "perhaps": 0.2}}
    format: "Verdict: {answer}"
agents:
  judge: {model: judge, prompt: "{{ q }}"}
answer:
  extract: {regex: 'Verdict: (\w+)'}
  normalize: [trim, casefold]
dataset:
  items: [{q: x}]
strategies: [{kind: self_consistency, agent: judge, n: 1}]
"#;

/// Run `python3 -c program` with `input` on stdin; its stdout, parsed as JSON.
pub fn python(program: &str, input: &str) -> serde_json::Value {
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .arg("-c")
        .arg(program)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The data lines of a chart: (stroke colour, points) of every polyline in a
/// series colour with more than two points (axes and legend marks have two).
pub fn chart_lines(svg: &str) -> Vec<(String, Vec<(f64, f64)>)> {
    let doc = roxmltree::Document::parse(svg).expect("well-formed SVG");
    doc.descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .filter_map(|n| {
            let points: Vec<(f64, f64)> = n
                .attribute("points")?
                .split_whitespace()
                .map(|p| {
                    let (x, y) = p.split_once(',').unwrap();
                    (x.parse().unwrap(), y.parse().unwrap())
                })
                .collect();
            (points.len() > 2).then(|| (n.attribute("stroke").unwrap().to_owned(), points))
        })
        .collect()
}

/// A loopback TCP proxy to `target` until dropped: a run whose scenario
/// names the proxy finds its model gone once the proxy is.
pub struct Proxy {
    pub url: String,
    pub addr: std::net::SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    accepting: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    pub fn to(target: &str) -> Proxy {
        use std::sync::atomic::Ordering;
        let target = target
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let accepting = std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                };
                client.set_nonblocking(false).unwrap();
                let server = std::net::TcpStream::connect(&target).unwrap();
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Proxy {
            url: format!("http://{addr}"),
            addr,
            stop,
            accepting: Some(accepting),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.accepting.take() {
            let _ = t.join();
        }
    }
}
