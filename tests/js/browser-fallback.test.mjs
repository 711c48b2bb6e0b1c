//! pusher-js and laravel-echo in a real browser (Debian's headless Chromium, driven by
//! playwright-core) where no WebSocket exists: pusher-js must pick `xhr_streaming` by itself,
//! and `xhr_polling` when streaming is blocked too; subscriptions, HTTP API events, presence and
//! client events must all work over them. Fails (never skips) when Chromium is missing:
//! `scripts/install-test-deps` installs it.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

import { APPS, CuttableProxy, rest, startHerald, uid } from './harness.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CHROMIUM = '/usr/bin/chromium';
/** Transport fallback in pusher-js waits on its own timers: allow for them. */
const WAIT = 20_000;

const PAGE = `<!doctype html><html><head><meta charset="utf-8">
<script src="/pusher.min.js"></script><script src="/echo.iife.js"></script></head>
<body>herald fallback test</body></html>`;

/**
 * Serves the test page, the client libraries from node_modules, and a stand-in for a
 * backend's channel auth endpoint that signs with the npm SDK (`?user=` names the member).
 */
async function startSite(sdk) {
  const files = {
    '/pusher.min.js': path.join(ROOT, 'node_modules/pusher-js/dist/web/pusher.min.js'),
    '/echo.iife.js': path.join(ROOT, 'node_modules/laravel-echo/dist/echo.iife.js'),
    '/herald-recovery.mjs': path.join(ROOT, 'clients/js/herald-recovery.mjs'),
  };
  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
    } else if (files[url.pathname]) {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(readFileSync(files[url.pathname]));
    } else if (url.pathname === '/auth' && req.method === 'POST') {
      let body = '';
      req.on('data', (c) => { body += c; });
      req.on('end', () => {
        const form = new URLSearchParams(body);
        const user = url.searchParams.get('user') ?? 'anonymous';
        const channel = form.get('channel_name');
        const signed = channel.startsWith('presence-')
          ? sdk.authorizeChannel(form.get('socket_id'), channel, { user_id: user, user_info: { name: user } })
          : sdk.authorizeChannel(form.get('socket_id'), channel);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(signed));
      });
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${server.address().port}/` };
}

/** In the page: a pusher-js client (`window.clients[name]`) with a log of what it received. */
function pageClient({ name, key, port, user, echo }) {
  const options = {
    cluster: 'mt1', wsHost: '127.0.0.1', wsPort: port, httpHost: '127.0.0.1', httpPort: port,
    forceTLS: false, disableStats: true,
    channelAuthorization: { endpoint: `/auth?user=${user}`, transport: 'ajax' },
  };
  window.clients ??= {};
  window.logs ??= {};
  const log = (window.logs[name] = []);
  let client;
  if (echo) {
    const echoClient = new window.Echo.default({ broadcaster: 'pusher', key, ...options });
    client = echoClient.connector.pusher;
    window.echoes ??= {};
    window.echoes[name] = echoClient;
  } else {
    client = new window.Pusher(key, options);
  }
  client.connection.bind('message', (m) => log.push(m));
  window.clients[name] = client;
  return new Promise((resolve, reject) => {
    const done = () => resolve(client.connection.connection.transport.name);
    if (client.connection.state === 'connected') return done();
    client.connection.bind('connected', done);
    client.connection.bind('failed', () => reject(new Error('failed')));
    client.connection.bind('unavailable', () => reject(new Error('unavailable')));
  });
}

/** Waits in the page for a message matching `pred` (given as source) in a client's log. */
async function received(page, name, event, channel, ms = WAIT) {
  return page.waitForFunction(
    ([n, e, c]) => window.logs[n]?.find((m) => m.event === e && (!c || m.channel === c)),
    [name, event, channel],
    { timeout: ms },
  ).then((h) => h.jsonValue());
}

describe('browser without WebSocket: pusher-js and laravel-echo fall back to HTTP', () => {
  let herald;
  let site;
  let browser;
  let dataDir;
  const sdk = () => rest(herald, APPS.main);

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: run scripts/install-test-deps (Debian package chromium)`);
    // History on `sse-resume-*` and `history-*`: their events carry positions, which
    // Last-Event-ID and the recovery plugin resume from.
    const history = [{ channels: 'sse-resume-*', max_messages: 100 }, { channels: 'history-*', max_messages: 100 }];
    herald = await startHerald({ apps: Object.values(APPS).map((a) => (a === APPS.main ? { ...a, history } : a)) });
    site = await startSite(sdk());
    dataDir = mkdtempSync(path.join(tmpdir(), 'herald-chromium-'));
    browser = await chromium.launchPersistentContext(dataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ],
    });
  });
  after(async () => {
    await browser?.close();
    site?.server.close();
    await herald?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  async function noWebSocketPage() {
    const page = await browser.newPage();
    await page.addInitScript(() => {
      delete window.WebSocket;
      window.WebSocket = undefined;
    });
    await page.goto(site.url);
    assert.equal(await page.evaluate(() => typeof window.WebSocket), 'undefined');
    return page;
  }

  /** Everything a Pusher app does, over whatever transport the page's clients picked. */
  async function exercise(page, expected) {
    const key = APPS.main.key;
    const port = herald.port;
    const a = await page.evaluate(pageClient, { name: 'a', key, port, user: 'alice' });
    const b = await page.evaluate(pageClient, { name: 'b', key, port, user: 'bob', echo: true });
    assert.equal(a, expected, 'pusher-js transport');
    assert.equal(b, expected, 'laravel-echo\'s pusher-js transport');

    // Public channel + HTTP API event, through pusher-js and through Echo.
    const news = uid('news');
    await page.evaluate((ch) => {
      window.clients.a.subscribe(ch);
      window.echoes.b.channel(ch).listen('.update', (d) => window.logs.b.push({ event: 'echo-update', data: d }));
    }, news);
    await received(page, 'a', 'pusher_internal:subscription_succeeded', news);
    await received(page, 'b', 'pusher_internal:subscription_succeeded', news);
    await sdk().trigger(news, 'update', { n: 1 });
    assert.deepEqual((await received(page, 'a', 'update', news)).data, { n: 1 });
    assert.deepEqual((await received(page, 'b', 'echo-update')).data, { n: 1 });

    // Presence: Echo joins after pusher-js, which sees member_added.
    const room = uid('room');
    await page.evaluate((ch) => window.clients.a.subscribe(`presence-${ch}`), room);
    await received(page, 'a', 'pusher_internal:subscription_succeeded', `presence-${room}`);
    await page.evaluate((ch) => window.echoes.b.join(ch), room);
    const added = await received(page, 'a', 'pusher_internal:member_added', `presence-${room}`);
    assert.equal(added.data.user_id, 'bob');

    // Client event from Echo (whisper) to pusher-js on the presence channel.
    await received(page, 'b', 'pusher_internal:subscription_succeeded', `presence-${room}`);
    await page.evaluate((ch) => window.echoes.b.join(ch).whisper('typing', { who: 'bob' }), room);
    assert.deepEqual((await received(page, 'a', 'client-typing', `presence-${room}`)).data, { who: 'bob' });

    // Echo leaves: member_removed.
    await page.evaluate((ch) => window.echoes.b.leave(ch), room);
    const removed = await received(page, 'a', 'pusher_internal:member_removed', `presence-${room}`);
    assert.equal(removed.data.user_id, 'bob');
    await page.evaluate(() => {
      window.clients.a.disconnect();
      window.echoes.b.disconnect();
    });
  }

  test('without WebSocket, pusher-js uses xhr_streaming', async () => {
    const page = await noWebSocketPage();
    try {
      await exercise(page, 'xhr_streaming');
    } finally {
      await page.close();
    }
  });

  test('EventSource reads a Server-Sent Events stream from the page', async () => {
    const page = await noWebSocketPage();
    try {
      const name = uid('sse-browser');
      await page.evaluate(({ url }) => {
        window.sse = [];
        window.source = new EventSource(url);
        window.source.addEventListener('open', () => window.sse.push({ open: true }));
        window.source.addEventListener('update', (e) => window.sse.push({ data: JSON.parse(e.data), id: e.lastEventId }));
      }, { url: `http://127.0.0.1:${herald.port}/apps/${APPS.main.key}/events?channels=${name}` });
      await page.waitForFunction(() => window.sse.some((x) => x.open), null, { timeout: WAIT });
      const deadline = Date.now() + WAIT;
      while (!(await sdk().get({ path: `/channels/${name}` }).then((r) => r.json())).occupied) {
        assert.ok(Date.now() < deadline, 'the stream never subscribed');
        await new Promise((r) => setTimeout(r, 100));
      }
      await sdk().trigger(name, 'update', { n: 7 });
      const got = await page.waitForFunction(() => window.sse.find((x) => x.data), null, { timeout: WAIT })
        .then((h) => h.jsonValue());
      assert.deepEqual(got.data, { channel: name, data: JSON.stringify({ n: 7 }) });
      await page.evaluate(() => window.source.close());
    } finally {
      await page.close();
    }
  });

  /** Polls herald's HTTP API (deadline-bounded) until `name`'s occupancy is `occupied`. */
  async function occupancy(name, occupied) {
    const deadline = Date.now() + WAIT;
    while ((await sdk().get({ path: `/channels/${name}` }).then((r) => r.json())).occupied !== occupied) {
      assert.ok(Date.now() < deadline, `${name} never became ${occupied ? 'occupied' : 'vacant'}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  test('EventSource resumes with Last-Event-ID after the stream drops', async () => {
    const proxy = new CuttableProxy(herald.port);
    await proxy.start();
    const page = await noWebSocketPage();
    try {
      const name = uid('sse-resume');
      await page.evaluate(({ url }) => {
        window.sse = { opens: 0, errors: 0, events: [], other: [] };
        window.source = new EventSource(url);
        window.source.addEventListener('open', () => { window.sse.opens += 1; });
        window.source.addEventListener('error', () => { window.sse.errors += 1; });
        window.source.addEventListener('e', (e) => window.sse.events.push({ i: JSON.parse(JSON.parse(e.data).data).i, id: e.lastEventId }));
        window.source.addEventListener('pusher:recovery_failed', (e) => window.sse.other.push(e.data));
      }, { url: `http://127.0.0.1:${proxy.proxyPort}/apps/${APPS.main.key}/events?channels=${name}` });
      const events = (n) => page.waitForFunction((k) => window.sse.events.length >= k, n, { timeout: WAIT });
      await page.waitForFunction(() => window.sse.opens === 1, null, { timeout: WAIT });
      await occupancy(name, true);
      for (let i = 1; i <= 3; i++) await sdk().trigger(name, 'e', { i });
      await events(3);

      // The link drops: the browser sees the error and retries by itself (after the stream's
      // `retry:`), its attempt held by the proxy until the link is back.
      proxy.cut();
      await page.waitForFunction(() => window.sse.errors >= 1 && window.source.readyState === EventSource.CONNECTING, null, { timeout: WAIT });
      await occupancy(name, false);
      for (let i = 4; i <= 8; i++) await sdk().trigger(name, 'e', { i });
      proxy.restore();
      await page.waitForFunction(() => window.sse.opens === 2, null, { timeout: WAIT });
      await events(8);
      // A live event after the replay: nothing else came before it.
      await occupancy(name, true);
      await sdk().trigger(name, 'e', { i: 9 });
      await events(9);
      const sse = await page.evaluate(() => window.sse);
      assert.deepEqual(sse.events.map((e) => e.i), [1, 2, 3, 4, 5, 6, 7, 8, 9], 'each event once, in order');
      const ids = sse.events.map((e) => JSON.parse(e.id)[name]);
      const epoch = ids[0][0];
      assert.deepEqual(ids, [1, 2, 3, 4, 5, 6, 7, 8, 9].map((serial) => [epoch, serial]), 'lastEventId = the position');
      assert.deepEqual(sse.other, [], 'no recovery_failed');
      assert.equal(sse.opens, 2, 'one reconnection');
      await page.evaluate(() => window.source.close());
    } finally {
      await page.close();
      proxy.close();
    }
  });

  test('pusher-js on xhr_streaming with the recovery plugin gets exactly what it missed', async () => {
    const proxy = new CuttableProxy(herald.port);
    await proxy.start();
    const page = await noWebSocketPage();
    try {
      const name = uid('history');
      const transport = await page.evaluate(async ({ key, port, channel }) => {
        const { enableRecovery } = await import('/herald-recovery.mjs');
        const client = new window.Pusher(key, {
          cluster: 'mt1', wsHost: '127.0.0.1', wsPort: port, httpHost: '127.0.0.1', httpPort: port,
          forceTLS: false, disableStats: true,
        });
        window.recovering = { client, got: [], states: [] };
        enableRecovery(client);
        client.connection.bind('state_change', ({ current }) => window.recovering.states.push(current));
        const ch = client.subscribe(channel);
        ch.bind('ev', (d) => window.recovering.got.push(d.i));
        await new Promise((resolve) => ch.bind('pusher:subscription_succeeded', resolve));
        return client.connection.connection.transport.name;
      }, { key: APPS.main.key, port: proxy.proxyPort, channel: name });
      assert.equal(transport, 'xhr_streaming');
      const got = (n) => page.waitForFunction((k) => window.recovering.got.length >= k, n, { timeout: WAIT });
      await sdk().trigger(name, 'ev', { i: 0 });
      await got(1);
      const socketId = await page.evaluate(() => window.recovering.client.connection.socket_id);

      // The streaming request fails at once; pusher-js's next attempt waits for the link. (Were
      // its attempts refused, pusher-js would go on to xhr_polling, and recover there.)
      proxy.cut();
      await page.waitForFunction(() => window.recovering.client.connection.state !== 'connected', null, { timeout: WAIT });
      for (let i = 1; i <= 30; i++) await sdk().trigger(name, 'ev', { i });
      proxy.restore();
      await got(31);
      await sdk().trigger(name, 'ev', { i: 31 });
      await got(32);
      const after = await page.evaluate(() => ({
        got: window.recovering.got,
        socketId: window.recovering.client.connection.socket_id,
        transport: window.recovering.client.connection.connection.transport.name,
      }));
      assert.deepEqual(after.got, Array.from({ length: 32 }, (_, i) => i), 'each event once, in order');
      assert.notEqual(after.socketId, socketId, 'a new session');
      assert.equal(after.transport, 'xhr_streaming');
      await page.evaluate(() => window.recovering.client.disconnect());
    } finally {
      await page.close();
      proxy.close();
    }
  });

  test('with streaming blocked too, pusher-js falls back to xhr_polling', async () => {
    const page = await noWebSocketPage();
    await page.route('**/xhr_streaming**', (r) => r.abort());
    try {
      await exercise(page, 'xhr_polling');
    } finally {
      await page.close();
    }
  });
});
