//! Per-app limits and fan-out back-pressure seen from clients: presence member and user_info
//! limits, and a subscriber that stops reading while others keep receiving.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import { APPS, RawClient, closeCodesSeen, rest, startHerald, uid } from './harness.mjs';

describe('limits', () => {
  let herald;

  before(async () => {
    herald = await startHerald();
  });
  afterEach(() => herald?.assertAlive());
  after(async () => {
    await herald?.stop();
  });

  /** Resolves with the refusal (pusher:error or pusher:subscription_error) of a subscription. */
  function refusal(raw, channel) {
    return raw.messages.next(
      (m) => m.event === 'pusher:error' || (m.event === 'pusher:subscription_error' && m.channel === channel),
      { what: `refusal of ${channel}` },
    );
  }

  async function presenceSocket(app, channel, member) {
    const raw = await RawClient.connect(herald.wsUrl(app.key));
    const { auth, channel_data: channelData } = rest(herald, app).authorizeChannel(raw.socketId, channel, member);
    raw.send({ event: 'pusher:subscribe', data: { channel, auth, channel_data: channelData } });
    return raw;
  }

  test('presence channel over max_presence_members refuses the next user', async () => {
    const name = uid('presence-full');
    const a = await presenceSocket(APPS.small, name, { user_id: 'a' });
    const b = await presenceSocket(APPS.small, name, { user_id: 'b' });
    try {
      await a.next('pusher_internal:subscription_succeeded');
      await b.next('pusher_internal:subscription_succeeded');
      const c = await presenceSocket(APPS.small, name, { user_id: 'c' });
      try {
        await refusal(c, name);
        assert.equal(c.messages.all((m) => m.event === 'pusher_internal:subscription_succeeded').length, 0);
        assert.ok(c.isOpen, 'a refused subscription must not close the socket');
      } finally {
        c.terminate();
      }
    } finally {
      a.terminate();
      b.terminate();
    }
  });

  test('a second socket of a present user still joins a full presence channel', async () => {
    const name = uid('presence-full-same');
    const a = await presenceSocket(APPS.small, name, { user_id: 'a' });
    const b = await presenceSocket(APPS.small, name, { user_id: 'b' });
    try {
      await a.next('pusher_internal:subscription_succeeded');
      await b.next('pusher_internal:subscription_succeeded');
      const again = await presenceSocket(APPS.small, name, { user_id: 'a' });
      try {
        const ok = await again.next('pusher_internal:subscription_succeeded');
        assert.equal(ok.decoded.presence.count, 2);
      } finally {
        again.terminate();
      }
    } finally {
      a.terminate();
      b.terminate();
    }
  });

  test('user_info over max_presence_user_info_bytes is refused', async () => {
    const name = uid('presence-biginfo');
    const raw = await presenceSocket(APPS.small, name, { user_id: 'big', user_info: { bio: 'x'.repeat(200) } });
    try {
      await refusal(raw, name);
      assert.equal(raw.messages.all((m) => m.event === 'pusher_internal:subscription_succeeded').length, 0);
    } finally {
      raw.terminate();
    }
  });

  test('a subscriber that stops reading is disconnected with a 41xx code; the others keep receiving', async () => {
    const name = uid('flood');
    const sdk = rest(herald, APPS.counted);
    const slow = await RawClient.connect(herald.wsUrl(APPS.counted.key));
    const fast = await RawClient.connect(herald.wsUrl(APPS.counted.key));
    await slow.subscribe(name);
    await fast.subscribe(name);
    slow.pause();
    const payload = 'x'.repeat(10000);
    // Bounded: 300 batches of 10 x 10 KB = 30 MB, far above the kernel buffers plus any sane
    // outbox bound. Stop as soon as herald has dropped the slow subscriber.
    let dropped = false;
    for (let i = 0; i < 300 && !dropped; i += 1) {
      await sdk.triggerBatch(Array.from({ length: 10 }, () => ({ channel: name, name: 'flood', data: payload })));
      const info = await (await sdk.get({ path: `/channels/${name}`, params: { info: 'subscription_count' } })).json();
      dropped = info.subscription_count === 1;
    }
    assert.ok(dropped, 'herald never dropped a subscriber that stopped reading');
    await sdk.trigger(name, 'final', 'done');
    const final = await fast.next('final', () => true, 10000);
    assert.equal(final.data, 'done');
    slow.resume();
    const { code } = await slow.waitClose(10000);
    assert.ok(code >= 4100 && code <= 4199, `slow consumer closed with ${code}, expected 4100-4199`);
    fast.terminate();
  });

  test('no socket in this suite was ever closed with a 43xx code', () => {
    assert.deepEqual(closeCodesSeen.filter(({ code }) => code >= 4300 && code <= 4399), []);
  });
});
