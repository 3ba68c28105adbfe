// The public JS API of wasm-embed (copied into web/pkg/ by wasm-embed/build.sh).
//
//   import { Embedder } from './pkg/embedder.js';
//   const e = await Embedder.load({ model: 'models/all-MiniLM-L6-v2/', backend: 'auto' });
//   const [a, b] = await e.embed(['A man is eating.', 'Someone eats.']);  // Float32Array[]
//   e.backend  // 'webgpu' or 'cpu';  e.dim  // 384
//
// `model` is a model directory URL (ending in '/': model.safetensors, config.json,
// tokenizer.json and, if present, sentence_bert_config.json are read from it) or the weights
// themselves (URL, ArrayBuffer or Uint8Array), in which case `config` and `tokenizer` (URL,
// bytes, or for config a parsed object) are required. Nothing else is fetched.
import init, { WasmEmbedder } from './wasm_embed.js';

let wasmReady;
function initWasm() {
  wasmReady ??= init({ module_or_path: new URL('wasm_embed_bg.wasm', import.meta.url) });
  return wasmReady;
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

export class Embedder {
  #inner;

  constructor(inner) {
    this.#inner = inner;
  }

  /**
   * Load a model. `backend`: 'auto' (WebGPU when the browser has it, else CPU), 'webgpu' or
   * 'cpu'. `maxLength`: tokens per sentence (default: sentence_bert_config.json's
   * max_seq_length, else the model's position limit).
   */
  static async load({ model, config, tokenizer, backend = 'auto', maxLength } = {}) {
    if (!model) throw new Error('Embedder.load: `model` is required');
    if (!['auto', 'webgpu', 'cpu'].includes(backend)) {
      throw new Error(`unknown backend ${JSON.stringify(backend)}; expected auto, webgpu or cpu`);
    }
    // Checked here: asking wgpu for a device the browser lacks aborts the wasm module.
    const gpu = backend === 'cpu' ? false : await webGpuAvailable();
    if (backend === 'webgpu' && !gpu) {
      throw new Error('this browser has no WebGPU adapter; use backend "cpu" or "auto"');
    }
    const chosen = gpu ? 'webgpu' : 'cpu';

    let weights, configText, tokenizerBytes;
    if (typeof model === 'string' && model.endsWith('/')) {
      const dir = new URL(model, globalThis.location?.href);
      [weights, configText, tokenizerBytes, maxLength] = await Promise.all([
        fetchBytes(new URL('model.safetensors', dir), 'the weights'),
        fetchBytes(new URL('config.json', dir), 'config.json').then((b) => new TextDecoder().decode(b)),
        fetchBytes(new URL('tokenizer.json', dir), 'tokenizer.json'),
        maxLength ?? sentenceTransformersMaxLength(dir),
      ]);
    } else {
      if (!config || !tokenizer) {
        throw new Error('Embedder.load: give `config` and `tokenizer` with weights, or a directory URL ending in "/"');
      }
      weights = await bytesOf(model, 'the weights');
      configText = typeof config === 'object' && !(config instanceof Uint8Array) && !(config instanceof ArrayBuffer) && !(config instanceof URL)
        ? JSON.stringify(config)
        : new TextDecoder().decode(await bytesOf(config, 'config.json'));
      tokenizerBytes = await bytesOf(tokenizer, 'tokenizer.json');
    }
    await initWasm();
    const inner = await WasmEmbedder.create(weights, configText, tokenizerBytes, chosen, maxLength);
    return new Embedder(inner);
  }

  /** 'webgpu' or 'cpu'. */
  get backend() {
    return this.#inner.backend;
  }

  /** Width of a sentence vector. */
  get dim() {
    return this.#inner.dim;
  }

  /** Tokens per sentence at most, [CLS] and [SEP] included. */
  get maxLength() {
    return this.#inner.maxLength;
  }

  /** Token ids per sentence (Uint32Array[]), as the model sees them. */
  tokenize(sentences) {
    return this.#inner.tokenize(sentences);
  }

  /** One Float32Array per sentence. */
  async embed(sentences, { pooling = 'mean', normalize = true, batchSize = 32 } = {}) {
    if (!Array.isArray(sentences) || sentences.some((s) => typeof s !== 'string')) {
      throw new Error('embed: expected an array of strings');
    }
    if (sentences.length === 0) return [];
    return this.#inner.embed(sentences, pooling, normalize, batchSize);
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
