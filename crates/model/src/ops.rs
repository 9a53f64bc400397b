//! Row-wise operations of the forward pass, each with a fixed reduction order so results never depend on batch size.

/// A dot product with eight fixed accumulators (vectorizes; same order for the same length).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = a.len() / 8;
    for c in 0..chunks {
        let (x, y) = (&a[c * 8..c * 8 + 8], &b[c * 8..c * 8 + 8]);
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    let mut tail = 0f32;
    for i in chunks * 8..a.len() {
        tail += a[i] * b[i];
    }
    let pairs = [
        lanes[0] + lanes[4],
        lanes[1] + lanes[5],
        lanes[2] + lanes[6],
        lanes[3] + lanes[7],
    ];
    (pairs[0] + pairs[2]) + (pairs[1] + pairs[3]) + tail
}

/// `out = x / rms(x) * weight`.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let mean_square = dot(x, x) / x.len() as f32;
    let scale = 1.0 / (mean_square + eps).sqrt();
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = v * scale * w;
    }
}

/// `rms_norm` of every row of `x` (rows of `weight.len()` values) into the rows of `out`.
pub fn rms_norm_rows(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let width = weight.len();
    for (out, x) in out.chunks_exact_mut(width).zip(x.chunks_exact(width)) {
        rms_norm(x, weight, eps, out);
    }
}

/// `gate = silu(gate) * up`, in place.
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
}

/// `row += bias`.
pub fn add_bias(row: &mut [f32], bias: &[f32]) {
    for (r, &b) in row.iter_mut().zip(bias) {
        *r += b;
    }
}

/// `a += b`.
pub fn add_in_place(a: &mut [f32], b: &[f32]) {
    for (x, &y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

/// Causal attention of the query heads that share one kv head, over `count` cached positions:
/// softmax(q.K / sqrt(d)) V per head. `queries` and `out` are (heads, d); `keys` and `values` (count, d).
/// Every head sees the same operations in the same order whatever the group size or batch.
pub fn attend_group(
    queries: &[f32],
    keys: &[f32],
    values: &[f32],
    count: usize,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    let d = keys.len() / count.max(1);
    let heads = queries.len() / d;
    let scale = 1.0 / (d as f32).sqrt();
    scores.clear();
    scores.resize(heads * count, 0.0);
    for (j, key) in keys.chunks_exact(d).take(count).enumerate() {
        for (h, query) in queries.chunks_exact(d).enumerate() {
            scores[h * count + j] = dot(query, key) * scale;
        }
    }
    let mut inverse_sums = [0f32; 16];
    let mut inverse_sums_heap = Vec::new();
    let inverse_sums: &mut [f32] = if heads <= 16 {
        &mut inverse_sums[..heads]
    } else {
        inverse_sums_heap.resize(heads, 0.0);
        &mut inverse_sums_heap
    };
    for (row, inverse) in scores.chunks_exact_mut(count).zip(inverse_sums.iter_mut()) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0f32;
        for s in row.iter_mut() {
            *s = (*s - max).exp();
            sum += *s;
        }
        *inverse = 1.0 / sum;
    }
    out.fill(0.0);
    for (j, value) in values.chunks_exact(d).take(count).enumerate() {
        for (h, out) in out.chunks_exact_mut(d).enumerate() {
            let weight = scores[h * count + j];
            for (o, &v) in out.iter_mut().zip(value) {
                *o += weight * v;
            }
        }
    }
    for (out, &inverse) in out.chunks_exact_mut(d).zip(inverse_sums.iter()) {
        for o in out.iter_mut() {
            *o *= inverse;
        }
    }
}
