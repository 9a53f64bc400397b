//! Pure verification of a draft block against a verifier's output: greedy (longest argmax match) and exact speculative sampling.

use crate::sampling::{argmax, probabilities, Sampler, SamplingParams};

/// The outcome of verifying a block: how many drafts were accepted, and the token that follows
/// them (the correction at the first rejection, or the bonus token when all were accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub accepted: usize,
    pub next: u32,
}

/// Greedy verification. `logits` holds drafts.len() + 1 rows: row j is the verifier's
/// next-token logits before draft j (row 0 after the last committed token).
pub fn verify_greedy(drafts: &[u32], logits: &[f32], vocab: usize) -> Verdict {
    debug_assert_eq!(logits.len(), (drafts.len() + 1) * vocab);
    for (j, &draft) in drafts.iter().enumerate() {
        let best = argmax(&logits[j * vocab..(j + 1) * vocab]);
        if best != draft {
            return Verdict {
                accepted: j,
                next: best,
            };
        }
    }
    let j = drafts.len();
    Verdict {
        accepted: j,
        next: argmax(&logits[j * vocab..(j + 1) * vocab]),
    }
}

/// Exact speculative sampling. `target` holds drafts.len() + 1 rows of the verifier's warped
/// probabilities (p); `draft_distributions` the rows each draft was drawn from (q), or None when
/// the drafts were chosen deterministically (one-hot q). Draft x is accepted with probability
/// min(1, p(x)/q(x)); the first rejection draws from normalize(max(0, p - q)); when all pass the
/// bonus token is drawn from the last row of p. The result is distributed exactly as p.
pub fn verify_sampling(
    drafts: &[u32],
    draft_distributions: Option<&[f32]>,
    target: &[f32],
    vocab: usize,
    sampler: &mut Sampler,
    residual: &mut Vec<f32>,
) -> Verdict {
    debug_assert_eq!(target.len(), (drafts.len() + 1) * vocab);
    for (j, &draft) in drafts.iter().enumerate() {
        let p_row = &target[j * vocab..(j + 1) * vocab];
        let q_row = draft_distributions.map(|q| &q[j * vocab..(j + 1) * vocab]);
        let x = draft as usize;
        let p = p_row[x] as f64;
        let q = q_row.map_or(1.0, |row| row[x] as f64);
        // u < p/q, written without the division (q may be tiny).
        if sampler.uniform() * q < p {
            continue;
        }
        residual.clear();
        match q_row {
            Some(q_row) => {
                residual.extend(p_row.iter().zip(q_row).map(|(&p, &q)| (p - q).max(0.0)))
            }
            None => {
                residual.extend_from_slice(p_row);
                residual[x] = 0.0;
            }
        }
        // All mass cancelled only through rounding (p == q would have accepted): fall back to p.
        if residual.iter().all(|&r| r <= 0.0) {
            residual.clear();
            residual.extend_from_slice(p_row);
        }
        return Verdict {
            accepted: j,
            next: sampler.draw(residual),
        };
    }
    let j = drafts.len();
    Verdict {
        accepted: j,
        next: sampler.draw(&target[j * vocab..(j + 1) * vocab]),
    }
}

/// Warps each logits row into its sampling distribution (the same warping drafters use).
pub fn warp_rows(logits: &[f32], vocab: usize, params: &SamplingParams, out: &mut Vec<f32>) {
    out.clear();
    let mut row = Vec::with_capacity(vocab);
    for logits_row in logits.chunks_exact(vocab) {
        probabilities(logits_row, params, &mut row);
        out.extend_from_slice(&row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_hot_rows(tokens: &[u32], vocab: usize) -> Vec<f32> {
        let mut rows = vec![0.0; tokens.len() * vocab];
        for (j, &t) in tokens.iter().enumerate() {
            rows[j * vocab + t as usize] = 1.0;
        }
        rows
    }

    #[test]
    fn greedy_accepts_the_longest_matching_run() {
        let logits = one_hot_rows(&[1, 2, 0, 3], 4);
        assert_eq!(
            verify_greedy(&[1, 2, 3], &logits, 4),
            Verdict {
                accepted: 2,
                next: 0
            }
        );
        assert_eq!(
            verify_greedy(&[1, 2, 0], &logits, 4),
            Verdict {
                accepted: 3,
                next: 3
            }
        );
        assert_eq!(
            verify_greedy(&[], &logits[..4], 4),
            Verdict {
                accepted: 0,
                next: 1
            }
        );
    }

    #[test]
    fn sampling_with_one_hot_target_is_greedy() {
        let target = one_hot_rows(&[1, 2, 0, 3], 4);
        let mut sampler = Sampler::new(3);
        let mut residual = Vec::new();
        for _ in 0..100 {
            let verdict =
                verify_sampling(&[1, 2, 3], None, &target, 4, &mut sampler, &mut residual);
            assert_eq!(
                verdict,
                Verdict {
                    accepted: 2,
                    next: 0
                }
            );
        }
    }

    #[test]
    fn one_step_output_is_distributed_as_the_target() {
        // Draft from q, verify against p: the committed first token must follow p.
        let p = [0.5f32, 0.3, 0.2, 0.0];
        let q = [0.1f32, 0.2, 0.3, 0.4];
        let mut target = p.to_vec();
        target.extend_from_slice(&p);
        let mut sampler = Sampler::new(11);
        let mut residual = Vec::new();
        let mut counts = [0usize; 4];
        let draws = 40_000;
        for _ in 0..draws {
            let x = sampler.draw(&q);
            let verdict = verify_sampling(&[x], Some(&q), &target, 4, &mut sampler, &mut residual);
            let first = if verdict.accepted == 1 {
                x
            } else {
                verdict.next
            };
            counts[first as usize] += 1;
        }
        for (count, &p) in counts.iter().zip(&p) {
            let frequency = *count as f64 / draws as f64;
            assert!((frequency - p as f64).abs() < 0.01, "{counts:?} vs {p:?}");
        }
    }
}
