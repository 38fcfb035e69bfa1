//! The viewer's server: what `crucible view` was asked for, the state every
//! page shares, the routes, and the guard every request passes first.
//!
//! The guard is the viewer's security: a request must name this server in
//! its `Host` (a page on another site that rebinds its name to 127.0.0.1
//! cannot read the trace), carry the token when one is required, and —
//! for a write — come from this server's own pages (`Origin`) with the
//! session's CSRF token. Pages read through read-only SQLite connections;
//! the one writable connection is opened for annotations only, and not at
//! all with `--read-only`.

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rand::RngExt;

use crate::scenario::judge_file::JudgeFile;
use crate::store::{Store, StoreError, valid_annotator};

use super::pages::{self, PageError, percent_encode};

/// What `crucible view` was asked for.
pub struct ViewConfig {
    pub db: PathBuf,
    pub bind: IpAddr,
    /// 0: any free port.
    pub port: u16,
    /// Required on every request when set (and required to bind beyond loopback).
    pub token: Option<String>,
    pub read_only: bool,
    /// Every annotation is this person's; else each visitor names themself once.
    pub annotator: Option<String>,
    /// Judges' verdicts and other people's labels stay hidden on a trace
    /// until the visitor has labelled it.
    pub blind: bool,
    /// The taxonomy the annotation form and the failure tables show.
    pub judge: JudgeFile,
}

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error(
        "refusing to serve {addr} without --token: beyond loopback anyone who can reach the port could read the traces; pass --token (a random one is printed) or bind 127.0.0.1"
    )]
    NeedsToken { addr: SocketAddr },
    #[error(
        "--token: a token has at least {MIN_TOKEN} characters, letters, digits and `-._~` only (it goes into an address and a cookie as it is); or pass --token alone for a random one"
    )]
    BadToken,
    #[error("cannot listen on {addr}: {source}; pass another --port (0 picks a free one)")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("no database at {0}; run a scenario first or pass --db (or set CRUCIBLE_DB)")]
    NoDatabase(PathBuf),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What every page shares.
pub(crate) struct App {
    pub db: PathBuf,
    /// The annotations' connection; `None` with `--read-only`.
    pub writer: Option<Mutex<Store>>,
    pub token: Option<String>,
    /// Key of the per-session CSRF tokens.
    csrf_key: [u8; 32],
    pub annotator: Option<String>,
    pub blind: bool,
    pub judge: JudgeFile,
    /// `Host` values a request may carry; `None`: any (a token guards it).
    hosts: Option<Vec<String>>,
    /// Cookie names carry the port: browsers share cookies across ports.
    port: u16,
}

/// Who is asking: the session, its CSRF token and the annotator's name.
#[derive(Clone)]
pub(crate) struct Visitor {
    pub csrf: String,
    pub annotator: Option<String>,
    /// The viewer is blind (`--blind`): no page shows what judges or other
    /// people found, but a trace's own once the visitor has labelled it.
    pub blind: bool,
}

/// Shortest token `--token` accepts.
const MIN_TOKEN: usize = 16;

/// A token that survives an address and a cookie as it is, and is not
/// guessed in a few tries.
fn check_token(token: &str) -> Result<(), ViewError> {
    let safe = token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if token.len() < MIN_TOKEN || !safe {
        return Err(ViewError::BadToken);
    }
    Ok(())
}

/// 128 random bits as hex, from the operating system's generator: a
/// token, a session id.
pub fn random_token() -> String {
    format!(
        "{:032x}",
        rand::make_rng::<rand::rngs::ChaCha20Rng>().random::<u128>()
    )
}

/// A bound viewer, ready to serve.
pub struct Viewer {
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    url: String,
}

impl Viewer {
    /// Check the configuration, open the database (upgrading its schema
    /// unless read-only) and bind the port.
    pub async fn bind(config: ViewConfig) -> Result<Viewer, ViewError> {
        let addr = SocketAddr::new(config.bind, config.port);
        if !config.bind.is_loopback() && config.token.is_none() {
            return Err(ViewError::NeedsToken { addr });
        }
        if let Some(token) = &config.token {
            check_token(token)?;
        }
        if !config.db.exists() {
            return Err(ViewError::NoDatabase(config.db));
        }
        let writer = if config.read_only {
            None
        } else {
            Some(Mutex::new(Store::open(&config.db)?))
        };
        // Fails now, not on the first page, if the schema cannot be read.
        Store::open_read_only(&config.db)?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ViewError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| ViewError::Bind { addr, source })?;
        let host = match local.ip() {
            IpAddr::V6(ip) => format!("[{ip}]"),
            IpAddr::V4(ip) => ip.to_string(),
        };
        let hosts = config.bind.is_loopback().then(|| {
            let names = [host.as_str(), "localhost", "127.0.0.1", "[::1]"];
            let mut hosts: Vec<String> = names
                .iter()
                .map(|h| format!("{h}:{}", local.port()))
                .collect();
            // Browsers leave the default port out of `Host`.
            if local.port() == 80 {
                hosts.extend(names.iter().map(|h| h.to_string()));
            }
            hosts
        });
        let url = match &config.token {
            Some(t) => format!("http://{host}:{}/?token={t}", local.port()),
            None => format!("http://{host}:{}/", local.port()),
        };
        let mut csrf_key = [0u8; 32];
        rand::make_rng::<rand::rngs::ChaCha20Rng>().fill(&mut csrf_key);
        let app = Arc::new(App {
            db: config.db,
            writer,
            token: config.token,
            csrf_key,
            annotator: config.annotator,
            blind: config.blind,
            judge: config.judge,
            hosts,
            port: local.port(),
        });
        Ok(Viewer { listener, app, url })
    }

    /// Where to point a browser (with the token, when there is one).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Serve until `shutdown` completes.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = self.app.clone();
        let router = Router::new()
            .route("/", get(pages::runs::page))
            .route("/runs/{run}", get(pages::run::page))
            .route("/runs/{run}/progress", get(pages::run::progress))
            .route("/runs/{run}/samples", get(pages::samples::page))
            .route("/runs/{run}/tasks/{task}", get(pages::task::page))
            .route(
                "/runs/{run}/traces/{task}/{attempt}",
                get(pages::transcript::page).post(pages::annotate::submit),
            )
            .route("/runs/{run}/queue", get(pages::annotate::queue))
            .route("/calls/{call}", get(pages::call::page))
            .route("/compare", get(pages::compare::page))
            .route("/annotator", axum::routing::post(pages::annotate::name))
            .route(
                "/assets/viewer.css",
                get(|| asset(super::html::CSS, "text/css")),
            )
            .route(
                "/assets/viewer.js",
                get(|| asset(super::html::JS, "text/javascript")),
            )
            // Browsers ask for one on every page; there is none.
            .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
            .fallback(|| async { PageError::not_found("no such page".into()) })
            .layer(axum::middleware::from_fn_with_state(app.clone(), guard))
            .with_state(app);
        axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

async fn asset(body: &'static str, kind: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

impl App {
    /// Run `read` on this thread's read-only connection, off the async
    /// threads. Connections are kept per thread, with their prepared
    /// statements.
    pub async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        read: impl FnOnce(&Store) -> Result<T, PageError> + Send + 'static,
    ) -> Result<T, PageError> {
        thread_local! {
            static READER: RefCell<Option<Store>> = const { RefCell::new(None) };
        }
        let app = self.clone();
        tokio::task::spawn_blocking(move || {
            READER.with(|cell| {
                let mut cell = cell.borrow_mut();
                if cell.as_ref().is_none_or(|s| s.path() != app.db) {
                    *cell = Some(Store::open_read_only(&app.db)?);
                }
                read(cell.as_ref().expect("opened above"))
            })
        })
        .await
        .map_err(|e| PageError::internal(format!("page reader stopped: {e}")))?
    }

    /// Run `write` on the annotations' connection.
    pub async fn write<T: Send + 'static>(
        self: &Arc<Self>,
        write: impl FnOnce(&mut Store) -> Result<T, PageError> + Send + 'static,
    ) -> Result<T, PageError> {
        let app = self.clone();
        tokio::task::spawn_blocking(move || {
            let Some(writer) = &app.writer else {
                return Err(PageError::read_only());
            };
            let mut store = writer.lock().unwrap_or_else(|e| e.into_inner());
            write(&mut store)
        })
        .await
        .map_err(|e| PageError::internal(format!("annotation writer stopped: {e}")))?
    }

    fn cookie_name(&self, what: &str) -> String {
        format!("crucible_{what}_{}", self.port)
    }

    pub fn annotator_cookie(&self, name: &str) -> String {
        cookie(&self.cookie_name("annotator"), &percent_encode(name))
    }

    fn csrf_for(&self, session: &str) -> String {
        blake3::keyed_hash(&self.csrf_key, session.as_bytes()).to_hex()[..32].to_owned()
    }
}

/// `Set-Cookie` for this server only, never sent by other sites' pages.
fn cookie(name: &str, value: &str) -> String {
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict")
}

/// The value of cookie `name` in `headers`.
fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// `s` with `%XX` escapes decoded (invalid ones kept as they are).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |j: usize| {
            bytes
                .get(j..j + 2)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        };
        match (bytes[i], hex(i + 1)) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Equal, in time that does not depend on where they differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// The `token` query parameter of `uri`, and the URI without it.
fn take_token(uri: &Uri) -> Option<(String, String)> {
    let query = uri.query()?;
    let mut token = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.strip_prefix("token=") {
            Some(t) => {
                token = Some(percent_decode(t));
                false
            }
            None => true,
        })
        .collect();
    // One leading slash: `//host/` would send the browser to another site.
    let path = format!("/{}", uri.path().trim_start_matches(['/', '\\']));
    let path = if rest.is_empty() {
        path
    } else {
        format!("{path}?{}", rest.join("&"))
    };
    Some((token?, path))
}

/// Every request passes here first; see the module's documentation.
/// Refusals carry the same security headers as pages.
async fn guard(State(app): State<Arc<App>>, mut request: Request, next: Next) -> Response {
    let (visitor, set_cookies) = match admit(&app, &request) {
        Ok(admitted) => admitted,
        Err(refusal) => return secured(*refusal),
    };
    request.extensions_mut().insert(visitor);
    let mut response = next.run(request).await;
    for c in set_cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    secured(response)
}

/// Who `request` comes from and the cookies to set, or the response that
/// refuses it (or, for `?token=`, moves the token into a cookie).
fn admit(app: &App, request: &Request) -> Result<(Visitor, Vec<String>), Box<Response>> {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if let Some(hosts) = &app.hosts
        && !hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    {
        return Err(PageError::forbidden(format!(
            "this viewer answers to {} only, not to Host `{host}`",
            hosts[0]
        ))
        .into_response()
        .into());
    }
    if let Some(token) = &app.token {
        if let Some((given, rest)) = take_token(request.uri()) {
            if !same_secret(&given, token) {
                return Err(PageError::unauthorized().into_response().into());
            }
            // Keep the token out of the address bar, history and referrers.
            // Lax, so that the page after a link from elsewhere (a chat, a
            // mail) gets the cookie; writes are guarded by origin and CSRF.
            return Err(Response::builder()
                .status(StatusCode::SEE_OTHER)
                .header(header::LOCATION, rest)
                .header(
                    header::SET_COOKIE,
                    cookie(&app.cookie_name("token"), token).replace("Strict", "Lax"),
                )
                .body(Body::empty())
                .unwrap_or_else(|e| PageError::internal(e.to_string()).into_response())
                .into());
        }
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let given = bearer.or_else(|| cookie_value(headers, &app.cookie_name("token")));
        if !given.is_some_and(|g| same_secret(&g, token)) {
            return Err(PageError::unauthorized().into_response().into());
        }
    }
    let mut set_cookies = Vec::new();
    let session = match cookie_value(headers, &app.cookie_name("session")) {
        Some(s) if s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) => s,
        _ => {
            let s = random_token();
            set_cookies.push(cookie(&app.cookie_name("session"), &s));
            s
        }
    };
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        if app.writer.is_none() {
            return Err(PageError::read_only().into_response().into());
        }
        let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        let expected = format!("http://{host}");
        let same_origin = match origin {
            Some(o) => o.eq_ignore_ascii_case(&expected),
            None => headers
                .get("sec-fetch-site")
                .is_some_and(|v| v.as_bytes() == b"same-origin"),
        };
        if !same_origin {
            return Err(PageError::forbidden(format!(
                "a write must come from this viewer's own pages ({expected}), not from `{}`",
                origin.unwrap_or("an unknown origin")
            ))
            .into_response()
            .into());
        }
    }
    let annotator = app.annotator.clone().or_else(|| {
        cookie_value(headers, &app.cookie_name("annotator"))
            .map(|v| percent_decode(&v))
            .filter(|n| valid_annotator(n).is_ok())
    });
    let visitor = Visitor {
        csrf: app.csrf_for(&session),
        annotator,
        blind: app.blind,
    };
    Ok((visitor, set_cookies))
}

/// The headers every response carries: no script but the viewer's own, no
/// request to anywhere else, no framing, no content sniffing.
fn secured(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_taken_out_of_the_query() {
        let uri: Uri = "/runs/1?token=ab%2Bc&page=2".parse().unwrap();
        assert_eq!(
            take_token(&uri),
            Some(("ab+c".into(), "/runs/1?page=2".into()))
        );
        let uri: Uri = "/?token=x".parse().unwrap();
        assert_eq!(take_token(&uri), Some(("x".into(), "/".into())));
        let uri: Uri = "//evil.example/?token=x".parse().unwrap();
        assert_eq!(
            take_token(&uri),
            Some(("x".into(), "/evil.example/".into()))
        );
        assert!(check_token("0123456789abcdef").is_ok());
        assert!(check_token("short").is_err());
        assert!(check_token("has;semicolon-and-more").is_err());
        assert_eq!(take_token(&"/?page=1".parse().unwrap()), None);
    }

    #[test]
    fn cookies_round_trip_names() {
        let name = "Zoë O'Neil; x=1";
        assert_eq!(percent_decode(&percent_encode(name)), name);
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; crucible_x_80=two"),
        );
        assert_eq!(cookie_value(&h, "crucible_x_80").as_deref(), Some("two"));
        assert_eq!(cookie_value(&h, "b"), None);
        assert!(same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("a", "ab"));
    }
}
