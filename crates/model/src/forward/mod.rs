//! The forward pass as named steps (embedding, attention block, FFN block, output head) over
//! one or more sequences at once: their rows share every matmul, each attends over its own cache.
//!
//! A pass of one sequence is a batch of one, so a position's logits come from the same code
//! whether it runs alone or beside others; the kernels reduce each output element in one fixed
//! order whatever the row count, which makes the two bit-identical.

mod adapters;
mod matmuls;
mod rowwise;

use crate::attention::attention;
use crate::cache::KvCache;
use crate::config::Config;
use crate::error::{ModelError, Result};
use crate::kernels::{self, Input, InputBuffers};
use crate::lora::LoraStack;
use crate::lora::LoraTarget::{self, K, Q, V};
use crate::model::Model;
use crate::ops;
use crate::weights::LayerWeights;
use adapters::add_lora;
use adapters::Rows::{All, Head};
use matmuls::{kernel_error, matmul, matmul_stacked};
use rowwise::{add_rows, rms_norm_rows, zip_rows};

/// One sequence's part of a pass: its cache, the positions it feeds and how many of its last
/// rows get logits.
pub(crate) struct Segment<'a> {
    pub cache: &'a mut KvCache,
    pub start_pos: usize,
    pub rows: usize,
    /// Rows at the end of the segment whose logits are computed (0 for a prefill chunk
    /// that is not the last).
    pub head_rows: usize,
    /// Adapters added to every matrix of this sequence's rows.
    pub lora: Option<&'a LoraStack>,
}

/// Reusable buffers of passes, sized for the largest pass so far.
#[derive(Default)]
pub(crate) struct Scratch {
    x: Vec<f32>,         // (rows, hidden): the residual stream
    normed: Vec<f32>,    // (rows, hidden)
    q: Vec<f32>,         // (rows, q_dim)
    k: Vec<f32>,         // (rows, kv_dim)
    v: Vec<f32>,         // (rows, kv_dim)
    attention: Vec<f32>, // (rows, q_dim)
    projected: Vec<f32>, // (rows, hidden)
    gate: Vec<f32>,      // (rows, intermediate)
    up: Vec<f32>,        // (rows, intermediate)
    logits: Vec<f32>,    // (head rows, vocab)
    rope: Vec<f32>,      // (rows, rope_dim): cos then sin of every new position
    stacked: Vec<f32>,   // (rows, rows of a stacked matrix)
    rows: Vec<RowPlace>, // which segment and position each row is
    input: InputBuffers, // quantized forms of `normed` and friends
}

/// Where a row of a pass belongs: its segment and its position in that sequence.
#[derive(Clone, Copy)]
pub(crate) struct RowPlace {
    pub segment: usize,
    pub position: usize,
}

impl Scratch {
    fn size(&mut self, rows: usize, c: &Config) {
        sized(&mut self.x, rows * c.hidden_size);
        sized(&mut self.normed, rows * c.hidden_size);
        sized(&mut self.q, rows * c.q_dim());
        sized(&mut self.k, rows * c.kv_dim());
        sized(&mut self.v, rows * c.kv_dim());
        sized(&mut self.attention, rows * c.q_dim());
        sized(&mut self.projected, rows * c.hidden_size);
        sized(&mut self.gate, rows * c.intermediate_size);
        sized(&mut self.up, rows * c.intermediate_size);
    }

    /// The first `len` logits of the last pass: (head rows, vocab), segment after segment.
    pub(crate) fn logits(&self, len: usize) -> &[f32] {
        &self.logits[..len]
    }

    /// Every logit the buffer holds (the last pass's first).
    pub(crate) fn all_logits(&self) -> &[f32] {
        &self.logits
    }
}

fn sized(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    buffer.resize(len, 0.0);
    &mut buffer[..len]
}

/// Runs `tokens` (every segment's, one after the other) through `model`, appending each
/// segment's keys and values to its cache from its `start_pos` (positions after it are
/// replaced), and leaves the logits of every segment's head rows in `s`. Segments must have
/// been checked: rows > 0 and `check_append` passed, token ids below the vocabulary size.
/// Returns the number of logits rows.
pub(crate) fn run_pass(
    model: &Model,
    pool: &rayon::ThreadPool,
    s: &mut Scratch,
    tokens: &[u32],
    segments: &mut [Segment],
) -> Result<usize> {
    let c = &model.config;
    let rows: usize = segments.iter().map(|segment| segment.rows).sum();
    if rows == 0 || rows != tokens.len() {
        return Err(ModelError::EmptyInput);
    }
    s.size(rows, c);
    // cos and sin of every new position, once for all layers; each row's segment and position
    s.rope.clear();
    s.rows.clear();
    for (index, segment) in segments.iter_mut().enumerate() {
        segment.cache.truncate(segment.start_pos);
        model
            .rope
            .extend_tables(segment.start_pos, segment.rows, &mut s.rope);
        s.rows.extend((0..segment.rows).map(|row| RowPlace {
            segment: index,
            position: segment.start_pos + row,
        }));
    }
    let adapted = segments.iter().any(|segment| segment.lora.is_some());
    let mut pass = Forward {
        model,
        pool,
        s,
        segments,
        rows,
        adapted,
    };
    pass.embed(tokens)?;
    for (index, layer) in model.weights.layers.iter().enumerate() {
        pass.attention_block(index, layer)?;
        pass.ffn_block(index, layer)?;
    }
    for segment in pass.segments.iter_mut() {
        segment.cache.set_len(segment.start_pos + segment.rows);
    }
    pass.output_head()
}

/// One forward pass: the model, the sequences it feeds and the buffers it works in.
struct Forward<'a, 'c> {
    model: &'a Model,
    pool: &'a rayon::ThreadPool,
    s: &'a mut Scratch,
    segments: &'a mut [Segment<'c>],
    /// Rows of every segment together.
    rows: usize,
    /// Whether any segment has adapters.
    adapted: bool,
}

impl Forward<'_, '_> {
    /// x = the embedding rows of the tokens.
    fn embed(&mut self, tokens: &[u32]) -> Result<()> {
        let hidden = self.model.config.hidden_size;
        let embedding = self
            .model
            .weights
            .token_embedding
            .view()
            .map_err(|e| kernel_error("token embedding", e))?;
        for (row, &t) in self.s.x.chunks_exact_mut(hidden).zip(tokens) {
            kernels::dequantize_row(&embedding, t as usize, row)
                .map_err(|e| kernel_error("token embedding", e))?;
        }
        Ok(())
    }

    /// x += Wo · attention(rope(Wq · norm(x)), rope(Wk · norm(x)), Wv · norm(x)), keys and
    /// values of the new positions appended to the cache.
    fn attention_block(&mut self, index: usize, layer: &LayerWeights) -> Result<()> {
        let c = &self.model.config;
        let (pool, s, rows) = (self.pool, &mut *self.s, self.rows);
        // attention rmsnorm
        rms_norm_rows(
            pool,
            &s.x,
            &layer.attention_norm,
            c.rms_norm_eps,
            &mut s.normed,
        );
        // q, k and v for every new position, from one quantization of the normed rows
        let mut input = Input::new(&s.normed, rows, c.hidden_size, &mut s.input);
        let mut outs = [&mut s.q[..], &mut s.k[..], &mut s.v[..]];
        matmul_stacked(
            pool,
            &layer.qkv,
            &mut input,
            &mut outs,
            &mut s.stacked,
            "attn_qkv",
        )?;
        // adapters (LoRA) on q, k and v
        if self.adapted {
            let layer = Some(index);
            for (target, out) in [(Q, &mut s.q), (K, &mut s.k), (V, &mut s.v)] {
                add_lora(pool, self.segments, All, (layer, target), &s.normed, out);
            }
        }
        // biases (qwen2), RoPE on q and k, k and v into the cache
        // Biases (Qwen2's), then RoPE on q and k, each row with its position's table.
        let (rope, rope_width) = (&self.model.rope, self.model.rope.table_width());
        for (out, width, bias) in [
            (&mut s.q, c.q_dim(), &layer.q_bias),
            (&mut s.k, c.kv_dim(), &layer.k_bias),
        ] {
            zip_rows(pool, out, width, &s.rope, rope_width, |row, table| {
                if let Some(bias) = bias {
                    ops::add_bias(row, bias);
                }
                rope.apply(row, table);
            });
        }
        if let Some(bias) = &layer.v_bias {
            for row in s.v.chunks_exact_mut(c.kv_dim()) {
                ops::add_bias(row, bias);
            }
        }
        for (row, place) in s.rows.iter().enumerate() {
            let k = &s.k[row * c.kv_dim()..(row + 1) * c.kv_dim()];
            let v = &s.v[row * c.kv_dim()..(row + 1) * c.kv_dim()];
            self.segments[place.segment]
                .cache
                .store(index, place.position, k, v);
        }
        // softmax(q k^T / sqrt(d)) v over each sequence's own cache, per head
        attention(
            pool,
            self.segments,
            &s.rows,
            c,
            index,
            &s.q,
            &mut s.attention,
        );
        // output projection, and the residual connection back into x
        let mut input = Input::new(&s.attention, rows, c.q_dim(), &mut s.input);
        matmul(
            pool,
            &layer.attention_output,
            &mut input,
            &mut s.projected,
            "attn_output",
        )?;
        if self.adapted {
            let (x, out) = (&s.attention, &mut s.projected);
            add_lora(
                pool,
                self.segments,
                All,
                (Some(index), LoraTarget::Output),
                x,
                out,
            );
        }
        add_rows(pool, &mut s.x, &s.projected, c.hidden_size);
        Ok(())
    }

    /// x += Wdown · (silu(Wgate · norm(x)) * Wup · norm(x)).
    fn ffn_block(&mut self, index: usize, layer: &LayerWeights) -> Result<()> {
        let c = &self.model.config;
        let (pool, s, rows) = (self.pool, &mut *self.s, self.rows);
        // ffn rmsnorm
        rms_norm_rows(pool, &s.x, &layer.ffn_norm, c.rms_norm_eps, &mut s.normed);
        // gate and up from one quantization of the normed rows
        let mut input = Input::new(&s.normed, rows, c.hidden_size, &mut s.input);
        let mut outs = [&mut s.gate[..], &mut s.up[..]];
        matmul_stacked(
            pool,
            &layer.gate_up,
            &mut input,
            &mut outs,
            &mut s.stacked,
            "ffn_gate_up",
        )?;
        if self.adapted {
            for (target, out) in [(LoraTarget::Gate, &mut s.gate), (LoraTarget::Up, &mut s.up)] {
                add_lora(
                    pool,
                    self.segments,
                    All,
                    (Some(index), target),
                    &s.normed,
                    out,
                );
            }
        }
        // SwiGLU
        let width = c.intermediate_size;
        zip_rows(pool, &mut s.gate, width, &s.up, width, ops::silu_mul);
        // down projection, and the residual connection back into x
        let mut input = Input::new(&s.gate, rows, c.intermediate_size, &mut s.input);
        matmul(pool, &layer.down, &mut input, &mut s.projected, "ffn_down")?;
        if self.adapted {
            let (x, out) = (&s.gate, &mut s.projected);
            add_lora(
                pool,
                self.segments,
                All,
                (Some(index), LoraTarget::Down),
                x,
                out,
            );
        }
        add_rows(pool, &mut s.x, &s.projected, c.hidden_size);
        Ok(())
    }

    /// logits = Wout · norm(x), for each segment's head rows; returns their count.
    fn output_head(&mut self) -> Result<usize> {
        let c = &self.model.config;
        let (pool, s) = (self.pool, &mut *self.s);
        // final rmsnorm of the head rows, gathered segment after segment
        let mut head_rows = 0;
        let mut first_row = 0;
        for segment in self.segments.iter() {
            let from = (first_row + segment.rows - segment.head_rows) * c.hidden_size;
            let to = (first_row + segment.rows) * c.hidden_size;
            let at = head_rows * c.hidden_size;
            let normed = &mut s.normed[at..at + (to - from)];
            rms_norm_rows(
                pool,
                &s.x[from..to],
                &self.model.weights.output_norm,
                c.rms_norm_eps,
                normed,
            );
            head_rows += segment.head_rows;
            first_row += segment.rows;
        }
        if head_rows == 0 {
            return Ok(0);
        }
        // classifier into logits
        let normed = &s.normed[..head_rows * c.hidden_size];
        let logits = sized(&mut s.logits, head_rows * c.vocab_size);
        let mut input = Input::new(normed, head_rows, c.hidden_size, &mut s.input);
        matmul(
            pool,
            &self.model.weights.output,
            &mut input,
            logits,
            "output",
        )?;
        if self.adapted {
            add_lora(
                pool,
                self.segments,
                Head,
                (None, LoraTarget::Head),
                normed,
                logits,
            );
        }
        Ok(head_rows)
    }
}
