//! The kernel cache (feature `kernel-cache`, part of `vulkan` and `cuda`): a second process finds
//! the first one's autotune results on disk, tunes nothing again and computes the same vectors;
//! with `BERT_KERNEL_CACHE=off` it tunes again. In a `vulkan` build it also loads the SPIR-V it
//! compiled. cubecl's own log (`CUBECL_DEBUG_LOG`) says what each run tuned and compiled.

use std::path::Path;
use std::process::Output;

use crate::common::*;

const SENTENCES: [&str; 3] = [
    "The kernels of this run are tuned once.",
    "A second run reads them back.",
    "Short.",
];

/// bert-embed on the GPU backend, its kernel cache at `cache`, cubecl's log written to `log`
/// (its success is checked where its vectors are read).
fn embed(cache: &str, log: &Path) -> Output {
    let model = minilm_dir().display().to_string();
    let backend = GPU.to_string();
    let mut args = vec![
        "--model",
        &model,
        "--backend",
        &backend,
        "--no-token-embeddings",
        "--sentences",
    ];
    args.extend(SENTENCES);
    std::process::Command::new(env!("CARGO_BIN_EXE_bert-embed"))
        .args(&args)
        .env("BERT_KERNEL_CACHE", cache)
        .env("CUBECL_DEBUG_LOG", log)
        .output()
        .unwrap()
}

/// The sentence vectors of a successful run, end to end.
fn vectors(out: &Output) -> Vec<f32> {
    json_rows(out)
        .iter()
        .flat_map(|row| floats(&row["sentence_embedding"]))
        .collect()
}

/// How many times `needle` is in cubecl's log.
fn count(log: &Path, needle: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches(needle)
        .count()
}

/// Autotune decisions cubecl logged: one "Fastest result" line per tuned key.
fn tuned(log: &Path) -> usize {
    count(log, "Fastest result")
}

/// Kernels cubecl compiled (rather than loaded from the cache).
fn compiled(log: &Path) -> usize {
    count(log, "[START_KERNEL_COMPILATION]")
}

#[test]
fn a_second_run_reads_the_first_runs_tuning_and_off_tunes_again() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("kernels");
    let cache_arg = cache.display().to_string();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();

    let first = embed(&cache_arg, &logs.join("first.log"));
    assert!(
        stderr(&first).contains(&format!("kernel cache: {cache_arg}")),
        "{}",
        stderr(&first)
    );
    let databases: Vec<_> = std::fs::read_dir(&cache)
        .unwrap_or_else(|e| panic!("{}: {e}", cache.display()))
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".db"))
        .collect();
    assert!(!databases.is_empty(), "no database in {}", cache.display());
    let tuned_first = tuned(&logs.join("first.log"));
    assert!(tuned_first > 0, "the first run tuned nothing");

    let second = embed(&cache_arg, &logs.join("second.log"));
    let tuned_second = tuned(&logs.join("second.log"));
    let off = embed("off", &logs.join("off.log"));
    let tuned_off = tuned(&logs.join("off.log"));
    let compiled: Vec<usize> = ["first", "second", "off"]
        .iter()
        .map(|run| compiled(&logs.join(format!("{run}.log"))))
        .collect();
    eprintln!(
        "keys tuned: first run {tuned_first}, second {tuned_second}, cache off {tuned_off}; \
         kernels compiled (first, second, off): {compiled:?}"
    );
    assert_eq!(tuned_second, 0, "the second run tuned again");
    if cfg!(feature = "vulkan") {
        // SPIR-V is cached too (WGSL is not: the driver compiles it on every run).
        assert!(compiled[0] > 0 && compiled[2] > 0, "{compiled:?}");
        assert_eq!(compiled[1], 0, "SPIR-V was compiled again: {compiled:?}");
    }
    assert!(tuned_off > 0, "without the cache nothing was tuned");
    assert!(!stderr(&off).contains("kernel cache:"), "{}", stderr(&off));

    // Kernels differ in their order of summation, not in what they compute (a run still tuning
    // a key computes with another candidate meanwhile).
    for (name, other) in [("second", &second), ("off", &off)] {
        let err = max_abs_diff(&vectors(&first), &vectors(other));
        assert!(err < 1e-5, "{name}: {err}");
    }
}
