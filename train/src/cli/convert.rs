//! `bert-train convert`: a copy of a HuggingFace model directory with its weights stored in
//! another precision (float16 halves what a browser downloads).

use std::path::Path;

use anyhow::{Context, Result, bail};

use bert_core::fsutil::write_atomic;
use bert_model::checkpoint::ModelSource;
use bert_model::checkpoint::convert::{StorageDtype, convert_safetensors};

use super::model_args::WeightsArgs;

pub const AFTER_HELP: &str = "\
Example:
  bert-train convert --model models/all-MiniLM-L6-v2 --dtype float16 \\
      --output-dir models/all-MiniLM-L6-v2-f16

Every floating-point tensor of model.safetensors is rounded to --dtype (to nearest even, as
PyTorch's .half() and .bfloat16() do); integer tensors and the directory's other files
(config.json, the tokenizer, sentence-transformers' modules) are copied unchanged. bert-train,
bert-embed and the browser package load the result and compute in float32; transformers loads
it too. What the rounding costs all-MiniLM-L6-v2 is measured in BENCHMARKS.md.";

#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// A model directory holding model.safetensors, a HuggingFace Hub id, or a model-zoo name
    /// (its checkpoint pretrained on --bert-dataset), downloaded into the hub cache.
    #[arg(long)]
    pub model: String,
    /// The zoo checkpoint's pretraining dataset, when --model is a zoo name.
    #[arg(
        long,
        alias = "bert_dataset",
        default_value = "book_corpus_wiki_en_uncased"
    )]
    pub bert_dataset: String,
    /// Hub revision (branch, tag or commit) of --model.
    #[arg(long)]
    pub revision: Option<String>,
    /// Precision of the written weights.
    #[arg(long, value_enum)]
    pub dtype: StorageDtype,
    /// Where the converted directory is written (not --model itself).
    #[arg(long, alias = "output_dir")]
    pub output_dir: std::path::PathBuf,
}

/// Weight files of other formats, which a converted directory must not carry along.
const WEIGHT_SUFFIXES: [&str; 7] = [
    ".safetensors",
    ".bin",
    ".onnx",
    ".h5",
    ".msgpack",
    ".ot",
    ".pt",
];

pub fn run(args: ConvertArgs) -> Result<()> {
    let weights_args = WeightsArgs {
        revision: args.revision.clone(),
        from_scratch: false,
    };
    let ModelSource::Dir(model) = weights_args.resolve(&args.model, &args.bert_dataset)? else {
        bail!("convert needs a model with weights, not a random one");
    };
    let weights = model.join("model.safetensors");
    if !weights.is_file() {
        bail!(
            "{} has no model.safetensors (convert reads safetensors weights only)",
            model.display()
        );
    }
    let (from, to) = (
        std::path::absolute(&model)?,
        std::path::absolute(&args.output_dir)?,
    );
    if to.starts_with(&from) {
        bail!("--output-dir is inside --model; write the converted copy somewhere else");
    }
    let bytes =
        std::fs::read(&weights).with_context(|| format!("cannot read {}", weights.display()))?;
    let (converted, report) = convert_safetensors(&bytes, args.dtype)
        .with_context(|| format!("cannot convert {}", weights.display()))?;
    copy_except_weights(&model, &args.output_dir)?;
    write_atomic(&args.output_dir.join("model.safetensors"), &converted)?;
    let mib = |n: usize| n as f64 / (1024.0 * 1024.0);
    eprintln!(
        "{}: {} tensors re-encoded as {}, {} copied as they were; model.safetensors {:.1} MiB -> {:.1} MiB",
        args.output_dir.display(),
        report.converted,
        args.dtype.name(),
        report.kept,
        mib(bytes.len()),
        mib(converted.len())
    );
    Ok(())
}

/// Copy `from`'s files (sub-directories too, such as sentence-transformers' 1_Pooling/) to
/// `to`, leaving out weight files and hidden files.
fn copy_except_weights(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    let entries =
        std::fs::read_dir(from).with_context(|| format!("cannot list {}", from.display()))?;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let path = entry.path();
        if name.starts_with('.') || WEIGHT_SUFFIXES.iter().any(|s| name.ends_with(s)) {
            continue;
        }
        if path.is_dir() {
            copy_except_weights(&path, &to.join(&*name))?;
        } else {
            let bytes =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            write_atomic(&to.join(&*name), &bytes)?;
        }
    }
    Ok(())
}
