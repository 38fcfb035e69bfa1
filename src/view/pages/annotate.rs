//! Annotation: a person's labels of a trace's failure modes (present,
//! absent or unsure, with the agent, the turn and a rationale), the queue
//! that serves each annotator the next trace they have not labelled, and
//! the name an annotator gives once.
//!
//! Labels are stored by [`crate::store::Store::annotate`]: every
//! submission is kept, the latest counts, and it is mirrored into `labels`
//! as rater `human:NAME`, where `crucible agreement` reads it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Form, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde_json::json;

use crate::scenario::failure::FailureMode;
use crate::store::{HumanLabel, ModeAnnotation, TraceAnnotation, valid_annotator};

use super::super::server::{App, Visitor, same_secret};
use super::{PageError, Params, render};

/// The form's fields, as submitted.
type Fields = Vec<(String, String)>;

fn field<'a>(fields: &'a Fields, name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// A submitted form, admitted only with this session's CSRF token: every
/// handler that writes takes its fields through this extractor.
pub struct CsrfForm(pub Fields);

impl<S: Send + Sync> axum::extract::FromRequest<S> for CsrfForm {
    type Rejection = Response;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Response> {
        let visitor = request
            .extensions()
            .get::<Visitor>()
            .cloned()
            .ok_or_else(|| {
                PageError::internal("no visitor: the guard did not run".into()).into_response()
            })?;
        let Form(fields) = Form::<Fields>::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        match field(&fields, "csrf") {
            Some(t) if same_secret(t, &visitor.csrf) => Ok(CsrfForm(fields)),
            _ => Err(PageError::forbidden(
                "the form's CSRF token is missing or from another session: reload the page and submit again".into(),
            )
            .into_response()),
        }
    }
}

/// The labels of one trace, read from the form: `label:CODE` is present,
/// absent or unsure (left blank: not labelled), `agent:CODE`, `turn:CODE`
/// and `rationale:CODE` go with it.
fn read_modes(fields: &Fields) -> Result<Vec<ModeAnnotation>, PageError> {
    let mut modes = Vec::new();
    for (key, value) in fields {
        let Some(code) = key.strip_prefix("label:") else {
            continue;
        };
        let mode = FailureMode::from_code(code)
            .ok_or_else(|| PageError::bad_request(format!("no failure mode `{code}`")))?;
        let label = match value.as_str() {
            "" => continue,
            "present" => HumanLabel::Present,
            "absent" => HumanLabel::Absent,
            "unsure" => HumanLabel::Unsure,
            other => {
                return Err(PageError::bad_request(format!(
                    "the label of {code} must be present, absent or unsure, not `{other}`"
                )));
            }
        };
        let turn = field(fields, &format!("turn:{code}"))
            .map(|t| {
                t.parse::<u64>().map_err(|_| {
                    PageError::bad_request(format!(
                        "the turn of {code} must be a message number, not `{t}`"
                    ))
                })
            })
            .transpose()?;
        modes.push(ModeAnnotation {
            mode,
            label,
            agent: field(fields, &format!("agent:{code}")).map(str::to_owned),
            turn,
            rationale: field(fields, &format!("rationale:{code}")).map(str::to_owned),
        });
    }
    Ok(modes)
}

/// Store the visitor's labels of a trace; back to it, or on to the next
/// trace of the queue.
pub async fn submit(
    State(app): State<Arc<App>>,
    Extension(visitor): Extension<Visitor>,
    Path((run, task, attempt)): Path<(i64, usize, usize)>,
    CsrfForm(fields): CsrfForm,
) -> Result<Response, PageError> {
    let annotator = visitor.annotator.clone().ok_or_else(|| {
        PageError::bad_request("give your name first: labels are stored under it".into())
    })?;
    let modes = read_modes(&fields)?;
    if modes.is_empty() {
        return Err(PageError::bad_request(
            "no mode was labelled: choose present, absent or unsure for at least one".into(),
        ));
    }
    let queue = field(&fields, "queue").is_some();
    let trace = TraceAnnotation {
        run_id: run,
        task_index: task,
        attempt,
        annotator,
        source: "viewer".into(),
        modes,
    };
    let saved = trace.modes.len();
    app.write(move |store| {
        store
            .annotate(std::slice::from_ref(&trace))
            .map_err(PageError::from)
    })
    .await?;
    let to = if queue {
        format!("/runs/{run}/queue?after={task}.{attempt}")
    } else {
        format!("/runs/{run}/traces/{task}/{attempt}?saved={saved}")
    };
    Ok(Redirect::to(&to).into_response())
}

/// The next trace this annotator has not labelled (after `after`, a
/// `TASK.ATTEMPT`), or a page saying every trace is labelled.
pub async fn queue(
    State(app): State<Arc<App>>,
    Extension(visitor): Extension<Visitor>,
    Path(run): Path<i64>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let params = Params(query);
    let after = params
        .text("after")
        .map(|a| {
            a.split_once('.')
                .and_then(|(t, at)| Some((t.parse().ok()?, at.parse().ok()?)))
                .ok_or_else(|| {
                    PageError::bad_request(format!("`after` must be TASK.ATTEMPT, not `{a}`"))
                })
        })
        .transpose()?;
    let Some(annotator) = visitor.annotator.clone() else {
        let context =
            json!({"run_id": run, "needs_name": true, "back": format!("/runs/{run}/queue")});
        return Ok(render("queue.html", &visitor, "labelling queue", context)?.into_response());
    };
    let (next, progress) = app
        .read(move |store| {
            Ok((
                store.next_unannotated(run, &annotator, after)?,
                store.annotation_progress(run, &annotator)?,
            ))
        })
        .await?;
    match next {
        Some((task, attempt)) => Ok(Redirect::to(&format!(
            "/runs/{run}/traces/{task}/{attempt}?queue=1"
        ))
        .into_response()),
        None => {
            let context = json!({"run_id": run, "progress": progress, "needs_name": false});
            Ok(render("queue.html", &visitor, "labelling queue", context)?.into_response())
        }
    }
}

/// Remember the visitor's name (a cookie) and go back.
pub async fn name(
    State(app): State<Arc<App>>,
    CsrfForm(fields): CsrfForm,
) -> Result<Response, PageError> {
    if app.annotator.is_some() {
        return Err(PageError::forbidden(
            "this viewer labels under the name given by --annotator".into(),
        ));
    }
    let name = field(&fields, "name").unwrap_or("");
    valid_annotator(name).map_err(PageError::bad_request)?;
    let back = field(&fields, "back")
        .filter(|b| own_path(b))
        .unwrap_or("/");
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, back.to_owned()),
            (header::SET_COOKIE, app.annotator_cookie(name)),
        ],
        Html(String::new()),
    )
        .into_response())
}

/// Whether `to` is a path of this site, and only that: visible ASCII, one
/// leading slash (`//host` and `/\host` lead elsewhere), no scheme.
fn own_path(to: &str) -> bool {
    let bytes = to.as_bytes();
    bytes.first() == Some(&b'/')
        && !matches!(bytes.get(1), Some(b'/' | b'\\'))
        && bytes.iter().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_of_this_site_are_gone_back_to() {
        assert!(own_path("/runs/1/traces/0/0?queue=1"));
        for elsewhere in [
            "//evil.example/",
            "/\\evil.example",
            "/\t/evil.example",
            "https://evil.example",
            "",
            "runs/1",
        ] {
            assert!(!own_path(elsewhere), "{elsewhere:?}");
        }
    }

    #[test]
    fn the_form_gives_labelled_modes_only() {
        let fields: Fields = [
            ("csrf", "t"),
            ("label:FM-1.3", "present"),
            ("agent:FM-1.3", "coder"),
            ("turn:FM-1.3", "4"),
            ("rationale:FM-1.3", "repeats step 2"),
            ("label:FM-2.1", ""),
            ("label:FM-3.3", "unsure"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .to_vec();
        let modes = read_modes(&fields).unwrap();
        assert_eq!(modes.len(), 2);
        assert_eq!(modes[0].mode, FailureMode::StepRepetition);
        assert_eq!(modes[0].label, HumanLabel::Present);
        assert_eq!(
            (modes[0].agent.as_deref(), modes[0].turn),
            (Some("coder"), Some(4))
        );
        assert_eq!(modes[1].label, HumanLabel::Unsure);
        let bad: Fields = vec![("label:FM-9.9".into(), "present".into())];
        assert!(read_modes(&bad).is_err());
        let bad: Fields = vec![("label:FM-1.1".into(), "maybe".into())];
        assert!(read_modes(&bad).is_err());
    }
}
