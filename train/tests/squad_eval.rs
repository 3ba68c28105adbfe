//! Our SQuAD evaluation against the official scripts' output on the same predictions
//! (fixtures/squad/README.md says how the expected files were made).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bert_train::tasks::squad_eval::{Dataset, evaluate_v1, evaluate_v2, parse_ordered_probs};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/squad")
        .join(name)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn expected(name: &str) -> String {
    read(&fixture(name)).trim_end().to_string()
}

#[test]
fn squad2_cases_print_what_the_official_script_prints() {
    let data: Dataset = serde_json::from_str(&read(&fixture("squad2_cases.json"))).unwrap();
    let preds: HashMap<String, String> =
        serde_json::from_str(&read(&fixture("squad2_preds.json"))).unwrap();
    let (out, warnings) = evaluate_v2(&data, &preds, None, 1.0).unwrap();
    assert_eq!(out, expected("squad2_expected.json"));
    assert!(warnings.is_empty());
    let na = parse_ordered_probs(&read(&fixture("squad2_na_probs.json"))).unwrap();
    let (out, _) = evaluate_v2(&data, &preds, Some(&na), 1.0).unwrap();
    assert_eq!(out, expected("squad2_expected_with_na.json"));
}

#[test]
fn squad1_dev_prints_what_the_official_script_prints() {
    let dev = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/squad/dev-v1.1.json");
    let data: Dataset = serde_json::from_str(&read(&dev)).unwrap();
    let preds: HashMap<String, String> =
        serde_json::from_str(&read(&fixture("squad1_preds.json"))).unwrap();
    let (out, warnings) = evaluate_v1(&data, &preds);
    assert_eq!(out, expected("squad1_expected.json"));
    assert_eq!(
        warnings.len(),
        10570 - 400,
        "one warning per unanswered question"
    );
}
