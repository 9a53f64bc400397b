//! Unit tests of target names, the dot product's order and the adapter file's round trip.

use super::apply::dot;
use super::{LoraAdapter, LoraModule, LoraTarget};

#[test]
fn base_names_round_trip() {
    for target in LoraTarget::LAYER {
        let name = target.base_tensor(Some(3));
        assert_eq!(LoraTarget::parse_base(&name), Some((Some(3), target)));
        assert_eq!(
            LoraTarget::from_short_name(target.short_name()),
            Some(target)
        );
    }
    assert_eq!(
        LoraTarget::parse_base("output.weight"),
        Some((None, LoraTarget::Head))
    );
    for bad in [
        "token_embd.weight",
        "blk.x.attn_q.weight",
        "blk.0.attn_norm.weight",
        "blk.0.attn_q.bias",
    ] {
        assert_eq!(LoraTarget::parse_base(bad), None, "{bad}");
    }
}

#[test]
fn dot_matches_f64_and_is_order_fixed() {
    for len in [1usize, 7, 8, 9, 64, 100] {
        let a: Vec<f32> = (0..len)
            .map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.13)
            .collect();
        let b: Vec<f32> = (0..len)
            .map(|i| ((i * 17 % 7) as f32 - 3.0) * 0.29)
            .collect();
        let exact: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
        let got = dot(&a, &b);
        assert!(
            (got as f64 - exact).abs() < 1e-4,
            "len {len}: {got} vs {exact}"
        );
        assert_eq!(got.to_bits(), dot(&a, &b).to_bits());
    }
}

fn module(base: &str, rank: usize, n_in: usize, n_out: usize) -> LoraModule {
    let (layer, target) = LoraTarget::parse_base(base).expect("a known base");
    LoraModule {
        base: base.into(),
        layer,
        target,
        rank,
        n_in,
        n_out,
        a: (0..rank * n_in).map(|i| (i as f32 * 0.37).sin()).collect(),
        b: (0..n_out * rank).map(|i| (i as f32 * 0.11).cos()).collect(),
    }
}

#[test]
fn write_then_open_is_bit_exact() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("adapter.gguf");
    let adapter = LoraAdapter {
        path: path.clone(),
        architecture: "llama".into(),
        name: Some("test".into()),
        alpha: 16.0,
        modules: vec![
            module("blk.0.attn_q.weight", 4, 16, 16),
            module("blk.0.ffn_down.weight", 2, 32, 16),
            module("blk.1.attn_v.weight", 8, 16, 8),
            module("output.weight", 3, 16, 40),
        ],
    };
    adapter.write(&path).expect("write");
    let read = LoraAdapter::open(&path).expect("open");
    assert_eq!(read, adapter);
    assert_eq!(read.rank_range(), (2, 8));
}
