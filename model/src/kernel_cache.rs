//! GPU kernels and autotune results kept on disk between runs (cargo feature `kernel-cache`,
//! on in the `vulkan` and `cuda` builds).
//!
//! Every new tensor shape costs a GPU backend a round of kernel compilation and autotuning
//! (30–80 s per shape on lavapipe: BENCHMARKS.md, "GPU cold starts"). cubecl can keep both in
//! one database file; this module says where and switches it on, once per process, before the
//! first GPU device starts:
//!
//! - `BERT_KERNEL_CACHE=DIR` puts it in `DIR`; `BERT_KERNEL_CACHE=off` keeps no kernels and
//!   no tuning (every run compiles and tunes afresh);
//! - otherwise `$XDG_CACHE_HOME/bert-toolkit/kernels`, else `~/.cache/bert-toolkit/kernels`.
//!
//! What it holds: autotune results on every GPU backend, compiled SPIR-V (`--backend vulkan`)
//! and PTX (`--backend cuda`); WGSL is compiled by the driver on every run, so `--backend wgpu`
//! without the `vulkan` feature keeps only the autotune results. Entries are keyed by cubecl's
//! version and the device, so one directory serves several GPUs and builds. Deleting the
//! directory clears it. A `cubecl.toml` and cubecl's `CUBECL_*` variables still apply; its
//! `[environment] path`, where set, wins over the default above (not over `BERT_KERNEL_CACHE`).

use std::path::PathBuf;

/// The variable that moves or disables the cache.
pub const ENV_VAR: &str = "BERT_KERNEL_CACHE";

/// How many runs' build records (what each compiled and tuned, and its cost) cubecl keeps,
/// unless a `cubecl.toml` says otherwise.
#[cfg(feature = "kernel-cache")]
const KEEP_SESSIONS: u32 = 4;

/// Where the kernel cache lives, or that there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelCache {
    /// `BERT_KERNEL_CACHE=off` (or `0`, `false`, `none`).
    Off,
    /// The directory the cache database is kept in.
    Dir {
        /// The directory.
        path: PathBuf,
        /// Set by `BERT_KERNEL_CACHE` rather than the default.
        explicit: bool,
    },
}

impl KernelCache {
    /// The setting of this process's environment.
    pub fn from_env() -> Self {
        Self::resolve(env_var)
    }

    fn resolve(var: impl Fn(&str) -> Option<String>) -> Self {
        match var(ENV_VAR) {
            Some(value) => match value.to_ascii_lowercase().as_str() {
                "off" | "0" | "false" | "none" => Self::Off,
                _ => Self::Dir {
                    path: PathBuf::from(value),
                    explicit: true,
                },
            },
            None => Self::Dir {
                path: default_dir(var),
                explicit: false,
            },
        }
    }
}

/// A set, non-empty environment variable.
fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// `$XDG_CACHE_HOME/bert-toolkit/kernels`, else `~/.cache/bert-toolkit/kernels`.
fn default_dir(var: impl Fn(&str) -> Option<String>) -> PathBuf {
    let cache = var("XDG_CACHE_HOME").map(PathBuf::from).unwrap_or_else(|| {
        var("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
            .join(".cache")
    });
    cache.join("bert-toolkit").join("kernels")
}

/// Switches the cache on (or off) for this process, once, and says on stderr where it is.
/// Called before a GPU device starts: cubecl reads its configuration once, at first use.
pub(crate) fn install() {
    static DONE: std::sync::Once = std::sync::Once::new();
    DONE.call_once(|| {
        let cache = KernelCache::from_env();
        match apply(&cache) {
            Ok(Some(line)) => std::eprintln!("{line}"),
            Ok(None) => {}
            Err(why) => std::eprintln!("warning: kernel cache not set up: {why}"),
        }
    });
}

/// Hands the setting to cubecl; the line to print, if any.
#[cfg(feature = "kernel-cache")]
fn apply(cache: &KernelCache) -> Result<Option<alloc::string::String>, alloc::string::String> {
    use burn_cubecl::cubecl::config::cache::CacheConfig;
    use burn_cubecl::cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};
    use burn_cubecl::cubecl::records::RecordLevel;

    // What cubecl would have loaded by itself (cubecl.toml, CUBECL_*), with the cache added.
    let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
    let line = match cache {
        KernelCache::Off => {
            config.compilation.cache = false;
            config.autotune.disable_cache = true;
            config.environment.records.level = RecordLevel::Off;
            // cubecl's device-throughput probe keeps its one figure in the database still (with
            // its cache off it would probe again for every tuned key): in the default
            // directory, not in a place of cubecl's choosing.
            if matches!(config.environment.path, CacheConfig::Target) {
                config.environment.path = CacheConfig::Directory(default_dir(env_var));
            }
            None
        }
        KernelCache::Dir { path, explicit } => {
            config.compilation.cache = true;
            // cubecl's own default is the `target/` of the outermost Cargo project around the
            // working directory: surprising for an installed tool.
            if *explicit || matches!(config.environment.path, CacheConfig::Target) {
                config.environment.path = CacheConfig::Directory(path.clone());
            }
            // cubecl keeps a record of every session by default: a cache that grows each run.
            let records = &mut config.environment.records;
            records.keep_sessions = records.keep_sessions.or(Some(KEEP_SESSIONS));
            Some(alloc::format!(
                "kernel cache: {} ({ENV_VAR}=DIR moves it, =off disables it)",
                config.environment.path.root().display()
            ))
        }
    };
    if CubeClRuntimeConfig::try_set(config) {
        Ok(line)
    } else {
        Err("cubecl's configuration was read before the first device started".into())
    }
}

/// Without the feature there is nothing to switch on; an explicit request is answered.
#[cfg(not(feature = "kernel-cache"))]
fn apply(cache: &KernelCache) -> Result<Option<alloc::string::String>, alloc::string::String> {
    match cache {
        KernelCache::Dir { explicit: true, .. } => Err(alloc::format!(
            "{ENV_VAR} is set, but this build keeps no kernel cache (rebuild with cargo \
             feature `kernel-cache`, or `vulkan`/`cuda`, which include it)"
        )),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(vars: &[(&str, &str)]) -> KernelCache {
        KernelCache::resolve(|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        })
    }

    #[test]
    fn defaults_to_the_user_cache_directory() {
        let home = resolve(&[("HOME", "/home/u")]);
        assert_eq!(
            home,
            KernelCache::Dir {
                path: "/home/u/.cache/bert-toolkit/kernels".into(),
                explicit: false
            }
        );
        let xdg = resolve(&[("HOME", "/home/u"), ("XDG_CACHE_HOME", "/c")]);
        assert_eq!(
            xdg,
            KernelCache::Dir {
                path: "/c/bert-toolkit/kernels".into(),
                explicit: false
            }
        );
    }

    #[test]
    fn the_variable_moves_or_disables_it() {
        let moved = resolve(&[("HOME", "/home/u"), (ENV_VAR, "/fast/kernels")]);
        assert_eq!(
            moved,
            KernelCache::Dir {
                path: "/fast/kernels".into(),
                explicit: true
            }
        );
        for off in ["off", "OFF", "0", "false", "none"] {
            assert_eq!(resolve(&[(ENV_VAR, off)]), KernelCache::Off, "{off}");
        }
    }
}
