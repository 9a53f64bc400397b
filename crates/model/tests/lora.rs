//! LoRA adapters at inference: the adapted forward equals the merged-weight model's, a
//! sequence's logits are bit-identical alone or batched beside sequences with other adapters
//! (or none), and every bad adapter is refused with a message naming the problem.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::GgmlDType;
use pipespec_model::gguf::GgufFile;
use pipespec_model::gguf_writer::{GgufWriter, TensorToWrite};
use pipespec_model::lora::{module_scale, LoraTarget};
use pipespec_model::synthetic::{random_adapter, SyntheticSpec};
use pipespec_model::test_support::pool;
use pipespec_model::{
    AdapterScale, Batch, BatchItem, LoadOptions, LoraAdapter, LoraStack, Model, ModelError, Session,
};

const ALL: [LoraTarget; 8] = LoraTarget::ALL;

fn write_model(spec: &SyntheticSpec, dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    spec.write(&path).expect("write model");
    path
}

fn stack(model: &Model, adapters: &[(&LoraAdapter, f32)]) -> Arc<LoraStack> {
    let entries = adapters
        .iter()
        .map(|(adapter, user_scale)| AdapterScale {
            adapter: Arc::new((*adapter).clone()),
            user_scale: *user_scale,
        })
        .collect();
    Arc::new(LoraStack::new(model, entries).expect("adapters fit"))
}

/// The base file with every adapted f32 matrix replaced by `W + scale·B·A` (summed in f64).
fn merged_copy(base: &Path, adapter: &LoraAdapter, user_scale: f32, out: &Path) {
    let file = GgufFile::open(base).expect("open base");
    let mut w = GgufWriter::new();
    for key in &file.metadata_order {
        w.set(key, file.metadata[key].clone());
    }
    for info in &file.tensors {
        let mut bytes = file.tensor_bytes(info).to_vec();
        if let Some(m) = adapter.modules.iter().find(|m| m.base == info.name) {
            assert_eq!(info.dtype, GgmlDType::F32);
            let scale = module_scale(adapter.alpha, m.rank, user_scale) as f64;
            for o in 0..m.n_out {
                for i in 0..m.n_in {
                    let at = (o * m.n_in + i) * 4;
                    let w0 = f32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as f64;
                    let delta: f64 = (0..m.rank)
                        .map(|r| m.b[o * m.rank + r] as f64 * m.a[r * m.n_in + i] as f64)
                        .sum();
                    let merged = (w0 + scale * delta) as f32;
                    bytes[at..at + 4].copy_from_slice(&merged.to_le_bytes());
                }
            }
        }
        w.add_tensor(TensorToWrite {
            name: info.name.clone(),
            dims: info.dims.clone(),
            dtype: info.dtype,
            bytes,
        });
    }
    w.write(out).expect("write merged");
}

fn tokens(seed: u32, count: usize, vocab: usize) -> Vec<u32> {
    (0..count as u32)
        .map(|i| (i * 7919 + seed * 104_729 + 13) % vocab as u32)
        .collect()
}

fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn adapted_forward_equals_the_merged_weights() {
    let dir = tempfile::tempdir().unwrap();
    let base_path = write_model(&SyntheticSpec::tiny(3), dir.path(), "base.gguf");
    let options = LoadOptions::selected().unwrap();
    let base = Model::load_with(&base_path, options).unwrap();
    let adapter = random_adapter(&base, &ALL, 4, 8.0, 0.2, 11);
    assert_eq!(adapter.modules.len(), 7 * base.config.layer_count + 1);
    let merged_path = dir.path().join("merged.gguf");
    merged_copy(&base_path, &adapter, 0.75, &merged_path);
    let merged = Model::load_with(&merged_path, options).unwrap();
    let prompt = tokens(5, 12, base.config.vocab_size);

    let mut plain = Session::new(base.clone(), 32, pool(2));
    let plain_logits = plain.forward(&prompt, 0).unwrap().to_vec();
    let mut adapted = Session::new(base.clone(), 32, pool(2));
    adapted
        .set_lora(Some(stack(&base, &[(&adapter, 0.75)])))
        .unwrap();
    let adapted_logits = adapted.forward(&prompt, 0).unwrap().to_vec();
    let mut reference = Session::new(merged, 32, pool(2));
    let merged_logits = reference.forward(&prompt, 0).unwrap().to_vec();

    let effect = max_difference(&adapted_logits, &plain_logits);
    let error = max_difference(&adapted_logits, &merged_logits);
    let magnitude = merged_logits.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(
        effect > 0.05,
        "the adapter barely changes the logits ({effect})"
    );
    // f32 rounding of two summation orders over 2 layers: far below the adapter's effect.
    assert!(
        error <= 1e-4 * magnitude.max(1.0),
        "adapted vs merged differ by {error} (logits up to {magnitude}, adapter effect {effect})"
    );
}

#[test]
fn a_sequence_is_bit_identical_alone_or_batched_beside_other_adapters() {
    let dir = tempfile::tempdir().unwrap();
    for dtype in [GgmlDType::F32, GgmlDType::Q8_0, GgmlDType::Q4K] {
        let mut spec = SyntheticSpec::tiny(7);
        spec.matrix_dtype = dtype;
        if dtype.block_size() == 256 {
            spec.hidden_size = 256;
            spec.intermediate_size = 512;
        }
        let path = write_model(&spec, dir.path(), &format!("{dtype:?}.gguf"));
        let model = Model::load(&path).unwrap();
        let one = random_adapter(&model, &ALL, 4, 8.0, 0.1, 1);
        let two = random_adapter(&model, &[LoraTarget::Q, LoraTarget::Down], 2, 0.0, 0.1, 2);
        let stacks = [
            Some(stack(&model, &[(&one, 1.0)])),
            None,
            Some(stack(&model, &[(&one, 0.5), (&two, 2.0)])),
        ];
        let vocab = model.config.vocab_size;
        let prompts: Vec<Vec<u32>> = (0..3)
            .map(|i| tokens(i, 9 + 4 * i as usize, vocab))
            .collect();
        for threads in [1, 2] {
            let mut sessions: Vec<Session> = stacks
                .iter()
                .map(|lora| {
                    let mut session = Session::new(model.clone(), 64, pool(threads));
                    session.set_lora(lora.clone()).unwrap();
                    session
                })
                .collect();
            let alone: Vec<Vec<f32>> = sessions
                .iter_mut()
                .zip(&prompts)
                .map(|(session, prompt)| session.forward(prompt, 0).unwrap().to_vec())
                .collect();
            let mut batch = Batch::new();
            let mut items: Vec<BatchItem> = sessions
                .iter_mut()
                .zip(&prompts)
                .map(|(session, prompt)| BatchItem {
                    session,
                    tokens: prompt,
                    start: 0,
                    head_rows: prompt.len(),
                })
                .collect();
            let outcomes = batch.forward(&pool(3 - threads), &mut items).unwrap();
            for (index, outcome) in outcomes.into_iter().enumerate() {
                let rows = outcome.unwrap();
                let batched = &batch.logits()[rows];
                assert!(
                    batched
                        .iter()
                        .zip(&alone[index])
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{dtype:?}, {threads} thread(s): sequence {index} differs batched"
                );
            }
            assert!(max_difference(&alone[0], &alone[2]) > 0.0);
        }
    }
}

fn refusal(model: &Model, adapter: &LoraAdapter) -> String {
    let entry = AdapterScale {
        adapter: Arc::new(adapter.clone()),
        user_scale: 1.0,
    };
    let error = LoraStack::new(model, vec![entry]).expect_err("refused");
    assert!(matches!(error, ModelError::Adapter { .. }), "{error}");
    error.to_string()
}

#[test]
fn bad_adapters_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let model = Model::load(&write_model(&SyntheticSpec::tiny(1), dir.path(), "m.gguf")).unwrap();
    let good = random_adapter(&model, &ALL, 2, 4.0, 0.1, 1);

    let mut qwen = good.clone();
    qwen.architecture = "qwen2".into();
    assert!(refusal(&model, &qwen).contains("architecture `qwen2`"));

    let mut tied_spec = SyntheticSpec::tiny(1);
    tied_spec.tied_output = true;
    let tied = Model::load(&write_model(&tied_spec, dir.path(), "tied.gguf")).unwrap();
    assert!(refusal(&tied, &good).contains("`output.weight`, which the model does not have"));

    let mut wide_spec = SyntheticSpec::tiny(1);
    wide_spec.hidden_size = 128;
    let wide = Model::load(&write_model(&wide_spec, dir.path(), "wide.gguf")).unwrap();
    assert!(refusal(&wide, &good).contains("another model size"));

    let mut deep = good.clone();
    deep.modules[0].layer = Some(9);
    deep.modules[0].base = "blk.9.attn_q.weight".into();
    assert!(refusal(&model, &deep).contains("the model has 2 layers"));

    // files: a model is no adapter; a lora_a without its lora_b; an unsupported tensor
    let model_file = dir.path().join("m.gguf");
    let error = LoraAdapter::open(&model_file).unwrap_err().to_string();
    assert!(error.contains("not an adapter"), "{error}");
    let path = dir.path().join("adapter.gguf");
    good.write(&path).unwrap();
    assert_eq!(LoraAdapter::open(&path).unwrap().modules, good.modules);
    // ...and an adapter is no model
    let Err(error) = Model::load(&path) else {
        panic!("an adapter loaded as a model");
    };
    let error = error.to_string();
    assert!(
        error.contains("an adapter, not a model") && error.contains("--lora"),
        "{error}"
    );
    for (name, expected) in [
        (
            "blk.0.attn_q.weight.lora_a",
            "has no `blk.0.attn_q.weight.lora_b`",
        ),
        (
            "token_embd.weight.lora_a",
            "LoRA on `token_embd.weight` is not supported",
        ),
    ] {
        let mut w = GgufWriter::new();
        let file = GgufFile::open(&path).unwrap();
        for key in &file.metadata_order {
            w.set(key, file.metadata[key].clone());
        }
        w.add_tensor(TensorToWrite {
            name: name.into(),
            dims: vec![64, 2],
            dtype: GgmlDType::F32,
            bytes: vec![0; 64 * 2 * 4],
        });
        if name.starts_with("token_embd") {
            w.add_tensor(TensorToWrite {
                name: "token_embd.weight.lora_b".into(),
                dims: vec![2, 320],
                dtype: GgmlDType::F32,
                bytes: vec![0; 2 * 320 * 4],
            });
        }
        let bad = dir.path().join(format!("bad-{}.gguf", name.len()));
        w.write(&bad).unwrap();
        let error = LoraAdapter::open(&bad).unwrap_err().to_string();
        assert!(error.contains(expected), "{error}");
    }

    // a stack checked against one model does not run on another
    let mut other = Session::new(wide, 16, pool(1));
    let error = other
        .set_lora(Some(stack(&model, &[(&good, 1.0)])))
        .unwrap_err();
    assert!(error.to_string().contains("another model"), "{error}");
}
