//! The encoder's projections (`model::projection::project`) on the wgpu backend against burn's
//! `Linear` on the CPU backend with the same weights, over shapes that exercise the register-tiled
//! kernel's edges (rows not a multiple of its 16-row tile, one row, a narrow output) and the
//! shapes it leaves to burn (no bias, an output width that is not a multiple of 4).

use bert_train::BackendKind;
use bert_train::model::projection::{project, uses_tiled_kernel};
use burn::module::Param;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::Distribution;

/// The same layer on another device, with the same weights.
fn copy_to(linear: &Linear, device: &Device) -> Linear {
    let weight = Tensor::<2>::from_data(linear.weight.val().into_data(), device);
    let bias = linear
        .bias
        .as_ref()
        .map(|b| Param::from_tensor(Tensor::<1>::from_data(b.val().into_data(), device)));
    Linear {
        weight: Param::from_tensor(weight),
        bias,
    }
}

fn max_abs_difference(a: Tensor<3>, b: Tensor<3>) -> f32 {
    let a = a.into_data().try_to_vec::<f32>().unwrap();
    let b = b.into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn projections_on_wgpu_match_burn_linear_on_the_cpu() {
    let gpu = BackendKind::Wgpu
        .device()
        .expect("wgpu device (lavapipe on CPU-only machines)");
    let cpu = BackendKind::Cpu.device().unwrap();
    // [batch, tokens, in] → out, with or without a bias.
    let cases = [
        ([3, 37, 384], 1536, true), // 111 rows: the last row tile is partial
        ([2, 9, 1536], 384, true),
        ([1, 1, 8], 12, true), // one row, fewer columns than one invocation covers
        ([2, 5, 16], 6, true), // output width not a multiple of 4: burn's matmul
        ([2, 5, 16], 8, false), // no bias: burn's matmul
    ];
    for (shape, out, bias) in cases {
        let reference_layer = LinearConfig::new(shape[2], out).with_bias(bias).init(&cpu);
        let x = Tensor::<3>::random(shape, Distribution::Uniform(-1.0, 1.0), &cpu);
        let expected = reference_layer.forward(x.clone());
        let layer = copy_to(&reference_layer, &gpu);
        let got = project(&layer, Tensor::from_data(x.into_data(), &gpu));
        let error = max_abs_difference(got, expected);
        assert!(
            error <= 1e-4,
            "{shape:?} → {out} (bias: {bias}): max |wgpu − cpu| = {error}"
        );
    }
}

/// Mesa's lavapipe, the Vulkan CI runs on, has no matrix cores, so the tiled kernel must be what
/// ran above there (elsewhere, cubecl's own matmul is the one compared).
#[test]
fn software_vulkan_takes_the_tiled_kernel() {
    let gpu = BackendKind::Wgpu.device().expect("wgpu device");
    let name = gpu
        .as_dispatch()
        .identity()
        .map(|identity| identity.name)
        .unwrap_or_default();
    eprintln!(
        "wgpu adapter: {name}; tiled kernel: {}",
        uses_tiled_kernel(&gpu)
    );
    if name.contains("llvmpipe") || name.contains("SwiftShader") {
        assert!(uses_tiled_kernel(&gpu), "{name} has no matrix cores");
    }
    assert!(!uses_tiled_kernel(&BackendKind::Cpu.device().unwrap()));
}
