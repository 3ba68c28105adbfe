//! A loopback HuggingFace Hub that answers as the real one does, for testing the real clients
//! (ours, Python's `huggingface_hub`, the browser's `fetch`) without the internet.
//!
//! - `GET`/`HEAD /{repo}/resolve/{revision}/{path}` (the path may hold `/`; the revision a
//!   branch, the commit, or `%2F`-encoded): small files answer 200 with `ETag` = their git
//!   blob id, `X-Repo-Commit`, `Content-Length`, `Accept-Ranges`; large files (git LFS) answer
//!   302 to a second origin (the storage) carrying `X-Linked-Etag` (their sha256),
//!   `X-Linked-Size` and `X-Repo-Commit`.
//! - `Range: bytes=N-` → 206 with `Content-Range`; both origins.
//! - a missing file → 404 `X-Error-Code: EntryNotFound`; an unknown revision → 404
//!   `RevisionNotFound`; an unknown repository → 401 `RepoNotFound` (as the hub answers an
//!   anonymous caller); a renamed repository (an alias) → 307 to its new name.
//! - CORS on every answer (and `OPTIONS` preflights), with the hub's headers exposed.
//!
//! Faults for tests: [`HubMock::cut_after`] ends the next download of a file after some bytes,
//! [`HubMock::corrupt`] serves other bytes under the right ETag, [`HubMock::stop`] closes
//! both ports (connections are refused from then on). `POST /__mock/stop` stops it too, for a
//! browser test driven from another process.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Files at least this large are stored with git LFS (the hub's threshold is 10 MB; any
/// `.safetensors` or `.bin` is LFS too).
const LFS_MIN_BYTES: usize = 10 << 20;

/// One repository the mock serves, at one commit.
#[derive(Debug, Clone)]
pub struct MockRepo {
    pub id: String,
    pub commit: String,
    /// Former ids that redirect here (`bert-base-uncased` → `google-bert/bert-base-uncased`).
    pub aliases: Vec<String>,
    pub files: Vec<(String, Vec<u8>)>,
}

impl MockRepo {
    pub fn new(id: &str, commit: &str) -> Self {
        Self {
            id: id.into(),
            commit: commit.into(),
            aliases: Vec::new(),
            files: Vec::new(),
        }
    }

    pub fn file(mut self, path: &str, bytes: impl Into<Vec<u8>>) -> Self {
        self.files.push((path.into(), bytes.into()));
        self
    }

    pub fn alias(mut self, id: &str) -> Self {
        self.aliases.push(id.into());
        self
    }

    /// Every file under `dir` (recursively), named by its path relative to `dir`.
    pub fn from_dir(id: &str, commit: &str, dir: &Path) -> Self {
        let mut repo = Self::new(id, commit);
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let rel = path
                        .strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/");
                    repo.files.push((rel, std::fs::read(&path).unwrap()));
                }
            }
        }
        repo.files.sort();
        repo
    }
}

/// The sha256 of `bytes`, hex: the ETag of an LFS file.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The git blob id of `bytes`: the ETag of a file stored in git itself.
pub fn git_blob_sha1(bytes: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(format!("blob {}\0", bytes.len()).as_bytes());
    h.update(bytes);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn is_lfs(path: &str, bytes: &[u8]) -> bool {
    bytes.len() >= LFS_MIN_BYTES || path.ends_with(".safetensors") || path.ends_with(".bin")
}

#[derive(Default)]
struct Faults {
    /// path → bytes after which the next GET of it is cut.
    cut_after: HashMap<String, usize>,
    /// paths served with a byte flipped (ETag unchanged).
    corrupt: Vec<String>,
}

struct State {
    repos: Vec<MockRepo>,
    /// sha256 → bytes, what the storage origin serves.
    blobs: HashMap<String, Vec<u8>>,
    faults: Mutex<Faults>,
    /// "METHOD /path" of every request, in order.
    log: Mutex<Vec<String>>,
    /// `Authorization` values seen.
    tokens: Mutex<Vec<String>>,
    stopped: AtomicBool,
    hub_url: Mutex<String>,
    storage_url: Mutex<String>,
    /// Repositories that refuse anonymous callers (401 `GatedRepo` without the token).
    gated: Mutex<HashMap<String, String>>,
}

pub struct HubMock {
    state: Arc<State>,
    hub_url: String,
    threads: Vec<JoinHandle<()>>,
}

impl HubMock {
    /// Serve `repos` on two loopback ports: the hub and its file storage.
    pub fn start(repos: Vec<MockRepo>) -> Self {
        let mut blobs = HashMap::new();
        for repo in &repos {
            for (path, bytes) in &repo.files {
                if is_lfs(path, bytes) {
                    blobs.insert(sha256_hex(bytes), bytes.clone());
                }
            }
        }
        let state = Arc::new(State {
            repos,
            blobs,
            faults: Mutex::default(),
            log: Mutex::default(),
            tokens: Mutex::default(),
            stopped: AtomicBool::new(false),
            hub_url: Mutex::default(),
            storage_url: Mutex::default(),
            gated: Mutex::default(),
        });
        let hub = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let storage = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let hub_url = format!("http://{}", hub.local_addr().unwrap());
        *state.hub_url.lock().unwrap() = hub_url.clone();
        *state.storage_url.lock().unwrap() = format!("http://{}", storage.local_addr().unwrap());
        let threads = [(hub, Origin::Hub), (storage, Origin::Storage)]
            .into_iter()
            .map(|(listener, origin)| {
                let state = state.clone();
                std::thread::spawn(move || accept_loop(listener, origin, state))
            })
            .collect();
        Self {
            state,
            hub_url,
            threads,
        }
    }

    /// The endpoint (`HF_ENDPOINT`).
    pub fn url(&self) -> &str {
        &self.hub_url
    }

    /// Cut the next download (`GET`) of `path` after `bytes` bytes of its body.
    pub fn cut_after(&self, path: &str, bytes: usize) {
        self.state
            .faults
            .lock()
            .unwrap()
            .cut_after
            .insert(path.into(), bytes);
    }

    /// Serve `path` with its middle byte flipped, under its true ETag and size.
    pub fn corrupt(&self, path: &str) {
        self.state.faults.lock().unwrap().corrupt.push(path.into());
    }

    /// Stop corrupting and cutting.
    pub fn heal(&self) {
        *self.state.faults.lock().unwrap() = Faults::default();
    }

    /// Require `Authorization: Bearer {token}` for `repo` (a gated repository).
    pub fn gate(&self, repo: &str, token: &str) {
        self.state
            .gated
            .lock()
            .unwrap()
            .insert(repo.into(), token.into());
    }

    /// "METHOD /path" of every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.state.log.lock().unwrap().clone()
    }

    /// `Authorization` header values received.
    pub fn tokens_seen(&self) -> Vec<String> {
        self.state.tokens.lock().unwrap().clone()
    }

    /// Close both ports: connections are refused from now on.
    pub fn stop(&mut self) {
        stop(&self.state);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for HubMock {
    fn drop(&mut self) {
        self.stop();
    }
}

fn stop(state: &State) {
    if state.stopped.swap(true, Ordering::SeqCst) {
        return;
    }
    // Wake both accept loops so that they see the flag and drop their listeners.
    for url in [&state.hub_url, &state.storage_url] {
        let addr = url
            .lock()
            .unwrap()
            .trim_start_matches("http://")
            .to_string();
        let _ = TcpStream::connect(addr);
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Origin {
    Hub,
    Storage,
}

fn accept_loop(listener: TcpListener, origin: Origin, state: Arc<State>) {
    for stream in listener.incoming() {
        if state.stopped.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let state = state.clone();
        std::thread::spawn(move || {
            let _ = serve(stream, origin, &state);
        });
    }
}

struct Request {
    method: String,
    path: String,
    headers: HashMap<String, String>,
}

fn read_request(stream: &TcpStream) -> std::io::Result<Option<Request>> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let body_len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; body_len];
    reader.read_exact(&mut body)?;
    Ok(Some(Request {
        method,
        path,
        headers,
    }))
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// End the connection after this many body bytes (a cut download).
    cut_at: Option<usize>,
}

impl Response {
    fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            cut_at: None,
        }
    }

    fn header(mut self, k: &str, v: impl Into<String>) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }

    fn error(status: u16, code: &str, message: &str) -> Self {
        Self::new(status)
            .header("X-Error-Code", code)
            .header("X-Error-Message", message)
            .header("Content-Type", "application/json")
            .body(format!("{{\"error\":{message:?}}}").into_bytes())
    }

    fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        302 => "Found",
        307 => "Temporary Redirect",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        _ => "Status",
    }
}

fn serve(mut stream: TcpStream, origin: Origin, state: &State) -> std::io::Result<()> {
    let Some(request) = read_request(&stream)? else {
        return Ok(());
    };
    state
        .log
        .lock()
        .unwrap()
        .push(format!("{} {}", request.method, request.path));
    if let Some(auth) = request.headers.get("authorization") {
        state.tokens.lock().unwrap().push(auth.clone());
    }
    let head = request.method == "HEAD";
    let response = if request.method == "OPTIONS" {
        Response::new(204)
            .header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
            .header(
                "Access-Control-Allow-Headers",
                "Authorization, Range, Content-Type",
            )
            .header("Access-Control-Max-Age", "86400")
    } else if request.method == "POST" && request.path == "/__mock/stop" {
        stop(state);
        Response::new(204)
    } else if request.method != "GET" && !head {
        Response::error(405, "MethodNotAllowed", "only GET and HEAD")
    } else {
        match origin {
            Origin::Hub => resolve(state, &request),
            Origin::Storage => storage(state, &request),
        }
    };
    write_response(&mut stream, response, head)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `/{repo}/resolve/{revision}/{path}` on the hub origin.
fn resolve(state: &State, request: &Request) -> Response {
    let raw = request.path.split('?').next().unwrap_or_default();
    let Some((repo_id, rest)) = raw.trim_start_matches('/').split_once("/resolve/") else {
        return Response::error(404, "NotFound", "not a resolve URL");
    };
    let Some((revision, path)) = rest.split_once('/') else {
        return Response::error(404, "NotFound", "no file path");
    };
    let (revision, path) = (percent_decode(revision), percent_decode(path));
    if let Some(repo) = state
        .repos
        .iter()
        .find(|r| r.aliases.iter().any(|a| a == repo_id))
    {
        return Response::new(307).header(
            "Location",
            format!(
                "/{}/resolve/{}/{}",
                repo.id,
                revision.replace('/', "%2F"),
                path
            ),
        );
    }
    let Some(repo) = state.repos.iter().find(|r| r.id == repo_id) else {
        return Response::error(401, "RepoNotFound", "Repository not found");
    };
    if let Some(token) = state.gated.lock().unwrap().get(repo_id)
        && request.headers.get("authorization") != Some(&format!("Bearer {token}"))
    {
        return Response::error(401, "GatedRepo", "Access to this repository is restricted");
    }
    if revision != "main" && revision != repo.commit {
        return Response::error(404, "RevisionNotFound", "Invalid rev id");
    }
    let Some((_, bytes)) = repo.files.iter().find(|(p, _)| *p == path) else {
        return Response::error(404, "EntryNotFound", "Entry not found")
            .header("X-Repo-Commit", repo.commit.clone());
    };
    if is_lfs(&path, bytes) {
        let sha = sha256_hex(bytes);
        let storage = state.storage_url.lock().unwrap().clone();
        return Response::new(302)
            .header("Location", format!("{storage}/blobs/{sha}?file={path}"))
            .header("X-Linked-Etag", format!("\"{sha}\""))
            .header("X-Linked-Size", bytes.len().to_string())
            .header("X-Repo-Commit", repo.commit.clone())
            .header("ETag", format!("\"{}\"", git_blob_sha1(sha.as_bytes())));
    }
    file_response(state, &path, bytes, &git_blob_sha1(bytes), request)
        .header("X-Repo-Commit", repo.commit.clone())
}

/// `/blobs/{sha256}` on the storage origin.
fn storage(state: &State, request: &Request) -> Response {
    let raw = request.path.trim_start_matches("/blobs/");
    let (sha, query) = raw.split_once('?').unwrap_or((raw, ""));
    let path = query
        .strip_prefix("file=")
        .map(percent_decode)
        .unwrap_or_default();
    match state.blobs.get(sha) {
        Some(bytes) => file_response(state, &path, bytes, sha, request),
        None => Response::error(404, "NotFound", "no such blob"),
    }
}

/// 200 or 206 with the bytes of `path` (faults applied).
fn file_response(
    state: &State,
    path: &str,
    bytes: &[u8],
    etag: &str,
    request: &Request,
) -> Response {
    let mut body = bytes.to_vec();
    let mut cut_at = None;
    if request.method == "GET" {
        let mut faults = state.faults.lock().unwrap();
        if faults.corrupt.iter().any(|p| p == path) && !body.is_empty() {
            let mid = body.len() / 2;
            body[mid] ^= 0xff;
        }
        cut_at = faults.cut_after.remove(path);
    }
    let total = body.len();
    let start = request
        .headers
        .get("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split('-').next())
        .and_then(|s| s.parse::<usize>().ok());
    let mut response = match start {
        Some(start) if start >= total && total > 0 => {
            return Response::new(416).header("Content-Range", format!("bytes */{total}"));
        }
        Some(start) if start > 0 => Response::new(206)
            .header(
                "Content-Range",
                format!("bytes {start}-{}/{total}", total - 1),
            )
            .body(body[start..].to_vec()),
        _ => Response::new(200).body(body),
    };
    response.cut_at = cut_at;
    response
        .header("ETag", format!("\"{etag}\""))
        .header("Accept-Ranges", "bytes")
        .header("Content-Type", "application/octet-stream")
}

fn write_response(stream: &mut TcpStream, response: Response, head: bool) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason(response.status)
    );
    for (k, v) in &response.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("Access-Control-Allow-Origin: *\r\n");
    out.push_str(
        "Access-Control-Expose-Headers: ETag, X-Repo-Commit, X-Linked-Etag, X-Linked-Size, \
         Content-Range, Content-Length, Accept-Ranges, X-Error-Code, X-Error-Message\r\n",
    );
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        response.body.len()
    ));
    stream.write_all(out.as_bytes())?;
    if head {
        return Ok(());
    }
    match response.cut_at {
        Some(n) => {
            stream.write_all(&response.body[..n.min(response.body.len())])?;
            stream.flush()?;
            // A reset, not a clean end: the client sees the connection drop mid-body.
            let _ = stream.shutdown(std::net::Shutdown::Both);
            Ok(())
        }
        None => stream.write_all(&response.body),
    }
}
