//! Training checkpoints, for every task: everything a run needs to continue on the same
//! trajectory after it was killed.
//!
//! `CKPT_DIR/step-00000100/` holds `model.bpk` (burnpack: the weights *and* their parameter ids,
//! which the optimizer state is keyed by), `optimizer.bpk` (burn-optim's record) and
//! `state.json` (step, the task's position in its data, seed, and the settings the run must
//! keep), and `SHA256SUMS` (each file's hash, in `sha256sum`'s format: `sha256sum -c
//! SHA256SUMS` checks a checkpoint by hand). A checkpoint is written into a hidden temporary
//! directory and renamed into place, so a crash at any moment leaves either the complete
//! checkpoint or none; only then are old ones deleted. Resuming verifies the hashes: a damaged
//! newest checkpoint is refused, naming the file and the newest intact one, or skipped with
//! `--skip-damaged-checkpoints`.
//!
//! Random numbers need no saved state: the backend is reseeded from `(seed, step)` before
//! every micro-batch and the tasks' shuffles (and pretraining's masks) are functions of
//! `(seed, epoch, ...)`, so the step and the task's position determine them.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use burn::optim::{ModuleOptimizer, OptimizerRecord};
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};

use super::precision::LossScale;

/// 2: one loader position per data-parallel rank (pretraining's `loaders`).
pub const STATE_VERSION: u32 = 2;
const PREFIX: &str = "step-";
const SUMS: &str = "SHA256SUMS";
/// What a checkpoint holds, every file hashed in `SHA256SUMS`.
const FILES: [&str; 3] = ["model.bpk", "optimizer.bpk", "state.json"];

/// `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub format_version: u32,
    /// Optimizer steps done.
    pub step: u64,
    /// Where the task continues in its data (pretraining: `loaders`, one position per
    /// data-parallel rank; fine-tuning: the epoch and what the finished epochs scored).
    #[serde(flatten)]
    pub position: serde_json::Map<String, serde_json::Value>,
    /// float16's dynamic loss scale, where it is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<LossScale>,
    pub seed: u64,
    /// The settings that decide the trajectory (`PretrainConfig::trajectory_fingerprint`, ...).
    pub settings: serde_json::Value,
    /// What identifies the training data (the shards' vocabulary and counts, ...).
    pub data: serde_json::Value,
}

/// A complete, verified checkpoint found on disk.
#[derive(Debug, Clone)]
pub struct Found {
    pub dir: PathBuf,
    pub state: TrainState,
    /// Newer checkpoints that were damaged and skipped, with what is wrong with each.
    pub skipped: Vec<String>,
}

fn step_dir_name(step: u64) -> String {
    format!("{PREFIX}{step:08}")
}

/// Complete checkpoints in `ckpt_dir`, oldest first.
pub fn list(ckpt_dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    let entries = match fs::read_dir(ckpt_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", ckpt_dir.display())),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(step) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if entry.path().join("state.json").is_file() {
            found.push((step, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// The newest checkpoint whose files match their hashes, with its `state.json` read. A
/// damaged newest checkpoint is an error that names the damage and the newest intact one,
/// unless `skip_damaged` (then it is listed in [`Found::skipped`]).
pub fn latest(ckpt_dir: &Path, skip_damaged: bool) -> Result<Option<Found>> {
    let mut skipped = Vec::new();
    for (_, dir) in list(ckpt_dir)?.into_iter().rev() {
        match read_verified(&dir) {
            Ok(state) => {
                if !skipped.is_empty() && !skip_damaged {
                    bail!(
                        "the newest checkpoint is damaged: {}; the newest intact one is {} \
                         (step {}): rerun with --skip-damaged-checkpoints to resume from it, or \
                         move the damaged one away",
                        skipped.join("; "),
                        dir.display(),
                        state.step
                    );
                }
                return Ok(Some(Found {
                    dir,
                    state,
                    skipped,
                }));
            }
            Err(e) => skipped.push(format!("{e:#}")),
        }
    }
    ensure!(
        skipped.is_empty(),
        "every checkpoint in {} is damaged ({}); give another --ckpt-dir or move them away to \
         start over",
        ckpt_dir.display(),
        skipped.join("; ")
    );
    Ok(None)
}

/// A checkpoint's state, once every file matches `SHA256SUMS` and every file is listed there.
fn read_verified(dir: &Path) -> Result<TrainState> {
    let sums_path = dir.join(SUMS);
    let sums = fs::read_to_string(&sums_path).with_context(|| {
        format!(
            "{} has no readable {SUMS} (damaged, or written before checkpoints carried hashes)",
            dir.display()
        )
    })?;
    let mut listed = Vec::new();
    let mut state_bytes = None;
    for line in sums.lines() {
        let Some((hash, name)) = line.split_once("  ") else {
            bail!("{} has a malformed line {line:?}", sums_path.display());
        };
        ensure!(
            !name.contains(['/', '\\']) && name != ".." && name != ".",
            "{} names a file outside its checkpoint: {name:?}",
            sums_path.display()
        );
        let path = dir.join(name);
        let bytes = fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let actual = bert_core::sha256_hex(&bytes);
        ensure!(
            actual == hash,
            "{} is damaged (sha256 {actual}, {SUMS} says {hash})",
            path.display()
        );
        if name == "state.json" {
            state_bytes = Some(bytes);
        }
        listed.push(name.to_string());
    }
    for required in FILES {
        ensure!(
            listed.iter().any(|n| n == required),
            "{} does not list {required}",
            sums_path.display()
        );
    }
    // Parsed from the very bytes that were verified.
    let path = dir.join("state.json");
    let state: TrainState = serde_json::from_slice(&state_bytes.unwrap_or_default())
        .with_context(|| format!("{} is not a bert-train checkpoint state", path.display()))?;
    ensure!(
        state.format_version == STATE_VERSION,
        "{} has checkpoint format version {}; this bert-train reads version {STATE_VERSION}",
        path.display(),
        state.format_version
    );
    Ok(state)
}

/// Writes `SHA256SUMS` for `files` in `dir` (read back from disk: the hash is of what landed).
fn write_sums(dir: &Path, files: &[&str]) -> Result<()> {
    let mut sums = String::new();
    for name in files {
        let path = dir.join(name);
        let bytes = fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        sums.push_str(&format!("{}  {name}\n", bert_core::sha256_hex(&bytes)));
    }
    let path = dir.join(SUMS);
    fs::write(&path, sums).with_context(|| format!("cannot write {}", path.display()))?;
    sync_file(&path)
}

/// A checkpoint directory's files as one byte string (name length, name, size, bytes, per
/// file), to send it to processes that cannot read process 0's disk.
pub fn pack(dir: &Path) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .context("a checkpoint directory has a name")?;
    let mut entries: Vec<_> = fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    let mut push = |name: &str, bytes: &[u8]| {
        out.extend((name.len() as u64).to_le_bytes());
        out.extend(name.as_bytes());
        out.extend((bytes.len() as u64).to_le_bytes());
        out.extend(bytes);
    };
    push(name, &[]);
    for entry in entries {
        let path = entry.path();
        if path.is_file() {
            let file = entry.file_name();
            let bytes =
                fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            push(&file.to_string_lossy(), &bytes);
        }
    }
    Ok(out)
}

/// Write what [`pack`] made into `into/<checkpoint name>/`, for [`latest`] to find.
pub fn unpack(bytes: &[u8], into: &Path) -> Result<()> {
    fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
        ensure!(n <= rest.len(), "a received checkpoint is truncated");
        let (head, tail) = rest.split_at(n);
        *rest = tail;
        Ok(head)
    }
    fn next(rest: &mut &[u8]) -> Result<(String, Vec<u8>)> {
        let len = u64::from_le_bytes(take(rest, 8)?.try_into()?) as usize;
        let name = String::from_utf8(take(rest, len)?.to_vec())?;
        let size = u64::from_le_bytes(take(rest, 8)?.try_into()?) as usize;
        Ok((name, take(rest, size)?.to_vec()))
    }
    let mut rest = bytes;
    let (dir_name, _) = next(&mut rest)?;
    ensure!(
        dir_name.starts_with(PREFIX) && !dir_name.contains(['/', '\\']),
        "a received checkpoint has an odd name {dir_name:?}"
    );
    let dir = into.join(dir_name);
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    while !rest.is_empty() {
        let (name, contents) = next(&mut rest)?;
        ensure!(
            !name.contains(['/', '\\']) && name != ".." && name != ".",
            "a received checkpoint holds an odd file name {name:?}"
        );
        fs::write(dir.join(&name), contents)
            .with_context(|| format!("cannot write {}", dir.join(&name).display()))?;
    }
    Ok(())
}

fn sync_file(path: &Path) -> Result<()> {
    fs::File::open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot flush {}", path.display()))
}

/// Write a checkpoint atomically, then delete all but the newest `keep`.
pub fn save<M: ModuleSnapshot>(
    ckpt_dir: &Path,
    state: &TrainState,
    model: &M,
    optimizer: &ModuleOptimizer,
    keep: usize,
) -> Result<PathBuf> {
    fs::create_dir_all(ckpt_dir)
        .with_context(|| format!("cannot create checkpoint directory {}", ckpt_dir.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".incomplete-")
        .tempdir_in(ckpt_dir)
        .with_context(|| {
            format!(
                "cannot create a temporary directory in {}",
                ckpt_dir.display()
            )
        })?;

    let model_path = tmp.path().join("model.bpk");
    let mut store = BurnpackStore::from_file(&model_path);
    model
        .save_into(&mut store)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", model_path.display()))?;
    sync_file(&model_path)?;

    let optim_path = tmp.path().join("optimizer.bpk");
    let bytes = optimizer
        .to_record()
        .into_bytes()
        .map_err(|e| anyhow::anyhow!("cannot serialise the optimizer state: {e}"))?;
    fs::write(&optim_path, &bytes[..])
        .with_context(|| format!("cannot write {}", optim_path.display()))?;
    sync_file(&optim_path)?;

    let state_path = tmp.path().join("state.json");
    fs::write(&state_path, serde_json::to_vec_pretty(state)?)
        .with_context(|| format!("cannot write {}", state_path.display()))?;
    sync_file(&state_path)?;
    write_sums(tmp.path(), &FILES)?;

    let final_dir = ckpt_dir.join(step_dir_name(state.step));
    if final_dir.exists() {
        // Only a run that re-did steps after a crash gets here; the trajectory is the same.
        fs::remove_dir_all(&final_dir)
            .with_context(|| format!("cannot replace {}", final_dir.display()))?;
    }
    let tmp = tmp.keep();
    fs::rename(&tmp, &final_dir).with_context(|| {
        format!(
            "cannot move {} into place at {}",
            tmp.display(),
            final_dir.display()
        )
    })?;
    // The rename itself must survive a power cut before older checkpoints go.
    if let Ok(dir) = fs::File::open(ckpt_dir) {
        let _ = dir.sync_all();
    }

    let all = list(ckpt_dir)?;
    for (_, old) in all.iter().take(all.len().saturating_sub(keep)) {
        fs::remove_dir_all(old)
            .with_context(|| format!("cannot delete old checkpoint {}", old.display()))?;
    }
    Ok(final_dir)
}

/// Delete temporary directories left by a run killed while checkpointing.
pub fn remove_incomplete(ckpt_dir: &Path) -> Result<()> {
    let Ok(entries) = fs::read_dir(ckpt_dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(".incomplete-")
        {
            fs::remove_dir_all(entry.path())
                .with_context(|| format!("cannot delete {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Load a checkpoint's weights (with their parameter ids) into `model` and its optimizer state.
pub fn load<M: ModuleSnapshot>(
    found: &Found,
    mut model: M,
    optimizer: ModuleOptimizer,
) -> Result<(M, ModuleOptimizer)> {
    let model_path = found.dir.join("model.bpk");
    ensure!(model_path.is_file(), "{} is missing", model_path.display());
    let mut store = BurnpackStore::from_file(&model_path);
    let result = model
        .load_from(&mut store)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", model_path.display()))?;
    if !result.errors.is_empty() || !result.missing.is_empty() {
        bail!(
            "{} does not fit the model ({} missing, {} errors; first: {})",
            model_path.display(),
            result.missing.len(),
            result.errors.len(),
            result
                .missing
                .first()
                .map(|(p, _)| p.clone())
                .or_else(|| result.errors.first().map(|e| e.to_string()))
                .unwrap_or_default()
        );
    }
    let optim_path = found.dir.join("optimizer.bpk");
    let bytes =
        fs::read(&optim_path).with_context(|| format!("cannot read {}", optim_path.display()))?;
    let record = OptimizerRecord::from_bytes(Bytes::from_bytes_vec(bytes))
        .map_err(|e| anyhow::anyhow!("{} is damaged: {e}", optim_path.display()))?;
    Ok((model, optimizer.load_record(record)))
}

/// Name the settings that differ between a checkpoint and this run.
pub fn differing_keys(saved: &serde_json::Value, now: &serde_json::Value) -> Vec<String> {
    match bert_core::settings::differing_fields(saved, now) {
        Some(fields) => fields
            .into_iter()
            .map(|(k, then, now)| format!("{k}: {then} then, {now} now"))
            .collect(),
        None => vec!["(all)".into()],
    }
}
