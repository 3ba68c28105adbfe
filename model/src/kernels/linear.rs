//! `x @ W + b` with every invocation holding a 16 × 8 block of outputs in registers, reading
//! `x` and `W` as vec4s straight from storage (no workgroup memory, no barriers).

use burn::tensor::{DType, Shape};
use burn_cubecl::cubecl::prelude::KernelId;
use burn_cubecl::cubecl::{CubeCount, CubeDim};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::template::{KernelSource, SourceTemplate};
use burn_cubecl::tensor::CubeTensor;

use super::launch::launch_wgsl;

/// Output rows and 4-float column groups per invocation: 16 × 8 floats, the fastest of the
/// blocks measured in SwiftShader (4–16 rows × 4–16 columns).
const ROWS: u32 = 16;
const COLUMN_VECTORS: u32 = 2;
const WORKGROUP: u32 = 8;

/// `x`'s shape with the last dimension `weight`'s output width.
pub(super) fn output_shape(x: &Shape, weight: &Shape) -> Shape {
    let mut shape = x.clone();
    let last = shape.num_dims() - 1;
    shape[last] = weight[1];
    shape
}

pub(super) fn launch(x: CubeTensor, weight: CubeTensor, bias: CubeTensor) -> CubeTensor {
    let (x, weight, bias) = (
        into_contiguous(x),
        into_contiguous(weight),
        into_contiguous(bias),
    );
    let (k, n) = (weight.meta.shape()[0], weight.meta.shape()[1]);
    let m = x.meta.shape().num_elements() / k;
    let shape = output_shape(x.meta.shape(), weight.meta.shape());
    let out = empty_device_contiguous_dtype(x.client.clone(), x.device.clone(), shape, DType::F32);
    let groups = |units: usize, per_invocation: u32| {
        (units as u32).div_ceil(per_invocation * WORKGROUP).max(1)
    };
    launch_wgsl(
        TiledLinear,
        CubeDim::new_2d(WORKGROUP, WORKGROUP),
        CubeCount::Static(groups(n / 4, COLUMN_VECTORS), groups(m, ROWS), 1),
        &[&x, &weight, &bias, &out],
        &[m as u32, k as u32, n as u32],
    );
    out
}

struct TiledLinear;

impl KernelSource for TiledLinear {
    fn source(&self) -> SourceTemplate {
        SourceTemplate::new(wgsl(ROWS, COLUMN_VECTORS, WORKGROUP))
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>().info((ROWS, COLUMN_VECTORS, WORKGROUP))
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

/// The kernel, unrolled: `rows × column_vectors` vec4 accumulators per invocation. Rows past
/// `m` read row `m - 1` and are not stored (likewise columns), so the loop has no branch.
fn wgsl(rows: u32, column_vectors: u32, workgroup: u32) -> String {
    let (r, c) = (rows, column_vectors);
    let mut body = Vec::new();
    for i in 0..r {
        body.push(format!("let a_row{i} = min(row0 + {i}u, m - 1u) * kv;"));
        for j in 0..c {
            body.push(format!("var acc{i}_{j} = vec4<f32>(0.0);"));
        }
    }
    body.push("for (var kk = 0u; kk < kv; kk++) {".into());
    for i in 0..r {
        body.push(format!("    let a{i} = a[a_row{i} + kk];"));
    }
    for q in 0..4 {
        body.push(format!("    let w_row{q} = (kk * 4u + {q}u) * nv;"));
        for j in 0..c {
            body.push(format!(
                "    let w{q}_{j} = w[w_row{q} + min(col0 + {j}u, nv - 1u)];"
            ));
        }
    }
    for i in 0..r {
        for (q, lane) in ["x", "y", "z", "w"].iter().enumerate() {
            for j in 0..c {
                body.push(format!(
                    "    acc{i}_{j} = fma(vec4<f32>(a{i}.{lane}), w{q}_{j}, acc{i}_{j});"
                ));
            }
        }
    }
    body.push("}".into());
    for j in 0..c {
        body.push(format!("if (col0 + {j}u < nv) {{"));
        body.push(format!("    let b{j} = bias[col0 + {j}u];"));
        for i in 0..r {
            body.push(format!(
                "    if (row0 + {i}u < m) {{ out[(row0 + {i}u) * nv + col0 + {j}u] = acc{i}_{j} + b{j}; }}"
            ));
        }
        body.push("}".into());
    }
    // cubecl binds every buffer read-write; the declarations must say the same.
    format!(
        "@group(0) @binding(0) var<storage, read_write> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> w: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> bias: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> sizes: array<u32>;

@compute @workgroup_size({workgroup}, {workgroup}, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {{
    let m = sizes[0];
    let kv = sizes[1] / 4u;
    let nv = sizes[2] / 4u;
    let col0 = id.x * {c}u;
    let row0 = id.y * {r}u;
    if (row0 >= m || col0 >= nv) {{
        return;
    }}
    {}
}}
",
        body.join("\n    ")
    )
}
