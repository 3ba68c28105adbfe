//! Fine-tune `BertForQuestionAnswering` on a SQuAD file and predict another: the loss is the
//! mean of the start and end cross-entropies; the rest — optimizer, schedule, clipping, seeded
//! order and dropout, `--dtype`, `--gpus`, checkpoints and resume, metrics — is the training
//! core's epoch loop ([`crate::training::epochs`]), as for the classifier. Predictions run in
//! the compute dtype and are read as float32.

use std::path::PathBuf;

use anyhow::{Context, Result, ensure};
use burn::module::Module;
use burn::prelude::*;
use burn::tensor::activation::log_softmax;

use super::data::read_squad;
use super::features::{SquadFeature, WindowParams, features_tokenizer, squad_features};
use super::postprocess::{AnswerParams, Answers, best_answers, ordered_json};
use crate::finetune::model_io::{Head, ModelFiles};
use crate::tasks::squad_eval::{evaluate_v1, evaluate_v2};
use crate::training::epochs::{EpochEnd, EpochSettings, EpochTask, prepare_output_dir, run_epochs};
use crate::training::optim::build_optimizer_with_epsilon;
use crate::training::precision::{check_device, compute_model, to_f32};
use crate::training::{OptimizerKind, Precision};
use bert_core::fsutil::write_atomic;
use bert_core::rng::{HEAD_SEED_SALT, mix};
use bert_model::BackendKind;
use bert_model::checkpoint::ModelSource;
use bert_model::checkpoint::{
    HfTensors, load_bert_for_question_answering, load_bert_model, save_hf_model, weights_path,
};
use bert_model::modules::{BertForQuestionAnswering, BertInput};

#[derive(Debug, Clone)]
pub struct SquadConfig {
    pub model: ModelSource,
    pub bert_dataset: Option<String>,
    /// Training file (none with `only_predict`).
    pub train_file: Option<PathBuf>,
    pub train_articles: Option<std::ops::Range<usize>>,
    pub predict_file: PathBuf,
    pub predict_articles: Option<std::ops::Range<usize>>,
    pub version_2: bool,
    pub window: WindowParams,
    pub answers: AnswerParams,
    pub batch_size: usize,
    /// Micro-batches of `batch_size` whose gradients make one optimizer step.
    pub accumulate: usize,
    pub test_batch_size: usize,
    pub epochs: usize,
    pub lr: f64,
    pub epsilon: f64,
    pub warmup_ratio: f64,
    pub weight_decay: f64,
    /// Gradients are rescaled to at most this global L2 norm.
    pub max_grad_norm: f64,
    /// Data-parallel ranks: device indices of `backend` (as `finetune-classifier --gpus`).
    pub gpus: Vec<usize>,
    /// Also checkpoint every N optimizer steps within an epoch (0: at epoch ends only).
    pub ckpt_interval: u64,
    /// Checkpoints kept in OUTPUT_DIR/checkpoints.
    pub keep_checkpoints: usize,
    /// Resume from the newest intact checkpoint, skipping damaged newer ones.
    pub skip_damaged_checkpoints: bool,
    pub optimizer: OptimizerKind,
    pub seed: u64,
    pub log_interval: usize,
    pub output_dir: PathBuf,
    /// Replace what `output_dir` holds (a finished run's outputs, old checkpoints).
    pub overwrite: bool,
    pub backend: BackendKind,
    /// `--dtype`: the precision of forward, backward and prediction (weights stay float32).
    pub dtype: Precision,
    pub print: bool,
}

impl SquadConfig {
    /// The settings that decide the trajectory: a checkpoint continues only a run with the
    /// same ones.
    pub fn trajectory_fingerprint(&self) -> serde_json::Value {
        serde_json::json!({
            "model": format!("{:?}", self.model),
            "bert_dataset": self.bert_dataset,
            "window": format!("{:?}", self.window),
            "batch_size": self.batch_size,
            "accumulate": self.accumulate,
            "ranks": self.gpus.len(),
            "epochs": self.epochs,
            "lr": self.lr,
            "epsilon": self.epsilon,
            "warmup_ratio": self.warmup_ratio,
            "weight_decay": self.weight_decay,
            "max_grad_norm": self.max_grad_norm,
            "optimizer": self.optimizer,
            "seed": self.seed,
            "dtype": self.dtype,
        })
    }
}

pub struct SquadSummary {
    pub epoch_losses: Vec<f64>,
    /// The official evaluation's JSON on the prediction file.
    pub evaluation: String,
    pub answers: Answers,
}

/// A batch of windows padded with the tokenizer's `[PAD]`, and their answer positions.
struct SquadBatch {
    input: BertInput,
    starts: Tensor<1, Int>,
    ends: Tensor<1, Int>,
}

fn batch(features: &[&SquadFeature], pad_id: u32, device: &Device) -> Result<SquadBatch> {
    let rows = features.len();
    let ids: Vec<&[u32]> = features.iter().map(|f| f.input_ids.as_slice()).collect();
    let types: Vec<&[u32]> = features
        .iter()
        .map(|f| f.token_type_ids.as_slice())
        .collect();
    let seq = ids.iter().map(|s| s.len()).max().unwrap_or(1);
    let input = BertInput::padded(&ids, Some(&types), pad_id, seq, device)?;
    let positions = |f: &dyn Fn(&SquadFeature) -> usize| {
        let v: Vec<i64> = features.iter().map(|x| f(x) as i64).collect();
        Tensor::<1, Int>::from_data(TensorData::new(v, [rows]), device)
    };
    Ok(SquadBatch {
        input,
        starts: positions(&|f| f.start_position),
        ends: positions(&|f| f.end_position),
    })
}

/// Mean of the start and end cross-entropies, in float32 (padding positions are real logits of
/// the pad tokens, as in HF; the labels never point there).
fn span_loss(model: &BertForQuestionAnswering, batch: &SquadBatch) -> Result<Tensor<1>> {
    let [rows] = batch.starts.dims();
    let spans = model.forward(batch.input.clone());
    let ce = |logits: Tensor<2>, gold: Tensor<1, Int>| {
        -log_softmax(to_f32(logits), 1)
            .gather(1, gold.reshape([rows, 1]))
            .mean()
    };
    Ok((ce(spans.start, batch.starts.clone()) + ce(spans.end, batch.ends.clone())).div_scalar(2.0))
}

/// `finetune-squad` as a task of the training core's epoch loop (evaluation comes once, after
/// training, on the prediction file).
struct SquadTask<'a> {
    features: &'a [SquadFeature],
    pad_id: u32,
}

impl EpochTask for SquadTask<'_> {
    type Model = BertForQuestionAnswering;
    type Batch = SquadBatch;

    fn batch(&self, examples: &[usize], device: &Device) -> Result<SquadBatch> {
        let rows: Vec<&SquadFeature> = examples.iter().map(|&i| &self.features[i]).collect();
        batch(&rows, self.pad_id, device)
    }

    fn rows(&self, batch: &SquadBatch) -> usize {
        batch.starts.dims()[0]
    }

    fn loss(&self, model: &BertForQuestionAnswering, batch: &SquadBatch) -> Result<Tensor<1>> {
        span_loss(model, batch)
    }

    fn end_epoch(&mut self, _: &BertForQuestionAnswering, _: usize) -> Result<EpochEnd> {
        Ok(EpochEnd::default())
    }

    fn state(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    fn restore(&mut self, _: serde_json::Value) -> Result<()> {
        Ok(())
    }
}

fn predict(
    model: &BertForQuestionAnswering,
    features: &[SquadFeature],
    batch_size: usize,
    pad_id: u32,
    dtype: Precision,
) -> Result<Vec<(Vec<f32>, Vec<f32>)>> {
    let model = compute_model(&model.valid(), dtype);
    let device = model.qa_outputs.weight.val().device();
    let mut out = Vec::with_capacity(features.len());
    for chunk in features.chunks(batch_size) {
        let refs: Vec<&SquadFeature> = chunk.iter().collect();
        let seq = chunk.iter().map(|f| f.input_ids.len()).max().unwrap_or(1);
        let spans = model.forward(batch(&refs, pad_id, &device)?.input);
        let read = |t: Tensor<2>| {
            t.into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .map_err(|e| anyhow::anyhow!("reading logits: {e:?}"))
        };
        let (start, end) = (read(spans.start)?, read(spans.end)?);
        for (r, f) in chunk.iter().enumerate() {
            let n = f.input_ids.len();
            out.push((
                start[r * seq..r * seq + n].to_vec(),
                end[r * seq..r * seq + n].to_vec(),
            ));
        }
    }
    Ok(out)
}

fn note(config: &SquadConfig, message: impl AsRef<str>) {
    if config.print {
        eprintln!("{}", message.as_ref());
    }
}

/// Train (when there is a training file) and predict as `config` says; writes
/// `predictions.json`, `nbest_predictions.json`, `null_odds.json` (2.0) and, after training,
/// `OUTPUT_DIR/model/` (HF `BertForQuestionAnswering`).
pub fn run_squad(config: &SquadConfig) -> Result<SquadSummary> {
    for (flag, v) in [
        ("--batch-size", config.batch_size),
        ("--accumulate", config.accumulate),
        ("--test-batch-size", config.test_batch_size),
        ("--keep-checkpoints", config.keep_checkpoints),
        ("--gpus (a list)", config.gpus.len()),
    ] {
        ensure!(v >= 1, "{flag} must be at least 1");
    }
    ensure!(
        config.max_grad_norm > 0.0 && config.max_grad_norm.is_finite(),
        "--max-grad-norm must be a positive number, got {}",
        config.max_grad_norm
    );
    let files = ModelFiles::open(
        &config.model,
        config.bert_dataset.as_deref(),
        config.window.max_seq_length,
    )?;
    files.check_max_len(config.window.max_seq_length, "--max-seq-length")?;
    let tokenizer = features_tokenizer(&files.tokenizer)?;
    let pad_id = crate::finetune::features::pad_id(&tokenizer);
    let training = config.train_file.is_some();
    // The model lives on the first rank's device (--gpus); prediction runs there alone.
    let base = config
        .backend
        .device_at(config.gpus[0], config.gpus.len())?;
    check_device(config.dtype, &base)?;
    let device = if training { base.autodiff() } else { base };
    let bert_config = &files.config;
    let model = match &config.model {
        ModelSource::Dir(dir) => {
            let weights = HfTensors::from_file(&weights_path(dir)?)?;
            if weights.task_head() == Some("qa_outputs.") {
                load_bert_for_question_answering(bert_config, &weights, &device)?.0
            } else {
                ensure!(
                    training,
                    "{} has no question-answering head (qa_outputs.*): give --train-file to \
                     fine-tune it first",
                    dir.display()
                );
                let encoder = load_bert_model(bert_config, &weights, &device)?.0;
                device.seed(mix(config.seed, HEAD_SEED_SALT, 0));
                BertForQuestionAnswering::with_encoder(encoder, bert_config, &device)
            }
        }
        ModelSource::Zoo(_) => {
            let encoder =
                crate::training::init::init_from_scratch(bert_config, config.seed, &device).bert;
            device.seed(mix(config.seed, HEAD_SEED_SALT, 0));
            BertForQuestionAnswering::with_encoder(encoder, bert_config, &device)
        }
    };
    prepare_output_dir(&config.output_dir, config.overwrite, training)?;
    std::fs::create_dir_all(&config.output_dir)
        .with_context(|| format!("cannot create {}", config.output_dir.display()))?;

    let mut model = model;
    let mut epoch_losses = Vec::new();
    if let Some(train_file) = &config.train_file {
        let data = read_squad(train_file, config.train_articles.clone(), true)?;
        if data.bad_offsets > 0 {
            note(
                config,
                format!(
                    "skipped {} training question(s) whose answer does not match its context offset",
                    data.bad_offsets
                ),
            );
        }
        let features = squad_features(&tokenizer, &data.examples, config.window)?;
        ensure!(
            !features.is_empty(),
            "{} gives no training features",
            train_file.display()
        );
        let n = features.len();
        let ranks = config.gpus.len();
        let mut devices = vec![device.clone()];
        for &g in &config.gpus[1..] {
            let other = config.backend.device_at(g, ranks)?;
            check_device(config.dtype, &other)?;
            devices.push(other.autodiff());
        }
        let settings = EpochSettings {
            examples: n,
            batch_size: config.batch_size,
            accumulate: config.accumulate,
            devices,
            epochs: config.epochs,
            seed: config.seed,
            lr: config.lr,
            warmup_ratio: config.warmup_ratio,
            max_grad_norm: config.max_grad_norm,
            dtype: config.dtype,
            log_interval: config.log_interval,
            output_dir: config.output_dir.clone(),
            ckpt_interval: config.ckpt_interval,
            keep_checkpoints: config.keep_checkpoints,
            skip_damaged_checkpoints: config.skip_damaged_checkpoints,
            fingerprint: config.trajectory_fingerprint(),
            data: serde_json::json!({
                "train_file": train_file,
                "train_articles": format!("{:?}", config.train_articles),
                "windows": n,
            }),
            print: config.print,
        };
        note(
            config,
            format!(
                "fine-tuning on {} questions ({n} windows), {} epochs of {} steps",
                data.examples.len(),
                config.epochs,
                settings.steps_per_epoch()
            ),
        );
        let optimizer =
            build_optimizer_with_epsilon(config.optimizer, config.weight_decay, config.epsilon);
        let mut task = SquadTask {
            features: &features,
            pad_id,
        };
        let outcome = run_epochs(&mut task, model, optimizer, &settings)?;
        if config.dtype.needs_loss_scaling() {
            note(
                config,
                format!(
                    "float16: {} step(s) skipped on overflowing gradients",
                    outcome.skipped_steps
                ),
            );
        }
        epoch_losses = outcome.train_losses;
        model = outcome.model.valid();
        let dir = config.output_dir.join("model");
        let hf = Head::QuestionAnswering.config_for(bert_config, Some("squad"));
        save_hf_model(&model, &hf, Head::QuestionAnswering.architecture(), &dir)?;
        files.write_tokenizer(&dir, Some(config.window.max_seq_length))?;
        note(
            config,
            format!("model (HuggingFace layout): {}", dir.display()),
        );
    }

    let data = read_squad(&config.predict_file, config.predict_articles.clone(), false)?;
    let version_2 = config.version_2 || data.version_2;
    let features = squad_features(&tokenizer, &data.examples, config.window)?;
    let logits = predict(
        &model,
        &features,
        config.test_batch_size,
        pad_id,
        config.dtype,
    )?;
    let params = AnswerParams {
        version_2,
        ..config.answers
    };
    let answers = best_answers(&data.examples, &features, &logits, params);
    let out = &config.output_dir;
    write_atomic(
        &out.join("predictions.json"),
        ordered_json(&answers.predictions)?.as_bytes(),
    )?;
    write_atomic(
        &out.join("nbest_predictions.json"),
        ordered_json(&answers.nbest)?.as_bytes(),
    )?;
    if version_2 {
        write_atomic(
            &out.join("null_odds.json"),
            ordered_json(&answers.null_odds)?.as_bytes(),
        )?;
    }
    // Score against the same questions (the article range, when given).
    let dataset = &data.dataset;
    let preds = answers.predictions.iter().cloned().collect();
    let evaluation = if version_2 {
        let odds = answers.null_odds.clone();
        evaluate_v2(dataset, &preds, Some(&odds), 1.0)?.0
    } else {
        evaluate_v1(dataset, &preds).0
    };
    note(
        config,
        format!(
            "{} on {} questions: {evaluation}",
            config.predict_file.display(),
            data.examples.len()
        ),
    );
    Ok(SquadSummary {
        epoch_losses,
        evaluation,
        answers,
    })
}
