//! Client events (`client-*`) between pusher-js 8 clients: delivery, no echo, user_id on
//! presence, refusal when the app disables them, and the 10-per-second rate limit.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import {
  APPS, RawClient, closeCodesSeen, collect, connected, once, pusherClient, rest,
  sdkChannelAuthorization, startHerald, subscribed, uid,
} from './harness.mjs';

describe('client events', () => {
  let herald;
  const clients = [];

  async function client(app = APPS.main, user = { user_id: 'anon' }) {
    const c = pusherClient(herald, app, {
      channelAuthorization: sdkChannelAuthorization(rest(herald, app), () => user),
    });
    clients.push(c);
    return connected(c);
  }

  before(async () => {
    herald = await startHerald();
  });
  afterEach(() => herald?.assertAlive());
  after(async () => {
    clients.forEach((c) => c.disconnect());
    await herald?.stop();
  });

  test('private channel: a client event reaches the other subscriber', async () => {
    const name = uid('private-chat');
    const alice = await client();
    const bob = await client();
    const aliceChannel = await subscribed(alice, name);
    const bobChannel = await subscribed(bob, name);
    const got = once(bobChannel, 'client-typing');
    assert.equal(aliceChannel.trigger('client-typing', { who: 'alice' }), true);
    assert.deepEqual(await got, { who: 'alice' });
  });

  test('private channel: a client event is not echoed to its sender', async () => {
    const name = uid('private-echo');
    const alice = await client();
    const bob = await client();
    const aliceChannel = await subscribed(alice, name);
    const bobChannel = await subscribed(bob, name);
    const aliceSeen = collect(aliceChannel, 'client-ping');
    const bobGot = once(bobChannel, 'client-ping');
    aliceChannel.trigger('client-ping', 1);
    await bobGot;
    // Bob answers only after the fan-out of alice's event: had it been echoed, the echo
    // would reach alice before this reply.
    const reply = once(aliceChannel, 'client-pong');
    bobChannel.trigger('client-pong', 2);
    await reply;
    assert.equal(aliceSeen.all().length, 0, 'the sender received its own client event');
  });

  test('presence channel: a client event carries the sender user_id', async () => {
    const name = uid('presence-chat');
    const alice = await client(APPS.main, { user_id: 'alice' });
    const bob = await client(APPS.main, { user_id: 'bob' });
    const aliceChannel = await subscribed(alice, name);
    const bobChannel = await subscribed(bob, name);
    const events = collect(bobChannel, 'client-wave');
    aliceChannel.trigger('client-wave', { hi: true });
    const { data, meta } = await events.next(() => true, { what: 'client-wave' });
    assert.deepEqual(data, { hi: true });
    assert.equal(meta.user_id, 'alice');
  });

  test('app with client events disabled: pusher:error and nothing delivered', async () => {
    const name = uid('private-quiet');
    const alice = await client(APPS.quiet);
    const bob = await client(APPS.quiet);
    const aliceChannel = await subscribed(alice, name);
    const bobChannel = await subscribed(bob, name);
    const bobSeen = collect(bobChannel, 'client-nope');
    aliceChannel.trigger('client-nope', {});
    const err = await alice.errors.next(() => true, { what: 'pusher:error for a disabled client event' });
    assert.ok(typeof err.message === 'string' && err.message.length > 0);
    const marker = once(bobChannel, 'marker');
    await rest(herald, APPS.quiet).trigger(name, 'marker', 1);
    await marker;
    assert.equal(bobSeen.all().length, 0);
    assert.equal(alice.connection.state, 'connected');
  });

  test('client event on a public channel is refused with pusher:error', async () => {
    const name = uid('public-noclient');
    const alice = await client();
    const bob = await client();
    const aliceChannel = await subscribed(alice, name);
    const bobChannel = await subscribed(bob, name);
    const bobSeen = collect(bobChannel, 'client-x');
    aliceChannel.trigger('client-x', {});
    await alice.errors.next(() => true, { what: 'pusher:error for a public-channel client event' });
    const marker = once(bobChannel, 'marker');
    await rest(herald, APPS.main).trigger(name, 'marker', 1);
    await marker;
    assert.equal(bobSeen.all().length, 0);
  });

  test('client event on a private-encrypted channel is refused with pusher:error', async () => {
    const raw = await RawClient.connect(herald.wsUrl(APPS.main.key));
    try {
      const name = uid('private-encrypted-noclient');
      const { auth } = rest(herald, APPS.main).authorizeChannel(raw.socketId, name);
      await raw.subscribe(name, { auth });
      raw.send({ event: 'client-leak', channel: name, data: { plain: 'text' } });
      await raw.next('pusher:error');
      await raw.ping();
    } finally {
      raw.terminate();
    }
  });

  test('client event on a channel the socket has not joined is refused', async () => {
    const raw = await RawClient.connect(herald.wsUrl(APPS.main.key));
    try {
      raw.send({ event: 'client-sneaky', channel: uid('private-notjoined'), data: {} });
      const err = await raw.next('pusher:error');
      assert.ok(err.decoded.message.length > 0);
      await raw.ping();
    } finally {
      raw.terminate();
    }
  });

  test('more than 10 client events per second: pusher:error 4301, the socket stays connected', async () => {
    const name = uid('private-flood');
    const alice = await client();
    const bob = await client();
    const aliceChannel = await subscribed(alice, name);
    const bobChannel = await subscribed(bob, name);
    const bobSeen = collect(bobChannel, 'client-spam');
    // 25 in one burst: even if the burst straddles a one-second window boundary, at most 20 pass.
    for (let i = 0; i < 25; i += 1) aliceChannel.trigger('client-spam', { i });
    const err = await alice.errors.next((e) => e.code === 4301, { what: 'pusher:error 4301' });
    assert.ok(err.message.length > 0);

    // Still connected and still served: a server event published now reaches alice.
    const alive = once(aliceChannel, 'still-there');
    await rest(herald, APPS.main).trigger(name, 'still-there', 1);
    await alive;
    assert.equal(alice.connection.state, 'connected');
    assert.ok(bobSeen.all().length < 25, `all ${bobSeen.all().length} flooded events were delivered`);
    assert.equal(alice.closes.all().length, 0, `alice was closed: ${JSON.stringify(alice.closes.all())}`);
  });

  test('no socket in this suite was ever closed with a 43xx code', () => {
    assert.deepEqual(closeCodesSeen.filter(({ code }) => code >= 4300 && code <= 4399), []);
  });
});
