//! What `--model` means in every command: a directory, a zoo name's pretrained checkpoint (or,
//! with `--from-scratch`, its shape with random weights), or a hub id at `--revision`.

use anyhow::Result;
use bert_model::checkpoint::{ModelRequest, ModelSource};

/// `--revision` and `--from-scratch`, beside a command's `--model` and dataset flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct WeightsArgs {
    /// Hub revision (branch, tag or commit) of --model: for a hub id (default main), or
    /// instead of a zoo checkpoint's pinned commit.
    #[arg(long)]
    pub revision: Option<String>,
    /// Random weights (BERT's initialisation) in the zoo shape --model, instead of its
    /// pretrained checkpoint.
    #[arg(long)]
    pub from_scratch: bool,
}

impl WeightsArgs {
    /// Resolve `model` (downloading a checkpoint into the hub cache if need be); `dataset` is
    /// the zoo dataset (`--bert-dataset`, `--dataset-name`).
    pub fn resolve(&self, model: &str, dataset: &str) -> Result<ModelSource> {
        let source = ModelSource::resolve(&ModelRequest {
            model: model.to_string(),
            dataset: Some(dataset.to_string()),
            revision: self.revision.clone(),
            random_weights: self.from_scratch,
        })?;
        match &source {
            ModelSource::Dir(dir) if dir.as_os_str() != model => {
                eprintln!("model: {model} from {}", dir.display());
            }
            ModelSource::Zoo(name) => {
                eprintln!("model: {name} with random weights (--from-scratch)")
            }
            ModelSource::Dir(_) => {}
        }
        Ok(source)
    }
}
