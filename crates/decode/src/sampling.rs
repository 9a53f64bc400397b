//! Turning logits into a probability distribution (temperature, top-k, top-p) and drawing tokens from it with a seeded ChaCha generator.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::error::{DecodeError, Result};

/// How logits become a distribution. Temperature 0 means greedy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingParams {
    pub temperature: f32,
    /// Keep only the k most likely tokens; 0 keeps all.
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose mass reaches top_p; 1 keeps all.
    pub top_p: f32,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams::greedy()
    }
}

impl SamplingParams {
    pub fn greedy() -> Self {
        SamplingParams {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
        }
    }

    /// Checks the ranges; the error names the parameter, its bounds and the value given.
    pub fn validate(&self) -> Result<()> {
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return Err(DecodeError::InvalidParameter {
                name: "temperature",
                bounds: "a finite number >= 0 (0 = greedy)",
                value: self.temperature.to_string(),
            });
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(DecodeError::InvalidParameter {
                name: "top_p",
                bounds: "in (0, 1]",
                value: self.top_p.to_string(),
            });
        }
        Ok(())
    }

    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }
}

/// The index of the largest logit (the lowest index among equals).
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    let mut best_value = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > best_value {
            best = i;
            best_value = v;
        }
    }
    best as u32
}

/// The warped distribution over the whole vocabulary: one-hot at the argmax when greedy.
pub fn probabilities(logits: &[f32], params: &SamplingParams, out: &mut Vec<f32>) {
    out.clear();
    out.resize(logits.len(), 0.0);
    if logits.is_empty() {
        return;
    }
    if params.is_greedy() {
        out[argmax(logits) as usize] = 1.0;
        return;
    }
    let inverse_temperature = 1.0 / params.temperature as f64;
    // Candidates sorted by logit, descending (ties by index), cut to top-k.
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    let by_logit = |a: &u32, b: &u32| {
        logits[*b as usize]
            .total_cmp(&logits[*a as usize])
            .then(a.cmp(b))
    };
    if params.top_k > 0 && params.top_k < order.len() {
        order.select_nth_unstable_by(params.top_k - 1, by_logit);
        order.truncate(params.top_k);
    }
    order.sort_unstable_by(by_logit);
    let max = logits[order[0] as usize] as f64;
    let weights: Vec<f64> = order
        .iter()
        .map(|&i| ((logits[i as usize] as f64 - max) * inverse_temperature).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut kept = weights.len();
    if params.top_p < 1.0 {
        let target = params.top_p as f64 * total;
        let mut mass = 0.0;
        for (n, w) in weights.iter().enumerate() {
            mass += w;
            if mass >= target {
                kept = n + 1;
                break;
            }
        }
    }
    let kept_total: f64 = weights[..kept].iter().sum();
    for (&i, &w) in order[..kept].iter().zip(&weights[..kept]) {
        out[i as usize] = (w / kept_total) as f32;
    }
}

/// A seeded source of draws; the same seed reproduces the same choices.
pub struct Sampler {
    rng: ChaCha20Rng,
}

impl Sampler {
    pub fn new(seed: u64) -> Self {
        Sampler {
            rng: ChaCha20Rng::seed_from_u64(seed),
        }
    }

    /// A uniform draw in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.rng.random::<f64>()
    }

    /// Draws an index from `probs` (which need not sum exactly to 1).
    pub fn draw(&mut self, probs: &[f32]) -> u32 {
        let total: f64 = probs.iter().map(|&p| p as f64).sum();
        let target = self.uniform() * total;
        let mut mass = 0.0;
        let mut last_nonzero = 0;
        for (i, &p) in probs.iter().enumerate() {
            if p > 0.0 {
                mass += p as f64;
                last_nonzero = i;
                if mass > target {
                    return i as u32;
                }
            }
        }
        last_nonzero as u32
    }

    /// Picks the next token from logits; `probs` receives the distribution it was drawn from.
    pub fn sample(&mut self, logits: &[f32], params: &SamplingParams, probs: &mut Vec<f32>) -> u32 {
        if params.is_greedy() {
            let token = argmax(logits);
            probs.clear();
            probs.resize(logits.len(), 0.0);
            probs[token as usize] = 1.0;
            return token;
        }
        probabilities(logits, params, probs);
        self.draw(probs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_is_one_hot_at_argmax() {
        let mut p = Vec::new();
        probabilities(&[0.1, 3.0, 3.0, -1.0], &SamplingParams::greedy(), &mut p);
        assert_eq!(p, vec![0.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn temperature_one_is_softmax() {
        let logits = [1.0f32, 2.0, 3.0];
        let mut p = Vec::new();
        let params = SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
        };
        probabilities(&logits, &params, &mut p);
        let z: f64 = logits.iter().map(|&l| (l as f64).exp()).sum();
        for (pi, &l) in p.iter().zip(&logits) {
            assert!((*pi as f64 - (l as f64).exp() / z).abs() < 1e-6);
        }
    }

    #[test]
    fn top_k_and_top_p_cut_the_tail() {
        let logits = [0.0f32, 1.0, 2.0, 3.0];
        let mut p = Vec::new();
        probabilities(
            &logits,
            &SamplingParams {
                temperature: 1.0,
                top_k: 2,
                top_p: 1.0,
            },
            &mut p,
        );
        assert_eq!((p[0], p[1]), (0.0, 0.0));
        assert!((p[2] + p[3] - 1.0).abs() < 1e-6 && p[3] > p[2]);
        // The top token alone holds ~64% of the mass: top_p 0.5 keeps only it.
        probabilities(
            &logits,
            &SamplingParams {
                temperature: 1.0,
                top_k: 0,
                top_p: 0.5,
            },
            &mut p,
        );
        assert_eq!(p, vec![0.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn invalid_parameters_are_named() {
        let bad = SamplingParams {
            temperature: -0.5,
            top_k: 0,
            top_p: 1.0,
        };
        let message = bad.validate().unwrap_err().to_string();
        assert!(
            message.contains("temperature") && message.contains("-0.5"),
            "{message}"
        );
        let bad = SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.0,
        };
        assert!(bad.validate().unwrap_err().to_string().contains("top_p"));
    }

    #[test]
    fn same_seed_same_draws_and_frequencies_match() {
        let probs = [0.1f32, 0.2, 0.7];
        let mut a = Sampler::new(7);
        let mut b = Sampler::new(7);
        let draws: Vec<u32> = (0..20_000).map(|_| a.draw(&probs)).collect();
        assert!(draws.iter().all(|&d| d == b.draw(&probs)));
        for (i, &p) in probs.iter().enumerate() {
            let freq = draws.iter().filter(|&&d| d == i as u32).count() as f64 / draws.len() as f64;
            assert!((freq - p as f64).abs() < 0.015, "token {i}: {freq} vs {p}");
        }
    }
}
