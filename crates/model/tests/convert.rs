//! `convert` on seeded random models: exact and bounded logits after conversion, k-quant fallbacks, metadata kept, clear errors.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::GgmlDType;
use pipespec_model::convert::{
    convert, parse_target, parse_type, ConvertError, ConvertEvent, ConvertSummary, Target,
    TYPE_NAMES,
};
use pipespec_model::gguf::{GgufFile, Value};
use pipespec_model::synthetic::SyntheticSpec;
use pipespec_model::{Model, Session};

const K_QUANTS: [GgmlDType; 5] = [
    GgmlDType::Q2K,
    GgmlDType::Q3K,
    GgmlDType::Q4K,
    GgmlDType::Q5K,
    GgmlDType::Q6K,
];

/// Every single type `convert` accepts (the `_M` mixes aside).
fn all_targets() -> Vec<GgmlDType> {
    TYPE_NAMES
        .iter()
        .filter_map(|name| match parse_target(name).unwrap() {
            Target::Uniform(dtype) => Some(dtype),
            Target::Medium(_) => None,
        })
        .collect()
}

/// A model whose every row length is a multiple of 256, so no type needs a fallback.
fn wide(seed: u64) -> SyntheticSpec {
    let mut spec = SyntheticSpec::tiny(seed);
    spec.hidden_size = 256;
    spec.intermediate_size = 512;
    spec
}

fn write(spec: &SyntheticSpec, dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.gguf"));
    spec.write(&path).unwrap();
    path
}

/// Converts quietly, returning the summary and every fallback event seen.
fn run(input: &Path, output: &Path, target: GgmlDType) -> (ConvertSummary, Vec<String>) {
    let mut reported = Vec::new();
    let summary = convert(input, output, Target::Uniform(target), &mut |event| {
        if let ConvertEvent::Fallback(fallback) = event {
            reported.push(fallback.name.clone());
        }
    })
    .unwrap();
    (summary, reported)
}

fn logits(path: &Path) -> Vec<f32> {
    let model = Model::load(path).unwrap();
    let vocab = model.config.vocab_size as u32;
    let tokens: Vec<u32> = (0..24u32).map(|i| (i * 7919 + 13) % vocab).collect();
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap(),
    );
    let mut session = Session::new(model, 64, pool);
    session.forward(&tokens, 0).unwrap().to_vec()
}

/// max |a - b| / max |a|.
fn relative_error(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    worst / scale
}

fn tensor_types(path: &Path) -> Vec<(String, GgmlDType)> {
    GgufFile::open(path)
        .unwrap()
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.dtype))
        .collect()
}

#[test]
fn converting_an_f32_model_to_f32_keeps_its_logits_exactly() {
    let dir = tempfile::tempdir().unwrap();
    for (i, spec) in [SyntheticSpec::tiny(1), wide(2)].iter().enumerate() {
        let input = write(spec, dir.path(), &format!("f32-{i}"));
        let output = dir.path().join(format!("f32-{i}-again.gguf"));
        let (summary, fallbacks) = run(&input, &output, GgmlDType::F32);
        assert!(fallbacks.is_empty() && summary.fallbacks.is_empty());
        assert_eq!(
            logits(&output),
            logits(&input),
            "hidden {} (tolerance 0)",
            spec.hidden_size
        );
    }
}

/// Dequantizing F32 is the identity, so converting to T must give the very bytes the synthetic
/// writer encodes as T from the same seeded values: the same model, to the last bit.
#[test]
fn converting_f32_to_a_type_equals_writing_that_type_directly() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(&wide(3), dir.path(), "source");
    for target in all_targets() {
        let output = dir.path().join(format!("converted-{target:?}.gguf"));
        let (summary, fallbacks) = run(&input, &output, target);
        assert!(fallbacks.is_empty(), "{target:?}: {fallbacks:?}");
        let mut direct = wide(3);
        direct.matrix_dtype = target;
        let direct = write(&direct, dir.path(), &format!("direct-{target:?}"));
        let (converted_file, direct_file) = (
            GgufFile::open(&output).unwrap(),
            GgufFile::open(&direct).unwrap(),
        );
        assert_eq!(converted_file.tensors.len(), direct_file.tensors.len());
        for (a, b) in converted_file.tensors.iter().zip(&direct_file.tensors) {
            assert_eq!((&a.name, &a.dims, a.dtype), (&b.name, &b.dims, b.dtype));
            assert!(
                converted_file.tensor_bytes(a) == direct_file.tensor_bytes(b),
                "{target:?}: {}",
                a.name
            );
        }
        assert_eq!(logits(&output), logits(&direct), "{target:?} (tolerance 0)");
        assert_eq!(summary.target, Target::Uniform(target));
        assert!(summary.output_bytes > 0 && summary.tensor_count == converted_file.tensors.len());
    }
}

#[test]
fn f16_and_q8_0_logits_stay_close_to_the_f32_model() {
    let dir = tempfile::tempdir().unwrap();
    // Bounds on max |logit difference| / max |f32 logit|, 3x to 5x the worst these seeds give
    // (F16 6.0e-4; Q8_0 1.7e-2, whose kernel also rounds the activations to 8 bits).
    let bounds = [(GgmlDType::F16, 3e-3), (GgmlDType::Q8_0, 5e-2)];
    for (i, spec) in [SyntheticSpec::tiny(4), wide(5)].iter().enumerate() {
        let input = write(spec, dir.path(), &format!("f32-{i}"));
        let reference = logits(&input);
        for (target, bound) in bounds {
            let output = dir.path().join(format!("{i}-{target:?}.gguf"));
            run(&input, &output, target);
            let error = relative_error(&reference, &logits(&output));
            eprintln!(
                "hidden {} {target:?}: relative logit error {error:.2e}",
                spec.hidden_size
            );
            assert!(
                error > 0.0 && error < bound,
                "hidden {} {target:?}: {error} >= {bound}",
                spec.hidden_size
            );
        }
    }
}

#[test]
fn k_quants_fall_back_on_rows_they_cannot_hold_and_the_model_still_loads() {
    let dir = tempfile::tempdir().unwrap();
    // Rows of 64 (hidden) and 128 (intermediate): every matrix falls back.
    let narrow = write(&SyntheticSpec::tiny(6), dir.path(), "narrow");
    // Rows of 256 except ffn_down's 384: only ffn_down falls back.
    let mut mixed = wide(7);
    mixed.intermediate_size = 384;
    let mixed = write(&mixed, dir.path(), "mixed");
    let expected_fallback = |target| match target {
        GgmlDType::Q2K | GgmlDType::Q3K => GgmlDType::Q4_0,
        GgmlDType::Q4K => GgmlDType::Q5_0,
        GgmlDType::Q5K => GgmlDType::Q5_1,
        _ => GgmlDType::Q8_0,
    };
    for target in K_QUANTS {
        for (input, only_ffn_down) in [(&narrow, false), (&mixed, true)] {
            let output = dir.path().join(format!("{target:?}-{only_ffn_down}.gguf"));
            let (summary, reported) = run(input, &output, target);
            let types = tensor_types(&output);
            let falls_back = |name: &str| !only_ffn_down || name.ends_with("ffn_down.weight");
            let matrices: Vec<&(String, GgmlDType)> =
                types.iter().filter(|(n, _)| !n.contains("norm")).collect();
            let expected: Vec<String> = matrices
                .iter()
                .filter(|(n, _)| falls_back(n))
                .map(|(n, _)| n.clone())
                .collect();
            assert_eq!(reported, expected, "{target:?}");
            assert_eq!(summary.fallbacks.len(), expected.len());
            for fallback in &summary.fallbacks {
                assert_eq!(
                    (fallback.wanted, fallback.used),
                    (target, expected_fallback(target))
                );
                assert!(fallback.row_len % 256 != 0);
            }
            for (name, dtype) in &matrices {
                let want = if falls_back(name) {
                    expected_fallback(target)
                } else {
                    target
                };
                assert_eq!(*dtype, want, "{target:?} {name}");
            }
            let values = logits(&output);
            assert!(values.iter().all(|v| v.is_finite()), "{target:?}");
        }
    }
}

#[test]
fn the_k_quant_medium_mixes_follow_llama_cpp() {
    let dir = tempfile::tempdir().unwrap();
    // 16 layers: Q6_K for attn_v and ffn_down of layers 0, 1 (first eighth), 14, 15 (last
    // eighth) and 4, 7, 10, 13 (every third from the eighth); rows of 256 except ffn_down's
    // 384 (Q6_K falls back to Q8_0, Q4_K to Q5_0 there); the head is tied, so it is the token
    // embedding that gets Q6_K.
    let mut spec = wide(21);
    spec.layer_count = 16;
    spec.intermediate_size = 384;
    spec.tied_output = true;
    let input = write(&spec, dir.path(), "sixteen");
    let more_bits = [0, 1, 4, 7, 10, 13, 14, 15];
    for (name, base, id) in [
        ("q4_k_m", GgmlDType::Q4K, 15),
        ("Q5_K_M", GgmlDType::Q5K, 17),
    ] {
        let target = parse_target(name).unwrap();
        assert_eq!(target, Target::Medium(base));
        let output = dir.path().join(format!("{name}.gguf"));
        let mut quiet = |_: ConvertEvent<'_>| {};
        let summary = convert(&input, &output, target, &mut quiet).unwrap();
        assert_eq!(summary.target.name(), name.to_ascii_uppercase());
        let fallback = |dtype| match dtype {
            GgmlDType::Q6K => GgmlDType::Q8_0,
            GgmlDType::Q4K => GgmlDType::Q5_0,
            _ => GgmlDType::Q5_1,
        };
        for (tensor, dtype) in tensor_types(&output) {
            let layer = tensor
                .strip_prefix("blk.")
                .and_then(|rest| rest.split('.').next())
                .and_then(|n| n.parse::<usize>().ok());
            let sensitive =
                tensor.ends_with("attn_v.weight") || tensor.ends_with("ffn_down.weight");
            let mut want = match layer {
                _ if tensor.contains("norm") => GgmlDType::F32,
                _ if tensor == "token_embd.weight" => GgmlDType::Q6K,
                Some(layer) if sensitive && more_bits.contains(&layer) => GgmlDType::Q6K,
                _ => base,
            };
            if tensor.ends_with("ffn_down.weight") {
                want = fallback(want);
            }
            assert_eq!(dtype, want, "{name} {tensor}");
        }
        let converted = GgufFile::open(&output).unwrap();
        assert_eq!(converted.get("general.file_type"), Some(&Value::U32(id)));
        assert!(logits(&output).iter().all(|v| v.is_finite()));
    }
}

#[test]
fn one_d_tensors_stay_f32_and_a_type_into_itself_is_copied() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = SyntheticSpec::tiny(8);
    spec.matrix_dtype = GgmlDType::Q4_1;
    let input = write(&spec, dir.path(), "q4_1");
    let output = dir.path().join("q4_1-again.gguf");
    let (summary, _) = run(&input, &output, GgmlDType::Q4_1);
    assert_eq!(summary.reencoded_count, 0);
    let (a, b) = (
        GgufFile::open(&input).unwrap(),
        GgufFile::open(&output).unwrap(),
    );
    for (x, y) in a.tensors.iter().zip(&b.tensors) {
        assert_eq!(x.dtype, y.dtype);
        assert!(a.tensor_bytes(x) == b.tensor_bytes(y), "{}", x.name);
    }
    let q8 = dir.path().join("q8_0.gguf");
    run(&input, &q8, GgmlDType::Q8_0);
    for (name, dtype) in tensor_types(&q8) {
        let expected = if name.contains("norm") {
            GgmlDType::F32
        } else {
            GgmlDType::Q8_0
        };
        assert_eq!(dtype, expected, "{name}");
    }
}

#[test]
fn metadata_survives_in_order_with_the_file_type_added() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(&SyntheticSpec::tiny(9), dir.path(), "source");
    let expected_ids = [
        (GgmlDType::F32, 0),
        (GgmlDType::F16, 1),
        (GgmlDType::Q4_0, 2),
        (GgmlDType::Q4_1, 3),
        (GgmlDType::Q8_0, 7),
        (GgmlDType::Q5_0, 8),
        (GgmlDType::Q5_1, 9),
        (GgmlDType::Q2K, 10),
        (GgmlDType::Q3K, 12),
        // Uniform k-quant files are llama.cpp's `_S` ones; `_M` are the mixes.
        (GgmlDType::Q4K, 14),
        (GgmlDType::Q5K, 16),
        (GgmlDType::Q6K, 18),
    ];
    assert_eq!(expected_ids.len(), all_targets().len());
    let source = GgufFile::open(&input).unwrap();
    for (target, id) in expected_ids {
        let output = dir.path().join(format!("{target:?}.gguf"));
        run(&input, &output, target);
        let converted = GgufFile::open(&output).unwrap();
        let mut keys = source.metadata_order.clone();
        keys.extend([
            "general.file_type".to_string(),
            "general.quantized_by".to_string(),
        ]);
        assert_eq!(converted.metadata_order, keys);
        for key in &source.metadata_order {
            assert_eq!(converted.get(key), source.get(key), "{key}");
        }
        assert_eq!(
            converted.get("general.file_type"),
            Some(&Value::U32(id)),
            "{target:?}"
        );
        assert_eq!(
            converted.get_str("general.quantized_by").unwrap(),
            "pipespec convert"
        );
        let tokens = converted.get_string_array("tokenizer.ggml.tokens").unwrap();
        assert_eq!(
            tokens,
            source.get_string_array("tokenizer.ggml.tokens").unwrap()
        );
        assert!(converted
            .get_str("tokenizer.chat_template")
            .unwrap()
            .contains("<|im_start|>"));
        let tokenizer =
            |file: &GgufFile| pipespec_model::tokenizer::Tokenizer::from_gguf(file).unwrap();
        let text = "<|im_start|>the cat sat";
        assert_eq!(
            tokenizer(&converted).encode(text, true).unwrap(),
            tokenizer(&source).encode(text, true).unwrap()
        );
    }
}

#[test]
fn bad_requests_are_clear_errors_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(&SyntheticSpec::tiny(10), dir.path(), "source");
    let before = std::fs::read(&input).unwrap();
    let quiet = &mut |_: ConvertEvent<'_>| {};

    let missing = dir.path().join("missing.gguf");
    let output = dir.path().join("out.gguf");
    let message = convert(&missing, &output, Target::Uniform(GgmlDType::Q8_0), quiet)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("missing.gguf") && message.contains("cannot open"),
        "{message}"
    );

    let sneaky = dir.path().join(".").join("source.gguf");
    for same in [input.clone(), sneaky] {
        let error = convert(&input, &same, Target::Uniform(GgmlDType::Q8_0), quiet).unwrap_err();
        assert!(
            matches!(error, ConvertError::OutputIsInput { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("is the input file"), "{error}");
    }
    assert!(
        std::fs::read(&input).unwrap() == before,
        "the input was changed"
    );

    let message = convert(
        &input,
        &dir.path().join("no-such-dir/out.gguf"),
        Target::Uniform(GgmlDType::Q8_0),
        quiet,
    )
    .unwrap_err()
    .to_string();
    assert!(message.contains("no-such-dir"), "{message}");

    for name in ["q4_k_m", "int8", ""] {
        let message = parse_type(name).unwrap_err().to_string();
        assert!(
            message.contains(&format!("`{name}`")) && message.contains("q8_0, q6_k"),
            "{message}"
        );
    }
    assert_eq!(parse_type("Q4_K").unwrap(), GgmlDType::Q4K);
    let message = convert(&input, &output, Target::Uniform(GgmlDType::Q8_1), quiet)
        .unwrap_err()
        .to_string();
    assert!(message.contains("Q8_1"), "{message}");
    assert!(!output.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
}
