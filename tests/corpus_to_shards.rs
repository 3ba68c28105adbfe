//! Corpus -> shards -> the reader `bert-train` uses: every instance read back through
//! `ShardSet` is real corpus text once its masks are undone.

use std::path::Path;

use bert_core::vocab::Vocab;
use bert_pipeline::ShardSet;
use bert_pipeline::build::{BuildOptions, build};
use bert_pipeline::config::BuildConfig;

#[test]
fn sample_corpus_round_trips_through_the_shard_reader() {
    let corpus =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipeline/sample-corpus/persuasion.txt");
    let out = tempfile::tempdir().unwrap();
    let config = BuildConfig {
        dupe_factor: 1,
        max_seq_length: 64,
        num_buckets: 2,
        shard_size: 500,
        ..BuildConfig::default()
    };
    let options = BuildOptions {
        output: out.path().to_path_buf(),
        overwrite: false,
        threads: Some(2),
        progress: false,
        cancel: None,
    };
    let manifest = build(&config, &[corpus.display().to_string()], &options).unwrap();

    let vocab = Vocab::load(&config.vocab, None).unwrap();
    let text = std::fs::read_to_string(&corpus).unwrap();
    let corpus_ids: Vec<u32> = text
        .lines()
        .flat_map(|line| vocab.encode(line).unwrap())
        .collect();
    let contains = |needle: &[u32]| corpus_ids.windows(needle.len()).any(|w| w == needle);

    let set = ShardSet::open(out.path()).unwrap();
    assert_eq!(set.manifest(), &manifest);
    let mut rows = 0;
    for (i, inst) in set.iter_instances().enumerate() {
        let inst = inst.unwrap();
        rows += 1;
        assert!(inst.valid_length() <= 64);
        if i % 25 != 0 {
            continue; // A sample is enough for the slow containment check.
        }
        let mut ids = inst.input_ids.clone();
        for (&p, &id) in inst.masked_lm_positions.iter().zip(&inst.masked_lm_ids) {
            ids[p as usize] = id;
        }
        let sep = ids.iter().position(|&t| t == vocab.sep_id).unwrap();
        assert!(
            contains(&ids[1..sep]),
            "segment A of instance {i} is not corpus text"
        );
        assert!(
            contains(&ids[sep + 1..ids.len() - 1]),
            "segment B of instance {i} is not corpus text"
        );
    }
    assert_eq!(rows, manifest.totals.instances);
    assert!(rows > 1000);
}
