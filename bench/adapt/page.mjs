// The writer-by-writer simulation of "Learn from my corrections" through the real page
// (bench/README.md, "Adapting to a hand"; issue 27, item 5): a UNIPEN dev writer's digits
// are drawn with mouse events on the Draw canvas of `pismo serve` in headless Chromium,
// corrected with "Wrong? This is a …", learned from with "Learn from my N corrections", and
// the writer's remaining digits are read by the page with the base and the adapted model.
//
//   node bench/adapt/page.mjs URL WRITER OUT.json [--first 50] [--cap 100] [--shots DIR]
//       [--datasets DIR] [--paced]
//     one writer (e.g. `syn/tds-dig21`) against the server at URL, whose drawn folder must
//     be empty and whose `default` is the base; writes what happened to OUT.json
//   node bench/adapt/page.mjs --summary ALL.json ONE.json...
//     the table of the writers' files, and all of them in ALL.json
//
// bench/adapt/page starts a fresh server per writer and runs both. Per writer, as
// bench/src/bin/adapt.rs does in process:
//   1. the first min(--first, n/2) digits are drawn with `default`; each answer wrong or
//      "not sure" is corrected with the right digit (POST /api/drawn, as a person does);
//   2. "Learn from my N corrections" is clicked and its result card read; Draw switches to
//      the adapted model;
//   3. each remaining digit (at most --cap) is drawn once and read twice: with the model
//      Draw has, then with the other one picked in Draw's model picker (the page predicts
//      the same drawing again), so every digit is read by the base and the adapted model.
// A digit is placed as core/src/host/unipen.rs `draw` places it (same height as the
// in-process simulation, centred, the page's 18 px pen at 280 px) and drawn in CSS pixels
// of the canvas element, with mouse events (DevTools `Input.dispatchMouseEvent`, what
// Playwright's page.mouse sends), one per pen point. An answer is read once the page has settled: no prediction in
// flight and none waiting, so it is the answer to the whole drawing.

import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

// playwright-core is installed for the browser tests (`npm ci` in tests/browser).
const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const browserDir = path.join(root, 'tests', 'browser');
let chromium;
try {
  ({ chromium } = createRequire(path.join(browserDir, 'package.json'))('playwright-core'));
} catch {
  console.error(`page.mjs: error: no playwright-core in ${browserDir}/node_modules: run \`npm ci\` there`);
  process.exit(1);
}

const SIDE = 280; // the canvas the model's input is defined on (devsets::CANVAS_SIDE)
const PEN = 18; // the page's pen at 280 px (BRUSH_AT_280, devsets::THICK_PEN)
const LEARN_TIMEOUT = 300_000;

function fail(message) {
  console.error(`page.mjs: error: ${message}`);
  process.exit(1);
}

function log(message) {
  console.log(`page.mjs: ${message}`);
}

// ---------------------------------------------------------------------------------------
// Arguments

function parseArgs(argv) {
  const o = { first: 50, cap: 100, shots: null, datasets: path.join(root, 'datasets'), paced: false, positional: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) fail(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--first') o.first = Number(value());
    else if (a === '--cap') o.cap = Number(value());
    else if (a === '--shots') o.shots = value();
    else if (a === '--datasets') o.datasets = value();
    else if (a === '--paced') o.paced = true;
    else if (a === '--summary') o.summary = value();
    else if (a.startsWith('--')) fail(`unknown flag ${a}`);
    else o.positional.push(a);
  }
  if (!(o.first > 0) || !(o.cap > 0)) fail('--first and --cap need a positive number');
  return o;
}

// ---------------------------------------------------------------------------------------
// UNIPEN digits, placed as core/src/host/unipen.rs places them

function loadWriter(datasets, writer) {
  const file = path.join(datasets, 'unipen', 'digits.jsonl.gz');
  let text;
  try {
    text = zlib.gunzipSync(fs.readFileSync(file)).toString('utf8');
  } catch (e) {
    fail(`cannot read ${file}: ${e.message}`);
  }
  const digits = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const d = JSON.parse(line);
    if (d.writer === writer) digits.push(d);
  }
  if (!digits.length) fail(`no writer ${writer} in ${file}`);
  if (digits[0].split !== 'dev') fail(`${writer} is a training writer: pick a dev writer (never trained on)`);
  return digits;
}

// SplitMix64 and hash3 of core/src/rng.rs, for the same heights as bench/src/bin/adapt.rs.
const M64 = (1n << 64n) - 1n;
const GOLDEN = 0x9e3779b97f4a7c15n;
function mix64(z) {
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M64;
  return z ^ (z >> 31n);
}
function hash3(a, b, c) {
  return mix64((mix64(a ^ mix64((b + GOLDEN) & M64)) + c * GOLDEN) & M64);
}

/** The height bench/src/bin/adapt.rs draws digit `i` of `writer` at: 150 to 230 px. */
function heightOf(writer, i) {
  const first = mix64((hash3(0x00513e11n, BigInt(i), BigInt(Buffer.byteLength(writer))) + GOLDEN) & M64);
  return 150 + 80 * Number(first >> 40n) / 2 ** 24;
}

/** The strokes of `strokes` on the 280 px canvas: `height` tall (narrower than the canvas
 *  less the pen and a margin), centred (unipen::draw). */
function place(strokes, height) {
  const pts = strokes.flat();
  const lo = [Math.min(...pts.map((p) => p[0])), Math.min(...pts.map((p) => p[1]))];
  const hi = [Math.max(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[1]))];
  const w = Math.max(hi[0] - lo[0], 1);
  const h = Math.max(hi[1] - lo[1], 1);
  const room = SIDE - PEN - 8;
  const scale = Math.min(height / h, room / w);
  const dx = (SIDE - w * scale) / 2 - lo[0] * scale;
  const dy = (SIDE - h * scale) / 2 - lo[1] * scale;
  return strokes.filter((s) => s.length).map((s) => s.map(([x, y]) => [x * scale + dx, y * scale + dy]));
}

// ---------------------------------------------------------------------------------------
// The page

/** Draws `strokes` (280 px canvas coordinates) with the mouse, one move per pen point, as
 *  DevTools input events. A stroke's moves are sent at once, as a fast mouse delivers them
 *  (the page draws the ones that arrive within a frame as one path, from its coalesced
 *  events, so which are drawn together, and the anti-aliased edges, vary from run to run);
 *  `paced` waits for each move to be handled before the next: the same pixels every run,
 *  about 12 times slower on this machine, the drawing differing only at the edges. */
async function drawStrokes(page, cdp, strokes, paced) {
  const box = await page.locator('#canvas').boundingBox();
  if (!box || box.width < 100) throw new Error(`the canvas is not visible (${JSON.stringify(box)})`);
  const mouse = (type, [x, y], buttons, extra = {}) =>
    cdp.send('Input.dispatchMouseEvent', {
      type,
      x: box.x + (x * box.width) / SIDE,
      y: box.y + (y * box.height) / SIDE,
      button: 'left',
      buttons,
      ...extra,
    });
  for (const stroke of strokes) {
    await mouse('mouseMoved', stroke[0], 0, { button: 'none' });
    await mouse('mousePressed', stroke[0], 1, { clickCount: 1 });
    if (paced) for (const p of stroke.slice(1)) await mouse('mouseMoved', p, 1);
    else await Promise.all(stroke.slice(1).map((p) => mouse('mouseMoved', p, 1)));
    await mouse('mouseReleased', stroke[stroke.length - 1], 0, { clickCount: 1 });
  }
}

/** Waits for the page's answer to the whole drawing (its own bookkeeping: pen up, no
 *  prediction in flight and none waiting) and returns it as shown. */
async function answer(page) {
  await page.waitForFunction(
    () =>
      draw.pointer === null && !draw.inFlight && !draw.pending &&
      (document.querySelector('#label').classList.contains('has-value') || !document.querySelector('#draw-error').hidden),
    null,
    { timeout: 30_000 },
  );
  const shown = await page.evaluate(() => ({
    label: document.querySelector('#label').textContent,
    unsure: document.querySelector('#label').classList.contains('unsure'),
    status: document.querySelector('#draw-status').textContent,
    model: document.querySelector('#result-model').textContent,
    error: document.querySelector('#draw-error').hidden ? null : document.querySelector('#draw-error').textContent,
  }));
  if (shown.error) throw new Error(`the page shows an error: ${shown.error}`);
  return shown;
}

/** Whether the page's answer is `label`, and sure. */
function right(shown, label) {
  return !shown.unsure && shown.label === String(label);
}

/** Whether the page's most likely digit is `label`, sure or not (the first one a "not
 *  sure" answer names): how bench/src/bin/adapt.rs scores the remaining digits. */
function top(read, label) {
  return read.answer.charAt(0) === String(label);
}

async function clear(page) {
  await page.click('#clear');
  await page.waitForFunction(() => document.querySelector('#label').textContent === '–');
}

async function pick(page, ref) {
  await page.selectOption('#model', ref);
}

async function correctAs(page, digit, kept) {
  await page.click(`[data-testid="correct-${digit}"]`);
  const want = `Saved as a ${digit} — ${kept} correction${kept === 1 ? '' : 's'} kept.`;
  try {
    await page.waitForFunction((w) => document.querySelector('#correct-status').textContent === w, want, { timeout: 20_000 });
  } catch {
    throw new Error(`expected ${JSON.stringify(want)}, the page says ${JSON.stringify(await page.textContent('#correct-status'))}`);
  }
}

async function runWriter(url, writer, out, o) {
  const digits = loadWriter(o.datasets, writer);
  const first = Math.min(o.first, Math.floor(digits.length / 2));
  const rest = digits.slice(first, first + o.cap);
  const shots = o.shots ? path.join(o.shots, writer.replace(/\//g, '_')) : null;
  if (shots) fs.mkdirSync(shots, { recursive: true });
  const placed = (i) => place(digits[i].strokes, heightOf(writer, i));

  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1 })).newPage();
  page.setDefaultTimeout(30_000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const started = Date.now();
  try {
    await page.goto(url);
    await page.waitForFunction(() => document.querySelector('#model option'));
    await pick(page, 'default');
    const cdp = await page.context().newCDPSession(page);
    const canvasSide = await page.evaluate(() => document.querySelector('#canvas').clientWidth);

    // 1. The first digits, read by the base; the wrong and unsure ones corrected.
    let base = null;
    const firstDigits = [];
    let corrections = 0;
    for (let i = 0; i < first; i++) {
      await clear(page);
      await drawStrokes(page, cdp, placed(i), o.paced);
      const shown = await answer(page);
      base ??= shown.model;
      if (shown.model !== base) throw new Error(`digit ${i} was read by ${shown.model}, not ${base}`);
      if (shots && i < 3) await page.locator('#canvas').screenshot({ path: path.join(shots, `first-${i}-is-${digits[i].label}.png`) });
      const ok = right(shown, digits[i].label);
      firstDigits.push({ label: digits[i].label, answer: shown.label, sure: !shown.unsure, right: ok });
      if (!ok) {
        corrections += 1;
        await correctAs(page, digits[i].label, corrections);
      }
    }
    log(`${writer}: ${corrections} correction${corrections === 1 ? '' : 's'} in the first ${first} digits (read by ${base})`);

    // 2. Learn.
    let learned = null;
    let adapted = null;
    if (corrections > 0) {
      const button = await page.textContent('#learn-btn');
      const want = `Learn from my ${corrections} correction${corrections === 1 ? '' : 's'}`;
      if (button !== want) throw new Error(`the learn button reads ${JSON.stringify(button)}, not ${JSON.stringify(want)}`);
      const t0 = Date.now();
      await page.click('#learn-btn');
      await page.waitForSelector('#learn-result:not([hidden])', { timeout: LEARN_TIMEOUT });
      learned = await page.evaluate(() => ({
        title: document.querySelector('#learn-result .result-title').textContent,
        good: document.querySelector('#learn-result').classList.contains('good'),
        figures: [...document.querySelectorAll('#learn-result .learn-figures li')].map((li) => li.textContent),
        note: (document.querySelector('#learn-result p') || {}).textContent || '',
      }));
      learned.wall_seconds = (Date.now() - t0) / 1000;
      if (learned.good) {
        adapted = learned.title.replace(/^Learned: /, '');
        await page.waitForFunction((m) => document.querySelector('#model').value === m, adapted);
      }
      log(`${writer}: ${learned.title}; ${learned.figures.join('; ')} (${learned.wall_seconds.toFixed(1)} s)`);
      if (shots) await page.screenshot({ path: path.join(shots, 'learned.png'), fullPage: true });
    }

    // 3. The remaining digits, each drawn once and read by both models.
    const models = adapted ? [adapted, 'default'] : ['default'];
    let current = adapted || 'default';
    const remaining = [];
    for (let j = 0; j < rest.length; j++) {
      const i = first + j;
      await clear(page);
      await drawStrokes(page, cdp, placed(i), o.paced);
      const reads = {};
      for (const m of [current, ...models.filter((x) => x !== current)]) {
        if (m !== current) {
          await pick(page, m);
          current = m;
        }
        const shown = await answer(page);
        const expect = m === 'default' ? base : m;
        if (shown.model !== expect) throw new Error(`digit ${i} was read by ${shown.model}, not ${expect}`);
        reads[m === 'default' ? 'base' : 'adapted'] = { answer: shown.label, sure: !shown.unsure, right: right(shown, digits[i].label) };
      }
      reads.adapted ??= reads.base;
      if (shots && j < 3) await page.locator('#canvas').screenshot({ path: path.join(shots, `rest-${j}-is-${digits[i].label}.png`) });
      remaining.push({ label: digits[i].label, ...reads });
    }
    if (errors.length) throw new Error(`the page threw: ${errors.join('; ')}`);

    const result = {
      writer,
      digits: digits.length,
      first,
      first_right: firstDigits.filter((d) => d.right).length,
      corrections,
      base,
      adapted,
      learned,
      remaining_total: digits.length - first,
      scored: remaining.length,
      before: remaining.filter((d) => d.base.right).length,
      after: remaining.filter((d) => d.adapted.right).length,
      before_top: remaining.filter((d) => top(d.base, d.label)).length,
      after_top: remaining.filter((d) => top(d.adapted, d.label)).length,
      canvas_css_px: canvasSide,
      paced: o.paced,
      seconds: (Date.now() - started) / 1000,
      first_digits: firstDigits,
      remaining_digits: remaining,
    };
    fs.writeFileSync(out, JSON.stringify(result, null, 2));
    log(`${writer}: remaining digits sure and right ${result.before}/${result.scored} -> ${result.after}/${result.scored}, most likely right ${result.before_top} -> ${result.after_top} (${result.seconds.toFixed(0)} s)`);
  } catch (e) {
    if (shots) await page.screenshot({ path: path.join(shots, 'failure.png'), fullPage: true }).catch(() => {});
    throw e;
  } finally {
    await browser.close();
  }
}

// ---------------------------------------------------------------------------------------
// The table

function summary(allFile, files) {
  const rows = files.map((f) => JSON.parse(fs.readFileSync(f, 'utf8')));
  // Files written before the top-1 counts were kept: count them from the digits.
  for (const r of rows) {
    r.before_top ??= r.remaining_digits.filter((d) => top(d.base, d.label)).length;
    r.after_top ??= r.remaining_digits.filter((d) => top(d.adapted, d.label)).length;
  }
  const pct = (a, n) => (n ? ((100 * a) / n).toFixed(1) : '-');
  const widths = [22, 7, 6, 5, 12, 17, 17];
  const line = (cells) => cells.map((c, k) => (k === 0 ? String(c).padEnd(widths[k]) : String(c).padStart(widths[k]))).join(' ');
  const both = (r, a, b) => `${pct(r[a], r.scored)} → ${pct(r[b], r.scored)}`;
  console.log('remaining digits right, base → adapted: "sure" counts a sure right answer (what the writer sees);');
  console.log('"top-1" counts the most likely digit, sure or not (as bench/src/bin/adapt.rs scores them)');
  console.log(line(['writer', 'digits', 'first', 'corr', 'scored/rest', 'sure %', 'top-1 %']));
  for (const r of rows) {
    console.log(line([r.writer, r.digits, r.first, r.corrections, `${r.scored}/${r.remaining_total}`, both(r, 'before', 'after'), both(r, 'before_top', 'after_top')]));
  }
  const total = {};
  for (const k of ['digits', 'first', 'corrections', 'scored', 'before', 'after', 'before_top', 'after_top']) {
    total[k] = rows.reduce((s, r) => s + r[k], 0);
  }
  console.log(line(['total', total.digits, total.first, total.corrections, total.scored, both(total, 'before', 'after'), both(total, 'before_top', 'after_top')]));
  fs.writeFileSync(allFile, JSON.stringify({
    date: new Date().toISOString(),
    writers: rows.map(({ first_digits: _f, remaining_digits: _r, ...r }) => r),
    total,
  }, null, 2));
}

const o = parseArgs(process.argv.slice(2));
if (o.summary) {
  if (!o.positional.length) fail('--summary needs the writers\' result files');
  summary(o.summary, o.positional);
} else {
  const [url, writer, out] = o.positional;
  if (!url || !writer || !out) {
    console.error('usage: node bench/adapt/page.mjs URL WRITER OUT.json [--first 50] [--cap 100] [--shots DIR] [--datasets DIR] [--paced]\n       node bench/adapt/page.mjs --summary ALL.json ONE.json...');
    process.exit(2);
  }
  try {
    await runWriter(url, writer, out, o);
  } catch (e) {
    fail(`${writer}: ${e.message}`);
  }
}
