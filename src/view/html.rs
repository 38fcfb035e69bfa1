//! The HTML templates (embedded in the binary) and the minijinja
//! environment that renders them, for the viewer's pages and the
//! self-contained report alike.
//!
//! Every template ends in `.html`, so minijinja escapes every value it
//! prints: model output, scenario text, task inputs and annotations are
//! untrusted and reach a page only as text. Nothing is marked `safe` but
//! the stylesheet, which is the binary's own; charts are SVG drawn by
//! crucible and shown as `<img>` data URIs, where no script can run.

use std::sync::OnceLock;

use minijinja::{Environment, Value};

/// The stylesheet, served at `/assets/viewer.css` and inlined in reports.
pub const CSS: &str = include_str!("assets/viewer.css");
/// The pages' script (keyboard labelling, live runs), served at `/assets/viewer.js`.
pub const JS: &str = include_str!("assets/viewer.js");

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("macros.html", include_str!("templates/macros.html")),
    ("runs.html", include_str!("templates/runs.html")),
    ("run.html", include_str!("templates/run.html")),
    ("samples.html", include_str!("templates/samples.html")),
    (
        "sample_rows.html",
        include_str!("templates/sample_rows.html"),
    ),
    ("call_rows.html", include_str!("templates/call_rows.html")),
    ("name_form.html", include_str!("templates/name_form.html")),
    ("task.html", include_str!("templates/task.html")),
    ("transcript.html", include_str!("templates/transcript.html")),
    ("call.html", include_str!("templates/call.html")),
    ("compare.html", include_str!("templates/compare.html")),
    ("queue.html", include_str!("templates/queue.html")),
    ("error.html", include_str!("templates/error.html")),
    ("report.html", include_str!("templates/report.html")),
];

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("built-in template {name}: {e:#}"));
        }
        env.add_filter("pct", pct);
        env.add_filter("num", num);
        env.add_filter("time", time);
        env.add_filter("pvalue", pvalue);
        env.add_filter("svg_uri", svg_uri);
        env.add_filter("pretty_json", pretty_json);
        env
    })
}

/// Render template `name` with `context`.
pub fn render(name: &str, context: impl serde::Serialize) -> Result<String, minijinja::Error> {
    environment()
        .get_template(name)?
        .render(minijinja::value::Serde(context))
}

/// A share as a percentage with one decimal; `–` for none.
fn pct(v: Value) -> String {
    match f64::try_from(v) {
        Ok(x) if x.is_finite() => format!("{:.1}%", x * 100.0),
        _ => "–".into(),
    }
}

/// A number with at most `digits` decimals (3 by default), trailing zeros
/// dropped; `–` for none.
fn num(v: Value, digits: Option<usize>) -> String {
    match f64::try_from(v) {
        Ok(x) if x.is_finite() => {
            let s = format!("{x:.*}", digits.unwrap_or(3));
            if s.contains('.') {
                s.trim_end_matches('0').trim_end_matches('.').to_owned()
            } else {
                s
            }
        }
        _ => "–".into(),
    }
}

/// A p-value to three significant digits, or `< 0.0001`.
fn pvalue(v: Value) -> String {
    match f64::try_from(v) {
        Ok(p) if p < 1e-4 => "< 0.0001".into(),
        Ok(p) if p.is_finite() => format!("{p:.3}"),
        _ => "–".into(),
    }
}

/// Seconds since the epoch as `YYYY-MM-DD HH:MM:SS` UTC.
fn time(v: Value) -> String {
    let Ok(secs) = f64::try_from(v) else {
        return "–".into();
    };
    let secs = secs as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// An SVG document as a `data:` URI for an `<img>`: shown as an image,
/// whatever it holds, never as part of the page. Only `%` and `#` need
/// encoding; the attribute's quoting is the template's escaping.
fn svg_uri(svg: String) -> String {
    format!(
        "data:image/svg+xml;charset=utf-8,{}",
        svg.replace('%', "%25")
            .replace('#', "%23")
            .replace('\n', "%0A")
    )
}

/// A JSON text indented, or as it was when it is not JSON.
fn pretty_json(text: String) -> String {
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles() {
        for (name, _) in TEMPLATES {
            environment().get_template(name).unwrap();
        }
    }

    #[test]
    fn dates_match_known_days() {
        // 2000-03-01 and 2026-12-04 12:34:56, from `date -u -d @…`.
        assert_eq!(time(Value::from(951_868_800.0)), "2000-03-01 00:00:00");
        assert_eq!(time(Value::from(1_796_387_696.0)), "2026-12-04 12:34:56");
        assert_eq!(time(Value::from(0)), "1970-01-01 00:00:00");
    }

    #[test]
    fn values_are_escaped_and_numbers_trimmed() {
        let html = render(
            "error.html",
            serde_json::json!({"status": 404, "message": "<script>alert(1)</script>"}),
        )
        .unwrap();
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"));
        assert_eq!(num(Value::from(0.5), None), "0.5");
        assert_eq!(num(Value::from(2.0), None), "2");
        assert_eq!(pct(Value::from(0.1234)), "12.3%");
        assert_eq!(pct(Value::from(())), "–");
        assert_eq!(pvalue(Value::from(0.0214)), "0.021");
        assert_eq!(pvalue(Value::from(1e-9)), "< 0.0001");
    }
}
