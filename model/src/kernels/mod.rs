//! Hand-written WGSL for the encoder's two heavy operations, used on wgpu devices without matrix
//! cores (WebGPU in a browser, software Vulkan such as SwiftShader or lavapipe) outside autodiff.
//!
//! There cubecl's matmul falls back to `SimpleUnit`, and its attention to a unit flash
//! attention, both of which stage tiles through workgroup memory between barriers; software
//! rasterizers run that very slowly. The kernels here need neither:
//! - [`project`] (`x @ W + b`): each invocation keeps a 16 × 8 block of outputs in registers and
//!   reads its operands as vec4s (`linear.rs`);
//! - [`attention`]: each invocation is one query row of one head, with an online softmax over
//!   the keys (`attention.rs`).
//!
//! Their speed against burn's own ops and transformers.js is in BENCHMARKS.md. They are burn
//! backend extensions, so fusion and dispatch work around them and the weights stay the
//! module's: one encoder on every backend. Everywhere else (CPU, CUDA, autodiff, matrix cores)
//! burn's own ops run.
//!
//! `BERT_WGSL_KERNELS=on|off` (native builds) overrides the choice, for comparisons.
//!
//! On burn's CPU backend (flex) outside autodiff, [`project`] is one `gemm` call that starts
//! from the bias and shares the work between threads from a smaller size than flex's matmul
//! (`cpu.rs`): at batch 1 a sentence's projections otherwise ran on one core.

use burn::nn::Linear;
use burn::prelude::*;

use crate::mask::PaddingMask;

// Layered one way: `dispatch` (where they apply, tensor-level entry) → `extension` (the burn
// backend extension) → `linear` / `attention` (the WGSL and its launch) → `launch`.
#[cfg(feature = "wgpu")]
mod attention;
#[cfg(all(feature = "cpu", not(target_arch = "wasm32")))]
mod cpu;
#[cfg(feature = "wgpu")]
mod dispatch;
#[cfg(feature = "wgpu")]
mod extension;
#[cfg(feature = "wgpu")]
mod launch;
#[cfg(feature = "wgpu")]
mod linear;

/// `linear.forward(x)`, through the register-tiled kernel where [`uses_wgsl_kernels`] says so
/// (float32, with a bias, sizes multiples of 4), and on the CPU backend outside autodiff as
/// one gemm call that adds the bias as it goes (`cpu.rs`).
pub fn project(linear: &Linear, x: Tensor<3>) -> Tensor<3> {
    #[cfg(feature = "wgpu")]
    if let Some(y) = dispatch::linear(linear, &x) {
        return y;
    }
    #[cfg(all(feature = "cpu", not(target_arch = "wasm32")))]
    if let Some(y) = cpu::linear(linear, &x) {
        return y;
    }
    linear.forward(x)
}

/// `[project(a, x), project(b, x), ...]`: on the CPU backend outside autodiff the projections
/// run side by side (the query, key and value of a layer share their input).
pub fn project_all<const N: usize>(linears: [&Linear; N], x: Tensor<3>) -> [Tensor<3>; N] {
    #[cfg(all(feature = "cpu", not(target_arch = "wasm32")))]
    if let Some(ys) = cpu::linears(linears, &x) {
        return ys;
    }
    linears.map(|l| project(l, x.clone()))
}

/// Multi-head `softmax(QKᵀ/√d + mask)·V` on `[batch, seq, hidden]` projections, returning the
/// context in the same layout; `None` where [`uses_wgsl_kernels`] says no (or the head size is
/// not a multiple of 4), and the caller runs burn's attention.
pub fn attention(
    q: &Tensor<3>,
    k: &Tensor<3>,
    v: &Tensor<3>,
    mask: &PaddingMask,
    heads: usize,
) -> Option<Tensor<3>> {
    #[cfg(feature = "wgpu")]
    return dispatch::attention(q, k, v, mask, heads);
    #[cfg(not(feature = "wgpu"))]
    {
        let _ = (q, k, v, mask, heads);
        None
    }
}

/// Whether the kernels here run on `device`: a plain (not autodiff) wgpu device whose cubecl
/// runtime has no cooperative-matrix instructions, unless `BERT_WGSL_KERNELS` says otherwise.
pub fn uses_wgsl_kernels(device: &Device) -> bool {
    #[cfg(feature = "wgpu")]
    return dispatch::wanted_on(device.as_dispatch());
    #[cfg(not(feature = "wgpu"))]
    {
        let _ = device;
        false
    }
}
