//! The report's three SVG plots: speedup per category per strategy, acceptance per level, predicted against measured speedup.

use std::path::Path;

use anyhow::{Context, Result};

use super::analysis::Analysis;
use super::svg::{grouped_bars, BarChart};

pub const SPEEDUP_FILE: &str = "speedup_by_category.svg";
pub const ACCEPTANCE_FILE: &str = "acceptance_by_level.svg";
pub const PREDICTION_FILE: &str = "predicted_vs_measured.svg";

/// Writes the three plots into `dir`.
pub fn write(dir: &Path, analysis: &Analysis) -> Result<()> {
    for (file, chart) in [
        (SPEEDUP_FILE, speedup(analysis)),
        (ACCEPTANCE_FILE, acceptance(analysis)),
        (PREDICTION_FILE, prediction(analysis)),
    ] {
        let path = dir.join(file);
        std::fs::write(&path, grouped_bars(&chart))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn speedup(analysis: &Analysis) -> BarChart<'static> {
    let mut groups: Vec<String> = analysis
        .categories
        .iter()
        .map(|r| r.category.clone())
        .collect();
    groups.push("overall".into());
    let series = analysis
        .strategies
        .iter()
        .enumerate()
        .map(|(index, strategy)| {
            let mut values: Vec<f64> = analysis
                .categories
                .iter()
                .map(|row| row.summaries[index].speedup())
                .collect();
            values.push(strategy.summary.speedup());
            (strategy.info.strategy.to_string(), values)
        })
        .collect();
    BarChart {
        title: "Speedup over ar per category (ms/token, prefill included)",
        y_label: "speedup over ar",
        groups,
        series,
        reference: Some(1.0),
        decimals: 2,
    }
}

fn acceptance(analysis: &Analysis) -> BarChart<'static> {
    // One group per strategy, one bar per drafting level (level 0 is the smallest).
    let strategies: Vec<_> = analysis
        .strategies
        .iter()
        .filter(|s| s.summary.levels.len() > 1)
        .collect();
    let deepest = strategies
        .iter()
        .map(|s| s.summary.levels.len() - 1)
        .max()
        .unwrap_or(0);
    let series = (0..deepest)
        .map(|level| {
            let values = strategies
                .iter()
                .map(|s| {
                    let levels = &s.summary.levels;
                    match levels.get(level) {
                        Some(l) if level + 1 < levels.len() => 100.0 * l.metrics.acceptance_rate(),
                        _ => f64::NAN,
                    }
                })
                .collect();
            let name = if level == 0 {
                "level 0 (smallest) drafts".to_string()
            } else {
                format!("level {level} drafts")
            };
            (name, values)
        })
        .collect();
    BarChart {
        title: "Acceptance per drafting level (accepted / drafted)",
        y_label: "accepted (%)",
        groups: strategies
            .iter()
            .map(|s| s.info.strategy.to_string())
            .collect(),
        series,
        reference: None,
        decimals: 1,
    }
}

fn prediction(analysis: &Analysis) -> BarChart<'static> {
    let predicted: Vec<_> = analysis
        .strategies
        .iter()
        .filter_map(|s| Some((s.info.strategy.to_string(), s.prediction.as_ref()?)))
        .collect();
    BarChart {
        title: "Decode speedup over ar: measured and predicted",
        y_label: "decode speedup over ar",
        groups: predicted.iter().map(|(name, _)| name.clone()).collect(),
        series: vec![
            (
                "measured".into(),
                predicted.iter().map(|(_, p)| p.measured).collect(),
            ),
            (
                "predicted".into(),
                predicted.iter().map(|(_, p)| p.speedup).collect(),
            ),
            (
                "paper's model".into(),
                predicted.iter().map(|(_, p)| p.paper_speedup).collect(),
            ),
        ],
        reference: Some(1.0),
        decimals: 2,
    }
}
