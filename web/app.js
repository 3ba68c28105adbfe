// The demo page: load a model, embed the textarea's sentences, draw their cosine heat map,
// and rank them against a query. `window.bertDemo` exposes the embedder to tests.
import { Embedder, cosine, isHubId } from './pkg/embedder.js';

const params = new URLSearchParams(location.search);
const backend = params.get('backend') ?? 'auto';
// CPU only: Web Workers running the encoder (default: one per core, at most 4; 0: this thread).
const threads = params.has('threads') ? Number(params.get('threads')) : undefined;
// A hub id (?model=sentence-transformers/all-MiniLM-L6-v2, with optional &revision= and
// &endpoint=) or a model directory URL; default: the copy fetch_minilm.sh puts beside the page.
const modelParam = params.get('model') ?? '../models/all-MiniLM-L6-v2/';
const hub = isHubId(modelParam);
const model = hub ? modelParam : new URL(modelParam, location.href).href;
const hubOptions = hub
  ? { revision: params.get('revision') ?? undefined, endpoint: params.get('endpoint') ?? undefined }
  : {};

const $ = (id) => document.getElementById(id);
const status = $('status');

function setStatus(text, state) {
  status.textContent = text;
  status.dataset.state = state;
}

function sentences() {
  return $('sentences').value.split('\n').map((s) => s.trim()).filter((s) => s.length > 0);
}

// The sentences and vectors of the last "Embed", reused by the search.
let corpus = { texts: [], vectors: [] };

async function timedEmbed(embedder, texts) {
  const start = performance.now();
  const vectors = await embedder.embed(texts);
  return { vectors, ms: performance.now() - start };
}

// White (cosine <= 0) to dark blue (cosine 1).
function cellColor(c) {
  const t = Math.max(0, Math.min(1, c));
  const [r, g, b] = [255 - 225 * t, 255 - 160 * t, 255 - 60 * t].map(Math.round);
  return `rgb(${r},${g},${b})`;
}

function drawHeatmap(texts, vectors) {
  const table = document.createElement('table');
  const head = table.createTHead().insertRow();
  head.appendChild(document.createElement('th'));
  texts.forEach((_, j) => {
    const th = document.createElement('th');
    th.textContent = String(j + 1);
    head.appendChild(th);
  });
  const body = table.createTBody();
  texts.forEach((text, i) => {
    const row = body.insertRow();
    const th = document.createElement('th');
    th.textContent = `${i + 1}. ${text}`;
    th.title = text;
    row.appendChild(th);
    texts.forEach((_, j) => {
      const c = cosine(vectors[i], vectors[j]);
      const td = row.insertCell();
      td.textContent = c.toFixed(2);
      td.dataset.cosine = String(c);
      td.style.background = cellColor(c);
      td.style.color = c > 0.6 ? 'white' : 'black';
      td.title = `cos(${i + 1}, ${j + 1}) = ${c.toFixed(4)}`;
    });
  });
  $('heatmap').replaceChildren(table);
}

/** "webgpu", "cpu" or "cpu × N workers". */
function backendName(embedder) {
  return embedder.threads > 1 ? `${embedder.backend} × ${embedder.threads} workers` : embedder.backend;
}

/** Download progress of the hub files: one line per file, and a bar for all of them. */
const downloads = new Map();
function showProgress({ file, loaded, total, cached }) {
  downloads.set(file, { loaded, total, cached });
  window.bertDemo.progress.push({ file, loaded, total, cached: Boolean(cached) });
  let sum = 0;
  let of = 0;
  for (const d of downloads.values()) {
    sum += d.loaded;
    of += d.total ?? d.loaded;
  }
  const bar = $('progress');
  bar.hidden = false;
  bar.max = of || 1;
  bar.value = sum;
  const mb = (n) => (n / 1e6).toFixed(1);
  const parts = [...downloads].map(([f, d]) =>
    d.cached ? `${f} (cached)` : `${f} ${mb(d.loaded)}${d.total ? ` / ${mb(d.total)}` : ''} MB`);
  setStatus(`Loading ${model}: ${parts.join(' · ')}`, 'loading');
}

async function main() {
  setStatus(`Loading ${model} (backend: ${backend})…`, 'loading');
  const start = performance.now();
  const embedder = await Embedder.load({ model, backend, threads, ...hubOptions, onProgress: showProgress });
  $('progress').hidden = true;
  const loadSeconds = (performance.now() - start) / 1000;
  // The first run compiles GPU kernels; count it as loading, not as embedding time.
  await embedder.embed(['warm up']);
  const warmSeconds = (performance.now() - start) / 1000;
  setStatus(
    `Backend: ${backendName(embedder)} · model loaded in ${loadSeconds.toFixed(2)} s ` +
      `(ready after warm-up in ${warmSeconds.toFixed(2)} s) · ${embedder.dim}-dimensional vectors`,
    'ready',
  );
  window.bertDemo.embedder = embedder;
  window.bertDemo.loadSeconds = loadSeconds;

  $('embed').addEventListener('click', async () => {
    const texts = sentences();
    if (texts.length === 0) return;
    $('embed').disabled = true;
    try {
      const { vectors, ms } = await timedEmbed(embedder, texts);
      corpus = { texts, vectors };
      $('timing').textContent =
        `${texts.length} sentences in ${ms.toFixed(0)} ms (${(ms / texts.length).toFixed(1)} ms per sentence, ${backendName(embedder)})`;
      drawHeatmap(texts, vectors);
      $('results').replaceChildren();
    } catch (e) {
      setStatus(`Embedding failed: ${e.message ?? e}`, 'error');
    } finally {
      $('embed').disabled = false;
    }
  });

  $('search-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const query = $('query').value.trim();
    if (!query) return;
    $('search').disabled = true;
    try {
      if (corpus.texts.length === 0 || corpus.texts.join('\n') !== sentences().join('\n')) {
        const texts = sentences();
        corpus = { texts, vectors: (await timedEmbed(embedder, texts)).vectors };
      }
      const [q] = await embedder.embed([query]);
      const ranked = corpus.texts
        .map((text, index) => ({ text, index, score: cosine(q, corpus.vectors[index]) }))
        .sort((a, b) => b.score - a.score);
      $('results').replaceChildren(
        ...ranked.map(({ text, index, score }) => {
          const li = document.createElement('li');
          li.dataset.index = String(index);
          li.dataset.score = String(score);
          const s = document.createElement('span');
          s.className = 'score';
          s.textContent = score.toFixed(3);
          li.append(s, text);
          return li;
        }),
      );
    } catch (e) {
      setStatus(`Search failed: ${e.message ?? e}`, 'error');
    } finally {
      $('search').disabled = false;
    }
  });

  $('embed').disabled = false;
  $('search').disabled = false;
}

window.bertDemo = { progress: [] };
window.bertDemo.ready = main().catch((e) => {
  setStatus(`Could not load the model: ${e.message ?? e}`, 'error');
  throw e;
});
