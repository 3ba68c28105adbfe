//! Queueing a WGSL kernel on a cubecl client: the one piece every kernel here shares.

use burn_cubecl::cubecl::server::{Handle, KernelArguments};
use burn_cubecl::cubecl::{CubeCount, CubeDim};
use burn_cubecl::template::{KernelSource, SourceKernel};
use burn_cubecl::tensor::CubeTensor;

/// Queue `kernel` on `tensors`' device over `count` workgroups of `workgroup` invocations, with
/// the tensors bound in order and then `sizes` (read by the WGSL as `array<u32>`).
pub(super) fn launch_wgsl(
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
