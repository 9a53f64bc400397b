//! Writes one row's canonical block into its lane of a packed block (layout in `packed.rs`).

use super::super::packed::{Format, Layout};
use super::canonical::Canonical;

/// Writes lane `lane` (of `g`) of one block of `format`. `out` is the block's bytes, zeroed
/// before the first lane is written.
pub(crate) fn write(
    format: Format,
    layout: &Layout,
    g: usize,
    lane: usize,
    block: &Canonical,
    out: &mut [u8],
) {
    let values = format.block();
    out[2 * lane..2 * lane + 2].copy_from_slice(&block.d.to_le_bytes());
    if matches!(
        format,
        Format::Q4_1 | Format::Q5_1 | Format::Q4K | Format::Q5K
    ) {
        let at = layout.m + 2 * lane;
        out[at..at + 2].copy_from_slice(&block.m.to_le_bytes());
    }
    // Pairs of sub-block scales (and minimums), pair u at u * 2g, two bytes per lane.
    let pairs = |out: &mut [u8], at: usize, items: &[i8]| {
        for (u, pair) in items.chunks_exact(2).enumerate() {
            let p = at + u * 2 * g + 2 * lane;
            out[p] = pair[0] as u8;
            out[p + 1] = pair[1] as u8;
        }
    };
    match format {
        Format::Q4K | Format::Q5K => {
            pairs(out, layout.scales, &block.scales[..8]);
            pairs(out, layout.mins, &block.mins);
        }
        Format::Q6K => pairs(out, layout.scales, &block.scales),
        _ => {}
    }
    if format == Format::Q8_0 {
        // Register k: values 4k..4k + 4 of every lane, 4 bytes per lane.
        for k in 0..8 {
            let at = layout.chunk(k) + 4 * lane;
            out[at..at + 4].copy_from_slice(&block.q[4 * k..4 * k + 4]);
        }
        return;
    }
    let high = matches!(format, Format::Q5_0 | Format::Q5_1 | Format::Q5K);
    for (c, v) in block.q[..values].chunks_exact(8).enumerate() {
        let bytes: [u8; 4] = std::array::from_fn(|b| (v[b] & 0x0f) | (v[b + 4] & 0x0f) << 4);
        let at = layout.chunk(c) + 4 * lane;
        out[at..at + 4].copy_from_slice(&bytes);
        if high {
            // Bit plane c / 4 covers 32 values (chunks 4j..4j + 4): register p = (value % 32) / 4
            // keeps its bit 4 at bit p of the lane's byte value % 4.
            let at = layout.plane(c / 4) + 4 * lane;
            for (b, byte) in out[at..at + 4].iter_mut().enumerate() {
                let (lo, hi) = ((v[b] >> 4) & 1, (v[b + 4] >> 4) & 1);
                *byte |= lo << (2 * (c % 4)) | hi << (2 * (c % 4) + 1);
            }
        }
    }
    if format == Format::Q6K {
        // Plane j covers values 16j..16j + 16 (chunks 2j and 2j + 1): register p = value / 4
        // within the plane keeps its bits 4-5 at bits 2p, 2p + 1 of the lane's byte value % 4.
        for (j, v) in block.q.chunks_exact(16).enumerate() {
            let bytes: [u8; 4] = std::array::from_fn(|b| {
                (0..4).fold(0u8, |byte, p| byte | ((v[4 * p + b] >> 4) & 3) << (2 * p))
            });
            let at = layout.plane(j) + 4 * lane;
            out[at..at + 4].copy_from_slice(&bytes);
        }
    }
}
