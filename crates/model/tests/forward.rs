//! Forward-pass properties on seeded random models of several shapes and tensor types: batch invariance, rollback, determinism.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::GgmlDType;
use pipespec_model::config::Architecture;
use pipespec_model::kernels::CpuPath;
use pipespec_model::synthetic::SyntheticSpec;
use pipespec_model::test_support::pool;
use pipespec_model::{LoadOptions, Model, ModelError, Session};

/// Every combination the tests cover: architecture, GQA, tied head, matrix type (every type
/// with a packed kernel, and Q3_K through candle's).
fn specs() -> Vec<SyntheticSpec> {
    let mut specs = Vec::new();
    let dtypes = [
        GgmlDType::F32,
        GgmlDType::F16,
        GgmlDType::BF16,
        GgmlDType::Q4_0,
        GgmlDType::Q4_1,
        GgmlDType::Q5_0,
        GgmlDType::Q5_1,
        GgmlDType::Q8_0,
        GgmlDType::Q4K,
        GgmlDType::Q5K,
        GgmlDType::Q6K,
        GgmlDType::Q3K,
    ];
    for (i, dtype) in dtypes.into_iter().enumerate() {
        for (j, architecture) in [Architecture::Llama, Architecture::Qwen2]
            .into_iter()
            .enumerate()
        {
            let mut spec = SyntheticSpec::tiny((i * 2 + j) as u64);
            spec.architecture = architecture;
            spec.matrix_dtype = dtype;
            if dtype.block_size() == 256 {
                // K-quant rows hold whole super-blocks of 256.
                spec.hidden_size = 256;
                spec.intermediate_size = 512;
            }
            spec.kv_head_count = if (i + j) % 2 == 0 { 2 } else { 4 };
            spec.tied_output = j == 1;
            spec.with_tokenizer = false;
            specs.push(spec);
        }
    }
    specs
}

fn write(spec: &SyntheticSpec, dir: &tempfile::TempDir) -> PathBuf {
    let path = dir.path().join(format!(
        "{:?}-{:?}-{}.gguf",
        spec.architecture, spec.matrix_dtype, spec.seed
    ));
    spec.write(&path).unwrap();
    path
}

fn tokens(seed: u32, count: usize, vocab: usize) -> Vec<u32> {
    (0..count as u32)
        .map(|i| (i * 7919 + seed * 104_729 + 13) % vocab as u32)
        .collect()
}

#[test]
fn a_position_has_the_same_logits_alone_or_inside_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    for spec in specs() {
        let model = Model::load(&write(&spec, &dir)).unwrap();
        let vocab = model.config.vocab_size;
        let input = tokens(spec.seed as u32, 23, vocab);
        for threads in [1, 2] {
            let mut batched = Session::new(model.clone(), 64, pool(threads));
            let all = batched.forward(&input, 0).unwrap().to_vec();
            // The same positions fed in pieces of varied sizes, including one at a time.
            let mut pieces = Session::new(model.clone(), 64, pool(3 - threads));
            let mut start = 0;
            for size in [1, 5, 1, 9, 7] {
                let logits = pieces.forward(&input[start..start + size], start).unwrap();
                assert_eq!(
                    logits,
                    &all[start * vocab..(start + size) * vocab],
                    "{:?} {:?}: rows {start}..{} differ (tolerance 0)",
                    spec.architecture,
                    spec.matrix_dtype,
                    start + size
                );
                start += size;
            }
        }
    }
}

#[test]
fn every_cpu_path_gives_bit_identical_logits() {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<CpuPath> = CpuPath::ALL.into_iter().filter(|p| p.available()).collect();
    for missing in CpuPath::ALL.into_iter().filter(|p| !p.available()) {
        eprintln!("note: this CPU lacks {missing}; its forward pass is not tested here");
    }
    for spec in specs() {
        let path = write(&spec, &dir);
        let input = tokens(spec.seed as u32, 19, spec.vocab_size);
        let logits = |cpu| {
            let model = Model::load_with(&path, LoadOptions { cpu, pack: true }).unwrap();
            let mut session = Session::new(model, 64, pool(2));
            session.forward(&input, 0).unwrap().to_vec()
        };
        let scalar = logits(CpuPath::Scalar);
        for &cpu in &paths {
            let other = logits(cpu);
            let same = other
                .iter()
                .zip(&scalar)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(
                same,
                "{:?} {:?}: {cpu} differs from scalar",
                spec.architecture, spec.matrix_dtype
            );
        }
    }
}

#[test]
fn truncate_then_replay_equals_never_having_gone_there() {
    let dir = tempfile::tempdir().unwrap();
    for spec in specs() {
        let model = Model::load(&write(&spec, &dir)).unwrap();
        let vocab = model.config.vocab_size;
        let prefix = tokens(1, 10, vocab);
        let detour = tokens(2, 8, vocab);
        let continuation = tokens(3, 6, vocab);

        let mut straight = Session::new(model.clone(), 64, pool(2));
        straight.forward(&prefix, 0).unwrap();
        let expected = straight
            .forward(&continuation, prefix.len())
            .unwrap()
            .to_vec();

        let mut rolled = Session::new(model.clone(), 64, pool(2));
        rolled.forward(&prefix, 0).unwrap();
        rolled.forward(&detour, prefix.len()).unwrap();
        rolled.truncate(prefix.len());
        assert_eq!(rolled.len(), prefix.len());
        let replayed = rolled.forward(&continuation, prefix.len()).unwrap();
        assert_eq!(
            replayed,
            expected.as_slice(),
            "{:?} {:?}",
            spec.architecture,
            spec.matrix_dtype
        );
    }
}

#[test]
fn forward_last_equals_the_last_row_of_forward() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SyntheticSpec::tiny(5);
    let model = Model::load(&write(&spec, &dir)).unwrap();
    let vocab = model.config.vocab_size;
    // Longer than one prefill chunk, so chunking is exercised.
    let input = tokens(4, 300, vocab);
    let mut a = Session::new(model.clone(), 512, pool(2));
    let all = a.forward(&input, 0).unwrap().to_vec();
    let mut b = Session::new(model, 512, pool(2));
    let last = b.forward_last(&input, 0).unwrap();
    assert_eq!(last, &all[(input.len() - 1) * vocab..]);
}

#[test]
fn a_second_handle_on_one_file_shares_its_weights() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&SyntheticSpec::tiny(9), &dir);
    let first = Model::load(&path).unwrap();
    let second = Model::load(&path).unwrap();
    assert!(Arc::ptr_eq(first.file(), second.file()));
    // The repacked matrices too: the second handle is the same model.
    assert!(Arc::ptr_eq(&first, &second));
}

#[test]
fn errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SyntheticSpec::tiny(3);
    let path = write(&spec, &dir);
    let model = Model::load(&path).unwrap();
    let mut session = Session::new(model.clone(), 16, pool(1));
    let message = session
        .forward(&[spec.vocab_size as u32], 0)
        .unwrap_err()
        .to_string();
    assert!(message.contains("out of range"), "{message}");
    let message = session.forward(&[1; 17], 0).unwrap_err().to_string();
    assert!(
        message.contains("context") && message.contains("16"),
        "{message}"
    );
    assert!(matches!(
        session.forward(&[], 0),
        Err(ModelError::EmptyInput)
    ));

    let message = Model::load(&dir.path().join("missing.gguf"))
        .unwrap_err()
        .to_string();
    assert!(message.contains("missing.gguf"), "{message}");

    let not_gguf = dir.path().join("not.gguf");
    std::fs::write(&not_gguf, b"this is a text file, not a model").unwrap();
    let message = Model::load(&not_gguf).unwrap_err().to_string();
    assert!(message.contains("not a GGUF"), "{message}");

    let bytes = std::fs::read(&path).unwrap();
    for cut in [6, 40, bytes.len() / 3, bytes.len() - 10] {
        let truncated = dir.path().join(format!("truncated-{cut}.gguf"));
        std::fs::write(&truncated, &bytes[..cut]).unwrap();
        let error = Model::load(&truncated).unwrap_err();
        // Every message says "corrupt or truncated"; the detail, last, must say why: truncation.
        let message = error.to_string();
        assert!(
            matches!(error, ModelError::Corrupt { .. }) && message.ends_with("truncated"),
            "cut {cut}: {message}"
        );
    }

    let arch_key = b"general.architecture";
    let at = bytes
        .windows(arch_key.len())
        .position(|w| w == arch_key)
        .unwrap();
    let mut renamed = bytes.clone();
    let value = at + arch_key.len() + 4 + 8; // type, then the string's length
    renamed[value..value + 5].copy_from_slice(b"gpt9x");
    let unsupported = dir.path().join("gpt9x.gguf");
    std::fs::write(&unsupported, &renamed).unwrap();
    let message = Model::load(&unsupported).unwrap_err().to_string();
    assert!(
        message.contains("unsupported architecture `gpt9x`"),
        "{message}"
    );
}

/// `path` rewritten with tensor `name`'s type id in the directory set to `type_id` (the data
/// is left as it is: the smaller types' bytes still fit inside the F32 data).
fn with_tensor_type(path: &Path, name: &str, type_id: u32, out: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    // A directory entry: name length (u64), name, dimension count (u32), dims (u64 each),
    // type id (u32), offset (u64).
    let mut entry = (name.len() as u64).to_le_bytes().to_vec();
    entry.extend_from_slice(name.as_bytes());
    let at = bytes
        .windows(entry.len())
        .position(|w| w == entry)
        .unwrap_or_else(|| panic!("no directory entry for {name}"));
    let dims_at = at + entry.len();
    let n_dims = u32::from_le_bytes(bytes[dims_at..dims_at + 4].try_into().unwrap()) as usize;
    let type_at = dims_at + 4 + 8 * n_dims;
    assert_eq!(
        u32::from_le_bytes(bytes[type_at..type_at + 4].try_into().unwrap()),
        0,
        "{name} was written as F32"
    );
    bytes[type_at..type_at + 4].copy_from_slice(&type_id.to_le_bytes());
    std::fs::write(out, &bytes).unwrap();
}

#[test]
fn an_unsupported_tensor_type_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SyntheticSpec::tiny(11);
    let path = write(&spec, &dir);
    Model::load(&path).expect("the untouched model loads");
    let tensor = "blk.1.ffn_up.weight";
    // Q8_1 (id 9) is a type GGUF knows but no kernel (nor candle) computes with; 99 is no type.
    for (type_id, type_name) in [(9, "Q8_1"), (99, "ggml type id 99")] {
        let changed = dir.path().join(format!("type-{type_id}.gguf"));
        with_tensor_type(&path, tensor, type_id, &changed);
        let error = Model::load(&changed).unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(&error, ModelError::UnsupportedTensorType { name, dtype, .. }
                if name == tensor && dtype == type_name),
            "{message}"
        );
        assert!(
            message.contains(&format!(
                "tensor `{tensor}` has unsupported type {type_name}"
            )),
            "{message}"
        );
    }
}
