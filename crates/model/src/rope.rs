//! Rotary position embeddings: per-position cos/sin tables and their application to q and k rows.

use crate::config::{Config, RopeStyle};

/// Inverse frequencies of the rotated dimension pairs, with llama3-style per-pair factors applied.
#[derive(Debug, Clone)]
pub struct Rope {
    inverse_frequencies: Vec<f64>,
    linear_scale: f64,
    style: RopeStyle,
    head_dim: usize,
}

impl Rope {
    /// `frequency_factors` is the content of a `rope_freqs.weight` tensor, one divisor per pair.
    pub fn new(config: &Config, frequency_factors: Option<&[f32]>) -> Rope {
        let pairs = config.rope_dim / 2;
        let inverse_frequencies = (0..pairs)
            .map(|i| {
                let base = (config.rope_base as f64).powf(-2.0 * i as f64 / config.rope_dim as f64);
                match frequency_factors.and_then(|f| f.get(i)) {
                    Some(&factor) if factor > 0.0 => base / factor as f64,
                    _ => base,
                }
            })
            .collect();
        Rope {
            inverse_frequencies,
            linear_scale: config.rope_linear_scale as f64,
            style: config.rope_style,
            head_dim: config.head_dim,
        }
    }

    /// cos and sin for every pair at `position`, written into `table` as [cos..., sin...].
    pub fn table_for(&self, position: usize, table: &mut Vec<f32>) {
        let pairs = self.inverse_frequencies.len();
        table.clear();
        table.resize(2 * pairs, 0.0);
        let scaled = position as f64 / self.linear_scale;
        for (i, inverse) in self.inverse_frequencies.iter().enumerate() {
            let angle = scaled * inverse;
            table[i] = angle.cos() as f32;
            table[pairs + i] = angle.sin() as f32;
        }
    }

    /// Values per position in `tables`: cos then sin of every pair.
    pub fn table_width(&self) -> usize {
        2 * self.inverse_frequencies.len()
    }

    /// Appends the tables of positions `start..start + count` to `tables`, one after the
    /// other (each as `table_for`).
    pub fn extend_tables(&self, start: usize, count: usize, tables: &mut Vec<f32>) {
        let width = self.table_width();
        tables.reserve(count * width);
        let mut one = Vec::with_capacity(width);
        for position in start..start + count {
            self.table_for(position, &mut one);
            tables.extend_from_slice(&one);
        }
    }

    /// Rotates every head of one row (`heads * head_dim` values) in place.
    pub fn apply(&self, row: &mut [f32], table: &[f32]) {
        let pairs = self.inverse_frequencies.len();
        let (cos, sin) = table.split_at(pairs);
        for head in row.chunks_exact_mut(self.head_dim) {
            match self.style {
                RopeStyle::Interleaved => {
                    for i in 0..pairs {
                        let (a, b) = (head[2 * i], head[2 * i + 1]);
                        head[2 * i] = a * cos[i] - b * sin[i];
                        head[2 * i + 1] = a * sin[i] + b * cos[i];
                    }
                }
                RopeStyle::Neox => {
                    for i in 0..pairs {
                        let (a, b) = (head[i], head[i + pairs]);
                        head[i] = a * cos[i] - b * sin[i];
                        head[i + pairs] = a * sin[i] + b * cos[i];
                    }
                }
            }
        }
    }
}
