//! The HTTP API through the npm `pusher` SDK, and its error paths with hand-signed or forged
//! requests (status codes and a non-empty error message; exact texts are not part of the contract).

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import {
  APPS, RawClient, errorMessage, rest, signedFetch, startHerald, uid,
} from './harness.mjs';

describe('HTTP API', () => {
  let herald;
  let sdk;

  before(async () => {
    herald = await startHerald();
    sdk = rest(herald, APPS.main);
  });
  afterEach(() => herald?.assertAlive());
  after(async () => {
    await herald?.stop();
  });

  /** A raw socket on the main app subscribed to `channels`. */
  function subscriber(...channels) {
    return subscriberOn(APPS.main, ...channels);
  }

  /** A raw socket on `app` subscribed to `channels` (private/presence signed by the SDK). */
  async function subscriberOn(app, ...channels) {
    const appSdk = rest(herald, app);
    const raw = await RawClient.connect(herald.wsUrl(app.key));
    for (const channel of channels) {
      const extra = {};
      if (channel.startsWith('presence-')) {
        const signed = appSdk.authorizeChannel(raw.socketId, channel, { user_id: raw.socketId });
        extra.auth = signed.auth;
        extra.channel_data = signed.channel_data;
      } else if (channel.startsWith('private-')) {
        extra.auth = appSdk.authorizeChannel(raw.socketId, channel).auth;
      }
      await raw.subscribe(channel, extra);
    }
    return raw;
  }

  function assertError(response, status) {
    assert.equal(response.status, status, `expected ${status}, got ${response.status}: ${response.text}`);
    assert.ok(errorMessage(response).trim().length > 0, 'error response without a message');
  }

  test('SDK trigger (channels array) returns 200 {} and the event arrives', async () => {
    const name = uid('api');
    const raw = await subscriber(name);
    try {
      const res = await sdk.trigger(name, 'created', { id: 1 });
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), {});
      const msg = await raw.next('created');
      assert.equal(msg.channel, name);
      assert.equal(msg.data, JSON.stringify({ id: 1 }));
    } finally {
      raw.terminate();
    }
  });

  test('POST /events with a single `channel` field (as the PHP SDK sends) is delivered', async () => {
    const name = uid('api-single');
    const raw = await subscriber(name);
    try {
      const body = JSON.stringify({ name: 'solo', channel: name, data: '"one"' });
      const res = await signedFetch(herald, APPS.main, { method: 'POST', path: `/apps/${APPS.main.id}/events`, body });
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.json, {});
      assert.equal((await raw.next('solo')).data, '"one"');
    } finally {
      raw.terminate();
    }
  });

  test('SDK trigger to several channels reaches each of them', async () => {
    const names = [uid('multi'), uid('multi'), uid('multi')];
    const raws = await Promise.all(names.map((n) => subscriber(n)));
    try {
      await sdk.trigger(names, 'fanout', 'x');
      for (const [i, raw] of raws.entries()) {
        assert.equal((await raw.next('fanout')).channel, names[i]);
      }
    } finally {
      raws.forEach((r) => r.terminate());
    }
  });

  test('SDK trigger with socket_id excludes that socket only', async () => {
    const name = uid('exclude');
    const excluded = await subscriber(name);
    const other = await subscriber(name);
    try {
      await sdk.trigger(name, 'first', 1, { socket_id: excluded.socketId });
      await other.next('first');
      await sdk.trigger(name, 'second', 2);
      await excluded.next('second');
      // Delivery to one socket is ordered: `first` would have arrived before `second`.
      assert.equal(excluded.messages.all((m) => m.event === 'first').length, 0);
    } finally {
      excluded.terminate();
      other.terminate();
    }
  });

  test('SDK trigger with info=user_count on a presence channel returns the distinct users', async () => {
    const presence = uid('presence-info');
    const raw1 = await subscriber(presence);
    const raw2 = await subscriber(presence);
    try {
      const res = await sdk.trigger(presence, 'hello', {}, { info: 'user_count' });
      const body = await res.json();
      assert.equal(body.channels[presence].user_count, 2);
    } finally {
      raw1.terminate();
      raw2.terminate();
    }
  });

  test('SDK trigger with info=subscription_count returns the subscriber count', async () => {
    const name = uid('public-info');
    const raw1 = await subscriberOn(APPS.counted, name);
    const raw2 = await subscriberOn(APPS.counted, name);
    try {
      const res = await rest(herald, APPS.counted).trigger(name, 'hello', {}, { info: 'subscription_count' });
      assert.equal((await res.json()).channels[name].subscription_count, 2);
    } finally {
      raw1.terminate();
      raw2.terminate();
    }
  });

  test('SDK triggerBatch delivers every event and returns 200', async () => {
    const a = uid('batch');
    const b = uid('batch');
    const raw = await subscriber(a, b);
    try {
      const res = await sdk.triggerBatch([
        { channel: a, name: 'one', data: { n: 1 } },
        { channel: b, name: 'two', data: { n: 2 } },
      ]);
      assert.equal(res.status, 200);
      assert.equal((await raw.next('one')).channel, a);
      assert.equal((await raw.next('two')).channel, b);
    } finally {
      raw.terminate();
    }
  });

  test('batch_events with info returns one entry per event, aligned by index', async () => {
    const a = uid('batchinfo');
    const raw = await subscriberOn(APPS.counted, a);
    try {
      const res = await rest(herald, APPS.counted).triggerBatch([
        { channel: a, name: 'one', data: '1', info: 'subscription_count' },
        { channel: a, name: 'two', data: '2' },
      ]);
      const body = await res.json();
      assert.equal(body.batch.length, 2);
      assert.equal(body.batch[0].subscription_count, 1);
      assert.deepEqual(body.batch[1], {});
    } finally {
      raw.terminate();
    }
  });

  test('GET /channels lists occupied channels, filter_by_prefix narrows them', async () => {
    const prefix = uid('pfx');
    const a = `${prefix}-a`;
    const b = `${prefix}-b`;
    const raw = await subscriber(a, b, uid('unrelated'));
    try {
      const res = await sdk.get({ path: '/channels', params: { filter_by_prefix: prefix } });
      const body = await res.json();
      assert.deepEqual(Object.keys(body.channels).sort(), [a, b]);
      const all = await (await sdk.get({ path: '/channels' })).json();
      assert.ok(a in all.channels && b in all.channels);
    } finally {
      raw.terminate();
    }
  });

  test('GET /channels with info=user_count on presence- prefix reports distinct users', async () => {
    const name = `presence-${uid('room')}`;
    const raw1 = await subscriber(name);
    const raw2 = await subscriber(name);
    try {
      const res = await sdk.get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } });
      const body = await res.json();
      assert.equal(body.channels[name].user_count, 2);
    } finally {
      raw1.terminate();
      raw2.terminate();
    }
  });

  test('GET /channels with info=subscription_count reports it per channel', async () => {
    const prefix = uid('subcount');
    const raw1 = await subscriberOn(APPS.counted, `${prefix}-a`);
    const raw2 = await subscriberOn(APPS.counted, `${prefix}-a`);
    try {
      const res = await rest(herald, APPS.counted).get({
        path: '/channels', params: { filter_by_prefix: prefix, info: 'subscription_count' },
      });
      assert.equal((await res.json()).channels[`${prefix}-a`].subscription_count, 2);
    } finally {
      raw1.terminate();
      raw2.terminate();
    }
  });

  test('GET /channels returns channels as an object even when none match', async () => {
    const body = await (await sdk.get({ path: '/channels', params: { filter_by_prefix: uid('none') } })).json();
    assert.deepEqual(body, { channels: {} });
  });

  test('GET /channels with info=user_count but no presence- filter is 400', async () => {
    const res = await signedFetch(herald, APPS.main, {
      path: `/apps/${APPS.main.id}/channels`, query: { info: 'user_count' },
    });
    assertError(res, 400);
  });

  test('GET /channels/{name} reports occupied and subscription_count', async () => {
    const name = uid('occupied');
    const raw1 = await subscriberOn(APPS.counted, name);
    const raw2 = await subscriberOn(APPS.counted, name);
    try {
      const body = await (await rest(herald, APPS.counted).get({ path: `/channels/${name}`, params: { info: 'subscription_count' } })).json();
      assert.equal(body.occupied, true);
      assert.equal(body.subscription_count, 2);
      const empty = await (await sdk.get({ path: `/channels/${uid('vacant')}` })).json();
      assert.equal(empty.occupied, false);
    } finally {
      raw1.terminate();
      raw2.terminate();
    }
  });

  test('GET /channels/{presence} reports user_count', async () => {
    const name = uid('presence-count');
    const raw = await subscriber(name);
    try {
      const body = await (await sdk.get({ path: `/channels/${name}`, params: { info: 'user_count' } })).json();
      assert.equal(body.occupied, true);
      assert.equal(body.user_count, 1);
    } finally {
      raw.terminate();
    }
  });

  test('GET /channels/{presence}/users lists the members', async () => {
    const name = uid('presence-users');
    const raw1 = await subscriber(name);
    const raw2 = await subscriber(name);
    try {
      const body = await (await sdk.get({ path: `/channels/${name}/users` })).json();
      assert.deepEqual(body.users.map((u) => u.id).sort(), [raw1.socketId, raw2.socketId].sort());
    } finally {
      raw1.terminate();
      raw2.terminate();
    }
  });

  test('GET /channels/{public}/users is 400', async () => {
    const res = await signedFetch(herald, APPS.main, { path: `/apps/${APPS.main.id}/channels/${uid('pub')}/users` });
    assertError(res, 400);
  });

  test('SDK terminateUserConnections returns 200', async () => {
    const res = await sdk.terminateUserConnections(uid('nobody'));
    assert.equal(res.status, 200);
  });

  test('forged signature is 401', async () => {
    const res = await signedFetch(herald, APPS.main, {
      method: 'POST', path: `/apps/${APPS.main.id}/events`,
      body: JSON.stringify({ name: 'x', channels: ['a'], data: '{}' }),
      signature: 'a'.repeat(64),
    });
    assertError(res, 401);
  });

  test('request signed with the wrong secret is 401 (SDK)', async () => {
    const wrong = rest(herald, { ...APPS.main, secret: 'not-the-secret' });
    await assert.rejects(wrong.trigger('a', 'x', {}), (err) => err.status === 401);
  });

  test('unknown auth_key is 401', async () => {
    const res = await signedFetch(herald, APPS.main, {
      path: `/apps/${APPS.main.id}/channels`, key: 'who-is-this', secret: 'whatever',
    });
    assertError(res, 401);
  });

  test('timestamp 601 s in the past is 401', async () => {
    const res = await signedFetch(herald, APPS.main, {
      path: `/apps/${APPS.main.id}/channels`, timestamp: Math.floor(Date.now() / 1000) - 601,
    });
    assertError(res, 401);
  });

  test('timestamp 601 s in the future is 401', async () => {
    const res = await signedFetch(herald, APPS.main, {
      path: `/apps/${APPS.main.id}/channels`, timestamp: Math.floor(Date.now() / 1000) + 601,
    });
    assertError(res, 401);
  });

  test('timestamp 500 s old is still accepted', async () => {
    const res = await signedFetch(herald, APPS.main, {
      path: `/apps/${APPS.main.id}/channels`, timestamp: Math.floor(Date.now() / 1000) - 500,
    });
    assert.equal(res.status, 200, res.text);
  });

  test('wrong body_md5 (correctly signed) is 401', async () => {
    const res = await signedFetch(herald, APPS.main, {
      method: 'POST', path: `/apps/${APPS.main.id}/events`,
      body: JSON.stringify({ name: 'x', channels: ['a'], data: '{}' }),
      bodyMd5: '0'.repeat(32),
    });
    assertError(res, 401);
  });

  test('unknown app id is 404', async () => {
    const res = await signedFetch(herald, APPS.main, {
      method: 'POST', path: '/apps/999999/events',
      body: JSON.stringify({ name: 'x', channels: ['a'], data: '{}' }),
    });
    assertError(res, 404);
  });

  test('unknown API path under a known app is 404', async () => {
    const res = await signedFetch(herald, APPS.main, { path: `/apps/${APPS.main.id}/nothing-here` });
    assertError(res, 404);
  });

  test('disabled app is 403', async () => {
    const res = await signedFetch(herald, APPS.disabled, {
      method: 'POST', path: `/apps/${APPS.disabled.id}/events`,
      body: JSON.stringify({ name: 'x', channels: ['a'], data: '{}' }),
    });
    assertError(res, 403);
  });

  test('event data over 10 KB is 413', async () => {
    await assert.rejects(sdk.trigger(uid('big'), 'huge', 'x'.repeat(10241)), (err) => err.status === 413);
  });

  test('event data of exactly 10 KB is accepted', async () => {
    const res = await sdk.trigger(uid('big'), 'fits', 'x'.repeat(10240));
    assert.equal(res.status, 200);
  });

  test('more than 100 channels is 400', async () => {
    const channels = Array.from({ length: 101 }, (_, i) => `many-${i}`);
    const res = await signedFetch(herald, APPS.main, {
      method: 'POST', path: `/apps/${APPS.main.id}/events`,
      body: JSON.stringify({ name: 'x', channels, data: '{}' }),
    });
    assertError(res, 400);
  });

  test('exactly 100 channels is accepted', async () => {
    const res = await sdk.trigger(Array.from({ length: 100 }, (_, i) => `hundred-${i}`), 'x', {});
    assert.equal(res.status, 200);
  });

  test('event name over 200 characters is 400', async () => {
    const res = await signedFetch(herald, APPS.main, {
      method: 'POST', path: `/apps/${APPS.main.id}/events`,
      body: JSON.stringify({ name: 'e'.repeat(201), channels: ['a'], data: '{}' }),
    });
    assertError(res, 400);
  });

  test('max_event_data_bytes is per app: 101 bytes is 413 on an app allowing 100', async () => {
    const small = rest(herald, APPS.small);
    await assert.rejects(small.trigger(uid('small'), 'e', 'x'.repeat(101)), (err) => err.status === 413);
    assert.equal((await small.trigger(uid('small'), 'e', 'x'.repeat(100))).status, 200);
  });

  test('more than 10 batch events is 400', async () => {
    const batch = Array.from({ length: 11 }, (_, i) => ({ channel: `b-${i}`, name: 'x', data: '{}' }));
    await assert.rejects(sdk.triggerBatch(batch), (err) => err.status === 400);
  });

  test('POST /events without a name is 400', async () => {
    const res = await signedFetch(herald, APPS.main, {
      method: 'POST', path: `/apps/${APPS.main.id}/events`,
      body: JSON.stringify({ channels: ['a'], data: '{}' }),
    });
    assertError(res, 400);
  });

  test('POST /events with a body that is not JSON is 400', async () => {
    const res = await signedFetch(herald, APPS.main, {
      method: 'POST', path: `/apps/${APPS.main.id}/events`, body: '{"name": ',
    });
    assertError(res, 400);
  });

  test('POST /events with an invalid channel name is 400', async () => {
    const res = await signedFetch(herald, APPS.main, {
      method: 'POST', path: `/apps/${APPS.main.id}/events`,
      body: JSON.stringify({ name: 'x', channels: ['bad name!'], data: '{}' }),
    });
    assertError(res, 400);
  });

  test('the server keeps serving after every error above', async () => {
    const name = uid('afterwards');
    const raw = await subscriber(name);
    try {
      await sdk.trigger(name, 'ok', 1);
      await raw.next('ok');
    } finally {
      raw.terminate();
    }
  });
});
