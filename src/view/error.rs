//! What can keep a page's or a report's content from being made, before
//! HTTP has a say: the parts the viewer and `crucible report` share return
//! it, pages turn it into a status ([`super::pages::PageError`]).

use crate::report::plot::PlotError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// What was asked for is not in the database (a task, a trace, a rater).
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Plot(#[from] PlotError),
    #[error("rendering the page: {0:#}")]
    Template(#[from] minijinja::Error),
}
