//! `crucible plot`: SVG charts of an [`Analysis`] — accuracy against n (log₂
//! axis) and against tokens per task, one line per rule with its bootstrap
//! interval as a band — and of a [`FailureReport`]: each failure mode's rate
//! with its interval, and the categories' shares of the failures found, as
//! horizontal bars.
//!
//! Drawn with plotters' SVG backend and its font-free text layout: labels are
//! SVG `<text>` elements the viewer sets in its own sans-serif, so nothing
//! here needs system fonts. Reads nothing but the report it is given; the
//! only text from a file is the judge file's names (never model output).

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::report::analysis::Analysis;
use crate::report::failures::FailureReport;
use crate::report::prediction::Prediction;
use crate::report::regret::PolicyRegret;
use crate::report::theory::TheoryReport;
use crate::stats::separation::Fit;
use crate::stats::summary::RunSummary;
use crate::store::TRUTH_RATER;

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("cannot create the output directory {path}: {source}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("drawing {name}: {message}")]
    Draw { name: String, message: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
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

/// Width and height of a curve chart, in pixels; bar charts share the width.
const SIZE: (u32, u32) = (960, 600);
/// The font of every chart's title.
const TITLE_FONT: (&str, u32) = ("sans-serif", 20);
/// Space around every chart, in pixels.
const MARGIN: u32 = 16;

/// What a chart puts on its x axis.
#[derive(Clone, Copy)]
enum Axis {
    Samples,
    Tokens,
}

/// One point of a curve: samples and tokens per task, accuracy and its interval.
struct Point {
    n: f64,
    tokens: f64,
    accuracy: f64,
    ci: Option<(f64, f64)>,
}

impl Axis {
    fn of(self, p: &Point) -> f64 {
        match self {
            Axis::Samples => p.n,
            Axis::Tokens => p.tokens,
        }
    }
}

/// One chart, drawn: its file name and its SVG text.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Chart {
    pub name: String,
    pub svg: String,
}

/// Two charts per agent of `analysis`: `<agent>-accuracy-vs-n.svg` and
/// `<agent>-accuracy-vs-tokens.svg`.
pub fn curve_charts(analysis: &Analysis) -> Result<Vec<Chart>, PlotError> {
    let mut charts = Vec::new();
    for agent in &analysis.agents {
        let title = format!(
            "{} · {} · {} tasks × {} samples",
            analysis.name, agent.agent, agent.tasks, agent.pool_size
        );
        let series = series_of(
            analysis
                .curves
                .iter()
                .filter(|p| p.agent == agent.agent)
                .map(|p| {
                    let label = match &p.verifier {
                        Some(v) => format!("{} [{v}]", p.rule),
                        None => p.rule.to_owned(),
                    };
                    let point = Point {
                        n: p.n as f64,
                        tokens: p.mean_tokens,
                        accuracy: p.accuracy,
                        ci: p.ci_low.zip(p.ci_high),
                    };
                    (label, point)
                }),
        );
        charts.extend(agent_charts(&agent.agent, "accuracy", &title, &series)?);
    }
    Ok(charts)
}

/// Two charts per agent of `prediction`, `<agent>-theory-vs-n.svg` and
/// `<agent>-theory-vs-tokens.svg`: each rule's predicted curve with its
/// posterior band (past the pool), the observed curve with its bootstrap
/// interval, and majority's realized curve.
pub fn prediction_charts(prediction: &Prediction) -> Result<Vec<Chart>, PlotError> {
    let agents = super::first_seen(prediction.curves.iter().map(|x| x.agent.as_str()));
    let mut charts = Vec::new();
    for agent in agents {
        let mine = || prediction.curves.iter().filter(move |c| c.agent == agent);
        let point = |n: usize, tokens: f64, accuracy: f64, ci: Option<[f64; 2]>| Point {
            n: n as f64,
            tokens,
            accuracy,
            ci: ci.map(|[lo, hi]| (lo, hi)),
        };
        let label = |rule: &str, verifier: &Option<String>, what: &str| match verifier {
            Some(v) => format!("{rule} [{v}] {what}"),
            None => format!("{rule} {what}"),
        };
        // A rule's prediction once, whatever verifiers observed it.
        let mut predicted: Vec<(String, Point)> = Vec::new();
        for c in mine() {
            let name = format!("{} predicted", c.rule);
            if !predicted
                .iter()
                .any(|(l, p)| *l == name && p.n == c.n as f64)
            {
                predicted.push((
                    name,
                    point(c.n, c.tokens, c.predicted, Some(c.predicted_ci)),
                ));
            }
        }
        let observed = mine().filter_map(|c| {
            Some((
                label(c.rule, &c.verifier, "observed"),
                point(c.n, c.tokens, c.observed?, c.observed_ci),
            ))
        });
        let realized = mine().filter(|c| c.verifier.is_none()).filter_map(|c| {
            Some((
                label(c.rule, &None, "realized"),
                point(c.n, c.tokens, c.realized?, None),
            ))
        });
        let series = series_of(predicted.into_iter().chain(observed).chain(realized));
        let title = format!(
            "{} · {agent} · predicted from the pools vs observed",
            prediction.name
        );
        charts.extend(agent_charts(agent, "theory", &title, &series)?);
    }
    Ok(charts)
}

/// Self-correction over experts: `self-correction-regret.svg`, each
/// strategy's mean cumulative regret against rounds (solid) with the
/// theory's bound (dashed, where one is known), and
/// `self-correction-accuracy-vs-{n,tokens}.svg`, each strategy's accuracy
/// by rounds and by tokens per task — the policies at equal compute.
pub fn regret_charts(regrets: &[PolicyRegret], title: &str) -> Result<Vec<Chart>, PlotError> {
    if regrets.is_empty() {
        return Ok(Vec::new());
    }
    let series = series_of(regrets.iter().flat_map(|r| {
        r.rounds.iter().map(|p| {
            let point = Point {
                n: p.round as f64,
                tokens: p.tokens,
                accuracy: p.accuracy,
                ci: None,
            };
            (r.strategy.clone(), point)
        })
    }));
    let mut charts = agent_charts("self-correction", "accuracy", title, &series)?;
    let rounds = regrets
        .iter()
        .map(|r| r.rounds.len())
        .max()
        .unwrap_or(1)
        .max(2) as f64;
    let top = regrets
        .iter()
        .flat_map(|r| r.rounds.iter().map(|p| p.cumulative + p.cumulative_se))
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.5;
    charts.push(drawn("self-correction-regret.svg".into(), SIZE, |root| {
        let mut chart = titled(root, title)
            .x_label_area_size(48)
            .y_label_area_size(60)
            .build_cartesian_2d(1f64..rounds, 0f64..top)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("rounds")
            .y_desc("cumulative regret (mean over tasks)")
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, r) in regrets.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    r.rounds.iter().map(|p| (p.round as f64, p.cumulative)),
                    color.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?
                .label(format!("{} ({})", r.strategy, r.policy))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            // The bound, dashed, only where it falls inside the chart.
            let bound: Vec<(f64, f64)> = r
                .rounds
                .iter()
                .filter_map(|p| Some((p.round as f64, p.bound?)))
                .filter(|&(_, b)| b <= top)
                .collect();
            chart
                .draw_series(DashedLineSeries::new(bound, 6, 4, color.stroke_width(1)))
                .map_err(|e| e.to_string())?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        Ok(())
    })?);
    Ok(charts)
}

/// Write `prediction`'s charts into `dir` and return their paths.
pub fn write_prediction_plots(
    prediction: &Prediction,
    dir: &Path,
) -> Result<Vec<PathBuf>, PlotError> {
    write_charts(&prediction_charts(prediction)?, dir)
}

/// The same two charts per agent from a run's stored summary: each
/// strategy's accuracy at the n it was run at (its mean samples and tokens
/// per task), with its bootstrap interval. No sample is read.
pub fn summary_charts(summary: &RunSummary) -> Result<Vec<Chart>, PlotError> {
    let agents = super::first_seen(summary.results.iter().map(|x| x.agent.as_str()));
    let mut charts = Vec::new();
    for agent in agents {
        let rows = summary
            .results
            .iter()
            .filter(|r| r.agent == agent && r.accuracy.is_finite());
        let series = series_of(rows.map(|r| {
            let point = Point {
                n: r.mean_samples,
                tokens: r.mean_tokens,
                accuracy: r.accuracy,
                ci: (r.ci_low.is_finite() && r.ci_high.is_finite())
                    .then_some((r.ci_low, r.ci_high)),
            };
            (r.strategy.clone(), point)
        }));
        let title = format!("{} · {agent} · run {}", summary.name, summary.run_id);
        charts.extend(agent_charts(agent, "accuracy", &title, &series)?);
    }
    Ok(charts)
}

/// An agent's `<kind>`-vs-n and `<kind>`-vs-tokens charts; none when it has no point.
fn agent_charts(
    agent: &str,
    kind: &str,
    title: &str,
    series: &[Series],
) -> Result<Vec<Chart>, PlotError> {
    if series.is_empty() {
        return Ok(Vec::new());
    }
    let stem = file_stem(agent);
    [
        (Axis::Samples, "n", "samples per task (n)"),
        (Axis::Tokens, "tokens", "tokens per task"),
    ]
    .into_iter()
    .map(|(axis, suffix, x_label)| {
        drawn(format!("{stem}-{kind}-vs-{suffix}.svg"), SIZE, |root| {
            draw(root, title, x_label, axis, series)
        })
    })
    .collect()
}

/// Write two SVG files per agent into `dir` (created if missing) and return
/// their paths: `<agent>-accuracy-vs-n.svg` and `<agent>-accuracy-vs-tokens.svg`;
/// with self-correction over experts, [`regret_charts`] too.
pub fn write_plots(analysis: &Analysis, dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    let mut charts = curve_charts(analysis)?;
    let title = format!(
        "{} · run {} · self-correction over experts",
        analysis.name, analysis.run_id
    );
    charts.extend(regret_charts(&analysis.regret, &title)?);
    write_charts(&charts, dir)
}

/// Write `charts` into `dir` (created if missing), each under its name.
fn write_charts(charts: &[Chart], dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    std::fs::create_dir_all(dir).map_err(|source| PlotError::Dir {
        path: dir.to_path_buf(),
        source,
    })?;
    charts
        .iter()
        .map(|c| {
            let path = dir.join(&c.name);
            std::fs::write(&path, &c.svg).map_err(|source| PlotError::Write {
                path: path.clone(),
                source,
            })?;
            Ok(path)
        })
        .collect()
}

/// The SVG drawn by `draw` on a white canvas of `size`, as chart `name`.
fn drawn(
    name: String,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), String>,
) -> Result<Chart, PlotError> {
    let mut svg = String::new();
    let result = {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| e.to_string())
            .and_then(|()| draw(&root))
            .and_then(|()| root.present().map_err(|e| e.to_string()))
    };
    match result {
        Ok(()) => Ok(Chart { name, svg }),
        Err(message) => Err(PlotError::Draw { name, message }),
    }
}

/// A chart on `root` with `title` over it and the common margin.
fn titled<'a, 'b, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    title: &'b str,
) -> ChartBuilder<'a, 'b, DB> {
    let mut builder = ChartBuilder::on(root);
    builder.caption(title, TITLE_FONT).margin(MARGIN);
    builder
}

/// One line: its label and its points in increasing n.
type Series = (String, Vec<Point>);

/// Labelled points gathered into lines, in the order their labels first come.
fn series_of(points: impl Iterator<Item = (String, Point)>) -> Vec<Series> {
    let mut series: Vec<Series> = Vec::new();
    for (label, p) in points {
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
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    title: &str,
    x_label: &str,
    axis: Axis,
    series: &[Series],
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
    let mut chart = titled(root, title)
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
            .filter_map(|p| Some((axis.of(p), p.ci?.1)))
            .chain(
                points
                    .iter()
                    .rev()
                    .filter_map(|p| Some((axis.of(p), p.ci?.0))),
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
    legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    Ok(())
}

/// The series' legend at `at`, on a pale box.
fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    at: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(at)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

/// The rater whose labels `crucible plot` charts unless told: the first, in
/// sorted order, that gives one judge's verdict — not the injected truth,
/// not one repeat of a model (`…#2`), not an imported file's (`mad:…`,
/// `import…`).
pub fn default_rater<'a>(raters: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    raters
        .into_iter()
        .filter(|r| {
            *r != TRUTH_RATER
                && !r.contains('#')
                && !r.starts_with("mad:")
                && !r.starts_with("import")
        })
        .min()
}

/// Height of each horizontal bar's slot, in pixels.
const BAR_SLOT: u32 = 32;
/// Room left of the bars for their labels, in pixels.
const BAR_LABEL_AREA: u32 = 280;
/// Room right of the plot for the text beside a full-length bar, in pixels.
const BAR_NOTE_AREA: u32 = 110;
/// Height of a row of a bar chart's legend, in pixels.
const LEGEND_ROW: u32 = 20;
/// Longest mode or category name on an axis, in characters.
const NAME_CHARS: usize = 34;

/// Write the failure charts of `report` into `dir` (created if missing) and
/// return their paths: `failure-rates.svg` (each mode's rate with its 95%
/// interval, coloured by category) and `failure-categories.svg` (the
/// categories' shares of the failures found). A chart with no bar (a report
/// with no modes, or no categories) is left out.
pub fn write_failure_plots(report: &FailureReport, dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    write_charts(&failure_charts(report)?, dir)
}

/// The failure charts of `report`: `failure-rates.svg` and
/// `failure-categories.svg`, as [`write_failure_plots`] writes them.
pub fn failure_charts(report: &FailureReport) -> Result<Vec<Chart>, PlotError> {
    let who = format!(
        "judge {} (version {}), rater {}",
        report.judge, report.judge_version, report.rater
    );
    let categories: Vec<String> = report
        .categories
        .iter()
        .map(|c| format!("{} {}", c.code, short(&c.name)))
        .collect();
    let modes: Vec<Bar> = report
        .modes
        .iter()
        .map(|m| Bar {
            label: format!("{} {}", m.code, short(&m.name)),
            value: m.rate.value,
            ci: m.rate.ci,
            note: match m.rate.value {
                Some(v) => format!("{} ({}/{})", percent(v), m.present, m.labelled),
                None => "no verdict".into(),
            },
            group: report
                .categories
                .iter()
                .position(|c| c.code == m.category)
                .unwrap_or(report.categories.len()),
        })
        .collect();
    let rates = BarChart {
        title: format!("{who}: rate per mode over {} traces", report.traces),
        x_desc: "traces where the mode was found (95% interval)",
        bars: modes,
        legend: categories.clone(),
    };
    let found: u64 = report.categories.iter().map(|c| c.failures).sum();
    let shares = BarChart {
        title: format!("{who}: shares of the {found} failures found"),
        x_desc: "share of the failures found",
        bars: report
            .categories
            .iter()
            .zip(categories)
            .enumerate()
            .map(|(group, (c, label))| Bar {
                label,
                value: c.share,
                ci: None,
                note: match c.share {
                    Some(s) => format!("{} ({})", percent(s), c.failures),
                    None => "no failures found".into(),
                },
                group,
            })
            .collect(),
        legend: Vec::new(),
    };
    [
        ("failure-rates.svg", rates),
        ("failure-categories.svg", shares),
    ]
    .into_iter()
    .filter(|(_, chart)| !chart.bars.is_empty())
    .map(|(name, chart)| chart.drawn(name))
    .collect()
}

fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

/// `name`, cut to [`NAME_CHARS`] characters with an ellipsis if longer.
fn short(name: &str) -> String {
    if name.chars().count() <= NAME_CHARS {
        return name.to_owned();
    }
    let mut cut: String = name.chars().take(NAME_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// One horizontal bar of a [`BarChart`].
struct Bar {
    /// On the y axis.
    label: String,
    /// Its length, a share; `None` draws no bar.
    value: Option<f64>,
    /// Drawn as an error bar.
    ci: Option<[f64; 2]>,
    /// Written right of the bar (and of its interval).
    note: String,
    /// Its colour's index, and its entry's in the legend.
    group: usize,
}

impl Bar {
    /// Where the bar or its interval ends, whichever is further.
    fn end(&self) -> f64 {
        self.value
            .into_iter()
            .chain(self.ci.map(|[_, hi]| hi))
            .fold(0f64, f64::max)
    }
}

/// Horizontal bars of shares, the first on top, on an axis from 0 to the
/// furthest bar or interval end rounded up to a tenth (at least 10%).
struct BarChart {
    title: String,
    x_desc: &'static str,
    bars: Vec<Bar>,
    /// Names of the groups, in order, shown under the chart; empty: no legend.
    legend: Vec<String>,
}

impl BarChart {
    fn drawn(&self, name: &str) -> Result<Chart, PlotError> {
        let height = 2 * MARGIN + 40 + 48 + BAR_SLOT * self.bars.len() as u32;
        let legend_height = match self.legend.len() {
            0 => 0,
            rows => LEGEND_ROW * rows as u32 + MARGIN,
        };
        drawn(name.to_owned(), (SIZE.0, height + legend_height), |root| {
            self.draw(root, height)
        })
    }

    fn draw(&self, root: &DrawingArea<SVGBackend<'_>, Shift>, height: u32) -> Result<(), String> {
        let bars = &self.bars;
        let n = bars.len();
        if n == 0 {
            return Err("no bar to draw".into());
        }
        let top = bars.iter().map(Bar::end).fold(0f64, f64::max);
        let x_max = ((top * 10.0 - 1e-9).ceil() / 10.0).clamp(0.1, 1.0);
        // Integer y, so that the axis can have a tick at each bar: bar i
        // centred at y = (n − 1 − i)·SLOT, the first on top.
        const SLOT: i32 = 20;
        const HALF: i32 = 7;
        const CAP: i32 = 3;
        let y_of = |i: usize| (n - 1 - i) as i32 * SLOT;
        let (bars_area, legend_area) = root.split_vertically(height);
        let mut chart = titled(&bars_area, &self.title)
            .margin_right(BAR_NOTE_AREA)
            .x_label_area_size(48)
            .y_label_area_size(BAR_LABEL_AREA)
            .build_cartesian_2d(
                0f64..x_max,
                (-SLOT / 2..n as i32 * SLOT - SLOT / 2).with_key_points((0..n).map(y_of).collect()),
            )
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .light_line_style(TRANSPARENT)
            .x_desc(self.x_desc)
            .x_label_formatter(&|x| format!("{:.0}%", x * 100.0))
            .y_label_formatter(&|&y| {
                (n - 1)
                    .checked_sub((y / SLOT) as usize)
                    .and_then(|i| bars.get(i))
                    .map_or_else(String::new, |b| b.label.clone())
            })
            .y_label_style(("sans-serif", 13))
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(bars.iter().enumerate().filter_map(|(i, b)| {
                let y = y_of(i);
                Some(Rectangle::new(
                    [(0.0, y - HALF), (b.value?, y + HALF)],
                    PALETTE[b.group % PALETTE.len()].filled(),
                ))
            }))
            .map_err(|e| e.to_string())?;
        for (i, b) in bars.iter().enumerate() {
            let Some([lo, hi]) = b.ci else { continue };
            let y = y_of(i);
            chart
                .draw_series(
                    [
                        vec![(lo, y), (hi, y)],
                        vec![(lo, y - CAP), (lo, y + CAP)],
                        vec![(hi, y - CAP), (hi, y + CAP)],
                    ]
                    .map(|line| PathElement::new(line, BLACK.stroke_width(2))),
                )
                .map_err(|e| e.to_string())?;
        }
        let note_style =
            TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| {
                EmptyElement::at((b.end(), y_of(i)))
                    + Text::new(b.note.clone(), (6, 0), note_style.clone())
            }))
            .map_err(|e| e.to_string())?;
        // The legend under the chart, one group a row, where no bar can hide it.
        let x = (MARGIN + BAR_LABEL_AREA) as i32;
        for (group, name) in self.legend.iter().enumerate() {
            let y = (LEGEND_ROW * group as u32 + LEGEND_ROW / 2) as i32;
            let color = PALETTE[group % PALETTE.len()];
            legend_area
                .draw(&Rectangle::new(
                    [(x, y - 6), (x + 12, y + 6)],
                    color.filled(),
                ))
                .map_err(|e| e.to_string())?;
            legend_area
                .draw(&Text::new(name.as_str(), (x + 20, y), note_style.clone()))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// One explained model's NSG on a faithfulness chart.
pub struct NsgPoint {
    pub label: String,
    /// Its known faithfulness (a simulated explainer's), if every point has one.
    pub faithfulness: Option<f64>,
    pub nsg: Option<f64>,
    pub ci: Option<[f64; 2]>,
}

/// `faithfulness.svg`: each explained model's NSG with its interval,
/// against its known faithfulness when every model has one (a simulated
/// explainer's), else model by model in the order given.
pub fn faithfulness_chart(title: &str, points: &[NsgPoint]) -> Result<Chart, PlotError> {
    let known = points.iter().all(|p| p.faithfulness.is_some());
    let x_of = |i: usize, p: &NsgPoint| match p.faithfulness {
        Some(f) if known => f,
        _ => i as f64,
    };
    let drawn_points: Vec<(f64, f64, Option<[f64; 2]>)> = points
        .iter()
        .enumerate()
        .filter_map(|(i, p)| Some((x_of(i, p), p.nsg?, p.ci)))
        .collect();
    let ys = drawn_points
        .iter()
        .flat_map(|(_, y, ci)| std::iter::once(*y).chain(ci.iter().flatten().copied()));
    let (lo, hi) = ys.fold((0f64, 0.5f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let (y_lo, y_hi) = ((lo - 0.05).max(-1.0), (hi + 0.05).min(1.0));
    let (x_lo, x_hi) = if known {
        (-0.05, 1.05)
    } else {
        (-0.5, points.len() as f64 - 0.5)
    };
    let labels: Vec<String> = points.iter().map(|p| p.label.clone()).collect();
    drawn("faithfulness.svg".to_owned(), SIZE, |root| {
        let mut chart = titled(root, title)
            .x_label_area_size(48)
            .y_label_area_size(60)
            .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)
            .map_err(|e| e.to_string())?;
        let label_of = |x: &f64| {
            if known {
                format!("{x:.2}")
            } else {
                let i = x.round();
                match labels.get(i as usize) {
                    Some(l) if (x - i).abs() < 1e-9 && i >= 0.0 => l.clone(),
                    _ => String::new(),
                }
            }
        };
        chart
            .configure_mesh()
            .x_desc(if known {
                "faithfulness of the simulated explainer"
            } else {
                "explained model"
            })
            .y_desc("NSG (95% interval)")
            .x_labels(if known { 11 } else { points.len().max(1) })
            .x_label_formatter(&label_of)
            .y_label_formatter(&|y| format!("{:.0}%", y * 100.0))
            .draw()
            .map_err(|e| e.to_string())?;
        let color = PALETTE[0];
        chart
            .draw_series(LineSeries::new(
                [(x_lo, 0.0), (x_hi, 0.0)],
                BLACK.mix(0.4).stroke_width(1),
            ))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(drawn_points.iter().filter_map(|(x, _, ci)| {
                let [l, h] = (*ci)?;
                Some(PathElement::new(
                    vec![(*x, l), (*x, h)],
                    color.stroke_width(2),
                ))
            }))
            .map_err(|e| e.to_string())?;
        if known {
            chart
                .draw_series(LineSeries::new(
                    drawn_points.iter().map(|(x, y, _)| (*x, *y)),
                    color.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?;
        }
        chart
            .draw_series(
                drawn_points
                    .iter()
                    .map(|(x, y, _)| Circle::new((*x, *y), 4, color.filled())),
            )
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

/// `theory-curves.svg`: each rule's exact accuracy against n (log₂ axis),
/// with its Monte Carlo estimates' 95% intervals as a band when there are
/// some.
pub fn theory_chart(report: &TheoryReport) -> Result<Chart, PlotError> {
    let series = series_of(report.curves.iter().map(|p| {
        let point = Point {
            n: p.n as f64,
            tokens: 0.0,
            accuracy: p.accuracy,
            ci: p
                .mc
                .as_ref()
                .map(|e| (e.accuracy - 1.96 * e.se, e.accuracy + 1.96 * e.se)),
        };
        (p.rule.as_str().to_owned(), point)
    }));
    let title = match report.distributions {
        1 => "exact accuracy".to_owned(),
        k => format!("exact accuracy, averaged over {k} distributions"),
    };
    drawn("theory-curves.svg".into(), SIZE, |root| {
        draw(root, &title, "samples (n)", Axis::Samples, &series)
    })
}

/// Write [`theory_chart`] into `dir` (created if missing); its path.
pub fn write_theory_plot(report: &TheoryReport, dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    write_charts(&[theory_chart(report)?], dir)
}

/// Write [`separation_chart`] into `dir` (created if missing); its path.
pub fn write_separation_plot(
    title: &str,
    fits: &[(&str, &Fit)],
    dir: &Path,
) -> Result<Vec<PathBuf>, PlotError> {
    write_charts(&[separation_chart(title, fits)?], dir)
}

/// Write [`faithfulness_chart`] into `dir` (created if missing); its path.
pub fn write_faithfulness_plot(
    title: &str,
    points: &[NsgPoint],
    dir: &Path,
) -> Result<Vec<PathBuf>, PlotError> {
    write_charts(&[faithfulness_chart(title, points)?], dir)
}

/// The separation chart: n*(Δ) against Δ on log–log axes, one colour per
/// (family, rule), the points as circles and the fitted line n* = c·Δ^slope
/// through them, each labelled with its slope. `fits` are (source, fit):
/// "exact" fits are filled dots and thick lines, others (observed) rings
/// and thin lines.
pub fn separation_chart(title: &str, fits: &[(&str, &Fit)]) -> Result<Chart, PlotError> {
    let points: Vec<(f64, f64)> = fits
        .iter()
        .flat_map(|(_, f)| f.points.iter().filter_map(|p| Some((p.delta, p.n? as f64))))
        .collect();
    let (x_lo, x_hi) = points
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), (x, _)| {
            (lo.min(*x), hi.max(*x))
        });
    let (y_lo, y_hi) = points
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), (_, y)| {
            (lo.min(*y), hi.max(*y))
        });
    if points.is_empty() {
        return Err(PlotError::Draw {
            name: "separation.svg".to_owned(),
            message: "no Δ reached its target, so there is nothing to draw".to_owned(),
        });
    }
    let (x_lo, x_hi) = (x_lo / 1.2, x_hi * 1.2);
    let (y_lo, y_hi) = ((y_lo / 1.5).max(0.5), y_hi * 1.5);
    drawn("separation.svg".to_owned(), SIZE, |root| {
        let mut chart = titled(root, title)
            .x_label_area_size(48)
            .y_label_area_size(60)
            .build_cartesian_2d((x_lo..x_hi).log_scale(), (y_lo..y_hi).log_scale())
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc("gap Δ between the correct answer and the likeliest wrong one")
            .y_desc("samples n* for the target accuracy")
            .x_label_formatter(&|x| format!("{x:.2}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()
            .map_err(|e| e.to_string())?;
        // One colour per (family, rule), whether exact or observed.
        let mut keys: Vec<(&str, &str)> = Vec::new();
        for (_, f) in fits {
            let key = (f.family.as_str(), f.rule.as_str());
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        for (source, f) in fits {
            let key = (f.family.as_str(), f.rule.as_str());
            let i = keys.iter().position(|k| *k == key).unwrap_or(0);
            let color = PALETTE[i % PALETTE.len()];
            let exact = *source == "exact";
            let width = if exact { 2 } else { 1 };
            let drawn: Vec<(f64, f64)> = f
                .points
                .iter()
                .filter_map(|p| Some((p.delta, p.n? as f64)))
                .collect();
            let style = if exact {
                color.filled()
            } else {
                color.stroke_width(1)
            };
            chart
                .draw_series(
                    drawn
                        .iter()
                        .map(|&(x, y)| Circle::new((x, y), if exact { 3 } else { 5 }, style)),
                )
                .map_err(|e| e.to_string())?;
            let (Some(slope), Some(c)) = (f.slope, f.c) else {
                continue;
            };
            let (lo, hi) = drawn.iter().fold((f64::MAX, f64::MIN), |(lo, hi), (x, _)| {
                (lo.min(*x), hi.max(*x))
            });
            let label = format!(
                "{source}: {} on {}, slope {slope:.2}",
                f.rule.as_str(),
                f.family
            );
            chart
                .draw_series(LineSeries::new(
                    [lo, hi].map(|x| (x, c * x.powf(slope))),
                    color.stroke_width(width),
                ))
                .map_err(|e| e.to_string())?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(width))
                });
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::failures::{FailureReport, Judged, failure_report};
    use crate::scenario::judge_file::JudgeFile;
    use crate::store::{LabelRow, LabelTable};

    fn mast() -> JudgeFile {
        JudgeFile::mast()
    }

    /// `rater`'s verdict on every mode of `judge` for `traces` traces, a
    /// mode present where `present(trace, mode index)`, added to `table`.
    fn labels(
        table: &mut LabelTable,
        judge: &JudgeFile,
        rater: &str,
        traces: usize,
        present: impl Fn(usize, usize) -> Option<bool>,
    ) {
        table.raters.push(rater.to_owned());
        let r = table.raters.len() - 1;
        for t in 0..traces {
            for (m, mode) in judge.modes.iter().enumerate() {
                table.rows.push(LabelRow {
                    task_index: t,
                    attempt: 0,
                    rater: r,
                    mode: Some(mode.mode),
                    present: present(t, m),
                });
            }
        }
    }

    /// A report of `rater` over `table`, with no accused agents.
    fn report_of(
        judge: &JudgeFile,
        rater: &str,
        table: LabelTable,
        replicates: usize,
    ) -> FailureReport {
        let judged = Judged {
            labels: table,
            accused: Vec::new(),
            judgements: Vec::new(),
        };
        failure_report(judge, rater, judged, (replicates, 0))
    }

    /// The trimmed text of every `<text>` element of the SVG at `path`,
    /// checking that it is one well-formed `<svg>` document.
    fn texts(path: &Path) -> Vec<String> {
        let svg = std::fs::read_to_string(path).unwrap();
        assert!(svg.trim_start().starts_with("<svg"), "{}", &svg[..80]);
        let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        doc.descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text().map(|t| t.trim().to_owned()))
            .collect()
    }

    fn has(texts: &[String], needle: &str) -> bool {
        texts.iter().any(|t| t.contains(needle))
    }

    #[test]
    fn failure_charts_name_every_mode_and_category() {
        let judge = mast();
        let rater = "mast:judge";
        // Mode m present in the traces t with (t + m) % 4 == 0; the last mode
        // never judged, so its rate is undefined.
        let last = judge.modes.len() - 1;
        let mut table = LabelTable::default();
        labels(&mut table, &judge, rater, 8, |t, m| {
            (m != last).then_some((t + m) % 4 == 0)
        });
        labels(&mut table, &judge, TRUTH_RATER, 8, |_, _| Some(true));
        let report = report_of(&judge, rater, table, 200);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("charts");
        let written = write_failure_plots(&report, &out).unwrap();
        let rates = out.join("failure-rates.svg");
        let categories = out.join("failure-categories.svg");
        assert_eq!(written, [rates.clone(), categories.clone()]);

        let rate_texts = texts(&rates);
        assert!(
            has(&rate_texts, "judge mast (version 1), rater mast:judge"),
            "{rate_texts:?}"
        );
        for m in &judge.modes {
            assert!(
                has(&rate_texts, &format!("{} {}", m.code, m.name)),
                "no {} in {rate_texts:?}",
                m.code
            );
        }
        // Two traces in eight for every judged mode; none for the last.
        assert_eq!(
            rate_texts.iter().filter(|t| *t == "25.0% (2/8)").count(),
            last,
            "{rate_texts:?}"
        );
        assert!(has(&rate_texts, "no verdict"), "{rate_texts:?}");
        for (code, _) in &judge.categories {
            assert!(
                has(&rate_texts, code),
                "legend: no {code} in {rate_texts:?}"
            );
        }

        let category_texts = texts(&categories);
        for c in &report.categories {
            let share = c.share.expect("failures were found");
            assert!(has(&category_texts, &c.code), "{category_texts:?}");
            assert!(
                has(
                    &category_texts,
                    &format!("{} ({})", percent(share), c.failures)
                ),
                "{category_texts:?}"
            );
        }
        let found: u64 = report.categories.iter().map(|c| c.failures).sum();
        assert_eq!(found, 2 * last as u64);
        assert!(has(
            &category_texts,
            &format!("shares of the {found} failures found")
        ));
    }

    #[test]
    fn failure_charts_of_a_rater_that_found_nothing() {
        let judge = mast();
        let mut table = LabelTable::default();
        labels(&mut table, &judge, "mast", 3, |_, _| Some(false));
        let report = report_of(&judge, "mast", table, 50);
        let dir = tempfile::tempdir().unwrap();
        let written = write_failure_plots(&report, dir.path()).unwrap();
        assert_eq!(written.len(), 2);
        let rates = texts(&written[0]);
        assert_eq!(
            rates.iter().filter(|t| *t == "0.0% (0/3)").count(),
            judge.modes.len()
        );
        let shares = texts(&written[1]);
        assert_eq!(
            shares.iter().filter(|t| *t == "no failures found").count(),
            judge.categories.len(),
            "{shares:?}"
        );
    }

    #[test]
    fn the_default_rater_is_a_judges_verdict() {
        assert_eq!(
            default_rater([
                "mast:judge",
                "injected",
                "mast:judge#1",
                "mast",
                "mad:o1",
                "import"
            ]),
            Some("mast")
        );
        assert_eq!(
            default_rater(["mast:b", "mast:a#2", "mast:a"]),
            Some("mast:a")
        );
        assert_eq!(
            default_rater(["injected", "mad:annotator_1", "import", "imported"]),
            None
        );
        assert_eq!(default_rater([]), None);
    }

    #[test]
    fn long_names_are_cut() {
        assert_eq!(short("Step repetition"), "Step repetition");
        let long = "a".repeat(NAME_CHARS + 5);
        let cut = short(&long);
        assert_eq!(cut.chars().count(), NAME_CHARS);
        assert!(cut.ends_with('…'));
    }
}
