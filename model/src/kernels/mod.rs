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
//! (`cpu.rs`): at batch 1 a sentence's projections otherwise ran on one core. For inference
//! the modules also hold their weights packed for it ([`Prepacked`], filled by
//! `BertModel::for_inference`), a layer's query, key and value as one job list.

use alloc::sync::Arc;

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

#[cfg(all(feature = "cpu", not(target_arch = "wasm32")))]
use cpu::Packed;
/// Nothing to pack where there is no CPU backend.
#[cfg(not(all(feature = "cpu", not(target_arch = "wasm32"))))]
#[derive(Debug)]
enum Packed {}

/// A module's projection weights packed for the CPU backend's gemm at inference, or nothing
/// (other backends, training, or not asked for). The packing proves itself current before
/// each use (it holds the tensors it was made from), so a module whose weights change since
/// simply takes the unpacked path.
#[derive(Clone, Debug, Default)]
pub struct Prepacked(Option<Arc<Packed>>);

impl Prepacked {
    /// `linears` (projections of one input) packed where they are float32 CPU tensors outside
    /// autodiff; nothing elsewhere.
    pub fn of(linears: &[&Linear]) -> Self {
        #[cfg(all(feature = "cpu", not(target_arch = "wasm32")))]
        return Self(Packed::new(linears).map(Arc::new));
        #[cfg(not(all(feature = "cpu", not(target_arch = "wasm32"))))]
        {
            let _ = linears;
            Self(None)
        }
    }

    pub fn is_packed(&self) -> bool {
        self.0.is_some()
    }
}

/// `linear.forward(x)`, through the register-tiled kernel where [`uses_wgsl_kernels`] says so
/// (float32, with a bias, sizes multiples of 4), and on the CPU backend outside autodiff as
/// one gemm call that adds the bias as it goes (`cpu.rs`), from `packed` weights where the
/// module has them.
pub fn project(linear: &Linear, packed: &Prepacked, x: Tensor<3>) -> Tensor<3> {
    let [y] = project_all([linear], packed, x);
    y
}

/// `gelu(project(linear, packed, x))` (exact GELU) in one pass where the weights are packed
/// for the CPU: each block of outputs is activated while still in cache. `None` elsewhere.
pub fn project_gelu(linear: &Linear, packed: &Prepacked, x: &Tensor<3>) -> Option<Tensor<3>> {
    #[cfg(all(feature = "cpu", not(target_arch = "wasm32")))]
    {
        let gelu: fn(&mut [f32]) = crate::modules::gelu::gelu_slice;
        let [y] = packed.0.as_ref()?.forward([linear], x, Some(gelu))?;
        Some(y)
    }
    #[cfg(not(all(feature = "cpu", not(target_arch = "wasm32"))))]
    {
        let _ = (linear, packed, x);
        None
    }
}

/// `[project(a, x), project(b, x), ...]` for projections of one input (a layer's query, key
/// and value): on the CPU backend outside autodiff they run side by side, from `packed`
/// weights (all of them, in this order) where the module has them.
pub fn project_all<const N: usize>(
    linears: [&Linear; N],
    packed: &Prepacked,
    x: Tensor<3>,
) -> [Tensor<3>; N] {
    #[cfg(all(feature = "cpu", not(target_arch = "wasm32")))]
    if let Some(ys) = packed.0.as_ref().and_then(|p| p.forward(linears, &x, None)) {
        return ys;
    }
    #[cfg(not(all(feature = "cpu", not(target_arch = "wasm32"))))]
    let _ = packed;
    #[cfg(all(feature = "cpu", not(target_arch = "wasm32")))]
    if let Some(ys) = cpu::linears(linears, &x) {
        return ys;
    }
    linears.map(|linear| {
        #[cfg(feature = "wgpu")]
        if let Some(y) = dispatch::linear(linear, &x) {
            return y;
        }
        linear.forward(x.clone())
    })
}

/// `f()` (an inference pass) run on the CPU backend's thread pool when `device` is the CPU:
/// every parallel step inside (the projections, burn's own ops) then shares its work with the
/// pool's other threads directly, instead of waking the pool from outside and putting this
/// thread to sleep until it is done — a futex round trip per step, 7 % at batch 1. Elsewhere
/// `f` runs here.
pub fn on_cpu_pool<R: Send>(device: &Device, f: impl FnOnce() -> R + Send) -> R {
    #[cfg(not(target_arch = "wasm32"))]
    if crate::backend::is_plain_cpu(device) {
        // `scope` runs its body on a pool thread when called from outside the pool.
        return rayon::scope(|_| f());
    }
    #[cfg(target_arch = "wasm32")]
    let _ = device;
    f()
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
