//! `report.md`: the overall table first, then ms/token and speedup per category (Spec-Bench's layout), acceptance per level, predicted against measured, errors, and the settings.

use std::fmt::Write as _;

use super::analysis::{Analysis, StrategyAnalysis};
use super::plots;
use super::record::{Outcome, TurnRecord};
use super::run_info::RunInfo;
use super::summary::StrategySummary;

pub fn render(info: &RunInfo, analysis: &Analysis, records: &[TurnRecord]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# pipespec bench: {}\n", info.suite);
    let _ = writeln!(
        out,
        "{} prompts ({} turns), up to {} new tokens each, {}; every figure is over the turns where the strategy and ar both finished with the same output.\n",
        info.prompts,
        info.turns,
        info.max_new_tokens,
        if info.outputs_compared { "greedy" } else { "sampled" },
    );
    overall(&mut out, analysis);
    by_category(&mut out, analysis);
    acceptance(&mut out, analysis);
    predictions(&mut out, analysis);
    problems(&mut out, records);
    settings(&mut out, info);
    out
}

fn overall(out: &mut String, analysis: &Analysis) {
    out.push_str("## Overall\n\n");
    out.push_str("| strategy | chain | ms/token | decode tok/s | speedup | decode speedup | ttft (s) | acceptance per level | mean accepted length | predicted speedup | error |\n");
    out.push_str("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for strategy in &analysis.strategies {
        let s = &strategy.summary;
        let (predicted, error) = match &strategy.prediction {
            Some(p) => (times(p.speedup), percent_signed(p.error())),
            None => ("-".into(), "-".into()),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {predicted} | {error} |",
            s.strategy,
            strategy.info.chain_label(),
            milliseconds(s.totals.ms_per_token()),
            number(s.totals.decode_tokens_per_second(), 1),
            times(s.speedup()),
            times(s.decode_speedup()),
            number(s.totals.mean_ttft_s(), 3),
            level_acceptance(s),
            number(s.mean_accepted_length(), 2),
        );
    }
    out.push_str(
        "\nms/token: total wall time, prefill included, over tokens generated (as Spec-Bench and the paper count); \
         speedup: ar's ms/token over the strategy's; decode speedup: decode tokens per second (after the first token) over ar's, \
         which is what the analytical model predicts. Acceptance: accepted / drafted, per drafting level. \
         Mean accepted length: tokens per forward pass of the target.\n\n",
    );
    out.push_str(&format!(
        "![speedup per category]({})\n![acceptance per level]({})\n![predicted against measured]({})\n\n",
        plots::SPEEDUP_FILE,
        plots::ACCEPTANCE_FILE,
        plots::PREDICTION_FILE
    ));
}

fn by_category(out: &mut String, analysis: &Analysis) {
    out.push_str("## By category: ms/token (speedup over ar)\n\n| category |");
    for strategy in &analysis.strategies {
        let _ = write!(out, " {} |", strategy.info.strategy);
    }
    out.push_str("\n| --- |");
    out.push_str(&" --- |".repeat(analysis.strategies.len()));
    out.push('\n');
    let cell = |s: &StrategySummary| {
        format!(
            "{} ({})",
            milliseconds(s.totals.ms_per_token()),
            times(s.speedup())
        )
    };
    for row in &analysis.categories {
        let _ = write!(out, "| {} |", row.category);
        for summary in &row.summaries {
            let _ = write!(out, " {} |", cell(summary));
        }
        out.push('\n');
    }
    out.push_str("| **overall** |");
    for strategy in &analysis.strategies {
        let _ = write!(out, " **{}** |", cell(&strategy.summary));
    }
    out.push_str("\n\n");
}

fn acceptance(out: &mut String, analysis: &Analysis) {
    out.push_str("## Acceptance per level\n\n");
    out.push_str("| strategy | level | drafted | accepted | accepted / drafted | alpha (model) | drafts per verification | accepted per verification | rollbacks sent |\n");
    out.push_str("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for strategy in &analysis.strategies {
        let levels = &strategy.summary.levels;
        let stages = strategy.prediction.as_ref().map(|p| &p.stages);
        for (index, level) in levels
            .iter()
            .enumerate()
            .take(levels.len().saturating_sub(1))
        {
            let m = &level.metrics;
            let stage = stages.and_then(|s| s.get(index));
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                strategy.info.strategy,
                level.name,
                m.n_drafted,
                m.n_accepted,
                percent(m.acceptance_rate()),
                stage.map_or("-".into(), |s| number(s.alpha, 3)),
                stage.map_or("-".into(), |s| number(s.window, 2)),
                number(m.mean_accepted_per_verification(), 2),
                levels[index + 1].metrics.rollbacks_sent,
            );
        }
    }
    out.push_str("\nalpha: the per-token acceptance rate of the paper's model (drafts accepted independently until the first rejection) that gives the measured accepted run; accepted / drafted understates it, as drafts after a rejection are never judged.\n\n");
}

fn predictions(out: &mut String, analysis: &Analysis) {
    out.push_str("## Predicted against measured\n\n");
    out.push_str(MODEL_EXPLANATION);
    out.push_str("\n| strategy | level | threads | 1-token step (ms) | verification (ms) | rows | verification / step |\n| --- | --- | --- | --- | --- | --- | --- |\n");
    for strategy in &analysis.strategies {
        for level in strategy.calibration.iter().flatten() {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                strategy.info.strategy,
                level.name,
                level.threads,
                number(1000.0 * level.cost.step_s, 3),
                number(1000.0 * level.cost.verify_s, 3),
                level.verify_rows,
                number(level.cost.verify_s / level.cost.step_s, 2),
            );
        }
    }
    out.push_str("\n| strategy | measured decode speedup | predicted | error | paper's model | error | why the model is off |\n| --- | --- | --- | --- | --- | --- | --- |\n");
    for strategy in &analysis.strategies {
        let Some(p) = &strategy.prediction else {
            let _ = writeln!(
                out,
                "| {} | - | - | - | - | - | no calibration or no correct run |",
                strategy.info.strategy
            );
            continue;
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            strategy.info.strategy,
            times(p.measured),
            times(p.speedup),
            percent_signed(p.error()),
            times(p.paper_speedup),
            percent_signed(p.paper_error()),
            notes(strategy),
        );
    }
    out.push('\n');
}

const MODEL_EXPLANATION: &str = "\
The model predicts the decode speedup over ar from two measurements:

- per level, its cost, measured after the warm-up on the first prompt: `t_step`, one 1-token step, and `t_verify`, \
one pass over window + 1 rows (the n-gram level: its drafting time per token);
- per verifying stage, `alpha`, the per-token acceptance rate, and `w`, the drafts per verification (both from the counters above).

With `E = (1 - alpha^(w+1)) / (1 - alpha)`, the tokens one verification yields:

- `sd`, `lookup`, `staged` (synchronous): a round costs `w t_step(level 0)`, plus for each middle level \
`t_verify + max(0, w - E(below)) t_step` (it verifies, then drafts on to refill the window), plus `t_verify(target)`, \
and commits `E` tokens: speedup = `t_step(ar) E / round`. Two levels give the SD cycle `(w t_draft + t_verify) / E`.
- `pipespec` (every level at once, the paper's section 4): a stage's step is a verification with probability \
`rho = alpha / (1 - alpha^(w+1) + alpha)`, else a 1-token step, and makes `E[N] = (1 - rho) + rho E` tokens; its rate is \
`min(E[N] / (rho t_verify + (1 - rho) t_step), rate of the level below * E[N] / (rho w))` (each verification needs `w` drafts \
from the level below): speedup = `t_step(ar)` times the target's rate.
- the paper's model: the same with `t_verify = t_step` (a verification costs one step).

Error: predicted / measured - 1. Beyond 20%, the last column names the assumptions the measurements contradict.
";

fn notes(strategy: &StrategyAnalysis) -> String {
    if strategy.notes.is_empty() {
        "-".into()
    } else {
        strategy.notes.join("; ")
    }
}

fn problems(out: &mut String, records: &[TurnRecord]) {
    out.push_str("## Mismatches and errors\n\n");
    let mut any = false;
    for record in records {
        for run in &record.runs {
            let line = match &run.outcome {
                Outcome::Finished {
                    mismatch: Some(m), ..
                } => format!(
                    "output differs from ar's at token {} (ar: {}, {}: {})",
                    m.position,
                    token(m.expected),
                    run.strategy,
                    token(m.got)
                ),
                Outcome::Failed(message) => format!("error: {}", message.replace('\n', " ")),
                Outcome::Finished { .. } => continue,
            };
            any = true;
            let _ = writeln!(
                out,
                "- prompt {} ({}, {}, turn {}), {}: {line}",
                record.prompt_index,
                record.id,
                record.category,
                record.turn + 1,
                run.strategy
            );
        }
    }
    if !any {
        out.push_str("None: every strategy finished every turn");
        out.push_str(if records.is_empty() {
            ".\n"
        } else {
            " with ar's output.\n"
        });
    }
    out.push('\n');
}

fn token(token: Option<u32>) -> String {
    token.map_or("end".into(), |t| t.to_string())
}

fn settings(out: &mut String, info: &RunInfo) {
    out.push_str("## Machine and settings\n\n");
    let optional =
        |value: Option<usize>, absent: &str| value.map_or(absent.to_string(), |v| v.to_string());
    let list = |values: &[String], absent: &str| {
        if values.is_empty() {
            absent.to_string()
        } else {
            values.join(", ")
        }
    };
    let threads: Vec<String> = info.threads.iter().map(usize::to_string).collect();
    let rows = [
        (
            "machine",
            format!("{} {}, {} cores", info.os, info.arch, info.cores),
        ),
        ("pipespec", info.version.to_string()),
        ("suite", info.suite.clone()),
        ("categories", list(&info.categories, "all")),
        ("limit", optional(info.limit, "none")),
        (
            "turns",
            if info.all_turns {
                "all".into()
            } else {
                "first only".into()
            },
        ),
        ("chain", list(&info.chain, "-")),
        ("max new tokens", info.max_new_tokens.to_string()),
        ("temperature", info.temperature.to_string()),
        ("seed", info.seed.to_string()),
        ("ignore eos", info.ignore_eos.to_string()),
        ("context size", optional(info.ctx_size, "default")),
        ("threads", list(&threads, "all cores")),
        ("window", optional(info.window, "each strategy's default")),
        (
            "run ahead",
            optional(info.run_ahead, "default (the window when cores are lent)"),
        ),
        (
            "outputs compared with ar",
            info.outputs_compared.to_string(),
        ),
        ("bench time (s)", number(info.elapsed_s, 1)),
    ];
    out.push_str("| setting | value |\n| --- | --- |\n");
    for (name, value) in rows {
        let _ = writeln!(out, "| {name} | {value} |");
    }
    out.push_str("\nEach strategy ran once on the first prompt before the measurements (the warm-up, excluded); for each prompt the strategies ran one after another, the first of them rotating, so that drift on a busy machine hits all alike.\n");
}

fn level_acceptance(summary: &StrategySummary) -> String {
    let levels = &summary.levels;
    if levels.len() < 2 {
        return "-".into();
    }
    levels[..levels.len() - 1]
        .iter()
        .map(|l| format!("{}: {}", l.name, percent(l.metrics.acceptance_rate())))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `render(value)`, or "-" when the value is not a number (nothing to divide by).
fn shown(value: f64, render: impl Fn(f64) -> String) -> String {
    if value.is_finite() {
        render(value)
    } else {
        "-".into()
    }
}

/// `value` with `digits` decimals.
pub fn number(value: f64, digits: usize) -> String {
    shown(value, |v| format!("{v:.digits$}"))
}

/// Milliseconds, with two decimals below 10.
pub fn milliseconds(value: f64) -> String {
    number(value, if value < 10.0 { 2 } else { 1 })
}

fn times(value: f64) -> String {
    shown(value, |v| format!("{v:.2}x"))
}

fn percent(value: f64) -> String {
    shown(value, |v| format!("{:.1}%", 100.0 * v))
}

fn percent_signed(value: f64) -> String {
    shown(value, |v| format!("{:+.0}%", 100.0 * v))
}
