//! The crate's error type: every way a checkpoint, a config or an input can be wrong, each with
//! a message that names what is wrong so that a user can fix it without reading code.

use alloc::string::String;
use alloc::vec::Vec;

/// One tensor that did not fit the model, by its HuggingFace name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TensorProblem {
    /// The model needs this tensor and the checkpoint lacks it.
    Missing(String),
    /// The checkpoint has it with another shape.
    Shape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// Anything else the loader reported for it (dtype, unreadable data).
    Other { name: String, message: String },
}

impl core::fmt::Display for TensorProblem {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Missing(name) => write!(f, "missing tensor {name}"),
            Self::Shape {
                name,
                expected,
                found,
            } => write!(
                f,
                "tensor {name} has shape {found:?}, the model needs {expected:?}"
            ),
            Self::Other { name, message } => write!(f, "tensor {name}: {message}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BertError {
    /// `config.json` is unreadable or describes an impossible model.
    #[error("invalid BERT config: {0}")]
    Config(String),
    /// The weights do not fit the config; every offending tensor is listed.
    #[error("{source_name} does not fit the model ({} problem(s)):\n  {}{}",
        .problems.len(),
        .problems.iter().map(|p| alloc::format!("{p}")).collect::<Vec<_>>().join("\n  "),
        .hint.as_deref().map(|h| alloc::format!("\n{h}")).unwrap_or_default())]
    Weights {
        source_name: String,
        problems: Vec<TensorProblem>,
        /// A one-line diagnosis, e.g. that config.json and the weights disagree on a size.
        hint: Option<String>,
    },
    /// The safetensors container itself could not be read.
    #[error("cannot read {source_name}: {message}")]
    Format {
        source_name: String,
        message: String,
    },
    /// Bad input to the encoder (empty batch, ids out of range, ...).
    #[error("invalid input: {0}")]
    Input(String),
    /// A backend that this build or this machine does not have.
    #[error("backend: {0}")]
    Backend(String),
}
