// One benchmark configuration per page load, called by web/bench/run.mjs:
//   await window.runBench({ impl: 'ours' | 'transformers.js', device, threads }, sentences)
// Loads all-MiniLM-L6-v2 (ours: safetensors; transformers.js: the local ONNX export), warms
// up on 8 sentences, then times embedding all `sentences` (mean pooling, normalised, fp32),
// `passes` times; the last pass is the figure, the first is reported beside it.

async function loadOurs(device, threads, batchSize) {
  const { Embedder } = await import('/web/pkg/embedder.js');
  const e = await Embedder.load({ model: '/models/all-MiniLM-L6-v2/', backend: device, threads });
  return { backend: e.backend, embed: (s) => e.embed(s, { batchSize }) };
}

async function loadTheirs(device, threads) {
  const { pipeline, env } = await import(
    '/web/bench/node_modules/@huggingface/transformers/dist/transformers.js'
  );
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = '/models/';
  env.useBrowserCache = false;
  const ort = '/web/bench/node_modules/onnxruntime-web/dist/';
  env.backends.onnx.wasm.wasmPaths = {
    mjs: `${ort}ort-wasm-simd-threaded.asyncify.mjs`,
    wasm: `${ort}ort-wasm-simd-threaded.asyncify.wasm`,
  };
  env.backends.onnx.wasm.numThreads = threads;
  const extractor = await pipeline('feature-extraction', 'all-MiniLM-L6-v2-onnx', {
    device,
    dtype: 'fp32',
  });
  return {
    backend: device,
    embed: async (s) => {
      const t = await extractor(s, { pooling: 'mean', normalize: true });
      const [n, d] = t.dims;
      return Array.from({ length: n }, (_, i) => t.data.slice(i * d, (i + 1) * d));
    },
  };
}

window.runBench = async ({ impl, device, threads = 1, passes = 1, batchSize }, sentences) => {
  const t0 = performance.now();
  const model = impl === 'ours' ? await loadOurs(device, threads, batchSize) : await loadTheirs(device, threads);
  const loadSeconds = (performance.now() - t0) / 1000;
  await model.embed(sentences.slice(0, 8));
  const warmSeconds = (performance.now() - t0) / 1000;
  // Pass 1 still meets new shapes (GPU kernels compiled per shape); later passes are steady.
  const passSeconds = [];
  let vectors;
  for (let p = 0; p < passes; p++) {
    const start = performance.now();
    vectors = await model.embed(sentences);
    passSeconds.push((performance.now() - start) / 1000);
  }
  const seconds = passSeconds[passSeconds.length - 1];
  return {
    impl,
    device,
    threads,
    backend: model.backend,
    crossOriginIsolated: globalThis.crossOriginIsolated === true,
    loadSeconds,
    warmSeconds,
    passSeconds,
    seconds,
    sentencesPerSecond: sentences.length / seconds,
    firstPassSentencesPerSecond: sentences.length / passSeconds[0],
    first: Array.from(vectors[0]),
  };
};
