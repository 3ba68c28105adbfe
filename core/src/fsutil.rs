//! Atomic file writes: a temp file in the same directory, synced, then renamed.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The temp name a file is written under before it is renamed to `path`.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    // Unique per process (pid) and per call (counter): two threads writing one file at once
    // must not share a temporary file.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

/// Writes `bytes` to `path` through a temp file; on failure (disk full, say) the temp file is
/// removed and the error names `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    let written = File::create(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    rename(&tmp, path)
}

/// Fails early — before the work whose result goes to `path` — when `path` could not be
/// written: a directory, or in a directory that is missing or read-only.
pub fn check_writable(path: &Path) -> Result<()> {
    anyhow::ensure!(
        !path.is_dir(),
        "{} is a directory: give a file name",
        path.display()
    );
    let tmp = temp_path(path);
    File::create(&tmp).with_context(|| format!("cannot write {}", path.display()))?;
    let _ = std::fs::remove_file(&tmp);
    Ok(())
}

pub fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to)
        .with_context(|| format!("cannot rename {} to {}", from.display(), to.display()))
}
