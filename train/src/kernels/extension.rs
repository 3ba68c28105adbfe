//! The kernels as a burn backend extension: the trait, its cubecl implementation (which launches
//! the WGSL of `linear.rs` and `attention.rs`), and where it applies. The macro derives the
//! `Dispatch` and `Fusion` sides, so the ops queue lazily like burn's own.

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, DispatchDevice, backend_extension};
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::server::{Handle, KernelArguments};
use burn_cubecl::cubecl::{CubeCount, CubeDim};
use burn_cubecl::template::{KernelSource, SourceKernel};
use burn_cubecl::tensor::CubeTensor;

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

/// See [`super::uses_wgsl_kernels`].
pub(super) fn wanted_on(device: &DispatchDevice) -> bool {
    #[cfg(feature = "std")]
    {
        // Read once: this runs for every projection of every layer.
        static CHOICE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
        match CHOICE
            .get_or_init(|| std::env::var("BERT_WGSL_KERNELS").ok())
            .as_deref()
        {
            Some("off") => return false,
            Some("on") => return matches!(device, DispatchDevice::Cube(cubecl::Device::Wgpu(_))),
            _ => {}
        }
    }
    match device {
        DispatchDevice::Cube(device @ cubecl::Device::Wgpu(_)) => {
            let client = device.client();
            let matmul = &client.properties().features.matmul;
            matmul.cmma.is_empty() && matmul.mma.is_empty()
        }
        _ => false,
    }
}

/// Queue `kernel` on `tensors`' device over `count` workgroups of `workgroup` invocations, with
/// the tensors bound in order and then `sizes` (read by the WGSL as `array<u32>`).
pub(super) fn launch(
    kernel: impl KernelSource,
    workgroup: CubeDim,
    count: CubeCount,
    tensors: &[&CubeTensor],
    sizes: &[u32],
) {
    let client = &tensors[0].client;
    let sizes: Handle = client.create_from_slice(bytemuck::cast_slice(sizes));
    let arguments = tensors
        .iter()
        .fold(KernelArguments::new(), |arguments, tensor| {
            arguments.with_buffer(tensor.handle.clone().binding())
        })
        .with_buffer(sizes.binding());
    client.launch(
        Box::new(SourceKernel::new(kernel, workgroup)),
        count,
        arguments,
    );
}
