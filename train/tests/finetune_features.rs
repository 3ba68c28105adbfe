//! Fine-tuning features against HuggingFace: the pair encodings of real RTE rows, truncated to a
//! short `--max-len`, equal what `AutoTokenizer(a, b, truncation=True, max_length=N)` gives
//! (Python from BERT_PYTHON).

use std::path::Path;
use std::process::Command;

use crate::common::{minilm_dir, reference_python};
use bert_model::checkpoint::load_tokenizer;
use bert_train::finetune::features::featurize;
use bert_train::tasks::glue::{Split, Task, read_examples};

const SCRIPT: &str = r#"
import json, sys
from transformers import AutoTokenizer
model, max_len, pairs = sys.argv[1], int(sys.argv[2]), json.load(open(sys.argv[3]))
tok = AutoTokenizer.from_pretrained(model)
enc = tok([a for a, _ in pairs], [b for _, b in pairs], truncation=True, max_length=max_len)
print(json.dumps({"input_ids": enc["input_ids"], "token_type_ids": enc["token_type_ids"]}))
"#;

#[test]
fn pair_features_equal_transformers_longest_first_truncation() {
    let rte = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/glue/RTE/train.tsv");
    let mut examples = read_examples(Task::Rte, &rte, Split::Train).unwrap();
    examples.truncate(40);
    let max_len = 48;
    let model = minilm_dir();
    let tokenizer = load_tokenizer(&model, max_len, None).unwrap();
    let ours = featurize(&tokenizer, &examples).unwrap();
    assert!(
        ours.iter().filter(|f| f.input_ids.len() == max_len).count() > 10,
        "the rows should exercise truncation"
    );

    let tmp = tempfile::tempdir().unwrap();
    let pairs_path = tmp.path().join("pairs.json");
    let pairs: Vec<(String, String)> = examples
        .iter()
        .map(|e| (e.text_a.clone(), e.text_b.clone().unwrap()))
        .collect();
    std::fs::write(&pairs_path, serde_json::to_string(&pairs).unwrap()).unwrap();
    let python = reference_python();
    let out = Command::new(&python)
        .args(["-c", SCRIPT])
        .arg(&model)
        .arg(max_len.to_string())
        .arg(&pairs_path)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} (set BERT_PYTHON): {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (i, feature) in ours.iter().enumerate() {
        let ids: Vec<u32> = serde_json::from_value(reference["input_ids"][i].clone()).unwrap();
        let types: Vec<u32> =
            serde_json::from_value(reference["token_type_ids"][i].clone()).unwrap();
        assert_eq!(feature.input_ids, ids, "row {i}");
        assert_eq!(feature.token_type_ids, types, "row {i}");
    }
}
