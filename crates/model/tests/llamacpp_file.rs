//! A Q4_K_M file made by llama.cpp's own `llama-quantize` (a seeded random llama, made by
//! `scripts/make-llamacpp-fixture.sh`): it loads with the K-quants llama.cpp chose, and greedy
//! decoding on the packed kernels of every CPU path gives the tokens candle's reference dot
//! products give, one token at a time and in one multi-row pass.

use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::GgmlDType;
use pipespec_model::gguf::{GgufFile, Value};
use pipespec_model::kernels::CpuPath;
use pipespec_model::tokenizer::Tokenizer;
use pipespec_model::{LoadOptions, Model, Session};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/llamacpp-q4_k_m.gguf");
const NEW_TOKENS: usize = 24;

fn pool() -> Arc<rayon::ThreadPool> {
    Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap(),
    )
}

#[test]
fn the_llama_cpp_file_loads_with_its_k_quants() {
    let file = GgufFile::open(Path::new(FIXTURE)).unwrap();
    // llama.cpp's file type 15: LLAMA_FTYPE_MOSTLY_Q4_K_M.
    match file.metadata.get("general.file_type") {
        Some(Value::U32(15)) => {}
        other => panic!("general.file_type {other:?}, not 15 (Q4_K_M)"),
    }
    let count = |dtype: GgmlDType| file.tensors.iter().filter(|t| t.dtype == dtype).count();
    assert!(count(GgmlDType::Q4K) > 0, "no Q4_K tensor");
    assert!(count(GgmlDType::Q6K) > 0, "no Q6_K tensor");
    let model = Model::load(Path::new(FIXTURE)).unwrap();
    assert_eq!(model.config.hidden_size, 256);
}

/// Greedy tokens after `prompt`, one at a time; with the gap between the best two logits of
/// each step.
fn greedy(model: &Arc<Model>, prompt: &[u32]) -> (Vec<u32>, Vec<f32>) {
    let mut session = Session::new(model.clone(), prompt.len() + NEW_TOKENS, pool());
    let vocab = model.config.vocab_size;
    let mut logits = session.forward(prompt, 0).unwrap()[(prompt.len() - 1) * vocab..].to_vec();
    let (mut tokens, mut gaps) = (Vec::new(), Vec::new());
    for _ in 0..NEW_TOKENS {
        let (best, gap) = best_and_gap(&logits);
        tokens.push(best);
        gaps.push(gap);
        let position = prompt.len() + tokens.len() - 1;
        logits = session.forward(&[best], position).unwrap().to_vec();
    }
    (tokens, gaps)
}

fn best_and_gap(row: &[f32]) -> (u32, f32) {
    let mut order: Vec<usize> = (0..row.len()).collect();
    order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
    (order[0] as u32, row[order[0]] - row[order[1]])
}

#[test]
fn greedy_decoding_on_the_packed_kernels_matches_the_candle_path() {
    let file = GgufFile::open(Path::new(FIXTURE)).unwrap();
    let tokenizer = Tokenizer::from_gguf(&file).unwrap();
    let load = |cpu: CpuPath, pack: bool| {
        Model::load_with(Path::new(FIXTURE), LoadOptions { cpu, pack }).unwrap()
    };
    let reference = load(CpuPath::Scalar, false);
    let paths: Vec<CpuPath> = CpuPath::ALL.into_iter().filter(|p| p.available()).collect();
    for prompt in [
        "Once upon a time",
        "def fibonacci(n):",
        "The capital of France is",
    ] {
        let ids = tokenizer.encode(prompt, true).unwrap();
        let (expected, gaps) = greedy(&reference, &ids);
        let closest = gaps.iter().copied().fold(f32::INFINITY, f32::min);
        eprintln!("{prompt:?}: {expected:?}, closest top-2 gap {closest:.4}");
        for &cpu in &paths {
            let packed = load(cpu, true);
            let (tokens, _) = greedy(&packed, &ids);
            assert_eq!(
                tokens, expected,
                "{prompt:?} decoded one at a time on {cpu:?}"
            );
            // The whole sequence in one pass: the multi-row kernels pick the same tokens.
            let all: Vec<u32> = ids.iter().chain(&expected).copied().collect();
            let mut session = Session::new(packed.clone(), all.len(), pool());
            let logits = session.forward(&all, 0).unwrap();
            let vocab = packed.config.vocab_size;
            let picked: Vec<u32> = (ids.len() - 1..all.len() - 1)
                .map(|row| best_and_gap(&logits[row * vocab..(row + 1) * vocab]).0)
                .collect();
            assert_eq!(picked, expected, "{prompt:?} in one pass on {cpu:?}");
            let mut exact = Session::new(reference.clone(), all.len(), pool());
            let drift = exact
                .forward(&all, 0)
                .unwrap()
                .iter()
                .zip(logits)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            eprintln!("  {cpu:?}: largest logit difference from candle's {drift:.4}");
        }
    }
}
