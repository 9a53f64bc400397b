//! The bench loop: every prompt turn through every strategy, interleaved (so drift on a busy machine hits all alike), each greedy output checked against ar's.

use anyhow::{bail, Result};
use pipespec_decode::{Strategy, StrategyOutput};
use pipespec_model::chat::ChatMessage;

use super::record::{Mismatch, Outcome, RunRecord, TurnRecord};
use crate::suites::Prompt;

/// What the loop needs of an engine; tests swap in a fake one (e.g. a deliberately wrong strategy).
pub trait Engine {
    /// The strategies, in the order results list them; `ar` among them.
    fn strategies(&self) -> &[Strategy];
    /// Token ids of a conversation ending with a user turn, through the chat template.
    fn prompt_tokens(&self, conversation: &[ChatMessage]) -> Result<Vec<u32>>;
    fn decode(&self, tokens: &[u32]) -> Result<String>;
    /// Runs strategy number `strategy` (an index into `strategies`) on `prompt`.
    fn generate(&mut self, strategy: usize, prompt: &[u32]) -> Result<StrategyOutput>;
}

/// Told as the loop goes, for a progress display.
pub trait Progress {
    fn run_finished(&mut self, turn: &TurnInfo, strategy: Strategy);
    fn turn_finished(&mut self, record: &TurnRecord);
}

/// The turn being run, for progress messages.
pub struct TurnInfo<'a> {
    pub category: &'a str,
    pub id: &'a str,
    pub turn: usize,
}

#[derive(Debug, Clone, Copy)]
pub struct HarnessOptions {
    /// Every user turn (each after ar's reply to the earlier ones), not just the first.
    pub all_turns: bool,
    /// Greedy runs: report every output that differs from ar's as a mismatch.
    pub compare_outputs: bool,
}

/// Turns that `prompts` make under `options`: what a progress bar counts to.
pub fn turn_count(prompts: &[Prompt], options: &HarnessOptions) -> usize {
    prompts
        .iter()
        .map(|p| if options.all_turns { p.turns.len() } else { 1 })
        .sum()
}

/// Runs every turn of `prompts` through every strategy of `engine`. A failure is recorded
/// against its strategy and turn, and the bench goes on.
pub fn run(
    engine: &mut dyn Engine,
    prompts: &[Prompt],
    options: &HarnessOptions,
    progress: &mut dyn Progress,
) -> Result<Vec<TurnRecord>> {
    let strategies = engine.strategies().to_vec();
    let Some(reference) = strategies.iter().position(|&s| s == Strategy::Ar) else {
        bail!("the bench needs ar among its strategies: its output is the reference");
    };
    let mut records = Vec::new();
    for (prompt_index, prompt) in prompts.iter().enumerate() {
        let turns = if options.all_turns {
            prompt.turns.len()
        } else {
            1
        };
        let mut conversation = Vec::new();
        for (turn, text) in prompt.turns.iter().take(turns).enumerate() {
            conversation.push(ChatMessage::new("user", text.as_str()));
            let info = TurnInfo {
                category: &prompt.category,
                id: &prompt.id,
                turn,
            };
            // Rotating who goes first spreads any order effect (caches, clocks) over all.
            let first = records.len() % strategies.len();
            let record = run_turn(engine, &conversation, &info, first, progress);
            let record = TurnRecord {
                prompt_index,
                id: prompt.id.clone(),
                category: prompt.category.clone(),
                turn,
                prompt_tokens: record.as_ref().ok().map(|(length, _)| *length),
                runs: compare(record, &strategies, reference, options.compare_outputs),
            };
            progress.turn_finished(&record);
            let reply = record.runs[reference]
                .correct_output()
                .map(|output| engine.decode(&output.generation.tokens));
            records.push(record);
            // A later turn follows ar's reply; without one the conversation cannot go on.
            match reply {
                Some(Ok(text)) if turn + 1 < turns => {
                    conversation.push(ChatMessage::new("assistant", text))
                }
                _ => break,
            }
        }
    }
    Ok(records)
}

/// Every strategy on one turn, starting with number `first`: (prompt length, outcomes in
/// strategy order), or why the prompt could not be built.
fn run_turn(
    engine: &mut dyn Engine,
    conversation: &[ChatMessage],
    info: &TurnInfo,
    first: usize,
    progress: &mut dyn Progress,
) -> std::result::Result<(usize, Vec<Result<StrategyOutput>>), String> {
    let tokens = engine
        .prompt_tokens(conversation)
        .map_err(|error| format!("building the prompt: {error:#}"))?;
    let strategies = engine.strategies().to_vec();
    let mut outputs: Vec<Option<Result<StrategyOutput>>> =
        strategies.iter().map(|_| None).collect();
    for offset in 0..strategies.len() {
        let index = (first + offset) % strategies.len();
        outputs[index] = Some(engine.generate(index, &tokens));
        progress.run_finished(info, strategies[index]);
    }
    let outputs = outputs
        .into_iter()
        .map(|output| output.unwrap_or_else(|| bail!("not run")))
        .collect();
    Ok((tokens.len(), outputs))
}

/// Records the turn's outcomes, each output checked against the reference's when asked.
fn compare(
    turn: std::result::Result<(usize, Vec<Result<StrategyOutput>>), String>,
    strategies: &[Strategy],
    reference: usize,
    compare_outputs: bool,
) -> Vec<RunRecord> {
    let outputs = match turn {
        Ok((_, outputs)) => outputs,
        Err(message) => {
            return strategies
                .iter()
                .map(|&strategy| RunRecord {
                    strategy,
                    outcome: Outcome::Failed(message.clone()),
                })
                .collect()
        }
    };
    let expected = match (&outputs[reference], compare_outputs) {
        (Ok(output), true) => Some(output.generation.tokens.clone()),
        _ => None,
    };
    outputs
        .into_iter()
        .zip(strategies)
        .map(|(output, &strategy)| {
            let outcome = match output {
                Ok(output) => Outcome::Finished {
                    mismatch: expected.as_ref().and_then(|expected| {
                        Mismatch::between(expected, &output.generation.tokens)
                    }),
                    output,
                },
                Err(error) => Outcome::Failed(format!("{error:#}")),
            };
            RunRecord { strategy, outcome }
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use pipespec_decode::{FinishReason, GenerationOutput};

    /// A made-up engine: strategies "generate" the prompt's length, repeated; `broken` alters
    /// one token, `failing` errs.
    pub struct FakeEngine {
        pub strategies: Vec<Strategy>,
        pub broken: Option<Strategy>,
        pub failing: Option<Strategy>,
        /// (strategy, prompt length) of every call, in order.
        pub calls: Vec<(Strategy, usize)>,
    }

    impl FakeEngine {
        pub fn new(strategies: &[Strategy]) -> FakeEngine {
            FakeEngine {
                strategies: strategies.to_vec(),
                broken: None,
                failing: None,
                calls: Vec::new(),
            }
        }
    }

    pub fn output(tokens: Vec<u32>, prompt_tokens: usize) -> StrategyOutput {
        StrategyOutput {
            generation: GenerationOutput {
                tokens,
                prompt_tokens,
                finish_reason: FinishReason::Length,
                prefill_s: 0.01,
                ttft_s: 0.02,
                wall_s: 0.1,
            },
            levels: Vec::new(),
        }
    }

    impl Engine for FakeEngine {
        fn strategies(&self) -> &[Strategy] {
            &self.strategies
        }

        fn prompt_tokens(&self, conversation: &[ChatMessage]) -> Result<Vec<u32>> {
            let text: String = conversation.iter().map(|m| m.content.as_str()).collect();
            if text.contains("unbuildable") {
                bail!("no template");
            }
            Ok(text.bytes().map(u32::from).collect())
        }

        fn decode(&self, tokens: &[u32]) -> Result<String> {
            Ok(tokens
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(" "))
        }

        fn generate(&mut self, strategy: usize, prompt: &[u32]) -> Result<StrategyOutput> {
            let strategy = self.strategies[strategy];
            self.calls.push((strategy, prompt.len()));
            if self.failing == Some(strategy) {
                bail!("context overflow");
            }
            let mut tokens = vec![prompt.len() as u32; 5];
            if self.broken == Some(strategy) {
                tokens[3] += 1;
            }
            Ok(output(tokens, prompt.len()))
        }
    }

    struct Silent;

    impl Progress for Silent {
        fn run_finished(&mut self, _: &TurnInfo, _: Strategy) {}
        fn turn_finished(&mut self, _: &TurnRecord) {}
    }

    fn prompt(id: &str, turns: &[&str]) -> Prompt {
        Prompt {
            id: id.into(),
            category: "c".into(),
            turns: turns.iter().map(|t| t.to_string()).collect(),
        }
    }

    const OPTIONS: HarnessOptions = HarnessOptions {
        all_turns: false,
        compare_outputs: true,
    };

    #[test]
    fn a_broken_strategy_is_reported_as_a_mismatch() {
        let mut engine = FakeEngine::new(&[Strategy::Ar, Strategy::Sd, Strategy::Pipespec]);
        engine.broken = Some(Strategy::Pipespec);
        let records = run(
            &mut engine,
            &[prompt("1", &["hi"]), prompt("2", &["hey"])],
            &OPTIONS,
            &mut Silent,
        )
        .unwrap();
        for record in &records {
            let statuses: Vec<&str> = record.runs.iter().map(RunRecord::status).collect();
            assert_eq!(statuses, ["ok", "ok", "mismatch"]);
            match &record.runs[2].outcome {
                Outcome::Finished {
                    mismatch: Some(m), ..
                } => assert_eq!(m.position, 3),
                other => panic!("{other:?}"),
            }
        }
        // Without comparison (sampling) nothing is flagged.
        let relaxed = HarnessOptions {
            compare_outputs: false,
            ..OPTIONS
        };
        let records = run(&mut engine, &[prompt("1", &["hi"])], &relaxed, &mut Silent).unwrap();
        assert!(records[0].runs.iter().all(|r| r.status() == "ok"));
    }

    #[test]
    fn failures_are_recorded_and_the_bench_goes_on() {
        let mut engine = FakeEngine::new(&[Strategy::Ar, Strategy::Lookup]);
        engine.failing = Some(Strategy::Lookup);
        let prompts = [prompt("1", &["unbuildable"]), prompt("2", &["fine"])];
        let records = run(&mut engine, &prompts, &OPTIONS, &mut Silent).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].prompt_tokens, None);
        assert!(records[0].runs.iter().all(|r| r.status() == "error"));
        assert_eq!(records[1].runs[0].status(), "ok");
        match &records[1].runs[1].outcome {
            Outcome::Failed(message) => assert!(message.contains("context overflow")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn strategies_take_turns_going_first() {
        let mut engine = FakeEngine::new(&[Strategy::Ar, Strategy::Sd]);
        run(
            &mut engine,
            &[prompt("1", &["a"]), prompt("2", &["b"])],
            &OPTIONS,
            &mut Silent,
        )
        .unwrap();
        let order: Vec<Strategy> = engine.calls.iter().map(|c| c.0).collect();
        assert_eq!(
            order,
            [Strategy::Ar, Strategy::Sd, Strategy::Sd, Strategy::Ar]
        );
    }

    #[test]
    fn later_turns_follow_ars_reply() {
        let mut engine = FakeEngine::new(&[Strategy::Ar, Strategy::Sd]);
        let prompts = [prompt("1", &["ab", "cde"])];
        let first_only = run(&mut engine, &prompts, &OPTIONS, &mut Silent).unwrap();
        assert_eq!(first_only.len(), 1);
        let all = HarnessOptions {
            all_turns: true,
            ..OPTIONS
        };
        let records = run(&mut engine, &prompts, &all, &mut Silent).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].turn, 1);
        // "ab" + ar's reply "2 2 2 2 2" + "cde".
        assert_eq!(records[1].prompt_tokens, Some(2 + 9 + 3));
        assert_eq!(turn_count(&prompts, &all), 2);
    }
}
