//! `bert-pipeline merge`: joins the manifests of `--worker I/N` runs into one `manifest.json`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};

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
        let m = Manifest::read(path)?;
        let dir = std::fs::canonicalize(path.parent().unwrap_or(Path::new(".")))?;
        workers_seen.push(m.config.worker_index);
        let mut shards = m.shards.clone();
        for shard in &mut shards {
            let abs = dir.join(&shard.file);
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
                ensure!(
                    a == b,
                    "{} was built with other flags than {}",
                    path.display(),
                    found[0].display()
                );
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
    merged
        .shards
        .sort_by(|a, b| (a.bucket, a.worker, &a.file).cmp(&(b.bucket, b.worker, &b.file)));
    let path = out_dir.join("manifest.json");
    merged.write(&path)?;
    Ok((path, merged))
}
