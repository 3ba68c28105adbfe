//! Where the hub is, where its cache lives, who we are and whether we may go online: from the
//! same environment variables Python's `huggingface_hub` reads, so both share one cache.

use std::path::PathBuf;

/// The public hub; `HF_ENDPOINT` points elsewhere (a mirror, a private hub, a test server).
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSettings {
    /// Base URL, without a trailing `/`.
    pub endpoint: String,
    /// The hub cache: `models--{org}--{name}/{blobs,refs,snapshots}` inside.
    pub cache_dir: PathBuf,
    /// Bearer token for gated and private repositories.
    pub token: Option<String>,
    /// Cache only: nothing goes over the network.
    pub offline: bool,
    /// A progress bar (bytes, bytes/s) for large downloads, on a terminal.
    pub progress: bool,
}

impl HubSettings {
    /// From the process environment.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// From `var` (a variable's non-empty value), as `huggingface_hub` reads them:
    /// - `HF_ENDPOINT` (default `https://huggingface.co`);
    /// - `HF_HUB_CACHE`, else the legacy `HUGGINGFACE_HUB_CACHE`, else `$HF_HOME/hub`, where
    ///   `HF_HOME` defaults to `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`;
    /// - `HF_TOKEN`, else the legacy `HUGGING_FACE_HUB_TOKEN`, else the token file that
    ///   `hf auth login` writes (`HF_TOKEN_PATH`, default `$HF_HOME/token`);
    /// - `HF_HUB_OFFLINE` = 1/ON/YES/TRUE.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let hf_home = var("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
            let cache = var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| home_dir(&var).join(".cache"));
            cache.join("huggingface")
        });
        let cache_dir = var("HF_HUB_CACHE")
            .or_else(|| var("HUGGINGFACE_HUB_CACHE"))
            .map(PathBuf::from)
            .unwrap_or_else(|| hf_home.join("hub"));
        let token = var("HF_TOKEN")
            .or_else(|| var("HUGGING_FACE_HUB_TOKEN"))
            .or_else(|| {
                let path = var("HF_TOKEN_PATH")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| hf_home.join("token"));
                let text = std::fs::read_to_string(path).ok()?;
                Some(text.trim().to_string()).filter(|t| !t.is_empty())
            });
        let endpoint = var("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        Self {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            cache_dir,
            token,
            offline: var("HF_HUB_OFFLINE").is_some_and(|v| is_true(&v)),
            progress: true,
        }
    }
}

fn is_true(value: &str) -> bool {
    ["1", "on", "yes", "true"].contains(&value.trim().to_ascii_lowercase().as_str())
}

fn home_dir(var: &impl Fn(&str) -> Option<String>) -> PathBuf {
    var("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> HubSettings {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        HubSettings::from_vars(|k| vars.get(k).cloned())
    }

    #[test]
    fn defaults_follow_huggingface_hub() {
        let s = settings(&[("HOME", "/home/u")]);
        assert_eq!(s.endpoint, "https://huggingface.co");
        assert_eq!(s.cache_dir, PathBuf::from("/home/u/.cache/huggingface/hub"));
        assert_eq!(s.token, None);
        assert!(!s.offline);
        let s = settings(&[("HOME", "/home/u"), ("XDG_CACHE_HOME", "/xdg")]);
        assert_eq!(s.cache_dir, PathBuf::from("/xdg/huggingface/hub"));
        let s = settings(&[("HF_HOME", "/hf"), ("XDG_CACHE_HOME", "/xdg")]);
        assert_eq!(s.cache_dir, PathBuf::from("/hf/hub"));
    }

    #[test]
    fn variables_override_in_huggingface_hub_order() {
        let s = settings(&[
            ("HF_HOME", "/hf"),
            ("HUGGINGFACE_HUB_CACHE", "/legacy"),
            ("HF_ENDPOINT", "https://mirror.example/"),
            ("HUGGING_FACE_HUB_TOKEN", "old"),
            ("HF_HUB_OFFLINE", "YES"),
        ]);
        assert_eq!(s.cache_dir, PathBuf::from("/legacy"));
        assert_eq!(s.endpoint, "https://mirror.example");
        assert_eq!(s.token.as_deref(), Some("old"));
        assert!(s.offline);
        let s = settings(&[
            ("HF_HUB_CACHE", "/new"),
            ("HUGGINGFACE_HUB_CACHE", "/legacy"),
            ("HF_TOKEN", "new"),
            ("HUGGING_FACE_HUB_TOKEN", "old"),
            ("HF_HUB_OFFLINE", "0"),
        ]);
        assert_eq!(s.cache_dir, PathBuf::from("/new"));
        assert_eq!(s.token.as_deref(), Some("new"));
        assert!(!s.offline);
    }

    #[test]
    fn token_file_is_read_when_no_variable_names_a_token() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "hf_secret\n").unwrap();
        let home = dir.path().to_str().unwrap();
        assert_eq!(
            settings(&[("HF_HOME", home)]).token.as_deref(),
            Some("hf_secret")
        );
        let other = dir.path().join("elsewhere");
        std::fs::write(&other, "hf_other").unwrap();
        let s = settings(&[
            ("HF_HOME", home),
            ("HF_TOKEN_PATH", other.to_str().unwrap()),
        ]);
        assert_eq!(s.token.as_deref(), Some("hf_other"));
    }
}
