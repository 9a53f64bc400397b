//! Byte-level BPE (`tokenizer.ggml.model == "gpt2"`): ranked merges from `tokenizer.ggml.merges` over the pre-tokenizer's words, through the `tokenizers` crate.

use tokenizers::models::bpe::BPE;

use super::pretokenize::{byte_level_pre_tokenizer, PreTokenizerSpec};
use super::vocab::Vocab;
use crate::error::{ModelError, Result};

/// Words seen recently keep their tokens: prompts repeat words a lot.
const WORD_CACHE_CAPACITY: usize = 50_000;

/// Byte-level BPE over one pre-tokenizer.
pub(crate) struct BpeEncoder {
    inner: tokenizers::Tokenizer,
}

impl BpeEncoder {
    /// `merges` are `"left right"` strings in rank order. Merges whose parts or result are not
    /// tokens cannot fire in llama.cpp either (their result would fall back to bytes), so they are left out.
    pub(crate) fn new(
        vocab: &Vocab,
        merges: &[&str],
        spec: &PreTokenizerSpec,
    ) -> Result<BpeEncoder> {
        let mut pairs = Vec::with_capacity(merges.len());
        for merge in merges {
            // llama.cpp splits at the first space after the first byte, so a left part may start with a space.
            let Some(split) = merge.bytes().skip(1).position(|b| b == b' ').map(|i| i + 1) else {
                continue;
            };
            let (left, right) = (&merge[..split], &merge[split + 1..]);
            let joined = format!("{left}{right}");
            if vocab.id(left).is_some() && vocab.id(right).is_some() && vocab.id(&joined).is_some()
            {
                pairs.push((left.to_string(), right.to_string()));
            }
        }
        let token_ids: tokenizers::models::bpe::Vocab = vocab
            .token_to_id
            .iter()
            .map(|(text, &id)| (text.clone(), id))
            .collect();
        let model = BPE::builder()
            .vocab_and_merges(token_ids, pairs)
            .ignore_merges(spec.ignore_merges)
            .cache_capacity(WORD_CACHE_CAPACITY)
            .build()
            .map_err(|e| ModelError::Tokenizer(format!("cannot build the BPE model: {e}")))?;
        let mut inner = tokenizers::Tokenizer::new(model);
        inner.with_pre_tokenizer(Some(byte_level_pre_tokenizer(spec)?));
        Ok(BpeEncoder { inner })
    }

    /// Appends the ids of plain text (no special tokens in it).
    pub(crate) fn encode(&self, text: &str, output: &mut Vec<u32>) -> Result<()> {
        if text.is_empty() {
            return Ok(());
        }
        let encoding = self
            .inner
            .encode_fast(text, false)
            .map_err(|e| ModelError::Tokenizer(format!("BPE encoding failed: {e}")))?;
        output.extend_from_slice(encoding.get_ids());
        Ok(())
    }
}

/// GPT-2's reversible byte-to-character table: printable bytes stand for themselves,
/// the rest are shifted to U+0100 and up. Indexed by character, giving the byte.
pub(crate) struct ByteDecoder {
    byte_of_char: [Option<u8>; 324],
}

impl ByteDecoder {
    pub(crate) fn new() -> ByteDecoder {
        let mut byte_of_char = [None; 324];
        let mut shifted = 0usize;
        for byte in 0..=255u8 {
            let printable = matches!(byte, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
            let char_code = if printable {
                usize::from(byte)
            } else {
                shifted += 1;
                255 + shifted
            };
            byte_of_char[char_code] = Some(byte);
        }
        ByteDecoder { byte_of_char }
    }

    /// The bytes a byte-level token stands for; characters outside the table are kept as their UTF-8.
    pub(crate) fn decode(&self, token: &str, output: &mut Vec<u8>) {
        for c in token.chars() {
            match self.byte_of_char.get(c as usize).copied().flatten() {
                Some(byte) => output.push(byte),
                None => {
                    let mut buffer = [0u8; 4];
                    output.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
                }
            }
        }
    }
}
