//! The dashboard on the metrics listener: a real browser (Debian's headless Chromium, driven by
//! playwright-core) logs in, watches an app's console and charts while a pusher-js client
//! connects, and publishes from the event creator; plain HTTP shows every refusal. Fails (never
//! skips) when Chromium is missing: `scripts/install-test-deps` installs it.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { chromium } from 'playwright-core';

import { APPS, connected, once, pusherClient, runHerald, subscribed, uid } from './harness.mjs';
import { startHerald as launch } from '../support/herald_launcher.mjs';

const CHROMIUM = '/usr/bin/chromium';
const PASSWORD = 'dashboard-password-for-tests';
const WAIT = 10_000;

/** herald with a metrics listener and, when `dashboard` is given, the dashboard on it. */
async function heraldWith(dashboard, server = {}) {
  const config = { server: { metrics_port: 0, ...server }, apps: [APPS.main, APPS.quiet] };
  if (dashboard) config.dashboard = dashboard;
  const herald = await launch({ config, listeners: 2 });
  herald.metricsPort = herald.listening.find((l) => l.label === 'metrics').port;
  herald.dash = `http://127.0.0.1:${herald.metricsPort}`;
  return herald;
}

/** A plain request to the metrics listener; `origin` true sends the dashboard's own. */
function call(herald, p, { method = 'GET', origin, headers = {}, body } = {}) {
  const h = { ...headers };
  if (origin === true) h.origin = herald.dash;
  else if (origin) h.origin = origin;
  return fetch(`${herald.dash}${p}`, { method, headers: h, body });
}

function loginForm(password) {
  return { 'content-type': 'application/x-www-form-urlencoded' };
}

describe('dashboard in a browser', () => {
  let herald;
  let browser;
  let page;
  let dataDir;
  const clients = [];

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: run scripts/install-test-deps (Debian package chromium)`);
    herald = await heraldWith({ enabled: true, password: PASSWORD });
    dataDir = mkdtempSync(path.join(tmpdir(), 'herald-chromium-'));
    browser = await chromium.launchPersistentContext(dataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    });
    page = await browser.newPage();
  });
  after(async () => {
    for (const c of clients) c.disconnect();
    await browser?.close();
    await herald?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  test('the login form refuses a wrong password and says so, then lets the right one in', async () => {
    await page.goto(`${herald.dash}/dashboard`);
    await page.waitForSelector('#login:not([hidden])', { timeout: WAIT });
    await page.fill('#password', 'not-the-password');
    await page.click('#login-form button[type=submit]');
    await page.waitForFunction(() => document.querySelector('#login-error').textContent.includes('Wrong password'), null, { timeout: WAIT });
    assert.equal(await page.isVisible('#main'), false);
    await page.fill('#password', PASSWORD);
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('#main:not([hidden])', { timeout: WAIT });
    const cookies = await browser.cookies(`${herald.dash}/dashboard/api/apps`);
    const session = cookies.find((c) => c.name === 'herald_dashboard');
    assert.ok(session, 'a session cookie');
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Strict');
  });

  test('a pusher-js connection and its subscription appear in the console; the chart counts it', async () => {
    await page.selectOption('#app', APPS.main.id);
    await page.waitForFunction((id) => document.body.dataset.app === id && document.body.dataset.console === 'open', APPS.main.id, { timeout: WAIT });
    const before = Number(await page.getAttribute('.chart[data-series="connections"]', 'data-latest'));
    const client = pusherClient(herald, APPS.main);
    clients.push(client);
    await connected(client);
    const channel = uid('dash');
    await subscribed(client, channel);
    const socketId = client.connection.socket_id;
    await page.waitForFunction((sid) => [...document.querySelectorAll('#log li[data-kind="open"]')].some((li) => li.textContent.includes(sid)), socketId, { timeout: WAIT });
    await page.waitForSelector(`#log li[data-kind="subscribe"][data-channel="${channel}"]`, { timeout: WAIT, state: 'attached' });
    // The sampler reads the counters every second; the page shows the newest point.
    await page.waitForFunction((n) => Number(document.querySelector('.chart[data-series="connections"]').dataset.latest) >= n + 1, before, { timeout: WAIT });
    const shown = Number(await page.textContent('#v-connections'));
    assert.ok(shown >= before + 1, `the connections chart shows ${shown}`);
    await page.waitForFunction(() => Number(document.querySelector('.chart[data-series="channels"]').dataset.latest) >= 1, null, { timeout: WAIT });

    // The console's filter hides what does not match.
    await page.fill('#filter', 'no-such-thing-anywhere');
    assert.equal(await page.isVisible(`#log li[data-kind="subscribe"][data-channel="${channel}"]`), false);
    await page.fill('#filter', channel);
    assert.equal(await page.isVisible(`#log li[data-kind="subscribe"][data-channel="${channel}"]`), true);
    await page.fill('#filter', '');
  });

  test('the event creator publishes to pusher-js subscribers and the console shows it', async () => {
    const client = clients[0];
    const channel = uid('creator');
    const sub = await subscribed(client, channel);
    const arrived = once(sub, 'from-dashboard', { timeout: WAIT });
    await page.fill('#ev-channel', channel);
    await page.fill('#ev-name', 'from-dashboard');
    await page.fill('#ev-data', '{"n": 42}');
    await page.click('#creator button[type=submit]');
    assert.deepEqual(await arrived, { n: 42 });
    await page.waitForFunction(() => document.querySelector('#creator-result').textContent === 'Published.', null, { timeout: WAIT });
    await page.waitForSelector(`#log li[data-kind="publish"][data-channel="${channel}"]`, { timeout: WAIT, state: 'attached' });

    // Refused as the HTTP API refuses it (a reserved name is not a valid channel).
    await page.fill('#ev-channel', 'bad channel name!');
    await page.click('#creator button[type=submit]');
    await page.waitForFunction(() => document.querySelector('#creator-result').textContent.startsWith('Refused (400)'), null, { timeout: WAIT });
  });

  test('a closed connection shows its close code', async () => {
    const client = pusherClient(herald, APPS.main);
    await connected(client);
    const socketId = client.connection.socket_id;
    client.disconnect();
    await page.waitForFunction((sid) => [...document.querySelectorAll('#log li[data-kind="close"]')].some((li) => li.textContent.includes(sid) && li.textContent.includes('code 1000')), socketId, { timeout: WAIT });
  });
});

describe('dashboard refusals (plain HTTP)', () => {
  let herald;
  let fenced;
  let off;

  before(async () => {
    // Trusting loopback as a proxy lets one test speak for other addresses.
    herald = await heraldWith({ enabled: true, password: PASSWORD }, { trusted_proxies: ['127.0.0.1'] });
    fenced = await heraldWith({ enabled: true, password: PASSWORD, allowed_addresses: ['10.0.0.0/8'] });
    off = await heraldWith(null);
  });
  after(async () => {
    await herald?.stop();
    await fenced?.stop();
    await off?.stop();
  });

  test('absent (404) when not configured, and never on the public port', async () => {
    assert.equal((await call(off, '/dashboard')).status, 404);
    assert.equal((await call(off, '/dashboard/api/apps')).status, 404);
    for (const p of ['/dashboard', '/dashboard/api/apps', '/dashboard/app.js']) {
      const r = await fetch(`http://127.0.0.1:${herald.port}${p}`);
      assert.equal(r.status, 404, `${p} on the public port`);
    }
    const r = await fetch(`http://127.0.0.1:${herald.port}/dashboard/login`, { method: 'POST', body: `password=${PASSWORD}` });
    assert.notEqual(r.status, 200);
    // Served, with its headers, where it is on.
    const page = await call(herald, '/dashboard');
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-security-policy'), /default-src 'self'/);
    assert.equal(page.headers.get('x-frame-options'), 'DENY');
  });

  test('every API route answers 401 without a session, no-store', async () => {
    const routes = [
      ['GET', '/dashboard/api/apps'],
      ['GET', `/dashboard/api/apps/${APPS.main.id}/series`],
      ['GET', `/dashboard/api/apps/${APPS.main.id}/console`],
      ['POST', `/dashboard/api/apps/${APPS.main.id}/events`],
    ];
    for (const [method, p] of routes) {
      const body = method === 'POST' ? JSON.stringify({ name: 'e', channel: 'c', data: '{}' }) : undefined;
      const r = await call(herald, p, { method, origin: true, body });
      assert.equal(r.status, 401, `${method} ${p}`);
      assert.equal(r.headers.get('cache-control'), 'no-store');
      // A forged cookie is no session either.
      const forged = await call(herald, p, { method, origin: true, body, headers: { cookie: `herald_dashboard=${'ab'.repeat(32)}` } });
      assert.equal(forged.status, 401, `${method} ${p} with a forged cookie`);
    }
  });

  test('403 from an address outside allowed_addresses', async () => {
    const r = await call(fenced, '/dashboard');
    assert.equal(r.status, 403);
    const login = await call(fenced, '/dashboard/login', { method: 'POST', origin: true, headers: loginForm(), body: `password=${PASSWORD}` });
    assert.equal(login.status, 403);
    // Through a trusted proxy, the client named in X-Forwarded-For is the one judged.
    const proxied = await call(herald, '/dashboard', { headers: { 'x-forwarded-for': '203.0.113.7' } });
    assert.equal(proxied.status, 403);
  });

  test('403 for a cross-origin POST, even with the right password or a session', async () => {
    for (const origin of ['http://evil.example', 'null', undefined]) {
      const r = await call(herald, '/dashboard/login', { method: 'POST', origin, headers: loginForm(), body: `password=${PASSWORD}` });
      assert.equal(r.status, 403, `login from origin ${origin}`);
    }
    const ok = await call(herald, '/dashboard/login', { method: 'POST', origin: true, headers: loginForm(), body: `password=${PASSWORD}` });
    assert.equal(ok.status, 200);
    const cookie = ok.headers.get('set-cookie').split(';')[0];
    assert.equal((await call(herald, '/dashboard/api/apps', { headers: { cookie } })).status, 200);
    const body = JSON.stringify({ name: 'e', channel: 'c', data: '{}' });
    const cross = await call(herald, `/dashboard/api/apps/${APPS.main.id}/events`, { method: 'POST', origin: 'http://evil.example', headers: { cookie }, body });
    assert.equal(cross.status, 403);
    const same = await call(herald, `/dashboard/api/apps/${APPS.main.id}/events`, { method: 'POST', origin: true, headers: { cookie }, body });
    assert.equal(same.status, 200);
  });

  test('429 after repeated wrong passwords, for that address only', async () => {
    const from = (ip) => ({ 'x-forwarded-for': ip, ...loginForm() });
    const statuses = [];
    for (let i = 0; i < 7; i++) {
      const r = await call(herald, '/dashboard/login', { method: 'POST', origin: true, headers: from('127.0.0.9'), body: 'password=wrong-wrong-wrong' });
      statuses.push(r.status);
    }
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429, 429]);
    const right = await call(herald, '/dashboard/login', { method: 'POST', origin: true, headers: from('127.0.0.9'), body: `password=${PASSWORD}` });
    assert.equal(right.status, 429, 'even the right password waits');
    const other = await call(herald, '/dashboard/login', { method: 'POST', origin: true, headers: from('127.0.0.10'), body: `password=${PASSWORD}` });
    assert.equal(other.status, 200);
  });

  test('start-up is refused without a password or a metrics listener; config check redacts it', async () => {
    const serve = ['serve', '--host', '127.0.0.1', '--port', '0'];
    const noPassword = await runHerald(serve, { env: { HERALD__DASHBOARD__ENABLED: 'true', HERALD__SERVER__METRICS_PORT: '0' } });
    assert.equal(noPassword.code, 64);
    assert.match(noPassword.stderr, /dashboard\.password/);
    const noMetrics = await runHerald(serve, { env: { HERALD__DASHBOARD__ENABLED: 'true', HERALD__DASHBOARD__PASSWORD: PASSWORD } });
    assert.equal(noMetrics.code, 64);
    assert.match(noMetrics.stderr, /DASHBOARD__ENABLED|dashboard\.enabled/);
    const check = await runHerald(['config', 'check'], {
      env: { HERALD__DASHBOARD__ENABLED: 'true', HERALD__DASHBOARD__PASSWORD: PASSWORD, HERALD__SERVER__METRICS_PORT: '9601' },
    });
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /\[dashboard\]/);
    assert.match(check.stdout, /password = "<redacted>"/);
    assert.ok(!check.stdout.includes(PASSWORD), 'the password is not printed');
  });
});
