//! The KV cache of one sequence: preallocated to a capacity, indexed by position, so rolling back is lowering a length.

use crate::config::Config;
use crate::error::{ModelError, Result};

/// Keys and values of every layer, laid out (layer, kv_head, position, head_dim) so one head's keys are contiguous.
pub struct KvCache {
    keys: Vec<Vec<f32>>,   // per layer: (kv_head, capacity, head_dim)
    values: Vec<Vec<f32>>, // per layer: (kv_head, capacity, head_dim)
    capacity: usize,
    kv_head_count: usize,
    head_dim: usize,
    len: usize,
}

impl KvCache {
    /// Reserves room for `capacity` positions (pages are touched only as positions fill).
    pub fn new(config: &Config, capacity: usize) -> KvCache {
        let per_layer = config.kv_head_count * capacity * config.head_dim;
        KvCache {
            keys: (0..config.layer_count)
                .map(|_| vec![0.0; per_layer])
                .collect(),
            values: (0..config.layer_count)
                .map(|_| vec![0.0; per_layer])
                .collect(),
            capacity,
            kv_head_count: config.kv_head_count,
            head_dim: config.head_dim,
            len: 0,
        }
    }

    /// Bytes the cache occupies once full.
    pub fn byte_size(&self) -> usize {
        2 * self.keys.len() * self.kv_head_count * self.capacity * self.head_dim * 4
    }

    /// Positions currently held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forgets every position at or after `len`: O(1).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Checks that `count` positions starting at `start` fit and follow what is held.
    pub(crate) fn check_append(&self, start: usize, count: usize) -> Result<()> {
        if start > self.len {
            return Err(ModelError::Kernel(format!(
                "forward at position {start} but the cache holds only {} positions",
                self.len
            )));
        }
        if start + count > self.capacity {
            return Err(ModelError::ContextOverflow {
                needed: start + count,
                capacity: self.capacity,
            });
        }
        Ok(())
    }

    /// Stores the key and value rows (kv_head * head_dim each) of one layer at `position`.
    pub(crate) fn store(&mut self, layer: usize, position: usize, key: &[f32], value: &[f32]) {
        let d = self.head_dim;
        for head in 0..self.kv_head_count {
            let at = (head * self.capacity + position) * d;
            self.keys[layer][at..at + d].copy_from_slice(&key[head * d..(head + 1) * d]);
            self.values[layer][at..at + d].copy_from_slice(&value[head * d..(head + 1) * d]);
        }
    }

    /// Marks positions below `len` as held.
    pub(crate) fn set_len(&mut self, len: usize) {
        self.len = len;
    }

    /// Keys of `head` in `layer` for positions 0..count, as (count, head_dim).
    pub(crate) fn head_keys(&self, layer: usize, head: usize, count: usize) -> &[f32] {
        let at = head * self.capacity * self.head_dim;
        &self.keys[layer][at..at + count * self.head_dim]
    }

    pub(crate) fn head_values(&self, layer: usize, head: usize, count: usize) -> &[f32] {
        let at = head * self.capacity * self.head_dim;
        &self.values[layer][at..at + count * self.head_dim]
    }
}
