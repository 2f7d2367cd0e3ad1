// Runs an ONNX file exported by `pismo models export --format onnx` in headless Chromium with
// onnxruntime-web, as the browser snippet of docs/OPERATIONS.md does, and prints the probabilities.
//
//   node tests/browser/onnx.mjs MODEL.onnx INPUTS.f32
//
// INPUTS.f32 holds little-endian float32 rows of 784 (the graph's input). A local HTTP server
// on 127.0.0.1 serves a blank page, onnxruntime-web's files (`ort.min.js` and its WebAssembly)
// from node_modules, the model and the inputs; the page loads `ort.min.js` with a script tag
// and runs each row as `new ort.Tensor('float32', pixels, [1, 784])`. Stdout is one JSON line:
// {"probabilities": [[10 numbers] per row]}. tests/e2e/onnx.rs runs it.

import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const [modelPath, inputsPath] = process.argv.slice(2);
if (!modelPath || !inputsPath) {
  console.error('usage: node onnx.mjs MODEL.onnx INPUTS.f32');
  process.exit(2);
}
const here = path.dirname(fileURLToPath(import.meta.url));
const ortDist = path.join(here, 'node_modules', 'onnxruntime-web', 'dist');

const TYPES = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm' };
const files = { '/model.onnx': modelPath, '/inputs.f32': inputsPath };
const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost').pathname;
  if (url === '/') {
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end('<!doctype html><title>onnx</title><script src="/ort/ort.min.js"></script>');
    return;
  }
  const file = url.startsWith('/ort/') ? path.join(ortDist, path.basename(url)) : files[url];
  if (!file || !fs.existsSync(file)) {
    res.writeHead(404);
    res.end();
    return;
  }
  const type = TYPES[path.extname(file)] ?? 'application/octet-stream';
  res.writeHead(200, { 'Content-Type': type });
  fs.createReadStream(file).pipe(res);
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const base = `http://127.0.0.1:${server.address().port}`;

const errors = [];
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
try {
  const page = await browser.newPage();
  page.on('pageerror', (e) => errors.push(`uncaught: ${e.message}`));
  await page.goto(`${base}/`);
  const probabilities = await page.evaluate(async () => {
    const session = await ort.InferenceSession.create('/model.onnx');
    const all = new Float32Array(await (await fetch('/inputs.f32')).arrayBuffer());
    const out = [];
    for (let i = 0; i < all.length / 784; i++) {
      const pixels = all.slice(i * 784, (i + 1) * 784);
      const input = new ort.Tensor('float32', pixels, [1, 784]);
      const { probabilities } = await session.run({ input });
      out.push(Array.from(probabilities.data));
    }
    return out;
  });
  if (errors.length > 0) throw new Error(errors.join('\n'));
  console.log(JSON.stringify({ probabilities }));
} finally {
  await browser.close();
  server.close();
}
