//! Downloads into the cache: layout, reuse without the network, offline mode, resume after a
//! cut connection, bytes that fail their ETag, missing files, renamed repositories, tokens,
//! two downloaders at once.

use bert_hub::{RepoRef, sha256_hex};
use test_support::MINILM_COMMIT;
use test_support::hub_mock::{HubMock, MockRepo};

use crate::{MINILM, MODEL_FILES, hub, minilm, minilm_mock, tree};

#[test]
fn download_into_an_empty_cache_then_serve_from_it_with_the_hub_gone() {
    let mut mock = minilm_mock();
    let cache = tempfile::tempdir().unwrap();
    let model = test_support::minilm_dir();
    let client = hub(mock.url(), cache.path(), false);
    for file in MODEL_FILES {
        let path = client.file(&minilm("main"), file).unwrap().expect(file);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            std::fs::read(model.join(file)).unwrap(),
            "{file}"
        );
        let expected = format!(
            "models--sentence-transformers--all-MiniLM-L6-v2/snapshots/{MINILM_COMMIT}/{file}"
        );
        assert!(path.ends_with(&expected), "{}", path.display());
        assert!(path.is_symlink(), "snapshots hold symlinks into blobs/");
    }
    let repo_dir = cache
        .path()
        .join("models--sentence-transformers--all-MiniLM-L6-v2");
    assert_eq!(
        std::fs::read_to_string(repo_dir.join("refs/main")).unwrap(),
        MINILM_COMMIT
    );
    let weights_sha = sha256_hex(&std::fs::read(model.join("model.safetensors")).unwrap());
    assert!(
        repo_dir.join("blobs").join(&weights_sha).is_file(),
        "LFS blobs are named by sha256"
    );
    // The weights came from the storage origin after a redirect, and only once.
    let gets = mock
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /blobs/"))
        .count();
    assert_eq!(gets, 1);

    // The hub stopped: `main` and the commit both come from the cache.
    mock.stop();
    for revision in ["main", MINILM_COMMIT] {
        for file in MODEL_FILES {
            let path = client.file(&minilm(revision), file).unwrap().expect(file);
            assert_eq!(
                std::fs::read(&path).unwrap(),
                std::fs::read(model.join(file)).unwrap()
            );
        }
    }
    // A file never fetched is an error that says the hub is unreachable and the cache lacks it.
    let err = client.file(&minilm("main"), "vocab.txt").unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.contains("cannot reach") && err.contains("not in the hub cache"),
        "{err}"
    );
}

#[test]
fn a_commit_in_the_cache_needs_no_request() {
    let mock = minilm_mock();
    let cache = tempfile::tempdir().unwrap();
    let client = hub(mock.url(), cache.path(), false);
    client
        .file(&minilm(MINILM_COMMIT), "config.json")
        .unwrap()
        .unwrap();
    let before = mock.requests().len();
    client
        .file(&minilm(MINILM_COMMIT), "config.json")
        .unwrap()
        .unwrap();
    assert_eq!(
        mock.requests().len(),
        before,
        "a pinned commit is served from the cache"
    );
}

#[test]
fn offline_with_an_empty_cache_is_a_clear_error_and_writes_nothing() {
    let mock = minilm_mock();
    let cache = tempfile::tempdir().unwrap();
    let client = hub(mock.url(), cache.path(), true);
    let err = format!(
        "{:#}",
        client.file(&minilm("main"), "config.json").unwrap_err()
    );
    assert!(
        err.contains("HF_HUB_OFFLINE") && err.contains(MINILM) && err.contains("config.json"),
        "{err}"
    );
    assert!(mock.requests().is_empty(), "offline means no request");
    assert!(
        tree(cache.path()).is_empty(),
        "nothing written: {:?}",
        tree(cache.path())
    );
}

#[test]
fn a_cut_download_resumes_with_a_range_request() {
    let mock = minilm_mock();
    let cache = tempfile::tempdir().unwrap();
    let client = hub(mock.url(), cache.path(), false);
    let cut = 10 << 20;
    mock.cut_after("model.safetensors", cut);
    let err = format!(
        "{:#}",
        client
            .file(&minilm("main"), "model.safetensors")
            .unwrap_err()
    );
    assert!(err.contains("resumes"), "{err}");
    let repo_dir = cache
        .path()
        .join("models--sentence-transformers--all-MiniLM-L6-v2");
    let files = tree(&repo_dir);
    assert!(
        files.iter().all(|f| !f.starts_with("snapshots/")),
        "nothing usable yet: {files:?}"
    );
    let partial: Vec<_> = files
        .iter()
        .filter(|f| f.ends_with(".incomplete"))
        .collect();
    assert_eq!(partial.len(), 1, "{files:?}");
    assert_eq!(
        std::fs::metadata(repo_dir.join(partial[0])).unwrap().len(),
        cut as u64
    );

    let path = client
        .file(&minilm("main"), "model.safetensors")
        .unwrap()
        .unwrap();
    let want = std::fs::read(test_support::minilm_dir().join("model.safetensors")).unwrap();
    assert_eq!(sha256_hex(&std::fs::read(path).unwrap()), sha256_hex(&want));
    assert!(
        mock.requests()
            .iter()
            .filter(|r| r.starts_with("GET /blobs/"))
            .count()
            == 2,
        "{:?}",
        mock.requests()
    );
    assert!(tree(&repo_dir).iter().all(|f| !f.ends_with(".incomplete")));
}

#[test]
fn bytes_that_fail_the_etag_never_enter_the_cache() {
    let mock = minilm_mock();
    let cache = tempfile::tempdir().unwrap();
    let client = hub(mock.url(), cache.path(), false);
    for file in ["model.safetensors", "config.json"] {
        mock.corrupt(file);
        let err = format!("{:#}", client.file(&minilm("main"), file).unwrap_err());
        let digest = if file == "config.json" {
            "git blob sha1"
        } else {
            "sha256"
        };
        assert!(
            err.contains("do not match") && err.contains(digest),
            "{err}"
        );
        let files = tree(cache.path());
        assert!(
            !files.iter().any(|f| {
                f.contains(".incomplete") || (f.contains("/snapshots/") && f.ends_with(file))
            }),
            "{files:?}"
        );
        assert!(client.cached_file(&minilm("main"), file).is_none());
        mock.heal();
        client.file(&minilm("main"), file).unwrap().unwrap();
    }
}

#[test]
fn missing_files_renamed_repositories_and_unknown_names() {
    let mock = minilm_mock();
    let cache = tempfile::tempdir().unwrap();
    let client = hub(mock.url(), cache.path(), false);
    // A file the repository lacks: None, remembered under .no_exist/ for offline runs.
    assert_eq!(
        client.file(&minilm("main"), "pytorch_model.bin").unwrap(),
        None
    );
    let offline = hub(mock.url(), cache.path(), true);
    assert_eq!(
        offline.file(&minilm("main"), "pytorch_model.bin").unwrap(),
        None
    );

    // The old one-part id redirects to the repository's new name.
    let old = RepoRef::new("all-MiniLM-L6-v2", "main");
    let path = client.file(&old, "config.json").unwrap().unwrap();
    assert!(
        path.to_string_lossy().contains("models--all-MiniLM-L6-v2"),
        "{}",
        path.display()
    );

    let err = format!(
        "{:#}",
        client
            .file(&RepoRef::new("nobody/nothing", "main"), "config.json")
            .unwrap_err()
    );
    assert!(
        err.contains("no repository \"nobody/nothing\"") && err.contains("HF_TOKEN"),
        "{err}"
    );
    let err = format!(
        "{:#}",
        client.file(&minilm("v9"), "config.json").unwrap_err()
    );
    assert!(err.contains("no revision \"v9\""), "{err}");
    for bad in ["../secrets", "/etc/passwd"] {
        assert!(client.file(&minilm("main"), bad).is_err());
    }
}

#[test]
fn an_alias_cache_is_read_when_the_new_name_has_none() {
    // A cache written under the old id (as transformers did before the rename) serves the new
    // id, offline.
    let mock = minilm_mock();
    let cache = tempfile::tempdir().unwrap();
    let old = RepoRef::new("all-MiniLM-L6-v2", MINILM_COMMIT);
    hub(mock.url(), cache.path(), false)
        .file(&old, "config.json")
        .unwrap()
        .unwrap();
    let offline = hub(mock.url(), cache.path(), true);
    let new = RepoRef::new(MINILM, MINILM_COMMIT).with_aliases(&["all-MiniLM-L6-v2"]);
    let path = offline.file(&new, "config.json").unwrap().unwrap();
    assert!(path.to_string_lossy().contains("models--all-MiniLM-L6-v2/"));
}

#[test]
fn a_token_goes_to_the_hub_and_not_to_the_storage() {
    let mock = HubMock::start(vec![
        MockRepo::new("org/gated", MINILM_COMMIT)
            .file("config.json", b"{}".to_vec())
            .file("model.safetensors", vec![7u8; 1000]),
    ]);
    mock.gate("org/gated", "hf_secret");
    let cache = tempfile::tempdir().unwrap();
    let repo = RepoRef::new("org/gated", "main");
    let err = format!(
        "{:#}",
        hub(mock.url(), cache.path(), false)
            .file(&repo, "config.json")
            .unwrap_err()
    );
    assert!(err.contains("gated") || err.contains("token"), "{err}");
    let settings = bert_hub::HubSettings {
        endpoint: mock.url().into(),
        cache_dir: cache.path().to_path_buf(),
        token: Some("hf_secret".into()),
        offline: false,
        progress: false,
    };
    let client = bert_hub::Hub::new(settings);
    client.file(&repo, "config.json").unwrap().unwrap();
    client.file(&repo, "model.safetensors").unwrap().unwrap();
    let requests = mock.requests();
    let tokens = mock.tokens_seen();
    let storage_gets = requests
        .iter()
        .filter(|r| r.starts_with("GET /blobs/"))
        .count();
    assert_eq!(storage_gets, 1);
    // HEAD config, GET config, HEAD weights: three requests to the hub carry it; the storage
    // GET does not.
    assert_eq!(tokens.len(), 3, "{requests:?} {tokens:?}");
    assert!(tokens.iter().all(|t| t == "Bearer hf_secret"));
}

#[test]
fn two_downloaders_at_once_leave_one_good_copy() {
    let mock = minilm_mock();
    let cache = tempfile::tempdir().unwrap();
    let want =
        sha256_hex(&std::fs::read(test_support::minilm_dir().join("model.safetensors")).unwrap());
    let paths: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    hub(mock.url(), cache.path(), false).file(&minilm("main"), "model.safetensors")
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap().unwrap())
            .collect()
    });
    assert_eq!(paths[0], paths[1]);
    assert_eq!(sha256_hex(&std::fs::read(&paths[0]).unwrap()), want);
    let blobs = tree(
        &cache
            .path()
            .join("models--sentence-transformers--all-MiniLM-L6-v2/blobs"),
    );
    assert_eq!(blobs, vec![want], "one blob, no leftovers");
    let gets = mock
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /blobs/"))
        .count();
    assert_eq!(
        gets, 1,
        "the second waited on the lock and reused the first's blob"
    );
}
