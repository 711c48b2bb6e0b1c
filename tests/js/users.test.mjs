//! User authentication seen from pusher-js 8: sign-in, send-to-user, terminate_connections,
//! watchlist online/offline.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import {
  APPS, Inbox, RawClient, closeCodesSeen, connected, once, pusherClient, rest,
  sdkUserAuthentication, startHerald, uid,
} from './harness.mjs';
import { signinAuth } from '../support/pusher_sign.mjs';

describe('users', () => {
  let herald;
  let sdk;
  const clients = [];

  /** A pusher-js client that signs in as `userData` and an Inbox of its protocol messages. */
  async function signedIn(userData, app = APPS.main) {
    const c = pusherClient(herald, app, {
      userAuthentication: sdkUserAuthentication(rest(herald, app), userData),
    });
    clients.push(c);
    c.messages = new Inbox(`messages of ${userData.id}`);
    c.connection.bind('message', (m) => c.messages.push(m));
    await connected(c);
    c.signin();
    await c.messages.next((m) => m.event === 'pusher:signin_success', { what: 'pusher:signin_success' });
    await c.messages.next(
      (m) => m.event === 'pusher_internal:subscription_succeeded' && m.channel === `#server-to-user-${userData.id}`,
      { what: `subscription to #server-to-user-${userData.id}` },
    );
    return c;
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

  test('sign-in: pusher:signin_success carries the signed user_data', async () => {
    const id = uid('user');
    const c = await signedIn({ id, user_info: { name: 'Ada' } });
    assert.equal(c.user.user_data.id, id);
    assert.deepEqual(c.user.user_data.user_info, { name: 'Ada' });
  });

  test('sendToUser: the event reaches pusher.user.bind on the signed-in socket', async () => {
    const id = uid('user');
    const c = await signedIn({ id });
    const got = once(c.user, 'invoice-paid');
    await sdk.sendToUser(id, 'invoice-paid', { amount: 42 });
    assert.deepEqual(await got, { amount: 42 });
  });

  test('sendToUser reaches every socket of that user', async () => {
    const id = uid('user');
    const a = await signedIn({ id });
    const b = await signedIn({ id });
    const gotA = once(a.user, 'note');
    const gotB = once(b.user, 'note');
    await sdk.sendToUser(id, 'note', 'x');
    assert.equal(await gotA, 'x');
    assert.equal(await gotB, 'x');
  });

  test('sign-in with a forged signature gets pusher:error', async () => {
    const raw = await RawClient.connect(herald.wsUrl(APPS.main.key));
    try {
      raw.send({
        event: 'pusher:signin',
        data: { auth: `${APPS.main.key}:${'f'.repeat(64)}`, user_data: JSON.stringify({ id: 'mallory' }) },
      });
      const err = await raw.next('pusher:error');
      assert.ok(err.decoded.message.length > 0);
      assert.equal(raw.messages.all((m) => m.event === 'pusher:signin_success').length, 0);
    } finally {
      raw.terminate();
    }
  });

  test('sign-in on an app without user authentication gets pusher:error', async () => {
    const raw = await RawClient.connect(herald.wsUrl(APPS.quiet.key));
    try {
      const userData = JSON.stringify({ id: 'u1' });
      const auth = signinAuth(APPS.quiet, raw.socketId, userData);
      raw.send({ event: 'pusher:signin', data: { auth, user_data: userData } });
      await raw.next('pusher:error');
      assert.equal(raw.messages.all((m) => m.event === 'pusher:signin_success').length, 0);
    } finally {
      raw.terminate();
    }
  });

  test('sign-in with a hand-made signature (socket_id::user::user_data) succeeds', async () => {
    const raw = await RawClient.connect(herald.wsUrl(APPS.main.key));
    try {
      const userData = JSON.stringify({ id: uid('hand') });
      const auth = signinAuth(APPS.main, raw.socketId, userData);
      raw.send({ event: 'pusher:signin', data: { auth, user_data: userData } });
      const ok = await raw.next('pusher:signin_success');
      assert.equal(ok.decoded.user_data, userData);
    } finally {
      raw.terminate();
    }
  });

  test('#server-to-user-{id} is refused to a socket not signed in as that user', async () => {
    const raw = await RawClient.connect(herald.wsUrl(APPS.main.key));
    try {
      raw.send({ event: 'pusher:subscribe', data: { channel: '#server-to-user-victim', auth: '' } });
      await raw.next('pusher:error');
      assert.equal(raw.messages.all((m) => m.event === 'pusher_internal:subscription_succeeded').length, 0);
    } finally {
      raw.terminate();
    }
  });

  test('terminate_connections closes every socket of the user with 4009, others stay', async () => {
    const id = uid('user');
    const a = await signedIn({ id });
    const b = await signedIn({ id });
    const bystander = await signedIn({ id: uid('user') });
    await sdk.terminateUserConnections(id);
    assert.equal((await a.closes.next(() => true, { what: 'close of socket a' })).code, 4009);
    assert.equal((await b.closes.next(() => true, { what: 'close of socket b' })).code, 4009);
    const alive = once(bystander.user, 'still-here');
    await sdk.sendToUser(bystander.user.user_data.id, 'still-here', 1);
    await alive;
    assert.equal(bystander.connection.state, 'connected');
  });

  test('terminate_connections: a raw socket sees close code 4009', async () => {
    const raw = await RawClient.connect(herald.wsUrl(APPS.main.key));
    const userData = JSON.stringify({ id: uid('rawuser') });
    const { auth } = sdk.authenticateUser(raw.socketId, JSON.parse(userData));
    raw.send({ event: 'pusher:signin', data: { auth, user_data: userData } });
    await raw.next('pusher:signin_success');
    await sdk.terminateUserConnections(JSON.parse(userData).id);
    const { code } = await raw.waitClose();
    assert.equal(code, 4009);
  });

  test('watchlist: online when a watched user signs in, offline when they leave', async () => {
    const watched = uid('watched');
    const watcher = await signedIn({ id: uid('watcher'), watchlist: [watched] });
    const online = new Inbox('watchlist online');
    const offline = new Inbox('watchlist offline');
    watcher.user.watchlist.bind('online', (e) => online.push(e));
    watcher.user.watchlist.bind('offline', (e) => offline.push(e));

    const other = await signedIn({ id: watched });
    const on = await online.next((e) => e.user_ids.includes(watched), { what: `online for ${watched}` });
    assert.equal(on.name, 'online');

    other.disconnect();
    const off = await offline.next((e) => e.user_ids.includes(watched), { what: `offline for ${watched}` });
    assert.equal(off.name, 'offline');
  });

  test('watchlist: a user already online is reported online right after sign-in', async () => {
    const watched = uid('early');
    await signedIn({ id: watched });
    const c = pusherClient(herald, APPS.main, {
      userAuthentication: sdkUserAuthentication(sdk, { id: uid('late-watcher'), watchlist: [watched] }),
    });
    clients.push(c);
    const online = new Inbox('watchlist online');
    c.user.watchlist.bind('online', (e) => online.push(e));
    await connected(c);
    c.signin();
    await online.next((e) => e.user_ids.includes(watched), { what: `initial online for ${watched}` });
  });

  test('no socket in this suite was ever closed with a 43xx code', () => {
    assert.deepEqual(closeCodesSeen.filter(({ code }) => code >= 4300 && code <= 4399), []);
  });
});
