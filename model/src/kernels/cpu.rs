//! The encoder's projections on burn's CPU backend (flex) outside autodiff: `x @ W + b` as one
//! gemm call that starts from the bias (no separate pass to add it), and that splits across
//! threads from a smaller size than flex's general matmul does — at batch 1 the 384 × 384
//! projections of a 25-token sentence fall below flex's threshold and ran on one core.

use burn::backend::flex::FlexTensor;
use burn::backend::{BackendTensor, DispatchAutodiffContext, DispatchTensor, DispatchTensorKind};
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::DType;

/// From this many multiply-adds, gemm splits the work across the thread pool.
const PARALLEL_FROM: usize = 1 << 18;

/// `linear.forward(x)` as one gemm on the CPU backend, or `None` where that does not apply
/// (another backend, autodiff, no bias, not float32).
pub(super) fn linear(linear: &Linear, x: &Tensor<3>) -> Option<Tensor<3>> {
    let bias = flex_f32(linear.bias.as_ref()?.val())?;
    let weight = flex_f32(linear.weight.val())?;
    let input = flex_f32(x.clone())?;
    Some(wrap(gemm_linear(&input, &weight, &bias)?))
}

/// Several projections of the same input at once (the query, key and value of a layer), side
/// by side on the thread pool: one fork-join for the three instead of one each. `None` where
/// [`linear`] does not apply.
pub(super) fn linears<const N: usize>(
    linears: [&Linear; N],
    x: &Tensor<3>,
) -> Option<[Tensor<3>; N]> {
    use rayon::prelude::*;
    let input = flex_f32(x.clone())?;
    let parts = linears
        .iter()
        .map(|l| Some((flex_f32(l.weight.val())?, flex_f32(l.bias.as_ref()?.val())?)))
        .collect::<Option<Vec<_>>>()?;
    let outs = parts
        .par_iter()
        .map(|(w, b)| gemm_linear(&input, w, b))
        .collect::<Option<Vec<_>>>()?;
    let tensors: Vec<Tensor<3>> = outs.into_iter().map(wrap).collect();
    tensors.try_into().ok()
}

fn wrap<const D: usize>(t: FlexTensor) -> Tensor<D> {
    Tensor::from_dispatch(DispatchTensor {
        kind: DispatchTensorKind::Flex(BackendTensor::Float(t)),
        autodiff: DispatchAutodiffContext::Disabled,
    })
}

/// The flex tensor behind `t`, if it is a plain (not autodiff) float32 CPU tensor.
fn flex_f32<const D: usize>(t: Tensor<D>) -> Option<FlexTensor> {
    match t.into_dispatch() {
        DispatchTensor {
            kind: DispatchTensorKind::Flex(BackendTensor::Float(t)),
            autodiff: DispatchAutodiffContext::Disabled,
        } if t.dtype() == DType::F32 => Some(t),
        _ => None,
    }
}

/// `x [.., k] @ w [k, n] + b [n]`; any strides for `w`, `x` made contiguous.
fn gemm_linear(x: &FlexTensor, w: &FlexTensor, b: &FlexTensor) -> Option<FlexTensor> {
    let x = if x.is_contiguous() {
        x.clone()
    } else {
        x.to_contiguous()
    };
    let shape = x.layout().shape().to_vec();
    let k = *shape.last()?;
    let [wk, n] = w.layout().shape().as_slice()[..] else {
        return None;
    };
    if wk != k || b.layout().shape().as_slice() != [n] || !b.is_contiguous() {
        return None;
    }
    let m = shape.iter().product::<usize>() / k.max(1);
    let (x_data, b_data) = (x.as_slice::<f32>()?, b.as_slice::<f32>()?);
    let w_data = w.storage::<f32>();
    let w_offset = w.layout().start_offset();
    let [w_rs, w_cs] = w.layout().strides()[..] else {
        return None;
    };
    // Every row starts as the bias: gemm then adds x·W onto it (dst = 1·dst + 1·x·W).
    let mut out = Vec::with_capacity(m * n);
    for _ in 0..m {
        out.extend_from_slice(b_data);
    }
    let parallelism = if m * n * k >= PARALLEL_FROM {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: `out` holds m × n values (row stride n), `x_data` m × k (row stride k), and `w`
    // is a k × n view into `w_data` at its own offset and strides, as its layout says.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            true,
            x_data.as_ptr(),
            1,
            k as isize,
            w_data.as_ptr().add(w_offset),
            w_cs,
            w_rs,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            parallelism,
        );
    }
    let mut out_shape = shape;
    *out_shape.last_mut()? = n;
    Some(FlexTensor::from_data(TensorData::new(out, out_shape)))
}
