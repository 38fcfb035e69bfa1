//! `crucible plot`: SVG charts of an [`Analysis`] — accuracy against n (log₂
//! axis) and against tokens per task, one line per rule with its bootstrap
//! interval as a band.
//!
//! Drawn with plotters' SVG backend and its font-free text layout: labels are
//! SVG `<text>` elements the viewer sets in its own sans-serif, so nothing
//! here needs system fonts. Reads nothing but the analysis it is given.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::report::analysis::{Analysis, CurvePoint};

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("cannot create the output directory {path}: {source}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("drawing {path}: {message}")]
    Draw { path: PathBuf, message: String },
}

/// Colors of successive lines (a colour-blind-safe qualitative palette).
const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
    RGBColor(120, 120, 120),
    RGBColor(240, 228, 66),
];

/// What a chart puts on its x axis.
#[derive(Clone, Copy)]
enum Axis {
    Samples,
    Tokens,
}

impl Axis {
    fn of(self, p: &CurvePoint) -> f64 {
        match self {
            Axis::Samples => p.n as f64,
            Axis::Tokens => p.mean_tokens,
        }
    }
}

/// Write two SVG files per agent into `dir` (created if missing) and return
/// their paths: `<agent>-accuracy-vs-n.svg` and `<agent>-accuracy-vs-tokens.svg`.
pub fn write_plots(analysis: &Analysis, dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    std::fs::create_dir_all(dir).map_err(|source| PlotError::Dir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();
    for agent in &analysis.agents {
        let series = series_of(analysis, &agent.agent);
        if series.is_empty() {
            continue;
        }
        let stem = file_stem(&agent.agent);
        for (axis, suffix, x_label) in [
            (Axis::Samples, "n", "samples per task (n)"),
            (Axis::Tokens, "tokens", "tokens per task"),
        ] {
            let path = dir.join(format!("{stem}-accuracy-vs-{suffix}.svg"));
            let title = format!(
                "{} · {} · {} tasks × {} samples",
                analysis.name, agent.agent, agent.tasks, agent.pool_size
            );
            draw(&path, &title, x_label, axis, &series).map_err(|message| PlotError::Draw {
                path: path.clone(),
                message,
            })?;
            written.push(path);
        }
    }
    Ok(written)
}

/// One line: its label and its points in increasing n.
type Series<'a> = (String, Vec<&'a CurvePoint>);

fn series_of<'a>(analysis: &'a Analysis, agent: &str) -> Vec<Series<'a>> {
    let mut series: Vec<Series<'a>> = Vec::new();
    for p in analysis.curves.iter().filter(|p| p.agent == agent) {
        let label = match &p.verifier {
            Some(v) => format!("{} [{v}]", p.rule),
            None => p.rule.to_owned(),
        };
        match series.iter_mut().find(|(l, _)| *l == label) {
            Some((_, points)) => points.push(p),
            None => series.push((label, vec![p])),
        }
    }
    series
}

/// A file name from an agent name: letters, digits, `-` and `_` kept.
fn file_stem(agent: &str) -> String {
    agent
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn draw(
    path: &Path,
    title: &str,
    x_label: &str,
    axis: Axis,
    series: &[Series<'_>],
) -> Result<(), String> {
    let xs = series
        .iter()
        .flat_map(|(_, ps)| ps.iter().map(|p| axis.of(p)));
    let (lo, hi) = xs
        .filter(|x| *x > 0.0)
        .fold((f64::INFINITY, 0f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
    if !lo.is_finite() {
        return Err("no point has a positive x value".into());
    }
    // A log axis needs a range that is not a single point.
    let hi = if hi > lo { hi } else { lo * 2.0 };
    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(60)
        .build_cartesian_2d((lo..hi).log_scale().base(2.0), 0f64..1f64)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc("accuracy")
        .y_label_formatter(&|y| format!("{:.0}%", y * 100.0))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (label, points)) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let band: Vec<(f64, f64)> = points
            .iter()
            .filter_map(|p| Some((axis.of(p), p.ci_high?)))
            .chain(
                points
                    .iter()
                    .rev()
                    .filter_map(|p| Some((axis.of(p), p.ci_low?))),
            )
            .collect();
        if !band.is_empty() {
            chart
                .draw_series(std::iter::once(Polygon::new(band, color.mix(0.15))))
                .map_err(|e| e.to_string())?;
        }
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (axis.of(p), p.accuracy)),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(label.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}
