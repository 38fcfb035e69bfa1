//! `crucible view` and `crucible report`: the trace database as web pages
//! — runs, a run's summary, curves, failure rates and agreement, tasks,
//! samples, transcripts with judges' evidence, calls, two runs side by
//! side — with human annotation of traces; and one run as a single HTML
//! file that opens anywhere.
//!
//! `server` owns the HTTP side (routes, the security guard, the read-only
//! and the annotation connections); `pages` has one file per page;
//! `html` the embedded templates and their escaping; `report` the
//! self-contained file. Every read is a [`crate::store`] page query; every
//! chart comes from [`crate::report::plot`].
//!
//! May use: `scenario`, `stats`, `store`, `report`, `judge`, `seed`.

mod error;
mod html;
mod pages;
pub mod report;
mod server;

pub use error::RenderError;
pub use server::{ViewConfig, ViewError, Viewer, random_token};
