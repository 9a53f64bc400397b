//! Batched passes: every sequence's logits bit-identical to feeding it alone, whatever shares
//! the pass (decode rows, verification rows, prefill chunks); a bad item fails alone.

use std::sync::Arc;

use candle_core::quantized::GgmlDType;
use pipespec_model::synthetic::SyntheticSpec;
use pipespec_model::test_support::pool;
use pipespec_model::{Batch, BatchItem, Model, ModelError, Session};

fn synthetic_model(dtype: GgmlDType, seed: u64, dir: &tempfile::TempDir) -> Arc<Model> {
    let mut spec = SyntheticSpec::tiny(seed);
    spec.matrix_dtype = dtype;
    if dtype.block_size() == 256 {
        spec.hidden_size = 256;
        spec.intermediate_size = 512;
    }
    spec.kv_head_count = 2;
    spec.with_tokenizer = false;
    let path = dir.path().join(format!("{dtype:?}-{seed}.gguf"));
    spec.write(&path).unwrap();
    Model::load(&path).unwrap()
}

fn tokens(seed: u32, count: usize, vocab: usize) -> Vec<u32> {
    (0..count as u32)
        .map(|i| (i * 7919 + seed * 104_729 + 13) % vocab as u32)
        .collect()
}

/// One sequence's history: passes of (tokens, start, head rows), the last of them batched.
struct Case {
    passes: Vec<(Vec<u32>, usize, usize)>,
}

fn cases(vocab: usize) -> Vec<Case> {
    let prompt = |seed, len| tokens(seed, len, vocab);
    vec![
        // decode: a prompt, then one row
        Case {
            passes: vec![(prompt(1, 9), 0, 1), (prompt(2, 1), 9, 1)],
        },
        // verification: 5 rows, all with logits, after a rollback of 2 positions
        Case {
            passes: vec![(prompt(3, 12), 0, 1), (prompt(4, 5), 10, 5)],
        },
        // a prefill chunk without logits, then its last chunk
        Case {
            passes: vec![(prompt(5, 20), 0, 0), (prompt(6, 7), 20, 1)],
        },
        // a whole new prompt in the batched pass
        Case {
            passes: vec![(prompt(7, 33), 0, 3)],
        },
    ]
}

/// The head rows' logits of each case's last pass, fed alone.
fn solo(model: &Arc<Model>, cases: &[Case], threads: usize) -> Vec<Vec<f32>> {
    let vocab = model.config.vocab_size;
    cases
        .iter()
        .map(|case| {
            let mut session = Session::new(model.clone(), 64, pool(threads));
            let mut last = Vec::new();
            for (tokens, start, head_rows) in &case.passes {
                let all = session.forward(tokens, *start).unwrap();
                last = all[all.len() - head_rows * vocab..].to_vec();
            }
            last
        })
        .collect()
}

#[test]
fn every_sequence_of_a_batched_pass_matches_its_solo_logits() {
    let dir = tempfile::tempdir().unwrap();
    for (seed, dtype) in [
        GgmlDType::F32,
        GgmlDType::F16,
        GgmlDType::Q4_1,
        GgmlDType::Q8_0,
        GgmlDType::Q4K,
        GgmlDType::Q6K,
    ]
    .into_iter()
    .enumerate()
    {
        let model = synthetic_model(dtype, seed as u64, &dir);
        let cases = cases(model.config.vocab_size);
        for threads in [1, 2] {
            let expected = solo(&model, &cases, 3 - threads);
            let mut sessions: Vec<Session> = cases
                .iter()
                .map(|case| {
                    let mut session = Session::new(model.clone(), 64, pool(1));
                    for (tokens, start, _) in &case.passes[..case.passes.len() - 1] {
                        session.forward(tokens, *start).unwrap();
                    }
                    session
                })
                .collect();
            let mut items: Vec<BatchItem> = sessions
                .iter_mut()
                .zip(&cases)
                .map(|(session, case)| {
                    let (tokens, start, head_rows) = case.passes.last().unwrap();
                    BatchItem {
                        session,
                        tokens,
                        start: *start,
                        head_rows: *head_rows,
                    }
                })
                .collect();
            let mut batch = Batch::new();
            let outcomes = batch.forward(&pool(threads), &mut items).unwrap();
            for (index, (outcome, expected)) in outcomes.into_iter().zip(&expected).enumerate() {
                let rows = outcome.unwrap();
                assert!(
                    batch.logits()[rows] == expected[..],
                    "{dtype:?}, {threads} threads: case {index} differs from its solo pass"
                );
            }
        }
    }
}

#[test]
fn a_bad_item_fails_alone_and_leaves_its_session_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let model = synthetic_model(GgmlDType::Q8_0, 11, &dir);
    let other = synthetic_model(GgmlDType::Q8_0, 12, &dir);
    let vocab = model.config.vocab_size;
    let prompt = tokens(1, 8, vocab);
    let mut good = Session::new(model.clone(), 16, pool(1));
    let mut unknown = Session::new(model.clone(), 16, pool(1));
    unknown.forward(&prompt, 0).unwrap();
    let mut overflow = Session::new(model.clone(), 16, pool(1));
    let mut gap = Session::new(model.clone(), 16, pool(1));
    let mut foreign = Session::new(other, 16, pool(1));
    let bad_token = [vocab as u32];
    let long = tokens(2, 17, vocab);
    let mut items = vec![
        BatchItem {
            session: &mut good,
            tokens: &prompt,
            start: 0,
            head_rows: 1,
        },
        BatchItem {
            session: &mut unknown,
            tokens: &bad_token,
            start: 4,
            head_rows: 1,
        },
        BatchItem {
            session: &mut overflow,
            tokens: &long,
            start: 0,
            head_rows: 1,
        },
        BatchItem {
            session: &mut gap,
            tokens: &prompt,
            start: 3,
            head_rows: 1,
        },
        BatchItem {
            session: &mut foreign,
            tokens: &prompt,
            start: 0,
            head_rows: 1,
        },
    ];
    let mut batch = Batch::new();
    let outcomes = batch.forward(&pool(2), &mut items).unwrap();
    let mut outcomes = outcomes.into_iter();
    let rows = outcomes.next().unwrap().unwrap();
    let alone = Session::new(model.clone(), 16, pool(1))
        .forward_last(&prompt, 0)
        .unwrap()
        .to_vec();
    assert!(batch.logits()[rows] == alone[..]);
    assert!(matches!(
        outcomes.next().unwrap(),
        Err(ModelError::UnknownToken { .. })
    ));
    assert!(matches!(
        outcomes.next().unwrap(),
        Err(ModelError::ContextOverflow { .. })
    ));
    assert!(matches!(
        outcomes.next().unwrap(),
        Err(ModelError::PositionGap { .. })
    ));
    let mixed = outcomes.next().unwrap().unwrap_err().to_string();
    assert!(mixed.contains("different models"), "{mixed}");
    drop(items);
    assert_eq!(good.len(), 8);
    assert_eq!(unknown.len(), 8, "a failed item keeps what its cache held");
    assert_eq!((overflow.len(), gap.len(), foreign.len()), (0, 0, 0));
}
