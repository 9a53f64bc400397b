//! The model-free n-gram drafter (prompt lookup): match the sequence's last n tokens earlier in the sequence and propose what followed.

use std::time::Instant;

use crate::error::{DecodeError, Result};
use crate::level::{Drafts, Level};
use crate::metrics::LevelMetrics;
use crate::sampling::{Sampler, SamplingParams};

/// The default range of n, longest first so a more specific match wins. Single-token matches
/// are left out: on SmolLM2 chat and summarization prompts they were accepted 10-20% of the
/// time, and each rejected row costs verification time; from 2 tokens up it is 30-50%.
pub const DEFAULT_NGRAM_MIN: usize = 2;
pub const DEFAULT_NGRAM_MAX: usize = 3;

/// Prompt-lookup drafting over prompt + output so far. Deterministic, so its drafts have a
/// one-hot q; it cannot verify, so it can only be the first level of a chain.
#[derive(Debug, Clone)]
pub struct NgramLevel {
    min: usize,
    max: usize,
    metrics: LevelMetrics,
}

impl NgramLevel {
    /// Matches of length `min..=max`, tried longest first.
    pub fn new(min: usize, max: usize) -> Result<NgramLevel> {
        if min == 0 || min > max {
            return Err(DecodeError::InvalidParameter {
                name: "ngram range",
                bounds: "1 <= min <= max",
                value: format!("{min}..={max}"),
            });
        }
        Ok(NgramLevel {
            min,
            max,
            metrics: LevelMetrics::default(),
        })
    }
}

impl Default for NgramLevel {
    fn default() -> Self {
        NgramLevel {
            min: DEFAULT_NGRAM_MIN,
            max: DEFAULT_NGRAM_MAX,
            metrics: LevelMetrics::default(),
        }
    }
}

/// Up to `count` tokens that followed the most recent earlier occurrence of the sequence's last
/// n tokens, for the longest n in `min..=max` that occurs. The copy may run past the end of the
/// sequence into the proposal itself, which continues a repeating pattern (as LZ77 copies do).
pub fn lookup(sequence: &[u32], min: usize, max: usize, count: usize, out: &mut Vec<u32>) {
    if count == 0 {
        return;
    }
    let len = sequence.len();
    for n in (min..=max).rev() {
        if len <= n {
            continue;
        }
        let key = &sequence[len - n..];
        // Candidate starts, most recent first; the suffix itself (start len - n) is excluded.
        let Some(start) = (0..len - n).rev().find(|&i| &sequence[i..i + n] == key) else {
            continue;
        };
        let first = out.len();
        for k in 0..count {
            let at = start + n + k;
            let token = if at < len {
                sequence[at]
            } else {
                out[first + at - len]
            };
            out.push(token);
        }
        return;
    }
}

impl Level for NgramLevel {
    fn name(&self) -> &str {
        "ngram"
    }

    fn can_verify(&self) -> bool {
        false
    }

    fn vocab_size(&self) -> Option<usize> {
        None
    }

    fn capacity(&self) -> Option<usize> {
        None
    }

    fn prefill(&mut self, _prompt: &[u32]) -> Result<()> {
        Ok(())
    }

    fn logits(&mut self, _sequence: &[u32], _rows: usize) -> Result<&[f32]> {
        Err(DecodeError::InvalidParameter {
            name: "chain",
            bounds: "the n-gram level only as the first level (it proposes, it cannot verify)",
            value: "ngram asked to verify".into(),
        })
    }

    fn draft(
        &mut self,
        sequence: &[u32],
        count: usize,
        _sampling: &SamplingParams,
        _sampler: &mut Sampler,
        drafts: &mut Drafts,
    ) -> Result<()> {
        let start = Instant::now();
        let mut proposal = Vec::with_capacity(count);
        lookup(sequence, self.min, self.max, count, &mut proposal);
        for token in proposal {
            drafts.push(token, None);
        }
        self.metrics.decode_s += start.elapsed().as_secs_f64();
        Ok(())
    }

    fn metrics(&self) -> &LevelMetrics {
        &self.metrics
    }

    fn metrics_mut(&mut self) -> &mut LevelMetrics {
        &mut self.metrics
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn propose(sequence: &[u32], count: usize) -> Vec<u32> {
        let mut out = Vec::new();
        lookup(sequence, 1, 3, count, &mut out);
        out
    }

    #[test]
    fn proposes_what_followed_the_longest_recent_match() {
        // "5 6 7" occurred once, followed by 8 9; "7" alone last occurred before 1.
        assert_eq!(propose(&[5, 6, 7, 8, 9, 7, 1, 5, 6, 7], 2), vec![8, 9]);
        assert_eq!(propose(&[4, 7, 1, 2, 7], 3), vec![1, 2, 7]);
    }

    #[test]
    fn a_repeating_pattern_is_continued_past_the_end() {
        assert_eq!(propose(&[1, 2, 1, 2], 5), vec![1, 2, 1, 2, 1]);
    }

    #[test]
    fn nothing_when_nothing_repeats() {
        assert!(propose(&[1, 2, 3, 4], 4).is_empty());
        assert!(propose(&[1], 4).is_empty());
        assert!(propose(&[1, 1], 0).is_empty());
    }

    #[test]
    fn an_empty_range_is_rejected() {
        assert!(NgramLevel::new(0, 2).is_err());
        assert!(NgramLevel::new(3, 2).is_err());
    }
}
