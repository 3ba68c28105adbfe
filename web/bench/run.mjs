#!/usr/bin/env node
// Sentences per second of wasm-embed and transformers.js in the same headless Chromium, on
// the first 64 SST-2 dev sentences. Not part of CI (transformers.js is ~470 MB of npm).
//
//   (cd web/bench && npm ci --ignore-scripts)
//   $(tests/python/setup_venv.sh) web/bench/export_onnx.py   # models/all-MiniLM-L6-v2-onnx/
//   wasm-embed/build.sh
//   node web/bench/run.mjs [--only ours|transformers.js] [--device cpu|webgpu|wasm] [-n 64] [--passes 1] [--batch-size N]
//
// Prints one JSON line per configuration and a Markdown table for BENCHMARKS.md.
import { readFileSync, statSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from '../node_modules/playwright-core/index.mjs';
import { startServer } from '../serve.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const n = Number(arg('-n', '64'));
const passes = Number(arg('--passes', '1'));
// Sentences per forward pass for ours (default: embed's 32); transformers.js takes all at once.
const batchSize = process.argv.includes('--batch-size') ? Number(arg('--batch-size')) : undefined;
const only = arg('--only');
const onlyDevice = arg('--device');

const sentences = readFileSync(join(root, '../shared/data/glue/SST-2/dev.tsv'), 'utf8')
  .split('\n').slice(1).filter((l) => l.trim()).map((l) => l.split('\t')[0]).slice(0, n);

const configs = [
  { impl: 'ours', device: 'cpu', threads: 1, isolated: false },
  { impl: 'ours', device: 'cpu', threads: 2, isolated: false },
  { impl: 'transformers.js', device: 'wasm', threads: 1, isolated: false },
  { impl: 'transformers.js', device: 'wasm', threads: 2, isolated: true },
  { impl: 'ours', device: 'webgpu', isolated: false },
  { impl: 'transformers.js', device: 'webgpu', threads: 1, isolated: false },
].filter((c) => (!only || c.impl === only) && (!onlyDevice || c.device === onlyDevice));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--enable-unsafe-webgpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const results = [];
for (const config of configs) {
  const server = await startServer(root, 0, { crossOriginIsolated: config.isolated });
  const page = await browser.newPage();
  page.setDefaultTimeout(30 * 60 * 1000);
  page.on('pageerror', (e) => console.error(`pageerror: ${e.message}`));
  try {
    await page.goto(`${server.url}/web/bench/index.html`);
    const r = await page.evaluate(([c, s]) => window.runBench(c, s), [{ ...config, passes, batchSize }, sentences]);
    results.push(r);
    const { first, ...shown } = r;
    console.log(JSON.stringify(shown));
  } catch (e) {
    console.error(`${config.impl} ${config.device}: ${e.message}`);
  } finally {
    await page.close();
    server.close();
  }
}
await browser.close();

// Both compute the same vectors: the first sentence's, ours vs theirs.
const ours = results.find((r) => r.impl === 'ours');
for (const r of results.filter((r) => r.impl !== 'ours' && ours)) {
  const dot = r.first.reduce((s, x, i) => s + x * ours.first[i], 0);
  console.log(`cosine(ours, transformers.js ${r.device}) on sentence 1: ${dot.toFixed(6)}`);
}

const size = (path) => {
  const bytes = readFileSync(join(root, path));
  return `${(bytes.length / 2 ** 20).toFixed(2)} MiB (gzip ${(gzipSync(bytes, { level: 9 }).length / 2 ** 20).toFixed(2)} MiB)`;
};
console.log('\n| library | device | threads | sentences/s (last pass) | first pass | load + warm-up (s) |');
console.log('|---|---|---|---|---|---|');
for (const r of results) {
  console.log(`| ${r.impl} | ${r.device} | ${r.threads ?? 1}${r.crossOriginIsolated ? ' (isolated)' : ''} | ${r.sentencesPerSecond.toFixed(2)} | ${r.firstPassSentencesPerSecond.toFixed(2)} | ${r.warmSeconds.toFixed(1)} |`);
}
console.log('\ndownloads:');
console.log(`  ours: web/pkg/wasm_embed_bg.wasm ${size('web/pkg/wasm_embed_bg.wasm')}, JS ${size('web/pkg/wasm_embed.js')} + ${size('web/pkg/embedder.js')}, model.safetensors ${(statSync(join(root, 'models/all-MiniLM-L6-v2/model.safetensors')).size / 2 ** 20).toFixed(1)} MiB`);
const ortDir = 'web/bench/node_modules/onnxruntime-web/dist/';
console.log(`  transformers.js: transformers.js ${size('web/bench/node_modules/@huggingface/transformers/dist/transformers.js')} (min: ${size('web/bench/node_modules/@huggingface/transformers/dist/transformers.min.js')}), ${ortDir}ort-wasm-simd-threaded.asyncify.wasm ${size(ortDir + 'ort-wasm-simd-threaded.asyncify.wasm')}, onnx/model.onnx ${(statSync(join(root, 'models/all-MiniLM-L6-v2-onnx/onnx/model.onnx')).size / 2 ** 20).toFixed(1)} MiB`);
