//! `crucible view`: the trace database as a local web app — runs, tasks,
//! samples, transcripts, calls, comparisons and annotation — until Ctrl-C.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use crucible::scenario::judge_file::JudgeFile;
use crucible::view::{ViewConfig, Viewer, random_token};

use super::common::DbArg;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub db: DbArg,
    /// Port to listen on (0: any free one; the address is printed).
    #[arg(long, default_value_t = 8765)]
    pub port: u16,
    /// Address to listen on. Beyond loopback, --token is required.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Require a token on every request: this one, or (given alone) a
    /// random one. The address printed at start carries it.
    #[arg(long, value_name = "TOKEN", num_args = 0..=1, default_missing_value = "", env = "CRUCIBLE_VIEW_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Serve pages only: no annotation is written, and the database is
    /// opened read-only.
    #[arg(long)]
    pub read_only: bool,
    /// Label traces as this person (else each visitor gives a name once).
    #[arg(long, value_name = "NAME")]
    pub annotator: Option<String>,
    /// Hide judges' verdicts, injected failures and other people's labels
    /// of a trace until the visitor has labelled it.
    #[arg(long)]
    pub blind: bool,
    /// Judge file whose modes the annotation form and failure tables show
    /// (default: the built-in judges/mast.yaml).
    #[arg(long, value_name = "FILE")]
    pub judge: Option<PathBuf>,
}

pub fn exec(args: Args) -> anyhow::Result<ExitCode> {
    let judge = match &args.judge {
        Some(path) => JudgeFile::load(path).map_err(crucible::Error::Invalid)?,
        None => JudgeFile::mast(),
    };
    let annotator = args
        .annotator
        .as_deref()
        .map(super::labels::annotator_name)
        .transpose()
        .map_err(|why| anyhow::anyhow!("--annotator: {why}"))?;
    let token = args
        .token
        .map(|t| if t.is_empty() { random_token() } else { t });
    let config = ViewConfig {
        db: args.db.db,
        bind: args.bind,
        port: args.port,
        token,
        read_only: args.read_only,
        annotator,
        blind: args.blind,
        judge,
    };
    let db = config.db.clone();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let viewer = Viewer::bind(config).await?;
        outln!("crucible view: {} at {}", db.display(), viewer.url());
        std::io::stdout().flush()?;
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        viewer.serve(stop).await.context("serving the viewer")?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}
