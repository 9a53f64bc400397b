//! A small SVG writer for grouped bar charts: no fonts to load, no native dependencies.

use std::fmt::Write as _;

/// Bars of several series side by side within each group.
pub struct BarChart<'a> {
    pub title: &'a str,
    pub y_label: &'a str,
    /// One label per group along the x axis.
    pub groups: Vec<String>,
    /// (name, one value per group); a value that is not finite draws no bar.
    pub series: Vec<(String, Vec<f64>)>,
    /// A dashed horizontal line, e.g. 1.0 for "as fast as ar".
    pub reference: Option<f64>,
    /// Decimals of the value written above each bar.
    pub decimals: usize,
}

const COLORS: [&str; 8] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f",
];
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 70.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 110.0;
const BAR: f64 = 18.0;
const GAP: f64 = 24.0;

pub fn grouped_bars(chart: &BarChart) -> String {
    let per_group = chart.series.len().max(1) as f64 * BAR + GAP;
    let plot_width = (per_group * chart.groups.len().max(1) as f64).max(300.0);
    // Room for the legend: a swatch and the longest name, ~7 px a character.
    let longest = chart
        .series
        .iter()
        .map(|(name, _)| name.chars().count())
        .max()
        .unwrap_or(0);
    let width = LEFT + plot_width + 50.0 + 7.0 * longest as f64;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let largest = chart
        .series
        .iter()
        .flat_map(|(_, values)| values.iter().copied())
        .chain(chart.reference)
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let step = tick_step(largest.max(1e-9));
    let top_value = (largest / step).ceil().max(1.0) * step;
    let y = |value: f64| TOP + plot_height * (1.0 - value / top_value);

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{HEIGHT:.0}" viewBox="0 0 {width:.0} {HEIGHT:.0}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="24" font-size="16" text-anchor="middle">{}</text>"#,
        LEFT + plot_width / 2.0,
        escape(chart.title)
    );
    // The y axis: ticks, grid lines, label.
    let mut tick = 0.0;
    while tick <= top_value + step * 1e-6 {
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + plot_width,
            y(tick),
            y(tick),
            LEFT - 6.0,
            y(tick) + 4.0,
            tick_label(tick, step)
        );
        tick += step;
    }
    let _ = writeln!(
        svg,
        r#"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        TOP + plot_height / 2.0,
        escape(chart.y_label)
    );
    // The bars, group by group.
    for (group, label) in chart.groups.iter().enumerate() {
        // Groups are centred when the plot is wider than they need.
        let margin = (plot_width - per_group * chart.groups.len() as f64) / 2.0;
        let start = LEFT + margin + GAP / 2.0 + group as f64 * per_group;
        for (index, (_, values)) in chart.series.iter().enumerate() {
            let Some(&value) = values.get(group).filter(|v| v.is_finite() && **v >= 0.0) else {
                continue;
            };
            let x = start + index as f64 * BAR;
            let decimals = chart.decimals;
            let _ = writeln!(
                svg,
                r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}</title></rect>"#,
                y(value),
                BAR - 2.0,
                TOP + plot_height - y(value),
                COLORS[index % COLORS.len()],
                format_args!("{}: {value:.3}", escape(&chart.series[index].0)),
            );
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" font-size="8" text-anchor="middle">{value:.decimals$}</text>"#,
                x + (BAR - 2.0) / 2.0,
                y(value) - 3.0,
            );
        }
        let center = start + chart.series.len() as f64 * BAR / 2.0;
        let _ = writeln!(
            svg,
            r#"<text transform="translate({center:.1} {:.1}) rotate(-35)" text-anchor="end">{}</text>"#,
            TOP + plot_height + 14.0,
            escape(label)
        );
    }
    if let Some(reference) = chart.reference {
        let _ = writeln!(
            svg,
            r#"<line x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="black" stroke-dasharray="5 4"/>"#,
            LEFT + plot_width,
            y(reference),
            y(reference)
        );
    }
    let _ = writeln!(
        svg,
        r#"<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{:.1}" stroke="black"/><line x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="black"/>"#,
        TOP + plot_height,
        LEFT + plot_width,
        TOP + plot_height,
        TOP + plot_height
    );
    // The legend, right of the plot.
    for (index, (name, _)) in chart.series.iter().enumerate() {
        let top = TOP + index as f64 * 20.0;
        let _ = writeln!(
            svg,
            r#"<rect x="{:.1}" y="{top:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            LEFT + plot_width + 16.0,
            COLORS[index % COLORS.len()],
            LEFT + plot_width + 34.0,
            top + 10.0,
            escape(name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// A round step (1, 2 or 5 times a power of ten) giving about five ticks up to `largest`.
fn tick_step(largest: f64) -> f64 {
    let raw = largest / 5.0;
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|&step| step >= raw)
        .unwrap_or(10.0 * power)
}

fn tick_label(value: f64, step: f64) -> String {
    let digits = if step >= 1.0 {
        0
    } else {
        (-step.log10()).ceil() as usize
    };
    format!("{value:.digits$}")
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_one_svg_element_with_a_bar_per_finite_value() {
        let svg = grouped_bars(&BarChart {
            title: "speed <&>",
            y_label: "x",
            groups: vec!["a".into(), "b".into()],
            series: vec![
                ("s1".into(), vec![1.0, 2.5]),
                ("s2".into(), vec![f64::NAN, 0.5]),
            ],
            reference: Some(1.0),
            decimals: 2,
        });
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<title>").count(), 3);
        assert!(svg.contains("speed &lt;&amp;&gt;"));
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(2.6), 1.0);
        assert_eq!(tick_step(0.9), 0.2);
        assert_eq!(tick_step(130.0), 50.0);
    }
}
