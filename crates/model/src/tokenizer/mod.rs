//! Text to token ids and back, built from a GGUF file's `tokenizer.ggml.*` metadata, giving the ids llama.cpp gives.
//!
//! Byte-level BPE (`gpt2`) models run the pre-tokenizer regexes llama.cpp uses for their
//! `tokenizer.ggml.pre`; SentencePiece-style (`llama`) models merge by token score with byte
//! fallback. Special tokens written in the text are matched whole first, as llama.cpp does.

mod bpe;
mod pretokenize;
mod special;
mod spm;
mod stream;
mod vocab;

use std::fmt;

use bpe::{BpeEncoder, ByteDecoder};
use special::{Fragment, SpecialTokens};
use vocab::{end_of_generation_ids, Defaults, ModelType, SpecialIds, TokenKind, Vocab};

pub use stream::{OwnedStreamDecoder, StreamDecoder};

use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;

/// The algorithm behind the ids.
enum Model {
    Spm {
        byte_tokens: Box<[Option<u32>; 256]>,
    },
    Bpe(Box<BpeEncoder>),
}

/// A tokenizer for one model's vocabulary. `Send + Sync`: share it with `Arc`.
pub struct Tokenizer {
    vocab: Vocab,
    model: Model,
    model_kind: String,
    pre_tokenizer: String,
    special_tokens: SpecialTokens,
    special: SpecialIds,
    end_of_generation_ids: Vec<u32>,
    /// Each token's bytes as it renders with special tokens shown: `pieces[piece_ends[id - 1]..piece_ends[id]]`.
    pieces: Vec<u8>,
    piece_ends: Vec<usize>,
}

impl fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokenizer")
            .field("model_kind", &self.model_kind)
            .field("pre_tokenizer", &self.pre_tokenizer)
            .field("vocab_size", &self.vocab.len())
            .field("bos_id", &self.special.bos)
            .field("eos_id", &self.special.eos)
            .finish()
    }
}

impl Tokenizer {
    /// Builds the tokenizer from `tokenizer.ggml.model`, `.tokens`, `.token_type`, `.scores` (SPM),
    /// `.merges` (BPE), `.pre` and the special-token keys, with llama.cpp's defaults where keys are absent.
    pub fn from_gguf(file: &GgufFile) -> Result<Tokenizer> {
        let model_kind = file.get_str("tokenizer.ggml.model")?.to_string();
        let pre_tokenizer = match file.get("tokenizer.ggml.pre") {
            None => "default".to_string(),
            Some(_) => file.get_str("tokenizer.ggml.pre")?.to_string(),
        };
        let mut vocab = Vocab::load(file)?;

        let (model_type, defaults, model) = match model_kind.as_str() {
            "llama" => {
                let defaults = Defaults {
                    bos: Some(1),
                    eos: Some(2),
                    add_bos: true,
                    add_eos: false,
                    add_space_prefix: true,
                };
                let byte_tokens = Box::new(spm::byte_tokens(&vocab));
                (ModelType::Spm, defaults, Model::Spm { byte_tokens })
            }
            "gpt2" => {
                let spec = pretokenize::spec_for(&pre_tokenizer).ok_or_else(|| {
                    vocab::tokenizer_error(
                        file,
                        &format!(
                            "unsupported pre-tokenizer `tokenizer.ggml.pre` = {pre_tokenizer:?} (supported: {})",
                            pretokenize::SUPPORTED
                        ),
                    )
                })?;
                let merges = file.get_string_array("tokenizer.ggml.merges")?;
                let encoder = BpeEncoder::new(&vocab, &merges, &spec)?;
                let defaults = Defaults {
                    bos: if spec.no_default_bos { None } else { Some(11) },
                    eos: Some(11),
                    add_bos: spec.add_bos,
                    add_eos: false,
                    add_space_prefix: false,
                };
                (ModelType::Bpe, defaults, Model::Bpe(Box::new(encoder)))
            }
            other => {
                return Err(vocab::tokenizer_error(
                    file,
                    &format!("unsupported tokenizer model `tokenizer.ggml.model` = {other:?} (supported: llama, gpt2)"),
                ))
            }
        };

        let special = SpecialIds::load(file, &vocab, defaults)?;
        let end_of_generation_ids = end_of_generation_ids(&mut vocab, &special);
        let special_tokens = SpecialTokens::new(&vocab);
        let (pieces, piece_ends) = render_pieces(&vocab, model_type);
        Ok(Tokenizer {
            vocab,
            model,
            model_kind,
            pre_tokenizer,
            special_tokens,
            special,
            end_of_generation_ids,
            pieces,
            piece_ends,
        })
    }

    /// Text to ids. Special tokens written in the text (e.g. `<|im_start|>`) become single ids.
    /// With `add_special`, BOS and EOS are added where the model asks for them
    /// (`tokenizer.ggml.add_bos_token` / `add_eos_token`, or llama.cpp's defaults).
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        self.encode_with(text, add_special, true)
    }

    /// [`encode`](Self::encode) with llama.cpp's `parse_special` exposed: when false, control tokens
    /// written in the text are tokenized as ordinary text (user-defined tokens still match whole).
    pub fn encode_with(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>> {
        let fragments = self
            .special_tokens
            .partition(&self.vocab, text, parse_special);
        let mut output = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.special.add_bos {
            output.push(self.special.bos.ok_or_else(|| {
                ModelError::Tokenizer(
                    "the model asks for a BOS token (add_bos_token) but has none".to_string(),
                )
            })?);
        }
        match &self.model {
            Model::Spm { byte_tokens } => {
                // llama.cpp gives every text fragment at the start or after a special token its space prefix.
                let mut after_special = true;
                for fragment in fragments {
                    match fragment {
                        Fragment::Text(text) => {
                            let prefix = if self.special.add_space_prefix && after_special {
                                " "
                            } else {
                                ""
                            };
                            let escaped = format!("{prefix}{text}").replace(' ', spm::SPACE_MARKER);
                            spm::encode(&self.vocab, byte_tokens, &escaped, &mut output)?;
                            after_special = false;
                        }
                        Fragment::Token(id) => {
                            output.push(id);
                            after_special = true;
                        }
                    }
                }
            }
            Model::Bpe(encoder) => {
                for fragment in fragments {
                    match fragment {
                        Fragment::Text(text) => encoder.encode(text, &mut output)?,
                        Fragment::Token(id) => output.push(id),
                    }
                }
            }
        }
        if add_special && self.special.add_eos {
            output.push(self.special.eos.ok_or_else(|| {
                ModelError::Tokenizer(
                    "the model asks for an EOS token (add_eos_token) but has none".to_string(),
                )
            })?);
        }
        Ok(output)
    }

    /// Ids to text: each token's text concatenated, bytes joined into UTF-8 (invalid sequences become
    /// U+FFFD). Control tokens render as their text only when `render_special`. With a space prefix
    /// (SPM), the first token after an optional BOS loses its leading space, so that
    /// `decode(encode(x)) == x`. An id outside the vocabulary is `ModelError::UnknownToken`.
    pub fn decode(&self, ids: &[u32], render_special: bool) -> Result<String> {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        let mut at_start = true;
        for &id in ids {
            self.append_piece(id, render_special, &mut at_start, &mut bytes)?;
        }
        Ok(match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
        })
    }

    /// Appends one token's bytes as `decode` renders it.
    pub(crate) fn append_piece(
        &self,
        id: u32,
        render_special: bool,
        at_start: &mut bool,
        output: &mut Vec<u8>,
    ) -> Result<()> {
        let piece = self.piece(id).ok_or(ModelError::UnknownToken {
            id,
            vocab_size: self.vocab.len(),
        })?;
        let kind = self.vocab.kind(id);
        let is_leading_bos = *at_start && Some(id) == self.special.bos;
        if !is_leading_bos
            && std::mem::replace(at_start, false)
            && self.special.add_space_prefix
            && kind == TokenKind::Normal
        {
            output.extend_from_slice(piece.strip_prefix(b" ").unwrap_or(piece));
            return Ok(());
        }
        if render_special || !kind.is_special() {
            output.extend_from_slice(piece);
        }
        Ok(())
    }

    fn piece(&self, id: u32) -> Option<&[u8]> {
        let id = id as usize;
        let end = *self.piece_ends.get(id)?;
        let start = if id == 0 { 0 } else { self.piece_ends[id - 1] };
        Some(&self.pieces[start..end])
    }

    /// A streaming detokenizer (control tokens hidden; see [`StreamDecoder::render_special`]).
    pub fn stream_decoder(&self) -> StreamDecoder<'_> {
        StreamDecoder::new(self)
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.special.bos
    }

    pub fn eos_id(&self) -> Option<u32> {
        self.special.eos
    }

    /// Whether `encode(_, true)` prepends BOS / appends EOS.
    pub fn adds_bos(&self) -> bool {
        self.special.add_bos
    }

    pub fn adds_eos(&self) -> bool {
        self.special.add_eos
    }

    /// The token's text as stored in the vocabulary (byte-level or `▁`-escaped, not decoded).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.vocab.tokens.get(id as usize).map(String::as_str)
    }

    /// Every id that ends generation (EOS, EOT, EOM, and end-of-turn tokens found by text), ascending.
    pub fn end_of_generation_ids(&self) -> &[u32] {
        &self.end_of_generation_ids
    }

    pub fn is_end_of_generation(&self, id: u32) -> bool {
        self.end_of_generation_ids.binary_search(&id).is_ok()
    }

    /// BOS's text for chat templates; empty when the model has none.
    pub fn bos_token_text(&self) -> &str {
        self.special
            .bos
            .and_then(|id| self.token_text(id))
            .unwrap_or("")
    }

    /// EOS's text for chat templates; empty when the model has none.
    pub fn eos_token_text(&self) -> &str {
        self.special
            .eos
            .and_then(|id| self.token_text(id))
            .unwrap_or("")
    }

    /// The vocabulary in id order, to compare two models' vocabularies.
    pub fn tokens(&self) -> &[String] {
        &self.vocab.tokens
    }

    /// `tokenizer.ggml.model`: `llama` or `gpt2`.
    pub fn model_kind(&self) -> &str {
        &self.model_kind
    }

    /// `tokenizer.ggml.pre` (`default` when absent).
    pub fn pre_tokenizer(&self) -> &str {
        &self.pre_tokenizer
    }
}

/// Each token's bytes as llama.cpp's `token_to_piece(special = true)` gives them.
fn render_pieces(vocab: &Vocab, model_type: ModelType) -> (Vec<u8>, Vec<usize>) {
    let byte_decoder = ByteDecoder::new();
    let mut pieces = Vec::with_capacity(vocab.tokens.iter().map(String::len).sum());
    let mut ends = Vec::with_capacity(vocab.len());
    for (text, &kind) in vocab.tokens.iter().zip(&vocab.kinds) {
        match kind {
            TokenKind::Control | TokenKind::Unknown | TokenKind::UserDefined => {
                pieces.extend_from_slice(text.as_bytes())
            }
            TokenKind::Normal => match model_type {
                ModelType::Spm => {
                    pieces.extend_from_slice(text.replace(spm::SPACE_MARKER, " ").as_bytes())
                }
                ModelType::Bpe => byte_decoder.decode(text, &mut pieces),
            },
            TokenKind::Byte => match parse_byte_token(text) {
                Some(byte) => pieces.push(byte),
                None => byte_decoder.decode(text, &mut pieces),
            },
            // llama.cpp renders unused and undefined tokens as nothing.
            TokenKind::Unused | TokenKind::Undefined => {}
        }
        ends.push(pieces.len());
    }
    (pieces, ends)
}

/// `<0xAB>` to 0xAB.
fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Tokenizer>();
        assert_send_sync::<OwnedStreamDecoder>();
    }

    #[test]
    fn byte_tokens_parse() {
        assert_eq!(parse_byte_token("<0x0A>"), Some(0x0A));
        assert_eq!(parse_byte_token("<0xff>"), Some(0xFF));
        assert_eq!(parse_byte_token("<0x1>"), None);
        assert_eq!(parse_byte_token("a"), None);
    }

    #[test]
    fn gpt2_byte_table_round_trips() {
        let decoder = ByteDecoder::new();
        let mut out = Vec::new();
        decoder.decode("Ġhello", &mut out);
        assert_eq!(out, b" hello");
        out.clear();
        decoder.decode("Ċ", &mut out);
        assert_eq!(out, b"\n");
    }
}
