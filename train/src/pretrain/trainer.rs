//! The pretraining loop: shards → batches → MLM + NSP loss → clipped, accumulated gradients →
//! BERTAdam/AdamW under the warmup/decay schedule; logs, checkpoints, resumes.

use std::path::PathBuf;

use anyhow::{Context, Result, bail, ensure};
use bert_core::vocab::{Vocab, sha256_hex};
use bert_pipeline::ShardSet;
use bert_pipeline::loader::{BatchLoader, DynamicMasking, LoaderConfig, LoaderPosition};
use bert_pipeline::masking::MaskingParams;
use bert_pipeline::shards::manifest::Manifest;
use burn::module::Module;

use super::config::PretrainConfig;
use super::eval::{EvalResult, evaluate};
use super::loss::BatchTensors;
use super::metrics::{Interval, MetricsLog, MetricsRow};
use super::plot::write_metrics_svg;
use super::step::train_step;
use crate::training::checkpoint::{self as state, STATE_VERSION, TrainState};
use crate::training::init::init_from_scratch;
use crate::training::optim::build_optimizer;
use crate::training::precision::{LossScale, check_device};
use crate::training::progress::Progress;
use crate::training::schedule::LinearSchedule;
use crate::training::step::{MicroBatch, RankWork, StepSettings, micro_batch_seed};
use bert_core::fsutil::write_atomic;
use bert_model::checkpoint::ModelSource;
use bert_model::checkpoint::{
    bert_tokenizer_config, copy_tokenizer_files, load_pretraining_dir, save_bert_for_pretraining,
    write_vocab_txt,
};
use bert_model::modules::{BertConfig, BertForPreTraining};

/// How to run, beside what to train (nothing here changes the trajectory).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Stop after this optimizer step as if killed (tests of resuming); `None`: run to the end.
    pub stop_after: Option<u64>,
    /// Print the log lines and notes on stderr.
    pub print: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            stop_after: None,
            print: true,
        }
    }
}

/// What a run ended with.
pub struct Summary {
    /// The trained model, without autodiff.
    pub model: BertForPreTraining,
    pub config: BertConfig,
    /// Optimizer steps done in total.
    pub step: u64,
    /// The checkpoint step this run continued from.
    pub resumed_from: Option<u64>,
    pub last_metrics: Option<MetricsRow>,
    /// The HuggingFace directory written at the end of training.
    pub final_dir: Option<PathBuf>,
    pub eval: Option<EvalResult>,
}

/// The shards' vocabulary, loaded again (for re-masking and `vocab.txt`), if it is still the
/// one they were built with.
fn shard_vocab(manifest: &Manifest) -> Result<Vocab> {
    let info = &manifest.vocab;
    let vocab = Vocab::load(&info.name, Some(info.lowercase))
        .with_context(|| format!("cannot load the shards' vocabulary {:?}", info.name))?;
    ensure!(
        vocab.sha256 == info.sha256,
        "vocabulary {:?} has changed since the shards were built (sha256 {} vs {})",
        info.name,
        vocab.sha256,
        info.sha256
    );
    Ok(vocab)
}

fn dynamic_masking(manifest: &Manifest) -> Result<DynamicMasking> {
    let vocab = shard_vocab(manifest).context("--dynamic-masking needs the shards' vocabulary")?;
    Ok(DynamicMasking {
        params: MaskingParams {
            masked_lm_prob: manifest.config.masked_lm_prob,
            max_predictions_per_seq: manifest.config.max_predictions_per_seq,
            whole_word_mask: manifest.config.whole_word_mask,
        },
        cls_id: manifest.vocab.cls_id,
        sep_id: manifest.vocab.sep_id,
        mask_id: manifest.vocab.mask_id,
        is_continuation: vocab.is_continuation,
    })
}

/// The model and the shards must agree on the vocabulary and the sequence length.
fn check_model_fits_data(
    config: &PretrainConfig,
    model: &BertConfig,
    manifest: &Manifest,
) -> Result<()> {
    let vocab = &manifest.vocab;
    ensure!(
        model.vocab_size == vocab.size,
        "the model has a vocabulary of {} tokens but the shards in {} were built with {:?} \
         ({} tokens): build the shards with the model's vocabulary (bert-pipeline build --vocab \
         MODEL_DIR/vocab.txt) or choose a model of that vocabulary",
        model.vocab_size,
        config.shards.display(),
        vocab.name,
        vocab.size
    );
    if let ModelSource::Dir(dir) = &config.model {
        let path = dir.join("vocab.txt");
        if let Ok(bytes) = std::fs::read(&path) {
            ensure!(
                sha256_hex(&bytes) == vocab.sha256,
                "{} is not the vocabulary the shards were built with ({:?}): the token ids \
                 would mean other words; rebuild the shards with --vocab {}",
                path.display(),
                vocab.name,
                path.display()
            );
        }
    }
    ensure!(
        manifest.config.max_seq_length <= model.max_position_embeddings,
        "the shards have sequences of up to {} tokens, the model only {} positions",
        manifest.config.max_seq_length,
        model.max_position_embeddings
    );
    Ok(())
}

/// What identifies the data a checkpoint was trained on.
fn data_fingerprint(manifest: &Manifest) -> serde_json::Value {
    serde_json::json!({
        "vocab_sha256": manifest.vocab.sha256,
        "instances": manifest.totals.instances,
        "shards": manifest.shards.len(),
    })
}

/// Write the final model in HuggingFace's layout, with the vocabulary it was trained on.
fn write_final(
    config: &PretrainConfig,
    model: &BertForPreTraining,
    bert_config: &BertConfig,
    manifest: &Manifest,
) -> Result<PathBuf> {
    let dir = config.ckpt_dir.join("final");
    save_bert_for_pretraining(model, bert_config, &dir)?;
    match &config.model {
        ModelSource::Dir(source) if source.join("vocab.txt").is_file() => {
            copy_tokenizer_files(source, &dir)?
        }
        _ => {
            let vocab = shard_vocab(manifest)?;
            write_vocab_txt(&dir, &vocab.tokens)?;
            let tokenizer_config =
                bert_tokenizer_config(vocab.lowercase, bert_config.max_position_embeddings);
            write_atomic(
                &dir.join("tokenizer_config.json"),
                serde_json::to_string_pretty(&tokenizer_config)?.as_bytes(),
            )?;
        }
    }
    Ok(dir)
}

/// Pretraining's place in its data, in a checkpoint: one loader position per rank.
fn loaders_position(
    positions: &[LoaderPosition],
) -> Result<serde_json::Map<String, serde_json::Value>> {
    let mut position = serde_json::Map::new();
    position.insert("loaders".into(), serde_json::to_value(positions)?);
    Ok(position)
}

fn loader_positions(found: &state::Found) -> Result<Vec<LoaderPosition>> {
    let loaders = found
        .state
        .position
        .get("loaders")
        .with_context(|| format!("{} has no loader positions", found.dir.display()))?;
    serde_json::from_value(loaders.clone())
        .with_context(|| format!("{} has unreadable loader positions", found.dir.display()))
}

fn note(opts: &RunOptions, message: impl AsRef<str>) {
    if opts.print {
        eprintln!("{}", message.as_ref());
    }
}

/// Train as `config` says, continuing from the newest checkpoint in `config.ckpt_dir` if any.
pub fn train(config: &PretrainConfig, opts: &RunOptions) -> Result<Summary> {
    config.validate()?;
    let set = ShardSet::open(&config.shards)?;
    let manifest = set.manifest().clone();
    let bert_config = config.model.bert_config(manifest.vocab.size)?;
    check_model_fits_data(config, &bert_config, &manifest)?;
    let ranks = config.gpus.len();
    ensure!(
        manifest.shards.len() >= ranks,
        "{} has {} shards, fewer than the {ranks} data-parallel ranks of --gpus: rebuild it \
         with a smaller bert-pipeline build --shard-size (more, smaller shards)",
        config.shards.display(),
        manifest.shards.len()
    );
    if let Some(eval_dir) = &config.data_eval {
        let eval_manifest = ShardSet::open(eval_dir)?.manifest().clone();
        ensure!(
            eval_manifest.vocab.sha256 == manifest.vocab.sha256,
            "--data-eval {} was built with another vocabulary than --shards",
            eval_dir.display()
        );
    }
    let devices = config
        .gpus
        .iter()
        .map(|&g| Ok(config.backend.device_at(g, ranks)?.autodiff()))
        .collect::<Result<Vec<_>>>()?;
    let device = devices[0].clone();
    for d in &devices {
        check_device(config.dtype, d, config.backend)?;
    }
    let settings = config.trajectory_fingerprint(&bert_config);
    let data = data_fingerprint(&manifest);

    state::remove_incomplete(&config.ckpt_dir)?;
    let resume = state::latest(&config.ckpt_dir)?;
    let optimizer = build_optimizer(config.optimizer, config.weight_decay);
    let mut loss_scale = config.dtype.needs_loss_scaling().then(LossScale::new);
    let (model, mut optimizer, start_step, mut positions) = match &resume {
        Some(found) => {
            let differ = state::differing_keys(&found.state.settings, &settings);
            if !differ.is_empty() {
                bail!(
                    "{} holds a checkpoint of a run with other settings ({}); rerun with the \
                     same flags to continue it, or give another --ckpt-dir",
                    found.dir.display(),
                    differ.join("; ")
                );
            }
            ensure!(
                found.state.data == data,
                "{} was trained on other shards ({}), not {}; give another --ckpt-dir",
                found.dir.display(),
                found.state.data,
                config.shards.display()
            );
            let fresh = BertForPreTraining::new(&bert_config, &device);
            let (model, optimizer) = state::load(found, fresh, optimizer)?;
            note(
                opts,
                format!(
                    "resuming from {} (step {})",
                    found.dir.display(),
                    found.state.step
                ),
            );
            loss_scale = found.state.loss_scale;
            let loaders = loader_positions(found)?;
            ensure!(
                loaders.len() == ranks,
                "{} was written by a run with {} data-parallel ranks, not {ranks}",
                found.dir.display(),
                loaders.len()
            );
            (model, optimizer, found.state.step, loaders)
        }
        None => {
            let model = match (&config.model, config.pretrained) {
                (ModelSource::Dir(dir), true) => load_pretraining_dir(dir, &device)?.0,
                _ => init_from_scratch(&bert_config, config.seed, &device),
            };
            (model, optimizer, 0, vec![LoaderPosition::default(); ranks])
        }
    };
    // Track gradients of every parameter, however it was created or loaded.
    let mut model = model.train();

    std::fs::create_dir_all(&config.ckpt_dir)
        .with_context(|| format!("cannot create {}", config.ckpt_dir.display()))?;
    let metrics = MetricsLog::open(&config.ckpt_dir, start_step)?;
    let masking = if config.dynamic_masking {
        Some(dynamic_masking(&manifest)?)
    } else {
        None
    };
    let mut loaders = Vec::with_capacity(ranks);
    for (rank, &position) in positions.iter().enumerate() {
        let loader_config = LoaderConfig {
            // With --use-avg-len, --batch-size is a token budget; rows are bounded by it too.
            batch_size: config.batch_size,
            tokens_per_batch: config.use_avg_len.then_some(config.batch_size),
            seed: config.seed,
            rank,
            world: ranks,
            dynamic_masking: masking.clone(),
            prefetch: 4,
        };
        let set = ShardSet::open(&config.shards)?;
        loaders.push(BatchLoader::new(set, loader_config, position)?);
    }
    let schedule = LinearSchedule::new(config.lr, config.warmup_ratio, config.num_steps);
    let end = opts
        .stop_after
        .map_or(config.num_steps, |s| s.min(config.num_steps));
    let mut interval = Interval::default();
    let mut last_metrics = None;
    if start_step == 0 {
        note(
            opts,
            format!(
                "pretraining {} parameters for {} steps on {} ({} instances in {} shards)",
                bert_config.num_params(),
                config.num_steps,
                config.backend,
                manifest.totals.instances,
                manifest.shards.len()
            ),
        );
    }

    let progress = Progress::new(opts.print, start_step, config.num_steps);
    for step in start_step + 1..=end {
        let lr = schedule.lr(step);
        let mut work = Vec::with_capacity(ranks);
        for (rank, loader) in loaders.iter_mut().enumerate() {
            let mut batches = Vec::with_capacity(config.accumulate);
            for micro in 0..config.accumulate {
                let batch = loader
                    .next()
                    .context("the batch loader stopped unexpectedly")??;
                positions[rank] = batch.position_after;
                let tensors =
                    BatchTensors::from_batch(&batch, bert_config.vocab_size, &devices[rank])?;
                interval.add_sizes(batch.rows, tensors.tokens);
                batches.push(MicroBatch {
                    data: tensors,
                    seed: Some(micro_batch_seed(
                        config.seed,
                        step,
                        rank * config.accumulate + micro,
                    )),
                });
            }
            work.push(RankWork {
                device: devices[rank].clone(),
                batches,
            });
        }
        let step_settings = StepSettings {
            lr,
            max_grad_norm: config.max_grad_norm,
            precision: config.dtype,
            loss_scale: loss_scale.map_or(1.0, |s| s.scale),
        };
        let (updated, report) = train_step(model, &mut optimizer, work, step_settings)
            .with_context(|| {
                format!(
                    "step {step}: stopped without saving, so the newest checkpoint in {} is the \
                 last good state. A diverging run needs a lower --lr or a longer warmup \
                 (--warmup-ratio)",
                    config.ckpt_dir.display()
                )
            })?;
        model = updated;
        if let Some(scale) = &mut loss_scale {
            scale.update(report.overflowed);
        }
        for stats in &report.micro_batches {
            interval.add_stats(stats);
        }
        interval.add_step(report.grad_norm);
        progress.step(step);

        if step % config.log_interval == 0 || step == config.num_steps {
            let row = interval.finish(step, lr);
            progress.line(&row.line(config.num_steps));
            progress.set_message(&row.brief());
            metrics.append(&row)?;
            last_metrics = Some(row);
        }
        if step % config.ckpt_interval == 0 || step == config.num_steps {
            let train_state = TrainState {
                format_version: STATE_VERSION,
                step,
                position: loaders_position(&positions)?,
                loss_scale,
                seed: config.seed,
                settings: settings.clone(),
                data: data.clone(),
            };
            state::save(
                &config.ckpt_dir,
                &train_state,
                &model,
                &optimizer,
                config.keep_checkpoints,
            )?;
        }
    }

    progress.finish();
    let step = end.max(start_step);
    let model = model.valid();
    let mut summary = Summary {
        model,
        config: bert_config,
        step,
        resumed_from: resume.map(|f| f.state.step),
        last_metrics,
        final_dir: None,
        eval: None,
    };
    if step >= config.num_steps {
        let dir = write_final(config, &summary.model, &summary.config, &manifest)?;
        write_metrics_svg(&config.ckpt_dir)?;
        note(
            opts,
            format!("final model (HuggingFace layout): {}", dir.display()),
        );
        summary.final_dir = Some(dir);
        if let Some(eval_dir) = &config.data_eval {
            let result = evaluate(&summary.model, eval_dir, config.batch_size_eval)?;
            note(
                opts,
                format!(
                    "eval on {}: mlm_loss {:.4}  nsp_loss {:.4}  mlm_acc {:.4}  nsp_acc {:.4} ({} sequences)",
                    eval_dir.display(),
                    result.mlm_loss,
                    result.nsp_loss,
                    result.mlm_acc,
                    result.nsp_acc,
                    result.sequences
                ),
            );
            metrics.append(&serde_json::json!({ "step": step, "eval": result }))?;
            summary.eval = Some(result);
        }
    }
    Ok(summary)
}
