// refract dashboard page: plain JS + SVG, no external scripts. Reads the JSON endpoints
// (src/dashboard/dashboard.h) and re-reads them every few seconds while a run trains.
'use strict';

const RUN_COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b'];
const POLL_MS = 5000;
const SVGNS = 'http://www.w3.org/2000/svg';
const $ = (id) => document.getElementById(id);

const state = { runs: [], metrics: {}, ro: null, roKey: '', evalA: null, evalB: null };

// ---- helpers ------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v; else if (k === 'text') e.textContent = v; else e.setAttribute(k, v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}
function sv(tag, attrs = {}) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}
async function getJSON(url) {
  const r = await fetch(url, { cache: 'no-store' });
  const j = await r.json();
  if (!r.ok) throw new Error(j.error || r.statusText);
  return j;
}
function fmt(v) {
  if (v == null || typeof v !== 'number') return String(v);
  const a = Math.abs(v);
  return v === 0 || (a >= 1e-3 && a < 1e5) ? String(+v.toPrecision(4)) : v.toExponential(2);
}
// The reward ramp of src/dashboard/render.cpp: red (0) -> yellow -> green (1).
function rewardColour(t) {
  t = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0));
  const a = [220, 40, 40], b = [230, 200, 40], c = [40, 180, 60];
  const m = t < 0.5 ? a.map((x, i) => x + (b[i] - x) * (t / 0.5)) : b.map((x, i) => x + (c[i] - x) * ((t - 0.5) / 0.5));
  return `rgb(${m.map(Math.round).join(',')})`;
}
function runColour(i) { return RUN_COLOURS[i % RUN_COLOURS.length]; }
function showTooltip(ev, text) {
  const t = $('tooltip');
  t.textContent = text;
  t.classList.remove('hidden');
  t.style.left = (ev.clientX + 14) + 'px';
  t.style.top = (ev.clientY + 10) + 'px';
}
function hideTooltip() { $('tooltip').classList.add('hidden'); }
function setStatus(text, error) { const s = $('status'); s.textContent = text; s.className = error ? 'error' : ''; }
const hashParams = () => new URLSearchParams(location.hash.slice(1));

// ---- tabs and runs ------------------------------------------------------------------------

function showTab(name) {
  for (const b of document.querySelectorAll('#tabs button')) b.classList.toggle('active', b.dataset.tab === name);
  for (const s of document.querySelectorAll('section.tab')) s.classList.toggle('hidden', s.id !== 'tab-' + name);
}

function fillSelect(sel, options, keep) {
  const old = keep ? sel.value : null;
  const have = [...sel.options].map((o) => o.value + '\u0000' + o.textContent).join('\u0001');
  const want = options.map(([v, t]) => v + '\u0000' + t).join('\u0001');
  if (have !== want) {
    sel.replaceChildren(...options.map(([v, t]) => el('option', { value: v, text: t })));
    if (old != null && options.some(([v]) => v === old)) sel.value = old;
  }
}

async function loadRuns() {
  const j = await getJSON('/api/runs');
  state.runs = j.runs;
  $('runs-legend').replaceChildren(...j.runs.map((r, i) => {
    const b = el('b');
    b.style.background = runColour(i);
    return el('span', { title: r.dir }, b, r.name);
  }));
  fillSelect($('ro-run'), j.runs.filter((r) => r.completions).map((r) => [String(r.id), r.name]), true);
  const evals = [];
  for (const r of j.runs) for (const e of r.evals) evals.push([r.id + '|' + e.name, r.name + ': ' + e.name]);
  fillSelect($('ev-a'), evals, true);
  fillSelect($('ev-b'), [['', '(none: no comparison)'], ...evals], true);
}

// ---- curves -------------------------------------------------------------------------------

// The metrics people read first, in this order; the rest alphabetically.
function orderKeys(keys) {
  const first = ['reward'];
  for (const k of keys) if (/^rewards\/.*\/mean$/.test(k)) first.push(k);
  first.push('loss', 'kl', 'entropy', 'completions/mean_length', 'clip_ratio/region_mean', 'clip_ratio/low_mean',
    'clip_ratio/high_mean', 'learning_rate', 'grad_norm', 'reward_std', 'frac_reward_zero_std',
    'time/generation', 'time/forward_backward', 'time/old_ref_logps', 'time/rewards', 'time/optimizer', 'step_time');
  const out = first.filter((k, i) => keys.includes(k) && first.indexOf(k) === i);
  for (const k of [...keys].sort()) if (!out.includes(k)) out.push(k);
  return out;
}

// TensorBoard's smoothing: a debiased exponential moving average.
function smooth(ys, w) {
  if (w <= 0) return ys.slice();
  let last = 0, n = 0;
  return ys.map((y) => { last = last * w + (1 - w) * y; n++; return last / (1 - Math.pow(w, n)); });
}

async function loadMetrics() {
  await Promise.all(state.runs.map(async (r) => {
    state.metrics[r.id] = r.metrics ? await getJSON('/api/metrics?run=' + r.id) : { keys: [], entries: [] };
  }));
  drawCharts();
}

function series(run, key, xaxis) {
  const m = state.metrics[run];
  if (!m) return null;
  const pts = m.entries.filter((e) => key in e && (xaxis === 'step' || 'wall_time' in e));
  if (!pts.length) return null;
  const t0 = m.entries.find((e) => 'wall_time' in e)?.wall_time ?? 0;
  return { xs: pts.map((e) => xaxis === 'step' ? e.step : (e.wall_time - t0) / 60), ys: pts.map((e) => e[key]), steps: pts.map((e) => e.step) };
}

function drawCharts() {
  const xaxis = $('xaxis').value, w = +$('smoothing').value, filter = $('metric-filter').value.trim().toLowerCase();
  $('smoothing-value').textContent = w.toFixed(2);
  const keys = new Set();
  for (const r of state.runs) for (const k of (state.metrics[r.id]?.keys || [])) keys.add(k);
  const charts = [];
  for (const key of orderKeys([...keys])) {
    if (filter && !key.toLowerCase().includes(filter)) continue;
    const all = state.runs.map((r) => [r.id, series(r.id, key, xaxis)]).filter(([, s]) => s);
    if (all.length) charts.push(chart(key, all, w, xaxis));
  }
  $('charts').replaceChildren(...charts);
  if (!charts.length) $('charts').append(el('p', { class: 'meta', text: 'No metrics.jsonl entries yet (a run writes one every logging_steps).' }));
  document.body.dataset.charts = String(charts.length);
}

function chart(key, all, w, xaxis) {
  const W = 400, H = 200, L = 48, R = 8, T = 8, B = 22;
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const [, s] of all) {
    for (const x of s.xs) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); }
    for (const y of s.ys) { y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
  }
  if (x1 <= x0) x1 = x0 + 1;
  if (y1 <= y0) { y1 += Math.abs(y1) * 0.05 + 1e-9; y0 -= Math.abs(y0) * 0.05 + 1e-9; }
  const pad = (y1 - y0) * 0.05; y0 -= pad; y1 += pad;
  const X = (x) => L + (x - x0) / (x1 - x0) * (W - L - R), Y = (y) => H - B - (y - y0) / (y1 - y0) * (H - T - B);
  const svg = sv('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none' });
  const grid = sv('g', { class: 'grid' }), axis = sv('g', { class: 'axis' });
  for (let i = 0; i <= 4; i++) {
    const yv = y0 + (y1 - y0) * i / 4, yy = Y(yv);
    grid.append(sv('line', { x1: L, x2: W - R, y1: yy, y2: yy }));
    const t = sv('text', { x: L - 4, y: yy + 3, 'text-anchor': 'end' }); t.textContent = fmt(yv); axis.append(t);
  }
  for (let i = 0; i <= 4; i++) {
    const xv = x0 + (x1 - x0) * i / 4;
    const t = sv('text', { x: X(xv), y: H - 6, 'text-anchor': 'middle' }); t.textContent = fmt(xv); axis.append(t);
  }
  svg.append(grid, axis, sv('rect', { x: L, y: T, width: W - L - R, height: H - T - B, fill: 'none', stroke: '#ccc' }));
  const path = (xs, ys) => xs.map((x, i) => (i ? 'L' : 'M') + X(x).toFixed(1) + ',' + Y(ys[i]).toFixed(1)).join('');
  for (const [run, s] of all) {
    if (w > 0) svg.append(sv('path', { class: 'raw', d: path(s.xs, s.ys), stroke: runColour(run) }));
    svg.append(sv('path', { class: 'curve', 'data-run': run, d: path(s.xs, smooth(s.ys, w)), stroke: runColour(run) }));
    if (s.xs.length === 1) svg.append(sv('circle', { cx: X(s.xs[0]), cy: Y(s.ys[0]), r: 3, fill: runColour(run) }));
  }
  const hover = sv('line', { class: 'hover', y1: T, y2: H - B, x1: -10, x2: -10 });
  svg.append(hover);
  svg.addEventListener('mousemove', (ev) => {
    const box = svg.getBoundingClientRect();
    const x = x0 + ((ev.clientX - box.left) / box.width * W - L) / (W - L - R) * (x1 - x0);
    const lines = [`${key} at ${xaxis === 'step' ? 'step' : 'minute'} ≈ ${fmt(x)}`];
    for (const [run, s] of all) {
      let best = 0;
      for (let i = 1; i < s.xs.length; i++) if (Math.abs(s.xs[i] - x) < Math.abs(s.xs[best] - x)) best = i;
      const sm = smooth(s.ys, w);
      lines.push(`${state.runs[run].name}: ${fmt(s.ys[best])}${w > 0 ? ' (smoothed ' + fmt(sm[best]) + ')' : ''} @ step ${s.steps[best]}`);
      if (run === all[0][0]) { hover.setAttribute('x1', X(s.xs[best])); hover.setAttribute('x2', X(s.xs[best])); }
    }
    showTooltip(ev, lines.join('\n'));
  });
  svg.addEventListener('mouseleave', hideTooltip);
  return el('div', { class: 'chart', 'data-key': key }, el('h3', { text: key }), svg);
}

// ---- rollouts -----------------------------------------------------------------------------

async function loadRollouts() {
  const run = $('ro-run').value;
  if (run === '') {
    $('rollouts').replaceChildren(el('p', { class: 'meta', text: 'No run logged completions (set log_completions: true).' }));
    document.body.dataset.rollouts = '0';
    return;
  }
  const follow = $('ro-follow').checked, step = $('ro-step').value;
  const j = await getJSON(`/api/rollouts?run=${run}` + (!follow && step !== '' ? `&step=${step}` : ''));
  fillSelect($('ro-step'), j.steps.map((s) => [String(s.step), `${s.step} (${s.n} completions)`]), false);
  if (j.step != null) $('ro-step').value = String(j.step);
  // Re-draw only when something changed (polling keeps the page still otherwise).
  const key = run + '|' + j.step + '|' + j.groups.reduce((n, g) => n + g.completions.length, 0) + '|' + $('ro-filter').value;
  state.ro = j;
  if (key !== state.roKey) { state.roKey = key; renderRollouts(); }
}

function imageSvg(cls, image, draw) {
  const svg = sv('svg', { class: cls });
  const place = (w, h) => svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  if (image) {
    svg.append(sv('image', { href: image.url, x: 0, y: 0, width: image.width || 1, height: image.height || 1 }));
    if (image.width > 0 && image.height > 0) place(image.width, image.height);
    else {  // sizes not logged: read them from the image itself
      const img = new Image();
      img.onload = () => { place(img.naturalWidth, img.naturalHeight); svg.firstChild.setAttribute('width', img.naturalWidth); svg.firstChild.setAttribute('height', img.naturalHeight); };
      img.src = image.url;
    }
  } else {
    place(100, 100);
    const t = sv('text', { x: 50, y: 50, 'text-anchor': 'middle', 'font-size': 8 }); t.textContent = 'no image'; svg.append(t);
  }
  draw(svg);
  return svg;
}

function rect(cls, b, colour, extra = {}) {
  const [x1, y1, x2, y2] = b;
  return sv('rect', { class: cls, x: Math.min(x1, x2), y: Math.min(y1, y2), width: Math.abs(x2 - x1), height: Math.abs(y2 - y1), stroke: colour, ...extra });
}

function rewardText(c) {
  return Object.entries(c.rewards || {}).map(([k, v]) => `${k} ${v == null ? '–' : fmt(v)}`).join(', ');
}

function renderRollouts() {
  const j = state.ro, filter = $('ro-filter').value;
  let lo = Infinity, hi = -Infinity;
  for (const g of j.groups) for (const c of g.completions) if (typeof c.reward === 'number') { lo = Math.min(lo, c.reward); hi = Math.max(hi, c.reward); }
  const t = (r) => hi > lo ? (r - lo) / (hi - lo) : 1;
  const mean = (g) => g.completions.reduce((s, c) => s + (c.reward || 0), 0) / Math.max(1, g.completions.length);
  let groups = j.groups.map((g) => ({ ...g, shown: g.completions }));
  if (filter === 'lowest') groups.sort((a, b) => mean(a) - mean(b));
  if (filter === 'highest') groups.sort((a, b) => mean(b) - mean(a));
  if (filter === 'format') groups = groups.map((g) => ({ ...g, shown: g.completions.filter((c) => !c.format_ok) })).filter((g) => g.shown.length);
  if (filter === 'truncated') groups = groups.map((g) => ({ ...g, shown: g.completions.filter((c) => c.truncated) })).filter((g) => g.shown.length);
  const out = groups.map((g) => {
    const order = [...g.shown].sort((a, b) => (a.reward ?? 0) - (b.reward ?? 0));  // best on top
    const rects = new Map();
    const svg = imageSvg('rollout', g.image, (s) => {
      for (const c of order) for (const b of c.boxes) {
        const r = rect('box-pred', b.box, rewardColour(t(c.reward)), { 'data-generation': c.generation });
        s.append(r);
        if (!rects.has(c)) rects.set(c, []);
        rects.get(c).push(r);
        if (b.match >= 0 && g.task === 'det' && g.gt[b.match]) {
          const m = g.gt[b.match].box, p = b.box;
          s.append(sv('line', { class: 'match', x1: (p[0] + p[2]) / 2, y1: (p[1] + p[3]) / 2, x2: (m[0] + m[2]) / 2, y2: (m[1] + m[3]) / 2 }));
        }
      }
      for (const b of g.gt) {
        s.append(rect('box-gt', b.box, 'rgb(0,200,255)'));
        if (b.label) { const tx = sv('text', { class: 'box-label', x: b.box[0] + 2, y: b.box[1] + 10 }); tx.textContent = b.label; s.append(tx); }
      }
    });
    const rows = g.shown.map((c) => {
      const sw = el('span', { class: 'swatch' }); sw.style.background = rewardColour(t(c.reward));
      const flags = [];
      if (!c.format_ok) flags.push(el('span', { class: 'flag', text: 'format' }));
      if (c.truncated) flags.push(el('span', { class: 'flag', text: 'truncated' }));
      let boxes = c.boxes.length ? c.boxes.map((b) => `[${b.box.map((v) => Math.round(v)).join(', ')}]` + (b.match >= 0 ? ` IoU ${fmt(b.iou)}` : ' unmatched')).join('; ') : 'no box';
      if (g.task !== 'rec' && g.task !== 'det') boxes = 'answer: ' + c.answer;
      const tr = el('tr', {},
        el('td', {}, sw, String(c.generation)),
        el('td', { text: fmt(c.reward) }),
        el('td', { text: rewardText(c) }),
        el('td', { text: fmt(c.advantage) }),
        el('td', { class: 'text' }, c.completion, ...flags),
        el('td', { text: boxes }));
      tr.addEventListener('mouseenter', () => {
        for (const [cc, rs] of rects) for (const r of rs) { r.classList.toggle('dim', cc !== c); r.classList.toggle('focus', cc === c); }
      });
      tr.addEventListener('mouseleave', () => { for (const rs of rects.values()) for (const r of rs) r.classList.remove('dim', 'focus'); });
      return tr;
    });
    const table = el('table', { class: 'completions' },
      el('tr', {}, ...['#', 'reward', 'per function', 'advantage', 'completion', g.task === 'rec' || g.task === 'det' ? 'boxes (original px)' : 'parsed']
        .map((h) => el('th', { text: h }))), ...rows);
    const solution = typeof g.solution === 'string' ? g.solution : JSON.stringify(g.solution);
    return el('div', { class: 'group', 'data-sample': g.sample },
      el('figure', {}, svg, el('figcaption', { text: `${g.sample} · ${g.task || 'task?'} · mean reward ${fmt(mean(g))}` })),
      el('div', { class: 'detail' },
        el('div', { class: 'meta', text: 'solution: ' + solution }),
        el('details', {}, el('summary', { text: 'prompt' }), el('pre', { class: 'text', text: g.prompt })),
        table));
  });
  $('rollouts').replaceChildren(...out);
  if (!out.length) $('rollouts').append(el('p', { class: 'meta', text: 'Nothing matches this filter at this step.' }));
  document.body.dataset.rollouts = String(out.length);
}

// ---- evaluation ---------------------------------------------------------------------------

async function loadEval() {
  const a = $('ev-a').value, b = $('ev-b').value;
  if (!a) {
    $('evals').replaceChildren(el('p', { class: 'meta', text: 'No evaluation predictions in these runs (refract eval, eval_strategy steps, refract demo).' }));
    document.body.dataset.eval = '0';
    return;
  }
  const get = (v) => { const [run, name] = [v.slice(0, v.indexOf('|')), v.slice(v.indexOf('|') + 1)]; return getJSON(`/api/eval?run=${run}&name=${encodeURIComponent(name)}`); };
  state.evalA = await get(a);
  state.evalB = b ? await get(b) : null;
  renderEval();
}

function summaryText(e) {
  const s = e.summary || {};
  return Object.entries(s).filter(([, v]) => typeof v === 'number').map(([k, v]) => `${k} ${fmt(v)}`).join(', ');
}

function evalFigure(s, run) {
  const hit = s.correct === true, known = typeof s.correct === 'boolean';
  const svg = imageSvg('evalimg', s.image, (g) => {
    for (const b of s.pred || []) g.append(rect('box-pred', b.box, known ? (hit ? 'rgb(40,180,60)' : 'rgb(220,40,40)') : rewardColour(b.match >= 0 ? 1 : 0)));
    for (const b of s.gt || []) g.append(rect('box-gt', b.box, 'rgb(0,200,255)'));
  });
  const verdict = el('span', { class: 'verdict ' + (known ? (hit ? 'hit' : 'miss') : ''), text: known ? (hit ? 'hit' : 'miss') : '' });
  const detail = s.iou != null ? ` IoU ${fmt(s.iou)}` : (s.pred && s.pred.length ? ` ${s.pred.filter((b) => b.match >= 0).length}/${s.gt.length} matched` : '');
  return el('div', { class: 'side', 'data-run': run }, svg, el('div', {}, verdict, detail), el('div', { class: 'text', text: s.answer }));
}

function renderEval() {
  const A = state.evalA, B = state.evalB, filter = $('ev-filter').value, limit = Math.max(1, +$('ev-limit').value || 60);
  const byId = new Map((B ? B.samples : []).map((s) => [s.id, s]));
  let rows = A.samples.map((s) => [s, byId.get(s.id)]);
  if (B) rows = rows.filter(([, b]) => b);
  const pick = { all: () => true, hit: ([a]) => a.correct === true, miss: ([a]) => a.correct === false,
    a_only: ([a, b]) => a.correct === true && b && b.correct === false, b_only: ([a, b]) => a.correct === false && b && b.correct === true };
  const n = (f) => rows.filter(pick[f]).length;
  let summary = `A ${A.name} (${A.task}, ${A.samples.length} samples): ${summaryText(A)}`;
  if (B) summary += `\nB ${B.name} (${B.samples.length} samples): ${summaryText(B)}\non the ${rows.length} shared samples: A hit & B miss ${n('a_only')}, A miss & B hit ${n('b_only')}`;
  $('eval-summary').replaceChildren(el('pre', { class: 'meta', text: summary }));
  const shown = rows.filter(pick[filter]).slice(0, limit);
  $('evals').classList.toggle('compare', !!B);
  $('evals').replaceChildren(...shown.map(([a, b]) => el('div', { class: 'evalcard', 'data-id': a.id },
    el('div', { class: 'meta', text: a.id + ' · solution ' + (typeof a.solution === 'string' ? a.solution : JSON.stringify(a.solution)) }),
    el('div', { class: 'pair' }, evalFigure(a, 'A'), b ? evalFigure(b, 'B') : null))));
  document.body.dataset.eval = String(shown.length);
}

// ---- wiring -------------------------------------------------------------------------------

async function refresh(all) {
  try {
    await loadRuns();
    await loadMetrics();
    await loadRollouts();
    if (all) await loadEval();
    setStatus('updated ' + new Date().toLocaleTimeString());
    document.body.dataset.ready = '1';
  } catch (e) {
    setStatus(String(e.message || e), true);
    document.body.dataset.error = String(e.message || e);
  }
}

function init() {
  const p = hashParams();
  for (const b of document.querySelectorAll('#tabs button')) b.addEventListener('click', () => showTab(b.dataset.tab));
  $('xaxis').addEventListener('change', drawCharts);
  $('smoothing').addEventListener('input', drawCharts);
  $('metric-filter').addEventListener('input', drawCharts);
  $('ro-run').addEventListener('change', () => { state.roKey = ''; loadRollouts().catch((e) => setStatus(e.message, true)); });
  $('ro-step').addEventListener('change', () => { $('ro-follow').checked = false; loadRollouts().catch((e) => setStatus(e.message, true)); });
  $('ro-follow').addEventListener('change', () => loadRollouts().catch((e) => setStatus(e.message, true)));
  $('ro-filter').addEventListener('change', renderRollouts);
  for (const id of ['ev-a', 'ev-b']) $(id).addEventListener('change', () => loadEval().catch((e) => setStatus(e.message, true)));
  for (const id of ['ev-filter', 'ev-limit']) $(id).addEventListener('change', renderEval);
  if (p.get('smoothing') != null) $('smoothing').value = p.get('smoothing');
  if (p.get('x')) $('xaxis').value = p.get('x');
  if (p.get('show')) $('ro-filter').value = p.get('show');
  if (p.get('eval_show')) $('ev-filter').value = p.get('eval_show');
  showTab(p.get('tab') || 'curves');
  refresh(true).then(() => {
    // Deep links: #tab=rollouts&run=0&step=5, #tab=eval&a=0|name&b=1|name
    let again = false;
    if (p.get('run') != null && [...$('ro-run').options].some((o) => o.value === p.get('run'))) { $('ro-run').value = p.get('run'); again = true; }
    if (p.get('step') != null) { $('ro-follow').checked = false; $('ro-step').value = p.get('step'); again = true; }
    const ev = [];
    if (p.get('a')) { $('ev-a').value = p.get('a'); ev.push(1); }
    if (p.get('b')) { $('ev-b').value = p.get('b'); ev.push(1); }
    return Promise.all([again ? loadRollouts() : null, ev.length ? loadEval() : null]);
  }).catch((e) => setStatus(e.message, true));
  setInterval(() => refresh(false), POLL_MS);
}

init();
