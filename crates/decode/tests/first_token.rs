//! The time to first token of every strategy is the target's prefill: the first token is sent
//! before any drafter's prefill ends, checked through the order of events, not a timer.

use std::sync::{Arc, Mutex};

use candle_core::quantized::GgmlDType;
use pipespec_decode::{
    Drafts, Level, LevelMetrics, Result, Sampler, SamplingParams, SpeculationConfig, Strategy,
};

use crate::common::{chain, config, random_tokens, spec, LevelSpec, Models};

#[derive(Debug, Clone, PartialEq)]
enum Event {
    PrefillStart(usize),
    PrefillEnd(usize),
    Token,
}

type Log = Arc<Mutex<Vec<Event>>>;

/// A level that records when its prefill starts and ends.
struct Recorder {
    index: usize,
    inner: Box<dyn Level>,
    log: Log,
}

impl Level for Recorder {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn can_verify(&self) -> bool {
        self.inner.can_verify()
    }

    fn vocab_size(&self) -> Option<usize> {
        self.inner.vocab_size()
    }

    fn capacity(&self) -> Option<usize> {
        self.inner.capacity()
    }

    fn prefill(&mut self, prompt: &[u32]) -> Result<()> {
        self.log
            .lock()
            .unwrap()
            .push(Event::PrefillStart(self.index));
        let result = self.inner.prefill(prompt);
        self.log.lock().unwrap().push(Event::PrefillEnd(self.index));
        result
    }

    fn logits(&mut self, sequence: &[u32], rows: usize) -> Result<&[f32]> {
        self.inner.logits(sequence, rows)
    }

    fn draft(
        &mut self,
        sequence: &[u32],
        count: usize,
        sampling: &SamplingParams,
        sampler: &mut Sampler,
        drafts: &mut Drafts,
    ) -> Result<()> {
        self.inner.draft(sequence, count, sampling, sampler, drafts)
    }

    fn metrics(&self) -> &LevelMetrics {
        self.inner.metrics()
    }

    fn metrics_mut(&mut self) -> &mut LevelMetrics {
        self.inner.metrics_mut()
    }
}

#[test]
fn the_first_token_is_sent_before_any_drafter_prefill_ends() {
    let mut models = Models::new();
    let target_spec = spec(31, 128, 64, 2);
    let mut draft_spec = target_spec.clone();
    draft_spec.matrix_dtype = GgmlDType::Q4_1;
    let specs = vec![
        LevelSpec::ngram(),
        LevelSpec::model("draft", models.load(&draft_spec)),
        LevelSpec::model("target", models.load(&target_spec)),
    ];
    let prompt = random_tokens(5, 40, 128);
    for strategy in [
        Strategy::Sd,
        Strategy::Staged,
        Strategy::Lookup,
        Strategy::Pipespec,
    ] {
        for run in 0..5 {
            let log: Log = Arc::default();
            let mut levels: Vec<Box<dyn Level>> = chain(&specs)
                .into_iter()
                .enumerate()
                .map(|(index, inner)| {
                    Box::new(Recorder {
                        index,
                        inner,
                        log: log.clone(),
                    }) as Box<dyn Level>
                })
                .collect();
            let generation = config(6, SamplingParams::greedy(), run, Vec::new());
            let output = strategy
                .generate(
                    &mut levels,
                    &prompt,
                    &generation,
                    &SpeculationConfig::with_window(3),
                    &mut |_| {
                        log.lock().unwrap().push(Event::Token);
                        true
                    },
                )
                .unwrap();
            assert!(!output.generation.tokens.is_empty());
            let events = log.lock().unwrap().clone();
            let first_token = events.iter().position(|e| *e == Event::Token).unwrap();
            let target = levels.len() - 1;
            let drafter_prefills: Vec<usize> = events
                .iter()
                .enumerate()
                .filter(|(_, e)| matches!(e, Event::PrefillEnd(i) if *i != target))
                .map(|(at, _)| at)
                .collect();
            assert!(
                !drafter_prefills.is_empty(),
                "{strategy}: no drafter prefilled: {events:?}"
            );
            assert!(
                drafter_prefills.iter().all(|&at| at > first_token),
                "{strategy}, run {run}: a drafter finished its prefill before the first token: {events:?}"
            );
            assert_eq!(
                events.first(),
                Some(&Event::PrefillStart(target)),
                "{strategy}: the target prefills first: {events:?}"
            );
        }
    }
}
