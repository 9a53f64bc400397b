//! The differentiable forward pass: the llama decoder on a packed batch (examples one after
//! another, each attending to itself only), LoRA added beside each frozen matrix
//! (`y = W·x + scale·B·(A·x)`), and the mean cross-entropy of the label tokens. The blocks
//! ([`blocks`]) are the cloud's part of a split run, the head ([`head`]) the device's.

pub mod blocks;
pub mod head;

use candle_core::{DType, Tensor};

use crate::data::Example;
use crate::error::{invalid, Result};
use crate::ops::attention::Segment;

/// Token sequences packed one after another (no padding), with the rows whose next token is a
/// label.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBatch {
    /// Every example's ids, one after another.
    pub ids: Vec<u32>,
    /// Each example's rows in `ids`.
    pub segments: Vec<Segment>,
    /// Rows whose output predicts a label.
    pub positions: Vec<u32>,
    /// The label each of `positions` predicts.
    pub labels: Vec<u32>,
}

impl TokenBatch {
    /// `examples` packed in order; every label token is predicted from the row before it.
    pub fn new(examples: &[&Example]) -> Result<TokenBatch> {
        let mut batch = TokenBatch {
            ids: Vec::new(),
            segments: Vec::with_capacity(examples.len()),
            positions: Vec::new(),
            labels: Vec::new(),
        };
        for example in examples {
            let (start, tokens) = (batch.ids.len(), &example.tokens);
            batch.ids.extend_from_slice(tokens);
            batch.segments.push(Segment {
                start,
                len: tokens.len(),
            });
            for position in 0..tokens.len().saturating_sub(1) {
                if example.label[position + 1] {
                    batch.positions.push((start + position) as u32);
                    batch.labels.push(tokens[position + 1]);
                }
            }
        }
        if batch.labels.is_empty() {
            return Err(invalid(
                "a batch holds no label token (each needs a token before it)",
            ));
        }
        Ok(batch)
    }

    /// Tokens in the batch (none is padding).
    pub fn tokens(&self) -> usize {
        self.ids.len()
    }
}

/// The loss as a number.
pub fn scalar(loss: &Tensor) -> Result<f64> {
    Ok(loss.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}
