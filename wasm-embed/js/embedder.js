// The public JS API of wasm-embed (copied into web/pkg/ by wasm-embed/build.sh).
//
//   import { Embedder } from './pkg/embedder.js';
//   const e = await Embedder.load({ model: 'models/all-MiniLM-L6-v2/', backend: 'auto' });
//   const [a, b] = await e.embed(['A man is eating.', 'Someone eats.']);  // Float32Array[]
//   e.backend  // 'webgpu' or 'cpu';  e.dim  // 384;  e.threads  // CPU workers (0: none)
//
// `model` is one of:
// - a HuggingFace Hub id ('sentence-transformers/all-MiniLM-L6-v2'): its files are fetched
//   from `{endpoint}/{model}/resolve/{revision}/{file}` (`endpoint` defaults to the hub,
//   `revision` to 'main') and kept in the browser's Cache Storage ('bert-hub'), so a reload
//   needs no network; `onProgress({ file, loaded, total })` reports the download;
// - a model directory URL (ending in '/': model.safetensors, config.json, tokenizer.json and,
//   if present, sentence_bert_config.json are read from it);
// - the weights themselves (URL, ArrayBuffer or Uint8Array), in which case `config` and
//   `tokenizer` (URL, bytes, or for config a parsed object) are required.
// Nothing else is fetched.
//
// The CPU backend runs in Web Workers, one model copy each (burn's CPU backend has no threads
// inside wasm, and wasm threads would need a cross-origin isolated page): `embed` hands each
// worker a share of the sentences, and the page's own thread stays free.
import init, { WasmEmbedder, backends } from './wasm_embed.js';

let compiled;
/** The compiled module, shared by this thread and every worker (compiled once). */
function wasmModule() {
  compiled ??= fetchBytes(new URL('wasm_embed_bg.wasm', import.meta.url), 'wasm_embed_bg.wasm')
    .then((bytes) => WebAssembly.compile(bytes));
  return compiled;
}

let instantiated;
/** The module instantiated on this thread (its backends list; WebGPU runs here too). */
function wasmInstance() {
  instantiated ??= wasmModule().then((module) => init({ module_or_path: module }).then(() => module));
  return instantiated;
}

/**
 * The backends this build of the module has: ['webgpu', 'cpu'] by default, one of them for a
 * build with `WASM_EMBED_FEATURES=webgpu` or `=cpu` (smaller).
 */
export async function builtBackends() {
  await wasmInstance();
  return backends();
}

/** Whether this browser can run the WebGPU backend (an adapter, not just the API). */
export async function webGpuAvailable() {
  if (typeof navigator === 'undefined' || !navigator.gpu) return false;
  try {
    return (await navigator.gpu.requestAdapter()) !== null;
  } catch {
    return false;
  }
}

async function fetchBytes(url, what) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`cannot fetch ${what} from ${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

async function bytesOf(source, what) {
  if (source instanceof Uint8Array) return source;
  if (source instanceof ArrayBuffer) return new Uint8Array(source);
  if (typeof source === 'string' || source instanceof URL) return fetchBytes(source, what);
  throw new Error(`${what}: expected a URL, an ArrayBuffer or a Uint8Array`);
}

/** `max_seq_length` from sentence_bert_config.json, if the directory has one. */
async function sentenceTransformersMaxLength(dir) {
  try {
    const response = await fetch(new URL('sentence_bert_config.json', dir));
    if (!response.ok) return undefined;
    return (await response.json()).max_seq_length;
  } catch {
    return undefined;
  }
}

/** The hub's address; `HF_ENDPOINT` of the native tools. */
export const DEFAULT_ENDPOINT = 'https://huggingface.co';
/** The Cache Storage bucket that keeps hub files between visits. */
export const HUB_CACHE = 'bert-hub';

/** `org/name` (or a legacy one-part id): a hub id, not a URL or path. */
export function isHubId(model) {
  return typeof model === 'string' && /^[A-Za-z0-9][\w.-]*(\/[A-Za-z0-9][\w.-]*)?$/.test(model)
    && !/\.(safetensors|bin|json)$/.test(model);
}

/** Read a response's body, reporting bytes as they arrive. */
async function readWithProgress(response, onProgress) {
  const total = Number(response.headers.get('content-length')) || undefined;
  if (!onProgress || !response.body) return new Uint8Array(await response.arrayBuffer());
  const reader = response.body.getReader();
  const chunks = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    onProgress(loaded, total);
  }
  const bytes = new Uint8Array(loaded);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.length;
  }
  return bytes;
}

async function openHubCache() {
  try {
    return globalThis.caches ? await caches.open(HUB_CACHE) : undefined;
  } catch {
    return undefined; // an insecure context or storage switched off: no cache, still works
  }
}

/**
 * One file of a hub repository: from Cache Storage, else downloaded (and then cached).
 * `undefined` for an optional file the repository lacks.
 */
async function hubFile(cache, { endpoint, repo, revision, onProgress }, file, { optional = false } = {}) {
  const url = `${endpoint.replace(/\/+$/, '')}/${repo}/resolve/${encodeURIComponent(revision)}/${file}`;
  const cached = await cache?.match(url);
  if (cached) {
    if (cached.status === 404) return undefined;
    onProgress?.({ file, loaded: Number(cached.headers.get('content-length')) || 0, total: undefined, cached: true });
    return new Uint8Array(await cached.arrayBuffer());
  }
  let response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw new Error(`cannot fetch ${file} of ${repo} from ${endpoint} (${e.message}), and the browser cache does not hold it`);
  }
  if (response.status === 404 && optional && response.headers.get('x-error-code') === 'EntryNotFound') {
    await cache?.put(url, new Response(null, { status: 404 }));
    return undefined;
  }
  if (!response.ok) {
    const code = response.headers.get('x-error-code');
    throw new Error(`cannot fetch ${file} of ${repo}@${revision}: HTTP ${response.status}${code ? ` ${code}` : ''}`);
  }
  const bytes = await readWithProgress(response, (loaded, total) => onProgress?.({ file, loaded, total }));
  await cache?.put(url, new Response(bytes, {
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) },
  }));
  return bytes;
}

/** The files of a hub model, as `modelFiles` returns them. */
async function hubModelFiles({ model, revision = 'main', endpoint = DEFAULT_ENDPOINT, maxLength, onProgress }) {
  const cache = await openHubCache();
  const source = { endpoint, repo: model, revision, onProgress };
  const [weights, configBytes, tokenizerBytes, stConfig] = await Promise.all([
    hubFile(cache, source, 'model.safetensors'),
    hubFile(cache, source, 'config.json'),
    hubFile(cache, source, 'tokenizer.json'),
    hubFile(cache, source, 'sentence_bert_config.json', { optional: true }),
  ]);
  const text = (bytes) => new TextDecoder().decode(bytes);
  return {
    weights,
    configText: text(configBytes),
    tokenizerBytes,
    maxLength: maxLength ?? (stConfig ? JSON.parse(text(stConfig)).max_seq_length : undefined),
  };
}

/** The weights, config.json's text, tokenizer.json and the sentence length, from `load`'s options. */
async function modelFiles({ model, config, tokenizer, maxLength, revision, endpoint, onProgress }) {
  if (isHubId(model) && !config && !tokenizer) {
    return hubModelFiles({ model, revision, endpoint, maxLength, onProgress });
  }
  if (typeof model === 'string' && model.endsWith('/')) {
    const dir = new URL(model, globalThis.location?.href);
    const [weights, configText, tokenizerBytes, length] = await Promise.all([
      fetchBytes(new URL('model.safetensors', dir), 'the weights'),
      fetchBytes(new URL('config.json', dir), 'config.json').then((b) => new TextDecoder().decode(b)),
      fetchBytes(new URL('tokenizer.json', dir), 'tokenizer.json'),
      maxLength ?? sentenceTransformersMaxLength(dir),
    ]);
    return { weights, configText, tokenizerBytes, maxLength: length };
  }
  if (!config || !tokenizer) {
    throw new Error('Embedder.load: give `config` and `tokenizer` with weights, or a directory URL ending in "/"');
  }
  const parsed = typeof config === 'object' && !(config instanceof Uint8Array) && !(config instanceof ArrayBuffer) && !(config instanceof URL);
  return {
    weights: await bytesOf(model, 'the weights'),
    configText: parsed ? JSON.stringify(config) : new TextDecoder().decode(await bytesOf(config, 'config.json')),
    tokenizerBytes: await bytesOf(tokenizer, 'tokenizer.json'),
    maxLength,
  };
}

/** 'webgpu' or 'cpu' for `requested` ('auto', 'webgpu' or 'cpu'), given the module's backends. */
async function chooseBackend(requested, built) {
  if (requested !== 'auto' && !built.includes(requested)) {
    throw new Error(`this build of wasm-embed has no ${requested} backend (it has: ${built.join(', ')})`);
  }
  // Checked here: asking wgpu for a device the browser lacks aborts the wasm module.
  const gpu = requested !== 'cpu' && built.includes('webgpu') && (await webGpuAvailable());
  if (gpu) return 'webgpu';
  if (requested === 'webgpu') {
    throw new Error('this browser has no WebGPU adapter; use backend "cpu" or "auto"');
  }
  if (!built.includes('cpu')) {
    throw new Error('this browser has no WebGPU adapter, and this build of wasm-embed has no CPU backend');
  }
  return 'cpu';
}

/** Web Workers that each hold one CPU encoder (embed-worker.js), fed from one job queue. */
class WorkerPool {
  #workers = [];
  #calls = new Map();
  #nextId = 0;

  /** Start `count` workers and load the model into each; resolves to the first one's info. */
  static async start(count, load) {
    const pool = new WorkerPool();
    for (let i = 0; i < count; i++) {
      const worker = new Worker(new URL('embed-worker.js', import.meta.url), { type: 'module' });
      worker.onmessage = ({ data }) => pool.#settle(data);
      worker.onerror = (event) => pool.#fail(worker, event.message ?? 'the worker failed to start');
      pool.#workers.push(worker);
    }
    try {
      const [info] = await Promise.all(pool.#workers.map((w) => pool.#call(w, 'load', load)));
      return { pool, info };
    } catch (e) {
      pool.terminate();
      throw e;
    }
  }

  get size() {
    return this.#workers.length;
  }

  /** Run `op` on every job's args, each job on the next free worker; results in job order. */
  async run(op, jobs) {
    const results = new Array(jobs.length);
    let next = 0;
    await Promise.all(this.#workers.map(async (worker) => {
      while (next < jobs.length) {
        const i = next++;
        results[i] = await this.#call(worker, op, jobs[i]);
      }
    }));
    return results;
  }

  terminate() {
    for (const w of this.#workers) w.terminate();
    this.#fail(null, 'the embedder was disposed');
    this.#workers = [];
  }

  #call(worker, op, args) {
    return new Promise((resolve, reject) => {
      const id = this.#nextId++;
      this.#calls.set(id, { resolve, reject, worker });
      worker.postMessage({ id, op, args });
    });
  }

  #settle({ id, result, error }) {
    const call = this.#calls.get(id);
    this.#calls.delete(id);
    if (error === undefined) call?.resolve(result);
    else call?.reject(new Error(error));
  }

  /** Reject the calls waiting on `worker` (all of them when null). */
  #fail(worker, message) {
    for (const [id, call] of this.#calls) {
      if (worker === null || call.worker === worker) {
        this.#calls.delete(id);
        call.reject(new Error(message));
      }
    }
  }
}

/** CPU workers to start by default: one per core, at most 4 (each holds a copy of the model). */
function defaultThreads() {
  if (typeof Worker === 'undefined') return 0;
  return Math.max(1, Math.min(globalThis.navigator?.hardwareConcurrency ?? 1, 4));
}

export class Embedder {
  #inner; // a WasmEmbedder on this thread (WebGPU, or CPU with threads: 0)
  #pool; // or CPU workers
  #info;

  constructor(inner, pool, info) {
    this.#inner = inner;
    this.#pool = pool;
    this.#info = info;
  }

  /**
   * Load a model. `backend`: 'auto' (WebGPU when the browser has it, else CPU), 'webgpu' or
   * 'cpu'. `maxLength`: tokens per sentence (default: sentence_bert_config.json's
   * max_seq_length, else the model's position limit). `threads`: CPU backend only, how many
   * Web Workers share the work (default: one per core, at most 4); 0 runs on this thread.
   * Hub ids only: `revision` (branch, tag or commit; default 'main'), `endpoint` (default the
   * hub), `onProgress({ file, loaded, total, cached })`.
   */
  static async load({
    model, config, tokenizer, backend = 'auto', maxLength, threads, revision, endpoint, onProgress,
  } = {}) {
    if (!model) throw new Error('Embedder.load: `model` is required');
    if (!['auto', 'webgpu', 'cpu'].includes(backend)) {
      throw new Error(`unknown backend ${JSON.stringify(backend)}; expected auto, webgpu or cpu`);
    }
    if (threads !== undefined && !(Number.isInteger(threads) && threads >= 0)) {
      throw new Error(`threads must be a whole number >= 0, got ${JSON.stringify(threads)}`);
    }
    // The model downloads while the module compiles; a backend this browser or build lacks
    // is reported as soon as the module says what it has, without waiting for the model.
    const files = modelFiles({ model, config, tokenizer, maxLength, revision, endpoint, onProgress });
    files.catch(() => {}); // awaited below, unless the backend check fails first
    const chosen = await chooseBackend(backend, await builtBackends());
    const { weights, configText, tokenizerBytes, maxLength: length } = await files;
    const module = await wasmInstance();
    const workers = chosen === 'cpu' ? (threads ?? defaultThreads()) : 0;
    if (workers > 0) {
      const load = { module, weights, configText, tokenizerBytes, maxLength: length };
      const { pool, info } = await WorkerPool.start(workers, load);
      return new Embedder(null, pool, { ...info, backend: chosen, threads: workers });
    }
    const inner = await WasmEmbedder.create(weights, configText, tokenizerBytes, chosen, length);
    const info = { backend: chosen, dim: inner.dim, maxLength: inner.maxLength, threads: 0 };
    return new Embedder(inner, null, info);
  }

  /** 'webgpu' or 'cpu'. */
  get backend() {
    return this.#info.backend;
  }

  /** Width of a sentence vector. */
  get dim() {
    return this.#info.dim;
  }

  /** Tokens per sentence at most, [CLS] and [SEP] included. */
  get maxLength() {
    return this.#info.maxLength;
  }

  /** CPU Web Workers in use (0: the encoder runs on the thread that loaded it). */
  get threads() {
    return this.#info.threads;
  }

  /** Token ids per sentence (Uint32Array[]), as the model sees them. */
  async tokenize(sentences) {
    checkSentences('tokenize', sentences);
    this.#checkLoaded();
    if (this.#inner) return this.#inner.tokenize(sentences);
    const [ids] = await this.#pool.run('tokenize', [{ sentences }]);
    return ids;
  }

  /** One Float32Array per sentence. */
  async embed(sentences, { pooling = 'mean', normalize = true, batchSize = 32 } = {}) {
    checkSentences('embed', sentences);
    this.#checkLoaded();
    if (sentences.length === 0) return [];
    if (this.#inner) return this.#inner.embed(sentences, pooling, normalize, batchSize);
    // Longest first in jobs of similar length (little padding), at least two per worker so
    // that a worker done early takes the next job instead of waiting on a long one.
    const order = sentences.map((_, i) => i).sort((a, b) => sentences[b].length - sentences[a].length);
    const size = Math.max(1, Math.min(batchSize, Math.ceil(sentences.length / (2 * this.#pool.size))));
    const jobs = [];
    for (let i = 0; i < order.length; i += size) jobs.push(order.slice(i, i + size));
    const results = await this.#pool.run('embed', jobs.map((job) => ({
      sentences: job.map((i) => sentences[i]), pooling, normalize, batchSize,
    })));
    const out = new Array(sentences.length);
    jobs.forEach((job, j) => job.forEach((i, k) => { out[i] = results[j][k]; }));
    return out;
  }

  /** Stop the CPU workers (the embedder cannot be used afterwards). */
  dispose() {
    this.#pool?.terminate();
    this.#inner?.free();
    this.#inner = this.#pool = null;
  }

  #checkLoaded() {
    if (!this.#inner && !this.#pool) throw new Error('this embedder was disposed');
  }
}

function checkSentences(what, sentences) {
  if (!Array.isArray(sentences) || sentences.some((s) => typeof s !== 'string')) {
    throw new Error(`${what}: expected an array of strings`);
  }
}

/** Cosine similarity of two vectors. */
export function cosine(a, b) {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / (Math.sqrt(na * nb) || 1);
}
