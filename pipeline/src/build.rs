//! `bert-pipeline build`: corpus files in, balanced length-bucketed shards out.
//!
//! Documents stream in blocks of about `--pool-size` MiB. Each block is tokenized and turned
//! into instances in parallel, every (block, dupe pass, document) with its own seeded RNG,
//! so the output is byte-identical whatever `--threads` is. Blocks are the bounded pool
//! "random next" segments come from; instances go to per-bucket spill files, which become
//! shards once all counts are known.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::seq::SliceRandom;
use rayon::prelude::*;

use crate::config::BuildConfig;
use crate::input::{DocumentReader, TextDocument, expand_inputs};
use crate::instances::{Document, InstanceParams, create_instances_from_document};
use crate::masking::{MaskingParams, MaskingVocab};
use crate::shards::Instance;
use crate::shards::manifest::{self, Bucket, InputFile, Manifest, Totals, VocabInfo};
use crate::shards::schema::TokenIdType;
pub use crate::shards::writer::Interrupted;
use crate::shards::writer::{BucketLayout, ShardTarget, Spill, write_bucket_shards};
use bert_core::rng;
use bert_core::vocab::Vocab;

/// More threads than this is a typo, not a machine (and each one has a stack).
pub const MAX_THREADS: usize = 1024;

/// How to run a build (none of it changes the output bytes).
pub struct BuildOptions {
    pub output: PathBuf,
    pub overwrite: bool,
    pub threads: Option<usize>,
    pub progress: bool,
    /// Set (by a signal handler, say) to stop the build at the next block, pass or shard; the
    /// build then fails with [`Interrupted`] and leaves nothing behind.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl BuildOptions {
    fn check_cancel(&self) -> Result<()> {
        match &self.cancel {
            Some(flag) if flag.load(Ordering::Relaxed) => Err(Interrupted.into()),
            _ => Ok(()),
        }
    }
}

pub fn build(config: &BuildConfig, inputs: &[String], opts: &BuildOptions) -> Result<Manifest> {
    config.validate()?;
    let files = expand_inputs(inputs)?;
    let vocab = Vocab::load(&config.vocab, config.do_lower_case)?;
    prepare_output(&opts.output, config, opts.overwrite)?;
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = opts.threads {
        ensure!(
            (1..=MAX_THREADS).contains(&n),
            "--threads must be between 1 and {MAX_THREADS}, got {n}"
        );
        builder = builder.num_threads(n);
    }
    let pool = builder.build().context("cannot start worker threads")?;
    let spill_dir = opts.output.join(format!(
        ".spill-{}{}",
        config.worker_prefix(),
        std::process::id()
    ));
    let result = pool.install(|| run(config, &files, &vocab, opts, &spill_dir));
    // The spill is scratch space whether or not the build succeeded.
    let _ = std::fs::remove_dir_all(&spill_dir);
    if result.is_err() {
        // Half a build is no use (there is no manifest): leave the directory as it was, so
        // the same command can simply be run again.
        remove_partial_output(&opts.output, config);
    }
    result
}

/// Removes what this worker's run wrote into `dir`: shards, manifest, temporary files.
/// `prepare_output` made sure none of those names existed before the run.
fn remove_partial_output(dir: &Path, config: &BuildConfig) {
    let prefix = config.worker_prefix();
    let manifest = config.manifest_name();
    let temp_mark = format!(".tmp-{}-", std::process::id());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let shard = name.starts_with(&prefix) && name.ends_with(".arrow");
        if shard || name == manifest || name.contains(&temp_mark) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn run(
    config: &BuildConfig,
    files: &[PathBuf],
    vocab: &Vocab,
    opts: &BuildOptions,
    spill_dir: &Path,
) -> Result<Manifest> {
    let inputs: Vec<InputFile> = files
        .iter()
        .map(|f| {
            let bytes = std::fs::metadata(f)
                .with_context(|| format!("cannot stat {}", f.display()))?
                .len();
            Ok(InputFile {
                path: f.display().to_string(),
                bytes,
            })
        })
        .collect::<Result<_>>()?;
    let total_bytes: u64 = inputs.iter().map(|f| f.bytes).sum();
    let bar = progress_bar(total_bytes, opts.progress);
    let layout = BucketLayout::new(config.num_buckets, config.max_seq_length);
    let mut spill = Spill::create(spill_dir, layout.len());
    let mut totals = Totals::default();
    let started = Instant::now();
    let params = InstanceParams {
        max_seq_length: config.max_seq_length,
        short_seq_prob: config.short_seq_prob,
        masking: MaskingParams {
            masked_lm_prob: config.masked_lm_prob,
            max_predictions_per_seq: config.max_predictions_per_seq,
            whole_word_mask: config.whole_word_mask,
        },
    };
    let masking_vocab = MaskingVocab {
        cls_id: vocab.cls_id,
        sep_id: vocab.sep_id,
        mask_id: vocab.mask_id,
        is_continuation: &vocab.is_continuation,
    };

    let read_stats = std::thread::scope(|scope| -> Result<_> {
        // Reading overlaps processing: one block is read while the previous one is worked on.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Block>>(1);
        let reader = scope.spawn(move || read_blocks(files, config, tx));
        for (block_index, block) in rx.into_iter().enumerate() {
            let Block {
                documents: block,
                bytes_read,
            } = block?;
            // The bar shows input consumed by finished blocks, not by the read-ahead.
            bar.set_position(bytes_read);
            if block_index % config.worker_count != config.worker_index {
                continue;
            }
            opts.check_cancel()?;
            let pool = tokenize_block(&block, vocab, &mut totals)?;
            drop(block);
            for pass in 0..config.dupe_factor as u64 {
                opts.check_cancel()?;
                let instances = instances_for_pass(
                    block_index as u64,
                    pass,
                    &pool,
                    &params,
                    &masking_vocab,
                    config.random_seed,
                    &mut totals,
                );
                for inst in &instances {
                    spill.push(layout.bucket_of(inst.valid_length()), inst)?;
                }
            }
            // The bar shows input consumed by finished blocks, not by the read-ahead.
            bar.set_position(bytes_read);
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "{} instances ({:.0}/s)",
                totals.instances,
                totals.instances as f64 / secs
            ));
        }
        reader
            .join()
            .map_err(|_| anyhow::anyhow!("reader thread panicked"))?
    })?;
    totals.read = read_stats;
    if totals.documents == 0 && config.worker_count == 1 {
        bail!("the input holds no text: every document is empty");
    }
    bar.set_message(format!("{} instances; writing shards", totals.instances));

    let id_type = TokenIdType::for_vocab_size(vocab.size());
    let prefix = config.worker_prefix();
    let mut buckets = Vec::new();
    let mut shards = Vec::new();
    for (b, (data, count)) in spill.finish()?.into_iter().enumerate() {
        let (min_length, max_length) = layout.range(b, config.max_seq_length);
        let target = ShardTarget {
            dir: &opts.output,
            prefix: &prefix,
            worker: config.worker_index,
            bucket: b,
            length_range: (min_length, max_length),
            id_type,
            cancel: opts.cancel.as_deref(),
        };
        let written = write_bucket_shards(data, count, config.shard_size, &target)?;
        buckets.push(Bucket {
            index: b,
            min_length,
            max_length,
            instances: count,
            shards: written.len(),
        });
        shards.extend(written);
    }
    bar.finish_and_clear();

    let mut manifest = Manifest {
        format: manifest::FORMAT_NAME.into(),
        format_version: manifest::FORMAT_VERSION,
        created_by: format!("bert-pipeline {}", env!("CARGO_PKG_VERSION")),
        config: config.clone(),
        inputs,
        vocab: VocabInfo {
            name: vocab.name.clone(),
            sha256: vocab.sha256.clone(),
            size: vocab.size(),
            lowercase: vocab.lowercase,
            pad_id: vocab.pad_id,
            unk_id: vocab.unk_id,
            cls_id: vocab.cls_id,
            sep_id: vocab.sep_id,
            mask_id: vocab.mask_id,
        },
        token_id_type: id_type,
        buckets,
        shards,
        totals,
        checksum: None,
    };
    // Last, so a directory with a manifest is always complete.
    manifest.write(&opts.output.join(config.manifest_name()))?;
    Ok(manifest)
}

/// Documents read together: the pool "random next" segments come from.
struct Block {
    documents: Vec<TextDocument>,
    /// Input bytes (compressed, as on disk) read up to the end of this block.
    bytes_read: u64,
}

/// Reads documents and sends them in blocks of about `pool_size_mib` of text.
fn read_blocks(
    files: &[PathBuf],
    config: &BuildConfig,
    tx: std::sync::mpsc::SyncSender<Result<Block>>,
) -> Result<crate::config::ReadStats> {
    let counter = Arc::new(AtomicU64::new(0));
    let mut reader = DocumentReader::new(
        files.to_vec(),
        config.input_format,
        config.on_invalid_utf8,
        counter.clone(),
    );
    let limit = config.pool_size_mib << 20;
    let mut block = Vec::new();
    let mut bytes = 0;
    loop {
        let doc = match reader.next_document() {
            Ok(doc) => doc,
            Err(e) => {
                let _ = tx.send(Err(e));
                return Ok(reader.stats);
            }
        };
        let end = doc.is_none();
        if let Some(doc) = doc {
            bytes += doc.bytes;
            block.push(doc);
        }
        if (end && !block.is_empty()) || bytes >= limit {
            let done = Block {
                documents: std::mem::take(&mut block),
                bytes_read: counter.load(Ordering::Relaxed),
            };
            if tx.send(Ok(done)).is_err() {
                break; // The consumer stopped on an error of its own.
            }
            bytes = 0;
        }
        if end {
            break;
        }
    }
    Ok(reader.stats)
}

/// Tokenizes a block into the pool its instances are made from.
fn tokenize_block(
    block: &[TextDocument],
    vocab: &Vocab,
    totals: &mut Totals,
) -> Result<Vec<Document>> {
    // Sentence by sentence (not document by document) so one huge document still spreads
    // over all threads.
    let sentences: Vec<(usize, &str)> = block
        .iter()
        .enumerate()
        .flat_map(|(d, doc)| doc.sentences.iter().map(move |s| (d, s.as_str())))
        .collect();
    let encoded: Vec<Vec<u32>> = sentences
        .par_iter()
        .with_min_len(256)
        .map(|(_, s)| vocab.encode(s))
        .collect::<Result<_>>()?;
    let mut pool: Vec<Document> = vec![Vec::new(); block.len()];
    for ((d, _), ids) in sentences.iter().zip(encoded) {
        // Sentences that tokenize to nothing (control characters only) are dropped, as the
        // reference drops them.
        if !ids.is_empty() {
            pool[*d].push(ids);
        }
    }
    pool.retain(|doc| !doc.is_empty());
    totals.documents += pool.len() as u64;
    totals.sentences += pool.iter().map(|d| d.len() as u64).sum::<u64>();
    totals.tokens += pool.iter().flatten().map(|s| s.len() as u64).sum::<u64>();
    Ok(pool)
}

/// One dupe pass over a block's pool: instances of every document, shuffled. Passes are
/// made one at a time so only one pass's instances are ever in memory.
fn instances_for_pass(
    block_index: u64,
    pass: u64,
    pool: &[Document],
    params: &InstanceParams,
    masking_vocab: &MaskingVocab,
    seed: u64,
    totals: &mut Totals,
) -> Vec<Instance> {
    let per_document: Vec<Vec<Instance>> = (0..pool.len())
        .into_par_iter()
        .map(|d| {
            // Every (block, pass, document) has its own stream: fresh targets and masks per
            // pass, and the same output for any thread count.
            let mut rng = rng::stream(seed, &[block_index, pass, d as u64]);
            create_instances_from_document(pool, d, params, masking_vocab, &mut rng)
        })
        .collect();
    let mut instances: Vec<Instance> = per_document.into_iter().flatten().collect();
    instances.shuffle(&mut rng::stream(seed, &[block_index, pass, u64::MAX]));
    totals.instances += instances.len() as u64;
    for inst in &instances {
        totals.instance_tokens += inst.valid_length() as u64 - 3;
        totals.masked_tokens += inst.masked_lm_positions.len() as u64;
        totals.random_next += inst.next_sentence_label as u64;
    }
    instances
}

/// Makes sure `dir` holds no earlier output of this worker (or clears it with `--overwrite`).
fn prepare_output(dir: &Path, config: &BuildConfig, overwrite: bool) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create output directory {}", dir.display()))?;
    let prefix = config.worker_prefix();
    let manifest_name = config.manifest_name();
    let mut clash = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if matches!(name.as_str(), "README.md" | ".gitignore" | ".gitkeep") {
            continue;
        }
        // With several workers sharing a directory, only this worker's files clash.
        let ours = if prefix.is_empty() {
            true
        } else {
            name.starts_with(&prefix)
                || name == manifest_name
                || name.starts_with(&format!(".spill-{prefix}"))
        };
        if ours {
            clash.push(name);
        }
    }
    if clash.is_empty() {
        return Ok(());
    }
    if !overwrite {
        clash.sort();
        let shown: Vec<_> = clash.iter().take(3).cloned().collect();
        bail!(
            "output directory {} is not empty ({}{}); pass --overwrite to replace it",
            dir.display(),
            shown.join(", "),
            if clash.len() > 3 { ", ..." } else { "" }
        );
    }
    for name in clash {
        let path = dir.join(&name);
        let ours = name.ends_with(".arrow")
            || name.starts_with("manifest")
            || name.starts_with(".spill-")
            || name.contains(".tmp-");
        if !ours {
            bail!(
                "refusing to delete {}: --overwrite only removes bert-pipeline's own files",
                path.display()
            );
        }
        if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        }
        .with_context(|| format!("cannot remove {}", path.display()))?;
    }
    Ok(())
}

fn progress_bar(total_bytes: u64, enabled: bool) -> ProgressBar {
    if !enabled || !std::io::stderr().is_terminal() {
        return ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::hidden());
    }
    let bar = ProgressBar::new(total_bytes);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}) {msg}")
            .expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_flag_values_are_rejected_with_the_flag_name() {
        let bad = [
            BuildConfig {
                max_seq_length: 7,
                ..Default::default()
            },
            BuildConfig {
                masked_lm_prob: 1.5,
                ..Default::default()
            },
            BuildConfig {
                short_seq_prob: -0.1,
                ..Default::default()
            },
            BuildConfig {
                dupe_factor: 0,
                ..Default::default()
            },
            BuildConfig {
                worker_index: 2,
                worker_count: 2,
                ..Default::default()
            },
            BuildConfig {
                dupe_factor: u32::MAX as usize,
                ..Default::default()
            },
            BuildConfig {
                num_buckets: 100,
                ..Default::default()
            },
            BuildConfig {
                max_predictions_per_seq: 200,
                ..Default::default()
            },
        ];
        let flags = [
            "--max-seq-length",
            "--masked-lm-prob",
            "--short-seq-prob",
            "--dupe-factor",
            "--worker",
            "--dupe-factor must be between 1 and 1000, got 4294967295",
            "--num-buckets 100 does not split lengths 1..=128",
            "--max-predictions-per-seq 200",
        ];
        for (config, flag) in bad.iter().zip(flags) {
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(flag), "{err}");
        }
        BuildConfig::default().validate().unwrap();
        // 64 buckets of two lengths and 128 of one both cover 1..=128.
        for num_buckets in [1, 3, 64, 128] {
            BuildConfig {
                num_buckets,
                ..Default::default()
            }
            .validate()
            .unwrap();
        }
    }
}
