//! `bert-pipeline inspect`: totals, per-bucket length histograms, masking and NSP balance
//! measured from the rows themselves, and the first instances decoded back to tokens.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use crate::shards::Instance;
use crate::shards::reader::ShardSet;
use bert_core::vocab::Vocab;

/// Bins per bucket in the length histogram.
const BINS: usize = 8;

pub fn inspect(dir: &Path, show: usize) -> Result<String> {
    let set = ShardSet::open(dir)?;
    let m = set.manifest();
    let c = &m.config;
    let mut out = String::new();
    writeln!(
        out,
        "{}: {} instances in {} shards, {} buckets (format v{}, {})",
        dir.display(),
        m.totals.instances,
        m.shards.len(),
        m.buckets.len(),
        m.format_version,
        m.created_by
    )?;
    writeln!(
        out,
        "vocab {} ({} tokens, lowercase {}, sha256 {}...)",
        m.vocab.name,
        m.vocab.size,
        m.vocab.lowercase,
        &m.vocab.sha256[..12]
    )?;
    writeln!(
        out,
        "flags: max_seq_length {} max_predictions_per_seq {} masked_lm_prob {} short_seq_prob {} dupe_factor {} random_seed {} whole_word_mask {}",
        c.max_seq_length,
        c.max_predictions_per_seq,
        c.masked_lm_prob,
        c.short_seq_prob,
        c.dupe_factor,
        c.random_seed,
        c.whole_word_mask
    )?;
    writeln!(
        out,
        "input: {} files, {} documents, {} sentences, {} word pieces",
        m.inputs.len(),
        m.totals.documents,
        m.totals.sentences,
        m.totals.tokens
    )?;

    // Measured from the rows, not copied from the manifest: this is a check.
    let mut first = Vec::new();
    let (mut rows, mut masked, mut maskable, mut random) = (0u64, 0u64, 0u64, 0u64);
    let mut hist = vec![[0u64; BINS]; m.buckets.len()];
    for shard in set.shards() {
        let bucket = &m.buckets[shard.bucket];
        let width = (bucket.max_length - bucket.min_length + 1).div_ceil(BINS);
        for inst in set.read_shard(shard)? {
            rows += 1;
            masked += inst.masked_lm_positions.len() as u64;
            maskable += inst.valid_length() as u64 - 3;
            random += inst.next_sentence_label as u64;
            let bin = (inst.valid_length().saturating_sub(bucket.min_length) / width).min(BINS - 1);
            hist[shard.bucket][bin] += 1;
            if first.len() < show {
                first.push(inst);
            }
        }
    }
    let pct = |a: u64, b: u64| 100.0 * a as f64 / b.max(1) as f64;
    writeln!(
        out,
        "masked: {masked} of {maskable} non-special tokens ({:.2}%, masked_lm_prob {}); next sentence: {:.2}% random, {:.2}% actual",
        pct(masked, maskable),
        c.masked_lm_prob,
        pct(random, rows),
        100.0 - pct(random, rows)
    )?;
    let peak = hist.iter().flatten().copied().max().unwrap_or(1).max(1);
    for (b, bucket) in m.buckets.iter().enumerate() {
        let sizes: Vec<u64> = m
            .shards
            .iter()
            .filter(|s| s.bucket == b)
            .map(|s| s.instances)
            .collect();
        writeln!(
            out,
            "bucket {b} (length {}..={}): {} instances in {} shards {:?}",
            bucket.min_length, bucket.max_length, bucket.instances, bucket.shards, sizes
        )?;
        let width = (bucket.max_length - bucket.min_length + 1).div_ceil(BINS);
        for (i, &n) in hist[b].iter().enumerate() {
            let lo = bucket.min_length + i * width;
            if lo > bucket.max_length {
                break;
            }
            let hi = (lo + width - 1).min(bucket.max_length);
            let bar = "#".repeat(((n as f64 / peak as f64) * 40.0).ceil() as usize);
            writeln!(out, "  {lo:>5}..={hi:<5} {n:>10} {bar}")?;
        }
    }
    if rows != m.totals.instances {
        writeln!(
            out,
            "WARNING: shards hold {rows} rows, the manifest says {}",
            m.totals.instances
        )?;
    }

    let vocab = Vocab::load(&m.vocab.name, Some(m.vocab.lowercase))
        .ok()
        .filter(|v| v.sha256 == m.vocab.sha256);
    for (i, inst) in first.iter().enumerate() {
        writeln!(out, "\n*** instance {i} ***")?;
        write_instance(&mut out, inst, vocab.as_ref())?;
    }
    Ok(out)
}

/// The reference's verbose log format: tokens (with masks), segments, targets.
fn write_instance(out: &mut String, inst: &Instance, vocab: Option<&Vocab>) -> std::fmt::Result {
    let name = |id: u32| vocab.map_or_else(|| id.to_string(), |v| v.token(id).to_string());
    let tokens: Vec<String> = inst.input_ids.iter().map(|&id| name(id)).collect();
    let labels: Vec<String> = inst.masked_lm_ids.iter().map(|&id| name(id)).collect();
    writeln!(out, "tokens: {}", tokens.join(" "))?;
    writeln!(out, "segment_ids: {:?}", inst.segment_ids)?;
    writeln!(out, "is_random_next: {}", inst.next_sentence_label == 1)?;
    writeln!(out, "masked_lm_positions: {:?}", inst.masked_lm_positions)?;
    writeln!(out, "masked_lm_labels: {}", labels.join(" "))
}
