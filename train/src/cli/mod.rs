//! The subcommands of `bert-train` (pretraining, its default action, lives in the binary).
//! Each has its flags and its `run` in its own module.

pub mod convert;
pub mod evaluate_squad;
pub mod export;
pub mod finetune_classifier;
pub mod finetune_squad;
pub mod model_args;
pub mod zoo;

use anyhow::Result;

/// `bert-train <SUBCOMMAND>`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Fine-tune a sentence(-pair) classifier or regressor on a GLUE task or XNLI.
    #[command(after_help = finetune_classifier::AFTER_HELP)]
    FinetuneClassifier(finetune_classifier::FinetuneClassifierArgs),
    /// Fine-tune question answering on SQuAD 1.1 / 2.0 and predict answers.
    #[command(after_help = finetune_squad::AFTER_HELP)]
    FinetuneSquad(finetune_squad::FinetuneSquadArgs),
    /// Score SQuAD predictions exactly as the official evaluate-v1.1 / v2.0 scripts do.
    #[command(after_help = evaluate_squad::AFTER_HELP)]
    EvaluateSquad(evaluate_squad::EvaluateSquadArgs),
    /// Write a model with a task head as a self-contained HuggingFace directory.
    #[command(after_help = export::AFTER_HELP)]
    Export(export::ExportArgs),
    /// Copy a HuggingFace model directory with its weights in another precision (float16).
    #[command(after_help = convert::AFTER_HELP)]
    Convert(convert::ConvertArgs),
    /// List the pretrained checkpoints of the model zoo and whether they are cached.
    #[command(after_help = zoo::AFTER_HELP)]
    Zoo(zoo::ZooArgs),
}

impl Command {
    /// The `--backend` the subcommand runs on, if it has one.
    pub fn backend(&self) -> Option<&str> {
        match self {
            Self::FinetuneClassifier(args) => Some(&args.backend),
            Self::FinetuneSquad(args) => Some(&args.backend),
            Self::EvaluateSquad(_) | Self::Export(_) | Self::Convert(_) | Self::Zoo(_) => None,
        }
    }

    pub fn run(self) -> Result<()> {
        match self {
            Self::FinetuneClassifier(args) => finetune_classifier::run(args),
            Self::FinetuneSquad(args) => finetune_squad::run(args),
            Self::EvaluateSquad(args) => evaluate_squad::run(args),
            Self::Export(args) => export::run(args),
            Self::Convert(args) => convert::run(args),
            Self::Zoo(args) => zoo::run(args),
        }
    }
}
