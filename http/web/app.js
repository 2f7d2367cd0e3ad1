// The page of `pismo serve`: four views (Draw, Experiments, Train, Tune) over the JSON API of
// pismo-http. Plain ES2020, no dependencies. Every view is rebuilt from the API when it is
// shown; the page itself only remembers the chosen model (localStorage) and the token
// (sessionStorage).
'use strict';

// ---------------------------------------------------------------------------------------
// Small helpers

const $ = (selector, root = document) => root.querySelector(selector);

/** An element: `h('p', {class: 'x', onclick: f}, 'text', child)`. */
function h(tag, props, ...children) {
  return build(document.createElement(tag), props, children);
}

/** An SVG element, like `h`. */
function svg(tag, props, ...children) {
  return build(document.createElementNS('http://www.w3.org/2000/svg', tag), props, children);
}

/** Replaces the children of `node` (skipping null and false, like `h`). */
function fill(node, ...children) {
  node.replaceChildren();
  return build(node, null, children);
}

function build(node, props, children) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value == null || value === false) continue;
    if (key === 'class') node.setAttribute('class', value);
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const pct = (x, digits = 2) => (x == null ? '–' : `${(x * 100).toFixed(digits)} %`);
const kib = (bytes) => (bytes == null ? '–' : `${Math.round(bytes / 1024)} KiB`);
const num = (x, digits = 4) => (x == null ? '–' : Number(x.toFixed(digits)).toString());

function localTime(ms) {
  if (ms == null) return '–';
  const d = new Date(ms);
  const two = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}`;
}

function duration(ms) {
  if (ms == null || ms < 0) return '–';
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(Math.round(s % 60)).padStart(2, '0')} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

// ---------------------------------------------------------------------------------------
// The API

/** The token for requests that train or change the registry: `?token=` of the page URL,
 *  kept for the tab in sessionStorage and taken out of the address bar. */
const token = (() => {
  const url = new URL(location.href);
  const given = url.searchParams.get('token');
  if (given) {
    sessionStorage.setItem('pismo-token', given);
    url.searchParams.delete('token');
    history.replaceState(null, '', url.pathname + url.search + url.hash);
  }
  return sessionStorage.getItem('pismo-token') || '';
})();

class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body || {};
  }
}

function errorMessage(status, body) {
  const text = body && typeof body === 'object' && body.error ? body.error : `HTTP ${status}`;
  if (status === 401) return `${text} — open the page through the URL \`pismo serve\` printed, which ends in ?token=…`;
  if (status === 403) return `${text} — the page's token (from ?token=) is not the server's: open the URL \`pismo serve\` printed.`;
  return text;
}

/** A request to the API: JSON in (`json`), JSON out (or text with `text: true`); a non-2xx
 *  answer throws an ApiError with the server's `error` message. */
async function api(path, { method = 'GET', json, text = false } = {}) {
  const headers = {};
  let body;
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  }
  if (method !== 'GET' && token) headers.Authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(path, { method, headers, body });
  } catch (err) {
    throw new ApiError(0, `Cannot reach the pismo server (${err.message}).`);
  }
  const raw = await res.text();
  let data = raw;
  if (!text || !res.ok) {
    try {
      data = raw ? JSON.parse(raw) : null;
    } catch {
      data = { error: raw.trim() || `HTTP ${res.status}` };
    }
  }
  if (!res.ok) throw new ApiError(res.status, errorMessage(res.status, data), data);
  return data;
}

const runUrl = (id) => `/api/runs/${encodeURIComponent(id)}`;

// ---------------------------------------------------------------------------------------
// Shared state: the registry, refreshed after every change

const registry = { models: [], aliases: {} };

async function loadModels() {
  const models = await api('/api/models');
  registry.models = models;
  registry.aliases = {};
  for (const m of models) for (const alias of m.aliases || []) registry.aliases[alias] = m.id;
  fillModelPicker();
  fillAliasPicker();
  renderModelsTable();
}

function modelById(id) {
  return registry.models.find((m) => m.id === id);
}

function modelSummary(m) {
  if (!m.meta) return `${m.id} · unreadable`;
  return `${m.id} · ${m.meta.kind} · ${pct(m.meta.metrics && m.meta.metrics.test_accuracy)} · ${kib(m.size)}`;
}

// ---------------------------------------------------------------------------------------
// Router

const views = {
  draw: { show: showDraw },
  experiments: { show: showExperiments },
  train: { show: showTrain },
  tune: { show: showTune },
};

function route() {
  // `#model=REF` (a link to a model, e.g. from Experiments): Draw with that model.
  const link = /^#model=(.+)$/.exec(location.hash);
  if (link) {
    draw.linked = decodeURIComponent(link[1]);
    history.replaceState(null, '', `${location.pathname}${location.search}#draw`);
  }
  const wanted = location.hash.replace(/^#/, '');
  const name = views[wanted] ? wanted : 'draw';
  for (const section of document.querySelectorAll('.view')) section.hidden = section.dataset.view !== name;
  for (const link of document.querySelectorAll('[data-route]')) {
    if (link.dataset.route === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  views[name].show();
}

// ---------------------------------------------------------------------------------------
// Draw

const BRUSH_AT_280 = 18;

const draw = {
  canvas: null,
  ctx: null,
  side: 0, // CSS pixels
  pointer: null, // id of the pointer drawing now
  last: null,
  hasInk: false,
  generation: 0, // bumped by Clear, so late answers of an old drawing are ignored
  inFlight: false,
  pending: false,
  strokes: 0, // bumped by every change of the drawing, so a correction keeps one drawing once
  saving: false, // a correction is being sent
  corrected: -1, // the drawing (`strokes`) already kept as a correction: one per drawing
  answered: -1, // the drawing the correction status speaks about (kept until it changes)
  linked: null, // the model of a `#model=REF` link, until the picker is filled
};

function setupDraw() {
  draw.canvas = $('#canvas');
  draw.ctx = draw.canvas.getContext('2d');
  new ResizeObserver(sizeCanvas).observe(draw.canvas);
  matchMedia(`(resolution: ${devicePixelRatio}dppx)`).addEventListener('change', sizeCanvas);
  sizeCanvas();

  const c = draw.canvas;
  c.addEventListener('pointerdown', penDown);
  c.addEventListener('pointermove', penMove);
  c.addEventListener('pointerup', penUp);
  c.addEventListener('pointercancel', penUp);
  $('#clear').addEventListener('click', clearDrawing);
  document.addEventListener('keydown', (e) => {
    if ($('#view-draw').hidden || e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.target.closest('input, select, textarea')) return;
    if (e.key === 'Escape' || e.key === 'c' || e.key === 'C') clearDrawing();
  });
  $('#model').addEventListener('change', () => {
    $('#model-missing').hidden = true;
    localStorage.setItem('pismo-model', $('#model').value);
    predict();
    renderSwitch();
  });
  setupCorrect();
  setupLearn();
  renderBars(null);
  renderInput28(null);
}

/** Sizes the backing store to the CSS size times devicePixelRatio, keeping the drawing. */
function sizeCanvas() {
  const c = draw.canvas;
  const side = c.clientWidth;
  if (!side) return;
  const px = Math.round(side * devicePixelRatio);
  if (c.width === px && draw.side === side) return;
  const old = draw.hasInk ? copyOf(c) : null;
  c.width = px;
  c.height = px;
  draw.side = side;
  const ctx = draw.ctx;
  ctx.setTransform(px / side, 0, 0, px / side, 0, 0);
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, side, side);
  if (old) ctx.drawImage(old, 0, 0, side, side);
  ctx.lineCap = 'round';
  ctx.lineJoin = 'round';
  ctx.strokeStyle = '#000';
  ctx.fillStyle = '#000';
  ctx.lineWidth = (BRUSH_AT_280 * side) / 280;
}

function copyOf(canvas) {
  const copy = h('canvas', { width: canvas.width, height: canvas.height });
  copy.getContext('2d').drawImage(canvas, 0, 0);
  return copy;
}

function pointAt(e) {
  const r = draw.canvas.getBoundingClientRect();
  return { x: ((e.clientX - r.left) * draw.side) / r.width, y: ((e.clientY - r.top) * draw.side) / r.height };
}

function penDown(e) {
  if (e.pointerType === 'mouse' && e.button !== 0) return;
  if (draw.pointer !== null) return;
  e.preventDefault();
  draw.canvas.setPointerCapture(e.pointerId);
  draw.pointer = e.pointerId;
  draw.last = pointAt(e);
  const ctx = draw.ctx;
  ctx.beginPath();
  ctx.arc(draw.last.x, draw.last.y, ctx.lineWidth / 2, 0, 2 * Math.PI);
  ctx.fill();
  inked();
}

function penMove(e) {
  if (e.pointerId !== draw.pointer) return;
  const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [];
  const ctx = draw.ctx;
  ctx.beginPath();
  ctx.moveTo(draw.last.x, draw.last.y);
  for (const ev of events.length ? events : [e]) {
    draw.last = pointAt(ev);
    ctx.lineTo(draw.last.x, draw.last.y);
  }
  ctx.stroke();
  inked();
}

function penUp(e) {
  if (e.pointerId !== draw.pointer) return;
  draw.pointer = null;
  predict();
}

function inked() {
  draw.strokes += 1;
  if (!draw.hasInk) {
    draw.hasInk = true;
    $('#canvas-hint').hidden = true;
  }
  predict();
}

function clearDrawing() {
  const ctx = draw.ctx;
  ctx.save();
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, draw.side, draw.side);
  ctx.restore();
  draw.hasInk = false;
  draw.generation += 1;
  draw.pending = false;
  $('#canvas-hint').hidden = false;
  $('#label').textContent = '–';
  $('#label').classList.remove('has-value');
  $('#draw-status').textContent = 'Draw a digit to see what the model thinks.';
  $('#draw-error').hidden = true;
  $('#latency').textContent = '–';
  $('#label').classList.remove('unsure');
  hideCorrect();
  renderBars(null);
  renderInput28(null);
}

/** Sends the drawing, at most one request in flight and one waiting: while a request is
 *  out, further strokes only mark the drawing as pending, and it is sent once the answer is
 *  in, so the answer always catches up with the latest stroke. */
async function predict() {
  if (!draw.hasInk || !draw.canvas.clientWidth) return;
  if (draw.inFlight) {
    draw.pending = true;
    return;
  }
  draw.inFlight = true;
  const generation = draw.generation;
  try {
    const png = await new Promise((resolve) => draw.canvas.toBlob(resolve, 'image/png'));
    const model = $('#model').value;
    const started = performance.now();
    const res = await fetch(`/api/predict${model ? `?model=${encodeURIComponent(model)}` : ''}`, {
      method: 'POST',
      headers: { 'Content-Type': 'image/png' },
      body: png,
    });
    const body = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
    const roundTrip = performance.now() - started;
    if (generation !== draw.generation) return;
    if (!res.ok) {
      showDrawError(body.error || `HTTP ${res.status}`);
      return;
    }
    const timing = /dur=([\d.]+)/.exec(res.headers.get('Server-Timing') || '');
    showPrediction(body, roundTrip, timing ? Number(timing[1]) : null);
  } catch (err) {
    if (generation === draw.generation) showDrawError(`Cannot reach the pismo server (${err.message}).`);
  } finally {
    draw.inFlight = false;
    if (draw.pending) {
      draw.pending = false;
      predict();
    }
  }
}

function showDrawError(message) {
  const box = $('#draw-error');
  box.textContent = message;
  box.hidden = false;
}

function showPrediction(p, roundTrip, serverMs) {
  $('#draw-error').hidden = true;
  const label = $('#label');
  label.classList.add('has-value');
  // The server's verdict (pismo_core::verdict): sure of one digit, or torn between two.
  const [first, second] = p.candidates || [p.label];
  const sure = p.sure !== false || second == null;
  label.classList.toggle('unsure', !sure);
  if (sure) {
    label.textContent = p.label;
    $('#draw-status').textContent = `Sure: ${pct(p.probabilities[p.label], 1)} for ${p.label}.`;
  } else {
    label.textContent = `${first} or ${second}?`;
    $('#draw-status').textContent =
      `Not sure: ${first} or ${second}? ${pct(p.probabilities[first], 1)} for ${first}, ${pct(p.probabilities[second], 1)} for ${second}.`;
  }
  $('#result-model').textContent = p.model;
  $('#latency').textContent =
    `${roundTrip.toFixed(0)} ms round trip` + (serverMs != null ? ` · ${serverMs.toFixed(2)} ms on the server` : '');
  renderBars(p.probabilities, p.label, sure ? null : second);
  renderInput28(p.input);
  showCorrect();
}

// ---------------------------------------------------------------------------------------
// "Wrong? This is a …": keep the drawing with the right digit (POST /api/drawn)

function setupCorrect() {
  fill($('#correct-digits'), [...Array(10).keys()].map((d) =>
    h('button', {
      type: 'button',
      class: 'digit-btn',
      dataset: { digit: d, testid: `correct-${d}` },
      'aria-label': `It is a ${d}: keep this drawing as a ${d}`,
      onclick: () => correctAs(d),
    }, d)));
}

/** Shows the digit buttons for the drawing now on the canvas (enabled unless it is kept). */
function showCorrect() {
  $('#correct').hidden = false;
  const kept = draw.corrected === draw.strokes;
  for (const b of $('#correct-digits').children) b.disabled = draw.saving || kept;
  if (draw.answered !== draw.strokes && !draw.saving) {
    for (const b of $('#correct-digits').children) b.classList.remove('picked');
    const status = $('#correct-status');
    status.textContent = 'Pick the digit you meant: pismo keeps the drawing to learn from.';
    status.className = 'small correct-status muted';
  }
}

function hideCorrect() {
  $('#correct').hidden = true;
}

/** Largest side of the drawing sent as a correction: at 1024x1024 the JSON body is about
 *  4 MB, half the server's limit (a 280 px canvas reaches it only past devicePixelRatio 3.6,
 *  e.g. a zoomed-in phone). Up to it the server gets the very pixels the prediction used. */
const MAX_CORRECTION_SIDE = 1024;

/** The canvas as grey bytes, row after row (the canvas is opaque: red is the grey level). */
function canvasGrey() {
  let c = draw.canvas;
  if (c.width > MAX_CORRECTION_SIDE) {
    const small = h('canvas', { width: MAX_CORRECTION_SIDE, height: MAX_CORRECTION_SIDE });
    small.getContext('2d').drawImage(c, 0, 0, MAX_CORRECTION_SIDE, MAX_CORRECTION_SIDE);
    c = small;
  }
  const rgba = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const data = new Array(c.width * c.height);
  for (let i = 0; i < data.length; i++) data[i] = rgba[i * 4];
  return { width: c.width, height: c.height, data };
}

async function correctAs(digit) {
  if (draw.saving || !draw.hasInk) return;
  const strokes = draw.strokes;
  const generation = draw.generation;
  const buttons = [...$('#correct-digits').children];
  const status = $('#correct-status');
  draw.saving = true;
  draw.answered = strokes;
  buttons.forEach((b) => { b.disabled = true; b.classList.toggle('picked', Number(b.dataset.digit) === digit); });
  status.textContent = `Saving as a ${digit}…`;
  status.className = 'small correct-status muted';
  try {
    const saved = await api('/api/drawn', { method: 'POST', json: { label: digit, image: canvasGrey() } });
    if (generation !== draw.generation) return;
    draw.corrected = strokes;
    const n = saved.total;
    status.textContent = `Saved as a ${saved.sample.label} — ${n} correction${n === 1 ? '' : 's'} kept.`;
    status.className = 'small correct-status ok';
    learn.corrections = n;
    renderLearn();
  } catch (err) {
    if (generation !== draw.generation) return;
    status.textContent = `Not saved: ${err.message}`;
    status.className = 'small correct-status bad';
    buttons.forEach((b) => b.classList.remove('picked'));
  } finally {
    draw.saving = false;
    if (draw.corrected !== draw.strokes) {
      for (const b of buttons) b.disabled = false;
    }
  }
}

// ---------------------------------------------------------------------------------------
// MNIST missing: learning, training and tuning need it. Each of their panels has an offer
// to fetch it ([data-fetch-offer]); they all show the one fetch the server runs
// (GET /api/data, POST /api/data/fetch), and reload their panel once MNIST is there.
const dataFetch = { info: null, polling: null };

/** Shows the offers after `data` (the `data` member of GET /api/adapt|train|tune) says
 *  whether MNIST is there; asks the server how a fetch is going when it is not. */
async function updateFetchOffers(data) {
  if (!data || data.available !== false) {
    if (!dataFetch.polling) renderFetchOffers({ available: true });
    return;
  }
  try {
    dataFetch.info = await api('/api/data');
  } catch (err) {
    return; // an older server without /api/data: the panel's own notice says what to run
  }
  renderFetchOffers(dataFetch.info);
  if (dataFetch.info.fetch.running) pollFetch();
}

function renderFetchOffers(info) {
  for (const host of document.querySelectorAll('[data-fetch-offer]')) {
    host.hidden = info.available;
    if (info.available) continue;
    const f = info.fetch;
    const line = f.lines.length ? f.lines[f.lines.length - 1] : '';
    fill(host,
      h('p', { class: 'small' }, 'MNIST (11 MB, the digits everyone else wrote) is not on this server yet.'),
      f.possible
        ? h('button', { type: 'button', class: 'btn', 'data-testid': 'fetch-mnist', disabled: f.running || (!token && info.token_required), onclick: startFetch },
          f.running ? 'Fetching MNIST…' : 'Fetch MNIST')
        : h('p', { class: 'small' }, 'Run `pismo data fetch` where the server runs, then reload this page.'),
      h('p', { class: `small${f.error ? ' bad' : ' muted'}`, 'data-testid': 'fetch-status', role: 'status', 'aria-live': 'polite' },
        f.error || (f.running ? line || 'Starting…' : '')));
  }
}

async function startFetch() {
  try {
    const answer = await api('/api/data/fetch', { method: 'POST' });
    if (answer.available) return fetchEnded();
  } catch (err) {
    if (err.status !== 409) {
      for (const s of document.querySelectorAll('[data-testid="fetch-status"]')) {
        s.textContent = `Not started: ${err.message}`;
        s.className = 'small bad';
      }
      return;
    }
  }
  pollFetch();
}

/** Asks how the fetch goes every second until it ends. */
function pollFetch() {
  if (dataFetch.polling) return;
  dataFetch.polling = setInterval(async () => {
    let info;
    try {
      info = await api('/api/data');
    } catch {
      return;
    }
    dataFetch.info = info;
    renderFetchOffers(info);
    if (!info.fetch.running) {
      clearInterval(dataFetch.polling);
      dataFetch.polling = null;
      if (info.available) fetchEnded();
    }
  }, 1000);
}

/** MNIST is there: every panel that needed it looks again. */
function fetchEnded() {
  renderFetchOffers({ available: true });
  loadLearnInfo();
  if (train.info) loadTrainInfo();
  if (tune.info) loadTuneInfo();
}

// "Learn from my N corrections": adapt the model to the corrections (POST /api/adapt),
// follow it on the run's events, show before → after, switch Draw to the adapted model and
// offer the way back.

const learn = {
  info: null, // GET /api/adapt
  corrections: 0,
  watching: null, // {id, source, lastId, done}
  switched: null, // {previous, adapted}: Draw moved from `previous` to `adapted`
  problem: '', // why it cannot learn, as last shown
};

function setupLearn() {
  $('#learn-btn').addEventListener('click', startLearning);
}

async function loadLearnInfo() {
  try {
    learn.info = await api('/api/adapt');
  } catch (err) {
    learn.info = null;
    if (err.status !== 404) learnStatus(`Cannot tell whether this server can learn: ${err.message}`, true);
    return;
  }
  learn.corrections = learn.info.corrections.total;
  if (!learn.watching && learn.info.active.length) watchAdapt(learn.info.active[0]);
  renderLearn();
  if (learn.corrections > 0) updateFetchOffers(learn.info.data);
}

function learnStatus(text, bad = false) {
  const status = $('#learn-status');
  status.textContent = text;
  status.className = `small learn-status${bad ? ' bad' : ''}`;
}

/** Shows the learn button once there are corrections, with their count; disabled while an
 *  adaptation runs, or with the reason it cannot run. */
function renderLearn() {
  const n = learn.corrections;
  const running = learn.watching && !learn.watching.done;
  const box = $('#learn');
  box.hidden = n === 0 && !running && $('#learn-result').hidden;
  const button = $('#learn-btn');
  button.textContent = running ? 'Learning…' : `Learn from my ${n} correction${n === 1 ? '' : 's'}`;
  const info = learn.info;
  let problem = '';
  if (info && info.data && info.data.available === false) {
    problem = "Learning needs MNIST: it rehearses everyone else's digits, and checks that none is forgotten.";
  } else if (info && info.token_required && !token) {
    problem = 'This server needs a token to learn: open the page with the URL `pismo serve` printed (it ends in ?token=…).';
  }
  button.disabled = running || n === 0 || Boolean(problem);
  if (problem && !running) learnStatus(problem, true);
  // A problem solved since (MNIST fetched) is no longer shown.
  else if (!problem && learn.problem && $('#learn-status').textContent === learn.problem) learnStatus('');
  learn.problem = problem;
}

/** The model to adapt when Draw uses `ref`: `ref` itself, unless it is a model adapted
 *  before (named …-mine, with a parent): then its base again, since every adaptation learns
 *  from all the corrections kept (adapting the adapted model would learn them twice). */
function learnBase(ref) {
  const m = modelById(registry.aliases[ref] || ref);
  const suffix = (learn.info && learn.info.name_suffix) || '-mine';
  if (m && m.meta && m.meta.parent && m.name.endsWith(suffix) && modelById(m.meta.parent)) return m.meta.parent;
  return ref;
}

async function startLearning() {
  const previous = $('#model').value;
  const button = $('#learn-btn');
  button.disabled = true;
  $('#learn-result').hidden = true;
  const n = learn.corrections;
  learnStatus(`Starting to learn from ${n} correction${n === 1 ? '' : 's'}…`);
  try {
    const answer = await api('/api/adapt', { method: 'POST', json: { model: learnBase(previous) } });
    watchAdapt(answer.run_id, previous);
  } catch (err) {
    if (err.status === 409 && err.body.active && err.body.active.length) {
      watchAdapt(err.body.active[0]);
      return;
    }
    learnStatus(`Not started: ${err.message}`, true);
    if (err.status === 503) loadLearnInfo();
    renderLearn();
  }
}

/** Follows adaptation `id` (started from Draw's model `previous`, if this page started it). */
function watchAdapt(id, previous = null) {
  if (learn.watching) learn.watching.source.close();
  const w = { id, previous, source: new EventSource(`${runUrl(id)}/events`), lastId: -1, done: false };
  learn.watching = w;
  $('#learn').hidden = false;
  $('#learn-result').hidden = true;
  setLearnProgress(0);
  learnStatus('Learning: loading the model and the corrections…');
  renderLearn();
  const on = (name, handle) => w.source.addEventListener(name, (e) => {
    // After a reconnect the stream replays from the start: skip what was seen.
    if (e.lastEventId !== '') {
      const seq = Number(e.lastEventId);
      if (seq <= w.lastId) return;
      w.lastId = seq;
    }
    if (learn.watching === w) handle(JSON.parse(e.data));
  });
  on('progress', (d) => {
    setLearnProgress(d.total ? d.done / d.total : 0);
    learnStatus(`Learning: step ${d.done} of ${d.total}`);
  });
  on('done', (d) => learnDone(w, d));
  w.source.addEventListener('error', () => {
    if (!w.done && w.source.readyState === EventSource.CLOSED) {
      learnStatus('The event stream closed before learning ended: reload the page to see how it ended.', true);
    }
  });
}

function setLearnProgress(fraction) {
  const bar = $('#learn-progress');
  const value = Math.round(Math.min(1, Math.max(0, fraction)) * 100);
  bar.hidden = false;
  bar.setAttribute('aria-valuenow', value);
  bar.querySelector('.progress-fill').style.width = `${value}%`;
}

/** One "before → after" line. */
function beforeAfter(what, before, after) {
  return h('li', {}, `${what}: `, h('strong', {}, before), h('span', { class: 'arrow', 'aria-label': 'then' }, '→'), h('strong', {}, after));
}

/** Shows how learning ended. The new model is listed and picked in Draw before the result
 *  appears, so what the result says and what Draw uses never disagree. */
async function learnDone(w, d) {
  w.done = true;
  w.source.close();
  if (d.status === 'finished') await loadModels().catch(() => {});
  $('#learn-progress').hidden = true;
  $('#learn-hint').hidden = true;
  learnStatus('');
  const card = $('#learn-result');
  card.className = 'result-banner';
  if (d.status === 'finished' && d.adapted) {
    const a = d.adapted;
    const cv = a.cross_validation;
    card.classList.add('good');
    fill(card,
      h('strong', { class: 'result-title' }, `Learned: ${a.model}`),
      h('ul', { class: 'learn-figures', 'data-testid': 'learn-figures' },
        cv.folds > 0
          ? beforeAfter(`Your ${cv.n} corrections, held out`, `${cv.before}/${cv.n}`, `${cv.after}/${cv.n}`)
          : h('li', {}, 'Your corrections: too few to hold any out (2 or more are needed).'),
        beforeAfter('MNIST validation', pct(a.base_val_accuracy), pct(a.val_accuracy))),
      h('p', { class: 'small muted' },
        `Held out: each correction is read by a model that learned from the others only. Adapted from ${a.base} in ${a.seconds.toFixed(1)} s.`),
      h('div', { class: 'row', id: 'learn-switch' }));
    // Draw moves to the adapted model (this page's adaptation only, not one it just watched).
    if (w.previous != null && learn.watching === w) {
      learn.switched = { previous: w.previous, adapted: a.model };
      pickModel(a.model);
    }
    renderSwitch();
    card.hidden = false;
    renderLearn();
    return;
  }
  if (d.status === 'finished') {
    // A run replayed from its record (the server restarted): no figures but its log's.
    card.classList.add('good');
    fill(card, h('strong', { class: 'result-title' }, `Learned: ${d.model}`),
      h('p', { class: 'small' }, 'Its figures are in its run\'s log (Experiments).'));
    card.hidden = false;
    renderLearn();
    return;
  }
  card.classList.add('bad');
  if (d.forgets) {
    fill(card,
      h('strong', { class: 'result-title' }, 'Not learned: the adapted model forgot too much'),
      h('ul', { class: 'learn-figures' },
        beforeAfter('MNIST validation', pct(d.forgets.before), pct(d.forgets.after))),
      h('p', { class: 'small' },
        `More than ${(d.forgets.max * 100).toFixed(1)} points lost, so it was not kept and Draw keeps its model. Check the digits you corrected: a wrong label teaches the wrong digit.`));
  } else {
    fill(card, h('strong', { class: 'result-title' }, 'Learning failed'), h('p', { class: 'small' }, d.error || 'no reason given'));
  }
  card.hidden = false;
  renderLearn();
}

/** Selects `id` in Draw's model picker (remembered) and predicts the drawing with it. */
function pickModel(id) {
  const select = $('#model');
  select.value = id;
  if (select.value !== id) return;
  $('#model-missing').hidden = true;
  localStorage.setItem('pismo-model', id);
  predict();
}

/** A model of the picker as the person knows it: an alias with the version it names. */
function modelName(ref) {
  return registry.aliases[ref] ? `${ref} (${registry.aliases[ref]})` : ref;
}

/** The one-click way back to the model Draw had before learning (and forth again). */
function renderSwitch() {
  const host = $('#learn-switch');
  const s = learn.switched;
  if (!host || !s) return;
  const current = $('#model').value;
  const back = current === s.adapted;
  fill(host,
    back
      ? h('button', { type: 'button', class: 'btn', 'data-testid': 'learn-back', onclick: () => { pickModel(s.previous); renderSwitch(); } },
        `Back to ${modelName(s.previous)}`)
      : h('button', { type: 'button', class: 'btn', 'data-testid': 'learn-use', onclick: () => { pickModel(s.adapted); renderSwitch(); } },
        `Use ${s.adapted} again`),
    h('span', { class: 'small muted', 'data-testid': 'learn-using' }, `Drawing with ${modelName(current)}.`));
}

function renderBars(probabilities, winner, runnerUp = null) {
  const host = $('#bars');
  if (!host.children.length) {
    for (let d = 0; d < 10; d++) {
      host.append(
        h('div', { class: 'bar', role: 'listitem', dataset: { digit: d } },
          h('span', { class: 'bar-digit' }, d),
          h('span', { class: 'bar-track' }, h('span', { class: 'bar-fill' })),
          h('span', { class: 'bar-pct' }, '–')),
      );
    }
  }
  [...host.children].forEach((row, d) => {
    const p = probabilities ? probabilities[d] : 0;
    row.classList.toggle('win', probabilities != null && d === winner);
    row.classList.toggle('maybe', probabilities != null && d === runnerUp);
    row.querySelector('.bar-fill').style.transform = `scaleX(${p})`;
    row.querySelector('.bar-pct').textContent = probabilities ? pct(p, 1) : '–';
    row.setAttribute('aria-label', probabilities ? `${d}: ${pct(p, 1)}` : `${d}: no prediction`);
  });
}

/** The 28x28 numbers the model saw (0..1, light ink on black as in MNIST). */
function renderInput28(input) {
  const c = $('#input28');
  const ctx = c.getContext('2d');
  const img = ctx.createImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    const v = input ? Math.round(Math.min(1, Math.max(0, input[i])) * 255) : 0;
    img.data.set([v, v, v, 255], i * 4);
  }
  ctx.putImageData(img, 0, 0);
  c.classList.toggle('empty', !input);
}

/** Draw's model picker, from the registry. The model asked for (a `#model=REF` link, else
 *  the one in use, else the one picked on the last visit) stays selected; one that is not
 *  in the registry any more is not replaced silently: the page says which it was, that it
 *  was deleted (or does not exist), and which model it shows instead. */
function fillModelPicker() {
  const select = $('#model');
  const remembered = localStorage.getItem('pismo-model');
  const asked = draw.linked || select.value || remembered;
  const fromLink = draw.linked != null;
  draw.linked = null;
  const aliases = Object.keys(registry.aliases).sort();
  fill(select,
    aliases.length
      ? h('optgroup', { label: 'Aliases' }, aliases.map((a) => h('option', { value: a }, `${a} → ${registry.aliases[a]}`)))
      : null,
    h('optgroup', { label: 'Versions' },
      registry.models.map((m) => h('option', { value: m.id, disabled: !m.meta }, modelSummary(m)))),
  );
  const usable = [...select.options].filter((o) => !o.disabled).map((o) => o.value);
  const found = asked && resolveRef(asked, usable);
  select.value = found || (usable.includes('default') ? 'default' : usable[0] || '');
  if (asked && !found) {
    if (asked === remembered) localStorage.removeItem('pismo-model');
    showMissingModel(asked, select.value, fromLink);
  } else if (fromLink) {
    $('#model-missing').hidden = true;
    localStorage.setItem('pismo-model', select.value);
  }
}

/** The picker's value for the model reference `ref` (NAME@VERSION, an alias, NAME@ALIAS or
 *  NAME for its newest version), if the registry has it. */
function resolveRef(ref, usable) {
  if (usable.includes(ref)) return ref;
  const [name, tag] = ref.split('@');
  if (tag != null && registry.aliases[tag] && registry.aliases[tag].split('@')[0] === name) return registry.aliases[tag];
  if (tag == null) {
    const newest = registry.models.filter((m) => m.meta && m.id.split('@')[0] === name)
      .sort((a, b) => Number(b.id.split('@')[1]) - Number(a.id.split('@')[1]))[0];
    if (newest) return newest.id;
  }
  return null;
}

/** Says plainly that the model asked for is gone (deleted, as the registry's list of
 *  deleted versions says, or never there) and which one Draw shows instead. */
async function showMissingModel(ref, shown, fromLink) {
  const deleted = await api('/api/models/deleted').catch(() => null);
  const what = fromLink ? `The linked model ${ref}` : `The model you used last, ${ref},`;
  const why = deleted == null ? 'is not in the registry (deleted, or it never existed)'
    : deleted.includes(ref) || (!ref.includes('@') && deleted.some((id) => id.startsWith(`${ref}@`))) ? 'was deleted'
      : 'does not exist';
  const instead = shown ? `Draw uses ${modelName(shown)} instead.` : 'There is no other model to use.';
  const note = $('#model-missing');
  note.textContent = `${what} ${why}. ${instead}`;
  note.hidden = false;
}

/** Selects model `id` in Draw, opens Draw and predicts the current drawing with it. */
function useModel(id) {
  $('#model-missing').hidden = true;
  $('#model').value = id;
  localStorage.setItem('pismo-model', id);
  location.hash = '#draw';
  predict();
}

function showDraw() {
  sizeCanvas();
  predict();
  loadModels().catch((err) => showDrawError(err.message));
  loadLearnInfo();
}

// ---------------------------------------------------------------------------------------
// Charts: one function for every chart of the page

const PALETTE = ['var(--c1)', 'var(--c2)', 'var(--c3)', 'var(--c4)', 'var(--c5)', 'var(--c6)'];
const CHART_HEIGHT = 230;
const chartResize = new ResizeObserver((entries) => entries.forEach((e) => (e.target._render || renderChart)(e.target)));

/**
 * Draws a line chart into `host` and redraws it when the host's width changes.
 * spec: {title, yFormat(v, precise), xMax (epochs planned), series: [{label, color, dashed,
 * points: [[x, y]]}], legend (optional, [{label, color, dashed}], else one entry per series)}
 */
function lineChart(host, spec) {
  host._chart = spec;
  host._width = 0;
  renderChart(host);
  chartResize.observe(host);
}

/** Ticks at a round step (1, 2 or 5 times a power of ten), the first at or below lo, the
 *  last at or above hi. */
function niceTicks(lo, hi, count) {
  const raw = (hi - lo) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const f = raw / power;
  const step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * power;
  const first = Math.floor(lo / step);
  const last = Math.ceil(hi / step);
  const ticks = [];
  for (let i = first; i <= last; i++) ticks.push(Number((i * step).toPrecision(12)));
  return ticks;
}

/** Epoch ticks: 1, then every 1, 2, 5, 10, 20, 50… epochs, at most about `count` of them. */
function epochTicks(xMax, count) {
  let step = 1;
  for (let i = 1; xMax / step > count; i++) step = [1, 2, 5][i % 3] * 10 ** Math.floor(i / 3);
  if (step <= 2) return Array.from({ length: Math.floor((xMax - 1) / step) + 1 }, (_, i) => 1 + i * step);
  const ticks = [1];
  for (let x = step; x <= xMax; x += step) if (x - 1 >= step / 2) ticks.push(x);
  return ticks;
}

function renderChart(host) {
  const spec = host._chart;
  const width = host.clientWidth;
  if (!spec || !width || width === host._width) return;
  host._width = width;
  const m = { left: 52, right: 14, top: 12, bottom: 34 };
  const W = width;
  const H = CHART_HEIGHT;
  const plotW = W - m.left - m.right;
  const plotH = H - m.top - m.bottom;

  const all = spec.series.flatMap((s) => s.points);
  const xMax = Math.max(2, spec.xMax || 0, ...all.map((p) => p[0]));
  let yLo = Math.min(...all.map((p) => p[1]));
  let yHi = Math.max(...all.map((p) => p[1]));
  if (!all.length) [yLo, yHi] = [0, 1];
  if (yHi - yLo < 1e-9) [yLo, yHi] = [yLo - 0.5 * Math.abs(yLo || 1) * 0.1, yHi + 0.5 * Math.abs(yHi || 1) * 0.1];
  const yTicks = niceTicks(yLo, yHi, 4);
  const [y0, y1] = [yTicks[0], yTicks[yTicks.length - 1]];
  const xTicks = epochTicks(xMax, Math.max(2, Math.floor(plotW / 50)));

  const sx = (x) => m.left + ((x - 1) / (xMax - 1)) * plotW;
  const sy = (y) => m.top + (1 - (y - y0) / (y1 - y0)) * plotH;

  const root = svg('svg', { class: 'chart-svg', width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': spec.title });
  const grid = svg('g', { class: 'grid' });
  const axis = svg('g', { class: 'axis' });
  for (const y of yTicks) {
    grid.append(svg('line', { x1: m.left, x2: W - m.right, y1: sy(y), y2: sy(y) }));
    axis.append(svg('text', { x: m.left - 8, y: sy(y), 'text-anchor': 'end', 'dominant-baseline': 'middle' }, spec.yFormat(y)));
  }
  for (const x of xTicks) {
    grid.append(svg('line', { x1: sx(x), x2: sx(x), y1: m.top, y2: H - m.bottom }));
    axis.append(svg('text', { x: sx(x), y: H - m.bottom + 16, 'text-anchor': 'middle' }, x));
  }
  axis.append(svg('line', { class: 'axis-line', x1: m.left, x2: W - m.right, y1: H - m.bottom, y2: H - m.bottom }));
  axis.append(svg('text', { class: 'axis-title', x: m.left + plotW / 2, y: H - 2, 'text-anchor': 'middle' }, 'epoch'));
  root.append(grid, axis);

  for (const s of spec.series) {
    if (!s.points.length) continue;
    const d = s.points.map((p, i) => `${i ? 'L' : 'M'}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join('');
    root.append(svg('path', { d, class: 'series', stroke: s.color, 'stroke-dasharray': s.dashed ? '6 4' : null }));
    if (s.points.length <= 40) {
      const dots = svg('g', { fill: s.color });
      for (const p of s.points) dots.append(svg('circle', { cx: sx(p[0]), cy: sy(p[1]), r: 3 }));
      root.append(dots);
    }
  }
  if (!all.length) {
    root.append(svg('text', { class: 'chart-empty', x: m.left + plotW / 2, y: m.top + plotH / 2, 'text-anchor': 'middle' }, 'No epochs yet'));
  }

  const guide = svg('line', { class: 'guide', y1: m.top, y2: H - m.bottom, visibility: 'hidden' });
  const hover = svg('rect', { class: 'hover', x: m.left, y: m.top, width: plotW, height: plotH });
  root.append(guide, hover);
  hover.addEventListener('pointermove', (e) => {
    const r = root.getBoundingClientRect();
    const x = Math.round(1 + ((e.clientX - r.left - m.left) / plotW) * (xMax - 1));
    const rows = spec.series
      .map((s) => [s, s.points.find((p) => p[0] === x)])
      .filter(([, p]) => p);
    if (!rows.length) return hideTooltip(guide);
    guide.setAttribute('x1', sx(x));
    guide.setAttribute('x2', sx(x));
    guide.setAttribute('visibility', 'visible');
    showTooltip(e.clientX, e.clientY, [
      h('div', { class: 'tip-title' }, `epoch ${x}`),
      rows.map(([s, p]) =>
        h('div', {}, h('span', { class: 'swatch', style: `background:${s.color}` }), `${s.label}: `, h('b', {}, spec.yFormat(p[1], true)))),
    ]);
  });
  hover.addEventListener('pointerleave', () => hideTooltip(guide));

  const legend = h('div', { class: 'legend' },
    (spec.legend || spec.series).map((s) => h('span', { class: 'legend-item' },
      h('span', { class: `legend-line${s.dashed ? ' dashed' : ''}`, style: `color:${s.color}` }), s.label)));
  fill(host, h('div', { class: 'chart-title' }, spec.title), root, legend);
}

function showTooltip(x, y, content) {
  const tip = $('#tooltip');
  fill(tip, content);
  tip.hidden = false;
  const w = tip.offsetWidth;
  const left = x + 14 + w > innerWidth ? x - 14 - w : x + 14;
  tip.style.left = `${Math.max(4, left)}px`;
  tip.style.top = `${y + 14}px`;
}

function hideTooltip(guide) {
  $('#tooltip').hidden = true;
  guide.setAttribute('visibility', 'hidden');
}

const lossFormat = (v, precise) => (precise ? v.toFixed(4) : Number(v.toPrecision(3)).toString());
const accFormat = (v, precise) => (precise ? pct(v) : `${Number((v * 100).toPrecision(3))} %`);

/** The per-epoch values of metric `name` as [[epoch, value]]. */
function metricPoints(metrics, name) {
  return (metrics || []).filter((r) => r.name === name).map((r) => [r.step, r.value]).sort((a, b) => a[0] - b[0]);
}

/** The epoch whose weights the run kept (lowest validation loss) and its metrics: the
 *  server's `best` (`GET /api/runs` and `GET /api/runs/{id}` both give it). */
function keptEpoch(run) {
  return run.best || {};
}

function lastValue(metrics, name) {
  const points = metricPoints(metrics, name);
  return points.length ? points[points.length - 1][1] : null;
}

/** The loss and accuracy charts of one run (training dashed, validation solid). */
function runCharts(lossHost, accHost, metricsOf, xMax) {
  const series = (train, val) => [
    { label: 'training', color: PALETTE[0], dashed: true, points: metricsOf(train) },
    { label: 'validation', color: PALETTE[1], points: metricsOf(val) },
  ];
  lineChart(lossHost, { title: 'Loss', yFormat: lossFormat, xMax, series: series('train_loss', 'val_loss') });
  lineChart(accHost, { title: 'Accuracy', yFormat: accFormat, xMax, series: series('train_accuracy', 'val_accuracy') });
}

// ---------------------------------------------------------------------------------------
// Experiments

const PARAMS = [
  ['hidden_size', 'hidden size'],
  ['initial_lr', 'initial lr'],
  ['decay', 'lr decay'],
  ['momentum', 'momentum'],
  ['dropout_rate', 'dropout rate'],
  ['reg_lambda', 'L2 λ'],
  ['batch_size', 'batch size'],
  ['epochs', 'epochs'],
  ['patience', 'patience'],
  ['seed', 'seed'],
  ['val_size', 'validation size'],
  ['augment', 'augment'],
];

const RUNS_REFRESH_MS = 2000;

const experiments = { runs: [], selected: new Set(), openRun: null, refresh: null };

function showExperiments() {
  loadRuns();
  loadModels().catch((err) => showModelsError(err.message));
}

async function loadRuns() {
  try {
    experiments.runs = await api('/api/runs');
  } catch (err) {
    $('#runs-empty').textContent = err.message;
    $('#runs-empty').hidden = false;
    return;
  }
  const ids = new Set(experiments.runs.map((r) => r.run_id));
  for (const id of experiments.selected) if (!ids.has(id)) experiments.selected.delete(id);
  renderRunsTable();
}

function statusBadge(status) {
  return h('span', { class: `badge status-${status}` }, status);
}

function modelLink(id) {
  if (!id) return '–';
  return h('a', { href: `#model=${encodeURIComponent(id)}`, class: 'model-link', title: `Use ${id} in Draw`, onclick: (e) => { e.preventDefault(); useModel(id); } }, id);
}

/** ` · trial 4`: the trial of a `pismo tune` study a run is (nothing for other runs). */
function studyTrial(run) {
  const tags = run.tags || {};
  if (tags.trial == null) return null;
  return h('span', { class: 'muted small', title: `study ${tags.study}, trial ${tags.trial}` }, ` · trial ${tags.trial}`);
}

function renderRunsTable() {
  const body = $('#runs tbody');
  const now = Date.now();
  fill(body, ...experiments.runs.map((run) => {
    const p = run.params || {};
    const s = run.summary || {};
    const kept = run.best || s;
    const checkbox = h('input', {
      type: 'checkbox',
      'aria-label': `Select ${run.name} for comparison`,
      checked: experiments.selected.has(run.run_id),
      onchange: (e) => {
        if (e.target.checked) experiments.selected.add(run.run_id);
        else experiments.selected.delete(run.run_id);
        updateCompareButton();
      },
    });
    const tr = h('tr', { class: experiments.openRun === run.run_id ? 'open' : null, dataset: { run: run.run_id } },
      h('td', {}, checkbox),
      h('td', {}, h('button', { type: 'button', class: 'linklike', onclick: () => showRunDetail(run.run_id) }, run.name),
        studyTrial(run)),
      h('td', {}, statusBadge(run.status)),
      h('td', { class: 'nowrap' }, localTime(run.start_unix_ms)),
      h('td', { class: 'nowrap' }, duration((run.end_unix_ms || now) - run.start_unix_ms)),
      h('td', { class: 'num' }, p.hidden_size),
      h('td', { class: 'num' }, p.initial_lr),
      h('td', { class: 'num' }, p.dropout_rate),
      h('td', { class: 'num' }, p.reg_lambda),
      h('td', { class: 'num' }, p.batch_size),
      h('td', { class: 'num' }, p.epochs),
      h('td', { class: 'num' }, pct(kept.val_accuracy)),
      h('td', { class: 'num' }, pct(s.test_accuracy)),
      h('td', {}, modelLink(run.model)));
    tr.addEventListener('click', (e) => {
      if (!e.target.closest('button, a, input')) showRunDetail(run.run_id);
    });
    return tr;
  }));
  $('#runs-empty').textContent = '';
  $('#runs-empty').append('No runs yet — start one in ', h('a', { href: '#train' }, 'Train'), '.');
  $('#runs-empty').hidden = experiments.runs.length > 0;
  updateCompareButton();
  // While a run is running and the table is on screen, keep its status and duration fresh.
  clearTimeout(experiments.refresh);
  if (experiments.runs.some((r) => r.status === 'running')) {
    experiments.refresh = setTimeout(() => {
      if (!$('#view-experiments').hidden) loadRuns();
    }, RUNS_REFRESH_MS);
  }
}

function updateCompareButton() {
  const n = experiments.selected.size;
  const button = $('#compare-btn');
  button.disabled = n < 2;
  button.textContent = n ? `Compare selected (${n})` : 'Compare selected';
}

function closeButton(host) {
  return h('button', { type: 'button', class: 'btn ghost', 'aria-label': 'Close', onclick: () => { host.hidden = true; if (host.id === 'run-detail') { experiments.openRun = null; renderRunsTable(); } } }, '×');
}

function paramList(params) {
  return h('dl', { class: 'kv' }, PARAMS.map(([key, label]) =>
    h('div', {}, h('dt', {}, label), h('dd', {}, String(params[key] ?? '–')))));
}

function scrollBehavior() {
  return matchMedia('(prefers-reduced-motion: reduce)').matches ? 'auto' : 'smooth';
}

async function showRunDetail(id) {
  experiments.openRun = id;
  renderRunsTable();
  const host = $('#run-detail');
  host.hidden = false;
  fill(host, h('p', { class: 'muted' }, 'Loading the run…'));
  let run;
  let log;
  try {
    [run, log] = await Promise.all([
      api(runUrl(id)),
      api(`${runUrl(id)}/log`, { text: true }).catch((err) => `(no log: ${err.message})`),
    ]);
  } catch (err) {
    fill(host, closeButton(host), h('p', { class: 'error-box' }, err.message));
    return;
  }
  if (experiments.openRun !== id) return;
  const metrics = run.metrics || [];
  const kept = keptEpoch(run);
  const final = [
    ['epochs run', metricPoints(metrics, 'val_loss').length],
    ['kept epoch (lowest val loss)', kept.epoch ?? '–'],
    ['val loss (kept)', num(kept.val_loss)],
    ['val accuracy (kept)', pct(kept.val_accuracy)],
    ['test accuracy', pct(lastValue(metrics, 'test_accuracy'))],
    ['train loss (last epoch)', num(lastValue(metrics, 'train_loss'))],
    ['train accuracy (last epoch)', pct(lastValue(metrics, 'train_accuracy'))],
    ['duration', duration((run.end_unix_ms || Date.now()) - run.start_unix_ms)],
  ];
  const lossHost = h('div', { class: 'chart', 'data-testid': 'detail-chart-loss' });
  const accHost = h('div', { class: 'chart', 'data-testid': 'detail-chart-acc' });
  fill(host,
    h('div', { class: 'row spread' },
      h('h2', {}, run.name, ' ', statusBadge(run.status)),
      closeButton(host)),
    h('p', { class: 'muted small' }, `run ${run.run_id} · started ${localTime(run.start_unix_ms)}`,
      run.model ? [' · model ', modelLink(run.model)] : ''),
    run.error ? h('p', { class: 'error-box' }, run.error) : null,
    h('div', { class: 'detail-grid' },
      h('div', {}, h('h3', {}, 'Parameters'), paramList(run.params || {})),
      h('div', {}, h('h3', {}, 'Final metrics'),
        h('dl', { class: 'kv' }, final.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v)))))),
    h('div', { class: 'chart-pair' }, lossHost, accHost),
    h('h3', {}, 'Log'),
    h('pre', { class: 'log', tabindex: 0, 'data-testid': 'detail-log' }, log || '(empty)'),
  );
  runCharts(lossHost, accHost, (name) => metricPoints(metrics, name), run.params && run.params.epochs);
  host.scrollIntoView({ behavior: scrollBehavior(), block: 'start' });
}

async function showCompare() {
  const host = $('#compare');
  const ids = [...experiments.selected];
  host.hidden = false;
  fill(host, h('p', { class: 'muted' }, 'Loading the runs…'));
  let runs;
  try {
    runs = await Promise.all(ids.map((id) => api(runUrl(id))));
  } catch (err) {
    fill(host, closeButton(host), h('p', { class: 'error-box' }, err.message));
    return;
  }
  const color = (i) => PALETTE[i % PALETTE.length];
  const label = (run) => `${run.name} · ${run.run_id.slice(-6)}`;
  const overlay = (train, val) => runs.flatMap((run, i) => [
    { label: `${label(run)} val`, color: color(i), points: metricPoints(run.metrics, val) },
    { label: `${label(run)} train`, color: color(i), dashed: true, points: metricPoints(run.metrics, train) },
  ]);
  const xMax = Math.max(...runs.map((r) => (r.params && r.params.epochs) || 0));
  const legend = [
    ...runs.map((run, i) => ({ label: label(run), color: color(i) })),
    { label: 'validation', color: 'var(--muted)' },
    { label: 'training', color: 'var(--muted)', dashed: true },
  ];
  const lossHost = h('div', { class: 'chart', 'data-testid': 'compare-chart-loss' });
  const accHost = h('div', { class: 'chart', 'data-testid': 'compare-chart-acc' });

  const rows = [
    ...PARAMS.map(([key, name]) => [name, runs.map((r) => String((r.params || {})[key] ?? '–'))]),
    ['kept epoch', runs.map((r) => String(keptEpoch(r).epoch ?? '–'))],
    ['val accuracy (kept)', runs.map((r) => pct(keptEpoch(r).val_accuracy))],
    ['test accuracy', runs.map((r) => pct(lastValue(r.metrics, 'test_accuracy')))],
    ['model', runs.map((r) => r.model || '–')],
  ];
  const table = h('table', { class: 'table compact', 'data-testid': 'compare-params' },
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'parameter'),
      runs.map((run, i) => h('th', { scope: 'col' }, h('span', { class: 'swatch', style: `background:${color(i)}` }), label(run))))),
    h('tbody', {}, rows.map(([name, values]) =>
      h('tr', { class: new Set(values).size > 1 ? 'differs' : null },
        h('th', { scope: 'row' }, name), values.map((v) => h('td', {}, v))))));

  fill(host,
    h('div', { class: 'row spread' }, h('h2', {}, `Comparing ${runs.length} runs`), closeButton(host)),
    h('p', { class: 'muted small' }, 'One colour per run; solid lines are validation, dashed lines training. Highlighted rows differ between the runs.'),
    h('div', { class: 'chart-pair' }, lossHost, accHost),
    h('div', { class: 'table-wrap' }, table),
  );
  lineChart(lossHost, { title: 'Loss', yFormat: lossFormat, xMax, legend, series: overlay('train_loss', 'val_loss') });
  lineChart(accHost, { title: 'Accuracy', yFormat: accFormat, xMax, legend, series: overlay('train_accuracy', 'val_accuracy') });
  host.scrollIntoView({ behavior: scrollBehavior(), block: 'start' });
}

function renderModelsTable() {
  const body = $('#models-table tbody');
  fill(body, ...registry.models.map((m) => {
    const meta = m.meta || {};
    const metrics = meta.metrics || {};
    const chips = (m.aliases || []).map((alias) => h('span', { class: 'chip' }, alias,
      h('button', { type: 'button', class: 'chip-x', 'aria-label': `Remove alias ${alias}`, title: `Remove alias ${alias}`, onclick: () => removeAlias(alias) }, '×')));
    const runLink = meta.run_id
      ? h('a', { href: '#experiments', onclick: (e) => { e.preventDefault(); showRunDetail(meta.run_id); } }, meta.run_id)
      : '–';
    return h('tr', { dataset: { model: m.id } },
      h('td', {}, m.meta ? modelLink(m.id) : h('span', { title: m.error }, m.id, ' ', h('span', { class: 'badge status-failed' }, 'unreadable'))),
      h('td', {}, meta.kind || '–'),
      h('td', { class: 'num' }, meta.hidden_size ?? '–'),
      h('td', { class: 'num' }, pct(metrics.test_accuracy)),
      h('td', { class: 'num' }, pct(metrics.val_accuracy)),
      h('td', { class: 'num nowrap' }, kib(m.size)),
      h('td', { class: 'nowrap' }, meta.created_unix ? localTime(meta.created_unix * 1000) : '–'),
      h('td', {}, h('div', { class: 'chips' }, chips)),
      h('td', { class: 'mono small nowrap' }, runLink));
  }));
  $('#models-empty').hidden = registry.models.length > 0;
}

function showModelsError(message) {
  const box = $('#models-empty');
  box.textContent = message;
  box.hidden = false;
}

function fillAliasPicker() {
  const select = $('#alias-model');
  const current = select.value;
  fill(select, ...registry.models.filter((m) => m.meta).map((m) => h('option', { value: m.id }, m.id)));
  if (current && modelById(current)) select.value = current;
}

function aliasMessage(text, ok) {
  const msg = $('#alias-msg');
  msg.textContent = text;
  msg.className = `small ${ok ? 'ok-text' : 'error-text'}`;
}

async function setAlias(e) {
  e.preventDefault();
  const alias = $('#alias-name').value.trim();
  const model = $('#alias-model').value;
  if (!alias) return aliasMessage('Give the alias a name.', false);
  try {
    await api(`/api/aliases/${encodeURIComponent(alias)}`, { method: 'PUT', json: { model } });
    aliasMessage(`${alias} → ${model}`, true);
    $('#alias-name').value = '';
    await loadModels();
  } catch (err) {
    aliasMessage(err.message, false);
  }
}

async function removeAlias(alias) {
  try {
    const answer = await api(`/api/aliases/${encodeURIComponent(alias)}`, { method: 'DELETE' });
    aliasMessage(`Removed ${alias} (it pointed to ${answer.model}).`, true);
    await loadModels();
  } catch (err) {
    aliasMessage(err.message, false);
  }
}

function setupExperiments() {
  $('#runs-refresh').addEventListener('click', showExperiments);
  $('#compare-btn').addEventListener('click', showCompare);
  $('#alias-form').addEventListener('submit', setAlias);
}

// ---------------------------------------------------------------------------------------
// Train

// The registry's rule for model names and aliases (an alias is also not all digits).
const NAME_RULE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const NAME_HINT = '1–64 of a–z, 0–9, _ and -; starts with a letter or digit';

/** The form's fields and their ranges (the server checks them again; these mirror it). */
const FIELDS = [
  { key: 'hidden_size', label: 'Hidden units', kind: 'select' },
  { key: 'epochs', label: 'Epochs', int: true, min: 1, max: 10000 },
  { key: 'batch_size', label: 'Batch size', int: true, min: 1, max: 4096 },
  { key: 'initial_lr', label: 'Learning rate', min: 0, minOpen: true, max: 10 },
  { key: 'decay', label: 'LR decay', min: 0, max: 100, help: 'lr(e) = lr / (1 + decay·e)' },
  { key: 'momentum', label: 'Momentum', min: 0, max: 1, maxOpen: true },
  { key: 'dropout_rate', label: 'Dropout rate', min: 0, max: 1, maxOpen: true },
  { key: 'reg_lambda', label: 'L2 λ', min: 0, max: 100 },
  { key: 'patience', label: 'Patience', int: true, min: 0, help: '0 = never stop early' },
  { key: 'val_size', label: 'Validation images', int: true, min: 0, max: 59000 },
  { key: 'seed', label: 'Seed', int: true, min: 0 },
  { key: 'augment', label: 'Augment (shift, rotate, scale, shear)', kind: 'checkbox' },
];

function rangeText(f) {
  if (f.max == null) return `integer ≥ ${f.min}`;
  const lo = `${f.min} ${f.minOpen ? '<' : '≤'}`;
  const hi = `${f.maxOpen ? '<' : '≤'} ${f.max}`;
  return f.int ? `integer ${f.min}–${f.max}` : `${lo} x ${hi}`;
}

const train = { info: null, built: false, watching: null };

function showTrain() {
  loadTrainInfo();
}

async function loadTrainInfo() {
  let info;
  try {
    info = await api('/api/train');
  } catch (err) {
    notice(err.status === 404 ? 'This server cannot train models (it has no /api/train).' : err.message);
    $('#train-start').disabled = true;
    return;
  }
  train.info = info;
  updateFetchOffers(info.data);
  if (!train.built) buildTrainForm(info);
  const runs = info.max_concurrent === 1 ? 'one run at a time' : `${info.max_concurrent} runs at a time`;
  $('#train-facts').textContent = `This server trains on its MNIST files, ${runs}.`;
  const problems = [];
  if (info.data && info.data.available === false) problems.push(info.data.error || 'This server has no MNIST training data.');
  if (info.token_required && !token) {
    problems.push('This server needs a token to train: open the page with the URL `pismo serve` printed (it ends in ?token=…).');
  }
  notice(problems.join(' '));
  if (!train.watching && info.active && info.active.length) watchRun(info.active[0]);
  validateForm();
}

function notice(text) {
  const box = $('#train-notice');
  box.hidden = !text;
  box.textContent = text || '';
}

function fieldRow(id, labelText, control, help) {
  return h('div', { class: 'field', dataset: { field: id } },
    h('label', { for: `f-${id}` }, labelText),
    control,
    help ? h('span', { class: 'hint', id: `hint-${id}` }, help) : null,
    h('span', { class: 'field-error', id: `err-${id}`, 'aria-live': 'polite' }));
}

function buildTrainForm(info) {
  const d = info.defaults;
  const rows = [
    fieldRow('name', 'Name', h('input', { id: 'f-name', name: 'name', value: info.default_name || 'mnist', autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'hint-name err-name' }), NAME_HINT),
    fieldRow('aliases', 'Aliases (optional)', h('input', { id: 'f-aliases', name: 'aliases', placeholder: 'e.g. latest, default', autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'hint-aliases err-aliases' }), 'comma separated; each will point to the new model'),
  ];
  for (const f of FIELDS) {
    const describedBy = `hint-${f.key} err-${f.key}`;
    if (f.kind === 'select') {
      rows.push(fieldRow(f.key, f.label,
        h('select', { id: `f-${f.key}`, name: f.key, 'aria-describedby': describedBy },
          info.hidden_sizes.map((n) => h('option', { value: n, selected: n === d[f.key] }, n))),
        'units in the hidden layer'));
    } else if (f.kind === 'checkbox') {
      rows.push(h('div', { class: 'field check', dataset: { field: f.key } },
        h('label', {}, h('input', { type: 'checkbox', id: `f-${f.key}`, name: f.key, checked: d[f.key] }), ' ', f.label),
        h('span', { class: 'field-error', id: `err-${f.key}`, 'aria-live': 'polite' })));
    } else {
      rows.push(fieldRow(f.key, f.label,
        h('input', { id: `f-${f.key}`, name: f.key, type: 'number', inputmode: f.int ? 'numeric' : 'decimal', step: f.int ? 1 : 'any', min: f.min, max: f.max, value: d[f.key], 'aria-describedby': describedBy }),
        f.help ? `${rangeText(f)}; ${f.help}` : rangeText(f)));
    }
  }
  fill($('#train-fields'), ...rows);
  train.built = true;
  $('#train-form').hidden = false;
}

/** The field's problem, or '' when its value is fine. */
function fieldProblem(f, raw) {
  if (raw.trim() === '') return 'required';
  const v = Number(raw);
  if (!Number.isFinite(v)) return 'not a number';
  if (f.int && !Number.isInteger(v)) return 'must be a whole number';
  const low = f.minOpen ? v <= f.min : v < f.min;
  const high = f.max != null && (f.maxOpen ? v >= f.max : v > f.max);
  return low || high ? `must be ${rangeText(f)}` : '';
}

function aliasList() {
  return $('#f-aliases').value.split(',').map((a) => a.trim()).filter(Boolean);
}

/** Checks every field, shows the messages, enables Start when all are valid; returns the
 *  request body (or null). */
function validateForm() {
  if (!train.built) return null;
  const problems = {};
  const name = $('#f-name').value.trim();
  if (!NAME_RULE.test(name)) problems.name = name ? 'not a valid name' : 'required';
  const bad = aliasList().filter((a) => !NAME_RULE.test(a) || /^[0-9]+$/.test(a));
  if (bad.length) problems.aliases = `not a valid alias: ${bad.join(', ')}`;
  const body = { name };
  if (aliasList().length) body.aliases = aliasList();
  for (const f of FIELDS) {
    const input = $(`#f-${f.key}`);
    if (f.kind === 'checkbox') body[f.key] = input.checked;
    else if (f.kind === 'select') body[f.key] = Number(input.value);
    else {
      const problem = fieldProblem(f, input.value);
      if (problem) problems[f.key] = problem;
      body[f.key] = Number(input.value);
    }
  }
  showFieldProblems('#train-fields', (key) => problems[key]);
  const ok = Object.keys(problems).length === 0;
  const noData = train.info && train.info.data && train.info.data.available === false;
  const running = train.watching && !train.watching.done;
  const start = $('#train-start');
  start.disabled = !ok || noData || running;
  start.textContent = running ? 'Training…' : 'Start training';
  return ok ? body : null;
}

/** Shows a 400's message next to the field it names (until that field is edited). */
function fieldError(field, message) {
  return markServerError('#train-fields', field, message);
}

/** Shows each field's problem under it (`problemOf(id)`, none if empty), except on a field
 * whose 400 from the server still stands (its value is unchanged since). */
function showFieldProblems(fields, problemOf) {
  for (const row of document.querySelectorAll(`${fields} .field`)) {
    const id = row.dataset.field;
    const input = $(`#f-${id}`);
    if (row.dataset.serverError && input && input.value === row.dataset.serverValue) continue;
    delete row.dataset.serverError;
    const problem = problemOf(id) || '';
    $(`#err-${id}`).textContent = problem;
    row.classList.toggle('invalid', Boolean(problem));
    if (input) input.setAttribute('aria-invalid', problem ? 'true' : 'false');
  }
}

/** Shows a 400's message next to field `id` of the form part `fields`, until it is edited. */
function markServerError(fields, id, message) {
  const row = document.querySelector(`${fields} .field[data-field="${id}"]`);
  if (!row) return false;
  const input = $(`#f-${id}`);
  row.dataset.serverError = '1';
  row.dataset.serverValue = input ? input.value : '';
  row.classList.add('invalid');
  $(`#err-${id}`).textContent = message;
  if (input) input.focus();
  return true;
}

async function startTraining(e) {
  e.preventDefault();
  const body = validateForm();
  if (!body) return;
  const errorBox = $('#train-error');
  errorBox.hidden = true;
  for (const row of document.querySelectorAll('#train-fields .field')) delete row.dataset.serverError;
  $('#train-start').disabled = true;
  try {
    const answer = await api('/api/train', { method: 'POST', json: body });
    watchRun(answer.run_id);
  } catch (err) {
    if (!(err.body.field && fieldError(err.body.field, err.message))) {
      fill(errorBox, err.message);
      if (err.status === 409 && err.body.active && err.body.active.length) {
        errorBox.append(' ', h('button', { type: 'button', class: 'btn small-btn', onclick: () => watchRun(err.body.active[0]) }, 'Watch it'));
      }
      errorBox.hidden = false;
    }
    validateForm();
  }
}

/** Follows run `id` through its event stream: log, progress, curves, then the result. */
function watchRun(id) {
  if (train.watching) train.watching.source.close();
  const w = {
    id,
    source: new EventSource(`${runUrl(id)}/events`),
    lastId: -1,
    epochs: 0,
    points: { train_loss: [], val_loss: [], train_accuracy: [], val_accuracy: [] },
    eta: null, // {seconds, at}: the last epoch's estimate and when it came
    started: performance.now(),
    done: false,
  };
  train.watching = w;
  $('#train-intro').hidden = true;
  $('#train-live').hidden = false;
  $('#train-result').hidden = true;
  $('#train-log').textContent = '';
  $('#train-live-title').textContent = 'Training';
  const stop = $('#train-stop');
  stop.hidden = false;
  stop.disabled = false;
  stop.textContent = 'Stop';
  setProgress(0, 'Waiting for the first batch…');
  drawTrainCharts(w);
  validateForm();
  api(runUrl(id)).then((run) => {
    if (train.watching !== w) return;
    $('#train-live-title').textContent = `Training ${run.name}`;
    if (!w.epochs) w.epochs = run.params.epochs;
    drawTrainCharts(w);
  }).catch(() => {
    // Only the title and the planned epochs come from here; the stream carries the rest.
  });

  const on = (name, handle) => w.source.addEventListener(name, (e) => {
    // After a reconnect the stream replays from the start: skip what was seen.
    if (e.lastEventId !== '') {
      const seq = Number(e.lastEventId);
      if (seq <= w.lastId) return;
      w.lastId = seq;
    }
    if (train.watching === w) handle(JSON.parse(e.data));
  });
  on('log', (d) => appendLog(d.line));
  on('progress', (d) => onProgress(w, d));
  on('epoch', (d) => onEpoch(w, d));
  on('done', (d) => onDone(w, d));
  w.source.addEventListener('error', () => {
    if (!w.done && w.source.readyState === EventSource.CLOSED) {
      appendLog('(the event stream closed before the run ended)');
    }
  });
}

function appendLog(line) {
  const log = $('#train-log');
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 24;
  log.append(`${line}\n`);
  if (atBottom) log.scrollTop = log.scrollHeight;
}

function setProgress(fraction, text) {
  const bar = $('#train-progress');
  const value = Math.round(Math.min(1, Math.max(0, fraction)) * 100);
  bar.setAttribute('aria-valuenow', value);
  bar.querySelector('.progress-fill').style.width = `${value}%`;
  $('#train-progress-text').textContent = text;
}

function etaText(w, fraction) {
  let seconds = null;
  if (w.eta) seconds = w.eta.seconds - (performance.now() - w.eta.at) / 1000;
  else if (fraction > 0.02) seconds = ((performance.now() - w.started) / 1000) * ((1 - fraction) / fraction);
  return seconds == null ? '' : ` · about ${duration(Math.max(0, seconds) * 1000)} left`;
}

function onProgress(w, d) {
  const epochs = w.epochs || d.epoch;
  const fraction = (d.epoch - 1 + d.done / d.total) / epochs;
  setProgress(fraction, `Epoch ${d.epoch}/${epochs} · batch ${d.done}/${d.total}${etaText(w, fraction)}`);
}

function onEpoch(w, d) {
  w.epochs = d.epochs;
  for (const key of Object.keys(w.points)) w.points[key].push([d.epoch, d[key]]);
  w.eta = { seconds: d.eta_seconds, at: performance.now() };
  const fraction = d.epoch / d.epochs;
  setProgress(fraction, `Epoch ${d.epoch}/${d.epochs} done · val accuracy ${pct(d.val_accuracy)}${d.improved ? ' (best so far)' : ''}${etaText(w, fraction)}`);
  drawTrainCharts(w);
}

function drawTrainCharts(w) {
  runCharts($('#train-chart-loss'), $('#train-chart-acc'), (name) => w.points[name], w.epochs);
}

function onDone(w, d) {
  w.done = true;
  w.source.close();
  $('#train-stop').hidden = true;
  const card = $('#train-result');
  const metrics = d.metrics || {};
  const accuracy = metrics.test_accuracy != null ? ` — test accuracy ${pct(metrics.test_accuracy, 1)}` : '';
  const actions = d.model
    ? h('div', { class: 'row' },
      h('button', { type: 'button', class: 'btn primary', 'data-testid': 'train-use', onclick: () => useModel(d.model) }, 'Use in Draw'),
      h('button', { type: 'button', class: 'btn', 'data-testid': 'train-view', onclick: () => { location.hash = '#experiments'; showRunDetail(w.id); } }, 'View in Experiments'))
    : null;
  let title;
  if (d.status === 'finished') title = d.model ? `Registered ${d.model}${accuracy}` : 'Finished, no model registered';
  else if (d.status === 'stopped') title = d.model ? `Stopped — registered ${d.model}${accuracy}` : 'Stopped — no model registered';
  else title = `Training failed${d.error ? `: ${d.error}` : ''}`;
  card.className = 'result-banner';
  if (d.status === 'failed') card.classList.add('bad');
  else if (d.model) card.classList.add('good');
  fill(card, h('strong', { class: 'result-title' }, title),
    d.model && metrics.epochs_run ? h('p', { class: 'small' }, `${metrics.epochs_run} epochs run, weights of epoch ${metrics.best_epoch} · val accuracy ${pct(metrics.val_accuracy)}${d.bytes ? ` · ${kib(d.bytes)}` : ''}`) : null,
    actions);
  card.hidden = false;
  if (d.status === 'finished') setProgress(1, 'Done');
  else $('#train-progress-text').textContent = d.status === 'stopped' ? 'Stopped' : 'Failed';
  validateForm();
  loadModels().catch(() => {});
  loadRuns();
}

async function stopTraining() {
  const w = train.watching;
  if (!w) return;
  const button = $('#train-stop');
  button.disabled = true;
  button.textContent = 'Stopping…';
  try {
    await api(`${runUrl(w.id)}/stop`, { method: 'POST' });
  } catch (err) {
    button.disabled = false;
    button.textContent = 'Stop';
    appendLog(`(could not stop: ${err.message})`);
  }
}

function setupTrain() {
  const form = $('#train-form');
  form.addEventListener('input', validateForm);
  form.addEventListener('change', validateForm);
  form.addEventListener('submit', startTraining);
  $('#train-reset').addEventListener('click', () => {
    buildTrainForm(train.info);
    validateForm();
  });
  $('#train-stop').addEventListener('click', stopTraining);
}

// ---------------------------------------------------------------------------------------
// Tune

/** The start form's fields (the server checks them again; these mirror it). */
const TUNE_FIELDS = [
  { key: 'trials', label: 'Trials', int: true, min: 1, optional: true, help: 'the study ends after this many' },
  { key: 'budget', label: 'Budget (seconds)', min: 1, optional: true, help: 'or when this time is spent' },
  { key: 'parallel', label: 'Trials at once', kind: 'select' },
  { key: 'epochs', label: 'Epochs', int: true, min: 1, max: 10000, help: 'of a trial never stopped early' },
  { key: 'val_size', label: 'Validation images', int: true, min: 1, max: 59000, help: 'every trial is scored on them' },
  { key: 'seed', label: 'Seed', int: true, min: 0 },
];

const tune = { info: null, built: false, watching: null, studies: [] };

/** The id of the Tune form's field `key` (the Train form has fields of the same names). */
const tuneId = (key) => `tune_${key}`;

function showTune() {
  loadTuneInfo();
  loadStudies();
  if (tune.watching) refreshStudy(tune.watching);
}

async function loadTuneInfo() {
  let info;
  try {
    info = await api('/api/tune');
  } catch (err) {
    tuneNotice(err.message);
    $('#tune-start').disabled = true;
    return;
  }
  tune.info = info;
  updateFetchOffers(info.data);
  if (!tune.built) buildTuneForm(info);
  const rungs = info.rungs ? `; weak trials stop at epoch rungs (${info.rungs.min_epochs} epoch, then ×${info.rungs.eta})` : '';
  $('#tune-facts').textContent = `This server runs one study at a time, up to ${info.limits.max_parallel} trials at once${rungs}.`;
  const problems = [];
  if (info.data && info.data.available === false) problems.push(info.data.error || 'This server has no MNIST training data.');
  if (info.token_required && !token) {
    problems.push('This server needs a token to start studies: open the page with the URL `pismo serve` printed (it ends in ?token=…).');
  }
  tuneNotice(problems.join(' '));
  if (!tune.watching && info.active) watchStudy(info.active);
  validateTuneForm();
}

function tuneNotice(text) {
  const box = $('#tune-notice');
  box.hidden = !text;
  box.textContent = text || '';
}

function buildTuneForm(info) {
  const d = info.defaults;
  const rows = [
    fieldRow(tuneId('study'), 'Study name (optional)', h('input', { id: `f-${tuneId('study')}`, name: 'study', placeholder: 'study-DATE-TIME', autocomplete: 'off', spellcheck: 'false', 'aria-describedby': `hint-${tuneId('study')} err-${tuneId('study')}` }), NAME_HINT),
  ];
  for (const f of TUNE_FIELDS) {
    const id = tuneId(f.key);
    const describedBy = `hint-${id} err-${id}`;
    if (f.kind === 'select') {
      const options = Array.from({ length: info.limits.max_parallel }, (_, i) => i + 1);
      rows.push(fieldRow(id, f.label,
        h('select', { id: `f-${id}`, name: f.key, 'aria-describedby': describedBy },
          options.map((n) => h('option', { value: n, selected: n === d.parallel }, n))),
        'each on its share of the cores'));
    } else {
      const max = f.key === 'trials' ? info.limits.max_trials : f.key === 'budget' ? info.limits.max_budget : f.max;
      const field = { ...f, max };
      const range = rangeText(field);
      rows.push(fieldRow(id, f.label,
        h('input', { id: `f-${id}`, name: f.key, type: 'number', inputmode: f.int ? 'numeric' : 'decimal', step: f.int ? 1 : 'any', min: f.min, max, value: d[f.key] != null ? d[f.key] : (f.key === 'trials' ? 20 : ''), 'aria-describedby': describedBy }),
        f.help ? `${range}; ${f.help}` : range));
    }
  }
  fill($('#tune-fields'), ...rows);
  $('#tune-space').value = JSON.stringify(info.space, null, 1);
  tune.built = true;
  $('#tune-form').hidden = false;
}

/** Checks the form, shows the messages, enables Start; returns the request body (or null). */
function validateTuneForm() {
  if (!tune.built) return null;
  const problems = {};
  const body = {};
  const name = $(`#f-${tuneId('study')}`).value.trim();
  if (name && !NAME_RULE.test(name)) problems.study = 'not a valid name';
  if (name) body.study = name;
  for (const f of TUNE_FIELDS) {
    const input = $(`#f-${tuneId(f.key)}`);
    if (f.kind === 'select') {
      body[f.key] = Number(input.value);
      continue;
    }
    if (f.optional && input.value.trim() === '') continue;
    const max = f.key === 'trials' ? tune.info.limits.max_trials : f.key === 'budget' ? tune.info.limits.max_budget : f.max;
    const problem = fieldProblem({ ...f, max }, input.value);
    if (problem) problems[f.key] = problem;
    body[f.key] = Number(input.value);
  }
  if (body.trials == null && body.budget == null && !problems.trials && !problems.budget) {
    problems.trials = 'give trials, a budget or both';
  }
  try {
    const space = JSON.parse($('#tune-space').value);
    if (!space || typeof space !== 'object' || Array.isArray(space)) throw new Error('not an object');
    body.space = space;
  } catch (err) {
    problems.space = `the space is not a JSON object (${err.message})`;
  }
  showFieldProblems('#tune-fields', (id) => problems[id.replace(/^tune_/, '')]);
  const spaceBox = $('.space-box');
  if (spaceBox.dataset.serverError && $('#tune-space').value !== spaceBox.dataset.serverValue) delete spaceBox.dataset.serverError;
  if (!spaceBox.dataset.serverError) {
    $('#err-space').textContent = problems.space || '';
    spaceBox.classList.toggle('invalid', Boolean(problems.space));
    if (problems.space) spaceBox.open = true;
  }
  const ok = Object.keys(problems).length === 0;
  const noData = tune.info && tune.info.data && tune.info.data.available === false;
  const running = tune.watching && tune.watching.running;
  const start = $('#tune-start');
  start.disabled = !ok || noData || running;
  start.textContent = running ? 'Study running…' : 'Start study';
  return ok ? body : null;
}

/** A 400's message next to the field it names (the space box included). */
function tuneFieldError(fieldName, message) {
  if (fieldName === 'space') {
    const box = $('.space-box');
    box.open = true;
    box.dataset.serverError = '1';
    box.dataset.serverValue = $('#tune-space').value;
    box.classList.add('invalid');
    $('#err-space').textContent = message;
    return true;
  }
  return markServerError('#tune-fields', tuneId(fieldName), message);
}

async function startStudy(e) {
  e.preventDefault();
  const body = validateTuneForm();
  if (!body) return;
  const errorBox = $('#tune-error');
  errorBox.hidden = true;
  for (const row of document.querySelectorAll('#tune-fields .field')) delete row.dataset.serverError;
  delete $('.space-box').dataset.serverError;
  $('#tune-start').disabled = true;
  try {
    const answer = await api('/api/tune', { method: 'POST', json: body });
    watchStudy(answer.study);
    loadStudies();
  } catch (err) {
    if (!(err.body.field && tuneFieldError(err.body.field, err.message))) {
      fill(errorBox, err.message);
      if (err.status === 409 && err.body.active) {
        errorBox.append(' ', h('button', { type: 'button', class: 'btn small-btn', onclick: () => watchStudy(err.body.active) }, 'Watch it'));
      }
      errorBox.hidden = false;
    }
    validateTuneForm();
  }
}

async function loadStudies() {
  try {
    tune.studies = await api('/api/studies');
  } catch (err) {
    tune.studies = [];
    tuneNotice(err.message);
  }
  renderStudies();
}

function renderStudies() {
  const open = tune.watching && tune.watching.name;
  fill($('#studies tbody'), ...tune.studies.map((s) => {
    const state = s.error ? 'failed' : s.running ? 'running' : 'ended';
    const row = h('tr', { class: s.study === open ? 'open' : null, tabindex: 0, dataset: { study: s.study } },
      h('td', {}, h('button', { type: 'button', class: 'linklike', onclick: () => watchStudy(s.study) }, s.study)),
      h('td', {}, statusBadge(state)),
      h('td', { class: 'num' }, s.trials != null ? s.trials + (s.open && s.running ? ` +${s.open}` : '') : '–'),
      h('td', { class: 'num' }, pct(s.best_accuracy)),
      h('td', { class: 'num' }, s.elapsed != null ? duration(s.elapsed * 1000) : '–'));
    row.addEventListener('click', (e) => { if (e.target.tagName !== 'BUTTON') watchStudy(s.study); });
    return row;
  }));
  $('#studies-empty').hidden = tune.studies.length > 0;
}

/** Follows study `name`: its state now, then again on each of its events. */
function watchStudy(name) {
  if (tune.watching) tune.watching.source.close();
  const w = {
    name,
    source: new EventSource(`/api/studies/${encodeURIComponent(name)}/events`),
    state: null,
    running: true,
    progress: {},
    refreshing: null,
    again: false,
    fetchedAt: performance.now(),
  };
  tune.watching = w;
  $('#tune-intro').hidden = true;
  $('#tune-live').hidden = false;
  $('#tune-live-title').textContent = `Study ${name}`;
  $('#tune-use-error').hidden = true;
  $('#tune-stop').hidden = false;
  $('#tune-stop').disabled = false;
  $('#tune-stop').textContent = 'Stop';
  renderStudies();
  refreshStudy(w);
  const on = (event, handle) => w.source.addEventListener(event, (e) => {
    if (tune.watching === w) handle(JSON.parse(e.data));
  });
  for (const event of ['begin', 'study', 'trial_started', 'epoch', 'trial_ended', 'trial_stopped', 'best']) {
    on(event, () => refreshStudy(w));
  }
  on('progress', (d) => {
    w.progress[d.trial] = d;
    renderTrials(w);
  });
  on('done', (d) => {
    w.running = false;
    w.done = d;
    w.source.close();
    refreshStudy(w);
    loadStudies();
    validateTuneForm();
  });
  validateTuneForm();
}

/** Fetches the study's state and redraws it; calls during a fetch make one more fetch. */
async function refreshStudy(w) {
  if (w.refreshing) {
    w.again = true;
    return;
  }
  w.refreshing = api(`/api/studies/${encodeURIComponent(w.name)}`);
  try {
    const state = await w.refreshing;
    if (tune.watching !== w) return;
    w.state = state;
    w.fetchedAt = performance.now();
    if (!state.running && !w.done) w.running = state.running;
    renderStudy(w);
  } catch (err) {
    if (tune.watching === w) {
      $('#tune-status').textContent = err.message;
    }
  } finally {
    w.refreshing = null;
    if (w.again) {
      w.again = false;
      refreshStudy(w);
    }
  }
}

const TRIAL_STATES = ['running', 'complete', 'pruned', 'failed', 'stopped'];

function renderStudy(w) {
  const st = w.state;
  const counts = TRIAL_STATES.map((s) => [s, st.trials.filter((t) => t.state === s).length]).filter(([, n]) => n);
  const running = st.running && w.running;
  let status = running ? 'Running' : w.done && w.done.status === 'failed' ? `Failed: ${w.done.error}` : w.done && w.done.status === 'stopped' ? 'Stopped' : 'Ended';
  status += ` · ${duration(st.elapsed * 1000)} · ${counts.map(([s, n]) => `${n} ${s}`).join(', ') || 'no trials yet'}`;
  if (st.best) status += ` · best ${pct(st.best.val_accuracy)} (trial ${st.best.trial})`;
  if (st.model) status += ` · registered as ${st.model}`;
  $('#tune-status').textContent = status;
  $('#tune-stop').hidden = !(running && st.here);
  const use = $('#tune-use');
  use.disabled = !st.best;
  use.title = st.best ? `The model of trial ${st.best.trial} (${pct(st.best.val_accuracy)})` : 'No trial has ended with a model yet';
  drawBestChart(w);
  renderTrials(w);
  drawParamCharts(w);
  validateTuneForm();
}

/** `lr 0.0312, h 256`: a trial's settings, short. */
function settingsText(values) {
  return Object.entries(values).map(([k, v]) => `${k} ${Number(v.toPrecision(3))}`).join(', ');
}

function renderTrials(w) {
  const st = w.state;
  if (!st) return;
  const maxEpochs = st.settings ? st.settings.max_epochs : null;
  fill($('#tune-trials tbody'), ...[...st.trials].reverse().map((t) => {
    const p = w.progress[t.trial];
    let epochs = `${t.epochs}${maxEpochs ? `/${maxEpochs}` : ''}`;
    if (t.state === 'running' && p && p.epoch > t.epochs && p.total) epochs += ` · ${Math.floor((100 * p.done) / p.total)} %`;
    return h('tr', { dataset: { state: t.state } },
      h('td', { class: 'num' }, t.trial),
      h('td', {}, statusBadge(t.state)),
      h('td', { class: 'num nowrap' }, epochs),
      h('td', { class: 'num' }, pct(t.val_accuracy)),
      h('td', { class: 'settings-cell' }, settingsText(t.values)));
  }));
}

function drawBestChart(w) {
  const st = w.state;
  const done = st.trials.filter((t) => t.ended != null && t.val_accuracy != null);
  const steps = st.best_so_far.map(([x, y]) => [x, y]);
  if (steps.length) steps.push([Math.max(st.elapsed, steps[steps.length - 1][0]), steps[steps.length - 1][1]]);
  xyChart($('#tune-chart-best'), {
    title: 'Best validation accuracy so far',
    xTitle: 'seconds',
    xFormat: (v) => Number(v.toPrecision(3)).toString(),
    yFormat: accFormat,
    xMin: 0,
    xMax: Math.max(1, st.elapsed),
    line: { label: 'best so far', color: PALETTE[0], points: steps, step: true },
    dots: done.map((t) => ({ x: t.ended, y: t.val_accuracy, cls: `dot-${t.state}`, tip: `trial ${t.trial} (${t.state}): ${pct(t.val_accuracy)}` })),
    legend: [{ label: 'best so far', color: PALETTE[0], line: true }, { label: 'complete', color: 'var(--c2)' }, { label: 'pruned', color: 'var(--muted)' }],
    empty: 'No trial has ended yet',
  });
}

/** The kind of a space file's domain: {log: [a, b]} → {kind: 'log', log: true, range}. */
function domainOf(spec) {
  const [kind] = Object.keys(spec);
  const range = spec[kind];
  return { kind, log: kind === 'log' || kind === 'int_log', range, choices: kind === 'choice' ? range.map(Number) : null };
}

function drawParamCharts(w) {
  const st = w.state;
  const space = (st.settings && st.settings.space) || {};
  const host = $('#tune-params');
  const names = Object.keys(space);
  const hosts = new Map([...host.children].map((c) => [c.dataset.param, c]));
  if (names.join() !== [...hosts.keys()].join()) {
    fill(host, ...names.map((n) => h('div', { class: 'chart', dataset: { param: n, testid: `tune-param-${n}` } })));
  }
  for (const name of names) {
    const d = domainOf(space[name]);
    const dots = st.trials
      .filter((t) => t.val_accuracy != null && t.values[name] != null)
      .map((t) => {
        let x = Number(t.values[name]);
        if (d.choices) x = Math.max(0, d.choices.indexOf(x));
        return { x, y: t.val_accuracy, cls: `dot-${t.state}`, tip: `trial ${t.trial} (${t.state}): ${name} ${Number(Number(t.values[name]).toPrecision(3))}, ${pct(t.val_accuracy)}` };
      });
    const [lo, hi] = d.choices ? [-0.5, d.choices.length - 0.5] : [Number(d.range[0]), Number(d.range[1])];
    xyChart(host.querySelector(`[data-param="${name}"]`), {
      title: name,
      small: true,
      xTitle: d.log ? `${name} (log)` : name,
      xLog: d.log && lo > 0,
      xMin: lo,
      xMax: hi,
      xTicks: d.choices ? d.choices.map((_, i) => i) : null,
      xFormat: d.choices ? (i) => String(d.choices[i]) : (v) => Number(v.toPrecision(2)).toString(),
      yFormat: accFormat,
      dots,
      empty: 'No scores yet',
    });
  }
}

/** Ticks of a log axis: 1, 2 and 5 times powers of ten between lo and hi (or only the
 *  powers when there are many decades). */
function logTicks(lo, hi) {
  const ticks = [];
  const decades = Math.log10(hi / lo);
  const steps = decades > 3 ? [1] : decades > 1.2 ? [1, 3] : [1, 2, 5];
  for (let p = Math.floor(Math.log10(lo)); p <= Math.ceil(Math.log10(hi)); p++) {
    for (const m of steps) {
      const v = m * 10 ** p;
      if (v >= lo * 0.999 && v <= hi * 1.001) ticks.push(Number(v.toPrecision(12)));
    }
  }
  return ticks.length >= 2 ? ticks : [lo, hi];
}

/**
 * Draws a chart of points on numeric axes into `host` (redrawn when its width changes).
 * spec: {title, xTitle, xMin, xMax, xLog, xTicks, xFormat(v), yFormat(v, precise), small,
 * line: {label, color, points: [[x, y]], step}, dots: [{x, y, cls, tip}], legend, empty}
 */
function xyChart(host, spec) {
  host._chart = spec;
  host._width = 0;
  host._render = renderXY;
  renderXY(host);
  chartResize.observe(host);
}

function renderXY(host) {
  const spec = host._chart;
  const width = host.clientWidth;
  if (!spec || !width || width === host._width) return;
  host._width = width;
  const m = { left: 52, right: 14, top: 12, bottom: 34 };
  const W = width;
  const H = spec.small ? 170 : CHART_HEIGHT;
  const plotW = W - m.left - m.right;
  const plotH = H - m.top - m.bottom;
  const dots = spec.dots || [];
  const linePoints = spec.line ? spec.line.points : [];
  const ys = [...dots.map((d) => d.y), ...linePoints.map((p) => p[1])];
  let [yLo, yHi] = ys.length ? [Math.min(...ys), Math.max(...ys)] : [0, 1];
  // Accuracies: at least 5 points of percentage shown, within 0..100 %.
  if (yHi - yLo < 0.05) {
    const mid = (yLo + yHi) / 2;
    [yLo, yHi] = [Math.max(0, mid - 0.025), Math.min(1, mid + 0.025)];
  }
  const yTicks = niceTicks(yLo, yHi, spec.small ? 3 : 4);
  const [y0, y1] = [yTicks[0], yTicks[yTicks.length - 1]];
  const xs = [...dots.map((d) => d.x), ...linePoints.map((p) => p[0])];
  const x0 = Math.min(spec.xMin, ...xs);
  const x1 = Math.max(spec.xMax, ...xs);
  const fx = spec.xLog ? Math.log : (v) => v;
  const sx = (x) => m.left + ((fx(x) - fx(x0)) / (fx(x1) - fx(x0) || 1)) * plotW;
  const sy = (y) => m.top + (1 - (y - y0) / (y1 - y0)) * plotH;
  const xTicks = spec.xTicks || (spec.xLog ? logTicks(x0, x1) : niceTicks(x0, x1, Math.max(2, Math.floor(plotW / 70))).filter((x) => x >= x0 && x <= x1));

  const root = svg('svg', { class: 'chart-svg', width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': spec.title });
  const grid = svg('g', { class: 'grid' });
  const axis = svg('g', { class: 'axis' });
  for (const y of yTicks) {
    grid.append(svg('line', { x1: m.left, x2: W - m.right, y1: sy(y), y2: sy(y) }));
    axis.append(svg('text', { x: m.left - 8, y: sy(y), 'text-anchor': 'end', 'dominant-baseline': 'middle' }, spec.yFormat(y)));
  }
  for (const x of xTicks) {
    grid.append(svg('line', { x1: sx(x), x2: sx(x), y1: m.top, y2: H - m.bottom }));
    axis.append(svg('text', { x: sx(x), y: H - m.bottom + 16, 'text-anchor': 'middle' }, spec.xFormat(x)));
  }
  axis.append(svg('line', { class: 'axis-line', x1: m.left, x2: W - m.right, y1: H - m.bottom, y2: H - m.bottom }));
  axis.append(svg('text', { class: 'axis-title', x: m.left + plotW / 2, y: H - 2, 'text-anchor': 'middle' }, spec.xTitle));
  root.append(grid, axis);

  if (linePoints.length) {
    let d = '';
    linePoints.forEach((p, i) => {
      if (i && spec.line.step) d += `L${sx(p[0]).toFixed(1)},${sy(linePoints[i - 1][1]).toFixed(1)}`;
      d += `${i ? 'L' : 'M'}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`;
    });
    root.append(svg('path', { d, class: 'series', stroke: spec.line.color, 'data-testid': 'best-line' }));
  }
  const dotGroup = svg('g', { class: 'dots' });
  for (const dot of dots) {
    const c = svg('circle', { cx: sx(dot.x), cy: sy(dot.y), r: spec.small ? 3.5 : 4, class: dot.cls || 'dot-complete' });
    c.addEventListener('pointermove', (e) => showTooltip(e.clientX, e.clientY, dot.tip));
    c.addEventListener('pointerleave', () => { $('#tooltip').hidden = true; });
    dotGroup.append(c);
  }
  root.append(dotGroup);
  if (!dots.length && !linePoints.length) {
    root.append(svg('text', { class: 'chart-empty', x: m.left + plotW / 2, y: m.top + plotH / 2, 'text-anchor': 'middle' }, spec.empty || 'No data yet'));
  }
  const legend = spec.legend
    ? h('div', { class: 'legend' }, spec.legend.map((s) => h('span', { class: 'legend-item' },
      s.line
        ? h('span', { class: 'legend-line', style: `color:${s.color}` })
        : h('span', { class: 'swatch', style: `background:${s.color}` }),
      s.label)))
    : null;
  fill(host, h('div', { class: spec.small ? 'chart-title small' : 'chart-title' }, spec.title), root, legend);
}

async function stopStudy() {
  const w = tune.watching;
  if (!w) return;
  const button = $('#tune-stop');
  button.disabled = true;
  button.textContent = 'Stopping…';
  try {
    await api(`/api/studies/${encodeURIComponent(w.name)}/stop`, { method: 'POST' });
  } catch (err) {
    button.disabled = false;
    button.textContent = 'Stop';
    $('#tune-status').textContent = `Could not stop: ${err.message}`;
  }
}

/** Registers the study's best model if it is not yet, then opens it in Draw. */
async function useBest() {
  const w = tune.watching;
  if (!w) return;
  const button = $('#tune-use');
  const errorBox = $('#tune-use-error');
  errorBox.hidden = true;
  button.disabled = true;
  try {
    const answer = await api(`/api/studies/${encodeURIComponent(w.name)}/use`, { method: 'POST' });
    await loadModels();
    useModel(answer.model);
  } catch (err) {
    errorBox.textContent = err.message;
    errorBox.hidden = false;
  } finally {
    button.disabled = false;
  }
}

function setupTune() {
  const form = $('#tune-form');
  form.addEventListener('input', validateTuneForm);
  form.addEventListener('change', validateTuneForm);
  form.addEventListener('submit', startStudy);
  $('#tune-reset').addEventListener('click', () => {
    buildTuneForm(tune.info);
    validateTuneForm();
  });
  $('#tune-stop').addEventListener('click', stopStudy);
  $('#tune-use').addEventListener('click', useBest);
  $('#studies-refresh').addEventListener('click', loadStudies);
}

// ---------------------------------------------------------------------------------------

function start() {
  setupDraw();
  setupExperiments();
  setupTrain();
  setupTune();
  addEventListener('hashchange', route);
  route();
}

start();
