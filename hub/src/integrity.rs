//! What the hub's ETag promises about a file's bytes. Files stored with git LFS (weights) have
//! their sha256 as ETag; small files stored in git itself have their git blob id (the sha1 of
//! `blob {len}\0` and the contents). Either is checked before a download enters the cache.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// How an ETag can be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtagKind {
    Sha256,
    GitBlobSha1,
    /// Any other form (some mirrors): only the size is checked.
    Opaque,
}

pub fn etag_kind(etag: &str) -> EtagKind {
    let hex = etag.bytes().all(|b| b.is_ascii_hexdigit());
    match etag.len() {
        64 if hex => EtagKind::Sha256,
        40 if hex => EtagKind::GitBlobSha1,
        _ => EtagKind::Opaque,
    }
}

/// `ETag` or `X-Linked-Etag` without quotes or the weak marker `W/`.
pub fn normalize_etag(raw: &str) -> String {
    raw.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_ascii_lowercase()
}

/// Check the file at `path` against `etag`; the error names both digests.
pub fn verify_file(path: &Path, etag: &str) -> Result<()> {
    let kind = etag_kind(etag);
    if kind == EtagKind::Opaque {
        return Ok(());
    }
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let actual = match kind {
        EtagKind::Sha256 => hash_reader(Sha256::new(), &mut file)?,
        EtagKind::GitBlobSha1 => {
            let mut hasher = Sha1::new();
            hasher.update(format!("blob {len}\0").as_bytes());
            hash_reader(hasher, &mut file)?
        }
        EtagKind::Opaque => unreachable!(),
    };
    if actual != etag {
        let what = match kind {
            EtagKind::Sha256 => "sha256",
            _ => "git blob sha1",
        };
        bail!("the downloaded bytes do not match the hub's ETag: {what} {actual}, expected {etag}");
    }
    Ok(())
}

fn hash_reader<D: Digest>(mut hasher: D, reader: &mut impl Read) -> Result<String> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The ETag the hub gives `bytes` stored in git (small files): their git blob id.
pub fn git_blob_sha1(bytes: &[u8]) -> String {
    let mut hasher = Sha1::new();
    hasher.update(format!("blob {}\0", bytes.len()).as_bytes());
    hasher.update(bytes);
    hex(&hasher.finalize())
}

/// The ETag the hub gives `bytes` stored with git LFS: their sha256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_blob_ids_are_gits() {
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            git_blob_sha1(b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
        assert_eq!(normalize_etag("W/\"ABC\""), "abc");
        assert_eq!(etag_kind(&sha256_hex(b"x")), EtagKind::Sha256);
        assert_eq!(etag_kind(&git_blob_sha1(b"x")), EtagKind::GitBlobSha1);
        assert_eq!(etag_kind("abc-123"), EtagKind::Opaque);
    }

    #[test]
    fn verify_checks_either_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"hello\n").unwrap();
        verify_file(&path, &git_blob_sha1(b"hello\n")).unwrap();
        verify_file(&path, &sha256_hex(b"hello\n")).unwrap();
        let err = verify_file(&path, &sha256_hex(b"other"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sha256") && err.contains(&sha256_hex(b"other")),
            "{err}"
        );
    }
}
