//! The kernels as a burn backend extension: the trait and its cubecl implementation, which
//! launches the WGSL of `linear.rs` and `attention.rs`. The macro derives the `Dispatch` and
//! `Fusion` sides, so the ops queue lazily like burn's own.

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, backend_extension};
use burn_cubecl::CubeBackend;

use super::{attention, linear};

#[backend_extension(Cube, Fusion)]
pub trait WgslKernelOps: Backend {
    /// `x [.., k] @ weight [k, n] + bias [n]`, float32, `k` and `n` multiples of 4.
    #[fusion(dtype = x, shape = linear::output_shape(x, weight))]
    fn tiled_linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// Multi-head attention on `[batch, seq, hidden]` projections; `padding [batch, seq]` is 1.0
    /// where a key is padding. Float32, `hidden / heads` a multiple of 4.
    #[fusion(dtype = q, shape = q)]
    fn multi_head_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        padding: FloatTensor<Self>,
        heads: usize,
    ) -> FloatTensor<Self>;
}

impl WgslKernelOps for CubeBackend {
    fn tiled_linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        linear::launch(x, weight, bias)
    }

    fn multi_head_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        padding: FloatTensor<Self>,
        heads: usize,
    ) -> FloatTensor<Self> {
        attention::launch(q, k, v, padding, heads)
    }
}
