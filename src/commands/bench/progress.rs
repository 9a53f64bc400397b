//! The bench's progress on stderr: a bar on a terminal, one line per prompt turn otherwise (logs).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use pipespec_decode::Strategy;

use super::harness::{Progress, TurnInfo};
use super::record::{Outcome, TurnRecord};
use super::report::milliseconds;

pub struct BenchProgress {
    bar: Option<ProgressBar>,
    turns: usize,
    turns_done: usize,
}

impl BenchProgress {
    /// Progress over `turns` turns of `strategies` runs each.
    pub fn new(turns: usize, strategies: usize) -> BenchProgress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new((turns * strategies) as u64);
            if let Ok(style) = ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} runs, eta {eta} {msg}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        BenchProgress {
            bar,
            turns,
            turns_done: 0,
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for BenchProgress {
    fn run_finished(&mut self, turn: &TurnInfo, strategy: Strategy) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(format!(
                "{} {} turn {}: {strategy} done",
                turn.category,
                turn.id,
                turn.turn + 1
            ));
        }
    }

    fn turn_finished(&mut self, record: &TurnRecord) {
        self.turns_done += 1;
        if self.bar.is_some() {
            return;
        }
        let runs: Vec<String> = record
            .runs
            .iter()
            .map(|run| match &run.outcome {
                Outcome::Finished { output, mismatch } => {
                    let generation = &output.generation;
                    let ms = 1000.0 * generation.wall_s / generation.tokens.len() as f64;
                    let flag = if mismatch.is_some() { " MISMATCH" } else { "" };
                    format!("{} {} ms/token{flag}", run.strategy, milliseconds(ms))
                }
                Outcome::Failed(_) => format!("{} error", run.strategy),
            })
            .collect();
        eprintln!(
            "pipespec bench: [{}/{}] {} {} turn {}: {}",
            self.turns_done,
            self.turns,
            record.category,
            record.id,
            record.turn + 1,
            runs.join(", ")
        );
    }
}
