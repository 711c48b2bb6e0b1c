//! Channel types seen from pusher-js 8, with events published by the npm `pusher` SDK:
//! public, private, presence, private-encrypted, cache, and subscription_count.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import {
  APPS, RawClient, closeCodesSeen, collect, connected, once, pusherClient, rest,
  sdkChannelAuthorization, startHerald, subscribed, uid,
} from './harness.mjs';

describe('channels', () => {
  let herald;
  let sdk;
  const clients = [];

  /** A connected pusher-js client on the main app whose presence identity is `user`. */
  async function client(user = { user_id: 'anon' }, app = APPS.main) {
    const c = pusherClient(herald, app, {
      channelAuthorization: sdkChannelAuthorization(rest(herald, app), () => user),
    });
    clients.push(c);
    return connected(c);
  }

  before(async () => {
    herald = await startHerald();
    sdk = rest(herald, APPS.main);
  });
  afterEach(() => herald?.assertAlive());
  after(async () => {
    clients.forEach((c) => c.disconnect());
    await herald?.stop();
  });

  test('public channel: event triggered by the npm SDK arrives in pusher-js', async () => {
    const c = await client();
    const name = uid('public');
    const channel = await subscribed(c, name);
    const got = once(channel, 'greeting');
    await sdk.trigger(name, 'greeting', { hello: 'world' });
    assert.deepEqual(await got, { hello: 'world' });
  });

  test('public channel: string data arrives unchanged', async () => {
    const c = await client();
    const name = uid('public-str');
    const channel = await subscribed(c, name);
    const got = once(channel, 'text');
    await sdk.trigger(name, 'text', 'just a string');
    assert.equal(await got, 'just a string');
  });

  test('unsubscribe stops delivery on that channel', async () => {
    const c = await client();
    const gone = uid('public-gone');
    const kept = uid('public-kept');
    const goneChannel = await subscribed(c, gone);
    const goneEvents = collect(goneChannel, 'tick');
    c.unsubscribe(gone);
    // Frames of one socket are handled in order: once this later subscription succeeds, the
    // unsubscribe has been applied.
    const keptChannel = await subscribed(c, kept);
    await sdk.trigger(gone, 'tick', 1);
    const arrived = once(keptChannel, 'tick');
    await sdk.trigger(kept, 'tick', 2);
    assert.equal(await arrived, 2);
    assert.equal(goneEvents.all().length, 0);
    const info = await (await sdk.get({ path: `/channels/${gone}` })).json();
    assert.equal(info.occupied, false);
  });

  test('private channel: authorized with the SDK signature, receives events', async () => {
    const c = await client();
    const name = uid('private-orders');
    const channel = await subscribed(c, name);
    const got = once(channel, 'shipped');
    await sdk.trigger(name, 'shipped', { id: 7 });
    assert.deepEqual(await got, { id: 7 });
  });

  test('private channel: subscription_succeeded data is exactly "{}"', async () => {
    const raw = await RawClient.connect(herald.wsUrl(APPS.main.key));
    try {
      const name = uid('private-raw');
      const { auth } = sdk.authorizeChannel(raw.socketId, name);
      const ok = await raw.subscribe(name, { auth });
      assert.equal(ok.data, '{}');
    } finally {
      raw.terminate();
    }
  });

  test('private channel: auth signed for another socket is refused', async () => {
    const raw = await RawClient.connect(herald.wsUrl(APPS.main.key));
    try {
      const name = uid('private-stolen');
      const { auth } = sdk.authorizeChannel('123.456', name);
      raw.send({ event: 'pusher:subscribe', data: { channel: name, auth } });
      await raw.next('pusher:error');
      assert.equal(raw.messages.all((m) => m.event === 'pusher_internal:subscription_succeeded').length, 0);
    } finally {
      raw.terminate();
    }
  });

  test('presence channel: members, me and count after subscription', async () => {
    const name = uid('presence-room');
    const alice = await client({ user_id: 'alice', user_info: { name: 'Alice' } });
    await subscribed(alice, name);
    const bob = await client({ user_id: 'bob', user_info: { name: 'Bob' } });
    const channel = await subscribed(bob, name);
    assert.equal(channel.members.count, 2);
    assert.equal(channel.members.me.id, 'bob');
    assert.deepEqual(channel.members.me.info, { name: 'Bob' });
    assert.deepEqual(channel.members.get('alice').info, { name: 'Alice' });
  });

  test('presence channel: member_added and member_removed reach the other members', async () => {
    const name = uid('presence-lobby');
    const alice = await client({ user_id: 'alice', user_info: { name: 'Alice' } });
    const aliceChannel = await subscribed(alice, name);
    const added = once(aliceChannel, 'pusher:member_added');
    const carol = await client({ user_id: 'carol', user_info: { name: 'Carol' } });
    const carolChannel = carol.subscribe(name);
    const carolAdded = collect(carolChannel, 'pusher:member_added');
    await subscribed(carol, name);
    const member = await added;
    assert.equal(member.id, 'carol');
    assert.deepEqual(member.info, { name: 'Carol' });
    // The joining socket learns the members from subscription_succeeded, not from a
    // member_added about itself (which would arrive before this marker).
    const marker = once(carolChannel, 'marker');
    await sdk.trigger(name, 'marker', 1);
    await marker;
    assert.deepEqual(carolAdded.all(), [], 'the joining socket got member_added about itself');
    const removed = once(aliceChannel, 'pusher:member_removed');
    carol.disconnect();
    assert.equal((await removed).id, 'carol');
    assert.equal(aliceChannel.members.count, 1);
  });

  test('presence channel: a numeric user_id is accepted and keyed by its string form', async () => {
    const name = uid('presence-numeric');
    const raw = await RawClient.connect(herald.wsUrl(APPS.main.key));
    try {
      const data = { user_id: 10, user_info: { name: 'Mr. Channels' } };
      const { auth, channel_data: channelData } = sdk.authorizeChannel(raw.socketId, name, data);
      const ok = await raw.subscribe(name, { auth, channel_data: channelData });
      assert.deepEqual(ok.decoded.presence.ids, ['10']);
      assert.equal(ok.decoded.presence.count, 1);
      assert.deepEqual(ok.decoded.presence.hash['10'], { name: 'Mr. Channels' });
    } finally {
      raw.terminate();
    }
  });

  test('presence channel: one member per user_id however many sockets', async () => {
    const name = uid('presence-multi');
    const dave1 = await client({ user_id: 'dave', user_info: { n: 1 } });
    await subscribed(dave1, name);
    const eve = await client({ user_id: 'eve' });
    const eveChannel = await subscribed(eve, name);
    const eveAdded = collect(eveChannel, 'pusher:member_added');
    const eveRemoved = collect(eveChannel, 'pusher:member_removed');

    const dave2 = await client({ user_id: 'dave', user_info: { n: 2 } });
    const dave2Channel = await subscribed(dave2, name);
    assert.equal(dave2Channel.members.count, 2, 'a second socket of dave must not count twice');

    const users = await (await sdk.get({ path: `/channels/${name}/users` })).json();
    assert.deepEqual(users.users.map((u) => u.id).sort(), ['dave', 'eve']);
    const info = await (await sdk.get({ path: `/channels/${name}`, params: { info: 'user_count' } })).json();
    assert.equal(info.user_count, 2);

    // Events reach eve in order: once this marker arrives, a member_added for dave's second
    // socket would already have arrived.
    const marker = once(eveChannel, 'marker');
    await sdk.trigger(name, 'marker', 1);
    await marker;
    assert.equal(eveAdded.all().length, 0, 'member_added sent for an already-present user');

    // dave's second socket leaves (unsubscribe, then a later subscription proves it was
    // applied): dave still has a socket, so no member_removed and dave is still listed.
    dave2.unsubscribe(name);
    await subscribed(dave2, uid('public-elsewhere'));
    const list = await (await sdk.get({ path: `/channels/${name}/users` })).json();
    assert.deepEqual(list.users.map((u) => u.id).sort(), ['dave', 'eve']);
    const marker2 = once(eveChannel, 'marker');
    await sdk.trigger(name, 'marker', 2);
    await marker2;
    assert.equal(eveRemoved.all().length, 0, 'member_removed sent while dave still has a socket');

    const removed = eveRemoved.next(() => true, { what: 'member_removed for dave' });
    dave1.disconnect();
    assert.equal((await removed).data.id, 'dave');
  });

  test('presence channel: subscription without channel_data is refused', async () => {
    const raw = await RawClient.connect(herald.wsUrl(APPS.main.key));
    try {
      const name = uid('presence-nodata');
      const { auth } = sdk.authorizeChannel(raw.socketId, name);
      raw.send({ event: 'pusher:subscribe', data: { channel: name, auth } });
      await raw.next('pusher:error');
    } finally {
      raw.terminate();
    }
  });

  test('private-encrypted channel: SDK-encrypted event arrives decrypted in pusher-js', async () => {
    const c = await client();
    const name = uid('private-encrypted-vault');
    const channel = await subscribed(c, name);
    const got = once(channel, 'secret');
    await sdk.trigger(name, 'secret', { code: 'swordfish' });
    assert.deepEqual(await got, { code: 'swordfish' });
  });

  test('private-encrypted channel: herald passes the ciphertext through untouched', async () => {
    const raw = await RawClient.connect(herald.wsUrl(APPS.main.key));
    try {
      const name = uid('private-encrypted-raw');
      const { auth } = sdk.authorizeChannel(raw.socketId, name);
      await raw.subscribe(name, { auth });
      await sdk.trigger(name, 'secret', { code: 'swordfish' });
      const msg = await raw.next('secret');
      assert.equal(typeof msg.decoded.nonce, 'string');
      assert.equal(typeof msg.decoded.ciphertext, 'string');
      assert.ok(!msg.data.includes('swordfish'));
    } finally {
      raw.terminate();
    }
  });

  test('cache channel: the last event is replayed to a late subscriber', async () => {
    const name = uid('cache-scores');
    await sdk.trigger(name, 'score', { home: 1 });
    await sdk.trigger(name, 'score', { home: 2 });
    const c = await client();
    const channel = c.subscribe(name);
    const replay = once(channel, 'score');
    assert.deepEqual(await replay, { home: 2 });
  });

  test('cache channel: the replay comes right after subscription_succeeded', async () => {
    const name = uid('cache-order');
    await sdk.trigger(name, 'state', 'cached');
    const raw = await RawClient.connect(herald.wsUrl(APPS.main.key));
    try {
      raw.send({ event: 'pusher:subscribe', data: { channel: name } });
      await raw.next('state');
      const relevant = raw.messages.all((m) => m.channel === name).map((m) => m.event);
      assert.deepEqual(relevant, ['pusher_internal:subscription_succeeded', 'state']);
    } finally {
      raw.terminate();
    }
  });

  test('cache channel: pusher:cache_miss on an empty cache', async () => {
    const c = await client();
    const name = uid('cache-empty');
    const channel = c.subscribe(name);
    const miss = collect(channel, 'pusher:cache_miss');
    await once(channel, 'pusher:subscription_succeeded');
    await miss.next(() => true, { what: 'pusher:cache_miss' });
  });

  test('private-cache channel: replay after authorization', async () => {
    const name = uid('private-cache-doc');
    await sdk.trigger(name, 'rev', { n: 3 });
    const c = await client();
    const channel = c.subscribe(name);
    assert.deepEqual(await once(channel, 'rev'), { n: 3 });
  });

  test('presence-cache channel: replay to a member', async () => {
    const name = uid('presence-cache-board');
    await sdk.trigger(name, 'pin', { at: 'x' });
    const c = await client({ user_id: 'zoe' });
    const channel = c.subscribe(name);
    assert.deepEqual(await once(channel, 'pin'), { at: 'x' });
  });

  test('subscription_count: subscribers of an app with it enabled get the count', async () => {
    const name = uid('public-counted');
    const first = await client(undefined, APPS.counted);
    const firstChannel = first.subscribe(name);
    const counts = collect(firstChannel, 'pusher:subscription_count');
    const second = await client(undefined, APPS.counted);
    await subscribed(second, name);
    const seen = await counts.next((e) => e.data.subscription_count === 2, { what: 'subscription_count 2' });
    assert.equal(seen.data.subscription_count, 2);
    assert.equal(firstChannel.subscriptionCount, 2);
  });

  test('subscription_count: an app without it enabled sends none', async () => {
    const raw = await RawClient.connect(herald.wsUrl(APPS.main.key));
    const other = await RawClient.connect(herald.wsUrl(APPS.main.key));
    try {
      const name = uid('public-uncounted');
      await raw.subscribe(name);
      await other.subscribe(name);
      await sdk.trigger(name, 'marker', 1);
      await raw.next('marker');
      assert.equal(raw.messages.all((m) => m.event === 'pusher_internal:subscription_count').length, 0);
    } finally {
      raw.terminate();
      other.terminate();
    }
  });

  test('no socket in this suite was ever closed with a 43xx code', () => {
    assert.deepEqual(closeCodesSeen.filter(({ code }) => code >= 4300 && code <= 4399), []);
  });
});
