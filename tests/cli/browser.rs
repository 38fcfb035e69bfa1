//! The browser harness: a real headless Chromium driven over WebDriver by
//! chromedriver, behind a small synchronous API for the viewer's tests, and
//! the test proving it on a page served over loopback HTTP.
//!
//! `scripts/browser.sh` installs both programs (Debian's packages) when they
//! are missing. Every failure panics with the page's URL, an excerpt of its
//! body, the browser console and the end of chromedriver's log, so that a
//! failing CI log says what the page showed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::error::CmdError;
pub use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};

use crate::util::{Scratch, root};

/// How long chromedriver may take to answer `/status` with `ready`.
const DRIVER_READY: Duration = Duration::from_secs(30);
/// How long one WebDriver command may take; a page load on two busy cores
/// is slow, a hung browser is not, and must not hang the test run.
const COMMAND: Duration = Duration::from_secs(60);
/// How long a failure may spend gathering what the page showed.
const DIAGNOSE: Duration = Duration::from_secs(5);
/// The flags Chromium runs with: headless in the new mode (the real
/// browser, not the old separate implementation); `--no-sandbox` because CI
/// runs as root, where Chromium refuses its sandbox; no GPU on a server;
/// `/tmp` rather than a small `/dev/shm` in containers; a fixed window, so
/// that screenshots and layouts do not depend on the machine.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
];

/// The directory viewer tests save their page screenshots into, for the
/// README: `$CRUCIBLE_SCREENSHOTS` (relative to the crate root, where
/// `cargo test` runs tests), e.g. `CRUCIBLE_SCREENSHOTS=docs/screenshots
/// cargo test --test cli view`. Unset, no screenshots are kept.
pub fn screenshot_dir() -> Option<PathBuf> {
    std::env::var_os("CRUCIBLE_SCREENSHOTS").map(PathBuf::from)
}

/// The two programs `scripts/browser.sh paths` prints.
struct Programs {
    chromium: String,
    chromedriver: String,
}

/// The browser and its driver, installed on first use (once per test run).
fn programs() -> &'static Programs {
    static PROGRAMS: OnceLock<Programs> = OnceLock::new();
    PROGRAMS.get_or_init(|| {
        let out = Command::new("bash")
            .arg(root().join("scripts/browser.sh"))
            .arg("paths")
            .output()
            .expect("run scripts/browser.sh");
        assert!(
            out.status.success(),
            "browser setup failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let path = |name: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
                .unwrap_or_else(|| panic!("scripts/browser.sh printed no {name}=: {stdout}"))
                .to_owned()
        };
        Programs {
            chromium: path("chromium"),
            chromedriver: path("chromedriver"),
        }
    })
}

/// A running chromedriver on a loopback port, killed on drop. Its output
/// goes to a file, read back when something fails.
struct Driver {
    child: Child,
    port: u16,
    /// chromedriver's and Chromium's `TMPDIR`: the log, and the profiles and
    /// sockets Chromium leaves behind when the driver is killed, all removed
    /// on drop.
    tmp: tempfile::TempDir,
}

impl Driver {
    fn start() -> Driver {
        // A port the system just handed out and took back: free, unless
        // another process takes it in the moment before chromedriver does.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let tmp = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(tmp.path().join("chromedriver.log")).unwrap();
        let child = Command::new(&programs().chromedriver)
            .arg(format!("--port={port}"))
            .env("TMPDIR", tmp.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", programs().chromedriver));
        let mut driver = Driver { child, port, tmp };
        driver.wait_ready();
        driver
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn wait_ready(&mut self) {
        let start = Instant::now();
        while start.elapsed() < DRIVER_READY {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "chromedriver exited ({status}) before it was ready; its log:\n{}",
                    self.log_tail()
                );
            }
            if self
                .request("GET", "/status", None)
                .is_ok_and(|s| s["value"]["ready"] == true)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "chromedriver did not report ready at {}/status within {DRIVER_READY:?}; its log:\n{}",
            self.url(),
            self.log_tail()
        );
    }

    /// One JSON request to chromedriver outside the WebDriver session (its
    /// status, its browser log), over plain HTTP/1.1.
    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, String> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(DIAGNOSE))
            .map_err(|e| e.to_string())?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )
        .map_err(|e| e.to_string())?;
        let mut reader = BufReader::new(stream);
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).map_err(|e| e.to_string())?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().map_err(|_| line.to_owned())?;
            }
        }
        let mut json = vec![0; length];
        reader.read_exact(&mut json).map_err(|e| e.to_string())?;
        serde_json::from_slice(&json).map_err(|e| e.to_string())
    }

    /// The last lines chromedriver wrote.
    fn log_tail(&self) -> String {
        let text =
            std::fs::read_to_string(self.tmp.path().join("chromedriver.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless Chromium in its own WebDriver session, with its own driver.
/// Methods block on an internal single-threaded runtime, so tests stay plain
/// synchronous `#[test]` functions.
pub struct Browser {
    runtime: tokio::runtime::Runtime,
    client: Client,
    driver: Driver,
}

impl Browser {
    #[track_caller]
    pub fn start() -> Browser {
        let programs = programs();
        let driver = Driver::start();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let capabilities = serde_json::json!({
            "goog:chromeOptions": {"binary": programs.chromium, "args": CHROMIUM_ARGS},
            // Console messages and uncaught errors, for `console` and failures.
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let connect = async {
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities.as_object().unwrap().clone())
                .connect(&driver.url())
                .await
        };
        let client = match runtime.block_on(async { tokio::time::timeout(COMMAND, connect).await })
        {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => panic!(
                "no WebDriver session with {}: {e}\nchromedriver's log:\n{}",
                programs.chromium,
                driver.log_tail()
            ),
            Err(_) => panic!(
                "no WebDriver session within {COMMAND:?}\nchromedriver's log:\n{}",
                driver.log_tail()
            ),
        };
        Browser {
            runtime,
            client,
            driver,
        }
    }

    /// Load `url` and wait for its `load` event.
    #[track_caller]
    pub fn goto(&self, url: &str) {
        self.run(&format!("goto {url}"), self.client.goto(url))
    }

    #[track_caller]
    pub fn current_url(&self) -> String {
        self.run("current URL", self.client.current_url())
            .to_string()
    }

    /// The first element `css` selects; it must exist now (see `wait_for`).
    #[track_caller]
    pub fn find(&self, css: &str) -> Element<'_> {
        let element = self.run(
            &format!("find `{css}`"),
            self.client.find(Locator::Css(css)),
        );
        Element {
            browser: self,
            css: css.to_owned(),
            element,
        }
    }

    /// The rendered text of the first element `css` selects.
    #[track_caller]
    pub fn text(&self, css: &str) -> String {
        self.find(css).text()
    }

    /// The rendered texts of every element `css` selects, in document order.
    #[track_caller]
    pub fn texts(&self, css: &str) -> Vec<String> {
        let elements = self.run(
            &format!("find all `{css}`"),
            self.client.find_all(Locator::Css(css)),
        );
        let mut texts = Vec::new();
        for element in elements {
            texts.push(self.run(&format!("text of `{css}`"), element.text()));
        }
        texts
    }

    #[track_caller]
    pub fn click(&self, css: &str) {
        self.find(css).click()
    }

    /// Press and release each key of `keys` in turn, as a user would, on
    /// whatever has the focus (the page's body when nothing else does): a
    /// document-level `keydown` listener sees every one. Special keys are
    /// [`Key`]s: `send_keys(&Key::Enter)`.
    #[track_caller]
    pub fn send_keys(&self, keys: &str) {
        let mut keyboard = KeyActions::new("keyboard".to_owned());
        for value in keys.chars() {
            keyboard = keyboard
                .then(KeyAction::Down { value })
                .then(KeyAction::Up { value });
        }
        self.run(
            &format!("press {keys:?}"),
            self.client.perform_actions(keyboard),
        )
    }

    /// Focus the field `css` selects and type `text` into it.
    #[track_caller]
    pub fn type_into(&self, css: &str, text: &str) {
        let field = self.find(css);
        self.run(
            &format!("type {text:?} into `{css}`"),
            field.element.send_keys(text),
        )
    }

    /// Run `js` in the page as a function body (`return` gives the value).
    #[track_caller]
    pub fn execute(&self, js: &str) -> serde_json::Value {
        self.run(&format!("run `{js}`"), self.client.execute(js, vec![]))
    }

    /// The first element `css` selects, once one exists.
    #[track_caller]
    pub fn wait_for(&self, css: &str, timeout: Duration) -> Element<'_> {
        let start = Instant::now();
        loop {
            if let Ok(element) = self.attempt(self.client.find(Locator::Css(css))) {
                return Element {
                    browser: self,
                    css: css.to_owned(),
                    element,
                };
            }
            if start.elapsed() > timeout {
                self.fail(&format!("no `{css}` within {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait until the JavaScript expression `condition` is true in the page.
    #[track_caller]
    pub fn wait_until(&self, condition: &str, timeout: Duration) {
        let script = format!("return Boolean({condition});");
        let start = Instant::now();
        loop {
            // The last answer goes into the failure: a script error, or false.
            let answer = self.attempt(self.client.execute(&script, vec![]));
            if answer == Ok(serde_json::json!(true)) {
                return;
            }
            if start.elapsed() > timeout {
                self.fail(&format!(
                    "`{condition}` not true within {timeout:?} (last: {answer:?})"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Save the window's contents as a PNG at `path`.
    #[track_caller]
    pub fn screenshot(&self, path: &Path) {
        let png = self.run("screenshot", self.client.screenshot());
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// The page's current HTML.
    #[track_caller]
    pub fn source(&self) -> String {
        self.run("page source", self.client.source())
    }

    /// What the page wrote to its console, and its uncaught errors, since the
    /// last call (chromedriver hands each message out once), one a line as
    /// `LEVEL message`.
    #[track_caller]
    pub fn console(&self) -> Vec<String> {
        match self.try_console() {
            Ok(messages) => messages,
            Err(e) => self.fail(&e),
        }
    }

    fn try_console(&self) -> Result<Vec<String>, String> {
        let session = self
            .attempt(self.client.session_id())?
            .ok_or("no WebDriver session")?;
        // Not in the W3C protocol: chromedriver's own endpoint.
        let log = self.driver.request(
            "POST",
            &format!("/session/{session}/se/log"),
            Some(&serde_json::json!({"type": "browser"})),
        )?;
        let entries = log["value"]
            .as_array()
            .ok_or_else(|| format!("not a browser log: {log}"))?;
        Ok(entries
            .iter()
            .map(|e| {
                let field = |name: &str| e[name].as_str().unwrap_or_default().to_owned();
                format!("{} {}", field("level"), field("message"))
            })
            .collect())
    }

    /// Run one WebDriver command; on failure, panic with what the page showed.
    #[track_caller]
    fn run<T>(&self, what: &str, command: impl Future<Output = Result<T, CmdError>>) -> T {
        match self.attempt(command) {
            Ok(value) => value,
            Err(e) => self.fail(&format!("{what}: {e}")),
        }
    }

    /// Run one WebDriver command within [`COMMAND`].
    fn attempt<T>(&self, command: impl Future<Output = Result<T, CmdError>>) -> Result<T, String> {
        self.within(COMMAND, command)
    }

    fn within<T>(
        &self,
        limit: Duration,
        command: impl Future<Output = Result<T, CmdError>>,
    ) -> Result<T, String> {
        match self
            .runtime
            .block_on(async { tokio::time::timeout(limit, command).await })
        {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {limit:?}")),
        }
    }

    /// Panic with `what` went wrong and what the browser showed meanwhile.
    #[track_caller]
    fn fail(&self, what: &str) -> ! {
        let url = self
            .within(DIAGNOSE, self.client.current_url())
            .map_or_else(|e| format!("(unknown: {e})"), |u| u.to_string());
        // The body without its scripts and styles: what the page shows,
        // not the code a viewer page inlines ahead of it.
        let body = self
            .within(DIAGNOSE, self.client.execute(BODY_WITHOUT_CODE, vec![]))
            .map(|html| html.as_str().unwrap_or_default().to_owned());
        let html = match body {
            Ok(html) if !html.is_empty() => html,
            _ => self
                .within(DIAGNOSE, self.client.source())
                .unwrap_or_else(|e| format!("(unknown: {e})")),
        };
        let console = self
            .try_console()
            .map_or_else(|e| format!("(unknown: {e})"), |c| c.join("\n"));
        panic!(
            "browser: {what}\nat {url}\npage:\n{}\nconsole:\n{console}\nchromedriver's log:\n{}",
            excerpt(&html, 4000),
            self.driver.log_tail()
        );
    }
}

impl Drop for Browser {
    /// End the session, which quits Chromium; the driver is killed after.
    fn drop(&mut self) {
        let _ = self.within(DIAGNOSE, self.client.clone().close());
    }
}

/// The page's `<body>` as HTML, its `<script>` and `<style>` elements left out.
const BODY_WITHOUT_CODE: &str = "
    if (!document.body) return '';
    const body = document.body.cloneNode(true);
    body.querySelectorAll('script, style').forEach((e) => e.remove());
    return body.outerHTML;";

/// The first `limit` bytes of `text` (cut at a character boundary).
fn excerpt(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let end = (0..=limit)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap();
    format!("{}… ({} bytes more)", &text[..end], text.len() - end)
}

/// One element of the page, as `Browser::find` found it.
pub struct Element<'b> {
    browser: &'b Browser,
    css: String,
    element: fantoccini::elements::Element,
}

impl Element<'_> {
    #[track_caller]
    pub fn text(&self) -> String {
        self.browser
            .run(&format!("text of `{}`", self.css), self.element.text())
    }

    #[track_caller]
    pub fn attr(&self, name: &str) -> Option<String> {
        self.browser.run(
            &format!("attribute {name} of `{}`", self.css),
            self.element.attr(name),
        )
    }

    #[track_caller]
    pub fn click(&self) {
        self.browser
            .run(&format!("click `{}`", self.css), self.element.click())
    }
}

/// A page for the harness's test: a document-level shortcut listener that
/// records each key pressed outside a form field (as the viewer's shortcuts
/// do), a link, a form, and a mark set a moment after loading.
const HARNESS_PAGE: &str = r#"<!doctype html>
<title>harness</title>
<p id="key">none</p>
<p id="keys"></p>
<a id="next" href="/second">second page</a>
<form action="/echo"><input id="name" name="name"></form>
<script>
  const pressed = [];
  document.addEventListener("keydown", (e) => {
    if (e.target.matches("input")) return;
    pressed.push(e.key);
    document.getElementById("key").textContent = e.key;
    document.getElementById("keys").textContent = pressed.join(" ");
  });
  setTimeout(() => { document.body.dataset.late = "yes"; }, 300);
  console.log("harness page ready");
</script>
"#;

const SECOND_PAGE: &str = r#"<!doctype html>
<title>second</title>
<h1 id="second">Second</h1>
<ul><li>one</li><li>two</li></ul>
<a id="back" href="/">back</a>
"#;

/// Serve the harness's pages on a loopback port, for the rest of the test
/// run; the base URL. `/echo?name=X` shows X and logs "echoed".
fn serve_harness_pages() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            // A thread each: Chromium opens connections it sends nothing on.
            std::thread::spawn(move || answer(stream));
        }
    });
    url
}

fn answer(stream: TcpStream) {
    let mut reader = BufReader::new(stream);
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    let mut header = String::new();
    while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
        header.clear();
    }
    let path = request.split(' ').nth(1).unwrap_or("/");
    let (status, body) = match path {
        "/" => ("200 OK", HARNESS_PAGE.to_owned()),
        "/second" => ("200 OK", SECOND_PAGE.to_owned()),
        _ => match path.strip_prefix("/echo?name=") {
            Some(name) => (
                "200 OK",
                format!("<p id=\"echo\">{name}</p><script>console.log(\"echoed\")</script>"),
            ),
            None => ("404 Not Found", String::new()),
        },
    };
    let _ = write!(
        reader.get_mut(),
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
}

#[test]
fn the_harness_drives_a_real_chromium() {
    let base = serve_harness_pages();
    let b = Browser::start();
    let wait = Duration::from_secs(10);

    b.goto(&format!("{base}/"));
    assert!(
        b.console().iter().any(|m| m.contains("harness page ready")),
        "the page's console.log reaches `console`"
    );
    b.wait_until("document.body.dataset.late === 'yes'", wait);

    // Navigation: a click follows the link, and the next page is read.
    assert_eq!(b.find("#next").attr("href").as_deref(), Some("/second"));
    b.click("#next");
    b.wait_for("#second", wait);
    assert_eq!(b.current_url(), format!("{base}/second"));
    assert_eq!(b.texts("li"), ["one", "two"]);
    b.find("#back").click();
    assert_eq!(b.wait_for("#key", wait).text(), "none");

    // Plain key presses reach the document's listener; typing into a field
    // does not, and Enter in it submits the form.
    b.send_keys("j1");
    b.send_keys(&Key::Enter);
    assert_eq!(b.text("#keys"), "j 1 Enter");
    b.type_into("#name", "Ada");
    assert_eq!(
        b.execute("return document.getElementById('name').value"),
        "Ada"
    );
    assert_eq!(b.text("#key"), "Enter");
    b.send_keys(&Key::Enter);
    assert_eq!(b.wait_for("#echo", wait).text(), "Ada");
    assert_eq!(b.current_url(), format!("{base}/echo?name=Ada"));
    assert!(b.source().contains(r#"<p id="echo">Ada</p>"#));

    // A screenshot is a PNG of the whole 1280-pixel-wide window.
    let s = Scratch::new();
    let png = s.path("shots/page.png");
    b.screenshot(&png);
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), 1280);

    // A failure says where the browser was, what the page showed (not its
    // scripts) and what it logged.
    let failure = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        b.wait_for("#missing", Duration::from_millis(200));
    }))
    .expect_err("waiting for a missing element fails");
    let message = failure.downcast_ref::<String>().unwrap();
    assert!(message.contains("no `#missing` within 200ms"), "{message}");
    assert!(
        message.contains(&format!("at {base}/echo?name=Ada")),
        "{message}"
    );
    assert!(message.contains(r#"<p id="echo">Ada</p>"#), "{message}");
    assert!(!message.contains("console.log"), "{message}");
    assert!(
        message.contains("INFO http") && message.contains("echoed"),
        "{message}"
    );
}
