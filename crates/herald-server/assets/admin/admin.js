// Herald admin page. Polls /admin/api/stats every second (counts and cumulative
// counters, turned into per-second rates here) and /admin/api/overview every two
// seconds (nodes and channels); a click on a channel shows its presence. All of
// /admin is behind HTTP Basic auth, which the browser sends along with these calls.

const $ = (id) => document.getElementById(id);
const WINDOW_MS = 120_000;
const samples = [];      // {t, connections, mps}
let previous = null;     // the last stats answer, for the rates
let selected = null;     // the channel whose presence is shown
let channels = {};

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null) continue;
    if (k === 'testid') node.dataset.testid = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'className' || k === 'textContent' || k === 'title') node[k] = v;
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  return node;
}

async function getJSON(url, init) {
  const res = await fetch(url, { credentials: 'same-origin', cache: 'no-store', ...init });
  if (res.status === 401) throw new Error('not authorized: reload and sign in with the admin password');
  if (!res.ok && res.headers.get('content-type')?.includes('json') !== true) throw new Error(`${url}: HTTP ${res.status}`);
  return res.json();
}

function setLive(state, label) {
  $('live').dataset.state = state;
  $('live-label').textContent = label;
}

const fmt = (n) => Number(n).toLocaleString('en-US');
const rate = (n) => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n >= 10 ? n.toFixed(1) : n.toFixed(2).replace(/\.?0+$/, '') || '0');

function uptime(seconds) {
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${String(m).padStart(2, '0')}m`;
  if (m) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  return `${s}s`;
}

// ------------------------------------------------------------------ stats ----

let statsBusy = false;
async function pollStats() {
  if (statsBusy) return;
  statsBusy = true;
  try {
    const s = await getJSON('/admin/api/stats');
    $('s-connections').textContent = fmt(s.connections);
    $('s-users').textContent = fmt(s.users);
    $('s-channels').textContent = fmt(s.channels);
    $('s-subscriptions').textContent = fmt(s.subscriptions);
    if (previous && s.time > previous.time) {
      const dt = (s.time - previous.time) / 1000;
      const per = (key) => Math.max(0, (s[key] - previous[key]) / dt);
      const mps = per('messages_sent');
      $('s-messages').textContent = rate(mps);
      $('s-publications').textContent = rate(per('publications'));
      $('s-api').textContent = rate(per('api_requests'));
      samples.push({ t: s.time, connections: s.connections, mps });
    } else {
      samples.push({ t: s.time, connections: s.connections, mps: 0 });
    }
    previous = s;
    while (samples.length && samples[0].t < s.time - WINDOW_MS - 2000) samples.shift();
    draw();
    setLive('live', 'Live · every 1 s');
  } catch (e) {
    setLive('error', e.message);
  } finally {
    statsBusy = false;
  }
}

// ---------------------------------------------------------------- overview ----

let overviewBusy = false;
async function pollOverview() {
  if (overviewBusy) return;
  overviewBusy = true;
  try {
    const o = await getJSON('/admin/api/overview');
    if (o.error) throw new Error(o.error.message);
    renderNodes(o.nodes || []);
    channels = o.channels || {};
    renderChannels();
    if (selected) await loadPresence(selected);
  } catch (e) {
    setLive('error', e.message);
  } finally {
    overviewBusy = false;
  }
}

function renderNodes(nodes) {
  $('nodes').replaceChildren(...nodes.map((n) => el('tr', { testid: 'admin-node-row', dataset: { uid: n.uid } },
    el('td', { title: n.uid }, n.name),
    el('td', {}, n.version),
    el('td', { className: 'num', testid: 'admin-node-clients' }, fmt(n.num_clients)),
    el('td', { className: 'num' }, fmt(n.num_users)),
    el('td', { className: 'num' }, fmt(n.num_channels)),
    el('td', { className: 'num' }, fmt(n.num_subs)),
    el('td', { className: 'num' }, uptime(n.uptime)))));
  const first = nodes[0];
  $('node-line').textContent = first
    ? `${nodes.length} node${nodes.length === 1 ? '' : 's'} · ${first.name} · v${first.version} · up ${uptime(first.uptime)}`
    : 'no nodes';
}

function renderChannels() {
  const filter = $('channels-filter').value.trim().toLowerCase();
  const names = Object.keys(channels).sort();
  const shown = names.filter((n) => n.toLowerCase().includes(filter));
  $('channels-count').textContent = `· ${names.length}`;
  if (!shown.length) {
    $('channels').replaceChildren(el('tr', {}, el('td', { colspan: '2', className: 'empty muted' }, names.length ? 'No channel matches.' : 'No channel has subscribers yet.')));
    return;
  }
  $('channels').replaceChildren(...shown.map((name) => el('tr', {
    testid: 'admin-channel-row',
    dataset: { channel: name },
    className: name === selected ? 'selected' : '',
    onclick: () => { selected = name; renderChannels(); void loadPresence(name); },
  }, el('td', {}, name), el('td', { className: 'num' }, fmt(channels[name].num_clients)))));
}

async function loadPresence(channel) {
  $('presence-channel').textContent = `· ${channel}`;
  const body = $('presence');
  const empty = $('presence-empty');
  try {
    const answer = await getJSON(`/admin/api/presence?channel=${encodeURIComponent(channel)}`);
    if (channel !== selected) return;
    if (answer.error) {
      body.replaceChildren();
      empty.hidden = false;
      empty.textContent = `No presence for ${channel}: ${answer.error.message} (${answer.error.code})`;
      return;
    }
    const clients = Object.values(answer.presence || {}).sort((a, b) => (a.user || '').localeCompare(b.user || ''));
    empty.hidden = clients.length > 0;
    empty.textContent = 'Nobody is subscribed right now.';
    body.replaceChildren(...clients.map((c) => el('tr', { testid: 'admin-presence-row', dataset: { user: c.user || '', client: c.client } },
      el('td', {}, c.user || '(anonymous)'),
      el('td', { className: 'info', title: c.client }, c.client.slice(0, 8)),
      el('td', { className: 'info' }, c.conn_info || c.chan_info ? JSON.stringify({ ...(c.conn_info || {}), ...(c.chan_info || {}) }) : '–'))));
  } catch (e) {
    empty.hidden = false;
    empty.textContent = e.message;
  }
}

// ----------------------------------------------------------------- publish ----

$('publish').addEventListener('submit', async (e) => {
  e.preventDefault();
  const out = $('pub-result');
  out.className = 'result';
  let data;
  try {
    data = JSON.parse($('pub-data').value);
  } catch (err) {
    out.className = 'result err';
    out.textContent = `Data is not JSON: ${err.message}`;
    return;
  }
  try {
    const answer = await getJSON('/admin/api/publish', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ channel: $('pub-channel').value.trim(), data }),
    });
    if (answer.error) {
      out.className = 'result err';
      out.textContent = `error ${answer.error.code}: ${answer.error.message}`;
    } else {
      out.textContent = `published ${JSON.stringify(answer.result)}`;
    }
    out.dataset.state = answer.error ? 'error' : 'ok';
  } catch (err) {
    out.className = 'result err';
    out.textContent = err.message;
    out.dataset.state = 'error';
  }
});
$('channels-filter').addEventListener('input', renderChannels);

// ------------------------------------------------------------------- chart ----

/** The top of an axis with four gridlines: 4 × a round step (1, 2, 2.5 or 5 × 10^k). */
function niceMax(v, floor) {
  const target = Math.max(v, floor) / 4;
  const p = 10 ** Math.floor(Math.log10(target));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= target) return 4 * m * p;
  return 40 * p;
}

function draw() {
  const canvas = $('chart');
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  if (!w || !h) return;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const g = canvas.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const m = { l: 44, r: 48, t: 10, b: 24 };
  const pw = w - m.l - m.r;
  const ph = h - m.t - m.b;
  const now = samples.length ? samples[samples.length - 1].t : Date.now();
  // The x axis grows with the page's age up to two minutes, so it is never empty.
  const age = samples.length ? now - samples[0].t : 0;
  const span = Math.min(WINDOW_MS, Math.max(15_000, Math.ceil(age / 5000) * 5000));
  const x = (t) => m.l + pw * (1 - (now - t) / span);
  const connMax = niceMax(Math.max(0, ...samples.map((s) => s.connections)), 4);
  const mpsMax = niceMax(Math.max(0, ...samples.map((s) => s.mps)), 5);
  const yc = (v) => m.t + ph * (1 - v / connMax);
  const ym = (v) => m.t + ph * (1 - v / mpsMax);

  // Grid and axes labels.
  g.font = '11px system-ui, sans-serif';
  g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = Math.round(m.t + (ph * i) / 4) + 0.5;
    g.strokeStyle = i === 4 ? '#cbd5e1' : '#eef0f5';
    g.beginPath(); g.moveTo(m.l, y); g.lineTo(m.l + pw, y); g.stroke();
    g.fillStyle = '#4f46e5';
    g.textAlign = 'right'; g.textBaseline = 'middle';
    g.fillText(fmtAxis(connMax * (1 - i / 4)), m.l - 8, y);
    g.fillStyle = '#ea580c';
    g.textAlign = 'left';
    g.fillText(fmtAxis(mpsMax * (1 - i / 4)), m.l + pw + 8, y);
  }
  g.fillStyle = '#94a3b8';
  g.textAlign = 'center'; g.textBaseline = 'top';
  const spanS = span / 1000;
  const step = spanS <= 30 ? 5 : spanS <= 60 ? 10 : 30;
  for (let s = Math.floor(spanS / step) * step; s >= 0; s -= step) {
    g.fillText(s ? `-${s}s` : 'now', m.l + pw * (1 - s / spanS), m.t + ph + 7);
  }

  const pts = samples.filter((s) => s.t >= now - span);
  canvas.dataset.points = String(pts.length);
  if (pts.length < 2) return;
  g.save();
  g.beginPath(); g.rect(m.l, m.t - 2, pw, ph + 4); g.clip();

  // Connections: a filled area under a step line (a count changes in steps).
  const conn = new Path2D();
  pts.forEach((p, i) => {
    if (i === 0) conn.moveTo(x(p.t), yc(p.connections));
    else { conn.lineTo(x(p.t), yc(pts[i - 1].connections)); conn.lineTo(x(p.t), yc(p.connections)); }
  });
  const area = new Path2D(conn);
  area.lineTo(x(pts[pts.length - 1].t), m.t + ph);
  area.lineTo(x(pts[0].t), m.t + ph);
  area.closePath();
  const grad = g.createLinearGradient(0, m.t, 0, m.t + ph);
  grad.addColorStop(0, 'rgba(79, 70, 229, .22)');
  grad.addColorStop(1, 'rgba(79, 70, 229, .02)');
  g.fillStyle = grad;
  g.fill(area);
  g.strokeStyle = '#4f46e5'; g.lineWidth = 2; g.lineJoin = 'round';
  g.stroke(conn);

  // Messages per second: a smooth line.
  g.beginPath();
  pts.forEach((p, i) => {
    const px = x(p.t);
    const py = ym(p.mps);
    if (i === 0) g.moveTo(px, py);
    else {
      const q = pts[i - 1];
      const mx = (x(q.t) + px) / 2;
      g.bezierCurveTo(mx, ym(q.mps), mx, py, px, py);
    }
  });
  g.strokeStyle = '#f97316'; g.lineWidth = 2;
  g.stroke();
  g.restore();

  // The latest points.
  const last = pts[pts.length - 1];
  for (const [y, color] of [[yc(last.connections), '#4f46e5'], [ym(last.mps), '#f97316']]) {
    g.beginPath(); g.arc(x(last.t), y, 3.5, 0, Math.PI * 2);
    g.fillStyle = '#fff'; g.fill(); g.strokeStyle = color; g.lineWidth = 2; g.stroke();
  }
}

function fmtAxis(v) {
  if (v >= 1000) return `${(v / 1000).toFixed(v % 1000 ? 1 : 0)}k`;
  return String(Math.round(v * 10) / 10);
}

window.addEventListener('resize', draw);
void pollStats();
void pollOverview();
setInterval(pollStats, 1000);
setInterval(pollOverview, 2000);
