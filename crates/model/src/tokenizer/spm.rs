//! SentencePiece-style tokenization (`tokenizer.ggml.model == "llama"`) as llama.cpp's `llm_tokenizer_spm` does it: adjacent pieces merge by the score of the token they form, best first, and characters no token covers become `<0xXX>` byte tokens.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::vocab::Vocab;
use crate::error::{ModelError, Result};

/// The word-boundary marker that stands for a space.
pub(crate) const SPACE_MARKER: &str = "\u{2581}";

/// A run of the input, linked to its neighbours; `len == 0` once merged into the left one.
#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// Two adjacent symbols whose concatenation is a token.
struct Bigram {
    left: usize,
    right: usize,
    score: f32,
    /// Byte length when queued: a changed length means a side was merged since.
    len: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    /// Highest score first; on equal scores, the leftmost pair.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

/// The token for each byte value, for byte fallback.
pub(crate) fn byte_tokens(vocab: &Vocab) -> [Option<u32>; 256] {
    let mut table = [None; 256];
    for (byte, slot) in table.iter_mut().enumerate() {
        // `<0xXX>` first; some vocabularies have the raw byte as a token instead.
        *slot = vocab.id(&format!("<0x{byte:02X}>")).or_else(|| {
            u8::try_from(byte)
                .ok()
                .filter(u8::is_ascii)
                .and_then(|b| vocab.id(char::from(b).encode_utf8(&mut [0u8; 4])))
        });
    }
    table
}

/// Appends the ids of `text`, which already has its spaces replaced by `▁`.
pub(crate) fn encode(
    vocab: &Vocab,
    byte_tokens: &[Option<u32>; 256],
    text: &str,
    output: &mut Vec<u32>,
) -> Result<()> {
    let mut symbols: Vec<Symbol> = Vec::with_capacity(text.len());
    for (index, (start, c)) in text.char_indices().enumerate() {
        symbols.push(Symbol {
            start,
            len: c.len_utf8(),
            prev: index.checked_sub(1),
            next: None,
        });
        if index > 0 {
            symbols[index - 1].next = Some(index);
        }
    }

    let mut queue = BinaryHeap::with_capacity(symbols.len());
    let try_add = |queue: &mut BinaryHeap<Bigram>,
                   symbols: &[Symbol],
                   left: Option<usize>,
                   right: Option<usize>| {
        let (Some(left), Some(right)) = (left, right) else {
            return;
        };
        let start = symbols[left].start;
        let len = symbols[left].len + symbols[right].len;
        if let Some(id) = text
            .get(start..start + len)
            .and_then(|piece| vocab.id(piece))
        {
            queue.push(Bigram {
                left,
                right,
                score: vocab.scores.get(id as usize).copied().unwrap_or(0.0),
                len,
            });
        }
    };
    for right in 1..symbols.len() {
        try_add(&mut queue, &symbols, Some(right - 1), Some(right));
    }

    while let Some(bigram) = queue.pop() {
        let (left, right) = (symbols[bigram.left], symbols[bigram.right]);
        if left.len == 0 || right.len == 0 || left.len + right.len != bigram.len {
            continue;
        }
        symbols[bigram.left].len += right.len;
        symbols[bigram.right].len = 0;
        symbols[bigram.left].next = right.next;
        if let Some(next) = right.next {
            symbols[next].prev = Some(bigram.left);
        }
        try_add(&mut queue, &symbols, left.prev, Some(bigram.left));
        try_add(&mut queue, &symbols, Some(bigram.left), right.next);
    }

    let mut current = if symbols.is_empty() { None } else { Some(0) };
    while let Some(index) = current {
        let symbol = symbols[index];
        let piece = &text[symbol.start..symbol.start + symbol.len];
        match vocab.id(piece) {
            Some(id) => output.push(id),
            None => {
                for byte in piece.bytes() {
                    let id = byte_tokens[usize::from(byte)].ok_or_else(|| {
                        ModelError::Tokenizer(format!(
                            "no token for byte 0x{byte:02X} (needed for {piece:?})"
                        ))
                    })?;
                    output.push(id);
                }
            }
        }
        current = symbol.next;
    }
    Ok(())
}
