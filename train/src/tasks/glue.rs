//! GLUE and XNLI in the standard `glue_data/<TASK>/{train,dev,test}.tsv` layout: which
//! columns hold the texts and the label, the label set, and a strict reader that names the
//! file and line of anything malformed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result, bail, ensure};

/// Which split of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Dev,
    Test,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    Mrpc,
    Rte,
    Sst,
    Mnli,
    Qqp,
    Qnli,
    Cola,
    Stsb,
    Wnli,
    Xnli,
}

pub const TASK_NAMES: &[&str] = &[
    "MRPC", "RTE", "SST", "MNLI", "QQP", "QNLI", "CoLA", "STS-B", "WNLI", "XNLI",
];

impl FromStr for Task {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "MRPC" => Self::Mrpc,
            "RTE" => Self::Rte,
            "SST" | "SST-2" | "SST2" => Self::Sst,
            "MNLI" => Self::Mnli,
            "QQP" => Self::Qqp,
            "QNLI" => Self::Qnli,
            "COLA" => Self::Cola,
            "STS-B" | "STSB" => Self::Stsb,
            "WNLI" => Self::Wnli,
            "XNLI" => Self::Xnli,
            _ => bail!("unknown task `{s}`; known tasks: {}", TASK_NAMES.join(", ")),
        })
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.dir_name())
    }
}

/// Where a field lives: a header name, or a fixed column in a header-less file.
#[derive(Clone, Copy, Debug)]
enum Column {
    Named(&'static str),
    At(usize),
}

impl Task {
    /// The directory name in glue_data.
    pub fn dir_name(self) -> &'static str {
        match self {
            Self::Mrpc => "MRPC",
            Self::Rte => "RTE",
            Self::Sst => "SST-2",
            Self::Mnli => "MNLI",
            Self::Qqp => "QQP",
            Self::Qnli => "QNLI",
            Self::Cola => "CoLA",
            Self::Stsb => "STS-B",
            Self::Wnli => "WNLI",
            Self::Xnli => "XNLI",
        }
    }

    /// Class names in label-id order; empty for the regression task STS-B.
    pub fn labels(self) -> &'static [&'static str] {
        match self {
            Self::Mrpc | Self::Sst | Self::Qqp | Self::Cola | Self::Wnli => &["0", "1"],
            Self::Rte | Self::Qnli => &["entailment", "not_entailment"],
            Self::Mnli | Self::Xnli => &["contradiction", "entailment", "neutral"],
            Self::Stsb => &[],
        }
    }

    pub fn is_regression(self) -> bool {
        self.labels().is_empty()
    }

    /// The files of a split (MNLI's dev and test come matched and mismatched).
    pub fn files(self, data_dir: &Path, split: Split) -> Vec<PathBuf> {
        let name = |n: &str| data_dir.join(format!("{n}.tsv"));
        match (self, split) {
            (_, Split::Train) => vec![name("train")],
            (Self::Mnli, Split::Dev) => vec![name("dev_matched"), name("dev_mismatched")],
            (Self::Mnli, Split::Test) => vec![name("test_matched"), name("test_mismatched")],
            (_, Split::Dev) => vec![name("dev")],
            (_, Split::Test) => vec![name("test")],
        }
    }

    /// (text_a, text_b, label) columns of labelled files, and whether they have a header.
    fn labelled_columns(self) -> (Column, Option<Column>, Column, bool) {
        use Column::{At, Named};
        match self {
            // CoLA's train/dev files have no header: source, label, original label, sentence.
            Self::Cola => (At(3), None, At(1), false),
            Self::Sst => (Named("sentence"), None, Named("label"), true),
            Self::Mrpc => (
                Named("#1 String"),
                Some(Named("#2 String")),
                Named("Quality"),
                true,
            ),
            Self::Qqp => (
                Named("question1"),
                Some(Named("question2")),
                Named("is_duplicate"),
                true,
            ),
            Self::Stsb => (
                Named("sentence1"),
                Some(Named("sentence2")),
                Named("score"),
                true,
            ),
            Self::Mnli => (
                Named("sentence1"),
                Some(Named("sentence2")),
                Named("gold_label"),
                true,
            ),
            Self::Qnli => (
                Named("question"),
                Some(Named("sentence")),
                Named("label"),
                true,
            ),
            Self::Rte | Self::Wnli => (
                Named("sentence1"),
                Some(Named("sentence2")),
                Named("label"),
                true,
            ),
            Self::Xnli => (Named("text_a"), Some(Named("text_b")), Named("label"), true),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Label {
    Class(usize),
    Score(f32),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    /// The test files' `index` column (GLUE submissions are keyed by it), else the row number.
    pub id: String,
    pub text_a: String,
    pub text_b: Option<String>,
    /// `None` in test files.
    pub label: Option<Label>,
}

/// Reads one TSV file of `task`. Test files (no label column) are read by header names.
pub fn read_examples(task: Task, path: &Path, split: Split) -> Result<Vec<Example>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (a, b, label, has_header) = task.labelled_columns();
    let has_header = has_header || split == Split::Test;
    let mut lines = text.lines().enumerate();
    let header: Vec<String> = if has_header {
        let (_, line) = lines
            .next()
            .with_context(|| format!("{} is empty", path.display()))?;
        // MRPC's header starts with a byte-order mark.
        line.trim_start_matches('\u{feff}')
            .split('\t')
            .map(str::to_string)
            .collect()
    } else {
        Vec::new()
    };
    let find = |c: Column| -> Result<usize> {
        match c {
            Column::At(i) => Ok(i),
            Column::Named(name) => header.iter().position(|h| h == name).with_context(|| {
                format!(
                    "{}: no `{name}` column in the header {header:?}",
                    path.display()
                )
            }),
        }
    };
    let (ia, ib) = match (split, task) {
        // CoLA's test file is `index sentence`.
        (Split::Test, Task::Cola) => (find(Column::Named("sentence"))?, None),
        _ => (find(a)?, b.map(find).transpose()?),
    };
    let il = if split == Split::Test {
        None
    } else {
        Some(find(label)?)
    };
    let iid = header
        .iter()
        .position(|h| h == "index" || h == "id" || h == "pairID");
    let needed = [Some(ia), ib, il].into_iter().flatten().max().unwrap_or(0) + 1;

    let mut out = Vec::new();
    for (n, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() < needed {
            bail!(
                "{}:{}: expected at least {needed} tab-separated columns, found {}",
                path.display(),
                n + 1,
                fields.len()
            );
        }
        let label = match il {
            None => None,
            Some(i) => Some(
                parse_label(task, fields[i])
                    .with_context(|| format!("{}:{}", path.display(), n + 1))?,
            ),
        };
        out.push(Example {
            id: iid.map_or_else(
                || out.len().to_string(),
                |i| fields.get(i).copied().unwrap_or_default().to_string(),
            ),
            text_a: fields[ia].to_string(),
            text_b: ib.map(|i| fields[i].to_string()),
            label,
        });
    }
    Ok(out)
}

fn parse_label(task: Task, field: &str) -> Result<Label> {
    let field = field.trim();
    if task.is_regression() {
        let score: f32 = field
            .parse()
            .with_context(|| format!("score `{field}` is not a number"))?;
        // Rust parses "NaN" and "inf": a loss would turn non-finite, blamed on the lr.
        ensure!(
            score.is_finite(),
            "score `{field}` is not a finite number (NaN or infinite)"
        );
        return Ok(Label::Score(score));
    }
    task.labels()
        .iter()
        .position(|l| *l == field)
        .map(Label::Class)
        .with_context(|| {
            format!(
                "label `{field}` is not one of {:?} for {task}",
                task.labels()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shared data sets beside the repository (`../shared/data`).
    fn data() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data")
    }

    fn dir(task: Task) -> PathBuf {
        data().join("glue").join(task.dir_name())
    }

    #[test]
    fn reads_every_shared_glue_file_with_the_published_row_counts() {
        // Row counts from ../shared/data/README.md.
        let cases = [
            (Task::Cola, Split::Train, 8551),
            (Task::Cola, Split::Dev, 1043),
            (Task::Cola, Split::Test, 1063),
            (Task::Sst, Split::Train, 67349),
            (Task::Sst, Split::Dev, 872),
            (Task::Mrpc, Split::Train, 3668),
            (Task::Mrpc, Split::Dev, 408),
            (Task::Mrpc, Split::Test, 1725),
            (Task::Qnli, Split::Dev, 5463),
            (Task::Rte, Split::Train, 2490),
            (Task::Rte, Split::Dev, 277),
            (Task::Rte, Split::Test, 3000),
            (Task::Stsb, Split::Dev, 1500),
            (Task::Stsb, Split::Test, 1379),
            (Task::Wnli, Split::Dev, 71),
        ];
        for (task, split, rows) in cases {
            let file = &task.files(&dir(task), split)[0];
            let examples = read_examples(task, file, split).unwrap();
            assert_eq!(examples.len(), rows, "{task} {split:?}");
            assert_eq!(examples[0].label.is_none(), split == Split::Test);
        }
        let sst = read_examples(Task::Sst, &dir(Task::Sst).join("dev.tsv"), Split::Dev).unwrap();
        let positive = sst
            .iter()
            .filter(|e| e.label == Some(Label::Class(1)))
            .count();
        assert_eq!(positive, 444);
        let mrpc = read_examples(Task::Mrpc, &dir(Task::Mrpc).join("dev.tsv"), Split::Dev).unwrap();
        assert!(mrpc[0].text_b.is_some());
        let sts = read_examples(Task::Stsb, &dir(Task::Stsb).join("dev.tsv"), Split::Dev).unwrap();
        assert_eq!(sts[0].label, Some(Label::Score(5.0)));
        let xnli = read_examples(Task::Xnli, &data().join("xnli/dev.tsv"), Split::Dev).unwrap();
        assert_eq!(xnli.len(), 2490);
    }

    #[test]
    fn reads_the_mnli_and_qqp_layouts() {
        // Hand-made files in GLUE's layout (tests/fixtures/glue/README.md).
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/glue");
        let mnli = fixtures.join("MNLI");
        let dev = Task::Mnli.files(&mnli, Split::Dev);
        let matched = read_examples(Task::Mnli, &dev[0], Split::Dev).unwrap();
        assert_eq!(matched.len(), 3);
        assert_eq!(
            matched[1].label,
            Some(Label::Class(0)),
            "contradiction is class 0"
        );
        assert_eq!(matched[1].text_b.as_deref(), Some("The child is swimming."));
        let train = read_examples(Task::Mnli, &mnli.join("train.tsv"), Split::Train).unwrap();
        assert_eq!(train.len(), 12);
        let test = Task::Mnli.files(&mnli, Split::Test);
        let mismatched = read_examples(Task::Mnli, &test[1], Split::Test).unwrap();
        assert_eq!((mismatched.len(), mismatched[1].id.as_str()), (2, "1"));
        assert!(mismatched[0].label.is_none());
        let qqp = fixtures.join("QQP");
        let dev = read_examples(Task::Qqp, &qqp.join("dev.tsv"), Split::Dev).unwrap();
        assert_eq!(dev[0].id, "2000");
        assert_eq!(dev[0].label, Some(Label::Class(1)));
        let test = read_examples(Task::Qqp, &qqp.join("test.tsv"), Split::Test).unwrap();
        assert_eq!(test.len(), 4);
        assert_eq!(test[3].text_a, "The train was late because of the storm?");
    }

    #[test]
    fn malformed_rows_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("glue-bad-test.tsv");
        std::fs::write(
            &tmp,
            "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\tonly one\n",
        )
        .unwrap();
        let err = format!(
            "{:#}",
            read_examples(Task::Rte, &tmp, Split::Dev).unwrap_err()
        );
        assert!(
            err.contains("glue-bad-test.tsv:3") && err.contains("columns"),
            "{err}"
        );
        std::fs::write(&tmp, "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n").unwrap();
        let err = format!(
            "{:#}",
            read_examples(Task::Rte, &tmp, Split::Dev).unwrap_err()
        );
        assert!(
            err.contains(":2") && err.contains("maybe") && err.contains("not_entailment"),
            "{err}"
        );
        // A NaN score (Rust's float parser accepts "NaN"): named with file and line.
        let sts = std::fs::read_to_string(self::dir(Task::Stsb).join("dev.tsv")).unwrap();
        let mut lines = sts.lines();
        let header = lines.next().unwrap();
        let row = lines.next().unwrap();
        let row = format!("{}\tNaN", row.rsplit_once('\t').unwrap().0);
        std::fs::write(&tmp, format!("{header}\n{row}\n")).unwrap();
        let err = format!(
            "{:#}",
            read_examples(Task::Stsb, &tmp, Split::Dev).unwrap_err()
        );
        assert!(
            err.contains(":2") && err.contains("not a finite number"),
            "{err}"
        );
        let err = "GLUE-X".parse::<Task>().unwrap_err().to_string();
        assert!(err.contains("MRPC") && err.contains("XNLI"));
    }
}
