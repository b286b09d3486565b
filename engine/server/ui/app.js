// Lookout operator desk: plain JavaScript, no external resources.
'use strict';
const $ = (s, el = document) => el.querySelector(s);
const $$ = (s, el = document) => Array.from(el.querySelectorAll(s));
const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
const SEV = { low: 0, medium: 1, high: 2, critical: 3 };
const state = { incidents: [], selected: null, cameras: [], sound: false, audio: null, view: 'incidents' };

// The token lives in sessionStorage (this tab's session only; never in a URL or a cookie)
// and goes out only as an Authorization header. A token an older version kept in
// localStorage is moved here and removed from disk.
const TOKEN_KEY = 'lookout.token';
if (localStorage.getItem(TOKEN_KEY)) {
  if (!sessionStorage.getItem(TOKEN_KEY)) sessionStorage.setItem(TOKEN_KEY, localStorage.getItem(TOKEN_KEY));
  localStorage.removeItem(TOKEN_KEY);
}
function token() { return $('#token').value.trim(); }
function authHeaders(h = {}) { if (token()) h.Authorization = 'Bearer ' + token(); return h; }
$('#token').value = sessionStorage.getItem(TOKEN_KEY) || '';
function setToken(t) {
  $('#token').value = t;
  if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
  $('#login').hidden = true;
  whoami(); refresh();
}
$('#token').addEventListener('change', () => setToken(token()));

// A 401 means this engine wants a token to read (or the one given is unknown): ask for it.
function needToken(msg) {
  $('#login-msg').textContent = msg || 'This engine needs a token to show its cameras and incidents.';
  if ($('#login').hidden) { $('#login').hidden = false; $('#login-token').value = ''; $('#login-token').focus(); }
}
$('#login-form').addEventListener('submit', (ev) => { ev.preventDefault(); setToken($('#login-token').value.trim()); });

async function api(path, opts = {}) {
  const headers = authHeaders({ 'Content-Type': 'application/json' });
  const r = await fetch(path, { ...opts, headers });
  const text = await r.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = text; }
  if (!r.ok) {
    const msg = body && body.error ? body.error.message : (r.status + ' ' + r.statusText);
    if (r.status === 401) needToken(token() ? 'The token was not accepted: ' + msg : null);
    if (r.status === 429) needToken(msg);
    throw new Error(msg);
  }
  return body;
}

// Images (snapshots, live frames) are fetched with the token and shown as blob: URLs.
async function loadImage(img, url) {
  try {
    const r = await fetch(url, { headers: authHeaders(), cache: 'no-store' });
    if (r.status === 401) { needToken(); return; }
    if (!r.ok) return;
    const blob = await r.blob();
    if (img.dataset.blob) URL.revokeObjectURL(img.dataset.blob);
    img.dataset.blob = URL.createObjectURL(blob);
    img.src = img.dataset.blob;
  } catch (e) { console.error(e); }
}

async function whoami() {
  if (!token()) { $('#who').textContent = 'read-only'; return; }
  try { const u = await api('/api/me'); $('#who').textContent = u.name + ' (' + u.role + ')'; }
  catch (e) { $('#who').textContent = e.message; }
}

function refresh() {
  loadIncidents(); connect();
  if (state.view === 'cameras') loadCameras();
  if (state.view === 'map') drawMap();
  if (state.view === 'tuning') initTuning();
  if (state.selected) select(state.selected);
}

// ---- tabs
$$('.tab').forEach((b) => b.addEventListener('click', () => show(b.dataset.view)));
function show(v) {
  state.view = v;
  $$('.tab').forEach((b) => b.classList.toggle('active', b.dataset.view === v));
  $$('.view').forEach((s) => s.classList.toggle('active', s.id === 'view-' + v));
  if (v === 'cameras') loadCameras();
  if (v === 'map') drawMap();
  if (v === 'tuning') initTuning();
  if (v === 'deliveries') loadDead();
}

// ---- sound
$('#sound').addEventListener('click', () => {
  state.sound = !state.sound;
  if (state.sound && !state.audio) state.audio = new (window.AudioContext || window.webkitAudioContext)();
  $('#sound').textContent = state.sound ? 'sound ON' : 'sound off';
});
function beep() {
  if (!state.sound || !state.audio) return;
  const ctx = state.audio;
  for (let i = 0; i < 3; i++) {
    const o = ctx.createOscillator(); const g = ctx.createGain();
    o.type = 'square'; o.frequency.value = 880;
    g.gain.value = 0.15;
    o.connect(g); g.connect(ctx.destination);
    const t = ctx.currentTime + i * 0.3;
    o.start(t); o.stop(t + 0.18);
  }
}

// ---- incidents
$('#f-state').addEventListener('change', loadIncidents);
$('#f-kind').addEventListener('change', loadIncidents);
async function loadIncidents() {
  const q = new URLSearchParams();
  if ($('#f-state').value) q.set('state', $('#f-state').value);
  if ($('#f-kind').value) q.set('kind', $('#f-kind').value);
  try {
    state.incidents = await api('/api/incidents?' + q);
    renderIncidents();
    const open = await api('/api/incidents?state=new');
    $('#open-count').textContent = open.length;
  } catch (e) { console.error(e); }
}
const ACTIONS = {
  new: [['acknowledged', 'Ack', 'act-ack'], ['confirmed', 'Confirm', 'act-confirm'], ['false_alarm', 'False alarm', 'act-false']],
  acknowledged: [['confirmed', 'Confirm', 'act-confirm'], ['false_alarm', 'False alarm', 'act-false'], ['closed', 'Close', 'act-close']],
  confirmed: [['closed', 'Close', 'act-close'], ['false_alarm', 'False alarm', 'act-false']],
  false_alarm: [['closed', 'Close', 'act-close'], ['acknowledged', 'Reopen', 'act-reopen']],
  closed: [['acknowledged', 'Reopen', 'act-reopen']],
};
// Rows are updated in place, cell by cell, so an update arriving while the operator clicks
// never replaces the row or button under the pointer (only what changed is rewritten).
function incidentCells(i) {
  return [
    ['', `<span class="sev ${esc(i.severity)}">${esc(i.severity)}</span>`],
    ['', esc(i.kind)], ['', esc((i.cameras || []).join(', '))],
    ['state', esc(i.state)], ['', esc(i.confidence)],
    ['', esc(new Date(i.last_seen).toLocaleString())],
    ['actions', (ACTIONS[i.state] || []).map(([to, label, cls]) => `<button class="${cls}" data-to="${to}">${label}</button>`).join('') + '<button class="act-comment">Comment</button>'],
  ];
}
function renderIncidents() {
  const tb = $('#incidents tbody');
  if (!state.incidents.length) { tb.innerHTML = '<tr class="none"><td colspan="7" class="muted">No incidents.</td></tr>'; return; }
  $$('tr:not([data-id])', tb).forEach((tr) => tr.remove());
  const rows = new Map($$('tr[data-id]', tb).map((tr) => [tr.dataset.id, tr]));
  state.incidents.forEach((i, n) => {
    let tr = rows.get(i.id);
    rows.delete(i.id);
    if (!tr) { tr = document.createElement('tr'); tr.dataset.id = i.id; }
    const cls = [i.state === 'new' ? 'new' : '', state.selected === i.id ? 'sel' : ''].join(' ').trim();
    if (tr.className !== cls) tr.className = cls;
    incidentCells(i).forEach(([c, html], k) => {
      const td = tr.children[k] || tr.appendChild(document.createElement('td'));
      if (td.className !== c) td.className = c;
      if (td.lookoutHtml !== html) { td.innerHTML = html; td.lookoutHtml = html; }
    });
    if (tb.children[n] !== tr) tb.insertBefore(tr, tb.children[n] || null);
  });
  rows.forEach((tr) => tr.remove());
}
$('#incidents tbody').addEventListener('click', (ev) => {
  const tr = ev.target.closest('tr[data-id]');
  if (!tr) return;
  const id = tr.dataset.id;
  const b = ev.target.closest('button');
  if (b && b.dataset.to) { doTransition(id, b.dataset.to); return; }
  if (b && b.classList.contains('act-comment')) { doComment(id); return; }
  select(id);
});
async function doTransition(id, to) {
  const comment = to === 'acknowledged' ? '' : (prompt('Comment for ' + to.replace('_', ' ') + ' (optional)') || '');
  try { await api('/api/incidents/' + encodeURIComponent(id) + '/transition', { method: 'POST', body: JSON.stringify({ to, comment }) }); }
  catch (e) { alert(e.message); }
  await loadIncidents(); if (state.selected === id) select(id);
}
async function doComment(id) {
  const c = prompt('Comment'); if (!c) return;
  try { await api('/api/incidents/' + encodeURIComponent(id) + '/comment', { method: 'POST', body: JSON.stringify({ comment: c }) }); }
  catch (e) { alert(e.message); }
  if (state.selected === id) select(id);
}
async function select(id) {
  state.selected = id; renderIncidents();
  try {
    const d = await api('/api/incidents/' + encodeURIComponent(id));
    const snap = d.snapshots.length ? '<img alt="snapshot" class="snap">' : '<p class="muted">No snapshot.</p>';
    const loc = d.location ? `${d.location.point.lat.toFixed(5)}, ${d.location.point.lon.toFixed(5)} (${esc(d.location.method)})` : 'not located';
    $('#detail').innerHTML = `<h3>${esc(d.kind)} <span class="sev ${esc(d.severity)}">${esc(d.severity)}</span> <small class="muted">rev ${d.revision}</small></h3>
      ${snap}<p>Location: ${loc}<br>Cameras: ${esc(d.cameras.join(', '))}<br>State: <b>${esc(d.state)}</b></p>
      <h4>Notes</h4><ul class="notes">${d.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul>
      <h4>History</h4><ul class="notes">${d.transitions.map((t) => `<li>${esc(new Date(t.at).toLocaleString())} — <b>${esc(t.actor)}</b>: ${t.from === t.to ? 'comment' : esc(t.from) + ' → ' + esc(t.to)} ${t.comment ? '“' + esc(t.comment) + '”' : ''}</li>`).join('') || '<li class="muted">none</li>'}</ul>`;
    if (d.snapshots.length) loadImage($('#detail img.snap'), '/api/snapshots/' + encodeURIComponent(d.snapshots[d.snapshots.length - 1].id));
    const last = d.snapshots[d.snapshots.length - 1];
    if (last && last.training_frame) {
      const b = document.createElement('button'); b.id = 'label-btn'; b.textContent = 'Correct boxes';
      b.title = 'Mark the detector\'s boxes right or wrong and draw missed ones: this frame becomes training data for this site';
      b.addEventListener('click', () => openLabels(last.id));
      $('#detail img.snap').after(b);
    }
    loadClip(id);
  } catch (e) { $('#detail').textContent = e.message; }
}

// ---- incident clip: the video around the trigger (fetched with the token as a blob), the
// detector's boxes of the frame analysed nearest before the playing time drawn over it, and
// the boxes timeline (best score per analysed frame, one bar each) under it.
const CLASS_COLOR = { smoke: '#e0e0e0', fire: '#ff4a1c', person: '#3fa9f5' };
function boxColor(c) { return CLASS_COLOR[c] || '#ffd400'; }
// A multi-camera incident has one clip per camera: a picker switches between them.
async function loadClip(id, camera) {
  let tl, list = [];
  const q = camera ? '?camera=' + encodeURIComponent(camera) : '';
  try {
    [tl, list] = await Promise.all([
      api('/api/incidents/' + encodeURIComponent(id) + '/clip/boxes' + q),
      api('/api/incidents/' + encodeURIComponent(id) + '/clips').then((r) => r.clips || [], () => []),
    ]);
  } catch (_) { return; }
  if (state.selected !== id) return;
  const c = tl.clip;
  const old = $('#detail section.clip');
  const sec = document.createElement('section'); sec.className = 'clip';
  const picker = list.length > 1
    ? `<select id="clip-camera" title="Whose clip: every camera of the incident has its own">${list.map((x) =>
      `<option value="${esc(x.camera)}"${x.camera === c.camera ? ' selected' : ''}>${esc(x.camera)}</option>`).join('')}</select>`
    : '';
  sec.innerHTML = `<h4>Clip ${picker} <small class="muted">${c.duration_s.toFixed(1)} s · ${esc(c.camera)} · ${c.remuxed ? 'as recorded' : 're-encoded to H.264'}</small></h4>
    <div class="clip-stage"><video id="clip-video" muted playsinline controls preload="auto" data-camera="${esc(c.camera)}"></video><canvas id="clip-boxes"></canvas></div>
    <canvas id="clip-timeline" width="480" height="48" title="Best detection score per analysed frame; click to seek"></canvas>`;
  if (old) {
    const v = old.querySelector('video');
    if (v && v.src) URL.revokeObjectURL(v.src);
    old.replaceWith(sec);
  } else {
    const anchor = $('#detail img.snap') || $('#detail h3');
    if (!anchor) return;
    ($('#label-btn') || anchor).after(sec);
  }
  const pick = $('#clip-camera');
  if (pick) pick.addEventListener('change', () => loadClip(id, pick.value));
  const video = $('#clip-video'), over = $('#clip-boxes'), line = $('#clip-timeline');
  const frames = tl.frames.slice().sort((a, b) => a.t - b.t);
  const at = (t) => { let f = null; for (const x of frames) { if (x.t <= t + 0.02) f = x; else break; } return f; };
  const draw = () => {
    const w = video.clientWidth, h = video.clientHeight;
    if (over.width !== w || over.height !== h) { over.width = w; over.height = h; }
    const g = over.getContext('2d'); g.clearRect(0, 0, w, h);
    const vw = video.videoWidth || 16, vh = video.videoHeight || 9;
    // The picture inside the element (letterboxed to its aspect).
    const k = Math.min(w / vw, h / vh), pw = vw * k, ph = vh * k, ox = (w - pw) / 2, oy = (h - ph) / 2;
    const f = at(video.currentTime);
    if (f) {
      g.lineWidth = 2; g.font = '12px sans-serif';
      for (const b of f.boxes) {
        const sx = pw / f.width, sy = ph / f.height;
        g.strokeStyle = g.fillStyle = boxColor(b.class);
        g.strokeRect(ox + b.x0 * sx, oy + b.y0 * sy, (b.x1 - b.x0) * sx, (b.y1 - b.y0) * sy);
        g.fillText(`${b.class} ${b.score.toFixed(2)}`, ox + b.x0 * sx + 2, oy + b.y0 * sy - 3);
      }
    }
    const lg = line.getContext('2d'), W = line.width, H = line.height;
    lg.fillStyle = '#1d232b'; lg.fillRect(0, 0, W, H);
    const dur = c.duration_s || 1;
    for (const x of frames) {
      const best = x.boxes.reduce((m, b) => (b.score > m.score ? b : m), { score: 0, class: '' });
      if (!best.score) continue;
      lg.fillStyle = boxColor(best.class);
      const bh = Math.max(2, best.score * (H - 6));
      lg.fillRect(Math.floor((x.t / dur) * W), H - bh, Math.max(2, W / Math.max(frames.length, 1) - 1), bh);
    }
    const cx = Math.floor((video.currentTime / dur) * W);
    lg.fillStyle = '#ffffff'; lg.fillRect(cx, 0, 2, H);
    line.dataset.frames = String(frames.length);
    over.dataset.drawnAt = String(video.currentTime);
    over.dataset.boxes = String(f ? f.boxes.length : 0);
    if (!video.paused && !video.ended) requestAnimationFrame(draw);
  };
  video.addEventListener('play', () => requestAnimationFrame(draw));
  video.addEventListener('seeked', draw);
  video.addEventListener('loadeddata', draw);
  line.addEventListener('click', (ev) => {
    const r = line.getBoundingClientRect();
    video.currentTime = ((ev.clientX - r.left) / r.width) * (c.duration_s || 0);
  });
  try {
    const r = await fetch('/api/incidents/' + encodeURIComponent(id) + '/clip' + q, { headers: authHeaders(), cache: 'no-store' });
    if (!r.ok || !sec.isConnected) return;
    video.src = URL.createObjectURL(await r.blob());
    video.loop = true;
    video.play().catch(() => {});
  } catch (e) { console.error(e); }
}

// ---- cameras
async function loadCameras() {
  try { state.cameras = await api('/api/cameras'); } catch (e) { return; }
  if (state.view !== 'cameras') return;
  const grid = $('#grid');
  for (const c of state.cameras) {
    let card = grid.querySelector(`[data-cam="${CSS.escape(c.id)}"]`);
    if (!card) {
      card = document.createElement('div'); card.className = 'cam'; card.dataset.cam = c.id;
      card.innerHTML = `<div class="view-box"><span class="nofeed">no frame yet</span><img alt=""><svg preserveAspectRatio="none"></svg></div><div class="meta"><b></b><span class="origin"></span><span class="st"></span></div>` +
        `<div class="cam-actions"><button class="cam-edit">Edit</button><button class="cam-toggle"></button><button class="cam-zones">Zones</button><button class="cam-remove">Remove</button></div>`;
      grid.appendChild(card);
      $('.cam-edit', card).addEventListener('click', () => openCameraForm(card.dataset.cam));
      $('.cam-toggle', card).addEventListener('click', () => toggleCamera(card.dataset.cam));
      $('.cam-zones', card).addEventListener('click', () => openZoneEditor(card.dataset.cam));
      $('.cam-remove', card).addEventListener('click', () => removeCamera(card.dataset.cam));
    }
    const st = (c.status && c.status.state) || 'unknown';
    $('.meta b', card).textContent = c.name;
    $('.origin', card).textContent = c.origin === 'api' ? 'added in the UI' : (c.overlay ? 'file, edited in the UI' : 'config file');
    $('.cam-toggle', card).textContent = c.enabled ? 'Disable' : 'Enable';
    $('.cam-remove', card).hidden = c.origin !== 'api';
    card.classList.toggle('disabled', !c.enabled);
    const stEl = $('.st', card); stEl.className = 'st st-' + st;
    stEl.textContent = st + (c.fps != null ? ' · ' + c.fps.toFixed(1) + ' fps' : '');
    $('img', card).style.display = c.has_frame ? '' : 'none';
    if (c.has_frame) loadImage($('img', card), `/api/cameras/${encodeURIComponent(c.id)}/frame.jpg`);
    const w = c.latest ? c.latest.width : 1, h = c.latest ? c.latest.height : 1;
    const svg = $('svg', card); svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
    const poly = (pts, cls) => `<polygon points="${pts.map((p) => (p[0] * w) + ',' + (p[1] * h)).join(' ')}" class="${cls}"/>`;
    svg.innerHTML =
      c.zones.map((z) => poly(z.polygon, 'zone') + `<text x="${z.polygon[0][0] * w + 4}" y="${z.polygon[0][1] * h + 16}" fill="#5ac8fa" font-size="${h / 30}">${esc(z.name)}</text>`).join('') +
      c.masks.map((m) => poly(m.polygon, 'mask')).join('') +
      (c.latest ? c.latest.detections.map((d) => {
        const col = d.class === 'fire' ? '#ff3b30' : d.class === 'smoke' ? '#ff9500' : '#ffcc00';
        return `<rect x="${d.bbox.x1}" y="${d.bbox.y1}" width="${d.bbox.x2 - d.bbox.x1}" height="${d.bbox.y2 - d.bbox.y1}" fill="none" stroke="${col}" stroke-width="${Math.max(2, w / 300)}"/>` +
          `<text x="${d.bbox.x1}" y="${Math.max(d.bbox.y1 - 4, 12)}" fill="${col}" font-size="${h / 28}">${esc(d.class)} ${d.score.toFixed(2)}</text>`;
      }).join('') : '');
    $$('polygon.zone', svg).forEach((p) => { p.setAttribute('fill', '#5ac8fa22'); p.setAttribute('stroke', '#5ac8fa'); });
    $$('polygon.mask', svg).forEach((p) => { p.setAttribute('fill', '#00000088'); p.setAttribute('stroke', '#888'); });
  }
}
setInterval(() => { if (state.view === 'cameras') loadCameras(); }, 1000);
// Cards of cameras that are gone (removed) go too.
function pruneCards() {
  const ids = new Set(state.cameras.map((c) => c.id));
  $$('#grid .cam').forEach((card) => { if (!ids.has(card.dataset.cam)) card.remove(); });
}

// ---- cameras: add / edit / disable / remove (admin), validated as a config file's entry
const camForm = { id: null, original: null };
const FORM_KEYS = ['id', 'name', 'source.kind', 'source.url', 'source.path', 'source.port', 'fps', 'geo.lat', 'geo.lon', 'geo.heading_deg', 'geo.hfov_deg', 'geo.range_m', 'models', 'enabled'];
const field = (k) => $(`#cam-form [name="${k}"]`);
function showSourceFields() {
  const kind = field('source.kind').value;
  $$('#cam-form .src').forEach((l) => { l.hidden = true; });
  const show = { rtsp: 'url', rtmp: 'url', srt: 'url', udp_ts: 'port', file: 'path', test: null }[kind];
  if (show) $(`#cam-form .src-${show}`).hidden = false;
}
field('source.kind').addEventListener('change', showSourceFields);
function clearFieldErrors() { $$('#cam-form .err').forEach((e) => { e.textContent = ''; }); $('#cam-form-msg').textContent = ''; }
// The form's camera as a [[cameras]] entry (keys left empty are not set).
function formCamera() {
  const num = (k) => (field(k).value.trim() === '' ? undefined : Number(field(k).value));
  const str = (k) => (field(k).value.trim() === '' ? undefined : field(k).value.trim());
  const kind = field('source.kind').value;
  const source = { kind };
  if (['rtsp', 'rtmp', 'srt'].includes(kind)) source.url = field('source.url').value.trim();
  if (kind === 'file') source.path = field('source.path').value.trim();
  if (kind === 'udp_ts') source.port = num('source.port');
  const cam = { id: field('id').value.trim(), name: str('name'), enabled: field('enabled').checked, source, fps: num('fps') };
  const geo = {};
  for (const k of ['lat', 'lon', 'heading_deg', 'hfov_deg', 'range_m']) { const v = num('geo.' + k); if (v !== undefined) geo[k] = v; }
  if (Object.keys(geo).length) cam.geo = geo;
  const models = field('models').value.split(',').map((m) => m.trim()).filter(Boolean);
  if (models.length) cam.models = models;
  for (const k of Object.keys(cam)) if (cam[k] === undefined) delete cam[k];
  return cam;
}
// The JSON merge patch (RFC 7386) that turns `a` into `b`.
function mergeDiff(a, b) {
  const out = {};
  for (const k of Object.keys(a || {})) if (!(k in b)) out[k] = null;
  for (const [k, v] of Object.entries(b)) {
    const o = a ? a[k] : undefined;
    if (JSON.stringify(o) === JSON.stringify(v)) continue;
    out[k] = (v && typeof v === 'object' && !Array.isArray(v) && o && typeof o === 'object' && !Array.isArray(o)) ? mergeDiff(o, v) : v;
  }
  return out;
}
// What the form can show of a camera's entry (other keys are left as they are).
function formView(cfg) {
  const src = { kind: cfg.source.kind };
  for (const k of ['url', 'path', 'port']) if (cfg.source[k] !== undefined) src[k] = cfg.source[k];
  const v = { id: cfg.id, enabled: cfg.enabled !== false, source: src };
  if (cfg.name) v.name = cfg.name;
  if (cfg.fps !== null && cfg.fps !== undefined) v.fps = cfg.fps;
  if (cfg.geo) {
    v.geo = {};
    for (const k of ['lat', 'lon', 'heading_deg', 'hfov_deg', 'range_m']) if (cfg.geo[k] !== null && cfg.geo[k] !== undefined) v.geo[k] = cfg.geo[k];
  }
  if (cfg.models && cfg.models.length) v.models = cfg.models;
  return v;
}
function openCameraForm(id) {
  const form = $('#cam-form');
  form.reset(); clearFieldErrors();
  camForm.id = id || null;
  camForm.original = null;
  $('#cam-form-title').textContent = id ? `Edit camera ${id}` : 'Add camera';
  field('id').disabled = !!id;
  if (id) {
    const c = state.cameras.find((x) => x.id === id);
    if (!c) return;
    const cfg = c.config;
    camForm.original = formView(cfg);
    field('id').value = cfg.id; field('name').value = cfg.name || '';
    field('source.kind').value = cfg.source.kind;
    field('source.url').value = cfg.source.url || ''; field('source.path').value = cfg.source.path || '';
    field('source.port').value = cfg.source.port ?? '';
    field('fps').value = cfg.fps ?? '';
    const g = cfg.geo || {};
    for (const k of ['lat', 'lon', 'heading_deg', 'hfov_deg', 'range_m']) field('geo.' + k).value = g[k] ?? '';
    field('models').value = (cfg.models || []).join(', ');
    field('enabled').checked = cfg.enabled !== false;
  }
  showSourceFields();
  form.hidden = false;
  field(id ? 'name' : 'id').focus();
}
// Shows each field error of a 422 next to its field (`cameras[2].source.url` → source.url).
function showFieldErrors(err) {
  const rest = [];
  for (const f of err.fields || []) {
    const key = f.path.replace(/^cameras\[\d+\]\.?/, '').replace(/^(camera|patch)\.?/, '').replace(/\[\d+\]$/, '');
    const k = FORM_KEYS.includes(key) ? key : null;
    const el = k && $(`#cam-form .err[data-for="${k}"]`);
    if (el) el.textContent = f.message; else rest.push(f.path + ': ' + f.message);
  }
  $('#cam-form-msg').textContent = rest.length ? rest.join('; ') : (err.fields && err.fields.length ? 'Not saved: see the fields marked.' : 'Not saved: ' + err.message);
}
// A camera change; errors of the API come back as { error: { message, fields } }.
async function cameraRequest(method, path, body) {
  const r = await fetch(path, { method, headers: authHeaders({ 'Content-Type': 'application/json' }), body: body ? JSON.stringify(body) : undefined });
  const text = await r.text();
  let v = null;
  try { v = text ? JSON.parse(text) : null; } catch (_) { v = null; }
  if (r.status === 401) needToken();
  if (!r.ok) throw (v && v.error) || { message: r.status + ' ' + r.statusText };
  return v;
}
function describeLive(r) {
  const l = r.live || {};
  if (!l.applied) return l.message || 'stored; applies at the next start';
  const parts = [];
  if (l.started && l.started.length) parts.push('started ' + l.started.join(', '));
  if (l.stopped && l.stopped.length) parts.push('stopped ' + l.stopped.join(', '));
  if (l.restarted && l.restarted.length) parts.push('restarted ' + l.restarted.join(', '));
  return 'applied' + (parts.length ? ': ' + parts.join('; ') : '');
}
$('#cam-add').addEventListener('click', () => openCameraForm(null));
$('#cam-cancel').addEventListener('click', () => { $('#cam-form').hidden = true; });
$('#cam-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  clearFieldErrors();
  const cam = formCamera();
  const comment = field('comment').value.trim();
  try {
    let r;
    if (camForm.id) {
      const patch = mergeDiff(camForm.original, cam);
      delete patch.id;
      if (!Object.keys(patch).length) { $('#cam-form-msg').textContent = 'Nothing changed.'; return; }
      r = await cameraRequest('PATCH', `/api/cameras/${encodeURIComponent(camForm.id)}`, { patch, comment });
    } else {
      r = await cameraRequest('POST', '/api/cameras', { camera: cam, comment });
    }
    $('#cam-form').hidden = true;
    $('#cam-msg').textContent = `Camera ${r.camera} saved as config version ${r.version} by ${r.author}: ${describeLive(r)}.`;
    await loadCameras(); pruneCards();
  } catch (e) { showFieldErrors(e); }
});
async function toggleCamera(id) {
  const c = state.cameras.find((x) => x.id === id);
  if (!c) return;
  try {
    const r = await cameraRequest('PATCH', `/api/cameras/${encodeURIComponent(id)}`, { patch: { enabled: !c.enabled } });
    $('#cam-msg').textContent = `Camera ${id} ${c.enabled ? 'disabled' : 'enabled'} (config version ${r.version}): ${describeLive(r)}.`;
    await loadCameras();
  } catch (e) { $('#cam-msg').textContent = `Camera ${id} not changed: ${e.message}`; }
}
async function removeCamera(id) {
  if (!window.confirm(`Remove camera ${id}?`)) return;
  try {
    const r = await cameraRequest('DELETE', `/api/cameras/${encodeURIComponent(id)}`);
    $('#cam-msg').textContent = `Camera ${id} removed (config version ${r.version}): ${describeLive(r)}.`;
    await loadCameras(); pruneCards();
  } catch (e) { $('#cam-msg').textContent = `Camera ${id} not removed: ${e.message}`; }
}

// ---- zone editor: click the polygon's points on the camera's live frame, name, save
// (a change of [rules.cameras.ID] zones through the rules API, kept in the config history)
const zoneEd = { cam: null, points: [], zones: [] };
async function openZoneEditor(id) {
  zoneEd.cam = id; zoneEd.points = [];
  $('#zone-cam').textContent = id; $('#zone-msg').textContent = ''; $('#zone-name').value = '';
  $('#zone-editor').hidden = false;
  const img = $('#zone-img');
  img.removeAttribute('src');
  try {
    const cfg = await api('/api/config');
    const rc = (cfg.rules.cameras || {})[id];
    zoneEd.zones = rc && rc.zones ? rc.zones : [];
  } catch (e) { zoneEd.zones = []; }
  drawZones();
  await loadImage(img, `/api/cameras/${encodeURIComponent(id)}/frame.jpg`);
  if (!img.getAttribute('src')) $('#zone-msg').textContent = 'No live frame from this camera yet.';
}
function drawZones() {
  const pts = (p) => p.map((q) => q[0] + ',' + q[1]).join(' ');
  const svg = $('#zone-svg');
  svg.innerHTML = zoneEd.zones.map((z) => `<polygon class="zone-old" points="${pts(z.polygon)}"/>`).join('') +
    (zoneEd.points.length ? `<polygon class="zone-new" points="${pts(zoneEd.points)}"/>` : '') +
    zoneEd.points.map((p) => `<circle class="zone-pt" cx="${p[0]}" cy="${p[1]}" r="0.008"/>`).join('');
}
$('#zone-svg').addEventListener('click', (ev) => {
  const r = $('#zone-svg').getBoundingClientRect();
  const x = Math.min(1, Math.max(0, (ev.clientX - r.left) / r.width));
  const y = Math.min(1, Math.max(0, (ev.clientY - r.top) / r.height));
  zoneEd.points.push([Math.round(x * 1e4) / 1e4, Math.round(y * 1e4) / 1e4]);
  drawZones();
});
$('#zone-undo').addEventListener('click', () => { zoneEd.points.pop(); drawZones(); });
$('#zone-clear').addEventListener('click', () => { zoneEd.points = []; drawZones(); });
$('#zone-close').addEventListener('click', () => { $('#zone-editor').hidden = true; });
$('#zone-save').addEventListener('click', async () => {
  const name = $('#zone-name').value.trim();
  if (!name) { $('#zone-msg').textContent = 'Name the zone first.'; return; }
  if (zoneEd.points.length < 3) { $('#zone-msg').textContent = 'A zone needs at least 3 points: click on the frame.'; return; }
  const others = zoneEd.zones.filter((z) => z.name !== name);
  const old = zoneEd.zones.find((z) => z.name === name);
  const zone = { ...(old || {}), name, polygon: zoneEd.points };
  const patch = { cameras: { [zoneEd.cam]: { zones: [...others, zone] } } };
  try {
    const r = await api('/api/config/rules', { method: 'PATCH', body: JSON.stringify({ patch, comment: `zone ${name} drawn on ${zoneEd.cam}` }) });
    zoneEd.zones = [...others, zone]; zoneEd.points = [];
    drawZones();
    $('#zone-msg').textContent = `Zone ${name} saved as config version ${r.version} by ${r.author}.`;
    loadCameras();
  } catch (e) { $('#zone-msg').textContent = 'Not saved: ' + e.message; }
});

// ---- map (Leaflet, vendored at setup time and served by the engine; the basemap is what
// [server.map] says: a tile URL, the engine's MBTiles or PMTiles tiles, or offline the
// coastlines (Natural Earth land, vendored and embedded) under a graticule)
function dest(lat, lon, brg, dist) {
  const R = 6371008.8, d = dist / R, b = brg * Math.PI / 180, p1 = lat * Math.PI / 180, l1 = lon * Math.PI / 180;
  const p2 = Math.asin(Math.sin(p1) * Math.cos(d) + Math.cos(p1) * Math.sin(d) * Math.cos(b));
  const l2 = l1 + Math.atan2(Math.sin(b) * Math.sin(d) * Math.cos(p1), Math.cos(d) - Math.sin(p1) * Math.sin(p2));
  return [p2 * 180 / Math.PI, l2 * 180 / Math.PI];
}
const mapState = { map: null, info: null, layers: null, grat: null, land: null, fitted: false };
// Hotspot colours by age of the satellite pass: [hours, colour].
const HS_AGE = [[3, '#ff2d20'], [12, '#ff8a00'], [24, '#ffd000'], [Infinity, '#9a8f80']];
const ll = (c) => [c[1], c[0]];
// The engine's MBTiles or PMTiles tiles, fetched with the token (an <img src> cannot send one).
function authTiles(info) {
  const Tiles = L.GridLayer.extend({
    createTile(c, done) {
      const img = document.createElement('img');
      img.alt = ''; img.dataset.z = c.z; img.dataset.x = c.x; img.dataset.y = c.y;
      const missing = () => { img.classList.add('tile-missing'); done(null, img); };
      fetch(`/api/tiles/${c.z}/${c.x}/${c.y}`, { headers: authHeaders() })
        .then((r) => (r.ok ? r.blob() : null))
        .then((blob) => {
          if (!blob) { missing(); return; }
          img.onload = () => { URL.revokeObjectURL(img.src); done(null, img); };
          img.onerror = missing;
          img.src = URL.createObjectURL(blob);
        })
        .catch((e) => done(e, img));
      return img;
    },
  });
  return new Tiles({ maxZoom: 22, minNativeZoom: info.min_zoom, maxNativeZoom: info.max_zoom, attribution: esc(info.attribution || '') });
}
// Offline basemap: parallels and meridians, about 4 to 10 across the view, labelled.
function drawGraticule() {
  const m = mapState.map, g = mapState.grat;
  g.clearLayers();
  const b = m.getBounds(), s = Math.max(b.getSouth(), -85), n = Math.min(b.getNorth(), 85), w = b.getWest(), e = b.getEast();
  const span = Math.max(e - w, n - s);
  const step = [30, 10, 5, 2, 1, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001].find((v) => span / v >= 4) || 0.001;
  const digits = step < 1 ? Math.ceil(-Math.log10(step) - 1e-9) : 0;
  const line = { className: 'graticule', color: '#2e3a46', weight: 1, interactive: false };
  const label = (at, text) => L.marker(at, { interactive: false, keyboard: false, icon: L.divIcon({ className: 'grat-label', html: esc(text), iconSize: null, iconAnchor: [-3, 14] }) }).addTo(g);
  for (let k = Math.ceil(s / step); k * step <= n; k++) {
    const lat = k * step;
    L.polyline([[lat, w], [lat, e]], line).addTo(g);
    label([lat, w], Math.abs(lat).toFixed(digits) + '°' + (lat < 0 ? 'S' : 'N'));
  }
  for (let k = Math.ceil(w / step); k * step <= e; k++) {
    const lon = k * step;
    L.polyline([[s, lon], [n, lon]], line).addTo(g);
    label([s, lon], Math.abs(lon).toFixed(digits) + '°' + (lon < 0 ? 'W' : 'E'));
  }
}
// Offline basemap: Natural Earth 1:50m land (TopoJSON, embedded in the engine), in its own
// pane under the graticule and the cameras.
function drawCoastlines(m) {
  m.createPane('land').style.zIndex = 250;
  if (!window.topojson) { $('#map-msg').textContent = 'The coastlines are not in this build: run scripts/setup.sh and rebuild.'; return; }
  fetch('/vendor/coastlines/land-50m.json')
    .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`coastlines: HTTP ${r.status}`))))
    .then((topo) => {
      mapState.land = L.geoJSON(topojson.feature(topo, topo.objects.land), {
        pane: 'land', interactive: false, className: 'land',
        style: { color: '#6b8299', weight: 1, opacity: 1, fillColor: '#1b242d', fillOpacity: 1 },
        attribution: 'Coastlines: <a href="https://www.naturalearthdata.com">Natural Earth</a> (public domain)',
      }).addTo(m);
    })
    .catch((e) => { $('#map-msg').textContent = e.message; });
}
function initMap(el) {
  const info = mapState.info;
  // Controls on the right: the graticule's labels run along the left and bottom edges.
  const m = L.map(el, { worldCopyJump: true, zoomControl: false });
  L.control.zoom({ position: 'topright' }).addTo(m);
  if (info.basemap === 'url') {
    L.tileLayer(info.tile_url, { maxZoom: 19, attribution: esc(info.attribution || '') }).addTo(m);
  } else if (info.basemap === 'mbtiles' || info.basemap === 'pmtiles') {
    authTiles(info).addTo(m);
    if (info.format && !/^(png|jpe?g|webp)$/i.test(info.format)) $('#map-msg').textContent = `The MBTiles file holds ${info.format} tiles; the map draws raster tiles (png, jpg, webp) only.`;
  } else {
    el.classList.add('offline');
    drawCoastlines(m);
    mapState.grat = L.layerGroup().addTo(m);
    m.on('moveend', drawGraticule);
    $('#map-msg').textContent = info.error
      ? `${info.error} — showing the offline basemap.`
      : 'No basemap configured ([server.map]): coastlines and graticule.';
  }
  L.control.scale({ imperial: false, position: 'bottomright' }).addTo(m);
  mapState.layers = L.layerGroup().addTo(m);
  mapState.map = m;
}
function openIncident(id) { show('incidents'); select(id); }
async function drawMap() {
  const el = $('#map');
  if (!window.L) {
    el.classList.add('missing');
    el.textContent = 'The map library (Leaflet) is not in this build: run scripts/setup.sh, which vendors it from the npm registry, and rebuild.';
    return;
  }
  let fc;
  try {
    if (!mapState.info) mapState.info = await api('/api/map');
    fc = await api('/api/geojson');
  } catch (e) { $('#map-msg').textContent = e.message; return; }
  if (!el.clientWidth) return; // hidden: drawn when the view is shown
  if (!mapState.map) initMap(el); else mapState.map.invalidateSize();
  const layers = mapState.layers, feats = fc.features, of = (k) => feats.filter((f) => f.properties.feature === k && f.geometry);
  // The view first (paths get their elements once the map has one), on the first draw
  // only: later updates keep the operator's zoom and pan.
  if (!mapState.fitted) {
    const pts = [];
    for (const f of of('camera')) {
      const p = f.properties, [lon, lat] = f.geometry.coordinates;
      pts.push([lat, lon]);
      for (const brg of [0, 90, 180, 270]) pts.push(dest(lat, lon, brg, p.range_m || 1000));
    }
    of('incident').filter((f) => f.geometry.type === 'Point').forEach((f) => pts.push(ll(f.geometry.coordinates)));
    if (!pts.length) of('hotspot').forEach((f) => pts.push(ll(f.geometry.coordinates)));
    if (pts.length) mapState.map.fitBounds(L.latLngBounds(pts).pad(0.05), { animate: false });
    else mapState.map.setView([20, 0], 2, { animate: false });
    mapState.fitted = true;
    if (mapState.grat) drawGraticule();
  }
  layers.clearLayers();
  for (const f of of('fov')) {
    L.polygon(f.geometry.coordinates[0].map(ll), { className: 'cone', color: '#5ac8fa', weight: 1, opacity: 0.7, fillOpacity: 0.08, interactive: false }).addTo(layers);
  }
  for (const f of of('uncertainty')) {
    L.polygon(f.geometry.coordinates[0].map(ll), { className: 'ellipse', color: '#ffcc00', weight: 2, dashArray: '6 4', fillOpacity: 0.12, interactive: false }).addTo(layers);
  }
  for (const f of of('bearing')) {
    L.polyline(f.geometry.coordinates.map(ll), { className: 'bearing', color: '#ffcc00', weight: 2, opacity: 0.9, interactive: false }).addTo(layers);
  }
  const now = Date.now();
  for (const f of of('hotspot')) {
    const p = f.properties, hours = (now - new Date(p.acquired_at).getTime()) / 3.6e6;
    const k = HS_AGE.findIndex(([h]) => hours < h);
    L.circleMarker(ll(f.geometry.coordinates), { className: 'hotspot age-' + k, radius: 5, color: '#000', weight: 1, fillColor: HS_AGE[k][1], fillOpacity: 0.95 })
      .bindTooltip(`${esc(p.source)} ${esc(new Date(p.acquired_at).toLocaleString())} (${hours.toFixed(1)} h ago)${p.frp != null ? ', ' + p.frp.toFixed(1) + ' MW' : ''}`).addTo(layers);
  }
  for (const f of of('incident')) {
    const p = f.properties, g = f.geometry, open = () => openIncident(f.id);
    const tip = `${esc(p.kind)} · ${esc(p.state)} · ${esc(p.location_method || 'not located')} — click for the detail`;
    if (g.type === 'Point') {
      const mk = L.circleMarker(ll(g.coordinates), { className: 'incident', radius: 9, color: '#fff', weight: 2, fillColor: '#ff3b30', fillOpacity: 1 })
        .bindTooltip(tip).on('click', open).addTo(layers);
      mk.getElement().dataset.incident = f.id;
    } else {
      const polys = g.type === 'Polygon' ? [g.coordinates] : g.type === 'GeometryCollection' ? g.geometries.filter((x) => x.type === 'Polygon').map((x) => x.coordinates) : [];
      for (const poly of polys) {
        const cone = L.polygon(poly[0].map(ll), { className: 'incident-cone', color: '#ff3b30', weight: 1, fillOpacity: 0.15 }).bindTooltip(tip).on('click', open).addTo(layers);
        cone.getElement().dataset.incident = f.id;
      }
    }
  }
  for (const f of of('camera')) {
    const p = f.properties, [lon, lat] = f.geometry.coordinates;
    L.polyline([[lat, lon], dest(lat, lon, p.heading_deg, p.range_m)], { className: 'heading', color: '#5ac8fa', weight: 1.5, dashArray: '4 4', interactive: false }).addTo(layers);
    const cam = L.circleMarker([lat, lon], { className: 'camera', radius: 7, color: '#0c0f12', weight: 2, fillColor: '#5ac8fa', fillOpacity: 1 })
      .bindTooltip(esc(p.name), { permanent: true, direction: 'bottom', offset: [0, 6], className: 'cam-label' })
      .bindPopup(`<b>${esc(p.name)}</b><br>heading ${Math.round(p.heading_deg)}°` + (p.hfov_deg ? `, field of view ${Math.round(p.hfov_deg)}°` : '') + `, range ${(p.range_m / 1000).toFixed(1)} km`).addTo(layers);
    cam.getElement().dataset.camera = p.camera;
  }
}

// ---- tuning
let tuneTimer = null, tuneSeq = 0, tuningReady = false;
async function initTuning() {
  if (!state.cameras.length) { try { state.cameras = await api('/api/cameras'); } catch (e) { return; } }
  const sel = $('#tune-camera');
  if (!tuningReady) {
    sel.innerHTML = state.cameras.map((c) => `<option value="${esc(c.id)}">${esc(c.name)}</option>`).join('');
    ['#tune-camera', '#tune-class'].forEach((s) => $(s).addEventListener('change', loadCurrent));
    ['#tune-threshold', '#tune-k', '#tune-n'].forEach((s) => $(s).addEventListener('input', () => { labels(); scheduleReplay(); if (s === '#tune-threshold') drawCurve(); else scheduleCurve(); }));
    initCurveDrag();
    $('#tune-apply').addEventListener('click', applyTuning);
    $('#mask-propose').addEventListener('click', proposeMasks);
    tuningReady = true;
    loadPrPlots();
    await loadCurrent();
  }
  loadAudit();
}
// The models' precision/recall plots on the site's evaluation set (`lookout eval --plot`).
async function loadPrPlots() {
  let r; try { r = await api('/api/tuning/pr'); } catch (_) { return; }
  const box = $('#pr-plots');
  if (!r.plots.length) { box.innerHTML = '<p class="muted">No model has a <code>pr_plot</code> ([models.NAME] pr_plot = the PNG of <code>lookout eval --plot</code>).</p>'; return; }
  box.innerHTML = r.plots.map((p) => `<figure><img class="pr-plot" data-model="${esc(p.model)}" alt="precision/recall of ${esc(p.model)}"><figcaption>${esc(p.model)}</figcaption></figure>`).join('');
  for (const p of r.plots) loadImage($(`#pr-plots img[data-model="${CSS.escape(p.model)}"]`), p.url);
}
function labels() {
  if (+$('#tune-k').value > +$('#tune-n').value) $('#tune-k').value = $('#tune-n').value;
  $('#tune-threshold-v').textContent = (+$('#tune-threshold').value).toFixed(2);
  $('#tune-k-v').textContent = $('#tune-k').value; $('#tune-n-v').textContent = $('#tune-n').value;
}
function setting() {
  return { camera: $('#tune-camera').value, class: $('#tune-class').value, threshold: +(+$('#tune-threshold').value).toFixed(2),
    persistence: { k: +$('#tune-k').value, n: +$('#tune-n').value } };
}
async function loadCurrent() {
  try {
    const c = await api(`/api/tuning/current?camera=${encodeURIComponent($('#tune-camera').value)}&class=${encodeURIComponent($('#tune-class').value)}`);
    $('#tune-threshold').value = c.threshold; $('#tune-n').value = c.persistence.n; $('#tune-k').value = c.persistence.k;
    $('#tune-current').textContent = `threshold ${c.threshold.toFixed(2)}, ${c.persistence.k} of ${c.persistence.n} frames`;
    labels(); scheduleReplay(0); scheduleCurve(400);
  } catch (e) { $('#tune-msg').textContent = e.message; $('#tune-msg').dataset.kind = 'replay'; }
}
function scheduleReplay(delay = 150) { clearTimeout(tuneTimer); tuneTimer = setTimeout(replay, delay); }
async function replay() {
  const seq = ++tuneSeq, s = setting();
  $('#tune-alarms').parentElement.classList.add('busy');
  try {
    const r = await api('/api/tuning/replay', { method: 'POST', body: JSON.stringify(s) });
    if (seq !== tuneSeq) return;
    $('#tune-alarms').textContent = r.alarms;
    $('#tune-alarms').dataset.threshold = s.threshold.toFixed(2);
    $('#tune-per-day').textContent = r.alarms_per_day.toFixed(1);
    $('#tune-caught').textContent = `${r.caught} / ${r.confirmed}`;
    const v = r.verification, held = v ? Object.entries(v.held_back) : [];
    $('#tune-verify').hidden = !v;
    $('#tune-verify').textContent = v ? `Temporal verification: ${v.verified} track(s) verified; ${held.reduce((a, [, n]) => a + n, 0)} past the threshold held back${held.length ? ' (' + held.map(([k, n]) => `${k.replace(/_/g, ' ')} ${n}`).join(', ') + ')' : ''}.` : '';
    $('#tune-window').textContent = r.frames ? `${r.frames} recorded frames, ${new Date(r.from).toLocaleString()} – ${new Date(r.until).toLocaleString()}` : 'No recorded frames for this camera yet.';
    // Clear only a replay error: an apply confirmation stays (the apply itself replays).
    if ($('#tune-msg').dataset.kind === 'replay') { $('#tune-msg').textContent = ''; $('#tune-msg').dataset.kind = ''; }
  } catch (e) { if (seq === tuneSeq) { $('#tune-msg').textContent = e.message; $('#tune-msg').dataset.kind = 'replay'; } }
}
// ---- tuning curve: alarms/day (x) against event recall (y), one point per threshold; the
// running threshold ringed, the proposed one a handle dragged along the curve (it sets the
// threshold slider, which replays and applies as before).
const curveState = { data: null, seq: 0, timer: null, drag: false, ctl: null };
const CV = { l: 58, r: 540, t: 14, b: 246, h: 300 };
function curveAxes(d) {
  const maxX = Math.max(1, ...d.points.map((p) => p.alarms_per_day)) * 1.08;
  return { maxX, X: (v) => CV.l + (v / maxX) * (CV.r - CV.l), Y: (r) => CV.b - r * (CV.b - CV.t) };
}
function niceStep(raw) {
  const e = Math.pow(10, Math.floor(Math.log10(raw))), m = raw / e;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * e;
}
function scheduleCurve(delay = 400) { clearTimeout(curveState.timer); curveState.timer = setTimeout(loadCurve, delay); }
async function loadCurve() {
  const seq = ++curveState.seq;
  // A newer request replaces an older one (the server stops the old one's replays).
  if (curveState.ctl) curveState.ctl.abort();
  const ctl = new AbortController(); curveState.ctl = ctl;
  const q = new URLSearchParams({ camera: $('#tune-camera').value, class: $('#tune-class').value, k: $('#tune-k').value, n: $('#tune-n').value });
  $('#curve-msg').textContent = 'Replaying the recorded frames at each threshold…';
  try {
    const d = await api('/api/tuning/curve?' + q, { signal: ctl.signal });
    if (seq !== curveState.seq) return;
    curveState.data = d;
    $('#curve-msg').textContent = d.frames ? (d.confirmed ? `${d.confirmed} confirmed fire(s) in the window.` : 'No confirmed fires on this camera in the window: recall is unknown (drawn at 0).') : 'No recorded frames for this camera yet.';
    drawCurve();
  } catch (e) { if (seq === curveState.seq && !ctl.signal.aborted) $('#curve-msg').textContent = e.message; }
}
// Where threshold t lies on the curve (between the replayed thresholds around it).
function curveAt(d, t) {
  const ps = d.points, rec = (p) => p.recall ?? 0;
  let i = ps.findIndex((p) => p.threshold >= t - 1e-6);
  if (i < 0) i = ps.length - 1;
  if (i === 0 || Math.abs(ps[i].threshold - t) < 1e-6) return [ps[i].alarms_per_day, rec(ps[i])];
  const a = ps[i - 1], b = ps[i], f = (t - a.threshold) / (b.threshold - a.threshold);
  return [a.alarms_per_day + f * (b.alarms_per_day - a.alarms_per_day), rec(a) + f * (rec(b) - rec(a))];
}
function drawCurve() {
  const d = curveState.data, svg = $('#tune-curve');
  if (!d || !d.points.length) { if (svg) svg.innerHTML = ''; return; }
  const { maxX, X, Y } = curveAxes(d), rec = (p) => p.recall ?? 0;
  let out = '';
  for (let i = 0; i <= 5; i++) {
    const y = Y(i / 5);
    out += `<line class="grid" x1="${CV.l}" y1="${y}" x2="${CV.r}" y2="${y}"/><text class="tick" x="${CV.l - 7}" y="${y + 4}" text-anchor="end">${(i / 5).toFixed(1)}</text>`;
  }
  const step = niceStep(maxX / 6);
  for (let k = 0; k * step <= maxX + 1e-9; k++) {
    const v = k * step, x = X(v);
    out += `<line class="grid" x1="${x}" y1="${CV.t}" x2="${x}" y2="${CV.b}"/><text class="tick" x="${x}" y="${CV.b + 16}" text-anchor="middle">${+v.toFixed(2)}</text>`;
  }
  out += `<line class="axis" x1="${CV.l}" y1="${CV.b}" x2="${CV.r}" y2="${CV.b}"/><line class="axis" x1="${CV.l}" y1="${CV.t}" x2="${CV.l}" y2="${CV.b}"/>`;
  out += `<text class="title" x="${(CV.l + CV.r) / 2}" y="${CV.h - 14}" text-anchor="middle">alarms per day</text>`;
  out += `<text class="title" transform="translate(16 ${(CV.t + CV.b) / 2}) rotate(-90)" text-anchor="middle">event recall</text>`;
  out += `<polyline class="curve" points="${d.points.map((p) => X(p.alarms_per_day) + ',' + Y(rec(p))).join(' ')}"/>`;
  for (const p of d.points) {
    const x = X(p.alarms_per_day), y = Y(rec(p)), t = p.threshold.toFixed(2);
    out += `<circle class="pt" cx="${x}" cy="${y}" r="3.5" data-threshold="${t}" data-alarms-per-day="${p.alarms_per_day}" data-recall="${p.recall ?? ''}"><title>threshold ${t}: ${p.alarms} alarm(s), ${p.alarms_per_day.toFixed(1)} / day; ${p.caught} of ${d.confirmed} confirmed fire(s) caught</title></circle>`;
    if (Math.round(p.threshold * 100) % 20 === 0) out += `<text class="pt-label" x="${x + 5}" y="${y - 5}">${t}</text>`;
  }
  const [cx, cy] = curveAt(d, d.current);
  out += `<circle class="current" cx="${X(cx)}" cy="${Y(cy)}" r="9" data-threshold="${d.current.toFixed(2)}"><title>running threshold ${d.current.toFixed(2)}</title></circle>`;
  const t = +$('#tune-threshold').value, [hx, hy] = curveAt(d, t);
  out += `<circle class="handle" cx="${X(hx)}" cy="${Y(hy)}" r="7" data-threshold="${t.toFixed(2)}"/>`;
  out += `<text class="handle-label" x="${Math.min(X(hx) + 10, CV.r - 40)}" y="${Math.max(Y(hy) - 10, CV.t + 12)}">${t.toFixed(2)}</text>`;
  svg.innerHTML = out;
}
// Dragging the handle snaps it to the nearest replayed threshold (ties: the one nearest the
// slider's value) and moves the slider there.
function initCurveDrag() {
  const svg = $('#tune-curve');
  const pick = (ev) => {
    const d = curveState.data;
    if (!d) return;
    const m = svg.getScreenCTM();
    if (!m) return;
    const pt = new DOMPoint(ev.clientX, ev.clientY).matrixTransform(m.inverse());
    const { X, Y } = curveAxes(d), now = +$('#tune-threshold').value;
    let best = null, bestKey = null;
    for (const p of d.points) {
      const dist = Math.hypot(X(p.alarms_per_day) - pt.x, Y(p.recall ?? 0) - pt.y);
      const key = [Math.round(dist * 10) / 10, Math.abs(p.threshold - now)];
      if (!best || key[0] < bestKey[0] || (key[0] === bestKey[0] && key[1] < bestKey[1])) { best = p; bestKey = key; }
    }
    if (best && Math.abs(best.threshold - now) > 1e-6) {
      $('#tune-threshold').value = best.threshold.toFixed(2);
      labels(); drawCurve(); scheduleReplay();
    }
  };
  svg.addEventListener('pointerdown', (ev) => {
    if (!ev.target.classList.contains('handle') && !ev.target.classList.contains('pt')) return;
    curveState.drag = true; svg.setPointerCapture(ev.pointerId); pick(ev); ev.preventDefault();
  });
  svg.addEventListener('pointermove', (ev) => { if (curveState.drag) pick(ev); });
  const end = (ev) => { if (curveState.drag) { curveState.drag = false; try { svg.releasePointerCapture(ev.pointerId); } catch (_) { /* released */ } } };
  svg.addEventListener('pointerup', end);
  svg.addEventListener('pointercancel', end);
}

async function applyTuning() {
  const s = setting(); s.comment = $('#tune-comment').value;
  try {
    const r = await api('/api/tuning/apply', { method: 'POST', body: JSON.stringify(s) });
    $('#tune-msg').textContent = `Applied as config version ${r.version} by ${r.author}.`; $('#tune-msg').dataset.kind = 'apply';
    await loadCurrent(); loadAudit();
  } catch (e) { $('#tune-msg').textContent = 'Not applied: ' + e.message; $('#tune-msg').dataset.kind = 'apply'; }
}
function describeChange(c) {
  if (!c || !c.kind) return 'rules section';
  if (c.kind === 'tune') return `${c.camera} ${c.class} ≥ ${Number(c.threshold).toFixed(2)}` + (c.persistence ? `, ${c.persistence.k}/${c.persistence.n}` : '');
  if (c.kind === 'mask') return `${c.camera}: exclusion mask` + (c.classes && c.classes.length ? ` (${c.classes.join(', ')})` : '');
  if (c.kind === 'revert') return 'revert to the config file';
  return 'rules section';
}
function describeCameras(c) {
  if (!c || !c.action) return 'cameras';
  if (c.action === 'edit') return `camera ${c.camera}: edit ${Object.keys(c.patch || {}).join(', ')}`;
  return `camera ${c.camera}: ${c.action}`;
}
function describeModels(b) {
  const f = (r) => (r ? `${r.manifest.split('/').pop()} (${r.sha256.slice(0, 12)})` : 'none');
  if (b.action === 'promote') return `${b.model}: promote ${f(b.from)} → ${f(b.to)}` + (b.forced ? ' (forced, no passing gate)' : '');
  if (b.action === 'rollback') return `${b.model}: roll back ${f(b.from)} → ${f(b.to)}`;
  if (b.action === 'shadow_start') return `${b.model}: shadow ${f(b.to)}`;
  if (b.action === 'shadow_stop') return `${b.model}: shadow ${f(b.from)} stopped`;
  return `${b.model}: ${b.action}`;
}
// Live against shadow per camera: events each raised, agreement with the verdicts.
async function loadShadow() {
  const pct = (v) => (v === null || v === undefined ? '–' : Math.round(v * 100) + ' %');
  try {
    const slots = (await api('/api/models')).models;
    const rows = [];
    const msgs = [];
    for (const m of slots) {
      msgs.push(`${m.name}: live ${m.live.name} (${m.live.sha256.slice(0, 12)})` + (m.shadow ? `, shadow ${m.shadow.name} (${m.shadow.sha256.slice(0, 12)}): ${m.shadow_frames} frames, dropped ${m.shadow_dropped.saturated} (busy) + ${m.shadow_dropped.queue_full} (queue)` : ', no shadow'));
      const c = await api(`/api/models/${encodeURIComponent(m.name)}/shadow`);
      for (const r of c.cameras) {
        rows.push(`<tr><td>${esc(m.name)}</td><td>${esc(r.camera)}</td><td>${r.live_events}</td><td>${r.shadow_events}</td><td>${r.confirmed} / ${r.false_alarms}</td><td>${pct(r.live_agreement)}</td><td>${pct(r.shadow_agreement)}</td><td>${r.shadow_only}</td></tr>`);
      }
    }
    $('#shadow-msg').textContent = msgs.join('; ');
    $('#shadow tbody').innerHTML = rows.join('');
  } catch (e) { $('#shadow-msg').textContent = 'Models: ' + e.message; }
}
async function loadAudit() {
  try {
    const list = await api('/api/config/history');
    $('#audit tbody').innerHTML = list.map((o) => `<tr><td>${o.version}</td><td>${esc(new Date(o.at).toLocaleString())}</td><td>${esc(o.author)}</td>
      <td>${esc(o.section === 'models' ? describeModels(o.body) : o.section === 'cameras' ? describeCameras(o.body.change) : describeChange(o.body.change))}</td><td>${esc(o.comment)}</td></tr>`).join('');
    loadShadow();
    const cfg = await api('/api/config');
    const co = cfg.cameras_overlay, ce = $('#cameras-status');
    if (!co) { ce.textContent = 'Running the config file\'s cameras (no camera changes in the UI).'; ce.className = 'muted'; }
    else {
      let t = `Cameras record v${co.version} by ${co.author}: ${co.changes.length} change(s) over the config file` + (co.applied ? ', applied.' : ' — NOT APPLIED, the file\'s cameras run: ' + co.errors.map((e) => e.path + ': ' + e.message).join('; '));
      if (co.conflicts.length) t += ` The file has since changed ${co.conflicts.map((c) => c.path).join(', ')}; the record's values run.`;
      ce.textContent = t; ce.className = co.applied && !co.conflicts.length ? 'muted' : 'warn';
    }
    const ov = cfg.overlay, el = $('#overlay-status');
    if (!ov) { el.textContent = 'Running the config file\'s rules (no API changes).'; el.className = 'muted'; return; }
    let t = `Overlay v${ov.version} by ${ov.author}: ${ov.changes.length} key(s) over the config file` + (ov.applied ? ', applied.' : ' — NOT APPLIED, the file\'s rules run: ' + ov.errors.map((e) => e.path + ': ' + e.message).join('; '));
    if (ov.conflicts.length) t += ` The file has since changed ${ov.conflicts.map((c) => c.path).join(', ')}; the overlay's values run.`;
    el.textContent = t; el.className = ov.applied && !ov.conflicts.length ? 'muted' : 'warn';
  } catch (e) { /* read errors show elsewhere */ }
}

// ---- exclusion masks proposed from false-alarm verdicts
async function proposeMasks() {
  const cam = $('#tune-camera').value, cls = $('#tune-class').value;
  const q = `camera=${encodeURIComponent(cam)}` + (cls === 'smoke' || cls === 'fire' ? `&class=${cls}` : '');
  $('#mask-msg').textContent = '';
  try {
    const r = await api('/api/tuning/masks?' + q);
    state.masks = r;
    drawMasks(r);
    $('#mask-list').innerHTML = r.proposals.map((p, i) => `<div class="proposal" data-i="${i}"><b>Mask ${i + 1}</b> (${esc(p.classes.join(', '))}${p.preset ? ', preset ' + esc(p.preset) : ''}):
      would have removed <b class="removed">${p.false_alarms_removed}</b> false alarm(s) (${p.incidents.length} incident(s)), touches <b class="touched">${p.confirmed_touched}</b> confirmed detection(s).
      <button class="mask-apply" data-i="${i}">Apply mask</button></div>`).join('');
    $$('.mask-apply').forEach((b) => b.addEventListener('click', () => applyMask(+b.dataset.i)));
    $('#mask-msg').textContent = `${r.false_alarms.length} false-alarm and ${r.confirmed.length} confirmed detection(s) judged on this camera; ` +
      (r.proposals.length ? `${r.proposals.length} proposal(s).` : `no cluster of ${r.min} or more false alarms away from confirmed fires.`);
  } catch (e) { $('#mask-msg').textContent = e.message; }
}
function drawMasks(r) {
  const cam = state.cameras.find((c) => c.id === r.camera);
  const img = $('#mask-img');
  img.style.display = cam && cam.has_frame ? '' : 'none';
  if (cam && cam.has_frame) loadImage(img, `/api/cameras/${encodeURIComponent(r.camera)}/frame.jpg`);
  const poly = (pts, attrs) => `<polygon points="${pts.map((p) => p[0] + ',' + p[1]).join(' ')}" ${attrs}/>`;
  const box = (s, col) => `<rect x="${s.bbox[0]}" y="${s.bbox[1]}" width="${s.bbox[2] - s.bbox[0]}" height="${s.bbox[3] - s.bbox[1]}" fill="none" stroke="${col}" stroke-width="1.5"/>` +
    `<circle cx="${s.anchor[0]}" cy="${s.anchor[1]}" r="0.006" fill="${col}"/>`;
  $('#mask-svg').innerHTML =
    r.existing.map((m) => poly(m.polygon, 'fill="#00000088" stroke="#aaa" stroke-width="1"')).join('') +
    r.false_alarms.map((s) => box(s, '#ff3b30')).join('') +
    r.confirmed.map((s) => box(s, '#4cd964')).join('') +
    r.proposals.map((p, i) => poly(p.polygon, `class="proposal-poly" data-i="${i}" fill="#ff8a3d33" stroke="#ff8a3d" stroke-width="2" stroke-dasharray="6 4"`)).join('');
}
async function applyMask(i) {
  const p = state.masks && state.masks.proposals[i];
  if (!p) return;
  const body = { camera: state.masks.camera, polygon: p.polygon, classes: p.classes, preset: p.preset,
    comment: $('#tune-comment').value || `exclusion mask proposed from ${p.false_alarms_removed} false alarm(s)` };
  try {
    const r = await api('/api/tuning/masks/apply', { method: 'POST', body: JSON.stringify(body) });
    $('#mask-msg').textContent = `Mask applied as config version ${r.version} by ${r.author}.`;
    const msg = $('#mask-msg').textContent;
    await proposeMasks(); $('#mask-msg').textContent = msg + ' ' + $('#mask-msg').textContent;
    loadAudit();
  } catch (e) { $('#mask-msg').textContent = 'Not applied: ' + e.message; }
}

// ---- dead letters
async function loadDead() {
  try {
    const r = await api('/api/outbox/dead-letters');
    $('#dead-count').textContent = r.dead_letters.length;
    $('#dead tbody').innerHTML = r.dead_letters.map((d) => `<tr><td>${esc(d.sink)}</td><td>${esc(d.key)}</td>
      <td>${esc(new Date(d.at).toLocaleString())}</td><td>${d.attempts}</td><td>${esc(d.status ?? '–')}</td>
      <td>${esc(d.error)}</td><td><code>${esc(d.body)}</code></td>
      <td><button data-sink="${esc(d.sink)}" data-key="${esc(d.key)}">re-drive</button></td></tr>`).join('');
    $$('#dead tbody button').forEach((b) => b.addEventListener('click', () => redrive({ sink: b.dataset.sink, keys: [b.dataset.key] })));
  } catch (e) { $('#dead-msg').textContent = e.message; }
}
async function redrive(body) {
  try { const r = await api('/api/outbox/retry', { method: 'POST', body: JSON.stringify(body) }); $('#dead-msg').textContent = `${r.redriven} re-driven.`; }
  catch (e) { $('#dead-msg').textContent = e.message; }
  loadDead();
}
$('#dead-retry').addEventListener('click', () => redrive({}));

// ---- live updates (SSE, read with fetch so the token goes in a header: EventSource cannot
// send one, and a token in the URL would end up in logs and history)
let live = null;
function onLive(data) {
  let u; try { u = JSON.parse(data); } catch (_) { return; }
  if (u.type === 'incident') {
    if (u.created && SEV[u.severity] >= SEV.high) beep();
    loadIncidents();
    if (state.selected === u.id) select(u.id);
    if (state.view === 'map') drawMap();
  } else if (u.type === 'camera' && state.view === 'cameras') loadCameras();
  else if (u.type === 'config' && state.view === 'tuning') loadAudit();
}
async function connect() {
  if (live) live.abort();
  const ctl = new AbortController(); live = ctl;
  let retry = true;
  try {
    const r = await fetch('/api/live', { headers: authHeaders({ Accept: 'text/event-stream' }), cache: 'no-store', signal: ctl.signal });
    if (r.status === 401 || r.status === 429) { retry = false; needToken(); return; }
    if (!r.ok || !r.body) throw new Error(r.status + ' ' + r.statusText);
    $('#live').className = 'live on';
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf = (buf + value).replace(/\r\n?/g, '\n');
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const data = buf.slice(0, i).split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).replace(/^ /, '')).join('\n');
        buf = buf.slice(i + 2);
        if (data) onLive(data);
      }
    }
  } catch (e) {
    if (ctl.signal.aborted) return;
  } finally {
    if (live === ctl) {
      $('#live').className = 'live off';
      if (retry) setTimeout(() => { if (live === ctl) connect(); }, 3000);
    }
  }
}
whoami(); loadIncidents(); loadDead(); connect();
setInterval(loadIncidents, 15000);

// ---- disk usage of the data directory (retention pass, per kind of file)
const mib = (n) => (n / 1048576).toFixed(n < 10485760 ? 1 : 0) + ' MiB';
async function loadDisk() {
  let d; try { d = await api('/api/disk'); } catch (e) { return; }
  if (!d.at) return;
  const el = $('#disk');
  el.textContent = 'disk ' + mib(d.total) + (d.quota ? ' / ' + mib(d.quota) : '');
  el.classList.toggle('warn', !!d.quota && d.total > 0.9 * d.quota);
  el.title = ['database', 'jsonl', 'jsonl_rotated', 'snapshots', 'clips', 'sink_files', 'other']
    .map((k) => k + ': ' + mib(d[k])).join('\n');
}
loadDisk();
setInterval(loadDisk, 30000);

// ---- labels: an operator marks the detector's boxes on a snapshot's frame right or wrong
// and draws the boxes it missed; saved boxes are this site's training labels
// (PUT /api/snapshots/<id>/boxes; `lookout dataset export`).
const LABEL_CLASSES = ['smoke', 'fire', 'person'];
async function openLabels(snapId) {
  let info;
  try { info = await api('/api/snapshots/' + snapId + '/boxes'); } catch (e) { alert(e.message); return; }
  const current = (info.corrected ? info.corrected.boxes : info.detected).map((b) => ({ ...b, keep: true }));
  let panel = $('#labels');
  if (!panel) { panel = document.createElement('div'); panel.id = 'labels'; $('#label-btn').after(panel); }
  panel.dataset.snapshot = snapId;
  panel.innerHTML = `<div class="lab-view"><img class="lab-frame" alt="frame without drawing"><svg viewBox="0 0 1 1" preserveAspectRatio="none"></svg></div>
    <p class="muted">${info.corrected ? 'Corrected by ' + esc(info.corrected.by) + ', ' + esc(new Date(info.corrected.at).toLocaleString()) : 'As the detector saw it'}. Untick a wrong box; drag on the frame to draw a missed one as
    <select class="lab-class">${LABEL_CLASSES.map((c) => `<option>${c}</option>`).join('')}</select>.</p>
    <ul class="lab-list"></ul><button class="lab-save">Save boxes</button> <span class="lab-msg"></span>`;
  loadImage($('img.lab-frame', panel), '/api/snapshots/' + snapId + '/frame');
  const svg = $('svg', panel);
  const draw = () => {
    svg.innerHTML = current.map((b, i) => {
      const [x1, y1, x2, y2] = b.box;
      const col = b.keep ? (b.class === 'fire' ? '#ff3b30' : b.class === 'smoke' ? '#ff9500' : '#ffcc00') : '#888';
      return `<rect data-i="${i}" x="${x1}" y="${y1}" width="${x2 - x1}" height="${y2 - y1}" fill="none" stroke="${col}" stroke-width="2" ${b.keep ? '' : 'stroke-dasharray="4"'} vector-effect="non-scaling-stroke"/>`;
    }).join('');
    $('.lab-list', panel).innerHTML = current.map((b, i) =>
      `<li><label><input type="checkbox" data-i="${i}" ${b.keep ? 'checked' : ''}> ${esc(b.class)}${b.score != null ? ' ' + b.score.toFixed(2) : ' (drawn)'}</label></li>`).join('') ||
      '<li class="muted">no box: saving says the frame shows none</li>';
    $$('.lab-list input', panel).forEach((c) => c.addEventListener('change', () => { current[+c.dataset.i].keep = c.checked; draw(); }));
  };
  draw();
  let start = null;
  const at = (ev) => {
    const r = svg.getBoundingClientRect();
    return [Math.min(1, Math.max(0, (ev.clientX - r.left) / r.width)), Math.min(1, Math.max(0, (ev.clientY - r.top) / r.height))];
  };
  svg.addEventListener('pointerdown', (ev) => { start = at(ev); ev.preventDefault(); });
  svg.addEventListener('pointerup', (ev) => {
    if (!start) return;
    const end = at(ev);
    const box = [Math.min(start[0], end[0]), Math.min(start[1], end[1]), Math.max(start[0], end[0]), Math.max(start[1], end[1])];
    start = null;
    if (box[2] - box[0] < 0.005 || box[3] - box[1] < 0.005) return;
    current.push({ class: $('.lab-class', panel).value, box, keep: true });
    draw();
  });
  $('.lab-save', panel).addEventListener('click', async () => {
    const boxes = current.filter((b) => b.keep).map((b) => ({ class: b.class, box: b.box }));
    try {
      const r = await api('/api/snapshots/' + snapId + '/boxes', { method: 'PUT', body: JSON.stringify({ boxes }) });
      $('.lab-msg', panel).textContent = 'Saved ' + r.corrected.boxes.length + ' box(es).';
      $('.lab-msg', panel).classList.add('saved');
    } catch (e) { $('.lab-msg', panel).textContent = e.message; }
  });
}
