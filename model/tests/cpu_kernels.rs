//! The CPU projection with packed weights (`bert_model::kernels::Prepacked`) against burn's own
//! `Linear` on the same backend: partial panels, several row blocks, a strided input, a
//! layer's three projections packed as one, and weights replaced after packing.

use bert_model::BackendKind;
use bert_model::kernels::{Prepacked, project, project_all, project_gelu};
use bert_model::precision::Precision;
use burn::module::Param;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::Distribution;
use test_support::{max_abs, minilm_dir};

fn max_abs_difference(a: Tensor<3>, b: Tensor<3>) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let values = |t: Tensor<3>| t.into_data().try_to_vec::<f32>().unwrap();
    max_abs(&values(a), &values(b))
}

fn layer(d_in: usize, d_out: usize, device: &Device) -> Linear {
    let mut linear = LinearConfig::new(d_in, d_out).init(device);
    // A bias that matters (burn initialises it small).
    linear.bias = Some(Param::from_tensor(Tensor::random(
        [d_out],
        Distribution::Uniform(-1.0, 1.0),
        device,
    )));
    linear
}

#[test]
fn packed_projections_match_burn_linear() {
    let cpu = BackendKind::Cpu.device().unwrap();
    // [batch, tokens, in] → out
    let cases = [
        ([1, 25, 384], 384),  // a sentence at batch 1: six whole panels
        ([3, 37, 384], 1536), // 111 rows, 24 panels
        ([2, 9, 100], 130),   // panels of 64, 64 and 2 columns
        ([2, 5, 16], 6),      // one panel narrower than 64
        ([4, 40, 32], 8),     // one panel, rows split into blocks
        ([1, 1, 8], 12),      // one row
    ];
    for (shape, out) in cases {
        let linear = layer(shape[2], out, &cpu);
        let packed = Prepacked::of(&[&linear]);
        assert!(packed.is_packed(), "{shape:?} → {out} was not packed");
        let x = Tensor::<3>::random(shape, Distribution::Uniform(-1.0, 1.0), &cpu);
        let error = max_abs_difference(project(&linear, &packed, x.clone()), linear.forward(x));
        assert!(
            error <= 1e-4,
            "{shape:?} → {out}: max |packed − burn| = {error}"
        );
    }
}

#[test]
fn packed_query_key_value_match_and_accept_a_strided_input() {
    let cpu = BackendKind::Cpu.device().unwrap();
    let [q, k, v] = [
        layer(64, 64, &cpu),
        layer(64, 64, &cpu),
        layer(64, 128, &cpu),
    ];
    let packed = Prepacked::of(&[&q, &k, &v]);
    // [tokens, batch, in] made [batch, tokens, in]: not contiguous.
    let x = Tensor::<3>::random([7, 2, 64], Distribution::Uniform(-1.0, 1.0), &cpu).swap_dims(0, 1);
    let got = project_all([&q, &k, &v], &packed, x.clone());
    for (got, linear) in got.into_iter().zip([&q, &k, &v]) {
        let error = max_abs_difference(got, linear.forward(x.clone()));
        assert!(error <= 1e-4, "max |packed − burn| = {error}");
    }
}

#[test]
fn packing_made_before_the_weights_changed_is_not_used() {
    let cpu = BackendKind::Cpu.device().unwrap();
    let mut linear = layer(32, 64, &cpu);
    let packed = Prepacked::of(&[&linear]);
    linear.weight = Param::from_tensor(Tensor::random(
        [32, 64],
        Distribution::Uniform(-1.0, 1.0),
        &cpu,
    ));
    let x = Tensor::<3>::random([2, 3, 32], Distribution::Uniform(-1.0, 1.0), &cpu);
    let error = max_abs_difference(project(&linear, &packed, x.clone()), linear.forward(x));
    assert!(error <= 1e-4, "stale panels used: max difference {error}");
}

#[test]
fn half_precision_and_bias_free_projections_are_not_packed() {
    let cpu = BackendKind::Cpu.device().unwrap();
    let half = bert_model::precision::compute_model(&layer(16, 16, &cpu), Precision::Float16);
    assert!(
        !Prepacked::of(&[&half]).is_packed(),
        "float16 weights packed"
    );
    let no_bias = LinearConfig::new(16, 16).with_bias(false).init(&cpu);
    assert!(
        !Prepacked::of(&[&no_bias]).is_packed(),
        "a projection without bias packed"
    );
}

#[test]
fn packed_projection_with_gelu_matches_burn() {
    let cpu = BackendKind::Cpu.device().unwrap();
    let linear = layer(48, 200, &cpu);
    let packed = Prepacked::of(&[&linear]);
    let x = Tensor::<3>::random([2, 11, 48], Distribution::Uniform(-2.0, 2.0), &cpu);
    let got = project_gelu(&linear, &packed, &x).expect("packed on the CPU");
    let error = max_abs_difference(
        got,
        burn::tensor::activation::gelu(linear.forward(x.clone())),
    );
    assert!(error <= 1e-4, "max |fused − burn| = {error}");
    let unpacked = Prepacked::default();
    assert!(
        project_gelu(&linear, &unpacked, &x).is_none(),
        "fused without packing"
    );
}

/// A batch with much padding runs its real tokens alone (`RealRows`) on the CPU: every vector
/// must equal the one its input gets alone in a batch of one (no padding at all).
#[test]
fn skipping_padding_changes_no_vector() {
    let cpu = BackendKind::Cpu.device().unwrap();
    let (embedder, _) = bert_model::BertEmbedding::from_dir(&minilm_dir(), &cpu).unwrap();
    let long: Vec<u32> = (0..60).map(|i| 2000 + i * 7).collect();
    let batch: Vec<Vec<u32>> = vec![
        long,
        vec![101, 7592, 102],
        vec![101, 2023, 2003, 1037, 3231, 102],
        vec![101, 102],
    ];
    let together = embedder.embed_ids(&batch, false, true).unwrap();
    for (ids, got) in batch.iter().zip(&together) {
        let alone = &embedder
            .embed_ids(std::slice::from_ref(ids), false, true)
            .unwrap()[0];
        let sentence = max_abs(&got.sentence, &alone.sentence);
        assert!(
            sentence <= 1e-5,
            "{} tokens: sentence vectors differ by {sentence}",
            ids.len()
        );
        assert_eq!(got.tokens.len(), ids.len());
        for (a, b) in got.tokens.iter().zip(&alone.tokens) {
            let token = max_abs(a, b);
            assert!(
                token <= 1e-5,
                "{} tokens: token vectors differ by {token}",
                ids.len()
            );
        }
    }
}
