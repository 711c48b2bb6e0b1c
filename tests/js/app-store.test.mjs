//! Apps from a database (`[app_store]`) with the clients users have: for a private MariaDB and a
//! private PostgreSQL (tests/support/sql_servers.mjs) holding Soketi's `apps` table, a row
//! inserted while herald runs serves pusher-js (public and private channels, auth signed by the
//! `pusher` SDK with the row's secret), laravel-echo and client events; an unknown key is refused
//! with 4001 and pusher-js does not come back; a row disabled closes its clients with 4003 and
//! a row deleted stops serving its key. PostgreSQL's changes arrive through LISTEN/NOTIFY (a TTL
//! longer than the test), MariaDB's through a one-second refresh.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, afterEach, before, describe, test } from 'node:test';

import Echo from 'laravel-echo';
import Pusher from 'pusher-js';

import {
  Inbox, connected, eventually, instrumentPusher, once, pusherClient, rest, sdkChannelAuthorization, served,
  startHerald, subscribed, uid, withTimeout,
} from './harness.mjs';
import { startMariaDb, startPostgres } from '../support/sql_servers.mjs';

/** An app of the config file: herald also serves the table's. */
const FILE_APP = { id: 'store-file-app', key: 'store-file-key', secret: 'store-file-3a7c1e9b5d' };

/** A fresh app, in no table yet and never asked for (so no negative cache holds its key). */
function newApp(tag) {
  return { id: uid(`${tag}-id`), key: uid(`${tag}-key`), secret: randomBytes(12).toString('hex') };
}

/** Inserts `app` as a row of Soketi's table: enabled, no limits (-1), no webhooks. */
function insertApp(db, app, { clientMessages = false } = {}) {
  const key = db.driver === 'mysql' ? '`key`' : '"key"';
  return db.sql(
    `INSERT INTO apps (id, ${key}, secret, max_connections, enabled, enable_client_messages,
       max_backend_events_per_sec, max_client_events_per_sec, max_read_req_per_sec, webhooks)
     VALUES ('${app.id}', '${app.key}', '${app.secret}', -1, true, ${clientMessages}, -1, -1, -1, '[]')`,
  );
}

/**
 * The codes a pusher-js client was refused with while connecting. A refusal in the handshake
 * (herald's pusher:error, then the close) reaches pusher-js's 'error' event as
 * `{type: 'WebSocketError', error: {data: {code}}}`, which the harness's `closes` inbox, made for
 * closes of established connections, does not record.
 */
function refusals(client) {
  const inbox = new Inbox(`${client.key} refusals`);
  client.connection.bind('error', (e) => {
    const code = e?.error?.data?.code;
    if (e?.type === 'WebSocketError' && typeof code === 'number') inbox.push(code);
  });
  return inbox;
}

/** The states a pusher-js client went through, in order. */
function states(client) {
  const seen = [client.connection.state];
  client.connection.bind('state_change', ({ current }) => seen.push(current));
  return seen;
}

const DRIVERS = [
  { name: 'MariaDB', start: startMariaDb, ttl: '1' },
  // A TTL far longer than the test: every change must come through NOTIFY.
  { name: 'PostgreSQL', start: startPostgres, ttl: '3600' },
];

for (const { name, start, ttl } of DRIVERS) {
  describe(`apps from ${name}`, () => {
    let db;
    let herald;
    const clients = [];

    /** A pusher-js client of `app`, signing private channels with the `pusher` SDK and its secret. */
    function client(app, options = {}) {
      const c = pusherClient(herald, app, {
        channelAuthorization: sdkChannelAuthorization(rest(herald, app)),
        ...options,
      });
      clients.push(c);
      return c;
    }

    before(async () => {
      db = await start();
      herald = await startHerald({
        apps: [FILE_APP],
        env: {
          HERALD__APP_STORE__DRIVER: db.driver,
          HERALD__APP_STORE__URL: db.url,
          HERALD__APP_STORE__CACHE_TTL_SECS: ttl,
        },
      });
    });
    afterEach(() => {
      clients.splice(0).forEach((c) => c.disconnect());
      herald?.assertAlive();
    });
    after(async () => {
      await herald?.stop();
      await db?.stop();
    });

    test('a row inserted at run time serves pusher-js and the pusher SDK', async () => {
      const app = newApp('row');
      await insertApp(db, app);
      const c = client(app);
      await connected(c);
      const [pub, priv] = await Promise.all([subscribed(c, uid('news')), subscribed(c, `private-${uid('desk')}`)]);
      const got = Promise.all([once(pub, 'hello'), once(priv, 'hello')]);
      await rest(herald, app).trigger([pub.name, priv.name], 'hello', { n: 1 });
      assert.deepEqual(await got, [{ n: 1 }, { n: 1 }]);
    });

    test('laravel-echo listens on a row\'s app', async () => {
      const app = newApp('echo');
      await insertApp(db, app);
      const echo = new Echo({
        broadcaster: 'pusher', key: app.key, cluster: 'mt1', wsHost: '127.0.0.1', wsPort: herald.port,
        wssPort: herald.port, forceTLS: false, enabledTransports: ['ws'], disableStats: true, Pusher,
      });
      try {
        instrumentPusher(echo.connector.pusher, `echo(${app.key})`);
        const channelName = uid('orders');
        const channel = echo.channel(channelName);
        const heard = new Promise((resolve) => channel.listen('.OrderShipped', resolve));
        await withTimeout(new Promise((resolve) => channel.subscribed(resolve)), 'the Echo subscription');
        await rest(herald, app).trigger(channelName, 'OrderShipped', { order: 7 });
        assert.deepEqual(await withTimeout(heard, 'the Echo listener'), { order: 7 });
      } finally {
        echo.disconnect();
      }
    });

    test('an unknown key is closed with 4001 and pusher-js does not reconnect', async () => {
      const stranger = client(newApp('stranger'));
      const [seen, refused] = [states(stranger), refusals(stranger)];
      assert.equal(await refused.next(() => true, { what: 'the refusal of an unknown key' }), 4001);
      assert.equal(stranger.connection.state, 'disconnected');
      // Another app's round trip gives a reconnection time to start; none does.
      const app = newApp('after-stranger');
      await insertApp(db, app);
      await connected(client(app));
      assert.deepEqual(seen.filter((s) => s === 'connecting'), ['connecting'], `states: ${seen.join(' → ')}`);
      assert.equal(stranger.connection.state, 'disconnected');
    });

    test('a row disabled closes its open clients with 4003', async () => {
      const app = newApp('disabled');
      await insertApp(db, app);
      const c = client(app);
      await subscribed(c, uid('live'));
      await db.sql(`UPDATE apps SET enabled = false WHERE id = '${app.id}'`);
      const closed = await c.closes.next(() => true, { what: 'the close of a disabled app' });
      assert.equal(closed.code, 4003, JSON.stringify(closed));
      assert.equal(c.connection.state, 'disconnected', 'pusher-js does not come back to a disabled app');
    });

    test('a row deleted is no longer served: open and fresh clients get 4001', async () => {
      const app = newApp('deleted');
      await insertApp(db, app);
      const open = client(app);
      await subscribed(open, uid('live'));
      assert.equal(await served(herald, app), true);
      await db.sql(`DELETE FROM apps WHERE id = '${app.id}'`);
      await eventually(async () => !(await served(herald, app)), 'the HTTP API answers 404 for the deleted app');
      const closed = await open.closes.next(() => true, { what: 'the close of the open client' });
      assert.equal(closed.code, 4001, JSON.stringify(closed));
      const fresh = refusals(client(app));
      assert.equal(await fresh.next(() => true, { what: 'the refusal of a fresh client' }), 4001);
    });

    test('a row with enable_client_messages lets two clients whisper', async () => {
      const app = newApp('whisper');
      await insertApp(db, app, { clientMessages: true });
      const channelName = `private-${uid('chat')}`;
      const [a, b] = [client(app), client(app)];
      const [chA, chB] = await Promise.all([subscribed(a, channelName), subscribed(b, channelName)]);
      const heard = once(chB, 'client-typing');
      assert.equal(chA.trigger('client-typing', { who: 'a' }), true);
      assert.deepEqual(await heard, { who: 'a' });
    });
  });
}
