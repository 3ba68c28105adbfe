//! Question answering on SQuAD 1.1 / 2.0 (`bert-train finetune-squad`), as GluonNLP's
//! `finetune_squad.py` / Google's `run_squad.py`.
//!
//! - [`data`]: the JSON files (answers checked against their context offsets).
//! - [`features`]: question + context windows (`--doc-stride`), max-context flags, labels.
//! - [`postprocess`]: n-best spans, the null answer and its threshold, the output files.
//! - [`trainer`]: training and prediction.

pub mod data;
pub mod features;
pub mod postprocess;
pub mod trainer;

pub use trainer::{SquadConfig, SquadSummary, run_squad};
