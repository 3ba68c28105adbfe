//! End-to-end tests of the `bert-pipeline` binary on the shipped sample corpus. Shards are
//! checked with pyarrow and HuggingFace's Python tokenizer (tests/python/check_shards.py),
//! readers that share no code with ours.

use std::path::Path;
use std::process::{Command, Output};

use bert_pipeline::ShardSet;
use test_support::{reference_python, repo_root as repo};

mod integrity;

fn sample() -> String {
    repo()
        .join("pipeline/sample-corpus/persuasion.txt")
        .display()
        .to_string()
}

fn pipeline(args: &[&str]) -> Output {
    test_support::run_bin(env!("CARGO_BIN_EXE_bert-pipeline"), args)
}

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "bert-pipeline failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn build(dir: &Path, extra: &[&str]) -> Output {
    let out = dir.display().to_string();
    let sample = sample();
    let mut args = vec![
        "build",
        "--quiet",
        "--output",
        &out,
        "--dupe-factor",
        "2",
        "--shard-size",
        "700",
    ];
    args.extend_from_slice(extra);
    args.push(&sample);
    pipeline(&args)
}

#[test]
fn sample_corpus_shards_pass_independent_pyarrow_checks() {
    let dir = tempfile::tempdir().unwrap();
    ok(build(dir.path(), &[]));
    let vocab = repo().join("core/vocab/en_uncased.vocab.txt");
    let out = Command::new(reference_python())
        .arg(repo().join("tests/python/check_shards.py"))
        .arg(dir.path())
        .arg(&vocab)
        .arg(sample())
        .arg("--lowercase")
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pyarrow checks failed (needs pyarrow + tokenizers: run tests/python/setup_venv.sh and set BERT_PYTHON):\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
}

#[test]
fn output_is_byte_identical_whatever_the_thread_count() {
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    ok(build(one.path(), &["--threads", "1"]));
    ok(build(two.path(), &["--threads", "2"]));
    let files = |d: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    assert_eq!(files(one.path()), files(two.path()));
    assert!(files(one.path()).len() > 2, "several shards and a manifest");
    for name in files(one.path()) {
        let a = std::fs::read(one.path().join(&name)).unwrap();
        let b = std::fs::read(two.path().join(&name)).unwrap();
        assert!(a == b, "{name} differs between --threads 1 and 2");
    }
    // Another seed gives other data.
    let other = tempfile::tempdir().unwrap();
    ok(build(other.path(), &["--random-seed", "7"]));
    let a = std::fs::read(one.path().join("b03-00000.arrow")).unwrap();
    let b = std::fs::read(other.path().join("b03-00000.arrow")).unwrap();
    assert_ne!(a, b);
}

#[test]
fn manifest_records_flags_buckets_and_balanced_shards() {
    let dir = tempfile::tempdir().unwrap();
    ok(build(
        dir.path(),
        &["--num-buckets", "4", "--whole-word-mask"],
    ));
    let set = ShardSet::open(dir.path()).unwrap();
    let m = set.manifest();
    assert_eq!(m.config.dupe_factor, 2);
    assert!(m.config.whole_word_mask);
    assert_eq!(m.vocab.name, "book_corpus_wiki_en_uncased");
    assert_eq!(m.vocab.sha256.len(), 64);
    assert_eq!(m.buckets.len(), 4);
    let ranges: Vec<(usize, usize)> = m
        .buckets
        .iter()
        .map(|b| (b.min_length, b.max_length))
        .collect();
    assert_eq!(ranges, [(1, 32), (33, 64), (65, 96), (97, 128)]);
    let mut total = 0;
    for shard in set.shards() {
        let rows = set.read_shard(shard).unwrap();
        assert_eq!(rows.len() as u64, shard.instances);
        assert!(
            rows.iter()
                .all(|r| (shard.min_length..=shard.max_length).contains(&r.valid_length()))
        );
        total += rows.len() as u64;
    }
    assert_eq!(total, m.totals.instances);
    // Rank splits cover every shard exactly once.
    let mut seen: Vec<&str> = (0..3)
        .flat_map(|r| set.shards_for_rank(r, 3))
        .map(|s| s.file.as_str())
        .collect();
    seen.sort();
    let mut all: Vec<&str> = set.shards().iter().map(|s| s.file.as_str()).collect();
    all.sort();
    assert_eq!(seen, all);
}

#[test]
fn inspect_shows_totals_histograms_and_decoded_instances() {
    let dir = tempfile::tempdir().unwrap();
    ok(build(dir.path(), &[]));
    let out = ok(pipeline(&[
        "inspect",
        &dir.path().display().to_string(),
        "--show",
        "2",
    ]));
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "instances in",
        "bucket 3 (length 97..=128)",
        "masked:",
        "random",
        "*** instance 1 ***",
        "tokens: [CLS]",
        "masked_lm_labels:",
    ] {
        assert!(
            text.contains(needle),
            "inspect output lacks {needle:?}:\n{text}"
        );
    }
}

#[test]
fn workers_build_disjoint_parts_that_merge_into_the_single_run() {
    let (_input, glob) = three_samples();
    let run = |out: &Path, extra: &[&str]| {
        let out = out.display().to_string();
        let mut args = vec![
            "build",
            "-q",
            "--dupe-factor",
            "1",
            "--pool-size",
            "1",
            "--output",
            &out,
        ];
        args.extend_from_slice(extra);
        args.push(&glob);
        ok(pipeline(&args));
    };
    let single = tempfile::tempdir().unwrap();
    run(single.path(), &[]);
    let shared = tempfile::tempdir().unwrap();
    run(shared.path(), &["--worker", "0/2"]);
    run(shared.path(), &["--worker", "1/2"]);
    assert!(
        ShardSet::open(shared.path()).is_err(),
        "no manifest.json before merge"
    );
    ok(pipeline(&["merge", &shared.path().display().to_string()]));

    let (a, b) = (
        sorted_instances(single.path()),
        sorted_instances(shared.path()),
    );
    let parts: Vec<u64> = (0..2)
        .map(|w| {
            ShardSet::open(&shared.path().join(format!("manifest-w{w:03}-of-002.json")))
                .unwrap()
                .manifest()
                .totals
                .instances
        })
        .collect();
    assert!(
        parts.iter().all(|&n| n > 0),
        "both workers got work: {parts:?}"
    );
    assert_eq!(a.len(), b.len());
    assert!(
        a == b,
        "merged workers hold exactly the single run's instances"
    );
}

/// Three copies of the sample in a temporary directory, and the glob naming them: with 1 MiB
/// pools that is two blocks, so two workers both get work.
fn three_samples() -> (tempfile::TempDir, String) {
    sample_copies(3)
}

/// `n` copies of the sample (`part0.txt`, ...) in a temporary directory, and their glob.
fn sample_copies(n: usize) -> (tempfile::TempDir, String) {
    let input = tempfile::tempdir().unwrap();
    for i in 0..n {
        std::fs::copy(sample(), input.path().join(format!("part{i}.txt"))).unwrap();
    }
    let glob = format!("{}/*.txt", input.path().display());
    (input, glob)
}

/// Every instance of a shard set (ids and masked positions), sorted: the set as a multiset.
fn sorted_instances(dir: &Path) -> Vec<(Vec<u32>, Vec<u16>)> {
    let set = ShardSet::open(dir).unwrap();
    let mut all: Vec<_> = set
        .iter_instances()
        .map(Result::unwrap)
        .map(|i| (i.input_ids, i.masked_lm_positions))
        .collect();
    all.sort();
    all
}

#[test]
fn worker_auto_under_mpirun_takes_its_part_from_the_launcher() {
    let (_input, glob) = three_samples();
    let flags = ["build", "-q", "--dupe-factor", "1", "--pool-size", "1"];
    let single = tempfile::tempdir().unwrap();
    let out = single.path().display().to_string();
    ok(pipeline(&[&flags[..], &["--output", &out, &glob]].concat()));

    let shared = tempfile::tempdir().unwrap();
    let out = shared.path().display().to_string();
    let launched = test_support::mpirun(2)
        .arg(env!("CARGO_BIN_EXE_bert-pipeline"))
        .args(flags)
        .args(["--worker", "auto", "--output", &out, &glob])
        .output()
        .unwrap();
    let log = ok(launched);
    let log = String::from_utf8_lossy(&log.stderr);
    for w in ["worker 0/2 from Open MPI", "worker 1/2 from Open MPI"] {
        assert!(log.contains(w), "{w:?} not said:\n{log}");
    }
    ok(pipeline(&["merge", &out]));
    assert!(
        sorted_instances(shared.path()) == sorted_instances(single.path()),
        "the launched workers hold exactly the single run's instances"
    );

    // Without a launcher, auto is an error that names the variables it looks for.
    let plain = tempfile::tempdir().unwrap();
    let out = plain.path().display().to_string();
    let refused = Command::new(env!("CARGO_BIN_EXE_bert-pipeline"))
        .args(flags)
        .args(["--worker", "auto", "--output", &out, &glob])
        .env_remove("OMPI_COMM_WORLD_RANK")
        .env_remove("PMI_RANK")
        .env_remove("SLURM_PROCID")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("OMPI_COMM_WORLD_RANK"));
}

#[test]
fn raw_prose_and_compressed_input() {
    let dir = tempfile::tempdir().unwrap();
    let raw = repo().join("pipeline/sample-corpus/raw/northangerabbey-opening.txt");
    let gz = dir.path().join("opening.txt.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    std::io::copy(&mut std::fs::File::open(&raw).unwrap(), &mut enc).unwrap();
    enc.finish().unwrap();
    let out = dir.path().join("shards");
    ok(pipeline(&[
        "build",
        "-q",
        "--input-format",
        "raw",
        "--dupe-factor",
        "1",
        "--output",
        &out.display().to_string(),
        &gz.display().to_string(),
    ]));
    let m = ShardSet::open(&out).unwrap().manifest().clone();
    assert_eq!(m.totals.documents, 1, "one document per raw file");
    assert!(
        m.totals.sentences > 100,
        "prose split into sentences: {}",
        m.totals.sentences
    );
    assert!(m.totals.instances > 20);
}

#[test]
fn bad_input_is_a_clear_error_and_leaves_no_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let out_s = out.display().to_string();
    let bad_utf8 = dir.path().join("bad.txt");
    std::fs::write(&bad_utf8, b"fine line\n\xc3\x28 broken\n").unwrap();
    let bad_utf8 = bad_utf8.display().to_string();
    let missing = dir.path().join("missing.txt").display().to_string();
    let empty_glob = format!("{}/*.nothing", dir.path().display());
    let blank = dir.path().join("blank.txt");
    std::fs::write(&blank, "\n\n  \n").unwrap();
    let blank = blank.display().to_string();
    let sample = sample();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec![&missing], "not found"),
        (vec![&empty_glob], "no files match"),
        (vec!["--masked-lm-prob", "1.5", &sample], "--masked-lm-prob"),
        (vec!["--max-seq-length", "7", &sample], "--max-seq-length"),
        (
            vec!["--vocab", "klingon_cased", &sample],
            "unknown vocabulary",
        ),
        (
            vec!["--vocab", "wiki_multilingual_cased", &sample],
            "not bundled",
        ),
        (vec![&bad_utf8], "bad.txt:2: invalid UTF-8"),
        (vec![&blank], "no text"),
        (
            vec!["--threads", "100000", &sample],
            "--threads must be between 1 and 1024",
        ),
        (
            vec!["--dupe-factor", "4294967295", &sample],
            "--dupe-factor must be between 1 and 1000",
        ),
        (vec!["--num-buckets", "100", &sample], "use at most 64"),
    ];
    for (extra, message) in cases {
        let mut args = vec!["build", "-q", "--output", &out_s];
        args.extend(extra);
        let res = pipeline(&args);
        let stderr = String::from_utf8_lossy(&res.stderr);
        assert!(!res.status.success(), "{args:?} should fail");
        assert!(
            stderr.contains(message),
            "{args:?}: expected {message:?} in:\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(
            !out.join("manifest.json").exists(),
            "{args:?} left a manifest"
        );
    }
    // Skipping invalid lines works and is counted.
    ok(pipeline(&[
        "build",
        "-q",
        "--on-invalid-utf8",
        "skip",
        "--dupe-factor",
        "1",
        "--output",
        &out_s,
        &bad_utf8,
        &sample,
    ]));
    let m = ShardSet::open(&out).unwrap().manifest().clone();
    assert_eq!(m.totals.read.invalid_utf8_lines_skipped, 1);
    // An earlier output is not overwritten by accident.
    let res = pipeline(&["build", "-q", "--output", &out_s, &sample]);
    assert!(!res.status.success());
    assert!(String::from_utf8_lossy(&res.stderr).contains("--overwrite"));
    ok(pipeline(&[
        "build",
        "-q",
        "--overwrite",
        "--dupe-factor",
        "1",
        "--output",
        &out_s,
        &sample,
    ]));
}

#[test]
fn help_lists_the_reference_flags() {
    let out = ok(pipeline(&["build", "--help"]));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--dupe-factor",
        "--max-seq-length",
        "--max-predictions-per-seq",
        "--masked-lm-prob",
        "--short-seq-prob",
        "--random-seed",
        "--whole-word-mask",
        "--num-buckets",
        "--worker",
        "Examples:",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    // The seed's underscore spellings are accepted too.
    let dir = tempfile::tempdir().unwrap();
    ok(pipeline(&[
        "build",
        "-q",
        "--dupe_factor",
        "1",
        "--output",
        &dir.path().display().to_string(),
        &sample(),
    ]));
}
