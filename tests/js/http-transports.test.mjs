//! pusher-js's HTTP fallback transports (`xhr_streaming`, `xhr_polling`) against herald, with
//! unmodified pusher-js 8 forced onto one transport: the same sessions a WebSocket client gets
//! (channels, auth, presence, client events, sign-in, drain). Then raw HTTP for the answers to
//! bad requests, the bounds and the idle expiry.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, afterEach, before, describe, test } from 'node:test';

import {
  APPS, Inbox, connected, once, pusherClient, rest, sdkChannelAuthorization, sdkUserAuthentication,
  startHerald, subscribed, uid,
} from './harness.mjs';

/** A pusher-js client that may use only `transport`. */
function httpClient(herald, app, transport, options = {}) {
  const sdk = rest(herald, app);
  const c = pusherClient(herald, app, {
    httpHost: '127.0.0.1',
    httpPort: herald.port,
    enabledTransports: [transport],
    channelAuthorization: sdkChannelAuthorization(sdk, () => ({ user_id: `u-${transport}`, user_info: { t: transport } })),
    ...options,
  });
  c.messages = new Inbox(`messages of ${transport}`);
  c.connection.bind('message', (m) => c.messages.push(m));
  return c;
}

/** The name of the transport a connected pusher-js client uses. */
function transportName(c) {
  return c.connection.connection?.transport?.name ?? c.connection.connection?.name;
}

/** Deadline-bounded polling of `check` (an HTTP condition), instead of a sleep. */
async function until(check, what, ms = 30_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

for (const transport of ['xhr_streaming', 'xhr_polling']) {
  describe(`pusher-js over ${transport}`, () => {
    let herald;
    const clients = [];
    const make = (app = APPS.main, options = {}) => {
      const c = httpClient(herald, app, transport, options);
      clients.push(c);
      return c;
    };

    before(async () => {
      herald = await startHerald();
    });
    afterEach(() => herald?.assertAlive());
    after(async () => {
      clients.forEach((c) => c.disconnect());
      await herald?.stop();
    });

    test('connects over the HTTP transport and receives HTTP API events on a public channel', async () => {
      const c = await connected(make());
      assert.equal(transportName(c), transport);
      assert.match(c.connection.socket_id, /^\d+\.\d+$/);
      const name = uid('news');
      const channel = await subscribed(c, name);
      const got = once(channel, 'update');
      await rest(herald, APPS.main).trigger(name, 'update', { n: 1 });
      assert.deepEqual(await got, { n: 1 });
      // Several events in a row arrive in order.
      const seen = [];
      const all = new Promise((resolve) => channel.bind('seq', (d) => { seen.push(d.i); if (seen.length === 5) resolve(); }));
      for (let i = 0; i < 5; i++) await rest(herald, APPS.main).trigger(name, 'seq', { i });
      await all;
      assert.deepEqual(seen, [0, 1, 2, 3, 4]);
    });

    test('past 256 KiB pusher-js renews its receive request and the session carries on', async () => {
      const c = await connected(make());
      const socketId = c.connection.socket_id;
      const name = uid('bulk');
      const channel = await subscribed(c, name);
      const seen = [];
      const all = new Promise((resolve) => channel.bind('chunk', (d) => {
        seen.push(d.i);
        if (seen.length === 40) resolve();
      }));
      const filler = 'x'.repeat(8000);
      for (let i = 0; i < 40; i++) await rest(herald, APPS.main).trigger(name, 'chunk', { i, filler });
      await all;
      assert.deepEqual(seen, [...Array(40).keys()], 'every event, in order, none twice');
      assert.equal(c.connection.socket_id, socketId, 'the same session');
      assert.equal(c.connection.state, 'connected');
    });

    test('private channel: client events reach a WebSocket client, and back', async () => {
      const name = uid('private-chat');
      const http = await connected(make());
      const ws = pusherClient(herald, APPS.main, {
        channelAuthorization: sdkChannelAuthorization(rest(herald, APPS.main)),
      });
      clients.push(ws);
      await connected(ws);
      const httpChannel = await subscribed(http, name);
      const wsChannel = await subscribed(ws, name);
      const toWs = once(wsChannel, 'client-ping');
      assert.equal(httpChannel.trigger('client-ping', { from: 'http' }), true);
      assert.deepEqual(await toWs, { from: 'http' });
      const toHttp = once(httpChannel, 'client-pong');
      assert.equal(wsChannel.trigger('client-pong', { from: 'ws' }), true);
      assert.deepEqual(await toHttp, { from: 'ws' });
    });

    test('presence: members, member_added and member_removed', async () => {
      const name = uid('presence-room');
      const a = await connected(make());
      const chA = await subscribed(a, name);
      assert.equal(chA.members.count, 1);
      const added = once(chA, 'pusher:member_added');
      const b = await connected(make(APPS.main, {
        channelAuthorization: sdkChannelAuthorization(rest(herald, APPS.main), () => ({ user_id: 'bob' })),
      }));
      await subscribed(b, name);
      assert.equal((await added).id, 'bob');
      // An HTTP client that vanishes is noticed only by the idle expiry (no close frame can
      // come): leaving the channel shows member_removed without waiting for it.
      const removed = once(chA, 'pusher:member_removed');
      b.unsubscribe(name);
      assert.equal((await removed).id, 'bob');
    });

    test('user sign-in', async () => {
      const c = make(APPS.main, {
        userAuthentication: sdkUserAuthentication(rest(herald, APPS.main), { id: `user-${transport}` }),
      });
      await connected(c);
      c.signin();
      await c.messages.next((m) => m.event === 'pusher:signin_success', { what: 'pusher:signin_success' });
    });

    test('an unknown app key is refused with 4001, as over WebSocket', async () => {
      const c = make({ ...APPS.main, key: 'no-such-key' });
      // pusher-js reports the refusal exactly as it does over a WebSocket.
      const error = await new Promise((resolve) => c.connection.bind('error', (e) => resolve(e)));
      assert.equal(error.error?.data?.code, 4001, JSON.stringify(error));
      await new Promise((resolve) => {
        if (c.connection.state === 'disconnected') return resolve();
        c.connection.bind('state_change', ({ current }) => current === 'disconnected' && resolve());
      });
    });
  });
}

describe('HTTP transports: drain', () => {
  test('a drain closes HTTP sessions with 4200 and pusher-js goes back to connecting', async () => {
    const herald = await startHerald();
    try {
      for (const transport of ['xhr_streaming', 'xhr_polling']) {
        const c = httpClient(herald, APPS.main, transport);
        await connected(c);
        c.transport = transport;
        herald[transport] = c;
      }
      herald.stopping = true;
      const started = Date.now();
      const exited = new Promise((resolve) => herald.child.once('exit', resolve));
      herald.child.kill('SIGTERM');
      for (const transport of ['xhr_streaming', 'xhr_polling']) {
        const c = herald[transport];
        const close = await c.closes.next(() => true, { what: `${transport} close` });
        if (transport === 'xhr_streaming') {
          assert.equal(close.code, 4200, transport);
        } else {
          // A polling client gets the 4200 on its next poll; when the drain comes between two
          // polls, the listener no longer accepts that poll and pusher-js sees 1006 instead.
          assert.ok([4200, 1006].includes(close.code), `${transport}: ${close.code}`);
        }
        await new Promise((resolve) => {
          if (c.connection.state !== 'connected') return resolve();
          c.connection.bind('state_change', ({ current }) => current !== 'connected' && resolve());
        });
        c.disconnect();
      }
      await exited;
      // The drain did not wait for the streaming request until its grace period ran out.
      assert.ok(Date.now() - started < 5000, `drain took ${Date.now() - started} ms`);
    } finally {
      await herald.stop();
    }
  });
});

describe('HTTP transports: raw requests', () => {
  let herald;
  let base;
  before(async () => {
    herald = await startHerald();
    base = `http://127.0.0.1:${herald.port}/pusher/app`;
  });
  afterEach(() => herald?.assertAlive());
  after(() => herald?.stop());

  const query = '?protocol=7&client=js&version=8.6.0';

  /** Opens a polling session and returns its first response's text. */
  async function openPolling(session, key = APPS.main.key) {
    const r = await fetch(`${base}/${key}/${session}/xhr${query}`, { method: 'POST' });
    assert.equal(r.status, 200);
    return r.text();
  }

  test('the first receive opens the session; the next gets connection_established', async () => {
    const session = `1/${uid('s').replace(/[^a-z0-9]/g, '')}`;
    assert.equal(await openPolling(session), 'o\n');
    const second = await openPolling(session);
    assert.match(second, /^a\[.*pusher:connection_established.*\]\n$/);
    const [msg] = JSON.parse(second.slice(1));
    assert.equal(JSON.parse(msg).event, 'pusher:connection_established');
  });

  test('xhr_send to an unknown session is 404', async () => {
    const r = await fetch(`${base}/${APPS.main.key}/1/nosuchsession/xhr_send`, { method: 'POST', body: '[]' });
    assert.equal(r.status, 404);
    assert.match(await r.text(), /Unknown session/);
  });

  test('bad paths and methods get clear 4xx answers', async () => {
    let r = await fetch(`${base}/${APPS.main.key}/1/abc/websocket`, { method: 'POST' });
    assert.equal(r.status, 404);
    assert.match(await r.text(), /Unknown transport/);
    r = await fetch(`${base}/${APPS.main.key}/1/xhr`, { method: 'POST' });
    assert.equal(r.status, 404);
    r = await fetch(`${base}/${APPS.main.key}/1/abc/xhr${query}`);
    assert.equal(r.status, 405);
  });

  test('malformed, oversized and too many posted messages: 400, 413, 429', async () => {
    const session = '2/bounds01';
    // `small` has max_message_bytes = 1024.
    await openPolling(session, APPS.small.key);
    const send = (body) => fetch(`${base}/${APPS.small.key}/${session}/xhr_send`, { method: 'POST', body });
    let r = await send('{"not":"an array"}');
    assert.equal(r.status, 400);
    assert.match(await r.text(), /JSON array/);
    r = await send('[1,2]');
    assert.equal(r.status, 400);
    await r.text();
    // Over the body bound, and a body within it holding a message over max_message_bytes.
    r = await send(JSON.stringify(['x'.repeat(200_000)]));
    assert.equal(r.status, 413);
    await r.text();
    r = await send(JSON.stringify(['x'.repeat(1100)]));
    assert.equal(r.status, 413);
    await r.text();
    // No receive request is attached, and nothing reads: the inbound queue fills.
    const ping = JSON.stringify({ event: 'pusher:ping', data: {} });
    const statuses = [];
    for (let i = 0; i < 10; i++) {
      r = await send(JSON.stringify(Array(16).fill(ping)));
      statuses.push(r.status);
      await r.text();
    }
    // The session task reads as fast as it is posted to, so 429 shows only if the queue's
    // bound holds: 16 at once is accepted, the answers are 204 or 429, never anything else.
    assert.ok(statuses.every((s) => s === 204 || s === 429), statuses.join(','));
    r = await send(JSON.stringify(Array(65).fill('{}')));
    assert.equal(r.status, 429, 'more messages at once than the queue holds');
    assert.match(await r.text(), /Too many messages/);
  });

  test('a session without a receive request ends after the idle expiry', async () => {
    const session = '3/idle0001';
    await openPolling(session);
    const sendStatus = async () => {
      const r = await fetch(`${base}/${APPS.main.key}/${session}/xhr_send`, { method: 'POST', body: '[]' });
      await r.text();
      return r.status;
    };
    assert.equal(await sendStatus(), 204);
    const start = Date.now();
    await until(async () => (await sendStatus()) === 404, 'the idle session to expire', 30_000);
    const took = Date.now() - start;
    assert.ok(took > 10_000, `expired after ${took} ms, before the idle expiry`);
  });

  test('a refused origin gets 403', async () => {
    const h = await startHerald({ apps: [{ ...APPS.main, allowed_origins: ['https://good.example'] }] });
    try {
      const url = `http://127.0.0.1:${h.port}/pusher/app/${APPS.main.key}/1/origin01/xhr${query}`;
      let r = await fetch(url, { method: 'POST', headers: { origin: 'https://evil.example' } });
      assert.equal(r.status, 403);
      await r.text();
      r = await fetch(url, { method: 'POST', headers: { origin: 'https://good.example' } });
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('access-control-allow-origin'), 'https://good.example');
      assert.equal(await r.text(), 'o\n');
      // The live session's name does not let a refused origin read or write it.
      r = await fetch(url, { method: 'POST', headers: { origin: 'https://evil.example' } });
      assert.equal(r.status, 403);
      await r.text();
      const send = url.replace(`/xhr${query}`, '/xhr_send');
      const subscribe = JSON.stringify([JSON.stringify({ event: 'pusher:subscribe', data: { channel: 'x' } })]);
      r = await fetch(send, { method: 'POST', headers: { origin: 'https://evil.example' }, body: subscribe });
      assert.equal(r.status, 403);
      await r.text();
      r = await fetch(send, { method: 'POST', headers: { origin: 'https://good.example' }, body: subscribe });
      assert.equal(r.status, 204);
      await r.text();
      // Nor may it open an event stream of the app.
      const events = `http://127.0.0.1:${h.port}/apps/${APPS.main.key}/events?channels=news`;
      r = await fetch(events, { headers: { origin: 'https://evil.example' } });
      assert.equal(r.status, 403);
      await r.text();
    } finally {
      await h.stop();
    }
  });
});

describe('Server-Sent Events: GET /apps/{key}/events', () => {
  let herald;
  let base;
  before(async () => {
    // The main app keeps history on `sse-history-*` and `sse-small-*` (epoch/serial on frames).
    const history = [{ channels: 'sse-history-*', max_messages: 100 }, { channels: 'sse-small-*', max_messages: 5 }];
    herald = await startHerald({ apps: Object.values(APPS).map((a) => (a === APPS.main ? { ...a, history } : a)) });
    base = `http://127.0.0.1:${herald.port}/apps/${APPS.main.key}/events`;
  });
  afterEach(() => herald?.assertAlive());
  after(() => herald?.stop());

  /** `curl -N` on `url`, with its output as an Inbox-like accumulator. */
  function curl(url, headers = []) {
    const args = ['-sN', ...headers.flatMap((h) => ['-H', h]), url];
    const child = spawn('curl', args, { stdio: ['ignore', 'pipe', 'inherit'] });
    const state = { out: '', child };
    const waiters = [];
    child.stdout.on('data', (d) => {
      state.out += d;
      for (const w of [...waiters]) if (state.out.includes(w.needle)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(); }
    });
    state.waitFor = (needle, ms = 5000) => (state.out.includes(needle) ? Promise.resolve() : new Promise((resolve, reject) => {
      const w = { needle, resolve };
      waiters.push(w);
      setTimeout(() => reject(new Error(`timed out waiting for ${needle}; curl got:\n${state.out}`)), ms);
    }));
    return state;
  }

  test('curl -N receives public channel events as they are published', async () => {
    const name = uid('sse-news');
    const c = curl(`${base}?channels=${name},${name}-other`);
    try {
      await c.waitFor(': herald');
      // A comment first (the response is flushed at once), then a short reconnection delay.
      assert.ok(c.out.startsWith(': herald\nretry: 1000\n\n'), c.out);
      // The subscription is made by the stream itself: publish until it is in place.
      await until(async () => {
        const info = await rest(herald, APPS.main).get({ path: `/channels/${name}` }).then((r) => r.json());
        return info.occupied;
      }, 'the stream subscription', 5000);
      await rest(herald, APPS.main).trigger(name, 'update', { n: 1 });
      await c.waitFor('event: update\n');
      const block = c.out.slice(c.out.indexOf('event: update'));
      assert.match(block, /^event: update\ndata: (.*)\n\n/);
      const data = JSON.parse(block.split('\n')[1].slice('data: '.length));
      assert.deepEqual(data, { channel: name, data: JSON.stringify({ n: 1 }) });
      // Channels without history carry no positions: no id line.
      assert.ok(!c.out.includes('id: '), c.out);
      assert.ok(!c.out.includes('pusher'), 'internal events are not forwarded');
    } finally {
      c.child.kill();
    }
  });

  test('private channels need the backend\'s signature', async () => {
    const name = uid('private-sse');
    let r = await fetch(`${base}?channels=${name}`);
    assert.equal(r.status, 401);
    assert.match(await r.text(), /signed/);
    const sdk = rest(herald, APPS.main);
    const forged = rest(herald, { ...APPS.main, secret: 'not-the-secret-0123456789' });
    const signed = (s) => s.createSignedQueryString({ method: 'GET', path: `/apps/${APPS.main.key}/events`, params: { channels: name } });
    r = await fetch(`${base}?${signed(forged)}`);
    assert.equal(r.status, 401);
    await r.text();
    const c = curl(`${base}?${signed(sdk)}`);
    try {
      await c.waitFor(': herald');
      await until(async () => (await sdk.get({ path: `/channels/${name}` }).then((x) => x.json())).occupied, 'the subscription', 5000);
      await sdk.trigger(name, 'secret', { s: 1 });
      await c.waitFor('event: secret\n');
    } finally {
      c.child.kill();
    }
  });

  test('presence and encrypted channels, and bad requests, are refused with 400', async () => {
    for (const q of ['channels=presence-x', 'channels=private-encrypted-x', '', 'channels=a,,b', 'channels=a%20b']) {
      const r = await fetch(`${base}?${q}`);
      assert.equal(r.status, 400, q);
      await r.text();
    }
    const r = await fetch(`http://127.0.0.1:${herald.port}/apps/no-such-key/events?channels=a`);
    assert.equal(r.status, 404);
    await r.text();
  });

  /** The `id:` lines of a stream so far, parsed. */
  const ids = (c) => c.out.split('\n').filter((l) => l.startsWith('id: ')).map((l) => JSON.parse(l.slice(4)));
  /** The `data` of every `e` event of a stream so far, in order. */
  const published = (c) => c.out.split('\n\n')
    .filter((b) => b.includes('event: e\n'))
    .map((b) => JSON.parse(JSON.parse(b.split('\n').find((l) => l.startsWith('data: ')).slice(6)).data).i);

  test('Last-Event-ID resumes the stream without loss or duplicates', async () => {
    const name = uid('sse-history');
    const sdk = rest(herald, APPS.main);
    const occupied = async () => (await sdk.get({ path: `/channels/${name}` }).then((x) => x.json())).occupied;
    const first = curl(`${base}?channels=${name}`);
    let resumed;
    try {
      await first.waitFor(': herald');
      await until(occupied, 'the stream subscription', 5000);
      for (let i = 1; i <= 3; i++) await sdk.trigger(name, 'e', { i });
      await first.waitFor('"i\\":3');
      assert.deepEqual(published(first), [1, 2, 3]);
      // Every event of a channel with history carries the stream's position in its id.
      const firstIds = ids(first);
      assert.equal(firstIds.length, 3, first.out);
      assert.deepEqual(firstIds.map((id) => id[name][1]), [1, 2, 3]);
      const epoch = firstIds[0][name][0];
      assert.match(epoch, /^\S+$/);
      const last = first.out.split('\n').filter((l) => l.startsWith('id: ')).pop().slice(4);
      first.child.kill();
      await until(async () => !(await occupied()), 'the first stream to end', 5000);

      for (let i = 4; i <= 10; i++) await sdk.trigger(name, 'e', { i });
      resumed = curl(`${base}?channels=${name}`, [`Last-Event-ID: ${last}`]);
      await resumed.waitFor('"i\\":10');
      // A live event after the replay: nothing else came before it.
      await until(occupied, 'the resumed subscription', 5000);
      await sdk.trigger(name, 'e', { i: 11 });
      await resumed.waitFor('"i\\":11');
      assert.deepEqual(published(resumed), [4, 5, 6, 7, 8, 9, 10, 11], resumed.out);
      assert.deepEqual(ids(resumed).map((id) => id[name]), [4, 5, 6, 7, 8, 9, 10, 11].map((s) => [epoch, s]));
      assert.ok(!resumed.out.includes('recovery_failed'), resumed.out);
    } finally {
      first.child.kill();
      resumed?.child.kill();
    }
  });

  test('a Last-Event-ID past what history holds: pusher:recovery_failed, then live events', async () => {
    const name = uid('sse-small');
    const sdk = rest(herald, APPS.main);
    const occupied = async () => (await sdk.get({ path: `/channels/${name}` }).then((x) => x.json())).occupied;
    for (let i = 1; i <= 8; i++) await sdk.trigger(name, 'e', { i });
    // Resuming from serial 1 of an unknown epoch cannot be served.
    const c = curl(`${base}?channels=${name}`, [`Last-Event-ID: ${JSON.stringify({ [name]: ['no-such-epoch', 1] })}`]);
    try {
      await c.waitFor('event: pusher:recovery_failed\n');
      const block = c.out.slice(c.out.indexOf('event: pusher:recovery_failed'));
      const data = JSON.parse(block.split('\n')[1].slice('data: '.length));
      assert.equal(data.channel, name);
      const failure = typeof data.data === 'string' ? JSON.parse(data.data) : data.data;
      assert.equal(failure.reason, 'unknown_epoch', c.out);
      assert.equal(failure.serial, 8);
      await until(occupied, 'the stream subscription', 5000);
      await sdk.trigger(name, 'e', { i: 9 });
      await c.waitFor('"i\\":9');
      assert.deepEqual(published(c), [9], c.out);
    } finally {
      c.child.kill();
    }
  });
});
