//! The on-disk layout of Python's `huggingface_hub` cache, one repository's folder:
//!
//! ```text
//! {cache}/models--{org}--{name}/
//!     blobs/{etag}                     file contents, named by the hub's ETag
//!     blobs/{etag}.incomplete          a download in progress (resumed from its length)
//!     refs/{revision}                  the commit a branch or tag pointed to
//!     snapshots/{commit}/{path}        relative symlinks into blobs/
//!     .no_exist/{commit}/{path}        empty: the repository has no such file at that commit
//! {cache}/.locks/models--{org}--{name}/{etag}.lock
//! ```
//!
//! Invariant: a path under `snapshots/` only ever points at a complete, verified blob (blobs
//! are renamed into place after their hash was checked), so whatever is found there is trusted.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};

/// One repository's folder in the cache.
#[derive(Debug, Clone)]
pub struct RepoCache {
    cache_dir: PathBuf,
    folder: String,
}

impl RepoCache {
    pub fn new(cache_dir: &Path, repo_id: &str) -> Self {
        Self {
            cache_dir: cache_dir.to_path_buf(),
            folder: format!("models--{}", repo_id.replace('/', "--")),
        }
    }

    pub fn dir(&self) -> PathBuf {
        self.cache_dir.join(&self.folder)
    }

    /// The commit `revision` names: itself when it is a commit hash, else what `refs/` recorded.
    pub fn commit_for(&self, revision: &str) -> Option<String> {
        if is_commit_hash(revision) {
            return Some(revision.to_string());
        }
        let text = std::fs::read_to_string(self.dir().join("refs").join(revision)).ok()?;
        Some(text.trim().to_string()).filter(|c| is_commit_hash(c))
    }

    /// `path` at `commit`, if the cache holds it.
    pub fn snapshot_file(&self, commit: &str, path: &str) -> Option<PathBuf> {
        let file = self.snapshot_path(commit, path);
        file.is_file().then_some(file)
    }

    /// Whether an earlier lookup found that the repository has no `path` at `commit`.
    pub fn known_missing(&self, commit: &str, path: &str) -> bool {
        self.dir()
            .join(".no_exist")
            .join(commit)
            .join(path)
            .exists()
    }

    pub fn blob_path(&self, etag: &str) -> PathBuf {
        self.dir().join("blobs").join(etag)
    }

    pub fn incomplete_path(&self, etag: &str) -> PathBuf {
        self.dir().join("blobs").join(format!("{etag}.incomplete"))
    }

    /// The lock file `huggingface_hub` takes while it downloads this blob (an `flock` both
    /// sides honour).
    pub fn lock_path(&self, etag: &str) -> PathBuf {
        self.cache_dir
            .join(".locks")
            .join(&self.folder)
            .join(format!("{etag}.lock"))
    }

    /// Record that `revision` (a branch or tag) points at `commit`.
    pub fn write_ref(&self, revision: &str, commit: &str) -> Result<()> {
        if revision == commit {
            return Ok(());
        }
        let path = self.dir().join("refs").join(revision);
        if std::fs::read_to_string(&path).is_ok_and(|c| c.trim() == commit) {
            return Ok(());
        }
        write_atomic(&path, commit.as_bytes())
    }

    /// Point `snapshots/{commit}/{path}` at `blobs/{etag}` (a relative symlink, as
    /// `huggingface_hub` makes them, so the cache can move).
    pub fn link_snapshot(&self, commit: &str, path: &str, etag: &str) -> Result<PathBuf> {
        let pointer = self.snapshot_path(commit, path);
        let parent = pointer.parent().expect("a snapshot path has a parent");
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        // From snapshots/{commit}/{a/b/}file up to the repository folder, then into blobs/.
        let depth = 2 + path.matches('/').count();
        let target: PathBuf = std::iter::repeat_n(Path::new(".."), depth)
            .collect::<PathBuf>()
            .join("blobs")
            .join(etag);
        let tmp = parent.join(format!(".{}.link-{}", file_name(path), unique_suffix()));
        let _ = std::fs::remove_file(&tmp);
        symlink(&target, &tmp)?;
        std::fs::rename(&tmp, &pointer)
            .with_context(|| format!("cannot create {}", pointer.display()))?;
        Ok(pointer)
    }

    /// Remember that the repository has no `path` at `commit` (an empty marker file).
    pub fn mark_missing(&self, commit: &str, path: &str) -> Result<()> {
        let marker = self.dir().join(".no_exist").join(commit).join(path);
        if let Some(parent) = marker.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&marker, b"").with_context(|| format!("cannot write {}", marker.display()))
    }

    fn snapshot_path(&self, commit: &str, path: &str) -> PathBuf {
        self.dir().join("snapshots").join(commit).join(path)
    }
}

/// 40 hexadecimal digits: a git commit id (revisions that are not branch or tag names).
pub fn is_commit_hash(revision: &str) -> bool {
    revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A repository path is relative and stays inside the repository (no `..`, no root): the
/// cache joins it onto its own folders.
pub fn check_repo_path(path: &str) -> Result<()> {
    let ok = !path.is_empty()
        && !path.contains('\\')
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    if !ok {
        bail!("{path:?} is not a file path inside a repository");
    }
    Ok(())
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> Result<()> {
    std::os::unix::fs::symlink(target, link)
        .with_context(|| format!("cannot create the symlink {}", link.display()))
}

#[cfg(not(unix))]
fn symlink(target: &Path, link: &Path) -> Result<()> {
    // Without symlinks, `huggingface_hub` copies the blob into the snapshot: so do we.
    let blob = link.parent().unwrap().join(target);
    std::fs::copy(&blob, link)
        .map(|_| ())
        .with_context(|| format!("cannot copy {} to {}", blob.display(), link.display()))
}

/// A temporary name's suffix that no other writer uses: processes differ by pid, threads of one
/// process (two downloads of one file at once) by a counter.
fn unique_suffix() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{n}", std::process::id())
}

/// Write `bytes` to `path` through a temporary file and a rename: readers see all or nothing.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let parent = path.parent().expect("a cache path has a parent");
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let tmp = parent.join(format!(
        ".{}.tmp-{}",
        path.file_name().unwrap().to_string_lossy(),
        unique_suffix()
    ));
    let mut file =
        std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_huggingface_hub() {
        let root = tempfile::tempdir().unwrap();
        let repo = RepoCache::new(root.path(), "sentence-transformers/all-MiniLM-L6-v2");
        assert_eq!(
            repo.dir(),
            root.path()
                .join("models--sentence-transformers--all-MiniLM-L6-v2")
        );
        let commit = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf";
        std::fs::create_dir_all(repo.dir().join("blobs")).unwrap();
        std::fs::write(repo.blob_path("abc"), b"{}").unwrap();
        let link = repo
            .link_snapshot(commit, "1_Pooling/config.json", "abc")
            .unwrap();
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            PathBuf::from("../../../blobs/abc")
        );
        assert_eq!(
            repo.snapshot_file(commit, "1_Pooling/config.json"),
            Some(link)
        );
        repo.write_ref("main", commit).unwrap();
        assert_eq!(repo.commit_for("main").as_deref(), Some(commit));
        assert_eq!(repo.commit_for(commit).as_deref(), Some(commit));
        assert_eq!(repo.commit_for("v2"), None);
        assert!(!repo.known_missing(commit, "tokenizer.json"));
        repo.mark_missing(commit, "tokenizer.json").unwrap();
        assert!(repo.known_missing(commit, "tokenizer.json"));
    }

    #[test]
    fn repository_paths_stay_inside() {
        for bad in ["", "../x", "a/../../x", "/etc/passwd", "a\\b"] {
            assert!(check_repo_path(bad).is_err(), "{bad:?}");
        }
        for good in ["config.json", "1_Pooling/config.json"] {
            check_repo_path(good).unwrap();
        }
    }
}
