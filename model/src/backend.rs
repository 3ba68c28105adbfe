//! Choosing where the model runs, at run time: `--backend cpu|wgpu|cuda`.
//!
//! burn 0.22 erases the backend behind a runtime `Device`, so one binary can hold all the
//! backends its cargo features enabled, and the choice is just which `Device` to build.

use alloc::string::ToString;
use burn::tensor::Device;

use crate::error::BertError;

/// A backend that `--backend` can name (serialized as `"cpu"`, `"wgpu"`, `"cuda"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// burn's pure-Rust `flex` CPU backend (feature `cpu`).
    Cpu,
    /// wgpu: Vulkan/Metal/DX12/WebGPU; Mesa lavapipe on a machine without a GPU (feature `wgpu`).
    Wgpu,
    /// NVIDIA CUDA (feature `cuda`, off by default).
    Cuda,
}

impl core::str::FromStr for BackendKind {
    type Err = BertError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" | "flex" => Ok(Self::Cpu),
            "wgpu" | "gpu" | "vulkan" => Ok(Self::Wgpu),
            "cuda" => Ok(Self::Cuda),
            other => Err(BertError::Backend(alloc::format!(
                "unknown backend {other:?}; expected cpu, wgpu or cuda"
            ))),
        }
    }
}

impl core::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Cpu => "cpu",
            Self::Wgpu => "wgpu",
            Self::Cuda => "cuda",
        })
    }
}

impl BackendKind {
    /// `--pad-to-multiple-of`'s default: GPU backends compile (and tune) kernels for every new
    /// sequence length, so their batches are padded to multiples of 32; the CPU pays only for
    /// the extra tokens, so its batches end at their longest row (BENCHMARKS.md measures it).
    pub fn default_pad_multiple(self) -> usize {
        match self {
            Self::Cpu => 1,
            Self::Wgpu | Self::Cuda => 32,
        }
    }

    /// The backends this build has, in the order `--backend`'s help lists them.
    pub fn available() -> alloc::vec::Vec<Self> {
        [Self::Cpu, Self::Wgpu, Self::Cuda]
            .into_iter()
            .filter(|b| b.compiled_in())
            .collect()
    }

    /// Whether this build was compiled with the backend's cargo feature.
    pub fn compiled_in(self) -> bool {
        match self {
            Self::Cpu => cfg!(feature = "cpu"),
            Self::Wgpu => cfg!(feature = "wgpu"),
            Self::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// Start the backend and return its device; an error (not a panic) when this build lacks
    /// it or the machine has no usable adapter.
    pub fn device(self) -> Result<Device, BertError> {
        if !self.compiled_in() {
            return Err(BertError::Backend(alloc::format!(
                "this build has no {self} backend (rebuild with cargo feature `{}`)",
                match self {
                    Self::Cpu => "cpu",
                    Self::Wgpu => "wgpu",
                    Self::Cuda => "cuda",
                }
            )));
        }
        match self {
            #[cfg(feature = "cpu")]
            Self::Cpu => Ok(Device::flex()),
            #[cfg(feature = "wgpu")]
            Self::Wgpu => wgpu_device(),
            #[cfg(feature = "cuda")]
            Self::Cuda => Ok(Device::cuda(0)),
            #[allow(unreachable_patterns)]
            _ => Err(BertError::Backend(self.to_string())),
        }
    }
}

impl BackendKind {
    /// The device of data-parallel rank `index` (`--gpus`): CUDA's device `index`; wgpu's
    /// default adapter for a single rank, else its `index`-th discrete GPU; the CPU backend
    /// has one device, which every rank shares.
    pub fn device_at(self, index: usize, ranks: usize) -> Result<Device, BertError> {
        match self {
            #[cfg(feature = "cuda")]
            Self::Cuda => {
                self.device()?;
                Ok(Device::cuda(index))
            }
            #[cfg(feature = "wgpu")]
            Self::Wgpu if ranks > 1 || index > 0 => {
                self.device()?;
                Ok(Device::wgpu(burn::tensor::DeviceKind::DiscreteGpu(index)))
            }
            _ => {
                let _ = (index, ranks);
                self.device()
            }
        }
    }
}

/// The wgpu runtime can be initialised once per process; later calls get the same device.
/// Initialising it explicitly (rather than lazily on first use) turns "no adapter" into an
/// error here instead of a panic inside the first kernel launch.
#[cfg(all(feature = "wgpu", not(target_arch = "wasm32")))]
fn wgpu_device() -> Result<Device, BertError> {
    static DEVICE: std::sync::OnceLock<Result<Device, alloc::string::String>> =
        std::sync::OnceLock::new();
    DEVICE
        .get_or_init(|| match Device::wgpu_options().init() {
            Ok(device) => Ok(device),
            // Something already started the default adapter lazily (burn-optim does, loading an
            // optimizer state onto burn's default device): it is up, so use it.
            Err(e) if alloc::format!("{e:?}").contains("already initialized") => {
                Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice))
            }
            Err(e) => Err(alloc::format!(
                "no wgpu adapter ({e}); on Linux without a GPU install Mesa's lavapipe \
                 (apt-get install mesa-vulkan-drivers libvulkan1)"
            )),
        })
        .clone()
        .map_err(BertError::Backend)
}

/// In the browser the page initialises wgpu asynchronously itself; this is the lazily
/// initialised default adapter.
#[cfg(all(feature = "wgpu", target_arch = "wasm32"))]
fn wgpu_device() -> Result<Device, BertError> {
    Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice))
}
