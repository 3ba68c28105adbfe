//! What we export, HuggingFace `transformers` loads and computes the same with: a small random
//! model goes through `train/scripts/check_hf_roundtrip.py` (Python from `BERT_PYTHON`, else the venv of tests/python/setup_venv.sh).

use crate::common::*;
use bert_model::checkpoint::save_bert_model;
use bert_model::{BackendKind, BertConfig, BertInput, BertModel};
use burn::prelude::*;
use safetensors::Dtype;

#[test]
fn transformers_loads_our_export_and_agrees() {
    let _turn = crate::common::rng_turn();
    let device = device(BackendKind::Cpu);
    let mut config = BertConfig::zoo("bert_2_128_2")
        .unwrap()
        .with_vocab_size(200);
    config.max_position_embeddings = 64;
    config.type_vocab_size = 2;
    let model = BertModel::new(&config, &device);

    let ids = vec![vec![2u32, 17, 54, 199, 8, 3, 40, 41, 3], vec![2, 5, 3]];
    let input = BertInput::from_ids(&ids, 0, &device).unwrap();
    // Segment B for the tail of the first sentence, to cover token_type_ids too.
    let types: Vec<i64> = vec![0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let input = BertInput {
        token_type_ids: Tensor::from_data(TensorData::new(types, [2, 9]), &device),
        ..input
    };
    let out = model.forward(input.clone());

    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    save_bert_model(&model, &config, &export).unwrap();

    let inputs = dir.path().join("inputs.safetensors");
    write_bert_inputs(&inputs, input);
    let outputs = dir.path().join("outputs.safetensors");
    write_safetensors(
        &outputs,
        &[
            (
                "last_hidden_state".into(),
                Dtype::F32,
                vec![2, 9, 128],
                f32_bytes(&to_vec(out.last_hidden_state)),
            ),
            (
                "pooler_output".into(),
                Dtype::F32,
                vec![2, 128],
                f32_bytes(&to_vec(out.pooler_output.unwrap())),
            ),
        ],
    );

    check_hf_roundtrip(&export, &inputs, &outputs, None);
}
