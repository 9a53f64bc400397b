//! The chain builder: what it refuses (naming the problem), the kinds strategies pick levels from,
//! core lending, and that every build is a fresh chain over the same weights.

use std::sync::Arc;

use pipespec_decode::chain::split_threads;
use pipespec_decode::{
    ChainBuilder, Cores, DecodeError, LevelKind, LevelSpec, SamplingParams, Strategy,
};

use crate::common::{config, model_level, pool, reference, spec, Models, CAPACITY};

fn error(result: Result<ChainBuilder, DecodeError>) -> String {
    match result {
        Ok(_) => panic!("the chain was accepted"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn bad_chains_are_refused_with_the_reason() {
    let mut models = Models::new();
    let target = models.load(&spec(1, 16, 32, 1));
    let shared = || Cores::Shared(pool());
    let message = error(ChainBuilder::new(Vec::new(), CAPACITY, shared()));
    assert!(message.contains("a model last"), "{message}");
    let message = error(ChainBuilder::new(
        vec![model_level(target.clone()), LevelSpec::ngram()],
        CAPACITY,
        shared(),
    ));
    assert!(message.contains("model,ngram"), "{message}");
    let message = error(ChainBuilder::new(
        vec![model_level(target.clone())],
        0,
        shared(),
    ));
    assert!(message.contains("capacity"), "{message}");
    let message = error(ChainBuilder::new(
        vec![
            LevelSpec::Ngram { min: 3, max: 2 },
            model_level(target.clone()),
        ],
        CAPACITY,
        shared(),
    ));
    assert!(
        message.contains("ngram range") && message.contains("3..=2"),
        "{message}"
    );
    let message = error(ChainBuilder::new(
        vec![model_level(target.clone()), model_level(target)],
        CAPACITY,
        Cores::PerLevel(vec![pool()]),
    ));
    assert!(message.contains("1 pools for 2 levels"), "{message}");
}

#[test]
fn strategies_pick_their_levels_from_the_kinds() {
    let mut models = Models::new();
    let target = models.load(&spec(2, 16, 32, 1));
    let specs = vec![
        LevelSpec::ngram(),
        model_level(target.clone()),
        model_level(target),
    ];
    let builder = ChainBuilder::new(specs, CAPACITY, Cores::Shared(pool())).unwrap();
    let kinds = builder.kinds();
    assert_eq!(
        kinds,
        [LevelKind::Ngram, LevelKind::Model, LevelKind::Model]
    );
    // The kinds of the built levels are the specs' kinds.
    assert_eq!(LevelKind::of_chain(&builder.build().unwrap()), kinds);
    assert_eq!(Strategy::Ar.levels(&kinds).unwrap(), [2]);
    assert_eq!(Strategy::Sd.levels(&kinds).unwrap(), [1, 2]);
    assert_eq!(Strategy::Lookup.levels(&kinds).unwrap(), [0, 2]);
    assert_eq!(Strategy::Pipespec.levels(&kinds).unwrap(), [0, 1, 2]);
    let message = Strategy::Sd
        .levels(&[LevelKind::Ngram, LevelKind::Model])
        .unwrap_err()
        .to_string();
    assert!(message.contains("1 model level(s)"), "{message}");
    let message = Strategy::Lookup
        .levels(&[LevelKind::Model, LevelKind::Model])
        .unwrap_err()
        .to_string();
    assert!(message.contains("model,model"), "{message}");
}

#[test]
fn every_build_is_a_fresh_chain_over_the_same_weights() {
    let mut models = Models::new();
    let target = models.load(&spec(3, 24, 32, 2));
    let builder =
        ChainBuilder::new(vec![model_level(target.clone())], 64, Cores::Shared(pool())).unwrap();
    let prompt = [1, 5, 7, 3];
    let generation = config(12, SamplingParams::greedy(), 0, Vec::new());
    let expected = reference(&target, &prompt, &generation);
    let speculation = Default::default();
    let mut first = builder.build().unwrap();
    let run = |levels: &mut Vec<_>| {
        Strategy::Ar
            .generate(levels, &prompt, &generation, &speculation, &mut |_| true)
            .unwrap()
    };
    assert_eq!(run(&mut first).generation.tokens, expected.tokens);
    // A second build starts from an empty cache and zero counters, whatever the first did.
    let mut second = builder.build().unwrap();
    assert!(first[0].metrics().forward_passes > 0);
    assert_eq!(second[0].metrics().forward_passes, 0);
    assert_eq!(run(&mut second).generation.tokens, expected.tokens);
    assert_eq!(second[0].capacity(), Some(64));
    // What the builder reports is what its sessions hold.
    let session = pipespec_model::Session::new(target.clone(), 64, pool());
    assert_eq!(builder.cache_bytes(), session.cache_bytes());
    assert!(builder.cache_bytes() > 0);
}

#[test]
fn pipespec_cores_split_a_total_and_lend_it_but_keep_counts_per_level() {
    let kinds = [LevelKind::Ngram, LevelKind::Model, LevelKind::Model];
    // One total: evenly, the remainder to the level nearest the target; none for ngram.
    assert_eq!(split_threads(&kinds, &[5]).unwrap(), [0, 2, 3]);
    assert_eq!(split_threads(&kinds, &[1, 4]).unwrap(), [0, 1, 4]);
    let message = split_threads(&kinds, &[1, 2, 3]).unwrap_err().to_string();
    assert!(message.contains("3 counts for 2 model levels"), "{message}");
    assert!(split_threads(&kinds, &[0]).is_err());
    let lending = Cores::per_level(&kinds, &[3]).unwrap();
    assert!(lending.lends());
    assert_eq!(lending.lending_pool().unwrap().current_num_threads(), 3);
    assert_eq!(lending.pool(1).current_num_threads(), 1);
    assert_eq!(lending.pool(2).current_num_threads(), 2);
    let strict = Cores::per_level(&kinds, &[1, 2]).unwrap();
    assert!(!strict.lends() && strict.lending_pool().is_none());
    // One model level has no one to lend to.
    assert!(!Cores::per_level(&[LevelKind::Model], &[2]).unwrap().lends());
    // A builder on lending cores lets verifiers fill their windows, with the window as run-ahead.
    let mut models = Models::new();
    let target = models.load(&spec(4, 16, 32, 1));
    let specs = vec![
        model_level(target.clone()),
        model_level(Arc::clone(&target)),
    ];
    let builder = ChainBuilder::new(
        specs,
        CAPACITY,
        Cores::per_level(&kinds[1..], &[2]).unwrap(),
    )
    .unwrap();
    let mut speculation = pipespec_decode::SpeculationConfig::with_window(5);
    builder.fit(&mut speculation, None);
    assert!(speculation.fill_window);
    assert_eq!(speculation.run_ahead, 5);
    builder.fit(&mut speculation, Some(9));
    assert_eq!(speculation.run_ahead, 9);
}
