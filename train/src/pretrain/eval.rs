//! Losses and accuracies over every instance of a shard directory once (`--data-eval`, and
//! the memorisation check): no dropout, no gradients, the stored masks.

use std::path::Path;

use anyhow::Result;
use bert_pipeline::ShardSet;
use bert_pipeline::loader::{BatchLoader, BatchShape, LoaderConfig, LoaderPosition};
use burn::module::Module;
use serde::{Deserialize, Serialize};

use super::loss::{BatchStats, BatchTensors, pretraining_losses};
use bert_model::modules::BertForPreTraining;

/// Per-token MLM and per-sequence NSP averages over a whole data set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EvalResult {
    pub mlm_loss: f64,
    pub nsp_loss: f64,
    pub mlm_acc: f64,
    pub nsp_acc: f64,
    pub sequences: u64,
    pub masked_tokens: u64,
}

/// Evaluate `model` (any device; it is run without autodiff) on every instance in `shards`.
pub fn evaluate(
    model: &BertForPreTraining,
    shards: &Path,
    batch_size: usize,
    pad_multiple: usize,
) -> Result<EvalResult> {
    let model = model.valid();
    let embeddings = model.bert.embeddings.word_embeddings.weight.val();
    let (device, vocab_size) = (embeddings.device(), embeddings.dims()[0]);
    let set = ShardSet::open(shards)?;
    let config = LoaderConfig {
        batch_size,
        tokens_per_batch: None,
        seed: 0,
        rank: 0,
        world: 1,
        dynamic_masking: None,
        prefetch: 2,
        shape: BatchShape::padded(pad_multiple, set.manifest().config.max_predictions_per_seq),
        // Evaluation reads every row.
        drop_remainder: false,
    };
    let (mut mlm_loss, mut mlm_correct, mut mlm_weight) = (0.0, 0.0, 0.0);
    let (mut nsp_loss, mut nsp_correct, mut sequences) = (0.0, 0.0, 0u64);
    for batch in BatchLoader::new(set, config, LoaderPosition::default())? {
        let batch = batch?;
        let tensors = BatchTensors::from_batch(&batch, vocab_size, &device)?;
        let stats = BatchStats::read(pretraining_losses(&model, &tensors).stats)?;
        mlm_loss += stats.mlm_loss * stats.mlm_weight;
        mlm_correct += stats.mlm_correct;
        mlm_weight += stats.mlm_weight;
        nsp_loss += stats.nsp_loss * batch.rows as f64;
        nsp_correct += stats.nsp_correct;
        sequences += batch.rows as u64;
        if batch.position_after.epoch > 0 {
            break;
        }
    }
    let per = |x: f64, n: f64| if n > 0.0 { x / n } else { 0.0 };
    Ok(EvalResult {
        mlm_loss: per(mlm_loss, mlm_weight),
        nsp_loss: per(nsp_loss, sequences as f64),
        mlm_acc: per(mlm_correct, mlm_weight),
        nsp_acc: per(nsp_correct, sequences as f64),
        sequences,
        masked_tokens: mlm_weight as u64,
    })
}
