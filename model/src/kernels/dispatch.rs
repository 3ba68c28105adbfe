//! Where the kernels apply, and the tensor-level entry points that hand them to burn's
//! dispatch (through the backend extension) when they do.

use burn::backend::{Dispatch, DispatchDevice};
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::DType;
use burn_cubecl::cubecl;

use super::extension::WgslKernelOps;
use crate::mask::PaddingMask;

/// `linear.forward(x)` through the tiled kernel, or `None` where it does not apply.
pub(super) fn linear(linear: &Linear, x: &Tensor<3>) -> Option<Tensor<3>> {
    let bias = linear.bias.as_ref()?.val();
    let weight = linear.weight.val();
    let [k, n] = weight.dims();
    let applies = k.is_multiple_of(4)
        && n.is_multiple_of(4)
        && [x.dtype(), weight.dtype(), bias.dtype()] == [DType::F32; 3]
        && wanted_on(x.device().as_dispatch());
    applies.then(|| {
        Tensor::from_dispatch(Dispatch::tiled_linear(
            x.clone().into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
        ))
    })
}

/// Multi-head attention through the kernel, or `None` where it does not apply.
pub(super) fn attention(
    q: &Tensor<3>,
    k: &Tensor<3>,
    v: &Tensor<3>,
    mask: &PaddingMask,
    heads: usize,
) -> Option<Tensor<3>> {
    let [batch, seq, hidden] = q.dims();
    let applies = hidden.is_multiple_of(heads)
        && (hidden / heads).is_multiple_of(4)
        && [q.dtype(), k.dtype(), v.dtype()] == [DType::F32; 3]
        && wanted_on(q.device().as_dispatch());
    if !applies {
        return None;
    }
    let padding: Tensor<2> = mask.0.clone().reshape([batch, seq]).float();
    Some(Tensor::from_dispatch(Dispatch::multi_head_attention(
        q.clone().into_dispatch(),
        k.clone().into_dispatch(),
        v.clone().into_dispatch(),
        padding.into_dispatch(),
        heads,
    )))
}

/// See [`super::uses_wgsl_kernels`].
pub(super) fn wanted_on(device: &DispatchDevice) -> bool {
    // Read once: this runs for every projection of every layer. (The browser has no
    // environment: there the variable is never set.)
    static CHOICE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let forced = CHOICE
        .get_or_init(|| std::env::var("BERT_WGSL_KERNELS").ok())
        .clone();
    if forced.as_deref() == Some("off") {
        return false;
    }
    match device {
        DispatchDevice::Cube(device @ cubecl::Device::Wgpu(_)) => {
            let client = device.client();
            // The kernels are WGSL text: a runtime that compiles to SPIR-V (native Vulkan with
            // feature `vulkan`) or MSL cannot load them, whatever the variable says.
            if !client.name().ends_with("<wgsl>") {
                return false;
            }
            let matmul = &client.properties().features.matmul;
            forced.as_deref() == Some("on") || (matmul.cmma.is_empty() && matmul.mma.is_empty())
        }
        _ => false,
    }
}
