//! Multi-head attention with one invocation per query row and head: `QKᵀ` row, masked online
//! softmax and the weighted sum of `V` in one pass over the keys, in registers. Reads the
//! `[batch, seq, hidden]` projections as they are, so no head split or merge is copied either.

use burn::tensor::DType;
use burn_cubecl::cubecl::prelude::KernelId;
use burn_cubecl::cubecl::{CubeCount, CubeDim};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::template::{KernelSource, SourceTemplate};
use burn_cubecl::tensor::CubeTensor;

use super::launch::launch_wgsl;

/// Query rows per workgroup.
const WORKGROUP: u32 = 32;

pub(super) fn launch(
    q: CubeTensor,
    k: CubeTensor,
    v: CubeTensor,
    padding: CubeTensor,
    heads: usize,
) -> CubeTensor {
    let [q, k, v, padding] = [q, k, v, padding].map(into_contiguous);
    let shape = q.meta.shape().clone();
    let (batch, seq, hidden) = (shape[0], shape[1], shape[2]);
    let out = empty_device_contiguous_dtype(q.client.clone(), q.device.clone(), shape, DType::F32);
    let head_dim = hidden / heads;
    launch_wgsl(
        Attention { head_dim },
        CubeDim::new_1d(WORKGROUP),
        CubeCount::Static((seq as u32).div_ceil(WORKGROUP), heads as u32, batch as u32),
        &[&q, &k, &v, &padding, &out],
        &[seq as u32, hidden as u32],
    );
    out
}

struct Attention {
    head_dim: usize,
}

impl KernelSource for Attention {
    fn source(&self) -> SourceTemplate {
        SourceTemplate::new(wgsl(self.head_dim / 4, WORKGROUP))
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>().info((self.head_dim, WORKGROUP))
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

/// The kernel for heads of `vectors` vec4s, unrolled over them. The running maximum starts at
/// the lowest float (its bits: Chrome's WGSL compiler rejects the rounded literal) rather than
/// -inf, so the first rescale is `exp(-huge) = 0`, not NaN.
fn wgsl(vectors: usize, workgroup: u32) -> String {
    let lanes = 0..vectors;
    let scale = 1.0 / ((vectors * 4) as f64).sqrt();
    let load_q: Vec<_> = lanes
        .clone()
        .map(|c| format!("let q{c} = q[row + {c}u] * {scale:?};"))
        .collect();
    let zero: Vec<_> = lanes
        .clone()
        .map(|c| format!("var acc{c} = vec4<f32>(0.0);"))
        .collect();
    let score = lanes
        .clone()
        .map(|c| format!("dot(q{c}, k[key + {c}u])"))
        .collect::<Vec<_>>()
        .join(" + ");
    let update: Vec<_> = lanes
        .clone()
        .map(|c| format!("    acc{c} = acc{c} * rescale + p * v[key + {c}u];"))
        .collect();
    let store: Vec<_> = lanes
        .map(|c| format!("out[row + {c}u] = acc{c} / total;"))
        .collect();
    format!(
        "@group(0) @binding(0) var<storage, read_write> q: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> k: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> v: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> padding: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> sizes: array<u32>;

@compute @workgroup_size({workgroup}, 1, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {{
    let seq = sizes[0];
    let hv = sizes[1] / 4u;
    let query = id.x;
    if (query >= seq) {{
        return;
    }}
    let head = id.y * {vectors}u;
    let first_key = id.z * seq;
    let row = (first_key + query) * hv + head;
    {load_q}
    {zero}
    var best = bitcast<f32>(0xff7fffffu);
    var total = 0.0;
    for (var j = 0u; j < seq; j++) {{
        if (padding[first_key + j] != 0.0) {{
            continue;
        }}
        let key = (first_key + j) * hv + head;
        let s = {score};
        let next_best = max(best, s);
        let rescale = exp(best - next_best);
        let p = exp(s - next_best);
        total = total * rescale + p;
    {update}
        best = next_best;
    }}
    {store}
}}
",
        load_q = load_q.join("\n    "),
        zero = zero.join("\n    "),
        update = update.join("\n    "),
        store = store.join("\n    "),
    )
}
