// Draws the styles set (pismo_digits::synth::style_set) on the page of `pismo serve` in
// headless Chromium with the mouse, one drawing after another, and writes what the page
// answered for each.
//
//   node tests/browser/styles.mjs URL STYLES_JSON OUT_JSON SCREENSHOT_DIR
//
// STYLES_JSON is a list of {style, glyph, digit, strokes: [[[x, y], …], …]} in the
// coordinates of a 280 px canvas; OUT_JSON gets one {style, digit, label, sure} per drawing:
// the highlighted (most likely) digit once the last prediction request had finished, and
// whether the page showed it as sure (a lone digit) or not ("9 or 4?").

import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const [url, stylesFile, outFile, shots] = process.argv.slice(2);
if (!url || !stylesFile || !outFile || !shots) {
  console.error('usage: node styles.mjs URL STYLES_JSON OUT_JSON SCREENSHOT_DIR');
  process.exit(2);
}
fs.mkdirSync(shots, { recursive: true });
const samples = JSON.parse(fs.readFileSync(stylesFile, 'utf8'));

/** The points of `stroke` a mouse would report: its ends, every corner (a turn of more than
 *  20 degrees) and otherwise a point every 8 px of the 280 px canvas. */
function thinned(stroke) {
  const out = [stroke[0]];
  for (let k = 1; k < stroke.length - 1; k += 1) {
    const [a, b, c] = [out[out.length - 1], stroke[k], stroke[k + 1]];
    const turn = Math.abs(Math.atan2(c[1] - b[1], c[0] - b[0]) - Math.atan2(b[1] - a[1], b[0] - a[0]));
    const angle = Math.min(turn, 2 * Math.PI - turn);
    if (Math.hypot(b[0] - a[0], b[1] - a[1]) >= 8 || angle > Math.PI / 9) out.push(b);
  }
  if (stroke.length > 1) out.push(stroke[stroke.length - 1]);
  return out;
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  let inFlight = 0;
  const isPredict = (r) => r.url().includes('/api/predict');
  page.on('request', (r) => { if (isPredict(r)) inFlight += 1; });
  page.on('requestfinished', (r) => { if (isPredict(r)) inFlight -= 1; });
  page.on('requestfailed', (r) => { if (isPredict(r)) inFlight -= 1; });

  await page.goto(`${url}/#draw`);
  await page.waitForSelector('#canvas');
  const box = await page.locator('#canvas').boundingBox();
  if (!box || box.width < 100) throw new Error(`the canvas is not visible (${JSON.stringify(box)})`);
  const at = ([x, y]) => [box.x + (x * box.width) / 280, box.y + (y * box.height) / 280];

  const results = [];
  let shown = new Set();
  for (const [i, s] of samples.entries()) {
    await page.click('#clear');
    for (const stroke of s.strokes) {
      await page.mouse.move(...at(stroke[0]));
      await page.mouse.down();
      for (const p of thinned(stroke).slice(1)) await page.mouse.move(...at(p));
      await page.mouse.up();
    }
    // The answer to the whole drawing: no prediction request out for two checks in a row.
    let quiet = 0;
    for (let t = 0; t < 200 && quiet < 2; t += 1) {
      await page.waitForTimeout(40);
      quiet = inFlight === 0 ? quiet + 1 : 0;
    }
    // The model's most likely digit is the highlighted bar (the label may read "9 or 4?").
    const shownLabel = (await page.textContent('#label')).trim();
    const winner = await page.$eval('#bars .bar.win', (b) => b.dataset.digit).catch(() => null);
    results.push({
      style: s.style,
      glyph: s.glyph,
      digit: s.digit,
      label: winner === null ? null : Number(winner),
      sure: /^\d$/.test(shownLabel),
    });
    if (!shown.has(s.style)) {
      shown.add(s.style);
      await page.screenshot({ path: path.join(shots, `style-${s.style.replace(/\W+/g, '-')}.png`) });
    }
    if ((i + 1) % 50 === 0) console.log(`styles.mjs: ${i + 1}/${samples.length} drawn`);
  }
  if (errors.length) throw new Error(`errors on the page: ${errors.join('; ')}`);
  fs.writeFileSync(outFile, JSON.stringify(results));
  console.log(`styles.mjs: ${results.length} drawings done`);
} finally {
  await browser.close();
}
