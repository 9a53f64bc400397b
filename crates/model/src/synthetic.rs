//! Seeded random-weight GGUF models of any llama-family shape, with a small byte-level tokenizer: test fixtures and benchmark stand-ins.

use std::path::Path;

use candle_core::quantized::GgmlDType;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::config::Architecture;
use crate::error::Result;
use crate::gguf::Value;
use crate::gguf_writer::{GgufWriter, TensorToWrite};
use crate::quantize::quantize;

/// The shape, tensor type and seed of a synthetic model.
#[derive(Debug, Clone)]
pub struct SyntheticSpec {
    pub architecture: Architecture,
    /// At least 259 when `with_tokenizer` (3 special tokens and 256 byte tokens).
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub layer_count: usize,
    pub head_count: usize,
    pub kv_head_count: usize,
    pub context_length: usize,
    /// Output head tied to the token embedding (no `output.weight`).
    pub tied_output: bool,
    /// Type of every 2-D weight matrix.
    pub matrix_dtype: GgmlDType,
    pub seed: u64,
    pub with_tokenizer: bool,
    /// Multiplies the output head, sharpening (>1) or flattening (<1) the next-token distribution.
    pub logit_scale: f32,
}

impl SyntheticSpec {
    /// A small llama with GQA, an untied head, F32 weights and a tokenizer.
    pub fn tiny(seed: u64) -> Self {
        SyntheticSpec {
            architecture: Architecture::Llama,
            vocab_size: 320,
            hidden_size: 64,
            intermediate_size: 128,
            layer_count: 2,
            head_count: 4,
            kv_head_count: 2,
            context_length: 512,
            tied_output: false,
            matrix_dtype: GgmlDType::F32,
            seed,
            with_tokenizer: true,
            logit_scale: 1.0,
        }
    }

    /// Writes the model to `path`.
    pub fn write(&self, path: &Path) -> Result<()> {
        self.writer()?.write(path)
    }

    fn writer(&self) -> Result<GgufWriter> {
        let mut rng = ChaCha20Rng::seed_from_u64(self.seed);
        let mut w = GgufWriter::new();
        let arch = self.architecture.name();
        let head_dim = self.hidden_size / self.head_count;
        w.set("general.architecture", Value::String(arch.into()));
        w.set(
            "general.name",
            Value::String(format!("synthetic-{arch}-{}", self.seed)),
        );
        let key = |suffix: &str| format!("{arch}.{suffix}");
        w.set(
            &key("context_length"),
            Value::U32(self.context_length as u32),
        );
        w.set(
            &key("embedding_length"),
            Value::U32(self.hidden_size as u32),
        );
        w.set(&key("block_count"), Value::U32(self.layer_count as u32));
        w.set(
            &key("feed_forward_length"),
            Value::U32(self.intermediate_size as u32),
        );
        w.set(
            &key("attention.head_count"),
            Value::U32(self.head_count as u32),
        );
        w.set(
            &key("attention.head_count_kv"),
            Value::U32(self.kv_head_count as u32),
        );
        w.set(&key("attention.layer_norm_rms_epsilon"), Value::F32(1e-5));
        w.set(&key("rope.freq_base"), Value::F32(10_000.0));
        w.set(&key("rope.dimension_count"), Value::U32(head_dim as u32));
        if self.with_tokenizer {
            add_byte_tokenizer(&mut w, self.vocab_size);
        }

        let mut matrix =
            |w: &mut GgufWriter, name: &str, rows: usize, cols: usize, scale: f32| -> Result<()> {
                let bound = scale * (3.0 / cols as f32).sqrt();
                let values: Vec<f32> = (0..rows * cols)
                    .map(|_| rng.random_range(-bound..bound))
                    .collect();
                w.add_tensor(TensorToWrite {
                    name: name.into(),
                    dims: vec![cols, rows],
                    dtype: self.matrix_dtype,
                    bytes: quantize(self.matrix_dtype, &values, cols)?,
                });
                Ok(())
            };
        let vector = |w: &mut GgufWriter, name: &str, values: Vec<f32>| {
            w.add_tensor(TensorToWrite {
                name: name.into(),
                dims: vec![values.len()],
                dtype: GgmlDType::F32,
                bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            });
        };
        let (q_dim, kv_dim) = (self.hidden_size, self.kv_head_count * head_dim);
        matrix(
            &mut w,
            "token_embd.weight",
            self.vocab_size,
            self.hidden_size,
            30.0,
        )?;
        let mut norm_rng = ChaCha20Rng::seed_from_u64(self.seed ^ 0x9e37_79b9);
        let mut norm =
            |n: usize| -> Vec<f32> { (0..n).map(|_| norm_rng.random_range(0.8..1.2)).collect() };
        for layer in 0..self.layer_count {
            let name = |suffix: &str| format!("blk.{layer}.{suffix}");
            vector(&mut w, &name("attn_norm.weight"), norm(self.hidden_size));
            matrix(&mut w, &name("attn_q.weight"), q_dim, self.hidden_size, 2.0)?;
            matrix(
                &mut w,
                &name("attn_k.weight"),
                kv_dim,
                self.hidden_size,
                2.0,
            )?;
            matrix(
                &mut w,
                &name("attn_v.weight"),
                kv_dim,
                self.hidden_size,
                1.0,
            )?;
            if self.architecture == Architecture::Qwen2 {
                vector(
                    &mut w,
                    &name("attn_q.bias"),
                    norm(q_dim).iter().map(|v| v - 1.0).collect(),
                );
                vector(
                    &mut w,
                    &name("attn_k.bias"),
                    norm(kv_dim).iter().map(|v| v - 1.0).collect(),
                );
                vector(
                    &mut w,
                    &name("attn_v.bias"),
                    norm(kv_dim).iter().map(|v| v - 1.0).collect(),
                );
            }
            matrix(
                &mut w,
                &name("attn_output.weight"),
                self.hidden_size,
                q_dim,
                1.0,
            )?;
            vector(&mut w, &name("ffn_norm.weight"), norm(self.hidden_size));
            matrix(
                &mut w,
                &name("ffn_gate.weight"),
                self.intermediate_size,
                self.hidden_size,
                1.0,
            )?;
            matrix(
                &mut w,
                &name("ffn_up.weight"),
                self.intermediate_size,
                self.hidden_size,
                1.0,
            )?;
            matrix(
                &mut w,
                &name("ffn_down.weight"),
                self.hidden_size,
                self.intermediate_size,
                1.0,
            )?;
        }
        vector(&mut w, "output_norm.weight", norm(self.hidden_size));
        if !self.tied_output {
            matrix(
                &mut w,
                "output.weight",
                self.vocab_size,
                self.hidden_size,
                4.0 * self.logit_scale,
            )?;
        }
        Ok(w)
    }
}

/// GPT-2's printable stand-ins for the 256 byte values.
fn byte_to_unicode() -> Vec<char> {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut extra = 0;
    let mut table = vec!['\0'; 256];
    for byte in 0..256u32 {
        let c = if printable.contains(&byte) {
            byte
        } else {
            extra += 1;
            255 + extra
        };
        table[byte as usize] = char::from_u32(c).unwrap_or('?');
    }
    printable.clear();
    table
}

/// A byte-level BPE vocabulary: three specials, the 256 bytes, then merged letter pairs.
fn add_byte_tokenizer(w: &mut GgufWriter, vocab_size: usize) {
    let bytes = byte_to_unicode();
    let mut tokens: Vec<String> = vec![
        "<|endoftext|>".into(),
        "<|im_start|>".into(),
        "<|im_end|>".into(),
    ];
    let mut types = vec![3i32, 3, 3];
    tokens.extend(bytes.iter().map(|c| c.to_string()));
    types.extend(std::iter::repeat_n(1, 256));
    let letters: Vec<char> = "etaoinshrdlucmfwypvbgkqjxz".chars().collect();
    let mut merges = Vec::new();
    'outer: for &a in &letters {
        for &b in &letters {
            if tokens.len() >= vocab_size {
                break 'outer;
            }
            tokens.push(format!("{a}{b}"));
            types.push(1);
            merges.push(format!("{a} {b}"));
        }
    }
    while tokens.len() < vocab_size {
        tokens.push(format!("<unused{}>", tokens.len()));
        types.push(4);
    }
    tokens.truncate(vocab_size);
    types.truncate(vocab_size);
    w.set("tokenizer.ggml.model", Value::String("gpt2".into()));
    w.set("tokenizer.ggml.pre", Value::String("smollm".into()));
    w.set(
        "tokenizer.ggml.tokens",
        Value::Array(tokens.into_iter().map(Value::String).collect()),
    );
    w.set(
        "tokenizer.ggml.token_type",
        Value::Array(types.into_iter().map(Value::I32).collect()),
    );
    w.set(
        "tokenizer.ggml.merges",
        Value::Array(merges.into_iter().map(Value::String).collect()),
    );
    w.set("tokenizer.ggml.bos_token_id", Value::U32(1));
    w.set("tokenizer.ggml.eos_token_id", Value::U32(2));
    w.set("tokenizer.ggml.add_bos_token", Value::Bool(false));
    w.set(
        "tokenizer.chat_template",
        Value::String(
            "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}".into(),
        ),
    );
}

/// A seeded random adapter for `model`: a module of rank `rank` on each of `targets` in every
/// layer (and on the head when `targets` holds `Head` and the model has `output.weight`), A
/// and B uniform in ±`bound`.
pub fn random_adapter(
    model: &crate::Model,
    targets: &[crate::lora::LoraTarget],
    rank: usize,
    alpha: f32,
    bound: f32,
    seed: u64,
) -> crate::LoraAdapter {
    use crate::lora::{LoraModule, LoraTarget};
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut uniform =
        |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-bound..bound)).collect() };
    let layers = (0..model.config.layer_count).map(Some).chain([None]);
    let mut modules = Vec::new();
    for layer in layers {
        for &target in targets {
            if layer.is_none() != (target == LoraTarget::Head) {
                continue;
            }
            let base = target.base_tensor(layer);
            let Some(info) = model.file().tensor(&base) else {
                continue;
            };
            let (n_in, n_out) = (info.dims[0], info.dims[1]);
            let a = uniform(rank * n_in);
            let b = uniform(n_out * rank);
            modules.push(LoraModule {
                base,
                layer,
                target,
                rank,
                n_in,
                n_out,
                a,
                b,
            });
        }
    }
    crate::LoraAdapter {
        path: Default::default(),
        architecture: model.config.architecture.name().into(),
        name: Some(format!("random-{seed}")),
        alpha,
        modules,
    }
}
