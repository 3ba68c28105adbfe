//! The hub's HTTP protocol for one file, as `huggingface_hub` speaks it:
//! `HEAD {endpoint}/{repo}/resolve/{revision}/{path}` gives the commit (`X-Repo-Commit`), the
//! ETag and size (`X-Linked-Etag`/`X-Linked-Size` on a redirect to the LFS storage, else
//! `ETag`/`Content-Length`); relative redirects (renamed repositories) are followed, a
//! redirect to another origin is where the bytes are. `GET` with `Range` resumes.

use std::io::{Read, Write};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use ureq::Agent;

use crate::integrity::normalize_etag;

/// What the hub says about one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMetadata {
    pub commit: String,
    pub etag: String,
    pub size: Option<u64>,
    /// Where the bytes are: the resolve URL, or the storage URL it redirects to.
    pub location: String,
}

/// The answer to a metadata request.
#[derive(Debug)]
pub enum Lookup {
    Found(FileMetadata),
    /// The repository exists at that revision but has no such file (`EntryNotFound`); the
    /// commit, when the hub named it.
    Missing {
        commit: Option<String>,
    },
}

/// The hub could not be reached (as opposed to answering "no"): the cache may stand in.
#[derive(Debug)]
pub struct Unreachable(pub String);

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unreachable {}

pub struct HubHttp {
    agent: Agent,
    token: Option<String>,
    endpoint: String,
}

const USER_AGENT: &str = concat!("bert-toolkit/", env!("CARGO_PKG_VERSION"), "; rust");

impl HubHttp {
    pub fn new(endpoint: &str, token: Option<String>) -> Self {
        // Redirects are followed by hand (see `metadata`); HTTP errors are answers, not errors.
        // Proxies come from ALL_PROXY/HTTPS_PROXY/HTTP_PROXY and NO_PROXY (ureq's default).
        let config = Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .user_agent(USER_AGENT)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(Duration::from_secs(30)))
            .timeout_per_read(Some(Duration::from_secs(60)))
            .build();
        Self {
            agent: config.new_agent(),
            token,
            endpoint: endpoint.to_string(),
        }
    }

    pub fn resolve_url(&self, repo: &str, revision: &str, path: &str) -> String {
        format!(
            "{}/{repo}/resolve/{}/{path}",
            self.endpoint,
            revision.replace('/', "%2F")
        )
    }

    /// `HEAD` the resolve URL: the file's commit, ETag, size and location.
    pub fn metadata(&self, repo: &str, revision: &str, path: &str) -> Result<Lookup> {
        let mut url = self.resolve_url(repo, revision, path);
        for _ in 0..10 {
            let mut request = self.agent.head(&url).header("Accept-Encoding", "identity");
            if let Some(token) = &self.token {
                request = request.header("Authorization", format!("Bearer {token}"));
            }
            let response = request.call().map_err(|e| {
                anyhow!(Unreachable(format!("cannot reach {}: {e}", self.endpoint)))
            })?;
            let status = response.status().as_u16();
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let location = header("location");
            if (300..400).contains(&status) {
                let next = location
                    .as_deref()
                    .map(|next| join_url(&url, next))
                    .ok_or_else(|| anyhow!("{url}: HTTP {status} without a Location"))?;
                // A renamed repository (`bert-base-uncased` → `google-bert/...`) redirects
                // within the hub: follow. A redirect elsewhere is the storage of the bytes.
                if header("x-linked-etag").is_none() && same_origin(&next, &url) {
                    url = next;
                    continue;
                }
            }
            if status == 404 && header("x-error-code").as_deref() == Some("EntryNotFound") {
                return Ok(Lookup::Missing {
                    commit: header("x-repo-commit"),
                });
            }
            if !(200..400).contains(&status) {
                bail!(describe_error(repo, revision, path, status, &header));
            }
            let commit = header("x-repo-commit").ok_or_else(|| {
                anyhow!(
                    "{url} answered without X-Repo-Commit: is HF_ENDPOINT ({}) a HuggingFace hub?",
                    self.endpoint
                )
            })?;
            let etag = header("x-linked-etag")
                .or_else(|| header("etag"))
                .map(|e| normalize_etag(&e))
                .ok_or_else(|| anyhow!("{url} answered without an ETag"))?;
            let size = header("x-linked-size")
                .or_else(|| (status < 300).then(|| header("content-length")).flatten())
                .and_then(|s| s.parse().ok());
            let location = match location {
                Some(next) if status >= 300 => join_url(&url, &next),
                _ => url,
            };
            return Ok(Lookup::Found(FileMetadata {
                commit,
                etag,
                size,
                location,
            }));
        }
        bail!("too many redirects for {path} of {repo}")
    }

    /// `GET` the file from byte `from` on (`Range`), writing into `out`; `progress` gets each
    /// chunk's length. Returns whether the server honoured the range (206); a 200 means the
    /// whole file is coming and `out` must be started again: `restart` is called first.
    pub fn download(
        &self,
        meta: &FileMetadata,
        from: u64,
        out: &mut impl Write,
        mut restart: impl FnMut() -> Result<()>,
        mut progress: impl FnMut(u64),
    ) -> Result<()> {
        let mut request = self
            .agent
            .get(&meta.location)
            .header("Accept-Encoding", "identity");
        // The token goes to the hub only, never to the storage a redirect points at.
        if let Some(token) = &self.token
            && same_origin(&meta.location, &self.endpoint)
        {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        if from > 0 {
            request = request.header("Range", format!("bytes={from}-"));
        }
        let response = request.call().map_err(|e| {
            anyhow!(Unreachable(format!(
                "download from {} failed: {e}",
                meta.location
            )))
        })?;
        match response.status().as_u16() {
            206 if from > 0 => {}
            200 => {
                if from > 0 {
                    restart()?;
                }
            }
            status => bail!("download from {} failed: HTTP {status}", meta.location),
        }
        let mut body = response.into_body().into_reader();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(anyhow!(Unreachable(format!(
                        "download from {} was cut: {e}",
                        meta.location
                    ))));
                }
            };
            out.write_all(&buf[..n])
                .context("cannot write the download")?;
            progress(n as u64);
        }
        Ok(())
    }
}

/// The hub's own words for a refusal, with what to do about the common ones.
fn describe_error(
    repo: &str,
    revision: &str,
    path: &str,
    status: u16,
    header: &dyn Fn(&str) -> Option<String>,
) -> String {
    let code = header("x-error-code").unwrap_or_default();
    let message = header("x-error-message")
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    let what = format!("{path} of {repo} (revision {revision})");
    match (status, code.as_str()) {
        (_, "RepoNotFound") | (401, "") => format!(
            "the hub has no repository {repo:?}, or it is private or gated and needs a token \
             (HF_TOKEN, or `hf auth login`) (HTTP {status}{message})"
        ),
        (_, "GatedRepo") | (403, _) => format!(
            "{repo} is gated: accept its terms on the hub and give a token (HF_TOKEN) \
             (HTTP {status}{message})"
        ),
        (_, "RevisionNotFound") => {
            format!("{repo} has no revision {revision:?} (HTTP {status}{message})")
        }
        _ => format!("the hub refused {what}: HTTP {status} {code}{message}"),
    }
}

/// `next` (a Location header) against `base`.
fn join_url(base: &str, next: &str) -> String {
    if next.contains("://") {
        return next.to_string();
    }
    let origin_end = base
        .find("://")
        .map(|i| base[i + 3..].find('/').map_or(base.len(), |j| i + 3 + j))
        .unwrap_or(0);
    if next.starts_with('/') {
        format!("{}{next}", &base[..origin_end])
    } else {
        let dir_end = base
            .rfind('/')
            .filter(|&i| i >= origin_end)
            .unwrap_or(base.len());
        format!("{}/{next}", &base[..dir_end])
    }
}

fn origin(url: &str) -> &str {
    let start = url.find("://").map_or(0, |i| i + 3);
    url[start..].find('/').map_or(url, |j| &url[..start + j])
}

fn same_origin(a: &str, b: &str) -> bool {
    origin(a).eq_ignore_ascii_case(origin(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_join_and_compare_as_browsers_do() {
        let base = "https://hub.example/bert-base-uncased/resolve/main/config.json";
        assert_eq!(
            join_url(
                base,
                "/google-bert/bert-base-uncased/resolve/main/config.json"
            ),
            "https://hub.example/google-bert/bert-base-uncased/resolve/main/config.json"
        );
        assert_eq!(
            join_url(base, "https://cdn.example/x"),
            "https://cdn.example/x"
        );
        assert_eq!(
            join_url(base, "other.json"),
            "https://hub.example/bert-base-uncased/resolve/main/other.json"
        );
        assert!(same_origin(base, "https://HUB.example"));
        assert!(!same_origin(base, "https://cdn.example/x"));
    }
}
