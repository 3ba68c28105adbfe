#!/usr/bin/env node
// GFLOP/s of WebGPU matmul candidates in headless Chromium (SwiftShader there): one output per
// invocation vs the register-tiled kernel of model/src/kernels/linear.rs at several block sizes,
// on the encoder's projection shapes. Needs only `npm ci` in web/ (not the transformers.js bench).
//
//   node web/bench/matmul.mjs [--reps 3]
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from '../node_modules/playwright-core/index.mjs';
import { startServer } from '../serve.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const at = process.argv.indexOf('--reps');
const reps = at > 0 ? Number(process.argv[at + 1]) : 3;
// [M, N, K]: 1000 token rows through the 384 → 384, 384 → 1536 and 1536 → 384 projections.
const shapes = [[1000, 384, 384], [1000, 1536, 384], [1000, 384, 1536]];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--enable-unsafe-webgpu'],
});
const server = await startServer(root, 0);
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(20 * 60 * 1000);
  await page.goto(`${server.url}/web/bench/matmul.html`);
  const results = await page.evaluate((c) => window.runMatmul(c), { shapes, reps });
  console.log('| kernel | M × N × K | ms | GFLOP/s | max abs error |\n|---|---|---:|---:|---:|');
  for (const r of results) {
    console.log(`| ${r.kernel} | ${r.M} × ${r.N} × ${r.K} | ${r.ms} | ${r.gflops} | ${r.maxAbsError.toExponential(1)} |`);
  }
} finally {
  await browser.close();
  server.close();
}
