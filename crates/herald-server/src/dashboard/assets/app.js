// The herald dashboard page: login, app picker, charts drawn as inline SVG, the debug console
// fed by Server-Sent Events, and the event creator. No framework; same-origin requests only.
'use strict';

const KINDS = ['open', 'close', 'subscribe', 'unsubscribe', 'publish', 'client_event', 'webhook', 'error'];
const MAX_LINES = 2000;
const SERIES = ['connections', 'channels', 'messages_in', 'messages_out'];
const $ = (id) => document.getElementById(id);

const state = { app: null, source: null, timer: null, shown: new Set(KINDS), sampled: 0 };

async function api(path, options = {}) {
  const resp = await fetch(`/dashboard/api${path}`, { credentials: 'same-origin', ...options });
  if (resp.status === 401) {
    showLogin();
    throw new Error('not logged in');
  }
  return resp;
}

function showLogin() {
  stopWatching();
  $('main').hidden = true;
  $('picker').hidden = true;
  $('range-picker').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
}

async function start() {
  let resp;
  try {
    resp = await api('/apps');
  } catch {
    return;
  }
  const { apps } = await resp.json();
  $('login').hidden = true;
  $('main').hidden = false;
  $('picker').hidden = false;
  $('range-picker').hidden = false;
  $('logout').hidden = false;
  const select = $('app');
  select.replaceChildren(...apps.map((a) => {
    const o = document.createElement('option');
    o.value = a.id;
    o.textContent = `${a.id} (${a.key})${a.wamp ? ' · WAMP' : ''}${a.enabled ? '' : ' · disabled'}`;
    return o;
  }));
  if (apps.length > 0) watch(apps[0].id);
}

function stopWatching() {
  if (state.source) state.source.close();
  if (state.timer) clearInterval(state.timer);
  state.source = null;
  state.timer = null;
}

function watch(id) {
  stopWatching();
  state.app = id;
  state.sampled = 0;
  document.body.dataset.app = id;
  $('log').replaceChildren();
  $('sampled').hidden = true;
  const source = new EventSource(`/dashboard/api/apps/${encodeURIComponent(id)}/console`);
  source.onmessage = (e) => {
    try {
      entry(JSON.parse(e.data));
    } catch {
      // A malformed line is skipped, the stream goes on.
    }
  };
  source.onopen = () => { document.body.dataset.console = 'open'; };
  state.source = source;
  refreshSeries();
  state.timer = setInterval(refreshSeries, 1000);
}

// --- console ---------------------------------------------------------------------------------

function entry(e) {
  if (e.kind === 'hello') return;
  if (e.kind === 'sampled' || e.kind === 'lost') {
    state.sampled += e.count || 0;
    const p = $('sampled');
    p.hidden = false;
    p.textContent = `${state.sampled} events not shown (sampled)`;
    return;
  }
  const li = document.createElement('li');
  li.dataset.kind = e.kind;
  if (e.channel) li.dataset.channel = e.channel;
  const time = document.createElement('span');
  time.className = 'time';
  time.textContent = new Date(e.t).toLocaleTimeString();
  const kind = document.createElement('span');
  kind.className = 'kind';
  kind.textContent = e.kind;
  const parts = [];
  if (e.socket_id) parts.push(`socket ${e.socket_id}`);
  if (e.protocol) parts.push(e.protocol);
  if (e.channel) parts.push(`channel ${e.channel}`);
  if (e.event) parts.push(`event ${e.event}`);
  if (e.code !== undefined) parts.push(`code ${e.code}`);
  if (e.count !== undefined) parts.push(`${e.count} events`);
  if (e.detail) parts.push(e.detail);
  const text = document.createElement('span');
  text.className = 'text';
  text.textContent = parts.join(' · ');
  li.append(time, kind, text);
  li.title = text.textContent;
  applyFilter(li);
  const log = $('log');
  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  log.append(li);
  while (log.childElementCount > MAX_LINES) log.firstElementChild.remove();
  if (atBottom) log.scrollTop = log.scrollHeight;
}

function applyFilter(li) {
  const needle = $('filter').value.trim().toLowerCase();
  const kindOk = state.shown.has(li.dataset.kind);
  const textOk = needle === '' || li.textContent.toLowerCase().includes(needle);
  li.hidden = !(kindOk && textOk);
}

function buildFilters() {
  const box = $('kinds');
  for (const k of KINDS) {
    const label = document.createElement('label');
    const input = document.createElement('input');
    input.type = 'checkbox';
    input.checked = true;
    input.value = k;
    input.addEventListener('change', () => {
      if (input.checked) state.shown.add(k); else state.shown.delete(k);
      for (const li of $('log').children) applyFilter(li);
    });
    label.append(input, ` ${k}`);
    box.append(label);
  }
  $('filter').addEventListener('input', () => { for (const li of $('log').children) applyFilter(li); });
  $('clear').addEventListener('click', () => $('log').replaceChildren());
}

// --- charts ----------------------------------------------------------------------------------

async function refreshSeries() {
  const id = state.app;
  let data;
  try {
    data = await (await api(`/apps/${encodeURIComponent(id)}/series`)).json();
  } catch {
    return;
  }
  if (id !== state.app) return;
  const range = data[$('range').value];
  for (const name of SERIES) {
    const values = range[name] || [];
    const latest = values.length > 0 ? values[values.length - 1] : 0;
    const fig = document.querySelector(`.chart[data-series="${name}"]`);
    fig.dataset.latest = String(latest);
    fig.dataset.points = String(values.length);
    $(`v-${name}`).textContent = String(latest);
    // The x axis spans what is held (at least a minute of points), growing to the full window.
    draw(fig.querySelector('svg'), values, Math.max(60, values.length));
  }
}

const SVG = 'http://www.w3.org/2000/svg';

function draw(svg, values, slots) {
  const w = 600;
  const h = 120;
  const max = Math.max(1, ...values);
  const x = (i) => w - (values.length - 1 - i) * (w / (slots - 1));
  const y = (v) => h - 4 - (v / max) * (h - 16);
  const points = values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
  const grid = document.createElementNS(SVG, 'line');
  grid.setAttribute('x1', '0'); grid.setAttribute('x2', String(w));
  grid.setAttribute('y1', String(y(max))); grid.setAttribute('y2', String(y(max)));
  grid.setAttribute('stroke', '#26313c'); grid.setAttribute('stroke-dasharray', '4 4');
  const label = document.createElementNS(SVG, 'text');
  label.setAttribute('x', '4'); label.setAttribute('y', '11');
  label.setAttribute('fill', '#8a96a3'); label.setAttribute('font-size', '10');
  label.textContent = `max ${max}`;
  const area = document.createElementNS(SVG, 'polygon');
  area.setAttribute('fill', 'rgba(79,179,255,0.15)');
  const line = document.createElementNS(SVG, 'polyline');
  line.setAttribute('fill', 'none');
  line.setAttribute('stroke', '#4fb3ff');
  line.setAttribute('stroke-width', '1.5');
  line.setAttribute('vector-effect', 'non-scaling-stroke');
  if (values.length > 0) {
    line.setAttribute('points', points);
    area.setAttribute('points', `${x(0).toFixed(1)},${h} ${points} ${w},${h}`);
  }
  svg.replaceChildren(grid, area, line, label);
}

// --- forms -----------------------------------------------------------------------------------

async function login(e) {
  e.preventDefault();
  const error = $('login-error');
  error.textContent = '';
  const resp = await fetch('/dashboard/login', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ password: $('password').value }),
  });
  if (resp.ok) {
    $('password').value = '';
    start();
  } else if (resp.status === 429) {
    error.textContent = 'Too many wrong passwords: wait a minute.';
  } else if (resp.status === 401) {
    error.textContent = 'Wrong password.';
  } else {
    error.textContent = `Refused (${resp.status}).`;
  }
}

async function publish(e) {
  e.preventDefault();
  const result = $('creator-result');
  result.className = '';
  let data = $('ev-data').value;
  try {
    // Pusher's data is a string; JSON typed here is sent as its text.
    data = JSON.stringify(JSON.parse(data));
  } catch {
    result.className = 'bad';
    result.textContent = 'Data is not valid JSON.';
    return;
  }
  const body = JSON.stringify({ name: $('ev-name').value, channel: $('ev-channel').value, data });
  let resp;
  try {
    resp = await api(`/apps/${encodeURIComponent(state.app)}/events`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body,
    });
  } catch {
    return;
  }
  const answer = await resp.json().catch(() => ({}));
  result.className = resp.ok ? 'ok' : 'bad';
  result.textContent = resp.ok ? 'Published.' : `Refused (${resp.status}): ${answer.error || ''}`;
}

async function logout() {
  await fetch('/dashboard/logout', { method: 'POST', credentials: 'same-origin' });
  showLogin();
}

document.addEventListener('DOMContentLoaded', () => {
  buildFilters();
  $('login-form').addEventListener('submit', login);
  $('creator').addEventListener('submit', publish);
  $('logout').addEventListener('click', logout);
  $('app').addEventListener('change', (e) => watch(e.target.value));
  $('range').addEventListener('change', refreshSeries);
  start();
});
