//! The viewer's pages, one file each: its query, the store reads it makes
//! and the template it renders. Shared here: reading query parameters with
//! errors that say which one is wrong, the error page, and the context
//! every page's layout needs.

pub mod annotate;
pub mod call;
pub mod compare;
pub mod run;
pub mod runs;
pub mod samples;
pub mod task;
pub mod transcript;

use std::collections::HashMap;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Value, json};

use crate::scenario::judge_file::JudgeFile;
use crate::store::{CallListRow, LabelSource, ModeFilter, PageRequest, SampleQuery, StoreError};

use super::error::RenderError;
use super::html;
use super::server::Visitor;

/// Rows per page of every list unless the query says `per_page`.
const PER_PAGE: u64 = 50;

/// A page that could not be shown: its status and why, as an HTML page.
#[derive(Debug)]
pub struct PageError {
    status: StatusCode,
    message: String,
}

impl PageError {
    pub fn not_found(message: String) -> PageError {
        PageError {
            status: StatusCode::NOT_FOUND,
            message,
        }
    }
    pub fn bad_request(message: String) -> PageError {
        PageError {
            status: StatusCode::BAD_REQUEST,
            message,
        }
    }
    pub fn forbidden(message: String) -> PageError {
        PageError {
            status: StatusCode::FORBIDDEN,
            message,
        }
    }
    pub fn internal(message: String) -> PageError {
        PageError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message,
        }
    }
    pub fn unauthorized() -> PageError {
        PageError {
            status: StatusCode::UNAUTHORIZED,
            message: "this viewer needs its token: open the address `crucible view` printed when it started (it ends in ?token=…)".into(),
        }
    }
    pub fn read_only() -> PageError {
        PageError::forbidden(
            "this viewer was started with --read-only: nothing can be written".into(),
        )
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> PageError {
        match e {
            StoreError::NoSuchRun { run, .. } => {
                PageError::not_found(format!("no run {run} in this database"))
            }
            e => PageError::internal(e.to_string()),
        }
    }
}

impl From<minijinja::Error> for PageError {
    fn from(e: minijinja::Error) -> PageError {
        RenderError::from(e).into()
    }
}

impl From<crate::report::plot::PlotError> for PageError {
    fn from(e: crate::report::plot::PlotError) -> PageError {
        RenderError::from(e).into()
    }
}

impl From<RenderError> for PageError {
    fn from(e: RenderError) -> PageError {
        match e {
            RenderError::NotFound(why) => PageError::not_found(why),
            RenderError::Store(e) => e.into(),
            e => PageError::internal(e.to_string()),
        }
    }
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let body = html::render(
            "error.html",
            json!({"status": self.status.as_u16(), "message": self.message}),
        )
        .unwrap_or_else(|_| "error".into());
        (self.status, Html(body)).into_response()
    }
}

/// A page's query parameters. An empty value (a form's blank field) is no
/// value; any other that does not parse is an error naming the parameter.
pub struct Params(pub HashMap<String, String>);

impl Params {
    pub fn text(&self, name: &str) -> Option<String> {
        self.0
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    pub fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, PageError> {
        self.text(name)
            .map(|v| {
                v.parse().map_err(|_| {
                    PageError::bad_request(format!(
                        "query parameter `{name}` must be a whole number, not `{v}`"
                    ))
                })
            })
            .transpose()
    }

    /// `yes`/`no` (or `1`/`0`, `true`/`false`).
    pub fn flag(&self, name: &str) -> Result<Option<bool>, PageError> {
        match self.text(name).as_deref() {
            None => Ok(None),
            Some("yes" | "1" | "true") => Ok(Some(true)),
            Some("no" | "0" | "false") => Ok(Some(false)),
            Some(v) => Err(PageError::bad_request(format!(
                "query parameter `{name}` must be yes or no, not `{v}`"
            ))),
        }
    }

    /// `page` (1-based in the address, as people count) and `per_page`.
    pub fn page(&self) -> Result<PageRequest, PageError> {
        let page: u64 = self.number("page")?.unwrap_or(1);
        Ok(PageRequest::new(
            page.saturating_sub(1),
            self.number("per_page")?.unwrap_or(PER_PAGE),
        ))
    }

    /// The failure-mode filter: `mode` (a code of `judge`) and who found
    /// it, `source`; refused to a blind viewer, where it would tell which
    /// traces judges flagged.
    pub fn mode_filter(
        &self,
        judge: &JudgeFile,
        blind: bool,
    ) -> Result<Option<ModeFilter>, PageError> {
        let Some(code) = self.text("mode") else {
            if let Some(s) = self.text("source") {
                return Err(PageError::bad_request(format!(
                    "`source={s}` filters a failure `mode`; give one"
                )));
            }
            return Ok(None);
        };
        if blind {
            return Err(PageError::forbidden(
                "this viewer is blind (--blind): it does not filter by what judges or people found"
                    .into(),
            ));
        }
        if !judge.modes.iter().any(|m| m.code == code) {
            return Err(PageError::bad_request(format!(
                "no failure mode `{code}` in judge {}: use one of {}",
                judge.name,
                judge
                    .modes
                    .iter()
                    .map(|m| m.code.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let source = self
            .text("source")
            .map(|s| {
                LabelSource::parse(&s).ok_or_else(|| {
                    PageError::bad_request(format!(
                        "`source` must be judged, annotated or injected, not `{s}`"
                    ))
                })
            })
            .transpose()?;
        Ok(Some(ModeFilter { code, source }))
    }

    /// A sample list's filters (of task `task_index` only, when given).
    pub fn sample_query(
        &self,
        task_index: Option<usize>,
        judge: &JudgeFile,
        blind: bool,
    ) -> Result<SampleQuery, PageError> {
        Ok(SampleQuery {
            agent: self.text("agent"),
            correct: self.flag("correct")?,
            strategy: self.text("strategy"),
            task_index: match task_index {
                Some(t) => Some(t),
                None => self.number("task")?,
            },
            search: self.text("q"),
            mode: self.mode_filter(judge, blind)?,
        })
    }

    /// The query as given, for the filter forms to show.
    pub fn values(&self) -> Value {
        json!(self.0)
    }

    /// `path` with this query, `name` set to `value` (or removed when `None`).
    pub fn link(&self, path: &str, name: &str, value: Option<&str>) -> String {
        let mut pairs: Vec<(&str, &str)> = self
            .0
            .iter()
            .filter(|(k, v)| k.as_str() != name && !v.is_empty())
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if let Some(v) = value {
            pairs.push((name, v));
        }
        pairs.sort_unstable();
        if pairs.is_empty() {
            return path.to_owned();
        }
        let query: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
            .collect();
        format!("{path}?{}", query.join("&"))
    }
}

/// `s` with every byte but the unreserved ones (letters, digits, `-._~`)
/// percent-encoded: safe in a query, a path segment or a cookie value.
pub(crate) fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// A call list as a viewer may see it: a blind one lists no failure
/// judge's call (its reply is a verdict).
pub fn visible_calls(calls: Vec<CallListRow>, blind: bool) -> Vec<CallListRow> {
    calls
        .into_iter()
        .filter(|c| !blind || c.role != "judge")
        .collect()
}

/// The failure modes a filter offers: the judge file's, in its order.
pub fn mode_choices(judge: &JudgeFile) -> Value {
    judge
        .modes
        .iter()
        .map(|m| json!({"code": m.code, "name": m.name}))
        .collect()
}

/// Render `template` with `context` and what the layout needs.
pub fn render(
    template: &str,
    visitor: &Visitor,
    title: &str,
    mut context: Value,
) -> Result<Html<String>, PageError> {
    if let Value::Object(map) = &mut context {
        map.insert("title".into(), json!(title));
        map.insert("csrf".into(), json!(visitor.csrf));
        map.insert("annotator".into(), json!(visitor.annotator));
        map.insert("blind_viewer".into(), json!(visitor.blind));
    }
    Ok(Html(html::render(template, context)?))
}

/// What the pagination bar shows: the page (1-based), pages, rows, and
/// links to the first, previous, next and last pages of `path`.
pub fn pager<T>(page: &crate::store::Page<T>, path: &str, params: &Params) -> Value {
    let (at, pages) = (page.page.saturating_add(1), page.pages());
    let link = |p: u64| params.link(path, "page", Some(&p.to_string()));
    let start = page.page.saturating_mul(page.per_page);
    // A page past the end shows no rows, and links back into the list.
    let (first_row, last_row) = match page.rows.len() as u64 {
        0 => (0, 0),
        n => (start + 1, start + n),
    };
    json!({
        "page": at,
        "pages": pages,
        "total": page.total,
        "first_row": first_row,
        "last_row": last_row,
        "first": (at > 1).then(|| link(1)),
        "prev": (at > 1).then(|| link((at - 1).min(pages))),
        "next": (at < pages).then(|| link(at + 1)),
        "last": (at != pages).then(|| link(pages)),
    })
}
