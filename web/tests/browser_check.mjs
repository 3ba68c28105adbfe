#!/usr/bin/env node
// Drive the demo page in headless Chromium and record what it computed, for the Rust test
// tests/browser_demo.rs to check against native embeddings and sentence-transformers.
//
//   node web/tests/browser_check.mjs INPUT.json OUT_DIR
//
// INPUT.json: { "sentences": [...], "query": "...", "tokenize": [...], "float16Model": URL,
//               "hub": { "endpoint": URL, "repo": "org/name" } }
// (float16Model optional: a float16 copy of the model, relative to web/index.html; hub
// optional: a loopback hub serving the model, with a `POST /__mock/stop`).
// OUT_DIR/results.json gets, per run, the backend the page chose, its embeddings of
// `sentences`, the heat map and search ranking read from the page, and a screenshot path;
// plus the wasm tokenizer's ids for `tokenize`. Runs:
//   webgpu   ?backend=auto in Chromium with WebGPU (SwiftShader): must pick WebGPU
//   cpu      ?backend=auto with navigator.gpu removed: must fall back to the CPU
//   no-gpu   ?backend=webgpu with navigator.gpu removed: must fail with a clear message
//   cpu-float16  ?backend=cpu&model=float16Model: the half-size download
//   hub      ?backend=cpu&model=REPO&endpoint=HUB: downloaded with progress; then the hub is
//            stopped and the page reloaded: served from the browser's Cache Storage
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startServer } from '../serve.mjs';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const RUN_TIMEOUT_MS = 8 * 60 * 1000;

const [inputPath, outDir] = process.argv.slice(2);
if (!inputPath || !outDir) {
  console.error('usage: node web/tests/browser_check.mjs INPUT.json OUT_DIR');
  process.exit(2);
}
const input = JSON.parse(readFileSync(inputPath, 'utf8'));
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
for (const need of ['web/pkg/embedder.js', 'web/pkg/wasm_embed_bg.wasm']) {
  if (!existsSync(join(root, need))) {
    console.error(`${need} is missing: build it with wasm-embed/build.sh`);
    process.exit(2);
  }
}
if (!existsSync(CHROMIUM)) {
  console.error(`${CHROMIUM} is missing: apt-get install -y chromium`);
  process.exit(2);
}
mkdirSync(outDir, { recursive: true });

const server = await startServer(root);
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: [
    '--no-sandbox',
    '--enable-unsafe-webgpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
  ],
});

async function openPage(backend, { hideGpu, model }) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(RUN_TIMEOUT_MS);
  const log = [];
  page.on('console', (m) => log.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
  if (hideGpu) {
    await page.addInitScript(() => {
      delete Navigator.prototype.gpu;
    });
  }
  const modelParam = model ? `&model=${encodeURIComponent(model)}` : '';
  await page.goto(`${server.url}/web/index.html?backend=${backend}${modelParam}`);
  return { context, page, log };
}

async function demoRun(name, backend, { hideGpu, model }) {
  const started = Date.now();
  const { context, page, log } = await openPage(backend, { hideGpu, model });
  try {
    await page.waitForFunction(() => document.getElementById('status').dataset.state !== 'loading');
    const status = await page.textContent('#status');
    if ((await page.getAttribute('#status', 'data-state')) !== 'ready') {
      throw new Error(`the page did not load: ${status}\n${log.join('\n')}`);
    }
    const chosen = await page.evaluate(() => window.bertDemo.embedder.backend);
    const threads = await page.evaluate(() => window.bertDemo.embedder.threads);
    const built = await page.evaluate(async () => (await import('./pkg/embedder.js')).builtBackends());
    const embeddings = await page.evaluate(
      async (s) => (await window.bertDemo.embedder.embed(s)).map((v) => Array.from(v)),
      input.sentences,
    );
    const tokenIds = name === 'cpu'
      ? await page.evaluate(async (s) => (await window.bertDemo.embedder.tokenize(s)).map((v) => Array.from(v)), input.tokenize)
      : undefined;

    // As a user would: paste sentences, press the buttons, read the page.
    const n = input.sentences.length;
    await page.fill('#sentences', input.sentences.join('\n'));
    await page.click('#embed');
    await page.waitForFunction((n) => document.querySelectorAll('#heatmap td').length === n * n, n);
    const heatmap = await page.$$eval('#heatmap tbody tr', (rows) =>
      rows.map((r) => Array.from(r.querySelectorAll('td'), (td) => Number(td.dataset.cosine))));
    const timing = await page.textContent('#timing');
    await page.fill('#query', input.query);
    await page.click('#search');
    await page.waitForFunction((n) => document.querySelectorAll('#results li').length === n, n);
    const ranking = await page.$$eval('#results li', (items) =>
      items.map((li) => ({ index: Number(li.dataset.index), score: Number(li.dataset.score) })));
    const screenshot = join(outDir, `demo-${name}.png`);
    await page.screenshot({ path: screenshot, fullPage: true });
    return {
      name, backend: chosen, threads, built, status, timing, embeddings, heatmap, ranking, tokenIds, screenshot,
      seconds: (Date.now() - started) / 1000, log,
    };
  } finally {
    await context.close();
  }
}

async function missingGpuRun() {
  const { context, page, log } = await openPage('webgpu', { hideGpu: true });
  try {
    await page.waitForFunction(() => document.getElementById('status').dataset.state !== 'loading');
    return {
      name: 'no-gpu',
      state: await page.getAttribute('#status', 'data-state'),
      status: await page.textContent('#status'),
      log,
    };
  } finally {
    await context.close();
  }
}

/** Wait for the page to load its model; its status line, and the vectors of the sentences. */
async function loadedVectors(page, log) {
  await page.waitForFunction(() => document.getElementById('status').dataset.state !== 'loading');
  const status = await page.textContent('#status');
  if ((await page.getAttribute('#status', 'data-state')) !== 'ready') {
    throw new Error(`the page did not load: ${status}\n${log.join('\n')}`);
  }
  const embeddings = await page.evaluate(
    async (s) => (await window.bertDemo.embedder.embed(s)).map((v) => Array.from(v)),
    input.sentences,
  );
  const progress = await page.evaluate(() => window.bertDemo.progress);
  return { status, embeddings, progress };
}

async function hubRun() {
  const started = Date.now();
  const { endpoint, repo } = input.hub;
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(RUN_TIMEOUT_MS);
  const log = [];
  page.on('console', (m) => log.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => log.push(`pageerror: ${e.message}`));
  try {
    const query = `backend=cpu&threads=0&model=${encodeURIComponent(repo)}&endpoint=${encodeURIComponent(endpoint)}`;
    await page.goto(`${server.url}/web/index.html?${query}`);
    const first = await loadedVectors(page, log);
    // The hub goes away; the reload must be served by the browser's Cache Storage.
    const stop = await fetch(`${endpoint}/__mock/stop`, { method: 'POST' });
    if (!stop.ok) throw new Error(`could not stop the hub: HTTP ${stop.status}`);
    await page.reload();
    const reload = await loadedVectors(page, log);
    return { name: 'hub', first, reload, seconds: (Date.now() - started) / 1000, status: reload.status, log };
  } finally {
    await context.close();
  }
}

const results = { runs: [] };
try {
  results.runs.push(await demoRun('cpu', 'auto', { hideGpu: true }));
  results.runs.push(await missingGpuRun());
  results.runs.push(await demoRun('webgpu', 'auto', { hideGpu: false }));
  if (input.float16Model) {
    results.runs.push(await demoRun('cpu-float16', 'cpu', { hideGpu: true, model: input.float16Model }));
  }
  if (input.hub) results.runs.push(await hubRun());
} catch (e) {
  results.error = String(e.stack ?? e);
} finally {
  await browser.close();
  server.close();
}
for (const run of results.runs) {
  console.error(`${run.name}: ${run.status}${run.seconds ? ` (${run.seconds.toFixed(1)} s)` : ''}`);
}
writeFileSync(join(outDir, 'results.json'), JSON.stringify(results));
if (results.error) {
  console.error(results.error);
  process.exit(1);
}
