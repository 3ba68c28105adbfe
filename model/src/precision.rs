//! `--dtype`: the precision a model computes in. Training keeps float32 master weights and
//! computes in a half-precision cast of them (the training crate's `precision`); inference
//! simply keeps the cast (weights in float16/bfloat16 in memory, half the bytes to read).
//! Outputs that are reduced further (pooling, losses) go back to float32 first ([`to_f32`]).

use alloc::string::String;

use anyhow::{Result, ensure};
use burn::module::{Module, ModuleMapper, Param};
use burn::prelude::*;
use burn::tensor::{DType, FloatDType};
use serde::{Deserialize, Serialize};

/// `--dtype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Float32,
    Float16,
    BFloat16,
}

impl core::str::FromStr for Precision {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "float32" | "fp32" | "f32" => Ok(Self::Float32),
            "float16" | "fp16" | "f16" => Ok(Self::Float16),
            "bfloat16" | "bf16" => Ok(Self::BFloat16),
            other => {
                anyhow::bail!("unknown --dtype {other:?}; expected float32, float16 or bfloat16")
            }
        }
    }
}

impl core::fmt::Display for Precision {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Float32 => "float32",
            Self::Float16 => "float16",
            Self::BFloat16 => "bfloat16",
        })
    }
}

impl Precision {
    /// The dtype the model computes in; `None` for float32 (no cast).
    pub fn compute_dtype(self) -> Option<FloatDType> {
        match self {
            Self::Float32 => None,
            Self::Float16 => Some(FloatDType::F16),
            Self::BFloat16 => Some(FloatDType::BF16),
        }
    }

    /// float16's 5 exponent bits underflow on small gradients (training scales its losses);
    /// bfloat16 has float32's range.
    pub fn needs_loss_scaling(self) -> bool {
        self == Self::Float16
    }
}

/// Casts every float parameter, keeping its id (as a tracked operation on an autodiff device).
struct CastParams(FloatDType);

impl ModuleMapper for CastParams {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let dtype = self.0;
        param.map(|t| t.cast(dtype))
    }
}

/// The model to compute with: `model` itself in float32, else its parameters cast to the
/// compute dtype. On an autodiff device gradients flow back to `model`'s float32 parameters;
/// on a plain one it is simply a half-precision copy for inference.
pub fn compute_model<M: Module>(model: &M, precision: Precision) -> M {
    match precision.compute_dtype() {
        None => model.clone(),
        Some(dtype) => model.clone().map(&mut CastParams(dtype)),
    }
}

/// A half-precision model's outputs in float32, for what reduces them further (softmax and
/// losses, pooling and normalisation); float32 outputs pass unchanged.
pub fn to_f32<const D: usize>(tensor: Tensor<D>) -> Tensor<D> {
    if tensor.dtype() == DType::F32 {
        tensor
    } else {
        tensor.cast(FloatDType::F32)
    }
}

/// A clear error when `device` has no arithmetic in `precision`.
pub fn check_device(precision: Precision, device: &Device) -> Result<()> {
    if let Some(dtype) = precision.compute_dtype() {
        let message: String = alloc::format!(
            "--dtype {precision}: the device {device:?} has no {precision} arithmetic (wgpu \
             needs the adapter's shader-f16 feature for float16)"
        );
        ensure!(device.supports_dtype(dtype), message);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dtypes() {
        assert_eq!("float16".parse::<Precision>().unwrap(), Precision::Float16);
        assert_eq!("bf16".parse::<Precision>().unwrap(), Precision::BFloat16);
        assert!("int8".parse::<Precision>().is_err());
    }
}
