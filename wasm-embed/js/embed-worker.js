// One CPU encoder in a Web Worker (started by embedder.js; copied into web/pkg/ by build.sh).
// burn's CPU backend has no threads inside wasm, so Embedder runs one of these per core and
// hands each a share of the sentences. Messages: { id, op: 'load' | 'embed' | 'tokenize',
// args } in, { id, result } or { id, error } out.
import init, { WasmEmbedder } from './wasm_embed.js';

let embedder;

const ops = {
  async load({ module, weights, configText, tokenizerBytes, maxLength }) {
    await init({ module_or_path: module });
    embedder = await WasmEmbedder.create(weights, configText, tokenizerBytes, 'cpu', maxLength);
    return { result: { dim: embedder.dim, maxLength: embedder.maxLength } };
  },
  async embed({ sentences, pooling, normalize, batchSize }) {
    const vectors = await embedder.embed(sentences, pooling, normalize, batchSize);
    return { result: vectors, transfer: vectors.map((v) => v.buffer) };
  },
  async tokenize({ sentences }) {
    const ids = embedder.tokenize(sentences);
    return { result: ids, transfer: ids.map((v) => v.buffer) };
  },
};

self.onmessage = async ({ data: { id, op, args } }) => {
  try {
    const { result, transfer = [] } = await ops[op](args);
    self.postMessage({ id, result }, transfer);
  } catch (e) {
    self.postMessage({ id, error: String(e?.message ?? e) });
  }
};
