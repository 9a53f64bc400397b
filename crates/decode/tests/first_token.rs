//! The time to first token of every strategy is the target's prefill: the first token is sent
//! before any drafter's prefill ends, checked through the order of events, not a timer.

use std::sync::{Arc, Mutex};

use candle_core::quantized::GgmlDType;
use pipespec_decode::{Level, SamplingParams, SpeculationConfig, Strategy};

use crate::common::{
    chain, config, random_tokens, spec, LevelSpec, Models, PrefillHooked, PrefillMoment,
};

#[derive(Debug, Clone, PartialEq)]
enum Event {
    PrefillStart(usize),
    PrefillEnd(usize),
    Token,
}

type Log = Arc<Mutex<Vec<Event>>>;

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
                    let log = log.clone();
                    let hook = move |moment| {
                        log.lock().unwrap().push(match moment {
                            PrefillMoment::Start => Event::PrefillStart(index),
                            PrefillMoment::End => Event::PrefillEnd(index),
                        })
                    };
                    Box::new(PrefillHooked {
                        inner,
                        hook: Box::new(hook),
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
