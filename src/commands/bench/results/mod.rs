//! `results.json`: every setting, summary, prediction and run, machine-readable; the key names and types are a stable schema (`schema_version`), and the types below are that schema.

mod strategies;
mod turns;

use anyhow::{Context, Result};
use serde::Serialize;

use super::analysis::{Analysis, CategoryRow};
use super::record::TurnRecord;
use super::run_info::RunInfo;
use super::summary::StrategySummary;
use strategies::StrategyJson;
use turns::TurnJson;

/// Bumped whenever a key is renamed, removed or changes type.
pub const SCHEMA_VERSION: u32 = 1;

/// The whole file.
#[derive(Serialize)]
struct Results<'a> {
    schema_version: u32,
    run: &'a RunInfo,
    strategies: Vec<StrategyJson<'a>>,
    categories: Vec<CategoryJson<'a>>,
    turns: Vec<TurnJson<'a>>,
}

/// Every strategy's figures in one category.
#[derive(Serialize)]
struct CategoryJson<'a> {
    category: &'a str,
    strategies: Vec<CategoryStrategyJson>,
}

/// One strategy in one category.
#[derive(Serialize)]
struct CategoryStrategyJson {
    name: &'static str,
    turns: usize,
    ms_per_token: f64,
    speedup: f64,
    decode_speedup: f64,
}

impl<'a> From<&'a CategoryRow> for CategoryJson<'a> {
    fn from(row: &'a CategoryRow) -> Self {
        CategoryJson {
            category: &row.category,
            strategies: row
                .summaries
                .iter()
                .map(CategoryStrategyJson::from)
                .collect(),
        }
    }
}

impl From<&StrategySummary> for CategoryStrategyJson {
    fn from(summary: &StrategySummary) -> Self {
        CategoryStrategyJson {
            name: summary.strategy.as_str(),
            turns: summary.totals.turns,
            ms_per_token: summary.totals.ms_per_token(),
            speedup: summary.speedup(),
            decode_speedup: summary.decode_speedup(),
        }
    }
}

/// The text of results.json: pretty-printed, keys sorted, a final newline.
pub fn to_text(info: &RunInfo, analysis: &Analysis, records: &[TurnRecord]) -> Result<String> {
    let results = Results {
        schema_version: SCHEMA_VERSION,
        run: info,
        strategies: analysis.strategies.iter().map(StrategyJson::from).collect(),
        categories: analysis.categories.iter().map(CategoryJson::from).collect(),
        turns: records.iter().map(TurnJson::from).collect(),
    };
    // Through a Value, as the file was always written: keys sorted, f32 settings widened to f64,
    // and non-finite ratios (0 / 0 over no turns) written as null.
    let value = serde_json::to_value(&results).context("serializing results.json")?;
    let text = serde_json::to_string_pretty(&value).context("serializing results.json")?;
    Ok(text + "\n")
}

#[cfg(test)]
mod tests;
