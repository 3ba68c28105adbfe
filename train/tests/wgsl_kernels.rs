//! The WGSL kernels (`bert_model::kernels`) on the wgpu backend against burn's own ops on the CPU
//! backend, over shapes that exercise their edges: rows not a multiple of the projection's
//! 16-row block, one row, padded keys, a query longer than one workgroup; and the cases they
//! leave to burn (no bias, a width that is not a multiple of 4).

use bert_model::BackendKind;
use bert_model::PaddingMask;
use bert_model::kernels::{Prepacked, attention, project, uses_wgsl_kernels};
use burn::module::Param;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::module::attention as burn_attention;
use burn::tensor::ops::AttentionModuleOptions;

fn devices() -> (Device, Device) {
    let gpu = BackendKind::Wgpu
        .device()
        .expect("wgpu device (lavapipe on CPU-only machines)");
    (gpu, BackendKind::Cpu.device().unwrap())
}

fn to<const D: usize>(t: &Tensor<D>, device: &Device) -> Tensor<D> {
    Tensor::from_data(t.to_data(), device)
}

/// The same layer on another device, with the same weights.
fn copy_to(linear: &Linear, device: &Device) -> Linear {
    Linear {
        weight: Param::from_tensor(to(&linear.weight.val(), device)),
        bias: linear
            .bias
            .as_ref()
            .map(|b| Param::from_tensor(to(&b.val(), device))),
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
    let _turn = crate::common::rng_turn();
    let (gpu, cpu) = devices();
    // [batch, tokens, in] → out, with or without a bias.
    let cases = [
        ([3, 37, 384], 1536, true), // 111 rows: the last row block is partial
        ([2, 9, 1536], 384, true),
        ([1, 1, 8], 12, true), // one row, fewer columns than one invocation covers
        ([2, 5, 16], 6, true), // output width not a multiple of 4: burn's matmul
        ([2, 5, 16], 8, false), // no bias: burn's matmul
    ];
    for (shape, out, bias) in cases {
        let layer = LinearConfig::new(shape[2], out).with_bias(bias).init(&cpu);
        let x = Tensor::<3>::random(shape, Distribution::Uniform(-1.0, 1.0), &cpu);
        let got = project(&copy_to(&layer, &gpu), &Prepacked::default(), to(&x, &gpu));
        let error = max_abs_difference(got, layer.forward(x));
        assert!(
            error <= 1e-4,
            "{shape:?} → {out} (bias: {bias}): max |wgpu − cpu| = {error}"
        );
    }
}

#[test]
fn attention_on_wgpu_matches_burn_attention_on_the_cpu() {
    let _turn = crate::common::rng_turn();
    let (gpu, cpu) = devices();
    // (batch, seq, heads, head size, real tokens per row)
    let cases = [
        (3, 45, 12, 32, vec![45, 17, 1]), // 45 queries: two workgroups, the second partial
        (2, 6, 2, 64, vec![3, 6]),
        (1, 4, 3, 4, vec![4]),
    ];
    for (batch, seq, heads, head_dim, lengths) in cases {
        let hidden = heads * head_dim;
        let random =
            || Tensor::<3>::random([batch, seq, hidden], Distribution::Normal(0.0, 2.0), &cpu);
        let (q, k, v) = (random(), random(), random());
        let real: Vec<i64> = lengths
            .iter()
            .flat_map(|&n| (0..seq).map(move |j| i64::from(j < n)))
            .collect();
        let mask = |device: &Device| {
            let ids =
                Tensor::<2, Int>::from_data(TensorData::new(real.clone(), [batch, seq]), device);
            PaddingMask::from_attention_mask(ids)
        };

        let split = |t: Tensor<3>| t.reshape([batch, seq, heads, head_dim]).swap_dims(1, 2);
        let expected = burn_attention(
            split(q.clone()),
            split(k.clone()),
            split(v.clone()),
            Some(mask(&cpu).0.expand([batch, heads, seq, seq])),
            None,
            AttentionModuleOptions::default(),
        )
        .swap_dims(1, 2)
        .reshape([batch, seq, hidden]);

        let got = attention(
            &to(&q, &gpu),
            &to(&k, &gpu),
            &to(&v, &gpu),
            &mask(&gpu),
            heads,
        );
        if uses_wgsl_kernels(&gpu) {
            let error = max_abs_difference(got.expect("the WGSL attention"), expected);
            assert!(
                error <= 1e-4,
                "{batch}×{seq}, {heads} heads of {head_dim}: {error}"
            );
        } else {
            assert!(got.is_none());
        }
    }
}

/// Mesa's lavapipe, the Vulkan CI runs on, has no matrix cores, so the kernels must be what ran
/// above there (elsewhere, cubecl's own matmul is the one compared) — unless the build compiles
/// SPIR-V (feature `vulkan`), where they never apply.
#[test]
fn software_vulkan_takes_the_wgsl_kernels() {
    let _turn = crate::common::rng_turn();
    let (gpu, cpu) = devices();
    let name = gpu
        .as_dispatch()
        .identity()
        .map(|identity| identity.name)
        .unwrap_or_default();
    eprintln!(
        "wgpu adapter: {name}; WGSL kernels: {}",
        uses_wgsl_kernels(&gpu)
    );
    if cfg!(feature = "vulkan") {
        // cubecl compiles SPIR-V for every Vulkan adapter in this build: WGSL cannot load.
        assert!(
            !uses_wgsl_kernels(&gpu),
            "{name} runs SPIR-V in a `vulkan` build"
        );
    } else if name.contains("llvmpipe") || name.contains("SwiftShader") {
        assert!(uses_wgsl_kernels(&gpu), "{name} has no matrix cores");
    }
    assert!(!uses_wgsl_kernels(&cpu));
    assert!(!uses_wgsl_kernels(&gpu.clone().autodiff()));
}
