//! Every fused op's backward pass against central differences of its forward pass, in f64, on
//! random inputs: causal attention over packed segments (grouped heads), RMS norm, rotary
//! embedding (both pairings, partial rotation), and the frozen product.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var};
use pipespec_model::config::RopeStyle;
use pipespec_tune::ops::attention::{causal_attention, CausalAttention, Segment};
use pipespec_tune::ops::linear::frozen_linear;
use pipespec_tune::ops::norm::rms_norm;
use pipespec_tune::ops::rotary::Rotary;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(rng: &mut ChaCha8Rng, shape: (usize, usize)) -> Tensor {
    let values: Vec<f64> = (0..shape.0 * shape.1)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
}

/// Checks d(sum(f(inputs)·weights))/d(input) against central differences at every entry of
/// every input.
fn check(name: &str, inputs: &[Tensor], f: &dyn Fn(&[Tensor]) -> Tensor) {
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let vars: Vec<Var> = inputs
        .iter()
        .map(|t| Var::from_tensor(t).unwrap())
        .collect();
    let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let out = f(&tensors);
    let weights = random(&mut rng, out.dims2().unwrap());
    let objective = |t: &[Tensor]| -> f64 {
        (f(t) * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let grads = (out * &weights)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let h = 1e-6;
    for (n, var) in vars.iter().enumerate() {
        let grad: Vec<f64> = grads
            .get(var)
            .expect("a gradient")
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let base: Vec<f64> = inputs[n].flatten_all().unwrap().to_vec1().unwrap();
        for i in 0..base.len() {
            let at = |delta: f64| {
                let mut moved = base.clone();
                moved[i] += delta;
                let mut shifted = inputs.to_vec();
                shifted[n] = Tensor::from_vec(moved, inputs[n].shape(), &Device::Cpu).unwrap();
                objective(&shifted)
            };
            let numeric = (at(h) - at(-h)) / (2.0 * h);
            assert!(
                (numeric - grad[i]).abs() <= 1e-6 + 1e-5 * numeric.abs(),
                "{name}: input {n} entry {i}: backward {} vs numeric {numeric}",
                grad[i]
            );
        }
    }
}

#[test]
fn attention_over_packed_segments() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (heads, kv_heads, head_dim) = (4, 2, 8);
    let segments = vec![
        Segment { start: 0, len: 3 },
        Segment { start: 3, len: 5 },
        Segment { start: 8, len: 1 },
    ];
    let attention = CausalAttention {
        segments: Arc::new(segments),
        heads,
        kv_heads,
        head_dim,
    };
    let q = random(&mut rng, (9, heads * head_dim));
    let k = random(&mut rng, (9, kv_heads * head_dim));
    let v = random(&mut rng, (9, kv_heads * head_dim));
    check("attention", &[q, k, v], &|t| {
        causal_attention(&t[0], &t[1], &t[2], &attention).unwrap()
    });
}

#[test]
fn attention_keeps_segments_apart_and_causal() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let attention = |segments: Vec<Segment>| CausalAttention {
        segments: Arc::new(segments),
        heads: 2,
        kv_heads: 1,
        head_dim: 4,
    };
    let (q, k, v) = (
        random(&mut rng, (6, 8)),
        random(&mut rng, (6, 4)),
        random(&mut rng, (6, 4)),
    );
    let packed = causal_attention(
        &q,
        &k,
        &v,
        &attention(vec![
            Segment { start: 0, len: 2 },
            Segment { start: 2, len: 4 },
        ]),
    )
    .unwrap();
    let rows = |t: &Tensor, start, len| t.narrow(0, start, len).unwrap();
    let second = causal_attention(
        &rows(&q, 2, 4),
        &rows(&k, 2, 4),
        &rows(&v, 2, 4),
        &attention(vec![Segment { start: 0, len: 4 }]),
    )
    .unwrap();
    let alone: Vec<f64> = second.flatten_all().unwrap().to_vec1().unwrap();
    let inside: Vec<f64> = rows(&packed, 2, 4)
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(
        alone, inside,
        "a segment's rows see nothing of the segment before"
    );
    // the first row of a segment attends to itself alone: its output is its own value row
    let first: Vec<f64> = rows(&packed, 2, 1)
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let value: Vec<f64> = rows(&v, 2, 1).flatten_all().unwrap().to_vec1().unwrap();
    for (o, v) in first.chunks(4).zip(std::iter::repeat(&value)) {
        assert!(
            o.iter().zip(v).all(|(a, b)| (a - b).abs() < 1e-12),
            "{o:?} vs {v:?}"
        );
    }
}

#[test]
fn rms_norm_with_a_frozen_weight() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let weight = random(&mut rng, (1, 6)).reshape(6).unwrap();
    let x = random(&mut rng, (4, 6));
    check("rms norm", &[x], &|t| {
        rms_norm(&t[0], &weight, 1e-5).unwrap()
    });
}

#[test]
fn rotary_both_styles_and_partial() {
    for (style, rope_dim) in [
        (RopeStyle::Interleaved, 8),
        (RopeStyle::Neox, 8),
        (RopeStyle::Neox, 4),
    ] {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let rows = 5;
        let tables: Vec<f32> = (0..rows * rope_dim)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let rotary = Rotary {
            tables: Arc::new(tables),
            rope_dim,
            head_dim: 8,
            style,
        };
        let x = random(&mut rng, (rows, 16));
        check(&format!("rotary {style:?} {rope_dim}"), &[x], &|t| {
            rotary.apply(&t[0]).unwrap()
        });
    }
}

#[test]
fn frozen_product_passes_the_input_gradient_only() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let weight = random(&mut rng, (3, 5));
    let x = random(&mut rng, (4, 5));
    check("frozen linear", &[x], &|t| {
        frozen_linear(&t[0], &weight).unwrap()
    });
    assert_eq!(weight.dtype(), DType::F64);
}
