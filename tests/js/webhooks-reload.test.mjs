//! Webhooks follow the apps a SIGHUP reloads: an app started without webhooks gains one, an app
//! added at runtime delivers to its own endpoint signed with its own secret, a changed URL takes
//! the next event, and a removed app delivers nothing more. Two HTTP receivers on 127.0.0.1:0
//! check every request with the `pusher` SDK; pusher-js clients make the events happen.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import PusherServer from 'pusher';

import { Inbox, WAIT_MS, eventually, pusherClient, served, subscribed, uid } from './harness.mjs';
import { startHerald as launch, toml } from '../support/herald_launcher.mjs';

const A = { id: 'hooks-reload-a', key: 'hooks-reload-a-key', secret: 'hooks-reload-a-3f9c1e7a5b' };
const B = { id: 'hooks-reload-b', key: 'hooks-reload-b-key', secret: 'hooks-reload-b-8d2a6c0e4f' };
/** Added by the reloads that change A: once it is served, A's change was applied before it. */
const MARK = { id: 'hooks-reload-mark', key: 'hooks-reload-mark-key', secret: 'hooks-reload-mark-1c5e9a3f7d' };
const APPS = [A, B, MARK];
/** herald holds departures this long before telling (Pusher's debounce). */
const DEBOUNCE_MS = 3000;

/**
 * An HTTP server standing for the apps' backends: each request's signature is checked with the
 * SDK of every app, and the request is recorded with the app whose secret signed it.
 */
class Receiver {
  constructor(label) {
    this.events = new Inbox(`${label} webhook events`);
    this.requests = [];
  }

  async start() {
    this.server = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const rawBody = Buffer.concat(chunks).toString('utf8');
        const signedBy = APPS.find((app) => {
          const sdk = new PusherServer({ appId: app.id, key: app.key, secret: app.secret });
          return sdk.webhook({ headers: req.headers, rawBody }).isValid();
        });
        const keyOf = APPS.find((app) => app.key === req.headers['x-pusher-key']);
        this.requests.push({ path: req.url, signedBy: signedBy?.id ?? null, key: keyOf?.id ?? null });
        if (signedBy) {
          for (const event of JSON.parse(rawBody).events) this.events.push({ path: req.url, app: signedBy.id, event });
        }
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('ok');
      });
    });
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = this.server.address().port;
  }

  url(p) {
    return `http://127.0.0.1:${this.port}${p}`;
  }

  /** The next `name` event on `p` for `channel`. */
  next(p, name, channel, timeout = WAIT_MS) {
    return this.events.next(
      (e) => e.path === p && e.event.name === name && e.event.channel === channel,
      { timeout, what: `${name} of ${channel} on ${p}` },
    );
  }

  /** Every event seen so far for `channel`. */
  seen(channel) {
    return this.events.all((e) => e.event.channel === channel);
  }

  close() {
    this.server?.closeAllConnections?.();
    this.server?.close();
  }
}

/** The series of /metrics naming `app`. */
async function metricsOf(herald, app) {
  const text = await (await fetch(`http://127.0.0.1:${herald.metricsPort}/metrics`)).text();
  return text.split('\n').filter((l) => l.includes(`app="${app.id}"`) && l.startsWith('herald_webhook'));
}

describe('webhooks follow the apps a SIGHUP reloads', () => {
  const first = new Receiver('first');
  const second = new Receiver('second');
  let herald;
  let file;
  const clients = [];

  function client(app) {
    const c = pusherClient(herald, app);
    clients.push(c);
    return c;
  }

  function reloadWith(apps) {
    writeFileSync(file, toml({ server: { metrics_port: 0 }, apps }));
    herald.child.kill('SIGHUP');
  }

  before(async () => {
    await Promise.all([first.start(), second.start()]);
    herald = await launch({ config: { server: { metrics_port: 0 }, apps: [A] }, listeners: 2 });
    herald.metricsPort = herald.listening.find((l) => l.label === 'metrics').port;
    file = path.join(herald.dir, 'herald.toml');
  });
  after(async () => {
    clients.forEach((c) => c.disconnect());
    await herald?.stop();
    first.close();
    second.close();
  });

  test('added, changed and removed webhooks take effect at the reload', async () => {
    // Started without any webhook: nothing is delivered for A.
    const a = client(A);
    const before = await subscribed(a, uid('before'));
    assert.deepEqual(await metricsOf(herald, A), [], 'no webhook series before A has webhooks');

    // A gains a webhook, B is added with its own.
    reloadWith([{ ...A, webhooks: [{ url: first.url('/a') }] }, { ...B, webhooks: [{ url: first.url('/b') }] }]);
    await eventually(() => served(herald, B), 'B is served');
    const aRoom = await subscribed(a, uid('a-room'));
    const aOccupied = await first.next('/a', 'channel_occupied', aRoom.name);
    assert.equal(aOccupied.app, A.id, 'signed with A\'s secret');
    const b = client(B);
    const bRoom = await subscribed(b, uid('b-room'));
    const bOccupied = await first.next('/b', 'channel_occupied', bRoom.name);
    assert.equal(bOccupied.app, B.id, 'signed with B\'s secret');
    assert.deepEqual(first.seen(before.name), [], 'a channel occupied before the reload is not reported');
    const sent = (lines) => Number(lines.find((l) => l.startsWith('herald_webhooks_sent_total'))?.split(' ').pop() ?? 0);
    await eventually(async () => sent(await metricsOf(herald, B)) >= 1, 'B\'s sent counter on /metrics');

    // A's URL changes: the next event of A goes to the second receiver only.
    reloadWith([{ ...A, webhooks: [{ url: second.url('/a') }] }, { ...B, webhooks: [{ url: first.url('/b') }] }, MARK]);
    await eventually(() => served(herald, MARK), 'the reload is applied');
    const moved = await subscribed(a, uid('a-moved'));
    const movedOccupied = await second.next('/a', 'channel_occupied', moved.name);
    assert.equal(movedOccupied.app, A.id);
    // An event of B, after A's, delivered by the first receiver's other endpoint.
    const bLater = await subscribed(b, uid('b-later'));
    await first.next('/b', 'channel_occupied', bLater.name);
    assert.deepEqual(first.seen(moved.name), [], 'the old URL gets nothing after the change');

    // A is removed: its clients are closed, and nothing of A is delivered any more.
    reloadWith([{ ...B, webhooks: [{ url: first.url('/b') }] }, MARK]);
    const closed = await a.closes.next(() => true, { what: 'A\'s close' });
    assert.equal(closed.code, 4001);
    await eventually(async () => !(await served(herald, A)), 'A is no longer served');
    // B's departure is held as long as A's would be (the debounce): once it is in, a
    // departure of A would be too.
    const bLast = await subscribed(b, uid('b-last'));
    await first.next('/b', 'channel_occupied', bLast.name);
    b.unsubscribe(bLast.name);
    await first.next('/b', 'channel_vacated', bLast.name, DEBOUNCE_MS + WAIT_MS);
    const departures = (e) => e.event.name === 'channel_vacated' && [before.name, aRoom.name, moved.name].includes(e.event.channel);
    assert.deepEqual([...first.events.all(departures), ...second.events.all(departures)], [], 'no departure of the removed app');
    assert.deepEqual(await metricsOf(herald, A), [], 'the removed app\'s series left /metrics');
    assert.ok((await metricsOf(herald, B)).length > 0, 'B\'s series are on /metrics');
    const bad = [...first.requests, ...second.requests].filter((r) => r.signedBy === null || r.signedBy !== r.key);
    assert.deepEqual(bad, [], 'every request is signed by the app its X-Pusher-Key names');
  });
});
