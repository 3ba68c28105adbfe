//! The pretraining loop: shards → batches → MLM + NSP loss → clipped, accumulated gradients →
//! BERTAdam/AdamW under the warmup/decay schedule; logs, checkpoints, resumes.

use std::path::PathBuf;

use anyhow::{Context, Result, bail, ensure};
use bert_core::vocab::{Vocab, sha256_hex};
use bert_pipeline::ShardSet;
use bert_pipeline::loader::{
    BatchLoader, BatchShape, DynamicMasking, LoaderConfig, LoaderPosition,
};
use bert_pipeline::masking::MaskingParams;
use bert_pipeline::shards::manifest::Manifest;
use burn::module::Module;

use super::config::PretrainConfig;
use super::eval::{EvalResult, evaluate};
use super::loss::BatchTensors;
use super::metrics::{Interval, MetricsLog, MetricsRow};
use super::plot::write_metrics_svg;
use super::step::train_step_in;
use crate::training::checkpoint::{self as state, STATE_VERSION, TrainState};
use crate::training::collective::{
    Collective, OneProcess, agree, broadcast_json, check_same_parameters,
};
use crate::training::init::init_from_scratch;
use crate::training::optim::build_optimizer;
use crate::training::precision::{LossScale, check_device};
use crate::training::progress::Progress;
use crate::training::schedule::LinearSchedule;
use crate::training::step::{MicroBatch, RankWork, StepSettings, micro_batch_seed};
use bert_core::fsutil::write_atomic;
use bert_model::checkpoint::ModelSource;
use bert_model::checkpoint::{
    HfTensors, bert_tokenizer_config, copy_tokenizer_files, load_bert_for_pretraining,
    save_bert_for_pretraining, weights_path, write_vocab_txt,
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

/// What identifies the data a checkpoint was trained on: the vocabulary, the counts and the
/// hash of every shard (so shards rebuilt from another corpus are other data).
fn data_fingerprint(manifest: &Manifest) -> serde_json::Value {
    let shard_hashes: Vec<&str> = manifest.shards.iter().map(|s| s.sha256.as_str()).collect();
    serde_json::json!({
        "vocab_sha256": manifest.vocab.sha256,
        "instances": manifest.totals.instances,
        "shards": manifest.shards.len(),
        "shards_sha256": sha256_hex(shard_hashes.join("\n").as_bytes()),
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

/// Every rank's loader position, on every process: each process knows its own ranks'.
fn all_positions(
    job: &dyn Collective,
    positions: &[LoaderPosition],
    own: std::ops::Range<usize>,
) -> Vec<LoaderPosition> {
    if job.size() == 1 {
        return positions.to_vec();
    }
    // Three exact integers per rank (positions stay far below 2^53).
    let mut flat = vec![0.0f64; positions.len() * 3];
    for rank in own {
        let p = positions[rank];
        flat[rank * 3..rank * 3 + 3].copy_from_slice(&[
            p.epoch as f64,
            p.shard as f64,
            p.batch as f64,
        ]);
    }
    job.sum_f64(&mut flat);
    flat.chunks(3)
        .map(|c| LoaderPosition {
            epoch: c[0] as u64,
            shard: c[1] as usize,
            batch: c[2] as usize,
        })
        .collect()
}

/// Each process must have the same shards and settings as process 0.
fn same_as_process_0(
    job: &dyn Collective,
    config: &PretrainConfig,
    settings: &serde_json::Value,
    data: &serde_json::Value,
) -> Result<()> {
    let ours = serde_json::json!({ "settings": settings, "data": data });
    let theirs = broadcast_json(job, &ours)?;
    if theirs["data"] != ours["data"] {
        bail!(
            "process {}'s --shards {} are other data than process 0's ({} vs {}): every \
             process must read the same shards (a copy on each machine is fine)",
            job.rank(),
            config.shards.display(),
            ours["data"],
            theirs["data"]
        );
    }
    let differ = state::differing_keys(&theirs["settings"], settings);
    ensure!(
        differ.is_empty(),
        "process {} was started with other settings than process 0 ({})",
        job.rank(),
        differ.join("; ")
    );
    Ok(())
}

/// Enough shards for every rank of the job to have its own.
fn ensure_enough_shards(
    config: &PretrainConfig,
    manifest: &Manifest,
    local_ranks: usize,
    processes: usize,
) -> Result<()> {
    let ranks = local_ranks * processes;
    ensure!(
        manifest.shards.len() >= ranks,
        "{} has {} shards, fewer than the job's {ranks} data-parallel ranks ({processes} \
         process(es) × {local_ranks} device(s) of --gpus): rebuild it with a smaller \
         bert-pipeline build --shard-size (more, smaller shards)",
        config.shards.display(),
        manifest.shards.len()
    );
    Ok(())
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
    train_in(config, opts, &OneProcess)
}

/// [`train`] as one process of a job of `job.size()` (`mpirun -np N`): process p runs the
/// ranks `p·G .. (p+1)·G` of the job's `N·G` (G = `--gpus` devices each), on its machine's
/// devices `--gpus` + `local_rank·G`. Every process reads its ranks' share of the same shards
/// and takes the same steps; gradients and the losses' normalisers are summed over the
/// job; only process 0 writes (checkpoints, metrics, the final model) and prints.
pub fn train_in(
    config: &PretrainConfig,
    opts: &RunOptions,
    job: &dyn Collective,
) -> Result<Summary> {
    let opts = &RunOptions {
        print: opts.print && job.rank() == 0,
        ..opts.clone()
    };
    let writer = job.rank() == 0;
    agree(job, config.validate())?;
    let set = agree(job, ShardSet::open(&config.shards))?;
    let manifest = set.manifest().clone();
    let bert_config = agree(job, config.model.bert_config(manifest.vocab.size))?;
    let bert_config = config.with_dropout(bert_config);
    agree(job, check_model_fits_data(config, &bert_config, &manifest))?;
    let local_ranks = config.gpus.len();
    let ranks = local_ranks * job.size();
    let first_rank = job.rank() * local_ranks;
    agree(
        job,
        ensure_enough_shards(config, &manifest, local_ranks, job.size()),
    )?;
    if let Some(eval_dir) = &config.data_eval {
        let eval_manifest = ShardSet::open(eval_dir)?.manifest().clone();
        ensure!(
            eval_manifest.vocab.sha256 == manifest.vocab.sha256,
            "--data-eval {} was built with another vocabulary than --shards",
            eval_dir.display()
        );
    }
    let offset = job.local_rank() * local_ranks;
    let devices = agree(
        job,
        config
            .gpus
            .iter()
            .map(|&g| {
                let device = config
                    .backend
                    .device_at(g + offset, local_ranks)?
                    .autodiff();
                check_device(config.dtype, &device)?;
                Ok(device)
            })
            .collect::<Result<Vec<_>>>(),
    )?;
    let device = devices[0].clone();
    let settings = config.trajectory_fingerprint(&bert_config, ranks);
    let data = data_fingerprint(&manifest);
    agree(job, same_as_process_0(job, config, &settings, &data))?;

    // Process 0 finds the checkpoint; the others get its files (no shared file system needed).
    let found = if writer {
        state::remove_incomplete(&config.ckpt_dir)
            .and_then(|()| state::latest(&config.ckpt_dir, config.skip_damaged_checkpoints))
    } else {
        Ok(None)
    };
    let mut resume = agree(job, found)?;
    let local_copy;
    if job.size() > 1 {
        let mut bytes = match &resume {
            Some(found) => state::pack(&found.dir)?,
            None => Vec::new(),
        };
        job.broadcast(&mut bytes);
        if !writer && !bytes.is_empty() {
            local_copy = tempfile::tempdir().context("cannot create a temporary directory")?;
            state::unpack(&bytes, local_copy.path())?;
            resume = state::latest(local_copy.path(), false)?;
        }
    }
    let optimizer = build_optimizer(config.optimizer, config.weight_decay);
    let mut loss_scale = config.dtype.needs_loss_scaling().then(LossScale::new);
    // Inside a closure: a process's own failure (a damaged file) must reach `agree`.
    let started = (|| match &resume {
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
                "{} was trained on other shards than {}: the checkpoint's data is {}, these \
                 shards are {}; give another --ckpt-dir",
                found.dir.display(),
                config.shards.display(),
                found.state.data,
                data
            );
            let fresh = BertForPreTraining::new(&bert_config, &device);
            let (model, optimizer) = state::load(found, fresh, optimizer)?;
            for damage in &found.skipped {
                note(opts, format!("skipped a damaged checkpoint: {damage}"));
            }
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
            Ok((model, optimizer, found.state.step, loaders))
        }
        None => {
            let model = match (&config.model, config.pretrained) {
                // The directory's weights in `bert_config` (its config.json, --dropout applied).
                (ModelSource::Dir(dir), true) => {
                    let weights = HfTensors::from_file(&weights_path(dir)?)?;
                    load_bert_for_pretraining(&bert_config, &weights, &device)?.0
                }
                _ => init_from_scratch(&bert_config, config.seed, &device),
            };
            Ok((model, optimizer, 0, vec![LoaderPosition::default(); ranks]))
        }
    })();
    let (model, mut optimizer, start_step, mut positions) = agree(job, started)?;
    // Track gradients of every parameter, however it was created or loaded.
    let mut model = model.train();
    check_same_parameters(&model, job, "at the start")?;

    let opened = if writer {
        std::fs::create_dir_all(&config.ckpt_dir)
            .with_context(|| format!("cannot create {}", config.ckpt_dir.display()))
            .and_then(|()| MetricsLog::open(&config.ckpt_dir, start_step))
            .map(Some)
    } else {
        Ok(None)
    };
    let metrics = agree(job, opened)?;
    let masking = if config.dynamic_masking {
        Some(dynamic_masking(&manifest)?)
    } else {
        None
    };
    // This process's ranks (global indices first_rank..), each with its loader.
    let mut loaders = Vec::with_capacity(local_ranks);
    let own = first_rank..first_rank + local_ranks;
    for (rank, &position) in positions.iter().enumerate().take(own.end).skip(own.start) {
        let loader_config = LoaderConfig {
            // With --use-avg-len, --batch-size is a token budget; rows are bounded by it too.
            batch_size: config.batch_size,
            tokens_per_batch: config.use_avg_len.then_some(config.batch_size),
            seed: config.seed,
            rank,
            world: ranks,
            dynamic_masking: masking.clone(),
            prefetch: 4,
            shape: BatchShape::padded(
                config.pad_multiple(),
                manifest.config.max_predictions_per_seq,
            ),
            drop_remainder: config.drop_remainder(),
        };
        let loader = ShardSet::open(&config.shards)
            .and_then(|set| BatchLoader::new(set, loader_config, position));
        loaders.push(agree(job, loader)?);
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
        let mut work = Vec::with_capacity(local_ranks);
        let loaded = (|| {
            for (local, loader) in loaders.iter_mut().enumerate() {
                let rank = first_rank + local;
                let mut batches = Vec::with_capacity(config.accumulate);
                for micro in 0..config.accumulate {
                    let batch = loader
                        .next()
                        .context("the batch loader stopped unexpectedly")??;
                    positions[rank] = batch.position_after;
                    let tensors =
                        BatchTensors::from_batch(&batch, bert_config.vocab_size, &devices[local])?;
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
                    device: devices[local].clone(),
                    batches,
                });
            }
            Ok(())
        })();
        agree(job, loaded)?;
        let step_settings = StepSettings {
            lr,
            max_grad_norm: config.max_grad_norm,
            precision: config.dtype,
            loss_scale: loss_scale.map_or(1.0, |s| s.scale),
        };
        let (updated, report) = train_step_in(model, &mut optimizer, work, step_settings, job)
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
        interval.add_step(report.grad_norm, report.sync_seconds);
        progress.step(step);

        if step % config.log_interval == 0 || step == config.num_steps {
            interval.sum_over(job);
            let row = interval.finish(step, lr);
            progress.line(&row.line(config.num_steps));
            progress.set_message(&row.brief());
            if let Some(metrics) = &metrics {
                metrics.append(&row)?;
            }
            last_metrics = Some(row);
        }
        if step % config.ckpt_interval == 0 || step == config.num_steps {
            let positions = all_positions(job, &positions, first_rank..first_rank + local_ranks);
            let saved = if writer {
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
                )
                .map(drop)
            } else {
                Ok(())
            };
            // The others wait for the checkpoint: a job killed after this step resumes here.
            agree(job, saved)?;
        }
    }
    check_same_parameters(&model, job, "at the end")?;

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
    if step >= config.num_steps && writer {
        let dir = write_final(config, &summary.model, &summary.config, &manifest)?;
        write_metrics_svg(&config.ckpt_dir)?;
        note(
            opts,
            format!("final model (HuggingFace layout): {}", dir.display()),
        );
        summary.final_dir = Some(dir);
        if let Some(eval_dir) = &config.data_eval {
            let result = evaluate(
                &summary.model,
                eval_dir,
                config.batch_size_eval,
                config.pad_multiple(),
            )?;
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
            if let Some(metrics) = &metrics {
                metrics.append(&serde_json::json!({ "step": step, "eval": result }))?;
            }
            summary.eval = Some(result);
        }
    }
    Ok(summary)
}
