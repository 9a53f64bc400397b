//! The pre-tokenizer per `tokenizer.ggml.pre`: llama.cpp's split regexes, applied in order, each isolating its matches.

use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::SplitDelimiterBehavior;

use crate::error::{ModelError, Result};

/// GPT-2's word split (llama.cpp drops the trailing `|\s+`, which never changes the pieces).
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";

/// Llama 3's split, with the case-insensitive contractions spelled out as llama.cpp adapts them
/// (so that Unicode case folding cannot make `'ſ` a contraction).
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen2's split: Llama 3's with single digits.
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// How one pre-tokenizer family splits text and treats merges.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PreTokenizerSpec {
    pub(crate) regexes: &'static [&'static str],
    /// A word that is already a token is emitted whole, without running merges.
    pub(crate) ignore_merges: bool,
    /// llama.cpp's default for `add_bos_token` when the file does not say.
    pub(crate) add_bos: bool,
    /// This family has no BOS token unless the file names one.
    pub(crate) no_default_bos: bool,
}

const fn spec(regexes: &'static [&'static str]) -> PreTokenizerSpec {
    PreTokenizerSpec {
        regexes,
        ignore_merges: false,
        add_bos: false,
        no_default_bos: false,
    }
}

/// The names llama.cpp accepts for each supported family, for the error message.
pub(crate) const SUPPORTED: &str = "default, llama3/llama-bpe (and aliases), dbrx, smaug-bpe, chatglm-bpe, glm4, gpt-2 (and aliases), \
mpt, olmo, jais, smollm, starcoder, refact, command-r, codeshell, exaone, minerva-7b, qwen2 (and aliases), stablelm2, falcon";

/// The split for a `tokenizer.ggml.pre` value, or `None` when it is not supported.
pub(crate) fn spec_for(pre: &str) -> Option<PreTokenizerSpec> {
    const LLAMA3_ONLY: &[&str] = &[LLAMA3];
    Some(match pre {
        "default" => spec(&[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"]),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "jina-v5-nano" => PreTokenizerSpec {
            ignore_merges: true,
            add_bos: true,
            ..spec(LLAMA3_ONLY)
        },
        "dbrx" | "smaug-bpe" => spec(LLAMA3_ONLY),
        "chatglm-bpe" => PreTokenizerSpec {
            no_default_bos: true,
            ..spec(LLAMA3_ONLY)
        },
        "glm4" | "glm5" => PreTokenizerSpec {
            no_default_bos: true,
            ignore_merges: true,
            ..spec(LLAMA3_ONLY)
        },
        "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es" | "jina-v2-de"
        | "a.x-4.0" | "mellum" | "modern-bert" | "jina-v1-en" | "jina-v2-code" | "roberta-bpe"
        | "exaone4" | "mpt" | "olmo" | "jais" | "trillion" | "granite-docling" => spec(&[GPT2]),
        "starcoder" | "refact" | "command-r" | "smollm" | "codeshell" | "exaone" | "minerva-7b"
        | "mellum2" => spec(&[r"\p{N}", GPT2]),
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "megrez" | "stablelm2" | "hunyuan"
        | "solar-open" | "grok-2" => spec(&[QWEN2]),
        "falcon" => spec(&[r"[\p{P}\$\+<=>\^~\|`]+", GPT2, r"[0-9][0-9][0-9]"]),
        _ => return None,
    })
}

/// The regex splits followed by the byte-to-character mapping of byte-level BPE.
pub(crate) fn byte_level_pre_tokenizer(spec: &PreTokenizerSpec) -> Result<PreTokenizerWrapper> {
    let mut steps = Vec::with_capacity(spec.regexes.len() + 1);
    for regex in spec.regexes {
        let split = Split::new(
            SplitPattern::Regex((*regex).to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| {
            ModelError::Tokenizer(format!("cannot compile pre-tokenizer regex {regex:?}: {e}"))
        })?;
        steps.push(PreTokenizerWrapper::Split(split));
    }
    steps.push(PreTokenizerWrapper::ByteLevel(ByteLevel::new(
        false, false, false,
    )));
    Ok(PreTokenizerWrapper::Sequence(Sequence::new(steps)))
}
