//! The KV cache of one sequence: preallocated to a capacity, indexed by position, so rolling back is lowering a length.

use crate::config::Config;
use crate::error::{ModelError, Result};

/// Positions per key panel: keys are stored transposed, 8 positions to a panel of
/// (head_dim, 8), so that the scores of 8 positions come from one vector FMA per dimension.
pub(crate) const KEY_PANEL: usize = 8;

/// Keys and values of every layer: keys (layer, kv_head, position / 8, head_dim, 8), values
/// (layer, kv_head, position, head_dim), so one head's keys and values are contiguous.
pub struct KvCache {
    keys: Vec<Vec<f32>>,   // per layer: (kv_head, panels, head_dim, 8)
    values: Vec<Vec<f32>>, // per layer: (kv_head, capacity, head_dim)
    capacity: usize,
    panels: usize,
    kv_head_count: usize,
    head_dim: usize,
    len: usize,
}

impl KvCache {
    /// Reserves room for `capacity` positions (pages are touched only as positions fill).
    pub fn new(config: &Config, capacity: usize) -> KvCache {
        let panels = capacity.div_ceil(KEY_PANEL);
        let (heads, d) = (config.kv_head_count, config.head_dim);
        KvCache {
            keys: (0..config.layer_count)
                .map(|_| vec![0.0; heads * panels * KEY_PANEL * d])
                .collect(),
            values: (0..config.layer_count)
                .map(|_| vec![0.0; heads * capacity * d])
                .collect(),
            capacity,
            panels,
            kv_head_count: heads,
            head_dim: d,
            len: 0,
        }
    }

    /// Bytes the cache occupies once full.
    pub fn byte_size(&self) -> usize {
        full_bytes(
            self.keys.len(),
            self.kv_head_count,
            self.head_dim,
            self.capacity,
        )
    }

    /// Bytes a cache of `capacity` positions for `config` occupies once full, without making one.
    pub fn byte_size_for(config: &Config, capacity: usize) -> usize {
        full_bytes(
            config.layer_count,
            config.kv_head_count,
            config.head_dim,
            capacity,
        )
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
            return Err(ModelError::PositionGap {
                start,
                held: self.len,
            });
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
        let (panel, lane) = (position / KEY_PANEL, position % KEY_PANEL);
        for head in 0..self.kv_head_count {
            let keys = &mut self.keys[layer][(head * self.panels + panel) * d * KEY_PANEL..];
            for (i, &k) in key[head * d..(head + 1) * d].iter().enumerate() {
                keys[i * KEY_PANEL + lane] = k;
            }
            let at = (head * self.capacity + position) * d;
            self.values[layer][at..at + d].copy_from_slice(&value[head * d..(head + 1) * d]);
        }
    }

    /// Marks positions below `len` as held.
    pub(crate) fn set_len(&mut self, len: usize) {
        self.len = len;
    }

    /// Key panels of `head` in `layer` covering positions 0..count, as (panels, head_dim, 8);
    /// lanes past `count` in the last panel hold stale values.
    pub(crate) fn head_keys(&self, layer: usize, head: usize, count: usize) -> &[f32] {
        let panel = self.head_dim * KEY_PANEL;
        let at = head * self.panels * panel;
        &self.keys[layer][at..at + count.div_ceil(KEY_PANEL) * panel]
    }

    /// Values of `head` in `layer` for positions 0..count, as (count, head_dim).
    pub(crate) fn head_values(&self, layer: usize, head: usize, count: usize) -> &[f32] {
        let at = head * self.capacity * self.head_dim;
        &self.values[layer][at..at + count * self.head_dim]
    }
}

/// Bytes of a full cache: keys padded to whole panels of `KEY_PANEL` positions, values unpadded,
/// f32, per layer and kv head.
fn full_bytes(layers: usize, kv_heads: usize, head_dim: usize, capacity: usize) -> usize {
    let panels = capacity.div_ceil(KEY_PANEL);
    layers * kv_heads * head_dim * (capacity + panels * KEY_PANEL) * 4
}
