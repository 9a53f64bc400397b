//! Attention over long contexts: every score tile, weight sum and value pass that a long cache
//! and blocks of rows bring in gives each position the same logits, alone or inside any pass.

use std::sync::Arc;

use candle_core::quantized::GgmlDType;
use pipespec_model::synthetic::SyntheticSpec;
use pipespec_model::test_support::pool;
use pipespec_model::{Model, Session};

fn tokens(count: usize, vocab: usize) -> Vec<u32> {
    (0..count as u32)
        .map(|i| (i * 7919 + 104_729) % vocab as u32)
        .collect()
}

/// Models with 64-dimension heads (the width of real models), in groups of 1, 2 and 4 query
/// heads per kv head.
fn models(dir: &tempfile::TempDir) -> Vec<Arc<Model>> {
    [4, 2, 1]
        .into_iter()
        .enumerate()
        .map(|(seed, kv_heads)| {
            let mut spec = SyntheticSpec::tiny(seed as u64 + 40);
            spec.hidden_size = 256;
            spec.intermediate_size = 256;
            spec.kv_head_count = kv_heads;
            spec.matrix_dtype = GgmlDType::F16;
            spec.with_tokenizer = false;
            let path = dir.path().join(format!("attention-{kv_heads}.gguf"));
            spec.write(&path).unwrap();
            Model::load(&path).unwrap()
        })
        .collect()
}

#[test]
fn long_contexts_give_the_same_logits_alone_or_in_any_pass() {
    let dir = tempfile::tempdir().unwrap();
    for model in models(&dir) {
        let vocab = model.config.vocab_size;
        let input = tokens(190, vocab);
        for threads in [1, 2] {
            let mut whole = Session::new(model.clone(), 256, pool(threads));
            let all = whole.forward(&input, 0).unwrap().to_vec();
            // Pieces of every block shape: single rows, blocks of 2 to 4 rows, long prefills,
            // at cache lengths from 0 to past 128 positions.
            let mut pieces = Session::new(model.clone(), 256, pool(3 - threads));
            let mut start = 0;
            for size in [1, 70, 3, 4, 2, 1, 57, 6, 5, 41] {
                let logits = pieces.forward(&input[start..start + size], start).unwrap();
                assert_eq!(
                    logits,
                    &all[start * vocab..(start + size) * vocab],
                    "{} kv heads: rows {start}..{} differ (tolerance 0)",
                    model.config.kv_head_count,
                    start + size
                );
                start += size;
            }
            assert_eq!(start, input.len());
        }
    }
}
