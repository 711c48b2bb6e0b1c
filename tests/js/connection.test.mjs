//! Connection lifecycle seen from pusher-js 8 and from raw WebSocket clients: handshake,
//! ping/pong, close codes for every refused connection, malformed frames.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import {
  APPS, RawClient, closeCodesSeen, connected, pusherClient, rest, startHerald, uid, withTimeout,
} from './harness.mjs';

describe('connection', () => {
  let herald;
  before(async () => {
    herald = await startHerald();
  });
  afterEach(() => herald?.assertAlive());
  after(async () => {
    await herald?.stop();
  });

  test('pusher-js connects: state connected and a \\d+.\\d+ socket_id', async () => {
    const client = pusherClient(herald, APPS.main);
    try {
      await connected(client);
      assert.equal(client.connection.state, 'connected');
      assert.match(client.connection.socket_id, /^\d+\.\d+$/);
    } finally {
      client.disconnect();
    }
  });

  test('connection_established is the first frame, data string-encoded with socket_id and activity_timeout 120', async () => {
    const raw = new RawClient(herald.wsUrl(APPS.main.key));
    try {
      const first = await raw.messages.next(() => true, { what: 'the first frame' });
      assert.equal(first.event, 'pusher:connection_established');
      assert.equal(typeof first.data, 'string', 'data must be a JSON-encoded string');
      assert.match(first.decoded.socket_id, /^\d+\.\d+$/);
      assert.equal(first.decoded.activity_timeout, 120);
    } finally {
      raw.terminate();
    }
  });

  test('every connection gets a distinct socket_id', async () => {
    const clients = await Promise.all([1, 2, 3, 4, 5].map(() => RawClient.connect(herald.wsUrl(APPS.main.key))));
    try {
      assert.equal(new Set(clients.map((c) => c.socketId)).size, clients.length);
    } finally {
      clients.forEach((c) => c.terminate());
    }
  });

  test('pusher:ping is answered with pusher:pong', async () => {
    const raw = await RawClient.connect(herald.wsUrl(APPS.main.key));
    try {
      const pong = await raw.ping();
      assert.equal(pong.event, 'pusher:pong');
    } finally {
      raw.terminate();
    }
  });

  test('a WebSocket ping frame is answered with a pong frame', async () => {
    const raw = await RawClient.connect(herald.wsUrl(APPS.main.key));
    try {
      const pong = new Promise((resolve) => raw.ws.once('pong', (data) => resolve(data.toString())));
      raw.ws.ping('are-you-there');
      assert.equal(await withTimeout(pong, 'a pong frame'), 'are-you-there');
    } finally {
      raw.terminate();
    }
  });

  test('public subscription_succeeded data is exactly the string "{}"', async () => {
    const raw = await RawClient.connect(herald.wsUrl(APPS.main.key));
    try {
      const ok = await raw.subscribe(uid('public'));
      assert.equal(ok.data, '{}');
    } finally {
      raw.terminate();
    }
  });

  test('unknown app key is closed with 4001', async () => {
    const raw = new RawClient(herald.wsUrl('no-such-key'));
    const { code } = await raw.waitClose();
    assert.equal(code, 4001);
  });

  test('disabled app is closed with 4003', async () => {
    const raw = new RawClient(herald.wsUrl(APPS.disabled.key));
    const { code } = await raw.waitClose();
    assert.equal(code, 4003);
  });

  test('protocol=6 is closed with 4007', async () => {
    const raw = new RawClient(herald.wsUrl(APPS.main.key, 'protocol=6&client=js&version=8.6.0'));
    const { code } = await raw.waitClose();
    assert.equal(code, 4007);
  });

  test('missing protocol is closed with 4008', async () => {
    const raw = new RawClient(herald.wsUrl(APPS.main.key, 'client=js&version=8.6.0'));
    const { code } = await raw.waitClose();
    assert.equal(code, 4008);
  });

  test('an empty or malformed version string is closed with 4006', async () => {
    for (const version of ['', 'not%20a%20version']) {
      const raw = new RawClient(herald.wsUrl(APPS.main.key, `protocol=7&client=js&version=${version}`));
      const { code } = await raw.waitClose();
      assert.equal(code, 4006, `version=${version}`);
    }
  });

  test('a message over max_message_bytes is closed with 1009', async () => {
    const raw = await RawClient.connect(herald.wsUrl(APPS.main.key));
    raw.send({ event: 'pusher:ping', data: { pad: 'x'.repeat(70000) } });
    const { code } = await raw.waitClose();
    assert.equal(code, 1009);
  });

  test('max_message_bytes is per app', async () => {
    const raw = await RawClient.connect(herald.wsUrl(APPS.small.key));
    raw.send({ event: 'pusher:ping', data: { pad: 'x'.repeat(2000) } });
    const { code } = await raw.waitClose();
    assert.equal(code, 1009);
  });

  test('WebSocket upgrade on a path other than /app/{key} is closed with 4005', async () => {
    const raw = new RawClient(`ws://127.0.0.1:${herald.port}/socket/${APPS.main.key}?protocol=7`);
    const { code } = await raw.waitClose();
    assert.equal(code, 4005);
  });

  test('a connection over max_connections is closed with 4004, the others stay', async () => {
    const first = await RawClient.connect(herald.wsUrl(APPS.limited.key));
    const second = await RawClient.connect(herald.wsUrl(APPS.limited.key));
    try {
      const third = new RawClient(herald.wsUrl(APPS.limited.key));
      const { code } = await third.waitClose();
      assert.equal(code, 4004);
      await first.ping();
      await second.ping();
    } finally {
      first.terminate();
      second.terminate();
    }
  });

  test('malformed JSON frame gets pusher:error; the socket and another client keep working', async () => {
    const bad = await RawClient.connect(herald.wsUrl(APPS.main.key));
    const other = await RawClient.connect(herald.wsUrl(APPS.main.key));
    try {
      bad.sendRaw('{"event": "pusher:subscribe", "data": ');
      const err = await bad.next('pusher:error');
      assert.ok(err.decoded && typeof err.decoded.message === 'string' && err.decoded.message.length > 0);
      await bad.ping();
      await other.ping();
      const channel = uid('after-garbage');
      await bad.subscribe(channel);
      assert.ok(bad.isOpen && other.isOpen);
    } finally {
      bad.terminate();
      other.terminate();
    }
  });

  test('a JSON frame without an event field gets pusher:error and the socket stays', async () => {
    const raw = await RawClient.connect(herald.wsUrl(APPS.main.key));
    try {
      raw.send({ data: {} });
      await raw.next('pusher:error');
      await raw.ping();
    } finally {
      raw.terminate();
    }
  });

  test('binary frame is refused (pusher:error or close 1003) and other clients are unaffected', async () => {
    const bin = await RawClient.connect(herald.wsUrl(APPS.main.key));
    const other = await RawClient.connect(herald.wsUrl(APPS.main.key));
    try {
      bin.sendRaw(Buffer.from(JSON.stringify({ event: 'pusher:ping', data: {} })), { binary: true });
      const outcome = await Promise.race([
        bin.next('pusher:error').then(() => 'error'),
        bin.next('pusher:pong').then(() => 'pong'),
        bin.waitClose().then(({ code }) => code),
      ]);
      assert.ok(outcome === 'error' || outcome === 1003, `binary frame got ${outcome}`);
      await other.ping();
    } finally {
      bin.terminate();
      other.terminate();
    }
  });

  test('invalid UTF-8 in a text frame is closed with 1007, other clients are unaffected', async () => {
    const bad = await RawClient.connect(herald.wsUrl(APPS.main.key));
    const other = await RawClient.connect(herald.wsUrl(APPS.main.key));
    try {
      bad.sendRaw(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), { binary: false });
      const { code } = await bad.waitClose();
      assert.equal(code, 1007);
      await other.ping();
    } finally {
      other.terminate();
    }
  });

  test('bad channel name gets pusher:error and no subscription', async () => {
    const raw = await RawClient.connect(herald.wsUrl(APPS.main.key));
    try {
      raw.send({ event: 'pusher:subscribe', data: { channel: 'no spaces allowed!' } });
      const err = await raw.next('pusher:error');
      assert.ok(err.decoded.message.length > 0);
      assert.equal(raw.messages.all((m) => m.event === 'pusher_internal:subscription_succeeded').length, 0);
      await raw.ping();
    } finally {
      raw.terminate();
    }
  });

  test('channel name over 200 characters gets pusher:error', async () => {
    const raw = await RawClient.connect(herald.wsUrl(APPS.main.key));
    try {
      raw.send({ event: 'pusher:subscribe', data: { channel: `c${'x'.repeat(200)}` } });
      await raw.next('pusher:error');
      await raw.ping();
    } finally {
      raw.terminate();
    }
  });

  test('channel names with = @ , . ; are accepted', async () => {
    const raw = await RawClient.connect(herald.wsUrl(APPS.main.key));
    try {
      const ok = await raw.subscribe(`${uid('odd')}_=@,.;-x`);
      assert.equal(ok.data, '{}');
    } finally {
      raw.terminate();
    }
  });

  test('forged private channel auth gets pusher:error and no subscription', async () => {
    const raw = await RawClient.connect(herald.wsUrl(APPS.main.key));
    try {
      const channel = uid('private-forged');
      raw.send({
        event: 'pusher:subscribe',
        data: { channel, auth: `${APPS.main.key}:${'0'.repeat(64)}` },
      });
      const err = await raw.next('pusher:error');
      assert.ok(err.decoded.message.length > 0);
      const info = await rest(herald, APPS.main).get({ path: `/channels/${channel}` });
      assert.equal((await info.json()).occupied, false);
      assert.equal(raw.messages.all((m) => m.event === 'pusher_internal:subscription_succeeded').length, 0);
      assert.ok(raw.isOpen);
    } finally {
      raw.terminate();
    }
  });

  test('private channel without auth gets pusher:error', async () => {
    const raw = await RawClient.connect(herald.wsUrl(APPS.main.key));
    try {
      raw.send({ event: 'pusher:subscribe', data: { channel: uid('private-noauth') } });
      await raw.next('pusher:error');
      await raw.ping();
    } finally {
      raw.terminate();
    }
  });

  test('a client that answers pings stays connected past activity_timeout + pong_timeout', async () => {
    const raw = await RawClient.connect(herald.wsUrl(APPS.impatient.key));
    try {
      raw.ws.on('message', (data) => {
        if (JSON.parse(data.toString()).event === 'pusher:ping') raw.send({ event: 'pusher:pong', data: {} });
      });
      // Three pings (WebSocket or pusher:ping) take at least 3 s with activity_timeout 1 and
      // pong_timeout 1: a client that answers them must still be open after them.
      for (let i = 0; i < 3; i += 1) await raw.pings.next(() => true, { timeout: 8000, what: `ping ${i + 1}` });
      assert.ok(raw.isOpen, `closed with ${JSON.stringify(raw.closeInfo)}`);
      await raw.ping();
    } finally {
      raw.terminate();
    }
  });

  test('a silent client (never answers pings) is closed with 4201', async () => {
    const raw = await RawClient.connect(herald.wsUrl(APPS.impatient.key), { autoPong: false });
    const { code } = await raw.waitClose(10000);
    assert.equal(code, 4201);
  });

  test('activity_timeout from the app config is announced in the handshake', async () => {
    const raw = await RawClient.connect(herald.wsUrl(APPS.impatient.key));
    try {
      const hello = raw.messages.all((m) => m.event === 'pusher:connection_established')[0];
      assert.equal(hello.decoded.activity_timeout, 1);
    } finally {
      raw.terminate();
    }
  });

  test('herald answers plain HTTP on an unknown path with 404', async () => {
    const res = await fetch(`${herald.httpBase}/definitely/not/here`);
    assert.equal(res.status, 404);
  });

  test('no socket in this suite was ever closed with a 43xx code', () => {
    const bad = closeCodesSeen.filter(({ code }) => code >= 4300 && code <= 4399);
    assert.deepEqual(bad, []);
  });
});
