//! Training batches from a shard directory: what `bert-train` feeds the model.
//!
//! Each rank reads its share of the shards (`ShardSet::shards_for_rank`), in an order
//! shuffled per epoch; rows are shuffled within a shard and batched within it, so a batch
//! comes from one length bucket and is padded only to its own longest row. Everything is a
//! function of (seed, epoch, position), so a run resumed from a saved [`LoaderPosition`]
//! sees exactly the batches an uninterrupted run would have. A background thread reads and
//! decompresses ahead, so the model never waits on zstd.

use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use anyhow::{Context, Result, ensure};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::masking::{MaskingParams, MaskingVocab, mask_tokens};
use crate::shards::Instance;
use crate::shards::{Shard, ShardSet};
use bert_core::rng;

/// How batches are formed.
#[derive(Clone, Debug)]
pub struct LoaderConfig {
    /// Rows per batch; with `tokens_per_batch`, the most rows a batch may have.
    pub batch_size: usize,
    /// GluonNLP's `--use-avg-len`: size batches by padded tokens instead of rows.
    pub tokens_per_batch: Option<usize>,
    pub seed: u64,
    pub rank: usize,
    pub world: usize,
    /// Re-mask every epoch from the original tokens instead of using the stored masks.
    pub dynamic_masking: Option<DynamicMasking>,
    /// Batches read ahead by the background thread.
    pub prefetch: usize,
    /// How far batches are padded beyond their longest row.
    pub shape: BatchShape,
    /// Leave out a shard's last, partial batch where the shard has a full one (the reference
    /// pretraining's `drop_remainder`): a GPU compiles and tunes kernels for every new row
    /// count, and each shard's remainder is one. The rows left out differ every epoch.
    pub drop_remainder: bool,
}

/// Padding beyond what a batch needs. GPU backends compile (and tune) kernels for every new
/// tensor shape, so there a few fixed shapes run sooner than exact ones; on the CPU exact
/// shapes are fastest. Padding is masked: it changes no loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchShape {
    /// Sequence length rounded up to a multiple of this (1: the longest row), never past the
    /// shards' `max_seq_length`.
    pub multiple: usize,
    /// At least this many prediction slots per row (1: as many as the fullest row has).
    pub min_predictions: usize,
}

impl BatchShape {
    /// Each batch as long as its longest row, with as many prediction slots as it needs.
    pub const EXACT: Self = Self {
        multiple: 1,
        min_predictions: 1,
    };

    /// Lengths padded to multiples of `multiple`; past 1, also every row to
    /// `max_predictions` slots (the shards' `max_predictions_per_seq`), so that a GPU sees only
    /// a handful of shapes.
    pub fn padded(multiple: usize, max_predictions: usize) -> Self {
        if multiple <= 1 {
            return Self::EXACT;
        }
        Self {
            multiple,
            min_predictions: max_predictions,
        }
    }
}

/// What re-masking needs: the masking flags and the vocabulary's special ids.
#[derive(Clone, Debug)]
pub struct DynamicMasking {
    pub params: MaskingParams,
    pub cls_id: u32,
    pub sep_id: u32,
    pub mask_id: u32,
    pub is_continuation: Vec<bool>,
}

/// Where a loader stands: enough to resume exactly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoaderPosition {
    pub epoch: u64,
    /// Index into this epoch's shuffled shard order.
    pub shard: usize,
    /// Batches of that shard already delivered.
    pub batch: usize,
}

/// A padded batch, row-major, ready to become tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub rows: usize,
    /// Padded length: the longest row of this batch.
    pub seq_len: usize,
    /// `rows × seq_len`, padded with `pad_id`.
    pub input_ids: Vec<u32>,
    /// `rows × seq_len`, padded with 0.
    pub segment_ids: Vec<u32>,
    /// `rows × seq_len`: 1 for real tokens, 0 for padding.
    pub attention_mask: Vec<u32>,
    /// `rows × max_predictions`, padded with 0 (weight 0).
    pub masked_positions: Vec<u32>,
    pub masked_ids: Vec<u32>,
    /// 1.0 for real predictions, 0.0 for padding.
    pub masked_weights: Vec<f32>,
    pub max_predictions: usize,
    /// 1 = random next.
    pub next_sentence_labels: Vec<u32>,
    /// Where the loader stands after this batch (save it with a checkpoint).
    pub position_after: LoaderPosition,
}

impl Batch {
    pub fn tokens(&self) -> usize {
        self.attention_mask.iter().filter(|&&m| m == 1).count()
    }
}

/// Pads rows into a [`Batch`] of `shape` (lengths capped at `max_seq_length`).
pub fn collate(
    rows: &[Instance],
    pad_id: u32,
    shape: BatchShape,
    max_seq_length: usize,
    position_after: LoaderPosition,
) -> Batch {
    let longest = rows.iter().map(Instance::valid_length).max().unwrap_or(0);
    let seq_len = longest
        .next_multiple_of(shape.multiple.max(1))
        .min(max_seq_length.max(longest));
    let max_predictions = rows
        .iter()
        .map(|r| r.masked_lm_positions.len())
        .max()
        .unwrap_or(0)
        .max(shape.min_predictions.max(1));
    let n = rows.len();
    let mut b = Batch {
        rows: n,
        seq_len,
        input_ids: vec![pad_id; n * seq_len],
        segment_ids: vec![0; n * seq_len],
        attention_mask: vec![0; n * seq_len],
        masked_positions: vec![0; n * max_predictions],
        masked_ids: vec![0; n * max_predictions],
        masked_weights: vec![0.0; n * max_predictions],
        max_predictions,
        next_sentence_labels: rows.iter().map(|r| r.next_sentence_label as u32).collect(),
        position_after,
    };
    for (i, row) in rows.iter().enumerate() {
        let t = i * seq_len;
        for (j, (&id, &seg)) in row.input_ids.iter().zip(&row.segment_ids).enumerate() {
            b.input_ids[t + j] = id;
            b.segment_ids[t + j] = seg as u32;
            b.attention_mask[t + j] = 1;
        }
        let p = i * max_predictions;
        for (j, (&pos, &id)) in row
            .masked_lm_positions
            .iter()
            .zip(&row.masked_lm_ids)
            .enumerate()
        {
            b.masked_positions[p + j] = pos as u32;
            b.masked_ids[p + j] = id;
            b.masked_weights[p + j] = 1.0;
        }
    }
    b
}

/// This rank's shards in the order epoch `epoch` reads them.
fn shard_order<'a>(set: &'a ShardSet, config: &LoaderConfig, epoch: u64) -> Vec<&'a Shard> {
    let mut shards = set.shards_for_rank(config.rank, config.world);
    shards.shuffle(&mut rng::stream(config.seed, &[epoch]));
    shards
}

/// One shard's rows, shuffled (and re-masked) for `epoch`, cut into batches.
fn shard_batches(
    rows: Vec<Instance>,
    shard_index: usize,
    epoch: u64,
    config: &LoaderConfig,
    max_length: usize,
) -> Vec<Vec<Instance>> {
    let mut rows = rows;
    rows.shuffle(&mut rng::stream(
        config.seed,
        &[epoch, shard_index as u64, 1],
    ));
    if let Some(dm) = &config.dynamic_masking {
        let mut r = rng::stream(config.seed, &[epoch, shard_index as u64, 2]);
        let vocab = MaskingVocab {
            cls_id: dm.cls_id,
            sep_id: dm.sep_id,
            mask_id: dm.mask_id,
            is_continuation: &dm.is_continuation,
        };
        for row in &mut rows {
            for (&p, &id) in row.masked_lm_positions.iter().zip(&row.masked_lm_ids) {
                row.input_ids[p as usize] = id;
            }
            let (positions, ids) = mask_tokens(&mut row.input_ids, &dm.params, &vocab, &mut r);
            row.masked_lm_positions = positions;
            row.masked_lm_ids = ids;
        }
    }
    let per_batch = match config.tokens_per_batch {
        Some(tokens) => (tokens / max_length.max(1)).clamp(1, config.batch_size.max(1)),
        None => config.batch_size.max(1),
    };
    let mut batches = Vec::new();
    while !rows.is_empty() {
        let rest = rows.split_off(per_batch.min(rows.len()));
        batches.push(std::mem::replace(&mut rows, rest));
    }
    // A shard smaller than one batch stays: dropping it could leave a rank nothing to read.
    if config.drop_remainder && batches.len() > 1 && batches[batches.len() - 1].len() < per_batch {
        batches.pop();
    }
    batches
}

/// An endless stream of batches (epoch after epoch) from `position` on, read ahead on a
/// background thread.
pub struct BatchLoader {
    receiver: Receiver<Result<Batch>>,
    worker: Option<JoinHandle<()>>,
}

impl BatchLoader {
    pub fn new(set: ShardSet, config: LoaderConfig, position: LoaderPosition) -> Result<Self> {
        ensure!(
            config.world >= 1 && config.rank < config.world,
            "rank {} of {}",
            config.rank,
            config.world
        );
        ensure!(
            !set.shards_for_rank(config.rank, config.world).is_empty(),
            "rank {} of {} gets no shards: the data set has only {} shards",
            config.rank,
            config.world,
            set.shards().len()
        );
        let shards = set.shards_for_rank(config.rank, config.world).len();
        ensure!(
            position.shard < shards,
            "resume position {position:?} is past this rank's {shards} shards: did the data change?"
        );
        let (tx, rx) = sync_channel(config.prefetch.max(1));
        let worker = std::thread::Builder::new()
            .name("batch-loader".into())
            .spawn(move || {
                let pad_id = set.manifest().vocab.pad_id;
                let max_seq_length = set.manifest().config.max_seq_length;
                let mut pos = position;
                loop {
                    let order = shard_order(&set, &config, pos.epoch);
                    let shard = order[pos.shard];
                    let rows = match set.read_shard(shard) {
                        Ok(rows) => rows,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    let batches =
                        shard_batches(rows, pos.shard, pos.epoch, &config, shard.max_length);
                    for (i, rows) in batches.iter().enumerate().skip(pos.batch) {
                        let after = if i + 1 == batches.len() {
                            next_shard(pos, order.len())
                        } else {
                            LoaderPosition {
                                batch: i + 1,
                                ..pos
                            }
                        };
                        let batch = collate(rows, pad_id, config.shape, max_seq_length, after);
                        if tx.send(Ok(batch)).is_err() {
                            return; // The trainer stopped.
                        }
                    }
                    pos = next_shard(pos, order.len());
                }
            })
            .context("cannot start the batch loader thread")?;
        Ok(Self {
            receiver: rx,
            worker: Some(worker),
        })
    }
}

fn next_shard(pos: LoaderPosition, shards: usize) -> LoaderPosition {
    if pos.shard + 1 >= shards {
        LoaderPosition {
            epoch: pos.epoch + 1,
            shard: 0,
            batch: 0,
        }
    } else {
        LoaderPosition {
            epoch: pos.epoch,
            shard: pos.shard + 1,
            batch: 0,
        }
    }
}

impl Iterator for BatchLoader {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.receiver.recv() {
            Ok(batch) => Some(batch),
            // The thread only hangs up after sending its error, or by panicking: say which.
            Err(_) => match self.worker.take().map(JoinHandle::join) {
                Some(Err(panic)) => Some(Err(anyhow::anyhow!(
                    "the batch loader failed: {}",
                    crate::panics::message(&*panic)
                ))),
                _ => None,
            },
        }
    }
}

impl Drop for BatchLoader {
    fn drop(&mut self) {
        // Closing the channel stops the thread at its next send.
        let (_, dead) = sync_channel(1);
        drop(std::mem::replace(&mut self.receiver, dead));
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::{BuildOptions, build};
    use crate::config::BuildConfig;

    fn shards(dir: &std::path::Path) -> ShardSet {
        let corpus = concat!(env!("CARGO_MANIFEST_DIR"), "/sample-corpus/persuasion.txt");
        let config = BuildConfig {
            dupe_factor: 1,
            max_seq_length: 64,
            shard_size: 300,
            ..BuildConfig::default()
        };
        let options = BuildOptions {
            output: dir.to_path_buf(),
            overwrite: false,
            threads: Some(1),
            progress: false,
            cancel: None,
        };
        build(&config, &[corpus.to_string()], &options).unwrap();
        ShardSet::open(dir).unwrap()
    }

    fn config(rank: usize, world: usize) -> LoaderConfig {
        LoaderConfig {
            batch_size: 16,
            tokens_per_batch: None,
            seed: 3,
            rank,
            world,
            dynamic_masking: None,
            prefetch: 2,
            shape: BatchShape::EXACT,
            drop_remainder: false,
        }
    }

    #[test]
    fn collate_pads_to_the_longest_row() {
        let rows = vec![
            Instance {
                input_ids: vec![101, 5, 102, 6, 102],
                segment_ids: vec![0, 0, 0, 1, 1],
                masked_lm_positions: vec![1],
                masked_lm_ids: vec![9],
                next_sentence_label: 1,
            },
            Instance {
                input_ids: vec![101, 5, 102],
                segment_ids: vec![0, 0, 0],
                masked_lm_positions: vec![],
                masked_lm_ids: vec![],
                next_sentence_label: 0,
            },
        ];
        // Padded for a GPU: lengths to multiples of 4 (capped at 6), 3 prediction slots.
        let gpu = BatchShape {
            multiple: 4,
            min_predictions: 3,
        };
        let b = collate(&rows, 0, gpu, 6, LoaderPosition::default());
        assert_eq!((b.seq_len, b.max_predictions), (6, 3));
        assert_eq!(b.attention_mask, [1, 1, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0]);
        assert_eq!(b.masked_weights, [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(b.tokens(), 8);

        let b = collate(&rows, 0, BatchShape::EXACT, 6, LoaderPosition::default());
        assert_eq!((b.rows, b.seq_len, b.max_predictions), (2, 5, 1));
        assert_eq!(b.input_ids, [101, 5, 102, 6, 102, 101, 5, 102, 0, 0]);
        assert_eq!(b.attention_mask, [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
        assert_eq!(b.segment_ids[..5], [0, 0, 0, 1, 1]);
        assert_eq!(
            (
                b.masked_positions.clone(),
                b.masked_ids.clone(),
                b.masked_weights.clone()
            ),
            (vec![1, 0], vec![9, 0], vec![1.0, 0.0])
        );
        assert_eq!(b.next_sentence_labels, [1, 0]);
        assert_eq!(b.tokens(), 8);
    }

    #[test]
    fn one_epoch_covers_every_row_once_and_resuming_repeats_the_same_batches() {
        let dir = tempfile::tempdir().unwrap();
        let set = shards(dir.path());
        let total = set.manifest().totals.instances as usize;
        // The last batch of the epoch is where position_after rolls over.
        let epoch_end = BatchLoader::new(
            ShardSet::open(dir.path()).unwrap(),
            config(0, 1),
            LoaderPosition::default(),
        )
        .unwrap()
        .map(Result::unwrap)
        .position(|b| b.position_after.epoch == 1)
        .unwrap();
        let epoch: Vec<Batch> = BatchLoader::new(
            ShardSet::open(dir.path()).unwrap(),
            config(0, 1),
            LoaderPosition::default(),
        )
        .unwrap()
        .map(Result::unwrap)
        .take(epoch_end + 1)
        .collect();
        assert_eq!(
            epoch.iter().map(|b| b.rows).sum::<usize>(),
            total,
            "every row once per epoch"
        );
        assert!(epoch.iter().all(|b| b.rows <= 16));

        // Resume from the middle: the same batches follow.
        let k = epoch_end / 2;
        let resumed: Vec<Batch> = BatchLoader::new(
            ShardSet::open(dir.path()).unwrap(),
            config(0, 1),
            epoch[k].position_after,
        )
        .unwrap()
        .map(Result::unwrap)
        .take(epoch_end - k + 3)
        .collect();
        let straight: Vec<Batch> = BatchLoader::new(
            ShardSet::open(dir.path()).unwrap(),
            config(0, 1),
            LoaderPosition::default(),
        )
        .unwrap()
        .map(Result::unwrap)
        .skip(k + 1)
        .take(epoch_end - k + 3)
        .collect();
        assert_eq!(resumed, straight);
        // The next epoch reads in another order.
        assert_ne!(
            straight.last().unwrap().input_ids,
            epoch[epoch_end - k + 1].input_ids
        );
    }

    #[test]
    fn ranks_split_the_shards_and_dynamic_masking_remasks_each_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let set = shards(dir.path());
        let n = set.shards().len();
        assert!(n >= 2, "the test needs several shards ({n})");
        let first = |c: LoaderConfig| {
            BatchLoader::new(
                ShardSet::open(dir.path()).unwrap(),
                c,
                LoaderPosition::default(),
            )
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
        };
        assert_ne!(first(config(0, 2)).input_ids, first(config(1, 2)).input_ids);

        let vocab = bert_core::vocab::Vocab::load("book_corpus_wiki_en_uncased", None).unwrap();
        let mut c = config(0, 1);
        c.dynamic_masking = Some(DynamicMasking {
            params: MaskingParams {
                masked_lm_prob: 0.15,
                max_predictions_per_seq: 20,
                whole_word_mask: false,
            },
            cls_id: vocab.cls_id,
            sep_id: vocab.sep_id,
            mask_id: vocab.mask_id,
            is_continuation: vocab.is_continuation.clone(),
        });
        let stat = first(config(0, 1));
        let dynamic = first(c);
        assert_eq!(stat.rows, dynamic.rows);
        // Same rows (same shuffle), other masks; undoing the masks gives the same text.
        assert_ne!(stat.masked_positions, dynamic.masked_positions);
        let undo = |b: &Batch| {
            let mut ids = b.input_ids.clone();
            for r in 0..b.rows {
                for j in 0..b.max_predictions {
                    if b.masked_weights[r * b.max_predictions + j] > 0.0 {
                        ids[r * b.seq_len
                            + b.masked_positions[r * b.max_predictions + j] as usize] =
                            b.masked_ids[r * b.max_predictions + j];
                    }
                }
            }
            ids
        };
        assert_eq!(undo(&stat), undo(&dynamic));
    }

    #[test]
    fn token_budget_sizes_batches_by_bucket_length() {
        let dir = tempfile::tempdir().unwrap();
        let _ = shards(dir.path());
        let mut c = config(0, 1);
        c.batch_size = 1000;
        c.tokens_per_batch = Some(640);
        for b in BatchLoader::new(
            ShardSet::open(dir.path()).unwrap(),
            c,
            LoaderPosition::default(),
        )
        .unwrap()
        .take(20)
        {
            let b = b.unwrap();
            assert!(
                b.rows * b.seq_len <= 640 || b.rows == 1,
                "{} x {}",
                b.rows,
                b.seq_len
            );
        }
    }

    #[test]
    fn drop_remainder_leaves_full_batches_and_keeps_shards_smaller_than_one() {
        let dir = tempfile::tempdir().unwrap();
        let set = shards(dir.path());
        let keep = LoaderConfig {
            batch_size: 7,
            ..config(0, 1)
        };
        let drop = LoaderConfig {
            drop_remainder: true,
            ..keep.clone()
        };
        let mut kept = 0;
        for shard in set.shards() {
            let rows = set.read_shard(shard).unwrap();
            let n = rows.len();
            let all = shard_batches(rows.clone(), 0, 0, &keep, shard.max_length);
            let full = shard_batches(rows, 0, 0, &drop, shard.max_length);
            if n >= 7 {
                assert!(full.iter().all(|b| b.len() == 7), "shard of {n} rows");
                assert_eq!(full.len(), n / 7);
                kept += 1;
            } else {
                assert_eq!(full, all, "a shard of {n} rows is kept whole");
            }
            // The same rows in the same order, less the remainder.
            assert_eq!(full[..], all[..full.len()]);
        }
        assert!(kept > 0, "no shard had a full batch: the test has no teeth");
    }
}
