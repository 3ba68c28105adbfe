//! Choosing where the model runs, at run time: `--backend auto|cpu|wgpu|vulkan|cuda`.
//!
//! burn 0.22 erases the backend behind a runtime `Device`, so one binary can hold all the
//! backends its cargo features enabled, and the choice is just which `Device` to build.

use alloc::string::ToString;
use burn::tensor::Device;

use crate::error::BertError;

/// A backend that `--backend` can name (serialized as `"cpu"`, `"wgpu"`, `"vulkan"`, `"cuda"`).
///
/// `--backend auto` is not a variant: parsing it picks one of these ([`BackendKind::detect`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// burn's pure-Rust `flex` CPU backend (feature `cpu`).
    Cpu,
    /// wgpu with the graphics API and shader compiler cubecl picks: Vulkan/Metal/DX12/WebGPU;
    /// Mesa lavapipe on a machine without a GPU (feature `wgpu`). With feature `vulkan` a
    /// Vulkan adapter that can take SPIR-V gets SPIR-V, as with [`BackendKind::Vulkan`].
    Wgpu,
    /// wgpu pinned to native Vulkan, kernels compiled to SPIR-V, which reach the driver's
    /// cooperative matrices (tensor cores) where it has them (feature `vulkan`).
    Vulkan,
    /// NVIDIA CUDA (feature `cuda`, off by default).
    Cuda,
}

impl core::str::FromStr for BackendKind {
    type Err = BertError;

    /// `auto` detects ([`BackendKind::auto`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::auto()),
            "cpu" | "flex" => Ok(Self::Cpu),
            "wgpu" | "gpu" => Ok(Self::Wgpu),
            "vulkan" | "spirv" => Ok(Self::Vulkan),
            "cuda" => Ok(Self::Cuda),
            other => Err(BertError::Backend(alloc::format!(
                "unknown backend {other:?}; expected auto, cpu, wgpu, vulkan or cuda"
            ))),
        }
    }
}

impl core::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Cpu => "cpu",
            Self::Wgpu => "wgpu",
            Self::Vulkan => "vulkan",
            Self::Cuda => "cuda",
        })
    }
}

/// Whether `device` is the CPU backend (flex) outside autodiff: where the CPU-only inference
/// paths (vectorised GELU, packed projections' thread pool, skipping padding) apply.
pub(crate) fn is_plain_cpu(device: &Device) -> bool {
    #[cfg(feature = "cpu")]
    return !device.is_autodiff() && *device == Device::flex();
    #[cfg(not(feature = "cpu"))]
    {
        let _ = device;
        false
    }
}

impl BackendKind {
    /// `--pad-to-multiple-of N` where given, else [`Self::default_pad_multiple`].
    pub fn pad_multiple(self, requested: Option<usize>) -> usize {
        requested.unwrap_or_else(|| self.default_pad_multiple())
    }

    /// `--pad-to-multiple-of`'s default: GPU backends compile (and tune) kernels for every new
    /// sequence length, so their batches are padded to multiples of 32; the CPU pays only for
    /// the extra tokens, so its batches end at their longest row (BENCHMARKS.md measures it).
    pub fn default_pad_multiple(self) -> usize {
        match self {
            Self::Cpu => 1,
            Self::Wgpu | Self::Vulkan | Self::Cuda => 32,
        }
    }

    /// The backends this build has, in the order `--backend`'s help lists them.
    pub fn available() -> alloc::vec::Vec<Self> {
        [Self::Cpu, Self::Wgpu, Self::Vulkan, Self::Cuda]
            .into_iter()
            .filter(|b| b.compiled_in())
            .collect()
    }

    /// Whether this build was compiled with the backend's cargo feature.
    pub fn compiled_in(self) -> bool {
        match self {
            Self::Cpu => cfg!(feature = "cpu"),
            Self::Wgpu => cfg!(feature = "wgpu"),
            Self::Vulkan => cfg!(all(feature = "vulkan", not(target_arch = "wasm32"))),
            Self::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// `--backend auto`: [`Self::detect`] once per process, saying on stderr what it took.
    pub fn auto() -> Self {
        static CHOICE: std::sync::OnceLock<BackendKind> = std::sync::OnceLock::new();
        *CHOICE.get_or_init(|| {
            let (kind, why) = Self::detect();
            #[cfg(not(target_arch = "wasm32"))]
            std::eprintln!("backend: {kind} ({why}; --backend picks another)");
            #[cfg(target_arch = "wasm32")]
            let _ = why;
            kind
        })
    }

    /// What `--backend auto` takes: a hardware GPU where wgpu finds one (SPIR-V on Vulkan
    /// where this build has it, else wgpu's pick), otherwise the CPU; software adapters
    /// (lavapipe, SwiftShader) are slower than the CPU backend and never chosen. Also returns
    /// why, for the message.
    pub fn detect() -> (Self, alloc::string::String) {
        #[cfg(all(feature = "wgpu", not(target_arch = "wasm32")))]
        if let Some(gpu) = hardware_gpu() {
            let kind = if Self::Vulkan.compiled_in() && gpu.vulkan {
                Self::Vulkan
            } else {
                Self::Wgpu
            };
            return (kind, alloc::format!("auto: found {}", gpu.name));
        }
        let why = if Self::Wgpu.compiled_in() {
            "auto: no hardware GPU found"
        } else {
            "auto: this build has no GPU backend"
        };
        (Self::Cpu, why.to_string())
    }

    /// Start the backend and return its device; an error (not a panic) when this build lacks
    /// it or the machine has no usable adapter.
    pub fn device(self) -> Result<Device, BertError> {
        if !self.compiled_in() {
            return Err(BertError::Backend(alloc::format!(
                "this build has no {self} backend (rebuild with cargo feature `{}`)",
                self
            )));
        }
        #[cfg(not(target_arch = "wasm32"))]
        if self != Self::Cpu {
            crate::kernel_cache::install();
        }
        match self {
            #[cfg(feature = "cpu")]
            Self::Cpu => Ok(Device::flex()),
            #[cfg(feature = "wgpu")]
            Self::Wgpu => wgpu_device(),
            #[cfg(all(feature = "vulkan", not(target_arch = "wasm32")))]
            Self::Vulkan => vulkan_device(),
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
            #[cfg(all(feature = "vulkan", not(target_arch = "wasm32")))]
            Self::Vulkan if ranks > 1 || index > 0 => {
                self.device()?;
                Ok(Device::vulkan(burn::tensor::DeviceKind::DiscreteGpu(index)))
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

/// The default Vulkan adapter, started explicitly for the same reason as [`wgpu_device`].
#[cfg(all(feature = "vulkan", not(target_arch = "wasm32")))]
fn vulkan_device() -> Result<Device, BertError> {
    use burn::tensor::wgpu::WgpuBackend;
    static DEVICE: std::sync::OnceLock<Result<Device, alloc::string::String>> =
        std::sync::OnceLock::new();
    DEVICE
        .get_or_init(|| {
            match Device::wgpu_options()
                .graphics_api(WgpuBackend::Vulkan)
                .init()
            {
                Ok(device) => Ok(device),
                Err(e) if alloc::format!("{e:?}").contains("already initialized") => {
                    Ok(Device::vulkan(burn::tensor::DeviceKind::DefaultDevice))
                }
                Err(e) => Err(alloc::format!(
                    "no Vulkan adapter ({e}); install the GPU's Vulkan driver (on Linux without a \
                     GPU, Mesa's lavapipe: apt-get install mesa-vulkan-drivers libvulkan1), or \
                     use --backend wgpu or cpu"
                )),
            }
        })
        .clone()
        .map_err(BertError::Backend)
}

/// A hardware (not software-rendered) adapter that wgpu sees.
#[cfg(all(feature = "wgpu", not(target_arch = "wasm32")))]
struct HardwareGpu {
    name: alloc::string::String,
    vulkan: bool,
}

/// The first hardware adapter wgpu enumerates, Vulkan ones first. Enumerating starts no device.
#[cfg(all(feature = "wgpu", not(target_arch = "wasm32")))]
fn hardware_gpu() -> Option<HardwareGpu> {
    use burn::tensor::wgpu::wgpu;
    let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle();
    descriptor.backends = wgpu::Backends::PRIMARY;
    let instance = wgpu::Instance::new(descriptor);
    let adapters = block_on_ready(instance.enumerate_adapters(wgpu::Backends::PRIMARY))?;
    let mut gpus: alloc::vec::Vec<_> = adapters
        .iter()
        .map(|adapter| adapter.get_info())
        .filter(|info| {
            matches!(
                info.device_type,
                wgpu::DeviceType::DiscreteGpu
                    | wgpu::DeviceType::IntegratedGpu
                    | wgpu::DeviceType::VirtualGpu
            )
        })
        .collect();
    // Discrete before integrated, Vulkan before other APIs on the same card.
    gpus.sort_by_key(|info| {
        (
            info.device_type != wgpu::DeviceType::DiscreteGpu,
            info.backend != wgpu::Backend::Vulkan,
        )
    });
    gpus.first().map(|info| HardwareGpu {
        name: alloc::format!("{} ({:?}, {})", info.name, info.device_type, info.backend),
        vulkan: info.backend == wgpu::Backend::Vulkan,
    })
}

/// Native wgpu answers enumeration at once; a future that is still pending after a few polls
/// is treated as "no answer" rather than blocked on.
#[cfg(all(feature = "wgpu", not(target_arch = "wasm32")))]
fn block_on_ready<T>(future: impl core::future::Future<Output = T>) -> Option<T> {
    let mut future = core::pin::pin!(future);
    let mut context = core::task::Context::from_waker(core::task::Waker::noop());
    for _ in 0..100 {
        if let core::task::Poll::Ready(value) = future.as_mut().poll(&mut context) {
            return Some(value);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    None
}

/// In the browser the page initialises wgpu asynchronously itself; this is the lazily
/// initialised default adapter.
#[cfg(all(feature = "wgpu", target_arch = "wasm32"))]
fn wgpu_device() -> Result<Device, BertError> {
    Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice))
}
