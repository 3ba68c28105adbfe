//! Pretraining as a task of the one training step ([`crate::training::step`]): MLM + NSP
//! losses normalised by the whole step's counts (masked tokens, sequences), not each
//! micro-batch's, so R ranks × A micro-batches of B sequences give the update of one batch of
//! R·A·B — what the data-parallel test checks. The trainer and the PyTorch reference test both
//! run exactly this.

use anyhow::{Result, ensure};
use burn::optim::ModuleOptimizer;
use burn::prelude::*;

use super::loss::{BatchStats, BatchTensors, StepTotals, pretraining_losses_in_step};
use crate::training::collective::{Collective, OneProcess};
use crate::training::step::{self, RankWork, StepReport, StepSettings, StepTask, single_rank};
use bert_model::modules::BertForPreTraining;

/// MLM + NSP over a step whose micro-batches add up to `totals`.
struct Pretraining {
    totals: StepTotals,
}

impl StepTask<BertForPreTraining, BatchTensors> for Pretraining {
    type Stats = BatchStats;

    fn loss(
        &self,
        model: &BertForPreTraining,
        batch: &BatchTensors,
    ) -> Result<(Tensor<1>, Tensor<1>)> {
        let losses = pretraining_losses_in_step(model, batch, self.totals);
        Ok((losses.total, losses.stats))
    }

    fn read(&self, stats: Tensor<1>) -> Result<Vec<BatchStats>> {
        let stats = BatchStats::read_many(stats)?;
        for s in &stats {
            ensure!(
                s.mlm_loss.is_finite() && s.nsp_loss.is_finite(),
                "the loss is not finite (MLM {}, NSP {})",
                s.mlm_loss,
                s.nsp_loss
            );
        }
        Ok(stats)
    }
}

/// Train `model` (on `ranks[0].device`, the main device) on every rank's micro-batches and
/// apply one update (see [`step::train_step`]).
pub fn train_step(
    model: BertForPreTraining,
    optimizer: &mut ModuleOptimizer,
    ranks: Vec<RankWork<BatchTensors>>,
    settings: StepSettings,
) -> Result<(BertForPreTraining, StepReport<BatchStats>)> {
    train_step_in(model, optimizer, ranks, settings, &OneProcess)
}

/// [`train_step`] as one process of a job: the losses are divided by the whole job's masked
/// tokens and sequences (summed over the processes), and so the update equals one process's
/// with every process's micro-batches.
pub fn train_step_in(
    model: BertForPreTraining,
    optimizer: &mut ModuleOptimizer,
    ranks: Vec<RankWork<BatchTensors>>,
    settings: StepSettings,
    collective: &dyn Collective,
) -> Result<(BertForPreTraining, StepReport<BatchStats>)> {
    let mut totals = StepTotals::of(ranks.iter().flat_map(|r| r.batches.iter().map(|b| &b.data)));
    let mut sums = [totals.mlm_weight, totals.sequences];
    collective.sum_f64(&mut sums);
    [totals.mlm_weight, totals.sequences] = sums;
    let task = Pretraining { totals };
    step::train_step_in(model, optimizer, ranks, settings, &task, collective)
}

/// A single rank, a single micro-batch: the step of the reference tests.
pub fn single(device: &Device, tensors: BatchTensors, seed: u64) -> Vec<RankWork<BatchTensors>> {
    single_rank(device, vec![tensors], |_| Some(seed))
}
