//! WAMP on herald from Node: autobahn-js (WAMP v2, `wamp.2.json` and `wamp.2.msgpack`) unchanged,
//! a raw WAMP v1 client (`ws` with the `wamp` subprotocol), and the one-hub mapping between
//! Pusher and WAMP seen from pusher-js and the npm `pusher` SDK (docs/wamp.md).
//!
//! Absence of a message is proven by ordering: events of one topic reach a subscriber in
//! publication order, so a later event arriving first-and-only proves an earlier one never came.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import autobahn from 'autobahn';
import WebSocket from 'ws';

import {
  Inbox, collect, connected, eventInbox, once, pusherClient, rejectsWith, rest, startHerald, subscribed, uid,
  withTimeout,
} from './harness.mjs';
import { Aborted, closePeers, openSession } from '../support/wamp_session.mjs';

// autobahn-js 26 uses the global WebSocket (built into Node >= 22); on older Node, `ws` provides it.
globalThis.WebSocket ??= WebSocket;
// autobahn-js warns on every connection close; keep the test output readable unless debugging.
if (!process.env.AUTOBAHN_DEBUG) autobahn.log.warn = () => {};

/** The app every test here uses; its id is the WAMP v2 realm. */
// A WAMP v2 realm (`wamp = true`) whose sessions without credentials, and the WAMP v1 listener's,
// get the `trusted` role: they publish, register and call.
const APP = {
  id: '4001', key: 'wamp-js-key', secret: 'wamp-js-9b3d7f1a5e0c2486', wamp: true, wamp_anonymous_role: 'trusted',
};

/** Upper bound for a whole suite, on top of the per-wait timeouts. */
const SUITE_MS = 120000;

// --- herald with a WAMP v1 listener ---------------------------------------------------------

/** Starts herald with APP and one `protocol = "wamp1"` listener; resolves `{herald, v1Port}`. */
async function startWampHerald() {
  const listener = { host: '127.0.0.1', port: 0, protocol: 'wamp1', app: APP.id };
  const herald = await startHerald({ apps: [APP], listeners: [listener] });
  return { herald, v1Port: herald.listening[1].port };
}

// --- autobahn-js ----------------------------------------------------------------------------

const peers = new Set();

/**
 * Opens an autobahn-js connection and resolves `{connection, session, details, closes}` once
 * joined; rejects with Aborted when the router answers ABORT. Auto-reconnect is off.
 */
function join(herald, { realm = APP.id, serializer = 'json', path = '/ws' } = {}) {
  const closes = new Inbox(`autobahn-js ${serializer} closes`);
  const { peer, opened } = openSession({
    port: herald.port, realm, serializer, path, onclose: (reason, details) => closes.push({ reason, details }),
  });
  peer.closes = closes;
  peers.add(peer);
  return withTimeout(opened, `autobahn-js (${serializer}) to join realm ${realm}`);
}

const ACK = { acknowledge: true };

// --- raw WAMP v1 ----------------------------------------------------------------------------

class V1Client {
  constructor(port) {
    this.port = port;
    this.ws = new WebSocket(`ws://127.0.0.1:${port}/`, ['wamp']);
    this.messages = new Inbox(`v1 on ${port}`);
    this.calls = 0;
    this.ws.on('message', (data) => this.messages.push(JSON.parse(data.toString('utf8'))));
    this.ws.on('error', () => {});
  }

  static async connect(port) {
    const client = new V1Client(port);
    const welcome = await client.messages.next((m) => m[0] === 0, { what: 'WELCOME' });
    client.sessionId = welcome[1];
    assert.equal(client.ws.protocol, 'wamp');
    return client;
  }

  send(msg) {
    this.ws.send(JSON.stringify(msg));
  }

  /** Barrier: a CALL nobody provides; its CALLERROR proves earlier messages were processed. */
  async sync() {
    this.calls += 1;
    const id = `sync-${this.calls}`;
    this.send([2, id, 'http://herald.test/barrier#sync']);
    const answer = await this.messages.next((m) => (m[0] === 3 || m[0] === 4) && m[1] === id, { what: `CALLERROR ${id}` });
    assert.equal(answer[0], 4);
  }

  async subscribe(topic) {
    this.send([5, topic]);
    await this.sync();
  }

  publish(topic, event, ...rest) {
    this.send([7, topic, event, ...rest]);
  }

  async event(topic) {
    const msg = await this.messages.next((m) => m[0] === 8 && m[1] === topic, { what: `EVENT on ${topic}` });
    assert.equal(msg.length, 3);
    return msg[2];
  }

  close() {
    this.ws.terminate();
  }
}

// --- the suites -----------------------------------------------------------------------------

let herald;
let v1Port;
const v1Clients = [];
const pusherClients = [];

async function v1() {
  const client = await V1Client.connect(v1Port);
  v1Clients.push(client);
  return client;
}

function uri(name) {
  return `com.herald.${uid(name)}`;
}

before(async () => {
  ({ herald, v1Port } = await startWampHerald());
});
afterEach(() => {
  closePeers(peers);
  v1Clients.splice(0).forEach((c) => c.close());
  pusherClients.splice(0).forEach((c) => c.disconnect());
  herald?.assertAlive();
});
after(async () => {
  await herald?.stop();
});

for (const serializer of ['json', 'msgpack']) {
  describe(`WAMP v2 with autobahn-js (wamp.2.${serializer})`, { timeout: SUITE_MS }, () => {
    const open = (opts = {}) => join(herald, { serializer, ...opts });

    test('joins the realm named by the app id with the chosen serializer', async () => {
      const { session, details, connection } = await open();
      assert.equal(typeof session.id, 'number');
      assert.ok(session.id >= 1 && session.id <= 2 ** 53);
      assert.equal(session.realm, APP.id);
      assert.equal(details.transport.protocol, `wamp.2.${serializer}`);
      assert.equal(details.roles.broker.features.pattern_based_subscription, true);
      assert.equal(details.roles.broker.features.publisher_exclusion, true);
      assert.equal(details.roles.broker.features.subscriber_blackwhite_listing, true);
      assert.equal(details.roles.dealer.features.call_timeout, true);
      assert.ok(connection.isOpen);
    });

    test('unknown realm is aborted with wamp.error.no_such_realm', async () => {
      await assert.rejects(open({ realm: 'no-such-app' }), (err) => {
        assert.ok(err instanceof Aborted, String(err));
        assert.equal(err.reason, 'wamp.error.no_such_realm');
        return true;
      });
      await assert.rejects(open({ realm: APP.key }), (err) => err.reason === 'wamp.error.no_such_realm');
    });

    test('publish with acknowledge; exclude_me defaults to true', async () => {
      const pub = await open();
      const sub = await open();
      const topic = uri('ack');
      const mine = eventInbox('publisher');
      const theirs = eventInbox('subscriber');
      await withTimeout(pub.session.subscribe(topic, mine.handler), 'SUBSCRIBED');
      await withTimeout(sub.session.subscribe(topic, theirs.handler), 'SUBSCRIBED');
      const publication = await withTimeout(pub.session.publish(topic, ['one', { n: 1 }], { k: 'v' }, ACK), 'PUBLISHED');
      assert.equal(typeof publication.id, 'number');
      const got = await theirs.next();
      assert.deepEqual(got.args, ['one', { n: 1 }]);
      assert.deepEqual(got.kwargs, { k: 'v' });
      await withTimeout(pub.session.publish(topic, ['two'], {}, { ...ACK, exclude_me: false }), 'PUBLISHED');
      assert.deepEqual((await mine.next()).args, ['two']);
      assert.deepEqual(mine.all().map((e) => e.args), [['two']], 'publisher got its own event with exclude_me defaulted');
      assert.deepEqual((await theirs.next()).args, ['two']);
    });

    test('exclude and eligible by session id', async () => {
      const pub = await open();
      const subs = [await open(), await open(), await open()];
      const topic = uri('lists');
      const inboxes = subs.map((_, i) => eventInbox(`sub ${i}`));
      for (const [i, s] of subs.entries()) await withTimeout(s.session.subscribe(topic, inboxes[i].handler), 'SUBSCRIBED');
      const [a, b, c] = subs.map((s) => s.session.id);
      await withTimeout(pub.session.publish(topic, ['exclude a'], {}, { ...ACK, exclude: [a] }), 'PUBLISHED');
      await withTimeout(pub.session.publish(topic, ['eligible b'], {}, { ...ACK, eligible: [b] }), 'PUBLISHED');
      await withTimeout(pub.session.publish(topic, ['eligible b c, exclude b'], {}, { ...ACK, eligible: [b, c], exclude: [b] }), 'PUBLISHED');
      await withTimeout(pub.session.publish(topic, ['end'], {}, ACK), 'PUBLISHED');
      for (const inbox of inboxes) await inbox.next((e) => e.args[0] === 'end');
      const seen = inboxes.map((inbox) => inbox.all().map((e) => e.args[0]));
      assert.deepEqual(seen[0], ['end']);
      assert.deepEqual(seen[1], ['exclude a', 'eligible b', 'end']);
      assert.deepEqual(seen[2], ['exclude a', 'eligible b c, exclude b', 'end']);
    });

    test('prefix and wildcard subscriptions; EVENT details carry the topic', async () => {
      const pub = await open();
      const sub = await open();
      const base = uri('pattern');
      const prefix = eventInbox('prefix');
      const wildcard = eventInbox('wildcard');
      await withTimeout(sub.session.subscribe(`${base}.`, prefix.handler, { match: 'prefix' }), 'SUBSCRIBED prefix');
      await withTimeout(sub.session.subscribe(`${base}..created`, wildcard.handler, { match: 'wildcard' }), 'SUBSCRIBED wildcard');
      await withTimeout(pub.session.publish(`${base}.user.created`, [1], {}, ACK), 'PUBLISHED');
      await withTimeout(pub.session.publish(`${base}.user.deleted`, [2], {}, ACK), 'PUBLISHED');
      await withTimeout(pub.session.publish(`${base}x.user.created`, [3], {}, ACK), 'PUBLISHED');
      await withTimeout(pub.session.publish(`${base}.order.created`, [4], {}, ACK), 'PUBLISHED');
      const p = [await prefix.next(), await prefix.next(), await prefix.next()];
      assert.deepEqual(p.map((e) => [e.args[0], e.details.topic]), [
        [1, `${base}.user.created`], [2, `${base}.user.deleted`], [4, `${base}.order.created`],
      ]);
      const w = [await wildcard.next(), await wildcard.next()];
      assert.deepEqual(w.map((e) => [e.args[0], e.details.topic]), [
        [1, `${base}.user.created`], [4, `${base}.order.created`],
      ]);
    });

    test('unsubscribe stops delivery', async () => {
      const pub = await open();
      const sub = await open();
      const topic = uri('unsub');
      const inbox = eventInbox('sub');
      const subscription = await withTimeout(sub.session.subscribe(topic, inbox.handler), 'SUBSCRIBED');
      await withTimeout(pub.session.publish(topic, [1], {}, ACK), 'PUBLISHED');
      assert.deepEqual((await inbox.next()).args, [1]);
      await withTimeout(sub.session.unsubscribe(subscription), 'UNSUBSCRIBED');
      await withTimeout(pub.session.publish(topic, [2], {}, ACK), 'PUBLISHED');
      const again = eventInbox('resubscribed');
      await withTimeout(sub.session.subscribe(topic, again.handler), 'SUBSCRIBED again');
      await withTimeout(pub.session.publish(topic, [3], {}, ACK), 'PUBLISHED');
      assert.deepEqual((await again.next()).args, [3]);
      assert.deepEqual(inbox.all().map((e) => e.args), [[1]]);
      assert.deepEqual(again.all().map((e) => e.args), [[3]]);
    });

    test('register and call with args and kwargs', async () => {
      const callee = await open();
      const caller = await open();
      const proc = uri('proc.add');
      const registration = await withTimeout(callee.session.register(proc, (args, kwargs) => {
        const sum = args[0] + args[1];
        return new autobahn.Result([sum, sum * (kwargs.scale ?? 1)], { note: `scaled by ${kwargs.scale}` });
      }), 'REGISTERED');
      assert.equal(typeof registration.id, 'number');
      const result = await withTimeout(caller.session.call(proc, [2, 3], { scale: 10 }), 'RESULT');
      assert.deepEqual(result.args, [5, 50]);
      assert.deepEqual(result.kwargs, { note: 'scaled by 10' });
      const echo = uri('proc.echo');
      await withTimeout(callee.session.register(echo, async (args) => args[0]), 'REGISTERED');
      assert.deepEqual(await withTimeout(caller.session.call(echo, [{ nested: [1, 'two', null] }]), 'RESULT'), { nested: [1, 'two', null] });
    });

    test('second register of a procedure is wamp.error.procedure_already_exists', async () => {
      const first = await open();
      const second = await open();
      const proc = uri('proc.once');
      await withTimeout(first.session.register(proc, () => 'first'), 'REGISTERED');
      const err = await rejectsWith(second.session.register(proc, () => 'second'), 'second REGISTER');
      assert.equal(err.error, 'wamp.error.procedure_already_exists');
      assert.equal(await withTimeout(second.session.call(proc), 'RESULT'), 'first');
    });

    test('call with nothing registered is wamp.error.no_such_procedure', async () => {
      const caller = await open();
      const err = await rejectsWith(caller.session.call(uri('proc.missing'), [1], { x: 2 }), 'CALL');
      assert.equal(err.error, 'wamp.error.no_such_procedure');
      const later = uri('proc.later');
      await withTimeout(caller.session.register(later, () => 'ok'), 'REGISTERED');
      assert.equal(await withTimeout(caller.session.call(later), 'RESULT'), 'ok');
    });

    test('callee error reaches the caller with its URI, args and kwargs', async () => {
      const callee = await open();
      const caller = await open();
      const proc = uri('proc.fail');
      await withTimeout(callee.session.register(proc, (args) => {
        throw new autobahn.Error('com.example.error.insufficient_funds', ['balance too low', args[0]], { needed: args[0] + 5 });
      }), 'REGISTERED');
      const err = await rejectsWith(caller.session.call(proc, [10]), 'CALL');
      assert.equal(err.error, 'com.example.error.insufficient_funds');
      assert.deepEqual(err.args, ['balance too low', 10]);
      assert.deepEqual(err.kwargs, { needed: 15 });
    });

    test('callee disconnecting fails the pending call with wamp.error.canceled', async () => {
      const callee = await open();
      const caller = await open();
      const proc = uri('proc.vanish');
      let invoked;
      const wasInvoked = new Promise((resolve) => { invoked = resolve; });
      await withTimeout(callee.session.register(proc, () => {
        invoked();
        return new Promise(() => {}); // never answers
      }), 'REGISTERED');
      const call = caller.session.call(proc);
      call.catch(() => {});
      await withTimeout(wasInvoked, 'INVOCATION at the callee');
      callee.connection.close();
      const err = await rejectsWith(call, 'CALL pending while the callee left');
      assert.equal(err.error, 'wamp.error.canceled');
      const again = await rejectsWith(caller.session.call(proc), 'CALL after the callee left');
      assert.equal(again.error, 'wamp.error.no_such_procedure');
    });

    test('CALL.Options.timeout fails the call with wamp.error.timeout', async () => {
      const callee = await open();
      const caller = await open();
      const proc = uri('proc.slow');
      let release;
      await withTimeout(callee.session.register(proc, () => new Promise((resolve) => { release = resolve; })), 'REGISTERED');
      const started = Date.now();
      const err = await rejectsWith(caller.session.call(proc, [], {}, { timeout: 300 }), 'CALL with timeout 300 ms');
      const elapsed = Date.now() - started;
      assert.equal(err.error, 'wamp.error.timeout');
      assert.ok(elapsed >= 200 && elapsed < 4000, `timeout after ${elapsed} ms`);
      release?.('too late'); // the late YIELD is dropped by herald
      const fast = uri('proc.fast');
      await withTimeout(callee.session.register(fast, () => 'fine'), 'REGISTERED');
      assert.equal(await withTimeout(caller.session.call(fast), 'RESULT'), 'fine');
    });

    test('GOODBYE is answered and the connection closes cleanly', async () => {
      const peer = await open();
      let left;
      const leaving = new Promise((resolve) => { left = resolve; });
      const onleave = peer.session.onleave;
      peer.session.onleave = (reason, details) => {
        left({ reason, details });
        onleave(reason, details);
      };
      peer.session.leave('wamp.close.close_realm', 'bye');
      const { reason } = await withTimeout(leaving, 'GOODBYE from the router');
      assert.equal(reason, 'wamp.close.goodbye_and_out');
      const closed = await peer.closes.next();
      assert.equal(closed.reason, 'closed');
    });
  });
}

describe('one hub: Pusher and WAMP', { timeout: SUITE_MS }, () => {
  test('Pusher HTTP API event reaches WAMP v2 (both serializers) and WAMP v1 subscribers', async () => {
    const name = `xp.${uid('to-wamp')}`;
    const jsonPeer = await join(herald, { serializer: 'json' });
    const msgpackPeer = await join(herald, { serializer: 'msgpack' });
    const inboxes = [eventInbox('json'), eventInbox('msgpack')];
    await withTimeout(jsonPeer.session.subscribe(name, inboxes[0].handler), 'SUBSCRIBED');
    await withTimeout(msgpackPeer.session.subscribe(name, inboxes[1].handler), 'SUBSCRIBED');
    const old = await v1();
    await old.subscribe(name);
    const sdk = rest(herald, APP);
    await withTimeout(sdk.trigger(name, 'order-placed', { order: 7 }), 'HTTP API trigger');
    await withTimeout(sdk.trigger(name, 'note', 'plain text, not JSON'), 'HTTP API trigger');
    for (const inbox of inboxes) {
      const first = await inbox.next();
      assert.deepEqual(first.args, [{ order: 7 }]);
      assert.deepEqual(first.kwargs, { event: 'order-placed' });
      const second = await inbox.next();
      assert.deepEqual(second.args, ['plain text, not JSON']);
      assert.deepEqual(second.kwargs, { event: 'note' });
    }
    assert.deepEqual(await old.event(name), { order: 7 });
    assert.equal(await old.event(name), 'plain text, not JSON');
  });

  test('WAMP v2 publish reaches pusher-js with the mapped event name and data', async () => {
    const name = `xp.${uid('from-v2')}`;
    const client = pusherClient(herald, APP);
    pusherClients.push(client);
    await connected(client);
    const channel = await subscribed(client, name);
    const byTopic = collect(channel, name);
    const custom = collect(channel, 'custom-event');
    const multi = collect(channel, 'multi');
    for (const serializer of ['json', 'msgpack']) {
      const { session } = await join(herald, { serializer });
      // One argument, no kwargs: event name = topic, data = that argument.
      await withTimeout(session.publish(name, [{ x: 1, serializer }], {}, ACK), 'PUBLISHED');
      assert.deepEqual((await byTopic.next()).data, { x: 1, serializer });
      // kwargs.event names the event.
      await withTimeout(session.publish(name, [{ y: 2 }], { event: 'custom-event' }, ACK), 'PUBLISHED');
      assert.deepEqual((await custom.next()).data, { y: 2 });
      // A string argument is the data string itself.
      await withTimeout(session.publish(name, ['just text'], {}, ACK), 'PUBLISHED');
      assert.equal((await byTopic.next()).data, 'just text');
      // Several arguments or other kwargs: {"args": [...], "kwargs": {...}}.
      await withTimeout(session.publish(name, [1, 2], { event: 'multi', extra: 'v' }, ACK), 'PUBLISHED');
      const m = (await multi.next()).data;
      assert.deepEqual(m.args, [1, 2]);
      assert.equal(m.kwargs.extra, 'v');
    }
  });

  test('WAMP v1 publish reaches pusher-js and WAMP v2 subscribers', async () => {
    const name = `xp.${uid('from-v1')}`;
    const client = pusherClient(herald, APP);
    pusherClients.push(client);
    await connected(client);
    const channel = await subscribed(client, name);
    const events = collect(channel, name);
    const peer = await join(herald, { serializer: 'msgpack' });
    const inbox = eventInbox('v2');
    await withTimeout(peer.session.subscribe(name, inbox.handler), 'SUBSCRIBED');
    const publisher = await v1();
    publisher.publish(name, { from: 'v1', n: [1, 2] });
    publisher.publish(name, 'v1 text');
    assert.deepEqual((await events.next()).data, { from: 'v1', n: [1, 2] });
    assert.equal((await events.next()).data, 'v1 text');
    const first = await inbox.next();
    assert.deepEqual(first.args, [{ from: 'v1', n: [1, 2] }]);
    assert.deepEqual((await inbox.next()).args, ['v1 text']);
  });

  test('pusher-js and WAMP subscribers of one channel see one publication each', async () => {
    const name = `xp.${uid('fanout')}`;
    const client = pusherClient(herald, APP);
    pusherClients.push(client);
    await connected(client);
    const channel = await subscribed(client, name);
    const got = once(channel, 'tick');
    const peer = await join(herald);
    const inbox = eventInbox('v2');
    await withTimeout(peer.session.subscribe(name, inbox.handler), 'SUBSCRIBED');
    const old = await v1();
    await old.subscribe(name);
    await withTimeout(rest(herald, APP).trigger(name, 'tick', { n: 1 }), 'HTTP API trigger');
    assert.deepEqual(await got, { n: 1 });
    assert.deepEqual((await inbox.next()).args, [{ n: 1 }]);
    assert.deepEqual(await old.event(name), { n: 1 });
    await withTimeout(rest(herald, APP).trigger(name, 'tock', { n: 2 }), 'HTTP API trigger');
    assert.deepEqual((await inbox.next()).kwargs, { event: 'tock' });
    assert.deepEqual(await old.event(name), { n: 2 });
    assert.equal(inbox.all().length, 2, 'duplicate delivery to the WAMP v2 subscriber');
  });
});
