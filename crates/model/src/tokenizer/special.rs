//! Finding special tokens written in the input (`<|im_start|>`, `<s>`) so that each becomes one id, as llama.cpp's `tokenizer_st_partition` does before running the model on the text between them.

use super::vocab::{TokenKind, Vocab};

/// A piece of the input: text still to tokenize, or a special token found whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fragment<'a> {
    Text(&'a str),
    Token(u32),
}

/// The tokens matched whole in the input, longest text first so that a longer token wins over its prefix.
pub(crate) struct SpecialTokens {
    ids: Vec<u32>,
}

impl SpecialTokens {
    pub(crate) fn new(vocab: &Vocab) -> SpecialTokens {
        let mut ids: Vec<u32> = (0..vocab.len())
            .filter_map(|id| u32::try_from(id).ok())
            .filter(|&id| {
                matches!(
                    vocab.kind(id),
                    TokenKind::Control | TokenKind::UserDefined | TokenKind::Unknown
                )
            })
            .collect();
        ids.sort_by_key(|&id| std::cmp::Reverse(vocab.tokens[id as usize].len()));
        SpecialTokens { ids }
    }

    /// Splits `text` at every occurrence of a special token. With `parse_special == false` only
    /// user-defined tokens are matched (control and unknown tokens are then ordinary text), as in llama.cpp.
    pub(crate) fn partition<'a>(
        &self,
        vocab: &Vocab,
        text: &'a str,
        parse_special: bool,
    ) -> Vec<Fragment<'a>> {
        let mut fragments = Vec::new();
        if text.is_empty() {
            return fragments;
        }
        fragments.push(Fragment::Text(text));
        for &id in &self.ids {
            if !parse_special && vocab.kind(id).is_special() {
                continue;
            }
            let token_text = vocab.tokens[id as usize].as_str();
            // Most special tokens never occur: one scan of the whole input rules them out.
            if !text.contains(token_text) {
                continue;
            }
            let mut split = Vec::with_capacity(fragments.len() + 2);
            for fragment in fragments {
                let Fragment::Text(mut rest) = fragment else {
                    split.push(fragment);
                    continue;
                };
                while let Some(position) = rest.find(token_text) {
                    if position > 0 {
                        split.push(Fragment::Text(&rest[..position]));
                    }
                    split.push(Fragment::Token(id));
                    rest = &rest[position + token_text.len()..];
                }
                if !rest.is_empty() {
                    split.push(Fragment::Text(rest));
                }
            }
            fragments = split;
        }
        fragments
    }
}
