//! Model files from the HuggingFace Hub, cached as Python's `huggingface_hub` caches them, so
//! a transformers or sentence-transformers cache serves us and ours serves them.
//!
//! [`Hub::file`] answers one question: the local path of `path` in repository `repo` at
//! `revision`. In order:
//! 1. a commit-hash revision already in the cache: no network at all;
//! 2. offline (`HF_HUB_OFFLINE=1`): the cache, or an error naming the repository and file;
//! 3. online: `HEAD` the hub for the file's commit and ETag; a blob with that ETag already in
//!    the cache is reused, else it is downloaded (resuming a `.incomplete` with `Range`),
//!    checked against the ETag, and only then renamed into the cache;
//! 4. the hub unreachable: the cache for that revision, else the network error.
//!
//! Blocking I/O on `ureq` (no async runtime): one file at a time is all a model load needs.

mod cache;
mod http;
mod integrity;
mod settings;

use std::fs::OpenOptions;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub use cache::{RepoCache, is_commit_hash};
pub use http::Unreachable;
pub use integrity::{git_blob_sha1, sha256_hex};
pub use settings::{DEFAULT_ENDPOINT, HubSettings};

use http::{FileMetadata, HubHttp, Lookup};

/// A repository at a revision, with the older names its cache may be found under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoRef {
    /// `org/name` (or a legacy one-part id such as `bert-base-uncased`).
    pub id: String,
    /// A branch, tag or commit hash.
    pub revision: String,
    /// Ids the same repository had before (`bert-base-uncased` for
    /// `google-bert/bert-base-uncased`): their cache folders are read too, never written.
    pub aliases: Vec<String>,
}

impl RepoRef {
    pub fn new(id: &str, revision: &str) -> Self {
        Self {
            id: id.to_string(),
            revision: revision.to_string(),
            aliases: Vec::new(),
        }
    }

    pub fn with_aliases(mut self, aliases: &[&str]) -> Self {
        self.aliases = aliases.iter().map(|a| a.to_string()).collect();
        self
    }
}

impl std::fmt::Display for RepoRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.id, self.revision)
    }
}

/// Files smaller than this download without a progress bar.
const PROGRESS_MIN_BYTES: u64 = 4 << 20;

pub struct Hub {
    settings: HubSettings,
    http: HubHttp,
}

impl Hub {
    pub fn new(settings: HubSettings) -> Self {
        let http = HubHttp::new(&settings.endpoint, settings.token.clone());
        Self { settings, http }
    }

    /// Settings from the environment (`HF_ENDPOINT`, `HF_HUB_CACHE`, `HF_TOKEN`, ...).
    pub fn from_env() -> Self {
        Self::new(HubSettings::from_env())
    }

    pub fn settings(&self) -> &HubSettings {
        &self.settings
    }

    /// The cache folders to look in for `repo`: its own first, then its aliases'.
    fn caches(&self, repo: &RepoRef) -> Vec<RepoCache> {
        std::iter::once(&repo.id)
            .chain(&repo.aliases)
            .map(|id| RepoCache::new(&self.settings.cache_dir, id))
            .collect()
    }

    /// `path` of `repo` from the cache alone: `Some(Some(file))` cached, `Some(None)` known to
    /// be absent from the repository, `None` unknown.
    pub fn cached_file(&self, repo: &RepoRef, path: &str) -> Option<Option<PathBuf>> {
        self.caches(repo).iter().find_map(|cache| {
            let commit = cache.commit_for(&repo.revision)?;
            if let Some(file) = cache.snapshot_file(&commit, path) {
                Some(Some(file))
            } else if cache.known_missing(&commit, path) {
                Some(None)
            } else {
                None
            }
        })
    }

    /// The local path of `path` in `repo`, downloaded into the cache if need be; `None` when
    /// the repository has no such file.
    pub fn file(&self, repo: &RepoRef, path: &str) -> Result<Option<PathBuf>> {
        cache::check_repo_path(path)?;
        if is_commit_hash(&repo.revision)
            && let Some(found) = self.cached_file(repo, path)
        {
            return Ok(found);
        }
        if self.settings.offline {
            return self.cached_file(repo, path).ok_or_else(|| {
                anyhow!(
                    "{path} of {repo} is not in the hub cache {} and HF_HUB_OFFLINE is set: \
                     run once with a network (or unset HF_HUB_OFFLINE)",
                    self.settings.cache_dir.display()
                )
            });
        }
        let lookup = match self.http.metadata(&repo.id, &repo.revision, path) {
            Ok(lookup) => lookup,
            Err(e) if e.is::<Unreachable>() => {
                return self.cached_file(repo, path).ok_or_else(|| {
                    e.context(format!(
                        "{path} of {repo} is not in the hub cache {} either",
                        self.settings.cache_dir.display()
                    ))
                });
            }
            Err(e) => return Err(e),
        };
        let cache = RepoCache::new(&self.settings.cache_dir, &repo.id);
        match lookup {
            Lookup::Missing { commit } => {
                if let Some(commit) = commit {
                    cache.write_ref(&repo.revision, &commit)?;
                    cache.mark_missing(&commit, path)?;
                }
                Ok(None)
            }
            Lookup::Found(meta) => {
                cache.write_ref(&repo.revision, &meta.commit)?;
                self.fetch_blob(&cache, repo, path, &meta)?;
                Ok(Some(cache.link_snapshot(&meta.commit, path, &meta.etag)?))
            }
        }
    }

    /// Make sure `blobs/{etag}` holds the verified file: under the blob's lock (shared with
    /// `huggingface_hub`), resume `.incomplete`, check, rename.
    fn fetch_blob(
        &self,
        cache: &RepoCache,
        repo: &RepoRef,
        path: &str,
        meta: &FileMetadata,
    ) -> Result<()> {
        if meta.etag.is_empty() || meta.etag.contains(['/', '\\', '.']) {
            bail!(
                "the hub gave {path} of {repo} an unusable ETag {:?}",
                meta.etag
            );
        }
        let blob = cache.blob_path(&meta.etag);
        if blob.is_file() {
            return Ok(());
        }
        let lock_path = cache.lock_path(&meta.etag);
        std::fs::create_dir_all(lock_path.parent().unwrap())
            .with_context(|| format!("cannot create {}", lock_path.display()))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("cannot open the lock {}", lock_path.display()))?;
        lock.lock()
            .with_context(|| format!("cannot lock {}", lock_path.display()))?;
        // Another process may have finished it while we waited for the lock.
        if blob.is_file() {
            return Ok(());
        }
        std::fs::create_dir_all(blob.parent().unwrap())?;
        let partial = cache.incomplete_path(&meta.etag);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&partial)
            .with_context(|| format!("cannot write {}", partial.display()))?;
        let mut have = file.metadata()?.len();
        if meta.size.is_some_and(|size| have > size) {
            file.set_len(0)?;
            have = 0;
        }
        if meta.size != Some(have) || have == 0 {
            let bar = self.progress_bar(repo, path, meta.size, have);
            let restart = || {
                bar.set_position(0);
                file.set_len(0).context("cannot restart the download")
            };
            let mut out = std::fs::File::options().append(true).open(&partial)?;
            self.http
                .download(meta, have, &mut out, restart, |n| bar.inc(n))
                .with_context(|| {
                    format!(
                        "{path} of {repo}: the part already downloaded stays in {} and the \
                         next run resumes it",
                        partial.display()
                    )
                })?;
            out.sync_all()?;
            bar.finish_and_clear();
        }
        let got = std::fs::metadata(&partial)?.len();
        if let Some(size) = meta.size
            && got != size
        {
            let _ = std::fs::remove_file(&partial);
            bail!("{path} of {repo}: downloaded {got} bytes, the hub announced {size}");
        }
        if let Err(e) = integrity::verify_file(&partial, &meta.etag) {
            let _ = std::fs::remove_file(&partial);
            return Err(e.context(format!("{path} of {repo} (from {})", meta.location)));
        }
        std::fs::rename(&partial, &blob)
            .with_context(|| format!("cannot move the download to {}", blob.display()))?;
        Ok(())
    }

    fn progress_bar(
        &self,
        repo: &RepoRef,
        path: &str,
        size: Option<u64>,
        have: u64,
    ) -> ProgressBar {
        let show = self.settings.progress && size.is_none_or(|s| s >= PROGRESS_MIN_BYTES);
        if !show {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(size, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.set_message(format!("{}/{path}", repo.id));
        bar.set_position(have);
        bar
    }
}
