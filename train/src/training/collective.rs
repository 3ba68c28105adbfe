//! The processes of one training job and what they exchange. One process (`OneProcess`) is
//! the default; `mpirun -np N bert-train ...` (the `mpi` feature) makes N, each running the
//! same loop on its own slice of every global batch. Everything they must agree on goes
//! through this trait, so the training step stays the same code either way:
//!
//! - gradients: summed across processes in buckets of host f32 buffers (one device read-back
//!   and one all-reduce per bucket), after each process summed its own ranks' micro-batches;
//! - the step's loss normalisers (masked tokens, sequences) and logged statistics: summed;
//! - the parameters at the start and the end: compared by checksum, so processes that drifted
//!   apart are an error, never a silent divergence;
//! - checkpoints: written by process 0 only, whose bytes the others receive (no shared file
//!   system needed to resume).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Result, anyhow, bail};
use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;

/// Gradients are exchanged in buckets of at most this many floats (64 MiB).
const BUCKET_FLOATS: usize = 16 << 20;

/// The processes of a training job. Every process calls every method in the same order
/// (they are collective operations).
pub trait Collective {
    /// This process, from 0.
    fn rank(&self) -> usize;
    /// How many processes.
    fn size(&self) -> usize;
    /// This process's index among the job's processes on its machine (which device it takes).
    fn local_rank(&self) -> usize {
        0
    }
    /// Element-wise sum over the processes, in place.
    fn sum_f32(&self, values: &mut [f32]);
    /// Element-wise sum over the processes, in place.
    fn sum_f64(&self, values: &mut [f64]);
    /// Process 0's bytes, on every process.
    fn broadcast(&self, bytes: &mut Vec<u8>);
    /// Whether gradients are really summed (off only in the test that shows the sum matters).
    fn sums_gradients(&self) -> bool {
        true
    }
}

/// A job of one process: nothing to exchange.
#[derive(Debug, Clone, Copy, Default)]
pub struct OneProcess;

impl Collective for OneProcess {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn sum_f32(&self, _: &mut [f32]) {}
    fn sum_f64(&self, _: &mut [f64]) {}
    fn broadcast(&self, _: &mut Vec<u8>) {}
}

static STOPPED_TOGETHER: AtomicBool = AtomicBool::new(false);

/// Whether this process's error came through [`agree`], so every process of the job is
/// stopping with it (otherwise the others may be waiting for it, and the job must be ended).
pub fn stopped_together() -> bool {
    STOPPED_TOGETHER.load(Ordering::Relaxed)
}

/// Whether any process failed: every process says whether it did, so all stop together
/// instead of the others waiting forever in the next exchange. `Err` carries this process's
/// own error, or names the process that failed.
pub fn agree<T>(collective: &dyn Collective, local: Result<T>) -> Result<T> {
    if collective.size() == 1 {
        return local;
    }
    let mut failed = vec![0.0f64; collective.size()];
    failed[collective.rank()] = f64::from(u8::from(local.is_err()));
    collective.sum_f64(&mut failed);
    if failed.iter().any(|&f| f > 0.0) {
        STOPPED_TOGETHER.store(true, Ordering::Relaxed);
    }
    match local {
        Err(e) => Err(e),
        Ok(value) => match failed.iter().position(|&f| f > 0.0) {
            Some(rank) => bail!(
                "process {rank} of {} failed (see its own message)",
                failed.len()
            ),
            None => Ok(value),
        },
    }
}

/// The parameters' flattened gradients (or none), in the model's visiting order.
struct CollectGrads<'a> {
    grads: &'a GradientsParams,
    entries: Vec<(ParamId, usize, Option<Tensor<1>>)>,
}

impl ModuleVisitor for CollectGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let numel = param.shape().num_elements();
        let grad = self.grads.get::<D>(param.id).map(|g| g.reshape([numel]));
        self.entries.push((param.id, numel, grad));
    }
}

/// Puts the summed gradients back, in each parameter's shape.
struct RestoreGrads<'a> {
    grads: &'a mut GradientsParams,
    summed: HashMap<ParamId, Tensor<1>>,
}

impl ModuleVisitor for RestoreGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(flat) = self.summed.remove(&param.id) {
            let _ = self.grads.remove::<D>(param.id);
            self.grads
                .register::<D>(param.id, flat.reshape(param.shape()));
        }
    }
}

/// Sum `grads` (this process's gradients of `model`, on `device`) over every process. A
/// parameter that has a gradient in some process but not in this one counts as zero here;
/// one that has none anywhere stays without (as the optimizer would see in one process).
pub fn sum_gradients<M: Module>(
    model: &M,
    grads: &mut GradientsParams,
    device: &Device,
    collective: &dyn Collective,
) -> Result<()> {
    if collective.size() == 1 || !collective.sums_gradients() {
        return Ok(());
    }
    let mut collect = CollectGrads {
        grads,
        entries: Vec::new(),
    };
    model.visit(&mut collect);
    let entries = collect.entries;
    let mut present: Vec<f32> = entries
        .iter()
        .map(|(_, _, g)| f32::from(u8::from(g.is_some())))
        .collect();
    collective.sum_f32(&mut present);
    let device = device.clone().without_autodiff();
    let mut summed = HashMap::new();
    let mut bucket: Vec<(ParamId, usize, Tensor<1>)> = Vec::new();
    let mut bucket_floats = 0;
    for ((id, numel, grad), present) in entries.into_iter().zip(present) {
        if present == 0.0 {
            continue;
        }
        if bucket_floats + numel > BUCKET_FLOATS && !bucket.is_empty() {
            sum_bucket(
                std::mem::take(&mut bucket),
                &device,
                collective,
                &mut summed,
            )?;
            bucket_floats = 0;
        }
        let grad = grad.unwrap_or_else(|| Tensor::zeros([numel], &device));
        bucket.push((id, numel, grad));
        bucket_floats += numel;
    }
    if !bucket.is_empty() {
        sum_bucket(bucket, &device, collective, &mut summed)?;
    }
    model.visit(&mut RestoreGrads { grads, summed });
    Ok(())
}

/// One bucket: concatenated on the device, read back once, summed, uploaded once, cut apart.
fn sum_bucket(
    bucket: Vec<(ParamId, usize, Tensor<1>)>,
    device: &Device,
    collective: &dyn Collective,
    summed: &mut HashMap<ParamId, Tensor<1>>,
) -> Result<()> {
    let sizes: Vec<(ParamId, usize)> = bucket.iter().map(|(id, n, _)| (*id, *n)).collect();
    let flat = Tensor::cat(bucket.into_iter().map(|(_, _, g)| g).collect(), 0);
    let total = flat.shape().num_elements();
    let mut host = flat
        .into_data()
        .try_to_vec_as::<f32>()
        .map_err(|e| anyhow!("cannot read the gradients back: {e:?}"))?;
    collective.sum_f32(&mut host);
    let flat = Tensor::<1>::from_data(TensorData::new(host, [total]), device);
    let mut at = 0;
    for (id, n) in sizes {
        summed.insert(id, flat.clone().slice(at..at + n));
        at += n;
    }
    Ok(())
}

/// Per-parameter sums and sums of squares, in visiting order: equal on every process exactly
/// when (up to a vanishing chance) the parameters are.
struct Checksum {
    parts: Vec<Tensor<1>>,
}

impl ModuleVisitor for Checksum {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let v = param.val().detach().cast(burn::tensor::FloatDType::F32);
        self.parts.push(v.clone().sum());
        self.parts.push(v.square().sum());
    }
}

/// Check that every process holds the same parameters as process 0 (`when`: "at the start").
pub fn check_same_parameters<M: Module>(
    model: &M,
    collective: &dyn Collective,
    when: &str,
) -> Result<()> {
    if collective.size() == 1 {
        return Ok(());
    }
    let mut checksum = Checksum { parts: Vec::new() };
    model.visit(&mut checksum);
    let local: Vec<f32> = Tensor::cat(checksum.parts, 0)
        .into_data()
        .try_to_vec_as::<f32>()
        .map_err(|e| anyhow!("cannot read the parameter checksums back: {e:?}"))?;
    let ours: Vec<u8> = local.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut bytes = ours.clone();
    collective.broadcast(&mut bytes);
    let checked = if bytes == ours {
        Ok(())
    } else {
        Err(anyhow!(
            "{when}, the parameters of process {} differ from process 0's: the processes must \
             start from the same weights (same --seed, same --model) and take the same steps",
            collective.rank()
        ))
    };
    agree(collective, checked)
}

/// Process 0's value of `local` (serialised as JSON), on every process.
pub fn broadcast_json<T>(collective: &dyn Collective, local: &T) -> Result<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    if collective.size() == 1 {
        return Ok(serde_json::from_value(serde_json::to_value(local)?)?);
    }
    let mut bytes = if collective.rank() == 0 {
        serde_json::to_vec(local)?
    } else {
        Vec::new()
    };
    collective.broadcast(&mut bytes);
    Ok(serde_json::from_slice(&bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_process_agrees_with_itself() {
        let one = OneProcess;
        assert_eq!(agree(&one, Ok(3)).unwrap(), 3);
        assert!(agree::<()>(&one, Err(anyhow::anyhow!("x"))).is_err());
        assert_eq!(broadcast_json(&one, &vec![1u32, 2]).unwrap(), vec![1, 2]);
    }
}
