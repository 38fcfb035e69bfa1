//! `crucible view` in a real headless Chromium — browsing from the run list
//! to a transcript, labelling with the keyboard and finding the labels in
//! SQLite, blind mode, comparing runs, a live run's page updating, an XSS
//! corpus that must stay text — the guard over raw loopback HTTP (token,
//! host, same origin, CSRF, read-only), and `crucible report` opened with no
//! request. With `CRUCIBLE_SCREENSHOTS=DIR`, the tests save the main pages'
//! screenshots there (the README's come from `docs/screenshots`).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::browser::{Browser, Key, screenshot_dir};
use crate::judges::failures_run;
use crate::util::{Crucible, Scratch, first_line, http_client_scenario, query, served, table_rows};

/// How long a page may take to show what a test waits for.
const WAIT: Duration = Duration::from_secs(20);

/// The inline simulated judge of tests/cli/judges.rs.
const JUDGED: &str = "[{file: judges/mast.yaml, model: judge}]";

/// A running `crucible view`, killed on drop.
struct Viewer {
    child: Child,
    /// `http://127.0.0.1:PORT`, no trailing slash.
    base: String,
    /// What it printed: the address to open, with any token.
    url: String,
}

impl Viewer {
    fn start(db: &Path, args: &[&str]) -> Viewer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_crucible"))
            .args(["view", "--port", "0", "--db"])
            .arg(db)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let line = first_line(&mut child);
        let url = match line.trim().rsplit_once(" at ") {
            Some((_, url)) => url.to_owned(),
            None => {
                let mut err = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                panic!("crucible view did not start: {line}{err}");
            }
        };
        let base = url.split('/').take(3).collect::<Vec<_>>().join("/");
        Viewer { child, base, url }
    }

    fn page(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `host:port`, as a `Host` header names it.
    fn host(&self) -> &str {
        self.base.trim_start_matches("http://")
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP response, as the guard tests read it.
struct Response {
    status: u16,
    headers: String,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The `name=value` part of the `Set-Cookie` header for cookie `prefix…`.
    fn cookie(&self, prefix: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            let pair = v.trim().split(';').next()?;
            (k.eq_ignore_ascii_case("set-cookie") && pair.starts_with(prefix))
                .then(|| pair.to_owned())
        })
    }
}

/// One HTTP/1.1 request over a fresh loopback connection, as written: the
/// guard tests need headers (Host, Origin) a client library would fix.
fn http(host: &str, request: &str) -> Response {
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Response {
        status,
        headers: head.to_owned(),
        body: body.to_owned(),
    }
}

fn get(host: &str, path: &str, headers: &str) -> Response {
    http(
        host,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{headers}\r\n"),
    )
}

fn post(host: &str, path: &str, headers: &str, form: &str) -> Response {
    http(
        host,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n{headers}\r\n{form}",
            form.len()
        ),
    )
}

/// The CSRF token in a page's annotation form.
fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    page[at..at + 32].to_owned()
}

/// Save a screenshot as `name` when `CRUCIBLE_SCREENSHOTS` says where.
fn keep_screenshot(b: &Browser, name: &str) {
    if let Some(dir) = screenshot_dir() {
        b.screenshot(&dir.join(name));
    }
}

/// The first graph run (task index, attempt) a judge found a failure in.
fn judged_trace(db: &Path) -> (i64, i64) {
    let row = table_rows(
        db,
        "SELECT task_index, attempt FROM labels WHERE present = 1 AND rater <> 'injected'
         ORDER BY task_index, attempt LIMIT 1",
    );
    let (t, a) = row[0].split_once('|').expect("a judged failure");
    (t.parse().unwrap(), a.parse().unwrap())
}

/// Verdicts a transcript of (task, attempt) must show: the labels present
/// of every rater but the injected truth and single repeats.
fn verdicts(db: &Path, (task, attempt): (i64, i64)) -> i64 {
    query(
        db,
        &format!(
            "SELECT count(*) FROM labels WHERE run_id = 1 AND task_index = {task} AND attempt = {attempt}
             AND present = 1 AND rater <> 'injected' AND rater NOT LIKE '%#%'"
        ),
    )
}

fn count(b: &Browser, css: &str) -> i64 {
    b.execute(&format!(
        "return document.querySelectorAll({css:?}).length;"
    ))
    .as_i64()
    .unwrap()
}

#[test]
fn browsing_to_a_transcript_and_labelling_two_modes_by_keyboard_stores_them() {
    let s = Scratch::new();
    let db = failures_run(&s, 6, JUDGED);
    let viewer = Viewer::start(&db, &["--annotator", "ana"]);
    let b = Browser::start();
    b.goto(&viewer.url);
    b.wait_for("#runs", WAIT);
    keep_screenshot(&b, "runs.png");
    b.click("#runs a[href='/runs/1']");
    b.wait_for("#mode-rates", WAIT);
    assert_eq!(
        count(&b, "#summary tbody tr"),
        query::<i64>(&db, "SELECT count(*) FROM results")
    );
    assert!(count(&b, ".charts img") >= 2, "curves and failure charts");
    keep_screenshot(&b, "run.png");
    let trace = judged_trace(&db);
    b.click(&format!("#tasks tr[data-task='{}'] a", trace.0));
    b.wait_for("#outcomes", WAIT);
    b.click(&format!("#graph-runs a[href$='/{}']", trace.1));
    b.wait_for("#annotate", WAIT);
    assert!(
        b.current_url()
            .ends_with(&format!("/runs/1/traces/{}/{}", trace.0, trace.1))
    );
    let shown = verdicts(&db, trace);
    assert!(shown > 0);
    assert_eq!(
        count(&b, ".verdict"),
        shown,
        "every verdict of the trace, and no other"
    );
    // The first mode present, the third absent, submitted with Enter.
    b.send_keys("1jj2");
    b.send_keys(&Key::Enter);
    b.wait_for("#saved", WAIT);
    let stored = table_rows(
        &db,
        "SELECT annotator, code, label, source FROM annotations ORDER BY code",
    );
    assert_eq!(
        stored,
        ["ana|FM-1.1|present|viewer", "ana|FM-1.3|absent|viewer"]
    );
    let mirrored = table_rows(
        &db,
        "SELECT code, present FROM labels WHERE rater = 'human:ana' ORDER BY code",
    );
    assert_eq!(mirrored, ["FM-1.1|1", "FM-1.3|0"]);
    // Reloaded, the form shows the stored labels.
    b.goto(&b.current_url());
    let checked = b.execute(
        "return [...document.querySelectorAll('#annotate input[type=radio]:checked')]
            .filter(r => r.value).map(r => r.name + '=' + r.value);",
    );
    assert_eq!(
        checked,
        serde_json::json!(["label:FM-1.1=present", "label:FM-1.3=absent"])
    );
    assert_eq!(count(&b, "#history tbody tr"), 2);
    keep_screenshot(&b, "transcript.png");
    // The person is a rater of the run's agreement.
    let agreement = Crucible::new(&["agreement", "1"]).db(&db).json();
    assert!(
        agreement["raters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "human:ana"),
        "{agreement}"
    );
}

#[test]
fn blind_mode_hides_verdicts_and_other_labels_until_the_annotator_has_labelled() {
    let s = Scratch::new();
    let db = failures_run(&s, 6, JUDGED);
    let trace = judged_trace(&db);
    // Another person's label of the trace, imported.
    let other = s.write(
        "cy.jsonl",
        &format!(
            "{{\"task_index\": {}, \"attempt\": {}, \"code\": \"FM-2.1\", \"present\": true, \"rater\": \"human:cy\"}}\n",
            trace.0, trace.1
        ),
    );
    Crucible::new(&["labels", "import", "1"])
        .arg(&other)
        .db(&db)
        .ok();
    let viewer = Viewer::start(&db, &["--annotator", "bo", "--blind"]);
    let b = Browser::start();
    // No page tells what judges or people found: no failure tables, no
    // counts of modes found, no filter by them, no judge's call.
    b.goto(&viewer.page("/runs/1"));
    b.wait_for("#tasks", WAIT);
    assert_eq!(
        count(&b, "#mode-rates, #agreement-pairs, select[name=mode]"),
        0
    );
    assert!(!b.source().contains("modes found"));
    b.goto(&viewer.page(&format!("/runs/1/tasks/{}", trace.0)));
    b.wait_for("#graph-runs", WAIT);
    assert!(!b.source().contains("modes found"));
    let host = viewer.host().to_owned();
    assert_eq!(get(&host, "/runs/1?mode=FM-1.3", "").status, 403);
    let judge_call: i64 = query(
        &db,
        &format!(
            "SELECT min(id) FROM calls WHERE role = 'judge' AND task_index = {} AND first_sample / 1024 = {}",
            trace.0, trace.1
        ),
    );
    let judge_page = format!("/calls/{judge_call}");
    assert_eq!(
        get(&host, &judge_page, "").status,
        403,
        "a judge's reading before the trace is labelled"
    );
    b.goto(&viewer.page(&format!("/runs/1/traces/{}/{}", trace.0, trace.1)));
    b.wait_for("#blind-note", WAIT);
    assert!(
        !b.source().contains(&format!("href=\"{judge_page}\"")),
        "a judge's call listed"
    );
    assert_eq!(count(&b, ".verdict"), 0);
    assert_eq!(count(&b, ".injected"), 0);
    assert_eq!(count(&b, "#label-matrix"), 0);
    assert!(
        !b.source().contains("human:cy"),
        "another person's label in a blind page"
    );
    b.send_keys("2");
    b.send_keys(&Key::Enter);
    b.wait_for("#saved", WAIT);
    assert_eq!(count(&b, "#blind-note"), 0);
    assert_eq!(count(&b, ".verdict"), verdicts(&db, trace));
    assert!(b.source().contains("human:cy"));
    assert!(
        b.source().contains(&format!("href=\"{judge_page}\"")),
        "the judge's call, once labelled"
    );
    b.goto(&viewer.page(&judge_page));
    b.wait_for("#call-facts", WAIT);
    assert_eq!(
        table_rows(
            &db,
            "SELECT code, label FROM annotations WHERE annotator = 'bo'"
        ),
        ["FM-1.1|absent"]
    );
}

#[test]
fn two_runs_compare_task_by_task_with_the_differences_first() {
    let s = Scratch::new();
    let db = failures_run(&s, 40, "");
    Crucible::new(&["run"])
        .arg(s.path("failures.yaml"))
        .args(&["--set", "seed=99"])
        .db(&db)
        .ok();
    // The 2×2 table, computed here from the outcomes table itself.
    let tally = table_rows(
        &db,
        "SELECT sum(a.selected_correct AND b.selected_correct), sum(a.selected_correct AND NOT b.selected_correct),
                sum(NOT a.selected_correct AND b.selected_correct), sum(NOT a.selected_correct AND NOT b.selected_correct)
         FROM task_results a JOIN task_results b ON b.task_index = a.task_index
         WHERE a.run_id = 1 AND b.run_id = 2 AND a.strategy = b.strategy AND a.n = 4 AND b.n = 4",
    );
    let expected: Vec<i64> = tally[0].split('|').map(|v| v.parse().unwrap()).collect();
    let viewer = Viewer::start(&db, &[]);
    let b = Browser::start();
    b.goto(&viewer.page("/"));
    b.wait_for("#compare-form", WAIT);
    b.type_into("#compare-form input[name=a]", "1");
    b.type_into("#compare-form input[name=b]", "2");
    b.click("#compare-form button");
    b.wait_for("#compare-counts", WAIT);
    let shown: Vec<i64> = ["both", "only_a", "only_b", "neither"]
        .iter()
        .map(|k| b.text(&format!("[data-count={k}]")).parse().unwrap())
        .collect();
    assert_eq!(shown, expected);
    let differ = expected[1] + expected[2];
    assert!(differ > 0, "two seeds that never differ test nothing");
    // McNemar's exact p, as Python's integers give it.
    let python = Command::new("python3")
        .arg("-c")
        .arg(format!(
            "from math import comb\na, b = {}, {}\nn, k = a + b, min(a, b)\nprint(min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2 ** n))",
            expected[1], expected[2]
        ))
        .output()
        .unwrap();
    let p_python: f64 = String::from_utf8(python.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let p_shown: f64 = b
        .find("#mcnemar [data-p]")
        .attr("data-p")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (p_shown - p_python).abs() < 1e-12,
        "{p_shown} vs Python's {p_python}"
    );
    let classes = b.execute(
        "return [...document.querySelectorAll('#compare tbody tr')].map(r => r.className);",
    );
    let classes: Vec<&str> = classes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let first_same = classes
        .iter()
        .position(|c| c.is_empty())
        .unwrap_or(classes.len());
    assert_eq!(
        first_same as i64,
        differ.min(50),
        "differences first: {classes:?}"
    );
    assert!(classes[first_same..].iter().all(|c| c.is_empty()));
    keep_screenshot(&b, "compare.png");
    // Only the differences.
    b.click("#compare-sides input[name=differ]");
    b.click("#compare-sides button");
    // The old page has the differing rows too: wait for the new one, which
    // has no other rows.
    b.wait_until(
        &format!(
            "document.querySelectorAll('#compare tbody tr.differs').length == {differ} \
             && document.querySelectorAll('#compare tbody tr').length == {differ}"
        ),
        WAIT,
    );
    assert_eq!(count(&b, "#compare tbody tr"), differ);
    // One run against itself compares two of its strategies' choices.
    b.goto(&viewer.page("/compare?a=1"));
    b.wait_for("#compare-counts", WAIT);
    let sides = b.text("#sides");
    assert!(
        sides.contains("self_consistency@4") && sides.contains("self_consistency@1"),
        "{sides}"
    );
}

#[test]
fn a_live_runs_page_updates_as_samples_land() {
    let s = Scratch::new();
    // 240 requests of one sample, 150 ms each, two at a time: about 18 s,
    // of which the test watches a few.
    let (sim, server) = served(&s, &["--latency-ms", "150"]);
    let client = s.write(
        "client.yaml",
        &http_client_scenario(
            &sim,
            &server.url,
            "    n_per_request: 1\n    concurrency: 2",
        ),
    );
    let db = s.path("live.db");
    let mut run = crate::util::spawn_run_until_samples(&client, &db, Stdio::null());
    let viewer = Viewer::start(&db, &["--read-only"]);
    let b = Browser::start();
    b.goto(&viewer.page("/runs/1"));
    b.wait_for("#live", WAIT);
    let before: i64 = b.text("[data-progress=samples]").parse().unwrap();
    // A mark that a reload would lose.
    b.execute("window.__same_page = true; return null;");
    b.wait_until(
        &format!("Number(document.querySelector('[data-progress=samples]').textContent) > {before} && window.__same_page === true"),
        WAIT,
    );
    let _ = run.kill();
    let _ = run.wait();
}

/// Text that must reach a page as text: markup, script, `javascript:`
/// links, attribute breakouts, template syntax.
const XSS: &[&str] = &[
    "<script>window.__xss = 1</script>",
    "<img src=x onerror=\"window.__xss = 2\">",
    "[click me](javascript:window.__xss=3)",
    "<a href=\"javascript:window.__xss = 4\">link</a>",
    "\"><svg onload=window.__xss=5>",
    "' onmouseover='window.__xss=6' x='",
    "</pre></div><script>window.__xss = 7</script>",
    "{{ 7 * 7 }} {% raw %}",
    "**bold** <b onclick=\"window.__xss=8\">html</b> <style>body{display:none}</style>",
];

/// Whether anything in the page could run: the sentinel, elements with
/// event handlers, scripts that are not the viewer's own, `javascript:` links.
fn executable(b: &Browser) -> serde_json::Value {
    b.execute(
        "const handlers = [...document.querySelectorAll('*')].filter(e =>
            [...e.attributes].some(a => a.name.startsWith('on'))).length;
         const scripts = [...document.scripts].filter(s => s.getAttribute('src') !== '/assets/viewer.js').length;
         const links = [...document.querySelectorAll('[href],[src]')].filter(e =>
            (e.getAttribute('href') || e.getAttribute('src')).trim().toLowerCase().startsWith('javascript:')).length;
         return {sentinel: typeof window.__xss, handlers, scripts, links};",
    )
}

#[test]
fn model_output_names_and_annotations_are_shown_as_text_and_run_nothing() {
    let s = Scratch::new();
    let lines: String = XSS
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let trace = serde_json::json!({
                "id": format!("trace {i} {x}"),
                "task": x,
                "messages": [
                    {"role": "user", "content": x},
                    {"role": "assistant", "name": x, "content": format!("answer: {x}")},
                ],
                "labels": [{"code": "FM-1.3", "present": true, "rater": x, "agent": x, "turn": 1}],
            });
            format!("{trace}\n")
        })
        .collect();
    let file = s.write("xss.jsonl", &lines);
    let db = s.path("xss.db");
    Crucible::new(&["import", "messages"])
        .arg(&file)
        .db(&db)
        .ok();
    let viewer = Viewer::start(&db, &["--annotator", "<b>eve</b>"]);
    let b = Browser::start();
    let clean =
        serde_json::json!({"sentinel": "undefined", "handlers": 0, "scripts": 0, "links": 0});
    for path in ["/", "/runs/1", "/runs/1/tasks/0", "/runs/1/samples"] {
        b.goto(&viewer.page(path));
        b.wait_for("main", WAIT);
        assert_eq!(executable(&b), clean, "{path}");
    }
    for (i, x) in XSS.iter().enumerate() {
        b.goto(&viewer.page(&format!("/runs/1/traces/{i}/0")));
        b.wait_for("#annotate", WAIT);
        assert_eq!(executable(&b), clean, "trace {i}");
        let text = b.execute("return document.body.innerText;");
        assert!(
            text.as_str().unwrap().contains(&format!("answer: {x}")),
            "{x} not shown as text"
        );
    }
    // Refusals that quote what they were given.
    for path in [
        "/runs/1?outcome=%3Cscript%3Ewindow.__xss%3D9%3C%2Fscript%3E",
        "/compare?a=1&sa=%3Cimg%20src%3Dx%20onerror%3Dwindow.__xss%3D10%3E",
        "/runs/1/samples?mode=%22%3E%3Csvg%20onload%3Dwindow.__xss%3D11%3E",
    ] {
        b.goto(&viewer.page(path));
        b.wait_for("#error-message", WAIT);
        assert_eq!(executable(&b), clean, "{path}");
        assert!(
            b.text("#error-message").contains("window.__xss"),
            "{path}: the value is quoted as text"
        );
    }
    // An annotation's rationale is untrusted too.
    b.goto(&viewer.page("/runs/1/traces/0/0"));
    b.wait_for("#annotate", WAIT);
    b.type_into("#annotate input[name='rationale:FM-1.1']", XSS[1]);
    b.execute("document.activeElement.blur(); return null;");
    b.send_keys("1");
    b.send_keys(&Key::Enter);
    b.wait_for("#saved", WAIT);
    assert_eq!(executable(&b), clean);
    assert!(b.text("#history").contains(XSS[1]));
    assert_eq!(
        query::<String>(&db, "SELECT rationale FROM annotations"),
        XSS[1],
        "stored as typed"
    );
    assert_eq!(b.text("#annotator"), "labelling as <b>eve</b>");
}

#[test]
fn writes_need_this_sessions_token_from_this_origin_and_a_writable_viewer() {
    let s = Scratch::new();
    let db = failures_run(&s, 2, "");
    let annotations = || query::<i64>(&db, "SELECT count(*) FROM annotations");
    let viewer = Viewer::start(&db, &["--annotator", "ana"]);
    let host = viewer.host().to_owned();
    let page = get(&host, "/runs/1/traces/0/0", "");
    assert_eq!(page.status, 200);
    let session = page.cookie("crucible_session_").expect("a session cookie");
    let csrf = csrf_of(&page.body);
    let other_session = format!(
        "{}={}",
        session.split('=').next().unwrap(),
        "0123456789abcdef0123456789abcdef"
    );
    let origin = format!("Origin: http://{host}\r\n");
    let cookie = format!("Cookie: {session}\r\n");
    let form = |token: &str| format!("csrf={token}&label%3AFM-1.1=present");
    let path = "/runs/1/traces/0/0";
    // No token, a token of another session, another origin, no origin at all.
    let refused = [
        post(
            &host,
            path,
            &format!("{origin}{cookie}"),
            "label%3AFM-1.1=present",
        ),
        post(
            &host,
            path,
            // A valid session of this server, but not the one the token is of.
            &format!("{origin}Cookie: {other_session}\r\n"),
            &form(&csrf),
        ),
        post(
            &host,
            path,
            &format!("Origin: http://evil.example\r\n{cookie}"),
            &form(&csrf),
        ),
        post(&host, path, &cookie, &form(&csrf)),
    ];
    for r in &refused {
        assert_eq!(r.status, 403, "{}", r.body);
    }
    assert_eq!(annotations(), 0, "a refused write wrote");
    let accepted = post(&host, path, &format!("{origin}{cookie}"), &form(&csrf));
    assert_eq!(accepted.status, 303, "{}", accepted.body);
    assert_eq!(annotations(), 1);
    // A name this server does not answer to (DNS rebinding).
    let rebound = http(
        &host,
        "GET / HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(rebound.status, 403, "{}", rebound.body);
    drop(viewer);

    let read_only = Viewer::start(&db, &["--annotator", "ana", "--read-only"]);
    let host = read_only.host().to_owned();
    let page = get(&host, path, "");
    let refused = post(
        &host,
        path,
        &format!(
            "Origin: http://{host}\r\nCookie: {}\r\n",
            page.cookie("crucible_session_").unwrap()
        ),
        &format!("csrf={}&label%3AFM-1.1=absent", csrf_of_or_none(&page.body)),
    );
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("--read-only"), "{}", refused.body);
    assert_eq!(annotations(), 1);
}

/// The CSRF token of a page, or a stand-in where a read-only page has no form.
fn csrf_of_or_none(page: &str) -> String {
    if page.contains("name=\"csrf\"") {
        csrf_of(page)
    } else {
        "0".repeat(32)
    }
}

#[test]
fn beyond_loopback_a_token_is_required_and_checked_on_every_request() {
    let s = Scratch::new();
    let db = failures_run(&s, 1, "");
    let out = Crucible::new(&["view", "--bind", "0.0.0.0", "--port", "0"])
        .db(&db)
        .output();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to serve 0.0.0.0") && err.contains("--token"),
        "{err}"
    );

    // A token must survive an address and a cookie, and not be guessed.
    for bad in ["short", "has;a-semicolon-in-it", "has space and more"] {
        let out = Crucible::new(&["view", "--port", "0", "--token", bad])
            .db(&db)
            .output();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("--token: a token has at least 16"));
    }
    let viewer = Viewer::start(&db, &["--bind", "0.0.0.0", "--token", "s3cret-0123456789"]);
    assert!(
        viewer.url.ends_with("/?token=s3cret-0123456789"),
        "{}",
        viewer.url
    );
    let port = viewer.base.rsplit(':').next().unwrap().to_owned();
    let host = format!("127.0.0.1:{port}");
    assert_eq!(get(&host, "/", "").status, 401);
    assert_eq!(get(&host, "/?token=wrong", "").status, 401);
    assert_eq!(get(&host, "/assets/viewer.css", "").status, 401);
    let entry = get(&host, "/runs/1?token=s3cret-0123456789", "");
    assert_eq!(entry.status, 303);
    assert_eq!(
        entry.header("location"),
        Some("/runs/1"),
        "the token leaves the address"
    );
    let doubled = get(&host, "//evil.example/?token=s3cret-0123456789", "");
    assert_eq!(
        doubled.header("location"),
        Some("/evil.example/"),
        "never to another site"
    );
    let cookie = entry.cookie("crucible_token_").unwrap();
    assert_eq!(
        get(&host, "/runs/1", &format!("Cookie: {cookie}\r\n")).status,
        200
    );
    assert_eq!(
        get(
            &host,
            "/runs/1",
            "Authorization: Bearer s3cret-0123456789\r\n"
        )
        .status,
        200
    );
    // A generated token is printed in the address.
    let generated = Viewer::start(&db, &["--token"]);
    let token = generated.url.rsplit_once("?token=").unwrap().1;
    assert_eq!(token.len(), 32);
}

#[test]
fn the_report_is_one_file_that_opens_with_no_request() {
    let s = Scratch::new();
    let db = failures_run(&s, 6, JUDGED);
    let out = s.path("report.html");
    Crucible::new(&["report", "1", "-o"]).arg(&out).db(&db).ok();
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(!html.contains("<script"), "a report runs no script");
    for attr in ["src=\"http", "href=\"http", "src=\"/", "href=\"/"] {
        assert!(
            !html.contains(attr),
            "a report refers to nothing outside it: {attr}"
        );
    }
    let b = Browser::start();
    b.goto(&format!("file://{}", out.display()));
    b.wait_for("#summary", WAIT);
    assert_eq!(
        count(&b, "#summary tbody tr"),
        query::<i64>(&db, "SELECT count(*) FROM results")
    );
    assert!(count(&b, "#mode-rates tbody tr") > 0);
    assert!(count(&b, ".transcript") > 0, "the worst transcripts");
    // Every chart drawn from its data URI, and nothing fetched.
    b.wait_until(
        "[...document.images].every(i => i.complete && i.naturalWidth > 0)",
        WAIT,
    );
    let fetched = b.execute(
        "return performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith('data:'));",
    );
    assert_eq!(fetched, serde_json::json!([]));
    keep_screenshot(&b, "report.png");
}

#[test]
fn the_queue_serves_each_trace_once_under_the_name_given_on_first_visit() {
    let s = Scratch::new();
    let db = failures_run(&s, 2, "");
    let traces = table_rows(
        &db,
        "SELECT task_index, attempt FROM graph_runs ORDER BY 1, 2",
    );
    let path = |t: &str| format!("/runs/1/traces/{}", t.replace('|', "/"));
    let viewer = Viewer::start(&db, &[]);
    let b = Browser::start();
    b.goto(&viewer.page("/runs/1/queue"));
    b.type_into("#name-form input[name=name]", "dee");
    b.click("#name-form button");
    b.wait_for("#annotate", WAIT);
    assert_eq!(b.text("#annotator"), "labelling as dee");
    // The first labelled, the second skipped, the rest labelled in order;
    // then the skipped one comes back, and then there is none.
    let mut visited = Vec::new();
    for step in 0..=traces.len() {
        b.wait_for("#annotate", WAIT);
        let url = b.current_url();
        visited.push(
            url.split(&viewer.base)
                .nth(1)
                .unwrap()
                .split('?')
                .next()
                .unwrap()
                .to_owned(),
        );
        b.send_keys(if step == 1 { "s" } else { "2" });
        if step != 1 {
            b.send_keys(&Key::Enter);
        }
        b.wait_until(&format!("location.href != {url:?}"), WAIT);
    }
    b.wait_for("#queue-done", WAIT);
    let mut expected: Vec<String> = traces.iter().map(|t| path(t)).collect();
    expected.push(path(&traces[1]));
    assert_eq!(visited, expected);
    assert_eq!(
        query::<i64>(
            &db,
            "SELECT count(DISTINCT task_index || '.' || attempt) FROM annotations WHERE annotator = 'dee'"
        ),
        traces.len() as i64
    );
}

/// The number of rows a list says its filters let through.
fn listed(host: &str, path: &str) -> i64 {
    let page = get(host, path, "");
    assert_eq!(page.status, 200, "{path}: {}", page.body);
    let at = page.body.find("class=\"where\">").expect("a pager") + 14;
    let line = &page.body[at..at + page.body[at..].find('<').unwrap()];
    line.split(" of ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{path}: pager `{line}`"))
}

#[test]
fn every_lists_filters_count_what_sql_counts() {
    let s = Scratch::new();
    let db = failures_run(&s, 30, JUDGED);
    let viewer = Viewer::start(&db, &[]);
    let host = viewer.host().to_owned();
    // (page, what SQL says it lists)
    let cases = [
        ("/runs/1", "SELECT count(*) FROM tasks"),
        (
            "/runs/1?outcome=self_consistency%404&correct=no",
            "SELECT count(*) FROM task_results WHERE strategy = 'self_consistency' AND n = 4 AND selected_correct = 0",
        ),
        (
            "/runs/1?outcome=self_consistency%401&correct=yes",
            "SELECT count(*) FROM task_results WHERE strategy = 'self_consistency' AND n = 1 AND selected_correct = 1",
        ),
        (
            "/runs/1?mode=FM-1.3&source=injected",
            "SELECT count(DISTINCT task_index) FROM injected_failures WHERE mode = 'FM-1.3'",
        ),
        (
            "/runs/1?mode=FM-2.1&source=judged",
            "SELECT count(DISTINCT task_index) FROM labels WHERE code = 'FM-2.1' AND present = 1 AND rater = 'mast:judge'",
        ),
        (
            "/runs/1?mode=FM-2.1",
            "SELECT count(DISTINCT task_index) FROM labels WHERE code = 'FM-2.1' AND present = 1",
        ),
        (
            "/runs/1?q=task-0001",
            "SELECT count(*) FROM tasks WHERE task_id LIKE '%task-0001%'",
        ),
        (
            "/runs/1?agent=reviewer",
            "SELECT count(DISTINCT task_index) FROM messages WHERE sender = 'reviewer'",
        ),
        ("/runs/1/samples", "SELECT count(*) FROM samples"),
        (
            "/runs/1/samples?agent=coder&correct=yes",
            "SELECT count(*) FROM samples WHERE agent = 'coder' AND correct = 1",
        ),
        (
            "/runs/1/samples?strategy=graph",
            "SELECT count(*) FROM samples WHERE strategy = 'graph'",
        ),
        (
            "/runs/1/samples?q=APPROVED",
            "SELECT count(*) FROM samples WHERE text LIKE '%APPROVED%'",
        ),
        (
            "/runs/1/samples?mode=FM-1.3&source=injected",
            "SELECT count(*) FROM samples WHERE task_index IN (SELECT task_index FROM injected_failures WHERE mode = 'FM-1.3')",
        ),
        (
            "/runs/1/samples?task=3&per_page=7",
            "SELECT count(*) FROM samples WHERE task_index = 3",
        ),
        (
            "/?status=completed",
            "SELECT count(*) FROM runs WHERE status = 'completed'",
        ),
        ("/?q=nothing-like-this", "SELECT 0"),
    ];
    for (path, sql) in cases {
        let expected: i64 = query(&db, sql);
        assert_eq!(listed(&host, path), expected, "{path}");
        // A filter that lets nothing through tests little.
        assert!(expected > 0 || sql == "SELECT 0", "{path}: nothing to list");
    }
    assert!(
        query::<i64>(
            &db,
            "SELECT count(*) FROM samples WHERE agent = 'coder' AND correct = 1"
        ) > 0
    );
    // A bad filter is a clear 400, naming the parameter.
    for (path, says) in [
        ("/runs/1?correct=perhaps", "`correct` must be yes or no"),
        ("/runs/1/samples?page=two", "`page` must be a whole number"),
        (
            "/runs/1?mode=FM-1.3&source=oracle",
            "`source` must be judged, annotated or injected",
        ),
        (
            "/runs/1?source=judged",
            "`source=judged` filters a failure `mode`",
        ),
        ("/runs/1/samples?mode=FM-9.9", "no failure mode `FM-9.9`"),
        ("/?sort=colour", "cannot sort runs by `colour`"),
    ] {
        let r = get(&host, path, "");
        assert_eq!(r.status, 400, "{path}");
        assert!(
            r.body.contains(&says.replace('`', "&#x60;")) || r.body.contains(says),
            "{path}: {}",
            r.body
        );
    }
    assert_eq!(get(&host, "/runs/9", "").status, 404);
    assert_eq!(get(&host, "/calls/999999", "").status, 404);
    assert_eq!(get(&host, "/runs/1/traces/0/99", "").status, 404);
}

/// A faithfulness run's page shows its scores (the report's numbers) and
/// its NSG chart in place of an empty strategy table.
#[test]
fn a_faithfulness_runs_page_shows_its_nsg_per_explained_model() {
    let s = Scratch::new();
    let db = s.path("f.db");
    Crucible::new(&["run"])
        .arg(crate::util::root().join("scenarios/faithfulness-sim.yaml"))
        .args(&["--set", "faithfulness.datasets.0.natural.references=20"])
        .db(&db)
        .json();
    let report = Crucible::new(&["faithfulness", "1", "--bootstrap", "200"])
        .db(&db)
        .json();
    let viewer = Viewer::start(&db, &[]);
    let page = get(viewer.host(), "/runs/1", "");
    assert_eq!(page.status, 200, "{}", page.body);
    let body = &page.body;
    let table = body
        .split("<table class=\"summary\" id=\"faithfulness\">")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .unwrap_or_else(|| panic!("no faithfulness table: {body}"));
    let rows: Vec<&str> = table.split("<tr><td>").skip(1).collect();
    let models = report["models"].as_array().unwrap();
    assert_eq!(
        rows.len(),
        models.len() + 1,
        "each model and the pooled row: {table}"
    );
    for (row, model) in rows.iter().zip(models) {
        let nsg = format!("{:.1}%", model["nsg"].as_f64().unwrap() * 100.0);
        let name = model["model"].as_str().unwrap();
        assert!(row.starts_with(&format!("{name}</td>")), "{row}");
        assert!(
            row.contains(&format!("<td class=\"n\">{nsg}</td>")),
            "{name}: {nsg} not in {row}"
        );
    }
    assert!(body.contains("alt=\"faithfulness.svg\""), "no NSG chart");
    assert!(
        !body.contains("no strategy results stored"),
        "an empty strategy table"
    );
    assert!(
        !body.contains("id=\"reasoning-measures\""),
        "no measures were run"
    );
}

/// A run with the reasoning measures: its page shows each model's AOC and
/// follow rate as `crucible faithfulness` reports them.
#[test]
fn a_faithfulness_runs_page_shows_its_reasoning_measures() {
    let s = Scratch::new();
    let db = s.path("m.db");
    Crucible::new(&["run"])
        .arg(crate::util::root().join("scenarios/faithfulness-measures-sim.yaml"))
        .args(&["--set", "faithfulness.datasets.0.generated.references=20"])
        .db(&db)
        .json();
    let report = Crucible::new(&["faithfulness", "1"]).db(&db).json();
    let viewer = Viewer::start(&db, &[]);
    let page = get(viewer.host(), "/runs/1", "");
    assert_eq!(page.status, 200, "{}", page.body);
    let table = |id: &str| -> Vec<String> {
        page.body
            .split(&format!("<table class=\"summary\" id=\"{id}\">"))
            .nth(1)
            .and_then(|t| t.split("</table>").next())
            .unwrap_or_else(|| panic!("no {id} table: {}", page.body))
            .split("<tr><td>")
            .skip(1)
            .map(str::to_owned)
            .collect()
    };
    let pct =
        |x: &serde_json::Value| format!("<td class=\"n\">{:.1}%</td>", x.as_f64().unwrap() * 100.0);
    let curves = table("reasoning-measures");
    let expected: Vec<(&str, &serde_json::Value)> = ["early_answering", "adding_mistake"]
        .iter()
        .flat_map(|m| {
            let name = if *m == "early_answering" {
                "early answering"
            } else {
                "adding a mistake"
            };
            report[*m]
                .as_array()
                .unwrap()
                .iter()
                .map(move |r| (name, r))
        })
        .collect();
    assert_eq!(curves.len(), expected.len(), "{curves:?}");
    for (row, (measure, r)) in curves.iter().zip(&expected) {
        let model = r["model"].as_str().unwrap();
        assert!(
            row.starts_with(&format!("{measure}</td><td>{model} (answer_last)</td>")),
            "{row}"
        );
        assert!(row.contains(&pct(&r["aoc"])), "{row} vs {r}");
    }
    let biasing = table("suggested-answer");
    let rows = report["biasing"].as_array().unwrap();
    assert_eq!(biasing.len(), rows.len());
    for (row, r) in biasing.iter().zip(rows) {
        assert!(row.contains(&pct(&r["follow_rate"])), "{row} vs {r}");
    }
}

/// A trace blamed by `crucible blame` shows who and when on its page — a
/// table of every method's attribution and a mark at the message blamed —
/// and blind mode hides them with the verdicts.
#[test]
fn a_transcript_shows_its_attributions_and_blind_mode_hides_them() {
    let s = Scratch::new();
    let (db, a) = crate::blame::repaired_blame(&s, 30);
    let path = format!("/runs/1/traces/{}/{}", a["task_index"], a["attempt"]);
    let viewer = Viewer::start(&db, &[]);
    let page = get(viewer.host(), &path, "");
    assert_eq!(page.status, 200, "{}", page.body);
    let table = page
        .body
        .split("id=\"attributions\">")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .unwrap_or_else(|| panic!("no attributions table: {}", page.body));
    let agent = a["agent"].as_str().unwrap();
    assert!(
        table.contains(&format!(
            "<td>counterfactual</td><td>{agent}</td><td><a href=\"#m{0}\">[{0}]</a>",
            a["turn"]
        )),
        "{table}"
    );
    let message = page
        .body
        .split(&format!("id=\"m{}\"", a["turn"]))
        .nth(1)
        .and_then(|m| m.split("</li>").next())
        .unwrap();
    assert!(
        message.contains(&format!("☛ <b>counterfactual</b> blames {agent}")),
        "{message}"
    );
    drop(viewer);
    let blind = Viewer::start(&db, &["--blind"]);
    let page = get(blind.host(), &path, "");
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("id=\"attributions\""));
    assert!(!page.body.contains("class=\"blamed\""));
}
