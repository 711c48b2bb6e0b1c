//! Webhooks seen by a receiver in the test: every request herald POSTs is checked with the npm
//! `pusher` SDK (`webhook({headers, rawBody}).isValid()`, `getEvents()`), while pusher-js
//! clients make the events happen: occupancy, presence, client events, cache misses,
//! subscription counts, sign-in; then batching, filters, debounce, retries, isolation of apps
//! and a dead endpoint under a flood.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, afterEach, before, describe, test } from 'node:test';

import PusherServer from 'pusher';

import {
  Inbox, connected, pusherClient, rest, sdkChannelAuthorization, sdkUserAuthentication, once, uid,
} from './harness.mjs';
import { startHerald as launch } from '../support/herald_launcher.mjs';

/** herald holds departures this long before telling (Pusher's debounce). */
const DEBOUNCE_MS = 3000;
/** Waits that span a debounced departure. */
const LATE_MS = DEBOUNCE_MS + 5000;
/** Events queued per endpoint at most (webhook::QUEUE_BOUND). */
const QUEUE_BOUND = 10000;

/**
 * An HTTP server on 127.0.0.1:0 standing for the apps' backends. Each request is checked with
 * the SDK of the app its `X-Pusher-Key` names; its events go to `events`, in arrival order.
 * `plan(path, statuses)` makes the next requests to `path` answer those statuses.
 */
class Receiver {
  constructor(apps) {
    this.apps = apps;
    this.requests = new Inbox('webhook requests');
    this.events = new Inbox('webhook events');
    this.plans = new Map();
  }

  async start() {
    this.server = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const rawBody = Buffer.concat(chunks).toString('utf8');
        const status = this.plans.get(req.url)?.shift() ?? 200;
        this.record(req.url, req.headers, rawBody, status);
        res.writeHead(status, { 'content-type': 'text/plain' });
        res.end(status === 200 ? 'ok' : 'not now');
      });
    });
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = this.server.address().port;
  }

  url(path) {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  plan(path, statuses) {
    this.plans.set(path, [...statuses]);
  }

  record(path, headers, rawBody, status) {
    const app = this.apps.find((a) => a.key === headers['x-pusher-key']);
    const sdk = app && new PusherServer({ appId: app.id, key: app.key, secret: app.secret });
    const hook = sdk?.webhook({ headers, rawBody });
    const valid = Boolean(hook?.isValid());
    const request = {
      path, app: app?.id ?? null, valid, status, rawBody, headers,
      events: valid ? hook.getEvents() : [], time: valid ? hook.getTime() : null,
    };
    this.requests.push(request);
    if (status !== 200) return;
    for (const event of request.events) this.events.push({ path, app: request.app, event, at: Date.now() });
  }

  /** The next event on `path` named `name` whose fields include `fields`. */
  next(path, name, fields = {}, timeout = 5000) {
    return this.events.next(
      (e) => e.path === path && e.event.name === name && Object.entries(fields).every(([k, v]) => e.event[k] === v),
      { timeout, what: `${name} ${JSON.stringify(fields)} on ${path}` },
    );
  }

  /** Every event seen so far on `path` (consumed or not) matching `pred`. */
  seen(path, pred = () => true) {
    return this.events.all((e) => e.path === path && pred(e.event)).map((e) => e.event);
  }

  close() {
    this.server?.closeAllConnections?.();
    this.server?.close();
  }
}

/** Scrapes herald's /metrics and returns the value of `metric{labels}` (0 if absent). */
async function metric(herald, name, labels) {
  const text = await (await fetch(`http://127.0.0.1:${herald.metricsPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  return line ? Number(line.split(' ').pop()) : 0;
}

/** Polls `probe` until `cond(value)` holds, at most `ms`; returns the last value. */
async function until(probe, cond, what, ms = 10000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (cond(v)) return v;
    if (Date.now() > deadline) throw new Error(`${what}: still ${v} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('webhooks', () => {
  const APPS = {
    hooked: {
      id: '2001', key: 'hooked-key', secret: 'hooked-7c1e5a9f3b0d2468',
      enable_client_messages: true, enable_user_authentication: true, webhook_batch_ms: 300,
    },
    other: { id: '2002', key: 'other-key', secret: 'other-2b6d0f4a8c1e3579', enable_client_messages: true },
    flaky: { id: '2003', key: 'flaky-key', secret: 'flaky-9e3a7c1f5b0d2468' },
    flooded: {
      id: '2004', key: 'flooded-key', secret: 'flooded-4f8b2d6a0c1e3579',
      enable_client_messages: true, max_client_events_per_second: 1000000,
    },
    silent: { id: '2005', key: 'silent-key', secret: 'silent-1a5c9e3f7b0d2468' },
  };
  const receiver = new Receiver(Object.values(APPS));
  let herald;
  const clients = [];

  function client(app, options = {}) {
    const sdk = rest(herald, app);
    const c = pusherClient(herald, app, { channelAuthorization: sdkChannelAuthorization(sdk, options.presence), ...options.pusher });
    clients.push(c);
    return c;
  }

  async function subscribed(c, name) {
    await connected(c);
    const ch = c.subscribe(name);
    await once(ch, 'pusher:subscription_succeeded');
    return ch;
  }

  before(async () => {
    await receiver.start();
    // A port nothing listens on: connections to it are refused.
    const probe = http.createServer();
    await new Promise((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const deadPort = probe.address().port;
    await new Promise((resolve) => probe.close(resolve));
    const apps = [
      {
        ...APPS.hooked,
        webhooks: [
          { url: receiver.url('/all') },
          { url: receiver.url('/users'), event_types: ['user_online', 'user_offline'] },
          {
            url: receiver.url('/private'), event_types: ['channel_occupied'],
            filter: { channel_name_starts_with: 'private-' },
          },
          {
            url: receiver.url('/log'), event_types: ['client_event', 'channel_vacated'],
            filter: { channel_name_ends_with: '-log' }, headers: { Authorization: 'Bearer hook-token' },
          },
        ],
      },
      { ...APPS.other, webhooks: [{ url: receiver.url('/other') }] },
      { ...APPS.flaky, webhooks: [{ url: receiver.url('/flaky'), event_types: ['channel_occupied'] }] },
      { ...APPS.flooded, webhooks: [{ url: `http://127.0.0.1:${deadPort}/dead`, event_types: ['client_event'] }] },
      APPS.silent,
    ];
    herald = await launch({ config: { server: { metrics_port: 0 }, apps }, listeners: 2 });
    herald.metricsPort = herald.listening.find((l) => l.label === 'metrics').port;
  });
  afterEach(() => {
    herald?.assertAlive();
    const bad = receiver.requests.all((r) => !r.valid);
    assert.deepEqual(bad.map((r) => [r.path, r.headers]), [], 'every webhook request is valid for its app');
  });
  after(async () => {
    clients.forEach((c) => c.disconnect());
    await herald?.stop();
    receiver.close();
  });

  test('channel_occupied and subscription_count come in one signed request (batching)', async () => {
    const name = uid('room');
    const c = client(APPS.hooked);
    await subscribed(c, name);
    const occupied = await receiver.next('/all', 'channel_occupied', { channel: name });
    const count = await receiver.next('/all', 'subscription_count', { channel: name, subscription_count: 1 });
    const request = receiver.requests.all((r) => r.events.some((e) => e.channel === name))[0];
    assert.equal(request.events.length, 2, 'both events in one request of a 300 ms batch');
    assert.deepEqual(request.events, [occupied.event, count.event]);
    assert.equal(request.headers['content-type'], 'application/json');
    assert.equal(request.headers['x-pusher-key'], APPS.hooked.key);
    assert.ok(Math.abs(request.time.getTime() - Date.now()) < 10000, 'time_ms is now');
    assert.deepEqual(occupied.event, { name: 'channel_occupied', channel: name });
    // The body is exactly what Pusher sends.
    const body = JSON.parse(request.rawBody);
    assert.deepEqual(Object.keys(body).sort(), ['events', 'time_ms']);
  });

  test('a real leave gives channel_vacated once, after the debounce', async () => {
    const name = uid('leave');
    const c = client(APPS.hooked);
    await subscribed(c, name);
    await receiver.next('/all', 'channel_occupied', { channel: name });
    const left = Date.now();
    c.unsubscribe(name);
    const vacated = await receiver.next('/all', 'channel_vacated', { channel: name }, LATE_MS);
    assert.ok(vacated.at - left >= DEBOUNCE_MS - 100, `vacated after ${vacated.at - left} ms`);
    assert.equal(receiver.seen('/all', (e) => e.name === 'channel_vacated' && e.channel === name).length, 1);
  });

  test('a quick unsubscribe and resubscribe gives no vacated/occupied pair', async () => {
    const name = uid('blip');
    const c = client(APPS.hooked);
    await subscribed(c, name);
    await receiver.next('/all', 'channel_occupied', { channel: name });
    c.unsubscribe(name);
    await subscribed(c, name);
    // Then a real leave: its vacated comes after anything the blip would have produced.
    c.unsubscribe(name);
    await receiver.next('/all', 'channel_vacated', { channel: name }, LATE_MS);
    const seen = receiver.seen('/all', (e) => e.channel === name && e.name !== 'subscription_count');
    assert.deepEqual(seen.map((e) => e.name), ['channel_occupied', 'channel_vacated']);
  });

  test('presence: member_added, and member_removed after the debounce', async () => {
    const name = uid('presence-team');
    const userId = uid('member');
    const c = client(APPS.hooked, { presence: () => ({ user_id: userId, user_info: { n: 1 } }) });
    await subscribed(c, name);
    const added = await receiver.next('/all', 'member_added', { channel: name });
    assert.deepEqual(added.event, { name: 'member_added', channel: name, user_id: userId });
    assert.deepEqual(receiver.seen('/all', (e) => e.channel === name && e.name === 'subscription_count'), [],
      'presence channels have no subscription_count');
    c.unsubscribe(name);
    const removed = await receiver.next('/all', 'member_removed', { channel: name }, LATE_MS);
    assert.deepEqual(removed.event, { name: 'member_removed', channel: name, user_id: userId });
    await receiver.next('/all', 'channel_vacated', { channel: name }, LATE_MS);
  });

  test('client_event: data as the client sent it, socket_id, user_id on presence channels', async () => {
    const priv = uid('private-chat');
    const pres = uid('presence-chat');
    const userId = uid('talker');
    const c = client(APPS.hooked, { presence: () => ({ user_id: userId }) });
    const a = await subscribed(c, priv);
    const b = await subscribed(c, pres);
    a.trigger('client-typing', { who: 'ada', n: 1 });
    b.trigger('client-wave', 'hi');
    const e1 = await receiver.next('/all', 'client_event', { channel: priv });
    assert.deepEqual(e1.event, {
      name: 'client_event', channel: priv, event: 'client-typing', data: JSON.stringify({ who: 'ada', n: 1 }),
      socket_id: c.connection.socket_id,
    });
    const e2 = await receiver.next('/all', 'client_event', { channel: pres });
    assert.deepEqual(e2.event, {
      name: 'client_event', channel: pres, event: 'client-wave', data: '"hi"',
      socket_id: c.connection.socket_id, user_id: userId,
    });
  });

  test('cache_miss: a cache channel without an event', async () => {
    const name = uid('cache-scores');
    const c = client(APPS.hooked);
    await subscribed(c, name);
    const miss = await receiver.next('/all', 'cache_miss', { channel: name });
    assert.deepEqual(miss.event, { name: 'cache_miss', channel: name });
  });

  test('user_online and user_offline go only where listed', async () => {
    const id = uid('user');
    const sdk = rest(herald, APPS.hooked);
    const c = client(APPS.hooked, { pusher: { userAuthentication: sdkUserAuthentication(sdk, { id }) } });
    await connected(c);
    c.signin();
    const online = await receiver.next('/users', 'user_online', { user_id: id });
    assert.deepEqual(online.event, { name: 'user_online', user_id: id });
    c.disconnect();
    await receiver.next('/users', 'user_offline', { user_id: id }, LATE_MS);
    assert.deepEqual(receiver.seen('/all', (e) => e.user_id === id), [], 'not one of the seven Pusher types');
    assert.deepEqual(receiver.seen('/users', (e) => e.name !== 'user_online' && e.name !== 'user_offline'), []);
    assert.deepEqual(receiver.seen('/private', (e) => e.user_id === id), [], 'a channel filter stops user events');
  });

  test('filters: event types, channel name prefix and suffix, extra headers', async () => {
    const priv = uid('private-doc');
    const log = uid('private-audit') + '-log';
    const pub = uid('public') + '-log';
    const c = client(APPS.hooked);
    const a = await subscribed(c, priv);
    const l = await subscribed(c, log);
    await subscribed(c, pub);
    await receiver.next('/private', 'channel_occupied', { channel: priv });
    await receiver.next('/private', 'channel_occupied', { channel: log });
    a.trigger('client-x', {});
    l.trigger('client-y', {});
    await receiver.next('/log', 'client_event', { channel: log });
    c.unsubscribe(log);
    await receiver.next('/log', 'channel_vacated', { channel: log }, LATE_MS);
    // Everything /all saw by now includes the priv client event: the filters had their chance.
    await receiver.next('/all', 'client_event', { channel: priv });
    assert.deepEqual(receiver.seen('/private', (e) => e.name !== 'channel_occupied'), []);
    assert.deepEqual(receiver.seen('/private', (e) => e.channel === pub), []);
    assert.deepEqual(receiver.seen('/log', (e) => !e.channel.endsWith('-log')), []);
    assert.deepEqual(receiver.seen('/log', (e) => !['client_event', 'channel_vacated'].includes(e.name)), []);
    const logRequests = receiver.requests.all((r) => r.path === '/log');
    assert.ok(logRequests.every((r) => r.headers.authorization === 'Bearer hook-token'));
  });

  test('a request answered 500 is retried, with the same body, until it is taken', async () => {
    const name = uid('retried');
    receiver.plan('/flaky', [500, 503]);
    const c = client(APPS.flaky);
    await subscribed(c, name);
    const got = await receiver.next('/flaky', 'channel_occupied', { channel: name }, 10000);
    const tries = receiver.requests.all((r) => r.path === '/flaky');
    assert.deepEqual(tries.map((r) => r.status), [500, 503, 200]);
    assert.ok(tries.every((r) => r.rawBody === tries[0].rawBody), 'the same signed body each time');
    assert.deepEqual(got.event, { name: 'channel_occupied', channel: name });
    assert.ok(await metric(herald, 'herald_webhooks_failed_total', 'app="2003"') >= 2);
    assert.equal(await metric(herald, 'herald_webhooks_sent_total', 'app="2003"'), 1);
  });

  test('two apps never see each other\'s webhooks, each signed with its own secret', async () => {
    const mine = uid('private-iso');
    const theirs = uid('private-iso');
    const h = client(APPS.hooked);
    const o = client(APPS.other);
    const hc = await subscribed(h, mine);
    const oc = await subscribed(o, theirs);
    hc.trigger('client-a', { app: 'hooked' });
    oc.trigger('client-b', { app: 'other' });
    await receiver.next('/all', 'client_event', { channel: mine });
    await receiver.next('/other', 'client_event', { channel: theirs });
    assert.deepEqual(receiver.seen('/all', (e) => e.channel === theirs), []);
    assert.deepEqual(receiver.seen('/other', (e) => e.channel === mine), []);
    const otherRequests = receiver.requests.all((r) => r.path === '/other');
    assert.ok(otherRequests.length > 0);
    for (const r of otherRequests) {
      assert.equal(r.headers['x-pusher-key'], APPS.other.key);
      assert.equal(r.app, APPS.other.id);
      // Signed with the other app's secret, not the first app's.
      const forged = new PusherServer({ appId: APPS.other.id, key: APPS.other.key, secret: APPS.hooked.secret });
      assert.equal(forged.webhook({ headers: r.headers, rawBody: r.rawBody }).isValid(), false);
    }
    // An app without webhooks sends none.
    const s = client(APPS.silent);
    await subscribed(s, uid('quiet'));
    assert.deepEqual(receiver.requests.all((r) => r.headers['x-pusher-key'] === APPS.silent.key), []);
  });

  test('a dead endpoint under a flood: the queue stays bounded, drops are counted, herald answers', async () => {
    const name = uid('private-flood');
    const c = client(APPS.flooded);
    const ch = await subscribed(c, name);
    const total = QUEUE_BOUND + 3000;
    for (let i = 0; i < total; i += 1) ch.trigger('client-flood', { i });
    const dropped = await until(
      () => metric(herald, 'herald_webhooks_dropped_total', 'app="2004",reason="queue_full"'),
      (v) => v >= total - QUEUE_BOUND - 1000,
      'dropped events of the dead endpoint',
    );
    assert.ok(dropped <= total - QUEUE_BOUND + 1000, `dropped ${dropped}`);
    const depth = await metric(herald, 'herald_webhook_queue_depth', 'app="2004"');
    assert.ok(depth <= QUEUE_BOUND && depth >= QUEUE_BOUND - 1000, `queue depth ${depth}`);
    assert.ok(await metric(herald, 'herald_webhooks_failed_total', 'app="2004"') >= 1);
    // herald still serves: a publish reaches a subscriber, and other apps' webhooks still go.
    const listener = client(APPS.other);
    const pub = uid('after-flood');
    const lc = await subscribed(listener, pub);
    const got = once(lc, 'ping');
    await rest(herald, APPS.other).trigger(pub, 'ping', { ok: true });
    assert.deepEqual(await got, { ok: true });
    await receiver.next('/other', 'channel_occupied', { channel: pub });
  });
});
