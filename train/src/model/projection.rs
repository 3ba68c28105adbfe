//! The encoder's dense projections (`x @ W + b`).
//!
//! Everywhere they are burn's `Linear`, except on a wgpu device without matrix cores (WebGPU in
//! a browser, software Vulkan such as SwiftShader or lavapipe) outside autodiff. There cubecl
//! falls back to its `SimpleUnit` matmul, which stages tiles through workgroup memory between
//! barriers; software rasterizers run that very slowly. The register-tiled WGSL kernel below
//! needs neither: each invocation keeps a 16 × 8 block of outputs in registers and reads its
//! operands as vec4s. In Chromium's SwiftShader on two cores it took the encoder from 0.38 to
//! 3.5 sentences/s (BENCHMARKS.md). It is a burn backend extension, so fusion and dispatch work
//! around it and the weights stay the module's: one encoder on every backend.
//!
//! `BERT_TILED_PROJECTION=on|off` (native builds) overrides the choice, for comparisons.

use burn::nn::Linear;
use burn::prelude::*;

/// `linear.forward(x)`, through the register-tiled kernel where that is faster (see above).
pub fn project(linear: &Linear, x: Tensor<3>) -> Tensor<3> {
    #[cfg(feature = "wgpu")]
    if let Some(y) = tiled::forward(linear, &x) {
        return y;
    }
    linear.forward(x)
}

/// Whether [`project`] runs float32 projections (with a bias, sizes multiples of 4) on `device`
/// through the register-tiled kernel.
pub fn uses_tiled_kernel(device: &Device) -> bool {
    #[cfg(feature = "wgpu")]
    return tiled::wanted_on(device.as_dispatch());
    #[cfg(not(feature = "wgpu"))]
    {
        let _ = device;
        false
    }
}

#[cfg(feature = "wgpu")]
mod tiled {
    use burn::backend::tensor::FloatTensor;
    use burn::backend::{Backend, DispatchDevice, backend_extension};
    use burn::nn::Linear;
    use burn::prelude::*;
    use burn::tensor::{DType, Shape};
    use burn_cubecl::CubeBackend;
    use burn_cubecl::cubecl::prelude::KernelId;
    use burn_cubecl::cubecl::server::KernelArguments;
    use burn_cubecl::cubecl::{self, CubeCount, CubeDim};
    use burn_cubecl::kernel::into_contiguous;
    use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
    use burn_cubecl::template::{KernelSource, SourceKernel, SourceTemplate};

    /// Output rows and 4-float column groups each invocation computes: 16 × 8 floats held in
    /// registers, the fastest of the shapes measured (4–16 rows × 4–16 columns).
    const ROWS: u32 = 16;
    const COLUMN_VECTORS: u32 = 2;
    const WORKGROUP: u32 = 8;

    #[backend_extension(Cube, Fusion)]
    pub trait TiledLinearOps: Backend {
        /// `x [.., k] @ weight [k, n] + bias [n]`, all float32, `k` and `n` multiples of 4.
        #[fusion(dtype = x, shape = output_shape(x, weight))]
        fn tiled_linear(
            x: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            bias: FloatTensor<Self>,
        ) -> FloatTensor<Self>;
    }

    fn output_shape(x: &Shape, weight: &Shape) -> Shape {
        let mut shape = x.clone();
        let last = shape.num_dims() - 1;
        shape[last] = weight[1];
        shape
    }

    pub(super) fn forward(linear: &Linear, x: &Tensor<3>) -> Option<Tensor<3>> {
        let bias = linear.bias.as_ref()?.val();
        let weight = linear.weight.val();
        let [k, n] = weight.dims();
        let wanted = k % 4 == 0
            && n % 4 == 0
            && x.dtype() == DType::F32
            && weight.dtype() == DType::F32
            && bias.dtype() == DType::F32
            && wanted_on(x.device().as_dispatch());
        if !wanted {
            return None;
        }
        let y = <burn::backend::Dispatch as TiledLinearOps>::tiled_linear(
            x.clone().into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
        );
        Some(Tensor::from_dispatch(y))
    }

    /// A plain (not autodiff) wgpu device whose cubecl runtime has no cooperative-matrix
    /// instructions, where cubecl's matmul would fall back to `SimpleUnit`; unless
    /// `BERT_TILED_PROJECTION` says otherwise.
    pub(super) fn wanted_on(device: &DispatchDevice) -> bool {
        #[cfg(feature = "std")]
        if let Ok(choice) = std::env::var("BERT_TILED_PROJECTION") {
            match choice.as_str() {
                "off" => return false,
                "on" => return matches!(device, DispatchDevice::Cube(cubecl::Device::Wgpu(_))),
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

    impl TiledLinearOps for CubeBackend {
        fn tiled_linear(
            x: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            bias: FloatTensor<Self>,
        ) -> FloatTensor<Self> {
            let (x, weight, bias) = (
                into_contiguous(x),
                into_contiguous(weight),
                into_contiguous(bias),
            );
            let (k, n) = (weight.meta.shape()[0], weight.meta.shape()[1]);
            let m = x.meta.shape().num_elements() / k;
            let shape = output_shape(x.meta.shape(), weight.meta.shape());
            let client = x.client.clone();
            let out =
                empty_device_contiguous_dtype(client.clone(), x.device.clone(), shape, DType::F32);
            let dims: [u32; 4] = [m as u32, k as u32, n as u32, 0];
            let dims = client.create_from_slice(bytemuck::cast_slice(&dims));
            let groups =
                |units: usize, per_unit: u32| (units as u32).div_ceil(per_unit * WORKGROUP);
            let count = CubeCount::Static(groups(n / 4, COLUMN_VECTORS), groups(m, ROWS).max(1), 1);
            let arguments = KernelArguments::new()
                .with_buffer(x.handle.binding())
                .with_buffer(weight.handle.binding())
                .with_buffer(bias.handle.binding())
                .with_buffer(out.handle.clone().binding())
                .with_buffer(dims.binding());
            let kernel = SourceKernel::new(TiledLinearWgsl, CubeDim::new_2d(WORKGROUP, WORKGROUP));
            client.launch(Box::new(kernel), count, arguments);
            out
        }
    }

    struct TiledLinearWgsl;

    impl KernelSource for TiledLinearWgsl {
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

    /// The kernel, unrolled: each invocation keeps `rows × column_vectors` vec4 accumulators and
    /// reads `a` and `w` straight from storage as vec4s (no workgroup memory, no barriers). Rows
    /// past `m` read row `m - 1` and are not stored, so any `m` works without a branch in the loop.
    fn wgsl(rows: u32, column_vectors: u32, workgroup: u32) -> String {
        use std::fmt::Write;
        let (r, c) = (rows, column_vectors);
        let mut body = String::new();
        let mut line = |text: String| {
            body.push_str("    ");
            body.push_str(&text);
            body.push('\n');
        };
        for i in 0..r {
            line(format!("let a_row{i} = min(row0 + {i}u, m - 1u) * kv;"));
        }
        for i in 0..r {
            for j in 0..c {
                line(format!("var acc{i}_{j} = vec4<f32>(0.0);"));
            }
        }
        line("for (var kk = 0u; kk < kv; kk++) {".into());
        for i in 0..r {
            line(format!("    let a{i} = a[a_row{i} + kk];"));
        }
        for q in 0..4 {
            line(format!("    let w_row{q} = (kk * 4u + {q}u) * nv;"));
            for j in 0..c {
                line(format!(
                    "    let w{q}_{j} = w[w_row{q} + min(col0 + {j}u, nv - 1u)];"
                ));
            }
        }
        for i in 0..r {
            for (q, lane) in ["x", "y", "z", "w"].iter().enumerate() {
                for j in 0..c {
                    line(format!(
                        "    acc{i}_{j} = fma(vec4<f32>(a{i}.{lane}), w{q}_{j}, acc{i}_{j});"
                    ));
                }
            }
        }
        line("}".into());
        for j in 0..c {
            line(format!("if (col0 + {j}u < nv) {{"));
            line(format!("    let b{j} = bias[col0 + {j}u];"));
            for i in 0..r {
                line(format!(
                    "    if (row0 + {i}u < m) {{ out[(row0 + {i}u) * nv + col0 + {j}u] = acc{i}_{j} + b{j}; }}"
                ));
            }
            line("}".into());
        }
        let mut source = String::new();
        // cubecl binds every buffer read-write; the declarations must say the same.
        let _ = write!(
            source,
            "@group(0) @binding(0) var<storage, read_write> a: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> w: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> bias: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> dims: array<u32>;

@compute @workgroup_size({workgroup}, {workgroup}, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {{
    let m = dims[0];
    let kv = dims[1] / 4u;
    let nv = dims[2] / 4u;
    let col0 = id.x * {c}u;
    let row0 = id.y * {r}u;
    if (row0 >= m || col0 >= nv) {{
        return;
    }}
{body}}}
"
        );
        source
    }
}
