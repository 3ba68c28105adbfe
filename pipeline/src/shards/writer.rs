//! Writing shards in two steps, so memory stays bounded and shards come out balanced:
//! instances are first spilled to one temp file per length bucket; once every bucket's
//! count is known, each spill is cut into equal shards (±1 instance) of Arrow IPC files.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use arrow::error::ArrowError;
use arrow::ipc::CompressionType;
use arrow::ipc::writer::{FileWriter, IpcWriteOptions};
use rayon::iter::{ParallelBridge, ParallelIterator};
use sha2::{Digest, Sha256};

use super::manifest::Shard;
use super::schema::{TokenIdType, shard_schema, to_record_batch};
use crate::shards::Instance;
use bert_core::fsutil;

/// Rows per Arrow record batch inside a shard.
const BATCH_ROWS: usize = 4096;
const ZSTD_LEVEL: i32 = 1;

/// Equal-width ranges of `valid_length`: a batch drawn from one bucket pads at most one
/// bucket width. Fixed by the flags alone, so workers and merges agree on them.
#[derive(Clone, Copy, Debug)]
pub struct BucketLayout {
    num_buckets: usize,
    width: usize,
}

impl BucketLayout {
    pub fn new(num_buckets: usize, max_seq_length: usize) -> Self {
        let num_buckets = num_buckets.clamp(1, max_seq_length);
        Self {
            num_buckets,
            width: max_seq_length.div_ceil(num_buckets),
        }
    }

    pub fn len(&self) -> usize {
        self.num_buckets
    }

    pub fn is_empty(&self) -> bool {
        self.num_buckets == 0
    }

    pub fn bucket_of(&self, valid_length: usize) -> usize {
        (valid_length.saturating_sub(1) / self.width).min(self.num_buckets - 1)
    }

    /// Inclusive length range of bucket `b`.
    pub fn range(&self, b: usize, max_seq_length: usize) -> (usize, usize) {
        let lo = b * self.width + 1;
        let hi = if b + 1 == self.num_buckets {
            max_seq_length
        } else {
            (b + 1) * self.width
        };
        (lo, hi)
    }
}

/// Instance counts of the shards a bucket of `count` instances is cut into: as many shards
/// as `shard_size` needs, sizes equal within one.
pub fn balanced_shard_sizes(count: u64, shard_size: u64) -> Vec<u64> {
    if count == 0 {
        return Vec::new();
    }
    let k = count.div_ceil(shard_size.max(1));
    (0..k)
        .map(|j| count / k + u64::from(j < count % k))
        .collect()
}

/// Spilled records are kept in memory up to this many bytes, then go to files: small
/// corpora never touch the disk, large ones stay within the memory bound.
const SPILL_MEMORY_BUDGET: usize = 32 << 20;

/// Per-bucket spills of encoded instances, in a simple little-endian record format.
pub struct Spill {
    dir: PathBuf,
    buffers: Vec<Vec<u8>>,
    files: Vec<Option<(PathBuf, BufWriter<File>)>>,
    counts: Vec<u64>,
    buffered: usize,
    budget: usize,
}

/// Where one bucket's spilled records ended up.
pub enum SpillData {
    Memory(Vec<u8>),
    File(PathBuf),
}

impl Spill {
    pub fn create(dir: &Path, buckets: usize) -> Self {
        Self::with_budget(dir, buckets, SPILL_MEMORY_BUDGET)
    }

    fn with_budget(dir: &Path, buckets: usize, budget: usize) -> Self {
        Self {
            budget,
            dir: dir.to_path_buf(),
            buffers: vec![Vec::new(); buckets],
            files: (0..buckets).map(|_| None).collect(),
            counts: vec![0; buckets],
            buffered: 0,
        }
    }

    pub fn push(&mut self, bucket: usize, inst: &Instance) -> Result<()> {
        let buffer = &mut self.buffers[bucket];
        let before = buffer.len();
        encode_spill_record(buffer, inst)?;
        self.buffered += buffer.len() - before;
        self.counts[bucket] += 1;
        if self.buffered > self.budget {
            self.flush_to_disk()?;
        }
        Ok(())
    }

    fn flush_to_disk(&mut self) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        for (b, buffer) in self.buffers.iter_mut().enumerate() {
            if buffer.is_empty() {
                continue;
            }
            if self.files[b].is_none() {
                let path = self.dir.join(format!("bucket{b:03}.spill"));
                let file = File::create(&path)
                    .with_context(|| format!("cannot create {}", path.display()))?;
                self.files[b] = Some((path, BufWriter::with_capacity(1 << 20, file)));
            }
            let (path, w) = self.files[b].as_mut().unwrap();
            w.write_all(buffer)
                .with_context(|| format!("cannot write {}", path.display()))?;
            buffer.clear();
        }
        self.buffered = 0;
        Ok(())
    }

    /// Each bucket's spilled records and instance count.
    pub fn finish(mut self) -> Result<Vec<(SpillData, u64)>> {
        if self.files.iter().any(Option::is_some) {
            self.flush_to_disk()?;
        }
        let mut out = Vec::new();
        for ((buffer, file), count) in self.buffers.into_iter().zip(self.files).zip(self.counts) {
            out.push(match file {
                None => (SpillData::Memory(buffer), count),
                Some((path, mut w)) => {
                    w.flush()
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    (SpillData::File(path), count)
                }
            });
        }
        Ok(out)
    }
}

fn encode_spill_record(w: &mut impl Write, inst: &Instance) -> std::io::Result<()> {
    w.write_all(&(inst.input_ids.len() as u16).to_le_bytes())?;
    w.write_all(&(inst.masked_lm_positions.len() as u16).to_le_bytes())?;
    w.write_all(&[inst.next_sentence_label])?;
    for id in &inst.input_ids {
        w.write_all(&id.to_le_bytes())?;
    }
    w.write_all(&inst.segment_ids)?;
    for p in &inst.masked_lm_positions {
        w.write_all(&p.to_le_bytes())?;
    }
    for id in &inst.masked_lm_ids {
        w.write_all(&id.to_le_bytes())?;
    }
    Ok(())
}

fn decode_spill_record(r: &mut impl Read) -> std::io::Result<Instance> {
    let mut head = [0u8; 5];
    r.read_exact(&mut head)?;
    let len = u16::from_le_bytes([head[0], head[1]]) as usize;
    let masked = u16::from_le_bytes([head[2], head[3]]) as usize;
    let mut body = vec![0u8; len * 5 + masked * 6];
    r.read_exact(&mut body)?;
    let (ids, rest) = body.split_at(len * 4);
    let (segments, rest) = rest.split_at(len);
    let (positions, labels) = rest.split_at(masked * 2);
    let u32s = |b: &[u8]| {
        b.chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    Ok(Instance {
        input_ids: u32s(ids),
        segment_ids: segments.to_vec(),
        masked_lm_positions: positions
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect(),
        masked_lm_ids: u32s(labels),
        next_sentence_label: head[4],
    })
}

/// Where and how shards of one bucket are written.
pub struct ShardTarget<'a> {
    pub dir: &'a Path,
    /// File name prefix: empty, or `w003-of-008-` for one of several workers.
    pub prefix: &'a str,
    pub worker: usize,
    pub bucket: usize,
    pub length_range: (usize, usize),
    pub id_type: TokenIdType,
    /// Stops the writing between shards when set (the build was interrupted).
    pub cancel: Option<&'a AtomicBool>,
}

/// The error of a build stopped by its cancel flag.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

/// Cuts one bucket's spill into balanced shards, encoding them in parallel.
pub fn write_bucket_shards(
    spill: SpillData,
    count: u64,
    shard_size: u64,
    target: &ShardTarget,
) -> Result<Vec<Shard>> {
    let sizes = balanced_shard_sizes(count, shard_size);
    let mut reader: Box<dyn Read + Send> = match &spill {
        SpillData::Memory(bytes) => Box::new(&bytes[..]),
        SpillData::File(path) => Box::new(BufReader::with_capacity(
            1 << 20,
            File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        )),
    };
    // Shards are read one after another and encoded in parallel; `par_bridge` pulls lazily,
    // so only about one shard per thread is in memory.
    let chunks = sizes.iter().enumerate().map(|(j, &n)| {
        let rows = (0..n)
            .map(|_| decode_spill_record(&mut reader))
            .collect::<std::io::Result<Vec<_>>>()
            .context("a spill file is damaged");
        (j, rows)
    });
    let mut shards = chunks
        .par_bridge()
        .map(|(j, rows)| write_shard(&rows?, j, target))
        .collect::<Result<Vec<_>>>()?;
    shards.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(shards)
}

fn write_shard(rows: &[Instance], index: usize, target: &ShardTarget) -> Result<Shard> {
    if target.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
        return Err(Interrupted.into());
    }
    let name = format!("{}b{:02}-{:05}.arrow", target.prefix, target.bucket, index);
    let path = target.dir.join(&name);
    let tmp = fsutil::temp_path(&path);
    let (bytes, sha256) = match write_ipc(rows, target.id_type, &tmp) {
        Ok(written) => written,
        Err(e) => {
            // Disk full, say: nothing half-written stays behind.
            let _ = std::fs::remove_file(&tmp);
            return Err(e.context(format!("cannot write shard {}", path.display())));
        }
    };
    fsutil::rename(&tmp, &path)?;
    if rows.iter().any(|r| {
        let n = r.valid_length();
        n < target.length_range.0 || n > target.length_range.1
    }) {
        bail!(
            "internal error: an instance outside bucket {}'s length range",
            target.bucket
        );
    }
    Ok(Shard {
        file: name,
        bucket: target.bucket,
        worker: target.worker,
        min_length: target.length_range.0,
        max_length: target.length_range.1,
        instances: rows.len() as u64,
        bytes,
        sha256,
    })
}

/// Writes `rows` as an Arrow IPC file at `path`, synced; returns its size and sha256.
fn write_ipc(rows: &[Instance], id_type: TokenIdType, path: &Path) -> Result<(u64, String)> {
    let file = File::create(path)?;
    let hashing = HashingWriter::new(BufWriter::with_capacity(1 << 20, file));
    let options = IpcWriteOptions::default()
        .try_with_compression(Some(CompressionType::ZSTD))?
        .try_with_compression_level(Some(ZSTD_LEVEL))?;
    let mut writer =
        FileWriter::try_new_with_options(hashing, &shard_schema(id_type), options).map_err(io)?;
    for batch in rows.chunks(BATCH_ROWS) {
        writer
            .write(&to_record_batch(batch, id_type)?)
            .map_err(io)?;
    }
    writer.finish().map_err(io)?;
    let hashing = writer.into_inner().map_err(io)?;
    let (bytes, sha256) = (hashing.bytes, hashing.hex_digest());
    let file = hashing.inner.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok((bytes, sha256))
}

/// Arrow's I/O errors carry the `io::Error` in their message and again as their source,
/// which prints it twice: keep the `io::Error` alone.
fn io(e: ArrowError) -> anyhow::Error {
    match e {
        ArrowError::IoError(_, e) => e.into(),
        other => other.into(),
    }
}

/// Counts and hashes bytes on their way to the file, so the manifest can pin each shard.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W> HashingWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    fn hex_digest(&self) -> String {
        self.hasher
            .clone()
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_length_once() {
        let layout = BucketLayout::new(4, 128);
        assert_eq!(layout.range(0, 128), (1, 32));
        assert_eq!(layout.range(3, 128), (97, 128));
        for len in 1..=128 {
            let b = layout.bucket_of(len);
            let (lo, hi) = layout.range(b, 128);
            assert!(lo <= len && len <= hi, "{len} in bucket {b} {lo}..={hi}");
        }
        let odd = BucketLayout::new(3, 100);
        assert_eq!(odd.range(2, 100), (69, 100));
        assert_eq!(odd.bucket_of(100), 2);
        assert_eq!(BucketLayout::new(1000, 16).len(), 16);
    }

    #[test]
    fn shard_sizes_are_balanced_within_one() {
        assert_eq!(balanced_shard_sizes(10, 4), [4, 3, 3]);
        assert_eq!(balanced_shard_sizes(8, 4), [4, 4]);
        assert_eq!(balanced_shard_sizes(3, 100), [3]);
        assert!(balanced_shard_sizes(0, 5).is_empty());
        let sizes = balanced_shard_sizes(100_003, 8192);
        assert_eq!(sizes.iter().sum::<u64>(), 100_003);
        assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
        assert!(*sizes.iter().max().unwrap() <= 8192);
    }

    #[test]
    fn spills_past_the_memory_budget_go_to_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let inst = |i: u32| Instance {
            input_ids: vec![101, i, 102, i + 1, 102],
            segment_ids: vec![0, 0, 0, 1, 1],
            masked_lm_positions: vec![1],
            masked_lm_ids: vec![i],
            next_sentence_label: (i % 2) as u8,
        };
        for budget in [usize::MAX, 1000] {
            let mut spill = Spill::with_budget(dir.path(), 2, budget);
            for i in 0..100 {
                spill.push((i % 2) as usize, &inst(i)).unwrap();
            }
            for (b, (data, count)) in spill.finish().unwrap().into_iter().enumerate() {
                assert_eq!(count, 50);
                let bytes = match data {
                    SpillData::Memory(bytes) => {
                        assert_eq!(budget, usize::MAX);
                        bytes
                    }
                    SpillData::File(path) => {
                        assert_eq!(budget, 1000);
                        std::fs::read(path).unwrap()
                    }
                };
                let mut r = &bytes[..];
                for i in (b as u32..100).step_by(2) {
                    assert_eq!(decode_spill_record(&mut r).unwrap(), inst(i));
                }
                assert!(r.is_empty());
            }
        }
    }

    #[test]
    fn spill_records_round_trip() {
        let inst = Instance {
            input_ids: vec![101, 70000, 102, 5, 102],
            segment_ids: vec![0, 0, 0, 1, 1],
            masked_lm_positions: vec![1, 3],
            masked_lm_ids: vec![8, 9],
            next_sentence_label: 1,
        };
        let mut buf = Vec::new();
        encode_spill_record(&mut buf, &inst).unwrap();
        encode_spill_record(&mut buf, &inst).unwrap();
        let mut r = &buf[..];
        assert_eq!(decode_spill_record(&mut r).unwrap(), inst);
        assert_eq!(decode_spill_record(&mut r).unwrap(), inst);
        assert!(decode_spill_record(&mut r).is_err());
    }
}
