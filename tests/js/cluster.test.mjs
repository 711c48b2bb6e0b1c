//! Three herald nodes on one redis-server, seen from pusher-js and the npm SDK: presence
//! members, the HTTP API's channel and user answers, user termination and cached events are the
//! cluster's on every node, and a node killed with SIGKILL leaves its channels within 10 s.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import {
  APPS, Inbox, RawClient, collect, connected, once, pusherClient, rest, sdkChannelAuthorization,
  sdkUserAuthentication, signedFetch, startRedis, subscribed, uid, withTimeout,
} from './harness.mjs';
import { startHerald as launch } from '../support/herald_launcher.mjs';

/** The bound on a killed node's members leaving the other nodes. */
const REAP_MS = 10000;

const APP = { ...APPS.main, enable_subscription_count: true };

describe('cluster', () => {
  let redis;
  let nodes;
  const extra = [];
  const clients = [];

  const startNode = () => launch({ config: { apps: [APP], scale_out: { redis_url: redis.url, prefix: 'js' } } });

  /** A connected pusher-js client on `node` whose presence identity is `user`. */
  async function client(node, user = { user_id: 'anon' }) {
    const c = pusherClient(node, APP, {
      channelAuthorization: sdkChannelAuthorization(rest(node, APP), () => user),
    });
    clients.push(c);
    return connected(c);
  }

  /** GET on `node`'s HTTP API, signed; `{status, json}`. */
  const get = (node, reqPath, query = {}) => signedFetch(node, APP, { path: `/apps/${APP.id}${reqPath}`, query });

  /** Sorted ids of `GET /channels/{name}/users` on `node`. */
  async function userIds(node, name) {
    const res = await get(node, `/channels/${name}/users`);
    assert.equal(res.status, 200, res.text);
    return res.json.users.map((u) => u.id).sort();
  }

  /** Polls (bounded) until every node lists `want` as the channel's members. */
  async function awaitUsers(name, want, among = nodes) {
    const deadline = Date.now() + REAP_MS;
    for (const node of among) {
      for (;;) {
        const got = await userIds(node, name);
        if (JSON.stringify(got) === JSON.stringify(want)) break;
        assert.ok(Date.now() < deadline, `node ${node.port}: ${JSON.stringify(got)}, wanted ${JSON.stringify(want)}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    }
  }

  before(async () => {
    redis = await startRedis();
    nodes = [];
    for (let i = 0; i < 3; i += 1) nodes.push(await startNode());
  });
  afterEach(() => nodes.forEach((n) => n.assertAlive()));
  after(async () => {
    clients.forEach((c) => c.disconnect());
    for (const n of [...(nodes ?? []), ...extra]) await n.stop();
    await redis?.stop();
  });

  test('a member on node A is seen by a member on node C; every node answers the same', async () => {
    const [a, b, c] = nodes;
    const name = uid('presence-room');
    const alice = await client(a, { user_id: 'alice', user_info: { name: 'Alice' } });
    const aliceChannel = await subscribed(alice, name);
    await awaitUsers(name, ['alice']);
    const added = once(aliceChannel, 'pusher:member_added');
    const carol = await client(c, { user_id: 'carol', user_info: { name: 'Carol' } });
    const carolChannel = await subscribed(carol, name);
    assert.equal(carolChannel.members.count, 2);
    assert.ok(carolChannel.members.get('alice'), 'Carol sees Alice in the members list');
    assert.equal((await added).id, 'carol');
    assert.equal(aliceChannel.members.count, 2);

    await awaitUsers(name, ['alice', 'carol']);
    for (const node of nodes) {
      const info = await get(node, `/channels/${name}`, { info: 'user_count,subscription_count' });
      assert.equal(info.status, 200, info.text);
      assert.deepEqual(info.json, { occupied: true, user_count: 2, subscription_count: 2 });
    }

    // A channel occupied only on B is listed by A.
    const onlyB = uid('only-b');
    await subscribed(await client(b), onlyB);
    const deadline = Date.now() + REAP_MS;
    for (;;) {
      const list = await get(a, '/channels', { info: 'subscription_count' });
      assert.equal(list.status, 200, list.text);
      if (list.json.channels[onlyB]?.subscription_count === 1) break;
      assert.ok(Date.now() < deadline, JSON.stringify(list.json));
      await new Promise((r) => setTimeout(r, 25));
    }
  });

  test('the same user on two nodes is one member; leaving one node removes nobody', async () => {
    const [a, b, c] = nodes;
    const name = uid('presence-dup');
    const watcher = await client(c, { user_id: 'watcher' });
    const channel = await subscribed(watcher, name);
    const addedSeen = collect(channel, 'pusher:member_added');
    const removedSeen = collect(channel, 'pusher:member_removed');
    const annA = await client(a, { user_id: 'ann' });
    await subscribed(annA, name);
    const annB = await client(b, { user_id: 'ann' });
    await subscribed(annB, name);
    await awaitUsers(name, ['ann', 'watcher']);
    // Ann leaves B; then Bob joins on B. B's changes reach the cluster in order: once Bob is
    // announced, a removal of Ann would have come before him.
    annB.disconnect();
    const bobAdded = addedSeen.next((e) => e.data.id === 'bob', { what: 'member_added of bob' });
    const bob = await client(b, { user_id: 'bob' });
    await subscribed(bob, name);
    await bobAdded;
    assert.deepEqual(addedSeen.all().map((e) => e.data.id), ['ann', 'bob']);
    assert.deepEqual(removedSeen.all(), [], 'no member_removed while Ann is still on A');
    assert.equal(channel.members.count, 3);
  });

  test('kill -9 of a node: its members are removed everywhere, once each, within 10 s', async () => {
    const [a, , c] = nodes;
    const doomed = await startNode();
    extra.push(doomed);
    const name = uid('presence-kill');
    const watchers = [];
    for (const [node, id] of [[a, 'wa'], [c, 'wc']]) {
      const w = await client(node, { user_id: id });
      const channel = await subscribed(w, name);
      watchers.push({ channel, removed: collect(channel, 'pusher:member_removed') });
    }
    // Raw sockets on the doomed node: pusher-js would keep retrying it after the kill.
    for (const id of ['bea', 'bo']) {
      const raw = await RawClient.connect(`ws://127.0.0.1:${doomed.port}/app/${APP.key}?protocol=7&client=js&version=8.6.0`);
      const presence = { user_id: id };
      const { auth, channel_data: channelData } = rest(doomed, APP).authorizeChannel(raw.socketId, name, presence);
      await raw.subscribe(name, { auth, channel_data: channelData });
    }
    await awaitUsers(name, ['bea', 'bo', 'wa', 'wc'], [a, c]);
    for (const w of watchers) {
      const deadline = Date.now() + REAP_MS;
      while (w.channel.members.count < 4) {
        assert.ok(Date.now() < deadline, 'the watchers learn of bea and bo');
        await once(w.channel, 'pusher:member_added');
      }
    }

    doomed.child.kill('SIGKILL');
    const killedAt = Date.now();
    for (const w of watchers) {
      const left = () => Math.max(1, REAP_MS - (Date.now() - killedAt));
      await w.removed.next((e) => e.data.id === 'bea', { timeout: left(), what: 'member_removed of bea' });
      await w.removed.next((e) => e.data.id === 'bo', { timeout: left(), what: 'member_removed of bo' });
    }
    // A newcomer announced after the removals: nothing more came about bea and bo before it.
    const newcomerSeen = watchers.map((w) => once(w.channel, 'pusher:member_added'));
    await subscribed(await client(a, { user_id: 'cy' }), name);
    for (const seen of newcomerSeen) assert.equal((await seen).id, 'cy');
    for (const w of watchers) {
      assert.deepEqual(w.removed.all().map((e) => e.data.id).sort(), ['bea', 'bo']);
      assert.equal(w.channel.members.count, 3);
    }
    await awaitUsers(name, ['cy', 'wa', 'wc'], [a, c]);
  });

  test('terminate_connections on node A closes the user\'s socket on node C with 4009', async () => {
    const [a, , c] = nodes;
    const id = uid('user');
    const user = pusherClient(c, APP, { userAuthentication: sdkUserAuthentication(rest(c, APP), { id }) });
    clients.push(user);
    const messages = new Inbox(`messages of ${id}`);
    user.connection.bind('message', (m) => messages.push(m));
    await connected(user);
    user.signin();
    await messages.next((m) => m.event === 'pusher:signin_success', { what: 'pusher:signin_success' });
    await rest(a, APP).terminateUserConnections(id);
    assert.equal((await user.closes.next(() => true, { what: 'the close of the socket on C' })).code, 4009);
  });

  test('a node started after a cache-channel publication serves the event', async () => {
    const name = uid('cache-news');
    await rest(nodes[0], APP).trigger(name, 'headline', { text: 'kept' });
    // The event reaches Redis just after the publish is answered: a late node that missed it
    // (cache_miss) is replaced by another, within the bound.
    const deadline = Date.now() + REAP_MS;
    for (;;) {
      const late = await startNode();
      extra.push(late);
      const c = await client(late);
      const channel = c.subscribe(name);
      const replay = once(channel, 'headline');
      const miss = once(channel, 'pusher:cache_miss');
      const first = await Promise.race([replay.then((d) => ({ d })), miss.then(() => null)]);
      replay.catch(() => {});
      miss.catch(() => {});
      if (first) {
        assert.deepEqual(first.d, { text: 'kept' });
        return;
      }
      assert.ok(Date.now() < deadline, 'no late node served the cached event');
    }
  });
});
