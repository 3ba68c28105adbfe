//! `bert-pipeline merge`: joins the manifests of `--worker I/N` runs into one `manifest.json`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};

use crate::shards::ShardSet;
use crate::shards::manifest::{Manifest, Totals};

/// Collects worker manifests from `inputs` (directories or manifest files) and writes the
/// merged manifest into `output` (default: the directory of the first input). Shard paths
/// become relative to `output`, so every shard must live under it.
pub fn merge(inputs: &[PathBuf], output: Option<&Path>) -> Result<(PathBuf, Manifest)> {
    let mut found: Vec<PathBuf> = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut workers: Vec<PathBuf> = std::fs::read_dir(input)
                .with_context(|| format!("cannot list {}", input.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    let name = p.file_name().unwrap_or_default().to_string_lossy();
                    name.starts_with("manifest-w") && name.ends_with(".json")
                })
                .collect();
            if workers.is_empty() && input.join("manifest.json").exists() {
                workers.push(input.join("manifest.json"));
            }
            ensure!(
                !workers.is_empty(),
                "{} holds no bert-pipeline manifest",
                input.display()
            );
            workers.sort();
            found.extend(workers);
        } else {
            found.push(input.clone());
        }
    }
    ensure!(!found.is_empty(), "nothing to merge");
    let out_dir = match output {
        Some(dir) => dir.to_path_buf(),
        None => found[0].parent().unwrap_or(Path::new(".")).to_path_buf(),
    };
    let out_abs = std::fs::canonicalize(&out_dir)
        .with_context(|| format!("no directory {}", out_dir.display()))?;

    let mut merged: Option<Manifest> = None;
    let mut workers_seen = Vec::new();
    for path in &found {
        // The one reader: a consistent manifest, shards inside its directory, every hash right.
        let set = ShardSet::open(path)?;
        set.verify_all()?;
        let m = set.manifest().clone();
        workers_seen.push(m.config.worker_index);
        let mut shards = m.shards.clone();
        for shard in &mut shards {
            let abs = std::fs::canonicalize(set.path_of(shard))?;
            let Ok(rel) = abs.strip_prefix(&out_abs) else {
                bail!(
                    "shard {} is not under the output directory {}",
                    abs.display(),
                    out_abs.display()
                );
            };
            shard.file = rel.to_string_lossy().into_owned();
        }
        match &mut merged {
            None => {
                let mut first = m.clone();
                first.shards = shards;
                merged = Some(first);
            }
            Some(acc) => {
                let mut a = acc.config.clone();
                let mut b = m.config.clone();
                a.worker_index = 0;
                b.worker_index = 0;
                let differ = differences(&a, &b)?;
                ensure!(
                    differ.is_empty(),
                    "{} was built with other flags than {}: {}",
                    path.display(),
                    found[0].display(),
                    differ.join("; ")
                );
                if acc.inputs != m.inputs {
                    let names = |m: &Manifest| -> Vec<String> {
                        m.inputs
                            .iter()
                            .map(|f| format!("{} ({} bytes)", f.path, f.bytes))
                            .collect()
                    };
                    let (theirs, ours) = (names(&m), names(acc));
                    let only_here: Vec<_> = theirs.iter().filter(|f| !ours.contains(f)).collect();
                    let only_first: Vec<_> = ours.iter().filter(|f| !theirs.contains(f)).collect();
                    bail!(
                        "{} was built from other inputs than {} (only in the first: {only_first:?}; \
                         only in this one: {only_here:?}{}); every worker must be given the same \
                         input list",
                        path.display(),
                        found[0].display(),
                        if only_here.is_empty() && only_first.is_empty() {
                            ", same files in another order"
                        } else {
                            ""
                        }
                    );
                }
                ensure!(
                    acc.vocab == m.vocab,
                    "{} uses another vocabulary",
                    path.display()
                );
                ensure!(
                    acc.token_id_type == m.token_id_type,
                    "{} has another token id type",
                    path.display()
                );
                for (bucket, other) in acc.buckets.iter_mut().zip(&m.buckets) {
                    bucket.instances += other.instances;
                    bucket.shards += other.shards;
                }
                acc.shards.extend(shards);
                let mut t: Totals = acc.totals;
                t.add(&m.totals);
                acc.totals = t;
            }
        }
    }
    let mut merged = merged.expect("at least one manifest");
    let count = merged.config.worker_count;
    workers_seen.sort_unstable();
    let expected: Vec<usize> = (0..count).collect();
    if workers_seen != expected {
        bail!(
            "expected the manifests of workers 0..{count} once each, found workers {workers_seen:?}"
        );
    }
    merged.config.worker_index = 0;
    merged.validate()?;
    merged
        .shards
        .sort_by(|a, b| (a.bucket, a.worker, &a.file).cmp(&(b.bucket, b.worker, &b.file)));
    let path = out_dir.join("manifest.json");
    merged.write(&path)?;
    Ok((path, merged))
}

/// `key: a vs b` for every field in which two records differ.
fn differences<T: serde::Serialize>(a: &T, b: &T) -> Result<Vec<String>> {
    let (a, b) = (serde_json::to_value(a)?, serde_json::to_value(b)?);
    Ok(match bert_core::settings::differing_fields(&a, &b) {
        Some(fields) => fields
            .into_iter()
            .map(|(k, a, b)| format!("{k}: {a} vs {b}"))
            .collect(),
        None => vec![format!("{a} vs {b}")],
    })
}
