//! The training forward pass against the inference engine: with the same adapter, its loss
//! equals the cross-entropy of the engine's logits; in f64 its gradients equal central
//! differences; and a trained adapter survives the trip through a GGUF file bit for bit.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Tensor, Var};
use pipespec_model::lora::LoraTarget;
use pipespec_model::synthetic::{random_adapter, SyntheticSpec};
use pipespec_model::test_support::pool;
use pipespec_model::{AdapterScale, LoadOptions, LoraAdapter, LoraStack, Model, Session};
use pipespec_tune::base::FrozenBase;
use pipespec_tune::data::Example;
use pipespec_tune::net::TokenBatch;
use pipespec_tune::params::LoraParams;
use pipespec_tune::step::{gradients, loss};

const ALL: [LoraTarget; 8] = LoraTarget::ALL;

fn load(spec: &SyntheticSpec, dir: &Path) -> Arc<Model> {
    let path: PathBuf = dir.join(format!("model-{}.gguf", spec.seed));
    spec.write(&path).expect("write model");
    Model::load_with(&path, LoadOptions::selected().unwrap()).expect("load model")
}

/// A sequence of `len` ids from `seed`, its last `labels` tokens labelled.
fn example(seed: u32, len: usize, labels: usize, vocab: usize) -> Example {
    let tokens: Vec<u32> = (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed * 7919) >> 7) % vocab as u32)
        .collect();
    let label = (0..len).map(|i| i >= len - labels).collect();
    Example {
        tokens,
        label,
        prompt_len: len - labels,
        reference: String::new(),
    }
}

/// The mean cross-entropy of the labels from the engine's own logits, in f64.
fn engine_loss(model: &Arc<Model>, adapter: Option<&LoraAdapter>, examples: &[Example]) -> f64 {
    let vocab = model.config.vocab_size;
    let (mut total, mut count) = (0.0f64, 0usize);
    for example in examples {
        let mut session = Session::new(model.clone(), example.tokens.len(), pool(2));
        if let Some(adapter) = adapter {
            let scaled = AdapterScale {
                adapter: Arc::new(adapter.clone()),
                user_scale: 1.0,
            };
            session
                .set_lora(Some(Arc::new(LoraStack::new(model, vec![scaled]).unwrap())))
                .unwrap();
        }
        let logits = session.forward(&example.tokens, 0).unwrap().to_vec();
        for position in 1..example.tokens.len() {
            if !example.label[position] {
                continue;
            }
            let row = &logits[(position - 1) * vocab..position * vocab];
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
            let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
            let target = row[example.tokens[position] as usize] as f64;
            total += max + sum.ln() - target;
            count += 1;
        }
    }
    total / count as f64
}

#[test]
fn the_training_loss_equals_the_engines_cross_entropy() {
    let dir = tempfile::tempdir().unwrap();
    for (seed, tied, architecture) in [
        (3, false, pipespec_model::config::Architecture::Llama),
        (4, true, pipespec_model::config::Architecture::Qwen2),
    ] {
        let spec = SyntheticSpec {
            tied_output: tied,
            architecture,
            ..SyntheticSpec::tiny(seed)
        };
        let model = load(&spec, dir.path());
        let vocab = model.config.vocab_size;
        let examples = [
            example(1, 9, 3, vocab),
            example(2, 14, 5, vocab),
            example(3, 6, 1, vocab),
        ];
        let refs: Vec<&Example> = examples.iter().collect();
        let batch = TokenBatch::new(&refs).unwrap();
        let base = FrozenBase::load(&model, DType::F32).unwrap();
        let adapter = random_adapter(&model, &ALL, 4, 8.0, 0.15, 9);
        let params = Arc::new(LoraParams::from_adapter(&adapter, DType::F32).unwrap());
        for (lora, file) in [(None, None), (Some(&params), Some(&adapter))] {
            let ours = loss(&base, lora, &batch).unwrap();
            let engine = engine_loss(&model, file, &examples);
            assert!(
                (ours - engine).abs() <= 1e-4 * engine.abs().max(1.0),
                "seed {seed}: training loss {ours} vs engine {engine} (adapter: {})",
                lora.is_some()
            );
        }
        let plain = engine_loss(&model, None, &examples);
        let adapted = engine_loss(&model, Some(&adapter), &examples);
        assert!(
            (plain - adapted).abs() > 1e-3,
            "the adapter has no effect to check"
        );
    }
}

/// Replaces one value of `var` and returns the loss.
fn loss_with(
    base: &FrozenBase,
    params: &Arc<LoraParams>,
    batch: &TokenBatch,
    var: &Var,
    index: usize,
    value: f64,
) -> f64 {
    let mut values: Vec<f64> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
    values[index] = value;
    let shape = var.as_tensor().shape().clone();
    var.set(&Tensor::from_vec(values, shape, var.device()).unwrap())
        .unwrap();
    loss(base, Some(params), batch).unwrap()
}

#[test]
fn gradients_equal_central_differences_in_f64() {
    let dir = tempfile::tempdir().unwrap();
    let model = load(&SyntheticSpec::tiny(5), dir.path());
    let vocab = model.config.vocab_size;
    let examples = [example(4, 10, 4, vocab), example(5, 7, 2, vocab)];
    let refs: Vec<&Example> = examples.iter().collect();
    let batch = TokenBatch::new(&refs).unwrap();
    let base = FrozenBase::load(&model, DType::F64).unwrap();
    let adapter = random_adapter(&model, &ALL, 2, 4.0, 0.3, 13);
    let params = Arc::new(LoraParams::from_adapter(&adapter, DType::F64).unwrap());
    let (_, grads) = gradients(&base, &params, &batch).unwrap();
    let h = 1e-5;
    let mut checked = 0;
    for (m, module) in params.modules.iter().enumerate() {
        let module_grads = grads
            .get(&(module.layer, module.target))
            .expect("every module has a gradient");
        for (var, grad) in [(&module.a, &module_grads.a), (&module.b, &module_grads.b)] {
            let grad: Vec<f64> = grad.flatten_all().unwrap().to_vec1().unwrap();
            let original: Vec<f64> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            // A few entries of every tensor, spread by the module index.
            for k in 0..3 {
                let index = (m * 31 + k * 97) % original.len();
                let up = loss_with(&base, &params, &batch, var, index, original[index] + h);
                let down = loss_with(&base, &params, &batch, var, index, original[index] - h);
                loss_with(&base, &params, &batch, var, index, original[index]);
                let numeric = (up - down) / (2.0 * h);
                let error = (numeric - grad[index]).abs();
                assert!(
                    error <= 1e-6 + 1e-4 * numeric.abs(),
                    "{:?} {:?} entry {index}: backward {} vs numeric {numeric}",
                    module.layer,
                    module.target,
                    grad[index]
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, params.modules.len() * 6);
}

#[test]
fn a_trained_adapter_round_trips_through_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = load(&SyntheticSpec::tiny(6), dir.path());
    let original = random_adapter(&model, &ALL, 3, 6.0, 0.2, 17);
    let params = LoraParams::from_adapter(&original, DType::F32).unwrap();
    let exported = params
        .to_adapter(&original.architecture, Some("round trip".into()))
        .unwrap();
    assert_eq!(exported.modules, original.modules);
    let path = dir.path().join("adapter.gguf");
    exported.write(&path).unwrap();
    let read = LoraAdapter::open(&path).unwrap();
    assert_eq!(read.modules, exported.modules);
    assert_eq!(read.alpha, exported.alpha);
    assert_eq!(read.name.as_deref(), Some("round trip"));
    LoraStack::new(
        &model,
        vec![AdapterScale {
            adapter: Arc::new(read),
            user_scale: 1.0,
        }],
    )
    .expect("the base accepts the written adapter");
}
