//! laravel-echo 2 (broadcaster 'pusher' over pusher-js 8) against herald, the way a Laravel
//! front end uses it: an HTTP auth endpoint signing with the npm SDK, events named after
//! broadcast classes, whispers, presence; and herald configured only by a Laravel `.env`.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, afterEach, before, describe, test } from 'node:test';

import Echo from 'laravel-echo';
import Pusher from 'pusher-js';

import {
  APPS, RawClient, closeCodesSeen, connected, instrumentPusher, once, rest, startHerald, uid, withTimeout,
} from './harness.mjs';

/**
 * A stand-in for Laravel's `/broadcasting/auth`: reads the form pusher-js posts and answers
 * with the npm SDK's signature. The user comes from the X-User-Id / X-User-Name headers.
 */
async function startAuthEndpoint(sdk) {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      const form = new URLSearchParams(body);
      const socketId = form.get('socket_id');
      const channel = form.get('channel_name');
      const user = { user_id: req.headers['x-user-id'], user_info: { name: req.headers['x-user-name'] } };
      try {
        const signed = channel.startsWith('presence-')
          ? sdk.authorizeChannel(socketId, channel, user)
          : sdk.authorizeChannel(socketId, channel);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(signed));
      } catch (err) {
        res.writeHead(403, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ message: err.message }));
      }
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${server.address().port}/broadcasting/auth` };
}

/** An Echo instance as `resources/js/echo.js` of a Laravel app would build it. */
function makeEcho(herald, key, { authEndpoint, user } = {}) {
  const echo = new Echo({
    broadcaster: 'pusher',
    key,
    cluster: 'mt1',
    wsHost: '127.0.0.1',
    wsPort: herald.port,
    wssPort: herald.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    Pusher,
    ...(authEndpoint ? { authEndpoint } : {}),
    ...(user ? { auth: { headers: { 'X-User-Id': user.id, 'X-User-Name': user.name } } } : {}),
  });
  instrumentPusher(echo.connector.pusher, `echo(${key})`);
  return echo;
}

/** Resolves once an Echo channel's subscription succeeded (even if it already has). */
function echoSubscribed(channel, what) {
  if (channel.subscription.subscribed) return Promise.resolve();
  return withTimeout(new Promise((resolve) => channel.subscribed(resolve)), `${what} subscription`);
}

describe('laravel-echo', () => {
  let herald;
  let sdk;
  let auth;
  const echos = [];

  function echo(user) {
    const e = makeEcho(herald, APPS.main.key, { authEndpoint: auth.url, user });
    echos.push(e);
    return e;
  }

  before(async () => {
    herald = await startHerald();
    sdk = rest(herald, APPS.main);
    auth = await startAuthEndpoint(sdk);
  });
  afterEach(() => herald?.assertAlive());
  after(async () => {
    echos.forEach((e) => e.disconnect());
    auth?.server.close();
    await herald?.stop();
  });

  test('Echo connects and reports connected with a socket id', async () => {
    const e = echo();
    await connected(e.connector.pusher);
    assert.equal(e.connectionStatus(), 'connected');
    assert.match(e.socketId(), /^\d+\.\d+$/);
  });

  test('channel().listen receives a broadcast event named after its class', async () => {
    const e = echo();
    const name = uid('orders');
    const got = new Promise((resolve) => {
      const channel = e.channel(name).listen('OrderShipped', resolve);
      echoSubscribed(channel, name).then(() => sdk.trigger(name, 'App\\Events\\OrderShipped', { order: { id: 5 } }));
    });
    assert.deepEqual(await withTimeout(got, 'OrderShipped'), { order: { id: 5 } });
  });

  test('private().listen receives events after authorization through the auth endpoint', async () => {
    const e = echo({ id: '1', name: 'Taylor' });
    const name = uid('user');
    const got = new Promise((resolve) => {
      const channel = e.private(name).listen('.invoice.paid', resolve);
      echoSubscribed(channel, name).then(() => sdk.trigger(`private-${name}`, 'invoice.paid', { total: 99 }));
    });
    assert.deepEqual(await withTimeout(got, 'invoice.paid'), { total: 99 });
  });

  test('join().here lists the members, joining and leaving follow the room', async () => {
    const room = uid('room');
    const first = echo({ id: '1', name: 'Taylor' });
    const joined = [];
    const left = [];
    const here = new Promise((resolve) => {
      first.join(room)
        .here(resolve)
        .joining((user) => joined.push(user))
        .leaving((user) => left.push(user));
    });
    assert.deepEqual(await withTimeout(here, 'here()'), [{ name: 'Taylor' }]);

    const firstChannel = first.connector.pusher.channel(`presence-${room}`);
    const joining = once(firstChannel, 'pusher:member_added');
    const second = echo({ id: '2', name: 'Abigail' });
    const secondHere = new Promise((resolve) => second.join(room).here(resolve));
    const members = await withTimeout(secondHere, 'here() of the second user');
    assert.deepEqual(members.map((m) => m.name).sort(), ['Abigail', 'Taylor']);
    await joining;
    assert.deepEqual(joined, [{ name: 'Abigail' }]);

    const leaving = once(firstChannel, 'pusher:member_removed');
    second.leave(room);
    await leaving;
    assert.deepEqual(left, [{ name: 'Abigail' }]);
  });

  test('whisper on a private channel reaches listenForWhisper of the other user', async () => {
    const name = uid('chat');
    const a = echo({ id: '1', name: 'A' });
    const b = echo({ id: '2', name: 'B' });
    const aChannel = a.private(name);
    const bChannel = b.private(name);
    const got = new Promise((resolve) => bChannel.listenForWhisper('typing', resolve));
    await echoSubscribed(aChannel, 'whisperer');
    await echoSubscribed(bChannel, 'listener');
    aChannel.whisper('typing', { name: 'A' });
    assert.deepEqual(await withTimeout(got, 'whisper'), { name: 'A' });
  });

  test('whisper on a presence channel reaches listenForWhisper', async () => {
    const room = uid('presence-whisper');
    const a = echo({ id: '1', name: 'A' });
    const b = echo({ id: '2', name: 'B' });
    const aHere = new Promise((resolve) => a.join(room).here(resolve));
    const got = new Promise((resolve) => b.join(room).listenForWhisper('editing', resolve));
    await withTimeout(aHere, 'here() of A');
    await echoSubscribed(b.connector.channels[`presence-${room}`], 'B');
    a.join(room).whisper('editing', { line: 3 });
    assert.deepEqual(await withTimeout(got, 'presence whisper'), { line: 3 });
  });

  test('no socket in this suite was ever closed with a 43xx code', () => {
    assert.deepEqual(closeCodesSeen.filter(({ code }) => code >= 4300 && code <= 4399), []);
  });
});

describe('Laravel .env without a config file', () => {
  const laravelEnv = {
    BROADCAST_CONNECTION: 'pusher',
    PUSHER_APP_ID: '417301',
    PUSHER_APP_KEY: 'a1b2c3d4e5f6a7b8c9d0',
    PUSHER_APP_SECRET: 'f0e9d8c7b6a5f4e3d2c1',
    PUSHER_HOST: '',
    PUSHER_PORT: '443',
    PUSHER_SCHEME: 'https',
    PUSHER_APP_CLUSTER: 'mt1',
    VITE_PUSHER_APP_KEY: 'a1b2c3d4e5f6a7b8c9d0',
    VITE_PUSHER_HOST: '',
    VITE_PUSHER_PORT: '443',
    VITE_PUSHER_SCHEME: 'https',
    VITE_PUSHER_APP_CLUSTER: 'mt1',
  };
  const app = { id: laravelEnv.PUSHER_APP_ID, key: laravelEnv.PUSHER_APP_KEY, secret: laravelEnv.PUSHER_APP_SECRET };
  let herald;
  let e;

  before(async () => {
    herald = await startHerald({ apps: null, env: laravelEnv });
  });
  afterEach(() => herald?.assertAlive());
  after(async () => {
    e?.disconnect();
    await herald?.stop();
  });

  test('laravel-echo connects with PUSHER_APP_KEY and receives what the SDK sends with the .env credentials', async () => {
    e = makeEcho(herald, laravelEnv.VITE_PUSHER_APP_KEY);
    await connected(e.connector.pusher);
    const name = uid('news');
    const got = new Promise((resolve) => {
      const channel = e.channel(name).listen('ArticlePublished', resolve);
      echoSubscribed(channel, name).then(() => rest(herald, app).trigger(name, 'App\\Events\\ArticlePublished', { id: 1 }));
    });
    assert.deepEqual(await withTimeout(got, 'ArticlePublished'), { id: 1 });
  });

  test('the development key is not served when PUSHER_APP_KEY is set', async () => {
    const raw = new RawClient(herald.wsUrl('app-key'));
    assert.equal((await raw.waitClose()).code, 4001);
  });
});
