//! The encoder's projections on burn's CPU backend (flex) outside autodiff: `x @ W + b` as one
//! gemm call that starts from the bias (no separate pass to add it), and that splits across
//! threads from a smaller size than flex's general matmul does — at batch 1 the 384 × 384
//! projections of a 25-token sentence fall below flex's threshold and ran on one core.
//!
//! For inference the weights can also be laid out ahead of time ([`Packed`]), as ONNX Runtime
//! does: at batch 1 a sentence streams every weight from memory once, and gemm reads an
//! unpacked `[k, n]` weight 64 columns at a time with a stride of `n` floats — a new page every
//! row or two. Packed, each 64-column panel is one contiguous `[k, 64]` run (on 2 MiB pages
//! where Linux gives them), and a layer's query, key and value are one job list.

use burn::backend::flex::FlexTensor;
use burn::backend::{BackendTensor, DispatchAutodiffContext, DispatchTensor, DispatchTensorKind};
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::DType;
use rayon::prelude::*;

/// Output columns per panel: four AVX-512 vectors of float32, gemm's widest microkernel.
const PANEL: usize = 64;

/// From this many multiply-adds, gemm splits the work across the thread pool.
const PARALLEL_FROM: usize = 1 << 18;

/// Several projections of the same input at once (the query, key and value of a layer), side
/// by side on the thread pool: one fork-join for the three instead of one each. `None` off the
/// float32 CPU backend outside autodiff, or for a projection without a bias.
pub(super) fn linears<const N: usize>(
    linears: [&Linear; N],
    x: &Tensor<3>,
) -> Option<[Tensor<3>; N]> {
    let input = flex_f32(x.clone())?;
    let parts = linears
        .iter()
        .map(|l| weight_and_bias(l))
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

/// A projection's weight and bias as flex tensors; `None` as [`flex_f32`] says, or without a bias.
fn weight_and_bias(linear: &Linear) -> Option<(FlexTensor, FlexTensor)> {
    Some((
        flex_f32(linear.weight.val())?,
        flex_f32(linear.bias.as_ref()?.val())?,
    ))
}

fn contiguous(x: FlexTensor) -> FlexTensor {
    if x.is_contiguous() {
        x
    } else {
        x.to_contiguous()
    }
}

/// `m` rows of `bias`: a projection's output before gemm adds `x·W` onto it
/// (dst = 1·dst + 1·x·W), so the bias costs no pass of its own.
fn bias_rows(bias: &[f32], m: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(m * bias.len());
    for _ in 0..m {
        out.extend_from_slice(bias);
    }
    out
}

/// `x [.., k] @ w [k, n] + b [n]`; any strides for `w`, `x` made contiguous.
fn gemm_linear(x: &FlexTensor, w: &FlexTensor, b: &FlexTensor) -> Option<FlexTensor> {
    let x = contiguous(x.clone());
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
    let mut out = bias_rows(b_data, m);
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

/// Projections of one input (a layer's query, key and value; or a single dense layer), their
/// weights in panels. It records the weight and bias tensors it was packed from and holds them:
/// they cannot be freed or written in place while it exists (flex copies shared data on write),
/// so "the module still holds these very tensors" proves the panels are current.
pub struct Packed {
    k: usize,
    /// Per projection: its output width and bias.
    outputs: Vec<(usize, Vec<f32>)>,
    /// (projection, first column, width, offset into `panels`).
    jobs: Vec<(usize, usize, usize, usize)>,
    panels: PanelBuffer,
    sources: Vec<(FlexTensor, FlexTensor)>,
}

impl core::fmt::Debug for Packed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Packed")
            .field("k", &self.k)
            .field(
                "widths",
                &self.outputs.iter().map(|o| o.0).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Packed {
    /// Pack `linears` (same input width, float32 with a bias, on the CPU outside autodiff), or
    /// `None` where that does not apply.
    pub fn new(linears: &[&Linear]) -> Option<Self> {
        let sources = linears
            .iter()
            .map(|l| weight_and_bias(l))
            .collect::<Option<Vec<_>>>()?;
        let k = *sources.first()?.0.layout().shape().first()?;
        let mut outputs = Vec::new();
        let mut jobs = Vec::new();
        let mut total = 0;
        for (index, (w, b)) in sources.iter().enumerate() {
            let [wk, n] = w.layout().shape().as_slice()[..] else {
                return None;
            };
            if wk != k || b.layout().shape().as_slice() != [n] {
                return None;
            }
            outputs.push((n, b.to_contiguous().as_slice::<f32>()?.to_vec()));
            for first in (0..n).step_by(PANEL) {
                let width = PANEL.min(n - first);
                jobs.push((index, first, width, total));
                total += k * width;
            }
        }
        let mut panels = PanelBuffer::zeroed(total);
        let dst = panels.as_mut_slice();
        for &(index, first, width, offset) in &jobs {
            let w = &sources[index].0;
            let (data, start) = (w.storage::<f32>(), w.layout().start_offset());
            let [rs, cs] = w.layout().strides()[..] else {
                return None;
            };
            for row in 0..k {
                for col in 0..width {
                    let at = start as isize + row as isize * rs + (first + col) as isize * cs;
                    dst[offset + row * width + col] = data[at as usize];
                }
            }
        }
        Some(Self {
            k,
            outputs,
            jobs,
            panels,
            sources,
        })
    }

    /// Whether `linears` still hold the tensors these panels were packed from.
    fn packs(&self, linears: &[&Linear]) -> bool {
        let same = |a: &FlexTensor, b: &FlexTensor| {
            a.storage::<f32>().as_ptr() == b.storage::<f32>().as_ptr() && a.layout() == b.layout()
        };
        linears.len() == self.sources.len()
            && linears.iter().zip(&self.sources).all(|(l, (w, b))| {
                weight_and_bias(l).is_some_and(|(cw, cb)| same(&cw, w) && same(&cb, b))
            })
    }

    /// `[then(x @ W_i + b_i)]` for the projections packed, `then` applied in place to each
    /// block of outputs as soon as it is computed (still in cache); `None` where `x` or the
    /// modules do not match the panels (another backend or dtype, weights replaced since).
    pub fn forward<const N: usize>(
        &self,
        linears: [&Linear; N],
        x: &Tensor<3>,
        then: Option<fn(&mut [f32])>,
    ) -> Option<[Tensor<3>; N]> {
        if !self.packs(&linears) {
            return None;
        }
        let input = contiguous(flex_f32(x.clone())?);
        let shape = input.layout().shape().to_vec();
        if shape.last() != Some(&self.k) {
            return None;
        }
        let (k, m) = (self.k, shape.iter().product::<usize>() / self.k.max(1));
        let x_data = input.as_slice::<f32>()?;
        let mut outs: Vec<Vec<f32>> = self
            .outputs
            .iter()
            .map(|(_, bias)| bias_rows(bias, m))
            .collect();
        let dsts: Vec<OutPtr> = outs.iter_mut().map(|o| OutPtr(o.as_mut_ptr())).collect();
        // Rows are split too where panels alone would leave threads idle (a narrow output on
        // a many-core machine), down to blocks of 32 rows.
        let threads = rayon::current_num_threads();
        let row_blocks = (2 * threads)
            .div_ceil(self.jobs.len())
            .clamp(1, m.div_ceil(32).max(1));
        let rows_per_block = m.div_ceil(row_blocks).max(1);
        let run = |(job, block): (usize, usize)| {
            let (index, first, width, offset) = self.jobs[job];
            let n = self.outputs[index].0;
            let row = block * rows_per_block;
            if row >= m {
                return;
            }
            let rows = rows_per_block.min(m - row);
            // SAFETY: each (job, block) writes its own rows × columns of its output, which
            // holds m × n values (row stride n); x holds m × k (row stride k); the panel is a
            // contiguous k × width run inside `panels`.
            unsafe {
                gemm::gemm(
                    rows,
                    width,
                    k,
                    dsts[index].0.add(row * n + first),
                    1,
                    n as isize,
                    true,
                    x_data.as_ptr().add(row * k),
                    1,
                    k as isize,
                    self.panels.as_ptr().add(offset),
                    1,
                    width as isize,
                    1.0f32,
                    1.0f32,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
            if let Some(then) = then {
                for r in row..row + rows {
                    // SAFETY: this task's own columns of row r, written just above.
                    let out = unsafe {
                        core::slice::from_raw_parts_mut(dsts[index].0.add(r * n + first), width)
                    };
                    then(out);
                }
            }
        };
        let tasks = self.jobs.len() * row_blocks;
        let macs = m * k * self.outputs.iter().map(|o| o.0).sum::<usize>();
        if macs >= PARALLEL_FROM && threads > 1 {
            (0..tasks)
                .into_par_iter()
                .for_each(|t| run((t / row_blocks, t % row_blocks)));
        } else {
            (0..tasks).for_each(|t| run((t / row_blocks, t % row_blocks)));
        }
        let tensors: Vec<Tensor<3>> = outs
            .into_iter()
            .zip(&self.outputs)
            .map(|(out, (n, _))| {
                let mut out_shape = shape.clone();
                *out_shape.last_mut().expect("a 3-d input") = *n;
                wrap(FlexTensor::from_data(TensorData::new(out, out_shape)))
            })
            .collect();
        tensors.try_into().ok()
    }
}

/// An output buffer's start, shared by the tasks that write disjoint parts of it.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: the tasks write disjoint elements (see `Packed::forward`).
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// Zeroed float32s, 64-byte aligned; from 2 MiB up, aligned to 2 MiB and offered to Linux as
/// huge pages (fewer TLB misses while a sentence streams the weights).
struct PanelBuffer {
    ptr: core::ptr::NonNull<f32>,
    len: usize,
    layout: std::alloc::Layout,
}

// SAFETY: a plain heap buffer owned by this value; shared only as `&[f32]` after packing.
unsafe impl Send for PanelBuffer {}
unsafe impl Sync for PanelBuffer {}

const HUGE_PAGE: usize = 2 << 20;

impl PanelBuffer {
    fn zeroed(len: usize) -> Self {
        let bytes = (len * size_of::<f32>()).max(1);
        let align = if bytes >= HUGE_PAGE { HUGE_PAGE } else { 64 };
        let layout = std::alloc::Layout::from_size_align(bytes.next_multiple_of(align), align)
            .expect("a panel buffer of sane size");
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { std::alloc::alloc_zeroed(layout) } as *mut f32;
        let Some(ptr) = core::ptr::NonNull::new(raw) else {
            std::alloc::handle_alloc_error(layout)
        };
        #[cfg(target_os = "linux")]
        if align == HUGE_PAGE {
            // SAFETY: advice on memory this value owns; a refusal only costs speed.
            unsafe { libc::madvise(raw.cast(), layout.size(), libc::MADV_HUGEPAGE) };
        }
        Self { ptr, len, layout }
    }

    fn as_ptr(&self) -> *const f32 {
        self.ptr.as_ptr()
    }

    fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: `len` initialised (zeroed) floats, borrowed mutably through `self`.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for PanelBuffer {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with this layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr().cast(), self.layout) }
    }
}
