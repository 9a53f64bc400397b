//! GGUF blocks decoded into one plain form the packer writes from: unsigned quants (Q8_0:
//! signed, as bytes), f16 scale bits and the K-quants' sub-block scales and minimums.

use super::super::packed::Format;

/// One block of one row.
#[derive(Clone)]
pub(crate) struct Canonical {
    /// Quant of every value: 0..16, 0..32 or 0..64 (Q8_0: i8 bits).
    pub(crate) q: [u8; 256],
    /// f16 bits of the scale `d`.
    pub(crate) d: u16,
    /// f16 bits of the minimum (Q4_1, Q5_1) or of `dmin` (Q4_K, Q5_K).
    pub(crate) m: u16,
    /// Sub-block scales: 8 of 32 values (Q4_K, Q5_K) or 16 of 16 values (Q6_K).
    pub(crate) scales: [i8; 16],
    /// Sub-block minimums of the K-quants, 8 of 32 values.
    pub(crate) mins: [i8; 8],
}

fn half(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

/// ggml's 6-bit scale and minimum of sub-block `j` from the 12 packed bytes of Q4_K and Q5_K.
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

impl Default for Canonical {
    fn default() -> Self {
        Canonical {
            q: [0; 256],
            d: 0,
            m: 0,
            scales: [0; 16],
            mins: [0; 8],
        }
    }
}

/// Decodes one GGUF block of `format` (`source` is exactly its bytes) into `c`, overwriting
/// every field the format uses.
#[inline]
pub(crate) fn decode(format: Format, source: &[u8], c: &mut Canonical) {
    // 32-value formats: byte j of `qs` holds value j (low nibble) and j + 16 (high nibble);
    // bit v of `qh` is bit 4 of value v.
    let nibbles32 = |c: &mut Canonical, qs: &[u8], qh: Option<u32>| {
        for (j, &byte) in qs.iter().enumerate().take(16) {
            let high = |v: usize| qh.map_or(0, |h| (((h >> v) & 1) << 4) as u8);
            c.q[j] = (byte & 0x0f) | high(j);
            c.q[j + 16] = (byte >> 4) | high(j + 16);
        }
    };
    let qh = |at: usize| {
        u32::from_le_bytes([source[at], source[at + 1], source[at + 2], source[at + 3]])
    };
    match format {
        Format::Q4_0 => {
            c.d = half(source, 0);
            nibbles32(c, &source[2..18], None);
        }
        Format::Q4_1 => {
            c.d = half(source, 0);
            c.m = half(source, 2);
            nibbles32(c, &source[4..20], None);
        }
        Format::Q5_0 => {
            c.d = half(source, 0);
            nibbles32(c, &source[6..22], Some(qh(2)));
        }
        Format::Q5_1 => {
            c.d = half(source, 0);
            c.m = half(source, 2);
            nibbles32(c, &source[8..24], Some(qh(4)));
        }
        Format::Q8_0 => {
            c.d = half(source, 0);
            c.q[..32].copy_from_slice(&source[2..34]);
        }
        Format::Q4K | Format::Q5K => {
            c.d = half(source, 0);
            c.m = half(source, 2);
            let packed = &source[4..16];
            for j in 0..8 {
                let (scale, min) = scale_min_k4(j, packed);
                c.scales[j] = scale as i8;
                c.mins[j] = min as i8;
            }
            let (qh, qs) = if format == Format::Q5K {
                (Some(&source[16..48]), &source[48..176])
            } else {
                (None, &source[16..144])
            };
            // 64 values per 32 bytes: low nibbles first, then high nibbles; Q5_K's bit 4 of
            // value 64j + l is bit 2j of qh[l], of value 64j + 32 + l bit 2j + 1.
            for j in 0..4 {
                for l in 0..32 {
                    let byte = qs[32 * j + l];
                    let high = |bit: usize| qh.map_or(0, |h| ((h[l] >> bit) & 1) << 4);
                    c.q[64 * j + l] = (byte & 0x0f) | high(2 * j);
                    c.q[64 * j + 32 + l] = (byte >> 4) | high(2 * j + 1);
                }
            }
        }
        Format::Q6K => {
            let (ql, qh) = (&source[..128], &source[128..192]);
            for (j, s) in c.scales.iter_mut().enumerate() {
                *s = source[192 + j] as i8;
            }
            c.d = half(source, 208);
            for n in 0..2 {
                let (ql, qh) = (&ql[64 * n..], &qh[32 * n..]);
                for l in 0..32 {
                    let v = &mut c.q[128 * n..];
                    v[l] = (ql[l] & 0x0f) | ((qh[l] & 3) << 4);
                    v[l + 32] = (ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4);
                    v[l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
                    v[l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
                }
            }
        }
        Format::F32 | Format::F16 | Format::BF16 => {}
    }
}
