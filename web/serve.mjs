#!/usr/bin/env node
// A tiny static file server for the demo: serves the repository root on loopback, so the
// page is at /web/ and the model files at /models/<name>/ (the same layout as
// `python3 -m http.server` run from the repository root).
//
//   node web/serve.mjs [--port 8000]        then open http://127.0.0.1:8000/web/
//
// The test driver (web/tests/browser_check.mjs) starts the same server on a free port.
import { createServer } from 'node:http';
import { createReadStream, statSync } from 'node:fs';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.txt': 'text/plain; charset=utf-8',
  '.onnx': 'application/octet-stream',
  '.safetensors': 'application/octet-stream',
};

/** Serve `root` on 127.0.0.1:`port` (0: any free port); resolves to the base URL. */
export function startServer(root, port = 0, { crossOriginIsolated = false } = {}) {
  const base = resolve(root);
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const file = normalize(join(base, path));
    // Nothing outside the root, whatever `..` the request holds.
    if (file !== base && !file.startsWith(base + sep)) {
      res.writeHead(403).end('forbidden');
      return;
    }
    let target = file;
    try {
      if (statSync(target).isDirectory()) target = join(target, 'index.html');
      const size = statSync(target).size;
      const headers = {
        'content-type': TYPES[extname(target)] ?? 'application/octet-stream',
        'content-length': size,
        'cache-control': 'no-cache',
      };
      if (crossOriginIsolated) {
        // Lets a page use SharedArrayBuffer (transformers.js' multi-threaded wasm).
        headers['cross-origin-opener-policy'] = 'same-origin';
        headers['cross-origin-embedder-policy'] = 'require-corp';
      }
      res.writeHead(200, headers);
      createReadStream(target).pipe(res);
    } catch {
      res.writeHead(404).end('not found');
    }
  });
  return new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(port, '127.0.0.1', () => {
      ok({ url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() });
    });
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--port');
  const port = i > 0 ? Number(process.argv[i + 1]) : 8000;
  const root = resolve(fileURLToPath(import.meta.url), '..', '..');
  const { url } = await startServer(root, port);
  console.log(`serving ${root} at ${url}/ — the demo is ${url}/web/`);
}
