//! Incremental detokenization for streaming: ids go in one at a time, complete UTF-8 text comes out, and a multi-byte character split across tokens is held back until it is whole.

use std::sync::Arc;

use super::Tokenizer;
use crate::error::Result;

/// Bytes decoded but not yet returned, and where the stream is.
#[derive(Debug, Clone)]
struct StreamState {
    pending: Vec<u8>,
    render_special: bool,
    /// No token other than a leading BOS has been pushed yet (SPM strips the first token's space prefix).
    at_start: bool,
}

impl StreamState {
    fn new() -> StreamState {
        StreamState {
            pending: Vec::new(),
            render_special: false,
            at_start: true,
        }
    }

    fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> Result<String> {
        tokenizer.append_piece(
            id,
            self.render_special,
            &mut self.at_start,
            &mut self.pending,
        )?;
        Ok(take_complete_utf8(&mut self.pending))
    }

    fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        rest
    }
}

/// Removes and returns the longest prefix of `pending` that is text. Invalid bytes become U+FFFD;
/// a truncated character at the end stays in `pending` for the next token to complete.
fn take_complete_utf8(pending: &mut Vec<u8>) -> String {
    let mut text = String::new();
    let mut consumed = 0;
    loop {
        match std::str::from_utf8(&pending[consumed..]) {
            Ok(valid) => {
                text.push_str(valid);
                consumed = pending.len();
                break;
            }
            Err(error) => {
                let valid_end = consumed + error.valid_up_to();
                // Valid by construction: `valid_up_to` says so.
                text.push_str(&String::from_utf8_lossy(&pending[consumed..valid_end]));
                match error.error_len() {
                    Some(invalid) => {
                        text.push(char::REPLACEMENT_CHARACTER);
                        consumed = valid_end + invalid;
                    }
                    None => {
                        consumed = valid_end;
                        break;
                    }
                }
            }
        }
    }
    pending.drain(..consumed);
    text
}

/// A streaming detokenizer borrowing its tokenizer; see [`OwnedStreamDecoder`] to move one across threads.
#[derive(Debug, Clone)]
pub struct StreamDecoder<'a> {
    tokenizer: &'a Tokenizer,
    state: StreamState,
}

impl<'a> StreamDecoder<'a> {
    pub(crate) fn new(tokenizer: &'a Tokenizer) -> StreamDecoder<'a> {
        StreamDecoder {
            tokenizer,
            state: StreamState::new(),
        }
    }

    /// Whether control tokens (e.g. `<|im_end|>`) appear as their text; off by default.
    pub fn render_special(mut self, render_special: bool) -> Self {
        self.state.render_special = render_special;
        self
    }

    /// Adds one id; returns the text that became complete (possibly empty). Unknown id: `ModelError::UnknownToken`.
    pub fn push(&mut self, id: u32) -> Result<String> {
        self.state.push(self.tokenizer, id)
    }

    /// Returns whatever is still held back, with an incomplete character as U+FFFD.
    pub fn finish(&mut self) -> String {
        self.state.finish()
    }
}

/// A streaming detokenizer that shares ownership of its tokenizer.
#[derive(Debug, Clone)]
pub struct OwnedStreamDecoder {
    tokenizer: Arc<Tokenizer>,
    state: StreamState,
}

impl OwnedStreamDecoder {
    pub fn new(tokenizer: Arc<Tokenizer>) -> OwnedStreamDecoder {
        OwnedStreamDecoder {
            tokenizer,
            state: StreamState::new(),
        }
    }

    /// Whether control tokens (e.g. `<|im_end|>`) appear as their text; off by default.
    pub fn render_special(mut self, render_special: bool) -> Self {
        self.state.render_special = render_special;
        self
    }

    /// Adds one id; returns the text that became complete (possibly empty). Unknown id: `ModelError::UnknownToken`.
    pub fn push(&mut self, id: u32) -> Result<String> {
        self.state.push(&self.tokenizer, id)
    }

    /// Returns whatever is still held back, with an incomplete character as U+FFFD.
    pub fn finish(&mut self) -> String {
        self.state.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::take_complete_utf8;

    #[test]
    fn holds_back_a_split_character_and_replaces_invalid_bytes() {
        let euro = "€".as_bytes();
        let mut pending = vec![b'a', euro[0], euro[1]];
        assert_eq!(take_complete_utf8(&mut pending), "a");
        assert_eq!(pending, &euro[..2]);
        pending.push(euro[2]);
        assert_eq!(take_complete_utf8(&mut pending), "€");
        assert!(pending.is_empty());

        let mut pending = vec![b'x', 0xFF, b'y', 0xE2];
        assert_eq!(take_complete_utf8(&mut pending), "x\u{FFFD}y");
        assert_eq!(pending, vec![0xE2]);
    }
}
