//! Re-encode a safetensors file's floating-point tensors in another precision. float16 halves
//! the download of a model for the browser; the loader widens it back to float32 on the way in
//! (`import.rs`), so only the rounding of the weights changes.

use anyhow::{Context, Result, bail};
use half::{bf16, f16};
use safetensors::{Dtype, SafeTensors};

use super::export::{NamedTensor, serialize_safetensors};

/// A precision that weights can be stored in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum StorageDtype {
    Float32,
    Float16,
    Bfloat16,
}

impl StorageDtype {
    /// The name `--dtype` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Float32 => "float32",
            Self::Float16 => "float16",
            Self::Bfloat16 => "bfloat16",
        }
    }

    fn dtype(self) -> Dtype {
        match self {
            Self::Float32 => Dtype::F32,
            Self::Float16 => Dtype::F16,
            Self::Bfloat16 => Dtype::BF16,
        }
    }
}

/// What [`convert_safetensors`] did: tensors re-encoded and tensors copied as they were
/// (integers, e.g. `position_ids`, and floats already in the target precision).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ConvertReport {
    pub converted: usize,
    pub kept: usize,
}

/// `bytes` (a safetensors file) with every F32/F16/BF16 tensor stored as `to`; other tensors
/// and the file's metadata unchanged.
pub fn convert_safetensors(bytes: &[u8], to: StorageDtype) -> Result<(Vec<u8>, ConvertReport)> {
    let file = SafeTensors::deserialize(bytes).context("not a safetensors file")?;
    let (_, header) =
        SafeTensors::read_metadata(bytes).context("cannot read the safetensors header")?;
    let mut report = ConvertReport::default();
    let mut tensors: Vec<NamedTensor> = Vec::new();
    for (name, view) in file.tensors() {
        let (dtype, data) = if is_float(view.dtype()) && view.dtype() != to.dtype() {
            report.converted += 1;
            (to.dtype(), encode(&widen(view.dtype(), view.data()), to))
        } else {
            report.kept += 1;
            (view.dtype(), view.data().to_vec())
        };
        tensors.push((name.to_string(), dtype, view.shape().to_vec(), data));
    }
    if tensors.is_empty() {
        bail!("the safetensors file holds no tensors");
    }
    let metadata = header.metadata().clone();
    Ok((serialize_safetensors(&tensors, metadata)?, report))
}

fn is_float(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16)
}

/// The values of an F32, F16 or BF16 tensor (little-endian, as safetensors stores them).
fn widen(dtype: Dtype, data: &[u8]) -> Vec<f32> {
    match dtype {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        _ => data
            .chunks_exact(2)
            .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
    }
}

/// Round to nearest even, as PyTorch's `.half()` / `.bfloat16()` do.
fn encode(values: &[f32], to: StorageDtype) -> Vec<u8> {
    match to {
        StorageDtype::Float32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        StorageDtype::Float16 => values
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_le_bytes())
            .collect(),
        StorageDtype::Bfloat16 => values
            .iter()
            .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A file with a float32 weight, an int64 index tensor and metadata.
    fn sample() -> Vec<u8> {
        let weight: Vec<u8> = [0.1f32, -2.5, 65504.0, 1e-8, 3.0e5]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let ids: Vec<u8> = [0i64, 1, 2].iter().flat_map(|v| v.to_le_bytes()).collect();
        let views = vec![
            (
                "w".to_string(),
                safetensors::tensor::TensorView::new(Dtype::F32, vec![5], &weight).unwrap(),
            ),
            (
                "position_ids".to_string(),
                safetensors::tensor::TensorView::new(Dtype::I64, vec![1, 3], &ids).unwrap(),
            ),
        ];
        let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
        safetensors::serialize(views, Some(metadata)).unwrap()
    }

    #[test]
    fn floats_are_rounded_to_nearest_and_the_rest_is_kept() {
        let (bytes, report) = convert_safetensors(&sample(), StorageDtype::Float16).unwrap();
        assert_eq!(
            report,
            ConvertReport {
                converted: 1,
                kept: 1
            }
        );
        let file = SafeTensors::deserialize(&bytes).unwrap();
        let w = file.tensor("w").unwrap();
        assert_eq!((w.dtype(), w.shape()), (Dtype::F16, &[5][..]));
        let values = widen(Dtype::F16, w.data());
        // 0.1 -> 0.0999755859375 (nearest f16), 65504 is f16's largest, 1e-8 underflows to 0,
        // 3e5 overflows to infinity, as torch's .half() does.
        assert_eq!(values[..4], [0.099975586, -2.5, 65504.0, 0.0]);
        assert!(values[4].is_infinite());
        let ids = file.tensor("position_ids").unwrap();
        assert_eq!((ids.dtype(), ids.shape()), (Dtype::I64, &[1, 3][..]));
        let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(header.metadata().as_ref().unwrap()["format"], "pt");
    }

    #[test]
    fn half_precision_widens_back_exactly() {
        let (half, _) = convert_safetensors(&sample(), StorageDtype::Bfloat16).unwrap();
        let (again, report) = convert_safetensors(&half, StorageDtype::Bfloat16).unwrap();
        assert_eq!(
            report,
            ConvertReport {
                converted: 0,
                kept: 2
            }
        );
        assert_eq!(again, half);
        let (wide, _) = convert_safetensors(&half, StorageDtype::Float32).unwrap();
        let file = SafeTensors::deserialize(&wide).unwrap();
        let w = file.tensor("w").unwrap();
        assert_eq!(w.dtype(), Dtype::F32);
        let from_half = widen(
            Dtype::BF16,
            SafeTensors::deserialize(&half)
                .unwrap()
                .tensor("w")
                .unwrap()
                .data(),
        );
        assert_eq!(widen(Dtype::F32, w.data()), from_half);
    }

    #[test]
    fn garbage_is_an_error() {
        let err = convert_safetensors(b"not a checkpoint", StorageDtype::Float16).unwrap_err();
        assert!(
            format!("{err:#}").contains("not a safetensors file"),
            "{err:#}"
        );
    }
}
