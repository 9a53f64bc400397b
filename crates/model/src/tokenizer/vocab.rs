//! The vocabulary as GGUF metadata describes it: token texts, types and scores, the special ids and the BOS/EOS flags, with llama.cpp's defaults per model type.

use std::collections::HashMap;

use crate::error::{ModelError, Result};
use crate::gguf::{GgufFile, Value};

/// A token's type, as `tokenizer.ggml.token_type` numbers them (llama.cpp's `llama_token_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenKind {
    Undefined,
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenKind {
    fn from_code(code: i64) -> TokenKind {
        match code {
            1 => TokenKind::Normal,
            2 => TokenKind::Unknown,
            3 => TokenKind::Control,
            4 => TokenKind::UserDefined,
            5 => TokenKind::Unused,
            6 => TokenKind::Byte,
            _ => TokenKind::Undefined,
        }
    }

    /// Control and unknown tokens: matched in the input only when parsing special tokens, rendered only on request.
    pub(crate) fn is_special(self) -> bool {
        matches!(self, TokenKind::Control | TokenKind::Unknown)
    }
}

/// Which tokenization algorithm `tokenizer.ggml.model` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ModelType {
    /// `llama`: SentencePiece-style score-driven merges with `<0xXX>` byte fallback.
    Spm,
    /// `gpt2`: byte-level BPE with ranked merges.
    Bpe,
}

/// Token texts, types and scores, with a reverse index.
pub(crate) struct Vocab {
    pub(crate) tokens: Vec<String>,
    pub(crate) kinds: Vec<TokenKind>,
    /// One score per token (0 when the file has none); SPM merge priorities.
    pub(crate) scores: Vec<f32>,
    pub(crate) token_to_id: HashMap<String, u32>,
}

impl Vocab {
    pub(crate) fn load(file: &GgufFile) -> Result<Vocab> {
        let mut tokens: Vec<String> = file
            .get_string_array("tokenizer.ggml.tokens")?
            .into_iter()
            .map(str::to_owned)
            .collect();
        if tokens.is_empty() {
            return Err(tokenizer_error(file, "`tokenizer.ggml.tokens` is empty"));
        }
        if u32::try_from(tokens.len()).is_err() {
            return Err(tokenizer_error(
                file,
                "`tokenizer.ggml.tokens` has more than 2^32 entries",
            ));
        }
        // As llama.cpp does, so that every id keeps a distinct, non-empty text.
        for (id, text) in tokens.iter_mut().enumerate() {
            if text.is_empty() {
                *text = format!("[EMPTY_{id}]");
            }
        }
        let count = tokens.len();

        let scores = match optional_array(file, "tokenizer.ggml.scores")? {
            None => vec![0.0; count],
            Some(values) => numbers(file, "tokenizer.ggml.scores", values, count, Value::as_f64)?
                .into_iter()
                .map(|v| v as f32)
                .collect(),
        };
        let kinds = match optional_array(file, "tokenizer.ggml.token_type")? {
            None => vec![TokenKind::Normal; count],
            Some(values) => numbers(
                file,
                "tokenizer.ggml.token_type",
                values,
                count,
                Value::as_i64,
            )?
            .into_iter()
            .map(TokenKind::from_code)
            .collect(),
        };

        let mut token_to_id = HashMap::with_capacity(count);
        for (id, text) in tokens.iter().enumerate() {
            // Later duplicates win, as in llama.cpp's `token_to_id[word] = i`; ids fit u32 (checked above).
            token_to_id.insert(text.clone(), id as u32);
        }
        Ok(Vocab {
            tokens,
            kinds,
            scores,
            token_to_id,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.tokens.len()
    }

    pub(crate) fn id(&self, text: &str) -> Option<u32> {
        self.token_to_id.get(text).copied()
    }

    pub(crate) fn kind(&self, id: u32) -> TokenKind {
        self.kinds
            .get(id as usize)
            .copied()
            .unwrap_or(TokenKind::Undefined)
    }
}

/// `Ok(None)` when the key is absent; an error when it is not an array.
fn optional_array<'a>(file: &'a GgufFile, key: &str) -> Result<Option<&'a [Value]>> {
    match file.get(key) {
        None => Ok(None),
        Some(_) => file.get_array(key).map(Some),
    }
}

/// A numeric array with at least one entry per token.
fn numbers<T>(
    file: &GgufFile,
    key: &str,
    values: &[Value],
    count: usize,
    convert: impl Fn(&Value) -> Option<T>,
) -> Result<Vec<T>> {
    if values.len() < count {
        return Err(tokenizer_error(
            file,
            &format!("`{key}` has {} entries for {count} tokens", values.len()),
        ));
    }
    values[..count]
        .iter()
        .map(|value| {
            convert(value).ok_or_else(|| ModelError::WrongType {
                path: file.path().to_path_buf(),
                key: key.to_string(),
                found: value.type_name(),
                expected: "array of numbers",
            })
        })
        .collect()
}

pub(crate) fn tokenizer_error(file: &GgufFile, what: &str) -> ModelError {
    ModelError::Tokenizer(format!("{}: {what}", file.path().display()))
}

/// Special ids and flags after llama.cpp's defaults and the file's overrides.
pub(crate) struct SpecialIds {
    pub(crate) bos: Option<u32>,
    pub(crate) eos: Option<u32>,
    pub(crate) eot: Option<u32>,
    pub(crate) eom: Option<u32>,
    pub(crate) fim_pad: Option<u32>,
    pub(crate) fim_rep: Option<u32>,
    pub(crate) fim_sep: Option<u32>,
    pub(crate) add_bos: bool,
    pub(crate) add_eos: bool,
    pub(crate) add_space_prefix: bool,
    /// Ids found by their text rather than by a key: llama.cpp forces these to control type.
    pub(crate) detected_by_text: Vec<u32>,
}

/// Model-type and pre-tokenizer defaults that the file's keys may override.
pub(crate) struct Defaults {
    pub(crate) bos: Option<u32>,
    pub(crate) eos: Option<u32>,
    pub(crate) add_bos: bool,
    pub(crate) add_eos: bool,
    pub(crate) add_space_prefix: bool,
}

impl SpecialIds {
    pub(crate) fn load(file: &GgufFile, vocab: &Vocab, defaults: Defaults) -> Result<SpecialIds> {
        let in_range = |id: Option<u32>| id.filter(|&id| (id as usize) < vocab.len());
        // A key with an out-of-range id keeps the default, as llama.cpp does (with a warning).
        let id_key = |key: &str, default: Option<u32>| -> Result<Option<u32>> {
            let from_file = file
                .optional(key, GgufFile::get_usize)?
                .and_then(|id| u32::try_from(id).ok())
                .filter(|&id| (id as usize) < vocab.len());
            Ok(from_file.or(in_range(default)))
        };
        let bool_key = |key: &str, default: bool| -> Result<bool> {
            Ok(file.optional(key, GgufFile::get_bool)?.unwrap_or(default))
        };
        let by_text = |texts: &[&str]| texts.iter().find_map(|text| vocab.id(text));
        let mut detected_by_text = Vec::new();
        let mut key_or_text = |key: &str, texts: &[&str]| -> Result<Option<u32>> {
            Ok(match id_key(key, None)? {
                Some(id) => Some(id),
                None => {
                    let found = by_text(texts);
                    detected_by_text.extend(found);
                    found
                }
            })
        };

        let eot = key_or_text("tokenizer.ggml.eot_token_id", EOT_TEXTS)?;
        let eom = key_or_text("tokenizer.ggml.eom_token_id", &["<|eom_id|>"])?;
        let fim_pad = key_or_text(
            "tokenizer.ggml.fim_pad_token_id",
            &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"],
        )?;
        let fim_rep = key_or_text(
            "tokenizer.ggml.fim_rep_token_id",
            &[
                "<|fim_repo|>",
                "<|repo_name|>",
                "<fim-repo>",
                "<REPO>",
                "<reponame>",
            ],
        )?;
        let fim_sep = key_or_text("tokenizer.ggml.fim_sep_token_id", &["<|file_sep|>"])?;
        // Not end-of-generation, but llama.cpp makes these control tokens too when found by text.
        key_or_text(
            "tokenizer.ggml.fim_pre_token_id",
            &[
                "<|fim_prefix|>",
                "<fim-prefix>",
                "<fim_prefix>",
                "<｜fim▁begin｜>",
                "<PRE>",
                "▁<PRE>",
                "<|code_prefix|>",
                "<|prefix|>",
            ],
        )?;
        key_or_text(
            "tokenizer.ggml.fim_suf_token_id",
            &[
                "<|fim_suffix|>",
                "<fim-suffix>",
                "<fim_suffix>",
                "<｜fim▁hole｜>",
                "<SUF>",
                "▁<SUF>",
                "<|code_suffix|>",
                "<|suffix|>",
            ],
        )?;
        key_or_text(
            "tokenizer.ggml.fim_mid_token_id",
            &[
                "<|fim_middle|>",
                "<fim-middle>",
                "<fim_middle>",
                "<｜fim▁end｜>",
                "<MID>",
                "▁<MID>",
                "<|code_middle|>",
                "<|middle|>",
            ],
        )?;
        Ok(SpecialIds {
            bos: id_key("tokenizer.ggml.bos_token_id", defaults.bos)?,
            eos: id_key("tokenizer.ggml.eos_token_id", defaults.eos)?,
            eot,
            eom,
            fim_pad,
            fim_rep,
            fim_sep,
            add_bos: bool_key("tokenizer.ggml.add_bos_token", defaults.add_bos)?,
            add_eos: bool_key("tokenizer.ggml.add_eos_token", defaults.add_eos)?,
            add_space_prefix: bool_key(
                "tokenizer.ggml.add_space_prefix",
                defaults.add_space_prefix,
            )?,
            detected_by_text,
        })
    }
}

/// Texts llama.cpp takes for the end-of-turn token when the file names none.
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];

/// Texts whose tokens end generation wherever they are in the vocabulary (llama.cpp's EOG list).
const END_OF_GENERATION_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// Collects the end-of-generation set as llama.cpp's loader does, and marks the tokens it
/// recognises by text as control tokens (llama.cpp overrides their type the same way).
pub(crate) fn end_of_generation_ids(vocab: &mut Vocab, special: &SpecialIds) -> Vec<u32> {
    let mut ids: Vec<u32> = [special.fim_pad, special.fim_rep, special.fim_sep]
        .into_iter()
        .flatten()
        .collect();
    let mut make_control = Vec::new();
    for text in END_OF_GENERATION_TEXTS {
        if let Some(id) = vocab.id(text) {
            ids.push(id);
            make_control.push(id);
        }
    }
    make_control.extend(special.detected_by_text.iter().copied());
    for id in make_control {
        if let Some(kind) = vocab.kinds.get_mut(id as usize) {
            *kind = TokenKind::Control;
        }
    }
    ids.extend(
        [special.eos, special.eot, special.eom]
            .into_iter()
            .flatten(),
    );
    ids.sort_unstable();
    ids.dedup();

    let text_of = |id: u32| vocab.tokens.get(id as usize).map(String::as_str);
    // gpt-oss / solar-open: `<|end|>` ends a message, not the generation, when these companions exist.
    let has = |wanted: &str| ids.iter().any(|&id| text_of(id) == Some(wanted));
    let end_is_not_final = has("<|end|>")
        && ((has("<|return|>") && (has("<|call|>") || has("<|calls|>")))
            || (has("<|calls|>") && has("<|flush|>")));
    let close_is_normal = has("</s>") && (has("<|tool_response>") || has("<|plamo:eos|>"));
    if end_is_not_final {
        if let Some(end) = vocab.id("<|end|>") {
            ids.retain(|&id| id != end);
            if let Some(kind) = vocab.kinds.get_mut(end as usize) {
                *kind = TokenKind::UserDefined;
            }
        }
    }
    // gemma4 / plamo2: `</s>` is an ordinary token there.
    if close_is_normal {
        if let Some(close) = vocab.id("</s>") {
            ids.retain(|&id| id != close);
            if let Some(kind) = vocab.kinds.get_mut(close as usize) {
                *kind = TokenKind::Normal;
            }
        }
    }
    ids
}
