//! The traffic chart as server-rendered SVG: lines over time, a point (with its value as a
//! tooltip) per period, and a gap where a period's row was withheld.
//!
//! SVG made here rather than a charting library in the browser: it needs no JavaScript (nor a
//! build step, nor a vendored bundle), shows in the page's first response, prints, and a
//! screen reader gets its title and summary; the same numbers are in the table below it.

use std::fmt::Write as _;

use maud::{Markup, PreEscaped};

/// One line: its name, a CSS class for its colour, and a value per period (`None`: withheld or
/// not yet).
pub struct Series {
    pub name: &'static str,
    pub class: &'static str,
    pub values: Vec<Option<u64>>,
}

const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;

/// A round step for about four grid lines up to `max`.
fn step(max: u64) -> u64 {
    let rough = (max as f64 / 4.0).max(1.0);
    let magnitude = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= rough)
        .unwrap_or(10.0 * magnitude);
    step.max(1.0) as u64
}

/// The chart for `labels` (one per period) and `series`; `summary` says in words what it shows.
pub fn svg(labels: &[String], series: &[Series], summary: &str) -> Markup {
    let n = labels.len().max(1);
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .copied()
        .max()
        .unwrap_or(0);
    let step = step(max);
    let top = (max.div_ceil(step)).max(1) * step;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |i: usize| {
        if n == 1 {
            LEFT + plot_w / 2.0
        } else {
            LEFT + plot_w * i as f64 / (n - 1) as f64
        }
    };
    let y = |v: u64| TOP + plot_h * (1.0 - v as f64 / top as f64);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title chart-desc" preserveAspectRatio="xMidYMid meet"><title id="chart-title">Traffic over time</title><desc id="chart-desc">{}</desc>"#,
        maud::html!((summary)).into_string()
    );
    let mut tick = 0;
    while tick <= top {
        let ty = y(tick);
        let _ = write!(
            out,
            r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{ty:.1}" y2="{ty:.1}"/><text class="axis" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            WIDTH - RIGHT,
            LEFT - 6.0,
            ty + 4.0,
            short(tick)
        );
        tick += step;
    }
    // At most about eight labels on the time axis.
    let every = n.div_ceil(8).max(1);
    for (i, label) in labels.iter().enumerate() {
        if i % every == 0 || i == n - 1 && n <= 8 {
            let _ = write!(
                out,
                r#"<text class="axis" x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                x(i),
                HEIGHT - 8.0,
                maud::html!((label)).into_string()
            );
        }
    }
    // The first series is drawn last, on top, with a light area under it.
    for (n_series, s) in series.iter().enumerate().rev() {
        let mut d = String::new();
        let mut pen_down = false;
        for (i, v) in s.values.iter().enumerate() {
            match v {
                Some(v) => {
                    let _ = write!(
                        d,
                        "{}{:.1},{:.1} ",
                        if pen_down { "L" } else { "M" },
                        x(i),
                        y(*v)
                    );
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        if n_series == 0 {
            let _ = write!(
                out,
                r#"<path class="area {}" d="{}"/>"#,
                s.class,
                area(&s.values, x, y)
            );
        }
        let _ = write!(
            out,
            r#"<path class="line {}" d="{}"/>"#,
            s.class,
            d.trim_end()
        );
        for (i, v) in s.values.iter().enumerate() {
            if let Some(v) = v {
                let _ = write!(
                    out,
                    r#"<circle class="dot {}" cx="{:.1}" cy="{:.1}" r="3"><title>{}: {} {}</title></circle>"#,
                    s.class,
                    x(i),
                    y(*v),
                    maud::html!((labels.get(i).map_or("", String::as_str))).into_string(),
                    v,
                    s.name.to_lowercase()
                );
            }
        }
    }
    out.push_str("</svg>");
    PreEscaped(out)
}

/// The area under each unbroken run of `values`, down to the axis.
fn area(values: &[Option<u64>], x: impl Fn(usize) -> f64, y: impl Fn(u64) -> f64) -> String {
    let mut d = String::new();
    let mut run: Vec<(usize, u64)> = Vec::new();
    let close = |run: &mut Vec<(usize, u64)>, d: &mut String| {
        if let (Some(first), Some(last)) = (run.first(), run.last()) {
            let _ = write!(d, "M{:.1},{:.1} ", x(first.0), y(0));
            for (i, v) in run.iter() {
                let _ = write!(d, "L{:.1},{:.1} ", x(*i), y(*v));
            }
            let _ = write!(d, "L{:.1},{:.1} Z ", x(last.0), y(0));
        }
        run.clear();
    };
    for (i, v) in values.iter().enumerate() {
        match v {
            Some(v) => run.push((i, *v)),
            None => close(&mut run, &mut d),
        }
    }
    close(&mut run, &mut d);
    d.trim_end().to_owned()
}

/// An axis number: 1200 → 1.2k.
fn short(v: u64) -> String {
    match v {
        0..1_000 => v.to_string(),
        1_000..1_000_000 => trim(v as f64 / 1_000.0) + "k",
        _ => trim(v as f64 / 1_000_000.0) + "M",
    }
}

fn trim(x: f64) -> String {
    let s = format!("{x:.1}");
    s.strip_suffix(".0").map(str::to_owned).unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round() {
        assert_eq!(step(0), 1);
        assert_eq!(step(7), 2);
        assert_eq!(step(40), 10);
        assert_eq!(step(1234), 500);
        assert_eq!(short(1500), "1.5k");
        assert_eq!(short(2_000_000), "2M");
    }

    #[test]
    fn a_withheld_period_is_a_gap_not_a_zero() {
        let labels: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let s = Series {
            name: "Visitors",
            class: "visitors",
            values: vec![Some(10), None, Some(20)],
        };
        let svg = svg(&labels, &[s], "x").into_string();
        let d = svg
            .split(r#"class="line visitors" d=""#)
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(d.matches('M').count(), 2, "{d}");
        assert!(!d.contains('L'), "{d}");
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains("<title>c: 20 visitors</title>"));
    }

    #[test]
    fn text_is_escaped() {
        let labels = vec!["<b>".to_owned()];
        let svg = svg(&labels, &[], "<script>").into_string();
        assert!(!svg.contains("<script>") && !svg.contains("<b>"));
    }
}
