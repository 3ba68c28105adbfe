//! Exact (erf) GELU, `x · Φ(x)`, as HF's BERT computes it.
//!
//! On burn's CPU backend (flex) outside training, the activation is computed here with a
//! branch-free erf that the compiler vectorises: flex evaluates `libm::erff` one element at a
//! time, which took a fifth of all-MiniLM-L6-v2's encoder time. Everywhere else (GPU backends,
//! autodiff) burn's own `gelu` is used.

use burn::prelude::*;
use burn::tensor::activation::gelu as burn_gelu;

pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "cpu")]
    {
        let device = x.device();
        if x.dtype() == burn::tensor::DType::F32 && crate::backend::is_plain_cpu(&device) {
            let shape = x.shape();
            let mut values = x
                .into_data()
                .try_into_vec::<f32>()
                .expect("dtype checked to be f32 above");
            gelu_in_place(&mut values);
            return Tensor::from_data(TensorData::new(values, shape), &device);
        }
    }
    burn_gelu(x)
}

/// `x ← x · Φ(x)` over a slice, split across threads for large activations.
pub fn gelu_in_place(values: &mut [f32]) {
    // The browser has no threads.
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        const CHUNK: usize = 1 << 14;
        if values.len() > 2 * CHUNK {
            values.par_chunks_mut(CHUNK).for_each(gelu_slice);
            return;
        }
    }
    gelu_slice(values);
}

/// `x ← x · Φ(x)` on one thread, in the widest vectors the CPU has (the binary targets
/// baseline x86-64, whose 4-lane SSE2 made this 7 % of a served batch).
pub fn gelu_slice(values: &mut [f32]) {
    #[cfg(all(target_arch = "x86_64", not(target_feature = "avx512f")))]
    {
        static WIDEST: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
        let widest = *WIDEST.get_or_init(|| {
            if std::arch::is_x86_feature_detected!("avx512f") {
                2
            } else if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                1
            } else {
                0
            }
        });
        // SAFETY: each runs only where the CPU has the features it is compiled for.
        match widest {
            2 => return unsafe { gelu_slice_avx512(values) },
            1 => return unsafe { gelu_slice_avx2(values) },
            _ => {}
        }
    }
    gelu_loop(values);
}

#[cfg(all(target_arch = "x86_64", not(target_feature = "avx512f")))]
#[target_feature(enable = "avx512f")]
fn gelu_slice_avx512(values: &mut [f32]) {
    gelu_loop(values);
}

#[cfg(all(target_arch = "x86_64", not(target_feature = "avx512f")))]
#[target_feature(enable = "avx2,fma")]
fn gelu_slice_avx2(values: &mut [f32]) {
    gelu_loop(values);
}

#[inline(always)]
fn gelu_loop(values: &mut [f32]) {
    for x in values.iter_mut() {
        *x = 0.5 * *x * (1.0 + erf(*x * core::f32::consts::FRAC_1_SQRT_2));
    }
}

/// erf by Abramowitz & Stegun 7.1.26: absolute error below 1.5e-7, no branches.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A1: f32 = 0.254_829_6;
    const A2: f32 = -0.284_496_74;
    const A3: f32 = 1.421_413_7;
    const A4: f32 = -1.453_152;
    const A5: f32 = 1.061_405_4;
    let ax = x.abs();
    let t = 1.0 / (1.0 + P * ax);
    let poly = t * (A1 + t * (A2 + t * (A3 + t * (A4 + t * A5))));
    (1.0 - poly * exp(-ax * ax)).copysign(x)
}

/// `e^v` for `v <= 0` (clamped at -87, where it underflows anyway), relative error ~1e-7:
/// `2^k · e^r` with `|r| <= ln2/2` and a degree-6 Taylor polynomial for `e^r`.
#[inline(always)]
fn exp(v: f32) -> f32 {
    const LOG2_E: f32 = core::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding and subtracting 1.5·2^23 rounds to the nearest integer without a rounding
    // instruction (SSE2 has none), which keeps the loop vectorisable.
    const ROUND: f32 = 12_582_912.0;
    let v = v.max(-87.0);
    let k = (v * LOG2_E + ROUND) - ROUND;
    let r = v - k * LN2_HI - k * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    p * f32::from_bits(((k as i32 + 127) as u32) << 23)
}

#[cfg(all(test, feature = "cpu"))]
mod tests {
    use super::*;

    #[test]
    fn matches_burns_exact_gelu() {
        let device = Device::flex();
        let values: alloc::vec::Vec<f32> = (-200_000..=200_000).map(|i| i as f32 * 6e-5).collect();
        let n = values.len();
        let x = Tensor::<1>::from_data(TensorData::new(values, [n]), &device);
        let ours = gelu(x.clone()).into_data().try_into_vec::<f32>().unwrap();
        let reference = burn_gelu(x).into_data().try_into_vec::<f32>().unwrap();
        let worst = test_support::max_abs(&ours, &reference);
        assert!(worst < 1e-6, "max |fast - libm| = {worst}");
    }

    /// Every vector width this CPU can run gives the same values as the plain loop.
    #[test]
    fn every_vector_width_agrees() {
        let values: alloc::vec::Vec<f32> = (-5000..=5000).map(|i| i as f32 * 1.3e-3).collect();
        let mut plain = values.clone();
        gelu_loop(&mut plain);
        #[cfg(all(target_arch = "x86_64", not(target_feature = "avx512f")))]
        {
            let check = |run: unsafe fn(&mut [f32]), name: &str| {
                let mut wide = values.clone();
                // SAFETY: called only where the features were detected.
                unsafe { run(&mut wide) };
                let worst = test_support::max_abs(&wide, &plain);
                assert!(worst < 1e-6, "{name}: max |wide - plain| = {worst}");
            };
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                check(gelu_slice_avx2, "avx2");
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                check(gelu_slice_avx512, "avx512");
            }
        }
    }

    #[test]
    fn exp_is_accurate_where_erf_uses_it() {
        for i in 0..=1000 {
            let v = -(i as f32) * 0.087;
            let rel = ((exp(v) - v.exp()) / v.exp().max(f32::MIN_POSITIVE)).abs();
            assert!(rel < 5e-7 || v.exp() < 1e-30, "exp({v}): {rel}");
        }
    }
}
