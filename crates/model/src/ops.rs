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

/// The largest of `start` and `f(v)` for every `v` in `values`, as an in-order fold of
/// `f32::max` gives it (`max` ignores NaN, and the order of the others cannot change the
/// largest), from eight running maxima so that the loop vectorizes.
#[inline]
pub fn max_by_lanes(values: &[f32], f: impl Fn(f32) -> f32, start: f32) -> f32 {
    let (chunks, rest) = values.as_chunks::<8>();
    let mut lanes = [start; 8];
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane = lane.max(f(v));
        }
    }
    lanes
        .into_iter()
        .chain(rest.iter().map(|&v| f(v)))
        .fold(start, f32::max)
}

/// `out = x / rms(x) * weight`.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let mean_square = dot(x, x) / x.len() as f32;
    let scale = 1.0 / (mean_square + eps).sqrt();
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = v * scale * w;
    }
}

/// e^x within 2 ulp (Cephes' expf: Cody-Waite reduction by ln 2, a degree-6 polynomial, the
/// exponent set by bits), in f32 operations that give the same result on every target and
/// that loops over it vectorize. Below -87.3 it returns about 1.2e-38 instead of a subnormal.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.336_54, 88.722_83);
    let n = (x * std::f32::consts::LOG2_E).round_ties_even();
    let r = n.mul_add(-0.693_359_4, x);
    let r = n.mul_add(2.121_944_4e-4, r);
    let mut p = 1.987_569_1e-4_f32;
    p = p.mul_add(r, 1.398_199_9e-3);
    p = p.mul_add(r, 8.333_452e-3);
    p = p.mul_add(r, 4.166_579_6e-2);
    p = p.mul_add(r, 1.666_666_5e-1);
    p = p.mul_add(r, 0.5);
    let y = (p * r).mul_add(r, r) + 1.0;
    // y * 2^n by adding n to the exponent. n is integral and within -126..=128, so the bits of
    // n + 1.5 * 2^23 end in n (two's complement, 9 bits), and shifting them by 23 gives exactly
    // `(n as i32 as u32) << 23`: the same value in a form that vectorizes.
    let scaled = f32::from_bits(y.to_bits().wrapping_add((n + 12_582_912.0).to_bits() << 23));
    if x.is_nan() {
        x
    } else {
        scaled
    }
}

/// `gate = silu(gate) * up`, in place.
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + exp(-*g)) * u;
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

#[cfg(test)]
mod tests {
    /// The exponent step written as an integer conversion and shift, as it was before.
    fn exp_by_integer_shift(x: f32) -> f32 {
        let x = x.clamp(-87.336_54, 88.722_83);
        let n = (x * std::f32::consts::LOG2_E).round_ties_even();
        let r = n.mul_add(-0.693_359_4, x);
        let r = n.mul_add(2.121_944_4e-4, r);
        let mut p = 1.987_569_1e-4_f32;
        for c in [
            1.398_199_9e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            1.666_666_5e-1,
            0.5,
        ] {
            p = p.mul_add(r, c);
        }
        let y = (p * r).mul_add(r, r) + 1.0;
        f32::from_bits(y.to_bits().wrapping_add((n as i32 as u32) << 23))
    }

    #[test]
    fn exp_matches_the_integer_shift_form_bit_for_bit() {
        let mut x = -100.0f32;
        while x < 100.0 {
            for v in [x, -x, x * 1e-3] {
                assert_eq!(
                    super::exp(v).to_bits(),
                    exp_by_integer_shift(v).to_bits(),
                    "{v}"
                );
            }
            x += 0.000_731;
        }
        for v in [
            f32::NEG_INFINITY,
            f32::INFINITY,
            f32::MAX,
            f32::MIN,
            0.0,
            -0.0,
        ] {
            assert_eq!(
                super::exp(v).to_bits(),
                exp_by_integer_shift(v).to_bits(),
                "{v}"
            );
        }
        let payload = f32::from_bits(0x7fc0_0001);
        assert!(super::exp(payload).is_nan() && super::exp(-f32::NAN).is_nan());
    }

    #[test]
    fn exp_is_within_two_ulp_of_the_exact_value() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let got = super::exp(x) as f64;
            let exact = (x as f64).exp();
            let ulp = f32::EPSILON as f64 * exact;
            worst = worst.max((got - exact).abs() / ulp);
            x += 0.0137;
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
        assert_eq!(super::exp(0.0), 1.0);
        assert!(super::exp(-1000.0) < 1.2e-38 && super::exp(-1000.0) > 0.0);
        assert!(super::exp(1000.0) > 3.0e38);
        assert!(super::exp(f32::NAN).is_nan());
    }
}
