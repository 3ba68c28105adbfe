//! `bert-train evaluate-squad DATA.json PREDICTIONS.json [--na-prob-file F]`: the official
//! SQuAD evaluation (see `tasks::squad_eval`), with the scripts' output.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::tasks::squad_eval::{
    Dataset, evaluate_v1, evaluate_v2, parse_ordered_probs, v2_one_line,
};
use bert_core::fsutil::write_atomic;

pub const AFTER_HELP: &str = "\
Example:
  bert-train evaluate-squad dev-v2.0.json predictions.json --na-prob-file null_odds.json

Which script is followed (--squad-version auto): evaluate-v2.0.py when the data set's version
is 2.x, any question has `is_impossible`, or --na-prob-file is given; evaluate-v1.1.py
otherwise. The JSON printed on stdout is byte for byte the script's (v1.1: one line; v2.0:
indented); --out-file writes it to a file instead, on one line as evaluate-v2.0.py does. The
scripts' warnings (unanswered questions, version mismatch) go to stderr.";

#[derive(Debug, clap::Args)]
pub struct EvaluateSquadArgs {
    /// The SQuAD data set (e.g. dev-v1.1.json, dev-v2.0.json).
    pub data_file: PathBuf,
    /// Predictions: a JSON object of question id -> answer text ("" = no answer).
    pub pred_file: PathBuf,
    /// SQuAD 2.0: question id -> probability that it has no answer (null_odds.json).
    #[arg(long, short = 'n')]
    pub na_prob_file: Option<PathBuf>,
    /// SQuAD 2.0: predict "no answer" above this no-answer probability.
    #[arg(long, short = 't', default_value_t = 1.0)]
    pub na_prob_thresh: f64,
    /// Write the result here instead of printing it.
    #[arg(long, short = 'o')]
    pub out_file: Option<PathBuf>,
    /// The official script to follow: 1.1, 2.0, or auto (see below).
    #[arg(long, default_value = "auto", value_parser = ["auto", "1.1", "2.0"])]
    pub squad_version: String,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the {what} {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a valid {what}", path.display()))
}

pub fn run(args: EvaluateSquadArgs) -> Result<()> {
    let dataset: Dataset = read_json(&args.data_file, "SQuAD data set")?;
    let preds: HashMap<String, String> = read_json(
        &args.pred_file,
        "predictions file (question id -> answer text)",
    )?;
    let na_probs = match &args.na_prob_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Some(parse_ordered_probs(&text).with_context(|| {
                format!(
                    "{} is not a JSON object of question id -> probability",
                    path.display()
                )
            })?)
        }
        None => None,
    };
    let v2 = match args.squad_version.as_str() {
        "1.1" => false,
        "2.0" => true,
        _ => dataset.is_v2() || na_probs.is_some(),
    };
    if !v2 && na_probs.is_some() {
        bail!("--na-prob-file is a SQuAD 2.0 option; drop it or use --squad-version 2.0");
    }
    let (printed, one_line, warnings) = if v2 {
        let (json, warnings) =
            evaluate_v2(&dataset, &preds, na_probs.as_deref(), args.na_prob_thresh)?;
        let one_line = v2_one_line(&json);
        (json, one_line, warnings)
    } else {
        let (json, warnings) = evaluate_v1(&dataset, &preds);
        (json.clone(), json, warnings)
    };
    for warning in &warnings {
        eprintln!("{warning}");
    }
    match &args.out_file {
        Some(path) => write_atomic(path, one_line.as_bytes())?,
        None => println!("{printed}"),
    }
    Ok(())
}
