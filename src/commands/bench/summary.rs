//! Figures over many runs: each strategy's totals (overall or per category), its speedup against ar on the same turns, its levels' counters summed.

use pipespec_decode::{GenerationOutput, LevelMetrics, LevelReport, Strategy};

use super::record::{Outcome, TurnRecord};

/// Sums over runs. Speeds are ratios of sums, so long outputs weigh more than short ones.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub turns: usize,
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    /// Prefill included.
    pub wall_s: f64,
    pub ttft_s: f64,
    /// Tokens after each run's first, and the time after it.
    pub decode_tokens: usize,
    pub decode_s: f64,
}

impl Totals {
    fn add(&mut self, generation: &GenerationOutput) {
        self.turns += 1;
        self.prompt_tokens += generation.prompt_tokens;
        self.generated_tokens += generation.tokens.len();
        self.wall_s += generation.wall_s;
        self.ttft_s += generation.ttft_s;
        self.decode_tokens += generation.tokens.len().saturating_sub(1);
        self.decode_s += (generation.wall_s - generation.ttft_s).max(0.0);
    }

    /// Total wall time (prefill included) over tokens generated, as Spec-Bench and the paper count.
    pub fn ms_per_token(&self) -> f64 {
        1000.0 * self.wall_s / self.generated_tokens as f64
    }

    pub fn decode_tokens_per_second(&self) -> f64 {
        self.decode_tokens as f64 / self.decode_s
    }

    pub fn mean_ttft_s(&self) -> f64 {
        self.ttft_s / self.turns as f64
    }
}

/// One strategy over the turns where both it and ar produced a correct output.
#[derive(Debug, Clone)]
pub struct StrategySummary {
    pub strategy: Strategy,
    pub totals: Totals,
    /// ar over the same turns.
    pub reference: Totals,
    /// Level counters summed over those turns, smallest level first.
    pub levels: Vec<LevelReport>,
    /// Runs that failed, and runs whose output differed from ar's (all turns, not just those compared).
    pub errors: usize,
    pub mismatches: usize,
}

impl StrategySummary {
    /// ar's ms/token over this strategy's: prefill included.
    pub fn speedup(&self) -> f64 {
        self.reference.ms_per_token() / self.totals.ms_per_token()
    }

    /// Decode tokens per second over ar's: what the analytical model predicts.
    pub fn decode_speedup(&self) -> f64 {
        self.totals.decode_tokens_per_second() / self.reference.decode_tokens_per_second()
    }

    /// Tokens generated per forward pass of the target (its prefill included): 1 for ar.
    pub fn mean_accepted_length(&self) -> f64 {
        let passes = self.levels.last().map_or(0, |l| l.metrics.forward_passes);
        self.totals.generated_tokens as f64 / passes as f64
    }

    /// `pipespec`: verifications that rejected a draft and sent the level above back.
    pub fn rollbacks(&self) -> usize {
        self.levels.iter().map(|l| l.metrics.rollbacks_sent).sum()
    }
}

/// Summarizes `strategy`, number `index` in the runs, against number `reference` (ar), over
/// every turn or over the turns of `category`.
pub fn summarize(
    records: &[TurnRecord],
    strategy: Strategy,
    (index, reference): (usize, usize),
    category: Option<&str>,
) -> StrategySummary {
    let mut summary = StrategySummary {
        strategy,
        totals: Totals::default(),
        reference: Totals::default(),
        levels: Vec::new(),
        errors: 0,
        mismatches: 0,
    };
    let turns = records
        .iter()
        .filter(|r| category.is_none_or(|c| r.category == c));
    for record in turns {
        let run = &record.runs[index];
        match &run.outcome {
            Outcome::Failed(_) => summary.errors += 1,
            Outcome::Finished {
                mismatch: Some(_), ..
            } => summary.mismatches += 1,
            Outcome::Finished { .. } => {}
        }
        let (Some(output), Some(ar)) = (
            run.correct_output(),
            record.runs[reference].correct_output(),
        ) else {
            continue;
        };
        summary.totals.add(&output.generation);
        summary.reference.add(&ar.generation);
        if summary.levels.is_empty() {
            summary.levels = output
                .levels
                .iter()
                .map(|l| LevelReport {
                    name: l.name.clone(),
                    metrics: LevelMetrics::default(),
                })
                .collect();
        }
        for (sum, level) in summary.levels.iter_mut().zip(&output.levels) {
            sum.metrics.accumulate(&level.metrics);
        }
    }
    summary
}

/// The categories of `records`, in order of first appearance.
pub fn categories(records: &[TurnRecord]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for record in records {
        if !names.contains(&record.category) {
            names.push(record.category.clone());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::super::harness::tests::output;
    use super::super::record::{Mismatch, RunRecord};
    use super::*;

    fn run(strategy: Strategy, wall_s: f64, tokens: usize, mismatch: bool) -> RunRecord {
        let mut output = output(vec![7; tokens], 10);
        output.generation.wall_s = wall_s;
        output.generation.ttft_s = 0.1 * wall_s;
        RunRecord {
            strategy,
            outcome: Outcome::Finished {
                output,
                mismatch: mismatch.then(|| Mismatch::between(&[1], &[2]).unwrap()),
            },
        }
    }

    fn turn(category: &str, runs: Vec<RunRecord>) -> TurnRecord {
        TurnRecord {
            prompt_index: 0,
            id: "1".into(),
            category: category.into(),
            turn: 0,
            prompt_tokens: Some(10),
            runs,
        }
    }

    #[test]
    fn speedups_compare_the_same_turns() {
        let records = [
            turn(
                "a",
                vec![
                    run(Strategy::Ar, 2.0, 10, false),
                    run(Strategy::Sd, 1.0, 10, false),
                ],
            ),
            turn(
                "b",
                vec![
                    run(Strategy::Ar, 4.0, 10, false),
                    run(Strategy::Sd, 1.0, 10, true),
                ],
            ),
            turn(
                "b",
                vec![
                    run(Strategy::Ar, 3.0, 20, false),
                    RunRecord {
                        strategy: Strategy::Sd,
                        outcome: Outcome::Failed("boom".into()),
                    },
                ],
            ),
        ];
        let sd = summarize(&records, Strategy::Sd, (1, 0), None);
        // Only the first turn counts for sd: 200 ms/token against ar's 100.
        assert_eq!(sd.totals.turns, 1);
        assert!((sd.totals.ms_per_token() - 100.0).abs() < 1e-9);
        assert!((sd.speedup() - 2.0).abs() < 1e-9);
        assert!((sd.decode_speedup() - 2.0).abs() < 1e-9);
        assert_eq!((sd.errors, sd.mismatches), (1, 1));
        let ar = summarize(&records, Strategy::Ar, (0, 0), Some("b"));
        assert_eq!(ar.totals.turns, 2);
        assert!((ar.totals.ms_per_token() - 7000.0 / 30.0).abs() < 1e-9);
        assert_eq!(categories(&records), ["a", "b"]);
    }
}
