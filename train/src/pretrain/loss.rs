//! The two pretraining losses, from a loader [`Batch`]: masked-LM cross-entropy over the masked
//! positions (weighted by `masked_weights`, so padding predictions count for nothing) and
//! next-sentence cross-entropy over the batch.

use anyhow::{Result, ensure};
use bert_pipeline::loader::Batch;
use burn::prelude::*;
use burn::tensor::activation::log_softmax;

use crate::training::precision::to_f32;
use bert_model::modules::{BertForPreTraining, BertInput};

/// One batch as tensors on the training device.
#[derive(Debug, Clone)]
pub struct BatchTensors {
    pub input: BertInput,
    /// Flat `row * seq + col` indices of the scored positions.
    pub masked_positions: Tensor<1, Int>,
    /// The original token at each scored position.
    pub masked_ids: Tensor<1, Int>,
    pub masked_weights: Tensor<1>,
    /// 0 = B follows A, 1 = random next (HF's and Google's label order).
    pub nsp_labels: Tensor<1, Int>,
    pub rows: usize,
    /// Real (unpadded) tokens.
    pub tokens: usize,
    /// Sum of `masked_weights`: the masked tokens that count.
    pub mlm_weight: f64,
}

impl BatchTensors {
    /// Only predictions with a non-zero weight are scored; the `[n, vocab]` logits are the
    /// largest tensor of the step, so padding predictions are dropped before the model sees them.
    pub fn from_batch(batch: &Batch, vocab_size: usize, device: &Device) -> Result<Self> {
        let (rows, seq) = (batch.rows, batch.seq_len);
        ensure!(rows > 0 && seq > 0, "empty batch from the loader");
        if let Some(&id) = batch
            .input_ids
            .iter()
            .find(|&&id| id as usize >= vocab_size)
        {
            anyhow::bail!(
                "token id {id} is outside the model's vocabulary of {vocab_size}: \
                 the shards were built with another vocabulary"
            );
        }
        let mut positions = Vec::new();
        let mut ids = Vec::new();
        let mut weights = Vec::new();
        for row in 0..rows {
            for k in 0..batch.max_predictions {
                let i = row * batch.max_predictions + k;
                let w = batch.masked_weights[i];
                if w != 0.0 {
                    let pos = batch.masked_positions[i] as usize;
                    ensure!(
                        pos < seq,
                        "masked position {pos} outside a row of {seq} tokens"
                    );
                    positions.push((row * seq + pos) as i64);
                    ids.push(batch.masked_ids[i] as i64);
                    weights.push(w);
                }
            }
        }
        // A batch without any masked token still needs a well-formed (zero-weight) prediction.
        if positions.is_empty() {
            positions.push(0);
            ids.push(0);
            weights.push(0.0);
        }
        let n = positions.len();
        let mlm_weight = weights.iter().map(|&w| w as f64).sum();
        let ints2 = |v: &[u32]| {
            let data: Vec<i64> = v.iter().map(|&x| x as i64).collect();
            Tensor::<2, Int>::from_data(TensorData::new(data, [rows, seq]), device)
        };
        let ints1 = |v: Vec<i64>| {
            let len = v.len();
            Tensor::<1, Int>::from_data(TensorData::new(v, [len]), device)
        };
        Ok(Self {
            input: BertInput {
                input_ids: ints2(&batch.input_ids),
                attention_mask: ints2(&batch.attention_mask),
                token_type_ids: ints2(&batch.segment_ids),
            },
            masked_positions: ints1(positions),
            masked_ids: ints1(ids),
            masked_weights: Tensor::<1>::from_data(TensorData::new(weights, [n]), device),
            nsp_labels: ints1(
                batch
                    .next_sentence_labels
                    .iter()
                    .map(|&l| l as i64)
                    .collect(),
            ),
            rows,
            tokens: batch.tokens(),
            mlm_weight,
        })
    }
}

/// The losses of one forward pass, and what the metrics need, still on the device.
#[derive(Debug, Clone)]
pub struct Losses {
    /// `mlm + nsp` (as parts of the step's means), what the gradients are taken of.
    pub total: Tensor<1>,
    /// `[mlm_loss, mlm_correct, mlm_weight, nsp_loss, nsp_correct, sequences]`, detached: one
    /// transfer to read them all.
    pub stats: Tensor<1>,
}

/// Per-batch numbers read back from [`Losses::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BatchStats {
    pub mlm_loss: f64,
    pub mlm_correct: f64,
    pub mlm_weight: f64,
    pub nsp_loss: f64,
    pub nsp_correct: f64,
    pub sequences: f64,
}

impl BatchStats {
    const LEN: usize = 6;

    pub fn read(stats: Tensor<1>) -> Result<Self> {
        let all = Self::read_many(stats)?;
        ensure!(
            all.len() == 1,
            "expected one batch's statistics, got {}",
            all.len()
        );
        Ok(all[0])
    }

    /// Several batches' [`Losses::stats`], concatenated: one transfer for all of them.
    pub fn read_many(stats: Tensor<1>) -> Result<Vec<Self>> {
        let v = stats
            .into_data()
            .try_to_vec_as::<f32>()
            .map_err(|e| anyhow::anyhow!("cannot read the loss: {e:?}"))?;
        ensure!(
            !v.is_empty() && v.len() % Self::LEN == 0,
            "loss statistics have {} values, not a multiple of {}",
            v.len(),
            Self::LEN
        );
        Ok(v.chunks(Self::LEN)
            .map(|c| Self {
                mlm_loss: c[0] as f64,
                mlm_correct: c[1] as f64,
                mlm_weight: c[2] as f64,
                nsp_loss: c[3] as f64,
                nsp_correct: c[4] as f64,
                sequences: c[5] as f64,
            })
            .collect())
    }
}

/// What a step's losses are divided by: its masked tokens and sequences over every micro-batch
/// of every rank, so that splitting a batch does not change the update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepTotals {
    pub mlm_weight: f64,
    pub sequences: f64,
}

impl StepTotals {
    pub fn of<'a>(batches: impl IntoIterator<Item = &'a BatchTensors>) -> Self {
        let mut totals = Self {
            mlm_weight: 0.0,
            sequences: 0.0,
        };
        for b in batches {
            totals.mlm_weight += b.mlm_weight;
            totals.sequences += b.rows as f64;
        }
        totals
    }
}

/// Weighted sum of cross-entropies, weighted count of correct argmax predictions, weight sum.
fn cross_entropy(
    logits: Tensor<2>,
    labels: Tensor<1, Int>,
    weights: Tensor<1>,
) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
    let [n, _] = logits.dims();
    let log_probs = log_softmax(logits, 1);
    let correct = log_probs
        .clone()
        .detach()
        .argmax(1)
        .reshape([n])
        .equal(labels.clone())
        .float();
    let nll = log_probs
        .gather(1, labels.reshape([n, 1]))
        .reshape([n])
        .neg();
    let loss_sum = (nll * weights.clone()).sum();
    (loss_sum, (correct * weights.clone()).sum(), weights.sum())
}

/// Forward `model` on `batch`; both losses as means over the batch itself.
pub fn pretraining_losses(model: &BertForPreTraining, batch: &BatchTensors) -> Losses {
    pretraining_losses_in_step(model, batch, StepTotals::of([batch]))
}

/// Forward `model` on `batch`; the gradient loss divided by the whole step's `totals`, the
/// reported statistics still this batch's own means.
pub fn pretraining_losses_in_step(
    model: &BertForPreTraining,
    batch: &BatchTensors,
    totals: StepTotals,
) -> Losses {
    let out = model.forward(batch.input.clone(), batch.masked_positions.clone());
    // A half-precision model's logits: the softmax and the loss in float32, as mixed precision
    // does it.
    let (mlm_logits, nsp_logits) = (to_f32(out.mlm_logits), to_f32(out.nsp_logits));
    let (mlm_sum, mlm_correct, mlm_weight) = cross_entropy(
        mlm_logits,
        batch.masked_ids.clone(),
        batch.masked_weights.clone(),
    );
    let nsp_weights = Tensor::<1>::ones([batch.rows], &batch.masked_weights.device());
    let (nsp_sum, nsp_correct, sequences) =
        cross_entropy(nsp_logits, batch.nsp_labels.clone(), nsp_weights);
    // max(.., tiny): a batch whose predictions all have weight 0 has loss 0, not NaN.
    let mean = |sum: &Tensor<1>, weight: &Tensor<1>| {
        sum.clone().detach() / weight.clone().detach().clamp_min(1e-12)
    };
    let stats = Tensor::cat(
        vec![
            mean(&mlm_sum, &mlm_weight),
            mlm_correct,
            mlm_weight.detach(),
            mean(&nsp_sum, &sequences),
            nsp_correct,
            sequences.detach(),
        ],
        0,
    );
    let total = mlm_sum.div_scalar(totals.mlm_weight.max(1e-12))
        + nsp_sum.div_scalar(totals.sequences.max(1e-12));
    Losses { total, stats }
}
