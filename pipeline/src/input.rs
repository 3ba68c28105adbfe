//! Reading corpora: glob expansion, transparent `.gz` / `.zst` decompression, and a
//! streaming reader that yields one document at a time.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, bail};

use crate::config::{InputFormat, OnInvalidUtf8, ReadStats};
use crate::splitter::split_sentences;

/// A document longer than this is cut at a sentence (or paragraph) boundary, so one huge
/// document without blank lines cannot blow the memory bound.
pub const MAX_DOCUMENT_BYTES: usize = 4 << 20;

/// Expands files and quoted glob patterns, in the order given (each glob sorted).
pub fn expand_inputs(patterns: &[String]) -> Result<Vec<PathBuf>> {
    if patterns.is_empty() {
        bail!("no input files given");
    }
    let mut files = Vec::new();
    for pattern in patterns {
        let path = Path::new(pattern);
        if path.is_file() {
            files.push(path.to_path_buf());
            continue;
        }
        if path.is_dir() {
            bail!("{pattern} is a directory; pass files or a glob such as '{pattern}/*.txt'");
        }
        if pattern == "-" {
            bail!(
                "reading standard input (`-`) is not supported: the manifest records each \
                 input file and its size; write the text to a file first"
            );
        }
        if let Ok(meta) = std::fs::metadata(path) {
            use std::os::unix::fs::FileTypeExt;
            let t = meta.file_type();
            let kind = if t.is_fifo() {
                "a named pipe"
            } else if t.is_char_device() || t.is_block_device() {
                "a device"
            } else {
                "a socket or other special file"
            };
            bail!("{pattern} is {kind}, not a regular file: give text files (.txt, .gz, .zst)");
        }
        let matches: Vec<PathBuf> = glob::glob(pattern)
            .with_context(|| format!("bad glob pattern {pattern}"))?
            .filter_map(|entry| entry.ok())
            .filter(|p| p.is_file())
            .collect();
        if matches.is_empty() {
            if glob::Pattern::escape(pattern) == *pattern {
                bail!("input file not found: {pattern}");
            }
            bail!("no files match {pattern}");
        }
        files.extend(matches);
    }
    let mut seen = std::collections::HashSet::new();
    files.retain(|f| seen.insert(f.clone()));
    Ok(files)
}

/// Opens a file, decompressing `.gz` and `.zst` by extension. Compressed bytes read are added
/// to `progress`, so a progress bar can show input bytes against the files' sizes.
pub fn open_input(path: &Path, progress: Arc<AtomicU64>) -> Result<Box<dyn BufRead + Send>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let counted = CountingReader {
        inner: file,
        progress,
    };
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    Ok(match ext {
        "gz" => Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(counted))),
        "zst" => Box::new(BufReader::new(
            zstd::Decoder::new(counted)
                .with_context(|| format!("{}: not a zstd file", path.display()))?,
        )),
        _ => Box::new(BufReader::with_capacity(1 << 16, counted)),
    })
}

struct CountingReader<R> {
    inner: R,
    progress: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// One document's sentences, as text.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TextDocument {
    pub sentences: Vec<String>,
    pub bytes: usize,
}

impl TextDocument {
    fn push(&mut self, sentence: String) {
        self.bytes += sentence.len();
        self.sentences.push(sentence);
    }
}

/// Streams documents from a list of files, one file after another. A file always ends a
/// document (the reference lets a document run on into the next file).
pub struct DocumentReader {
    files: std::vec::IntoIter<PathBuf>,
    format: InputFormat,
    on_invalid: OnInvalidUtf8,
    progress: Arc<AtomicU64>,
    current: Option<(PathBuf, Box<dyn BufRead + Send>, u64)>,
    pending: TextDocument,
    paragraph: String,
    pub stats: ReadStats,
}

impl DocumentReader {
    pub fn new(
        files: Vec<PathBuf>,
        format: InputFormat,
        on_invalid: OnInvalidUtf8,
        progress: Arc<AtomicU64>,
    ) -> Self {
        Self {
            files: files.into_iter(),
            format,
            on_invalid,
            progress,
            current: None,
            pending: TextDocument::default(),
            paragraph: String::new(),
            stats: ReadStats::default(),
        }
    }

    /// The next non-empty document, or `None` at the end of the input.
    pub fn next_document(&mut self) -> Result<Option<TextDocument>> {
        let mut buf = Vec::new();
        loop {
            if self.current.is_none() {
                let Some(path) = self.files.next() else {
                    return Ok(None);
                };
                let reader = open_input(&path, self.progress.clone())?;
                self.stats.files += 1;
                self.current = Some((path, reader, 0));
            }
            let (path, reader, line_no) = self.current.as_mut().unwrap();
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .with_context(|| format!("{}: read error after line {line_no}", path.display()))?;
            if n == 0 {
                // End of file: whatever is pending is a whole document.
                self.current = None;
                self.end_paragraph();
                if let Some(doc) = self.take_pending() {
                    return Ok(Some(doc));
                }
                continue;
            }
            *line_no += 1;
            self.stats.lines += 1;
            let line = match std::str::from_utf8(&buf) {
                Ok(line) => line.trim(),
                Err(e) => match self.on_invalid {
                    OnInvalidUtf8::Fail => bail!(
                        "{}:{line_no}: invalid UTF-8 ({e}); pass --on-invalid-utf8 skip to skip such lines",
                        path.display()
                    ),
                    OnInvalidUtf8::Skip => {
                        self.stats.invalid_utf8_lines_skipped += 1;
                        continue;
                    }
                },
            };
            let done = match self.format {
                InputFormat::Sentences if line.is_empty() => self.take_pending(),
                InputFormat::Sentences => {
                    self.pending.push(line.to_string());
                    self.take_if_too_big()
                }
                InputFormat::Raw if line.is_empty() => {
                    self.end_paragraph();
                    self.take_if_too_big()
                }
                InputFormat::Raw => {
                    self.paragraph.push_str(line);
                    self.paragraph.push('\n');
                    None
                }
            };
            if let Some(doc) = done {
                return Ok(Some(doc));
            }
        }
    }

    fn end_paragraph(&mut self) {
        if !self.paragraph.is_empty() {
            for sentence in split_sentences(&self.paragraph) {
                self.pending.push(sentence);
            }
            self.paragraph.clear();
        }
    }

    fn take_if_too_big(&mut self) -> Option<TextDocument> {
        if self.pending.bytes < MAX_DOCUMENT_BYTES {
            return None;
        }
        self.stats.documents_split_for_size += 1;
        self.take_pending()
    }

    fn take_pending(&mut self) -> Option<TextDocument> {
        (!self.pending.sentences.is_empty()).then(|| std::mem::take(&mut self.pending))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_all(
        files: Vec<PathBuf>,
        format: InputFormat,
        on_invalid: OnInvalidUtf8,
    ) -> Result<(Vec<TextDocument>, ReadStats)> {
        let mut reader = DocumentReader::new(files, format, on_invalid, Arc::default());
        let mut docs = Vec::new();
        while let Some(doc) = reader.next_document()? {
            docs.push(doc);
        }
        Ok((docs, reader.stats))
    }

    #[test]
    fn blank_lines_separate_documents_and_files_end_them() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.txt");
        std::fs::write(&a, "s1\n s2 \n\n\n\ns3\r\n").unwrap();
        let b = dir.path().join("b.txt");
        std::fs::write(&b, "s4\n").unwrap();
        let (docs, stats) =
            read_all(vec![a, b], InputFormat::Sentences, OnInvalidUtf8::Fail).unwrap();
        let sentences: Vec<Vec<String>> = docs.into_iter().map(|d| d.sentences).collect();
        assert_eq!(sentences, [vec!["s1", "s2"], vec!["s3"], vec!["s4"]]);
        assert_eq!(stats.files, 2);
    }

    #[test]
    fn gzip_and_zstd_inputs_read_like_plain_text() {
        let dir = tempfile::tempdir().unwrap();
        let text = "one.\ntwo.\n\nthree.\n";
        let gz = dir.path().join("c.txt.gz");
        let mut enc = flate2::write::GzEncoder::new(
            File::create(&gz).unwrap(),
            flate2::Compression::default(),
        );
        enc.write_all(text.as_bytes()).unwrap();
        enc.finish().unwrap();
        let zst = dir.path().join("c.txt.zst");
        std::fs::write(&zst, zstd::encode_all(text.as_bytes(), 3).unwrap()).unwrap();
        for f in [gz, zst] {
            let (docs, _) = read_all(vec![f], InputFormat::Sentences, OnInvalidUtf8::Fail).unwrap();
            assert_eq!(docs.len(), 2);
            assert_eq!(docs[0].sentences, ["one.", "two."]);
        }
    }

    #[test]
    fn invalid_utf8_names_file_and_line_or_is_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bad.txt");
        std::fs::write(&f, b"good\n\xff\xfe bad\nalso good\n").unwrap();
        let err = read_all(vec![f.clone()], InputFormat::Sentences, OnInvalidUtf8::Fail)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bad.txt:2") && err.contains("invalid UTF-8"),
            "{err}"
        );
        let (docs, stats) = read_all(vec![f], InputFormat::Sentences, OnInvalidUtf8::Skip).unwrap();
        assert_eq!(docs[0].sentences, ["good", "also good"]);
        assert_eq!(stats.invalid_utf8_lines_skipped, 1);
    }

    #[test]
    fn raw_prose_is_split_into_sentences_one_document_per_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("raw.txt");
        std::fs::write(
            &f,
            "It was a dark\nnight. Mr. Smith slept.\n\nThen morning came!\n",
        )
        .unwrap();
        let (docs, _) = read_all(vec![f], InputFormat::Raw, OnInvalidUtf8::Fail).unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(
            docs[0].sentences,
            [
                "It was a dark night.",
                "Mr. Smith slept.",
                "Then morning came!"
            ]
        );
    }

    #[test]
    fn missing_files_and_empty_globs_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.txt").display().to_string();
        assert!(
            expand_inputs(&[missing])
                .unwrap_err()
                .to_string()
                .contains("not found")
        );
        let glob = format!("{}/*.txt", dir.path().display());
        assert!(
            expand_inputs(&[glob])
                .unwrap_err()
                .to_string()
                .contains("no files match")
        );
        assert!(expand_inputs(&[]).is_err());
        let d = dir.path().display().to_string();
        assert!(
            expand_inputs(&[d])
                .unwrap_err()
                .to_string()
                .contains("directory")
        );
        let fifo = dir.path().join("pipe");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        for (input, message) in [
            ("-".to_string(), "standard input (`-`) is not supported"),
            (
                "/dev/null".into(),
                "/dev/null is a device, not a regular file",
            ),
            (
                fifo.display().to_string(),
                "is a named pipe, not a regular file",
            ),
        ] {
            let err = expand_inputs(&[input]).unwrap_err().to_string();
            assert!(err.contains(message), "{err}");
        }
    }

    #[test]
    fn globs_expand_sorted_without_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["b.txt", "a.txt", "c.md"] {
            std::fs::write(dir.path().join(n), "x\n").unwrap();
        }
        let glob = format!("{}/*.txt", dir.path().display());
        let a = dir.path().join("a.txt").display().to_string();
        let files = expand_inputs(&[glob, a]).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, ["a.txt", "b.txt"]);
    }
}
