//! `pipespec bench`: every strategy on a prompt suite, interleaved per prompt, checked against ar, with the analytical model's predictions; writes results.json, report.md and SVG plots.

mod analysis;
mod calibrate;
mod diagnosis;
mod engine;
mod harness;
mod plots;
mod prediction;
mod progress;
mod record;
mod report;
mod results;
mod run_info;
mod settings;
mod summary;
mod svg;

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use pipespec_model::chat::ChatMessage;

use crate::cli::BenchArgs;
use crate::suites;
use analysis::{Analysis, StrategyInfo};
use engine::ChainEngine;
use harness::{Engine, HarnessOptions};
use progress::BenchProgress;
use run_info::RunInfo;
use settings::BenchSettings;

pub fn run(args: BenchArgs) -> Result<()> {
    let started = Instant::now();
    let settings = BenchSettings::resolve(args)?;
    let prompts = suites::select(
        &settings.suite.load()?,
        &settings.categories,
        settings.limit,
    )?;
    let Some(first) = prompts.first() else {
        bail!("the suite has no prompts to run");
    };
    std::fs::create_dir_all(&settings.out)
        .with_context(|| format!("creating --out {}", settings.out.display()))?;
    let mut engine = ChainEngine::load(&settings)?;
    let options = HarnessOptions {
        all_turns: settings.all_turns,
        compare_outputs: settings.compares_outputs(),
    };

    // Warm-up and calibration on the first prompt, outside the measurements.
    let calibration =
        match engine.prompt_tokens(&[ChatMessage::new("user", first.turns[0].as_str())]) {
            Ok(prompt) => {
                engine.warm_up(&prompt);
                calibrate::calibrate(&mut engine.chains, &prompt)
            }
            Err(error) => Err(error),
        };
    let calibration = calibration
        .map_err(|error| eprintln!("pipespec: no calibration, so no predictions: {error:#}"))
        .ok();

    let turns = harness::turn_count(&prompts, &options);
    let mut progress = BenchProgress::new(turns, engine.strategies().len());
    let records = harness::run(&mut engine, &prompts, &options, &mut progress)?;
    progress.finish();

    let infos: Vec<StrategyInfo> = engine.chains.iter().map(StrategyInfo::of).collect();
    let mut info = RunInfo::new(&settings, prompts.len(), records.len());
    let analysis = analysis::analyze(&records, &infos, calibration.as_deref(), info.cores);
    info.elapsed_s = started.elapsed().as_secs_f64();
    write_outputs(&settings.out, &info, &analysis, &records)?;
    print_summary(&settings.out, &analysis);
    let mismatches: usize = analysis
        .strategies
        .iter()
        .map(|s| s.summary.mismatches)
        .sum();
    if mismatches > 0 {
        bail!(
            "{mismatches} run(s) produced an output that differs from ar's: see {}",
            settings.out.join("report.md").display()
        );
    }
    Ok(())
}

fn write_outputs(
    dir: &Path,
    info: &RunInfo,
    analysis: &Analysis,
    records: &[record::TurnRecord],
) -> Result<()> {
    let text = results::to_text(info, analysis, records)?;
    let path = dir.join("results.json");
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    let path = dir.join("report.md");
    std::fs::write(&path, report::render(info, analysis, records))
        .with_context(|| format!("writing {}", path.display()))?;
    plots::write(dir, analysis)
}

/// One line per strategy on stdout, and where the files are.
fn print_summary(dir: &Path, analysis: &Analysis) {
    for strategy in &analysis.strategies {
        let s = &strategy.summary;
        let predicted = strategy
            .prediction
            .as_ref()
            .map_or("-".into(), |p| report::number(p.speedup, 2));
        println!(
            "{:<9} {:>8} ms/token  speedup {:>5}  decode speedup {:>5} (predicted {predicted})  errors {}  mismatches {}",
            s.strategy.as_str(),
            report::milliseconds(s.totals.ms_per_token()),
            report::number(s.speedup(), 2),
            report::number(s.decode_speedup(), 2),
            s.errors,
            s.mismatches,
        );
    }
    eprintln!(
        "pipespec bench: wrote results.json, report.md and {}, {}, {} in {}",
        plots::SPEEDUP_FILE,
        plots::ACCEPTANCE_FILE,
        plots::PREDICTION_FILE,
        dir.display()
    );
}
