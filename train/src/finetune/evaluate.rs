//! Predictions of a sequence classifier over a split, the task's dev metrics, and the GLUE
//! submission file (`index<TAB>prediction`).

use std::path::Path;

use anyhow::Result;
use burn::module::Module;

use super::features::{ClassifierBatch, Feature, Padding, length_sorted_batches};
use crate::tasks::glue::{Example, Label, Task};
use crate::tasks::metrics;
use bert_core::fsutil::write_atomic;
use bert_model::modules::BertForSequenceClassification;

/// The model's outputs for every feature, in the features' order (no dropout, no gradients).
pub fn predict(
    model: &BertForSequenceClassification,
    features: &[Feature],
    batch_size: usize,
    padding: Padding,
) -> Result<Vec<Vec<f32>>> {
    let model = model.valid();
    let device = model.classifier.weight.val().device();
    let num_labels = model.num_labels();
    let mut out = vec![Vec::new(); features.len()];
    for indices in length_sorted_batches(features, batch_size) {
        let rows: Vec<&Feature> = indices.iter().map(|&i| &features[i]).collect();
        let batch = ClassifierBatch::new(&rows, padding, &device)?;
        let logits = model
            .forward(batch.input)
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("reading logits: {e:?}"))?;
        for (row, &i) in indices.iter().enumerate() {
            out[i] = logits[row * num_labels..(row + 1) * num_labels].to_vec();
        }
    }
    Ok(out)
}

/// The index of the largest value (the first of equals).
pub fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 { (i, v) } else { best }
        })
        .0
}

/// The task's dev metrics, named as GLUE reports them, the first being the one that picks the
/// best checkpoint: F1 for MRPC and QQP, Matthews correlation for CoLA, Pearson for STS-B,
/// accuracy otherwise.
pub fn task_metrics(task: Task, outputs: &[Vec<f32>], features: &[Feature]) -> Vec<(String, f64)> {
    let named = |pairs: &[(&str, f64)]| -> Vec<(String, f64)> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    };
    if task.is_regression() {
        let (mut pred, mut gold) = (Vec::new(), Vec::new());
        for (o, f) in outputs.iter().zip(features) {
            if let Some(Label::Score(s)) = f.label {
                pred.push(o[0] as f64);
                gold.push(s as f64);
            }
        }
        return named(&[
            ("pearson", metrics::pearson(&pred, &gold)),
            ("spearman", metrics::spearman(&pred, &gold)),
        ]);
    }
    let (mut pred, mut gold) = (Vec::new(), Vec::new());
    for (o, f) in outputs.iter().zip(features) {
        if let Some(Label::Class(c)) = f.label {
            pred.push(argmax(o));
            gold.push(c);
        }
    }
    let accuracy = metrics::accuracy(&pred, &gold);
    match task {
        Task::Mrpc | Task::Qqp => {
            named(&[("f1", metrics::f1(&pred, &gold)), ("accuracy", accuracy)])
        }
        Task::Cola => named(&[("mcc", metrics::matthews(&pred, &gold))]),
        _ => named(&[("accuracy", accuracy)]),
    }
}

/// The GLUE submission file name for a test file of `task` (MNLI has matched and mismatched).
pub fn submission_name(task: Task, test_file: &Path) -> String {
    let stem = test_file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("test");
    match (task, stem) {
        (Task::Mnli, "test_matched") => "MNLI-m.tsv".into(),
        (Task::Mnli, "test_mismatched") => "MNLI-mm.tsv".into(),
        _ => format!("{}.tsv", task.dir_name()),
    }
}

/// `index<TAB>prediction` rows: the class name, or the score (STS-B) to three decimals.
pub fn write_submission(
    path: &Path,
    task: Task,
    examples: &[Example],
    outputs: &[Vec<f32>],
) -> Result<()> {
    let mut text = String::from("index\tprediction\n");
    for (example, output) in examples.iter().zip(outputs) {
        let prediction = if task.is_regression() {
            format!("{:.3}", output[0])
        } else {
            task.labels()[argmax(output)].to_string()
        };
        text.push_str(&format!("{}\t{prediction}\n", example.id));
    }
    write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feature(label: Label) -> Feature {
        Feature {
            input_ids: vec![1],
            token_type_ids: vec![0],
            label: Some(label),
        }
    }

    #[test]
    fn metrics_follow_the_task() {
        let features: Vec<Feature> = [1, 0, 1, 1].map(|c| feature(Label::Class(c))).to_vec();
        let outputs = vec![
            vec![0.1, 0.9],
            vec![0.8, 0.2],
            vec![0.7, 0.3],
            vec![0.0, 1.0],
        ];
        let mrpc = task_metrics(Task::Mrpc, &outputs, &features);
        assert_eq!(mrpc[0].0, "f1");
        assert!((mrpc[0].1 - 0.8).abs() < 1e-12, "{mrpc:?}");
        assert_eq!(mrpc[1], ("accuracy".to_string(), 0.75));
        assert_eq!(
            task_metrics(Task::Rte, &outputs, &features)[0].0,
            "accuracy"
        );
        assert_eq!(task_metrics(Task::Cola, &outputs, &features)[0].0, "mcc");
        let scores: Vec<Feature> = [1.0, 2.0, 3.0].map(|s| feature(Label::Score(s))).to_vec();
        let sts = task_metrics(Task::Stsb, &[vec![0.5], vec![0.7], vec![2.0]], &scores);
        assert_eq!(sts[1], ("spearman".to_string(), 1.0));
    }

    #[test]
    fn submissions_name_classes_and_mnli_halves() {
        let dir = tempfile::tempdir().unwrap();
        let examples: Vec<Example> = ["7", "8"]
            .iter()
            .map(|id| Example {
                id: id.to_string(),
                text_a: "a".into(),
                text_b: None,
                label: None,
            })
            .collect();
        let path = dir.path().join("RTE.tsv");
        write_submission(
            &path,
            Task::Rte,
            &examples,
            &[vec![0.0, 1.0], vec![2.0, 1.0]],
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "index\tprediction\n7\tnot_entailment\n8\tentailment\n"
        );
        assert_eq!(
            submission_name(Task::Mnli, Path::new("d/test_mismatched.tsv")),
            "MNLI-mm.tsv"
        );
        assert_eq!(
            submission_name(Task::Sst, Path::new("d/test.tsv")),
            "SST-2.tsv"
        );
    }
}
