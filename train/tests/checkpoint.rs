//! HF checkpoint import/export on small random models: exact round trips, key variants,
//! and errors that name every bad tensor.

use crate::common::*;
use bert_model::checkpoint::{
    HfTensors, load_bert_for_pretraining, load_bert_model, load_model_dir, load_pretraining_dir,
    save_bert_for_pretraining, save_bert_model, to_hf_safetensors,
};
use bert_model::{BackendKind, BertConfig, BertForPreTraining, BertInput, BertModel};
use burn::prelude::*;
use safetensors::SafeTensors;

fn tiny_config() -> BertConfig {
    let mut config = BertConfig::zoo("bert_2_128_2")
        .unwrap()
        .with_vocab_size(120);
    config.max_position_embeddings = 64;
    config
}

fn sample_input(device: &Device) -> BertInput {
    BertInput::from_ids(&[vec![2, 5, 7, 9, 31, 3], vec![2, 11, 3]], 0, device).unwrap()
}

fn hidden(model: &BertModel, device: &Device) -> Vec<f32> {
    to_vec(model.forward(sample_input(device)).last_hidden_state)
}

/// Rewrite a safetensors file's keys (and drop/add tensors) with `edit`.
fn rewrite(
    bytes: &[u8],
    edit: impl Fn(&str) -> Option<String>,
    extra: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>,
) -> Vec<u8> {
    let st = SafeTensors::deserialize(bytes).unwrap();
    let mut tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .filter_map(|(name, view)| {
            edit(&name).map(|new| {
                (
                    new,
                    view.dtype(),
                    view.shape().to_vec(),
                    view.data().to_vec(),
                )
            })
        })
        .collect();
    tensors.extend(extra);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.safetensors");
    write_safetensors(&path, &tensors);
    std::fs::read(path).unwrap()
}

#[test]
fn export_then_import_reproduces_the_model_exactly() {
    let _turn = crate::common::rng_turn();
    let device = device(BackendKind::Cpu);
    let config = tiny_config();
    let model = BertModel::new(&config, &device);
    let dir = tempfile::tempdir().unwrap();
    save_bert_model(&model, &config, dir.path()).unwrap();

    let (loaded, loaded_config, report) = load_model_dir(dir.path(), &device).unwrap();
    assert_eq!(loaded_config.hidden_size, config.hidden_size);
    assert!(report.unused.is_empty(), "{:?}", report.unused);
    assert!(report.has_pooler);
    assert_eq!(hidden(&model, &device), hidden(&loaded, &device));

    // HF names and layouts in the file: [out, in] linear weights, LayerNorm.weight.
    let bytes = std::fs::read(dir.path().join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut names = st.names();
    names.sort();
    assert!(
        names.contains(&"encoder.layer.1.attention.self.query.weight"),
        "{names:?}"
    );
    assert!(names.contains(&"embeddings.LayerNorm.weight"), "{names:?}");
    assert_eq!(
        st.tensor("encoder.layer.0.intermediate.dense.weight")
            .unwrap()
            .shape(),
        [512, 128]
    );
    // 5 embedding tensors + 16 per layer + 2 pooler.
    assert_eq!(names.len(), 5 + 2 * 16 + 2, "{names:?}");
}

#[test]
fn accepts_bert_prefix_gamma_beta_and_skips_position_ids() {
    let _turn = crate::common::rng_turn();
    let device = device(BackendKind::Cpu);
    let config = tiny_config();
    let model = BertModel::new(&config, &device);
    let bytes = to_hf_safetensors(&model).unwrap();
    let renamed = rewrite(
        &bytes,
        |name| {
            let name = name
                .replace("LayerNorm.weight", "LayerNorm.gamma")
                .replace("LayerNorm.bias", "LayerNorm.beta");
            Some(format!("bert.{name}"))
        },
        vec![
            (
                "bert.embeddings.position_ids".into(),
                safetensors::Dtype::I64,
                vec![1, 64],
                i64_bytes(&(0..64).collect::<Vec<_>>()),
            ),
            (
                "cls.seq_relationship.bias".into(),
                safetensors::Dtype::F32,
                vec![2],
                f32_bytes(&[0.0, 0.0]),
            ),
        ],
    );
    let tensors = HfTensors::from_bytes(renamed, "renamed.safetensors").unwrap();
    let (loaded, report) = load_bert_model(&config, &tensors, &device).unwrap();
    assert_eq!(hidden(&model, &device), hidden(&loaded, &device));
    let ignored: Vec<&str> = report.ignored.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        ignored.contains(&"bert.embeddings.position_ids"),
        "{ignored:?}"
    );
    assert!(
        ignored.contains(&"cls.seq_relationship.bias"),
        "{ignored:?}"
    );
}

#[test]
fn every_missing_or_misshaped_tensor_is_named() {
    let _turn = crate::common::rng_turn();
    let device = device(BackendKind::Cpu);
    let config = tiny_config();
    let bytes = to_hf_safetensors(&BertModel::new(&config, &device)).unwrap();
    let mut extra = vec![(
        "encoder.layer.0.attention.self.key.weight".to_string(),
        safetensors::Dtype::F32,
        vec![128, 64],
        f32_bytes(&vec![0.0; 128 * 64]),
    )];
    extra.push((
        "encoder.layer.0.intermediate.dense.bias".into(),
        safetensors::Dtype::F32,
        vec![7],
        f32_bytes(&[0.0; 7]),
    ));
    let broken = rewrite(
        &bytes,
        |name| {
            let drop = [
                "encoder.layer.1.output.dense.bias",
                "embeddings.LayerNorm.weight",
                "encoder.layer.0.attention.self.key.weight",
                "encoder.layer.0.intermediate.dense.bias",
            ];
            (!drop.contains(&name)).then(|| name.to_string())
        },
        extra,
    );
    let tensors = HfTensors::from_bytes(broken, "broken.safetensors").unwrap();
    let err = load_bert_model(&config, &tensors, &device)
        .unwrap_err()
        .to_string();
    for needle in [
        "broken.safetensors",
        "missing tensor encoder.layer.1.output.dense.bias",
        "missing tensor embeddings.LayerNorm.weight",
        "encoder.layer.0.attention.self.key.weight has shape [128, 64], the model needs [128, 128]",
        "encoder.layer.0.intermediate.dense.bias has shape [7], the model needs [512]",
    ] {
        assert!(err.contains(needle), "{needle:?} not in:\n{err}");
    }
}

#[test]
fn a_config_that_disagrees_with_the_weights_is_diagnosed() {
    let _turn = crate::common::rng_turn();
    let device = device(BackendKind::Cpu);
    let config = tiny_config();
    let bytes = to_hf_safetensors(&BertModel::new(&config, &device)).unwrap();
    let tensors = HfTensors::from_bytes(bytes, "model.safetensors").unwrap();
    let mut wrong = config.clone();
    wrong.num_hidden_layers = 3;
    wrong.hidden_size = 256;
    wrong.num_attention_heads = 4;
    let err = load_bert_model(&wrong, &tensors, &device)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("config.json disagrees with the weights"),
        "{err}"
    );
    assert!(err.contains("hidden_size 256 vs 128"), "{err}");
    assert!(err.contains("num_hidden_layers 3 vs 2"), "{err}");
    assert!(
        err.contains("missing tensor encoder.layer.2.attention.self.query.weight"),
        "{err}"
    );

    let garbage = HfTensors::from_bytes(b"not a safetensors file".to_vec(), "junk.safetensors");
    let err = garbage.err().expect("garbage must not parse").to_string();
    assert!(err.contains("junk.safetensors"), "{err}");
}

#[test]
fn padding_never_changes_the_real_tokens() {
    let _turn = crate::common::rng_turn();
    let device = device(BackendKind::Cpu);
    let config = tiny_config();
    let model = BertModel::new(&config, &device);
    let alone = BertInput::from_ids(&[vec![2, 11, 3]], 0, &device).unwrap();
    let alone = to_vec(model.forward(alone).last_hidden_state);
    let batched = to_vec(model.forward(sample_input(&device)).last_hidden_state);
    // Row 1 of the batch is [2, 11, 3] padded to 6 tokens.
    let h = config.hidden_size;
    let row1 = &batched[6 * h..6 * h + 3 * h];
    assert!(
        max_abs_diff(&alone, row1) < 1e-5,
        "{}",
        max_abs_diff(&alone, row1)
    );
}

#[test]
fn a_checkpoint_without_pooler_loads_without_one() {
    let _turn = crate::common::rng_turn();
    let device = device(BackendKind::Cpu);
    let config = tiny_config();
    let model = BertModel::new(&config, &device);
    let bytes = rewrite(
        &to_hf_safetensors(&model).unwrap(),
        |n| (!n.starts_with("pooler.")).then(|| n.to_string()),
        vec![],
    );
    let (loaded, report) = load_bert_model(
        &config,
        &HfTensors::from_bytes(bytes, "m").unwrap(),
        &device,
    )
    .unwrap();
    assert!(!report.has_pooler);
    let out = loaded.forward(sample_input(&device));
    assert!(out.pooler_output.is_none());
    assert_eq!(to_vec(out.last_hidden_state), hidden(&model, &device));
}

#[test]
fn pretraining_model_round_trips_with_heads() {
    let _turn = crate::common::rng_turn();
    let device = device(BackendKind::Cpu);
    let config = tiny_config();
    let model = BertForPreTraining::new(&config, &device);
    let dir = tempfile::tempdir().unwrap();
    save_bert_for_pretraining(&model, &config, dir.path()).unwrap();
    let bytes = std::fs::read(dir.path().join("model.safetensors")).unwrap();
    let names = SafeTensors::deserialize(&bytes)
        .unwrap()
        .names()
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    for key in [
        "bert.embeddings.word_embeddings.weight",
        "cls.predictions.bias",
        "cls.predictions.transform.LayerNorm.weight",
        "cls.seq_relationship.weight",
    ] {
        assert!(names.iter().any(|n| n == key), "{key} not in {names:?}");
    }

    let (loaded, _, _) = load_pretraining_dir(dir.path(), &device).unwrap();
    let positions = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, 2, 7], [3]), &device);
    let a = model.forward(sample_input(&device), positions.clone());
    let b = loaded.forward(sample_input(&device), positions);
    assert_eq!(a.mlm_logits.dims(), [3, 120]);
    assert_eq!(to_vec(a.mlm_logits), to_vec(b.mlm_logits));
    assert_eq!(to_vec(a.nsp_logits), to_vec(b.nsp_logits));

    // The encoder alone loads from the same file (bert. prefix, heads ignored).
    let (encoder, _, report) = load_model_dir(dir.path(), &device).unwrap();
    assert!(
        report
            .ignored
            .iter()
            .any(|(k, _)| k == "cls.predictions.bias")
    );
    assert_eq!(hidden(&encoder, &device), hidden(&model.bert, &device));

    // ...but an encoder-only file cannot make a pretraining model: the heads are named.
    let enc_dir = tempfile::tempdir().unwrap();
    save_bert_model(&model.bert, &config, enc_dir.path()).unwrap();
    let tensors = HfTensors::from_file(&enc_dir.path().join("model.safetensors")).unwrap();
    let err = load_bert_for_pretraining(&config, &tensors, &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing tensor cls.predictions.bias"), "{err}");
}
