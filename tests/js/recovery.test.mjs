//! Message recovery with the clients/js plugin: unmodified pusher-js 8.6 (and laravel-echo)
//! lose their connection through a proxy the test cuts, the npm `pusher` SDK publishes while
//! they are away, and on reconnection herald replays exactly what they missed.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, afterEach, before, describe, test } from 'node:test';

import Echo from 'laravel-echo';
import Pusher from 'pusher-js';

import { enableRecovery } from '../../clients/js/herald-recovery.mjs';
import { heraldBin, toml } from '../support/herald_launcher.mjs';
import { APPS, CuttableProxy, connected, pusherClient, rest, runHerald, startHerald, subscribed, uid, withTimeout } from './harness.mjs';

/** The main app, keeping a short history on `small-*` and a long one on `history-*`. */
const APP = {
  ...APPS.main,
  history: [
    { channels: 'small-*', max_messages: 10 },
    { channels: 'history-*', max_messages: 1000 },
  ],
};

/** Resolves once the client noticed its connection is gone. */
function lost(client) {
  return withTimeout(
    new Promise((resolve) => {
      const onChange = ({ current }) => {
        if (current !== 'connected') {
          client.connection.unbind('state_change', onChange);
          resolve();
        }
      };
      client.connection.bind('state_change', onChange);
    }),
    'pusher-js to notice the cut',
  );
}

/** Records the `data` of every `event` bound on `channel`; `until(n)` waits for n of them. */
function recorder(channel, event, bind = (fn) => channel.bind(event, fn)) {
  const got = [];
  const waiters = [];
  bind((data) => {
    got.push(data);
    for (const w of waiters.filter((w) => got.length >= w.n)) w.resolve();
  });
  return {
    got,
    until: (n, what) =>
      withTimeout(
        new Promise((resolve) => (got.length >= n ? resolve() : waiters.push({ n, resolve }))),
        what,
        15000,
      ),
  };
}

describe('message recovery', () => {
  let herald;
  let proxy;
  let sdk;
  const clients = [];

  before(async () => {
    herald = await startHerald({ apps: [APP] });
    proxy = new CuttableProxy(herald.port);
    await proxy.start();
    sdk = rest(herald, APP);
  });
  afterEach(() => herald?.assertAlive());
  after(async () => {
    clients.forEach((c) => c.disconnect());
    proxy?.close();
    await herald?.stop();
  });

  function client() {
    const c = pusherClient(herald, APP, { wsPort: proxy.proxyPort });
    clients.push(c);
    return c;
  }

  /** Cuts the connection, publishes `n` events while the client is away, lets it back. */
  async function away(c, channel, n, from = 1) {
    const gone = lost(c);
    proxy.cut();
    await gone;
    for (let i = from; i < from + n; i += 1) await sdk.trigger(channel, 'ev', { i });
    proxy.restore();
  }

  test('pusher-js with the plugin gets exactly the 100 events published while it was away, in order', async () => {
    const c = client();
    const recovery = enableRecovery(c);
    const name = uid('history');
    const channel = await subscribed(await connected(c), name);
    const events = recorder(channel, 'ev');
    await sdk.trigger(name, 'ev', { i: 0 });
    await events.until(1, 'the first live event');
    assert.deepEqual(recovery.position(name)?.serial, 1);

    await away(c, name, 100);
    await events.until(101, '100 replayed events');
    // A live event after the replay: nothing else came before it.
    await sdk.trigger(name, 'ev', { i: 101 });
    await events.until(102, 'the live event after the replay');
    assert.deepEqual(events.got.map((d) => d.i), Array.from({ length: 102 }, (_, i) => i));
    assert.equal(recovery.position(name)?.serial, 102);
  });

  test('a gap longer than max_messages: the channel and the callback hear pusher:recovery_failed', async () => {
    const failures = [];
    const c = client();
    enableRecovery(c, { onRecoveryFailed: (f) => failures.push(f) });
    const name = uid('small');
    const channel = await subscribed(await connected(c), name);
    const events = recorder(channel, 'ev');
    const failed = recorder(channel, 'pusher:recovery_failed');
    await sdk.trigger(name, 'ev', { i: 0 });
    await events.until(1, 'the first live event');

    await away(c, name, 30);
    await failed.until(1, 'pusher:recovery_failed on the channel');
    assert.equal(failed.got[0].reason, 'gap');
    assert.equal(failed.got[0].serial, 31);
    assert.deepEqual(failures.map((f) => [f.channel, f.reason]), [[name, 'gap']]);
    // Live events flow again, and the next recovery starts from the current position.
    await sdk.trigger(name, 'ev', { i: 31 });
    await events.until(2, 'a live event after the failure');
    assert.deepEqual(events.got.map((d) => d.i), [0, 31]);
    await away(c, name, 5, 32);
    await events.until(7, 'the 5 events of a second, short absence');
    assert.deepEqual(events.got.map((d) => d.i), [0, 31, 32, 33, 34, 35, 36]);
  });

  test('a client without the plugin sees no change', async () => {
    const c = client();
    const name = uid('history');
    const channel = await subscribed(await connected(c), name);
    const events = recorder(channel, 'ev');
    const resubscribed = recorder(channel, 'pusher:subscription_succeeded');
    await away(c, name, 3);
    await resubscribed.until(1, 'the subscription after reconnecting');
    await sdk.trigger(name, 'ev', { i: 'live' });
    await events.until(1, 'the live event');
    assert.deepEqual(events.got, [{ i: 'live' }]);
  });

  test('laravel-echo with the plugin recovers too', async () => {
    const echo = new Echo({
      broadcaster: 'pusher',
      key: APP.key,
      cluster: 'mt1',
      wsHost: '127.0.0.1',
      wsPort: proxy.proxyPort,
      forceTLS: false,
      enabledTransports: ['ws'],
      disableStats: true,
      Pusher,
    });
    const pusher = echo.connector.pusher;
    clients.push(pusher);
    enableRecovery(pusher);
    const name = uid('history');
    const channel = echo.channel(name);
    const events = recorder(channel, 'ev', (fn) => channel.listen('.ev', fn));
    await withTimeout(new Promise((resolve) => channel.subscribed(resolve)), 'echo subscription');
    await sdk.trigger(name, 'ev', { i: 0 });
    await events.until(1, 'the first live event');
    await away(pusher, name, 20);
    await events.until(21, '20 replayed events');
    await sdk.trigger(name, 'ev', { i: 21 });
    await events.until(22, 'the live event after the replay');
    assert.deepEqual(events.got.map((d) => d.i), Array.from({ length: 22 }, (_, i) => i));
  });
});

for (const transport of ['xhr_streaming', 'xhr_polling']) {
  describe(`message recovery over ${transport}`, () => {
    let herald;
    let proxy;
    let sdk;
    const clients = [];

    before(async () => {
      herald = await startHerald({ apps: [APP] });
      proxy = new CuttableProxy(herald.port);
      await proxy.start();
      sdk = rest(herald, APP);
    });
    afterEach(() => herald?.assertAlive());
    after(async () => {
      clients.forEach((c) => c.disconnect());
      proxy?.close();
      await herald?.stop();
    });

    test(`pusher-js on ${transport} with the plugin gets exactly the 50 events published while it was away`, async () => {
      // Only the HTTP transport, through the proxy: every request of the session crosses it.
      const c = pusherClient(herald, APP, { httpHost: '127.0.0.1', httpPort: proxy.proxyPort, enabledTransports: [transport] });
      clients.push(c);
      const recovery = enableRecovery(c);
      const name = uid('history');
      const channel = await subscribed(await connected(c), name);
      assert.equal(c.connection.connection.transport.name, transport);
      const events = recorder(channel, 'ev');
      await sdk.trigger(name, 'ev', { i: 0 });
      await events.until(1, 'the first live event');
      const socketId = c.connection.socket_id;

      // Reset, not held, until pusher-js gives the session up: a held poll would simply carry
      // on in the same session once the link is back, with nothing to recover.
      const gone = lost(c);
      proxy.cut({ refuse: true });
      await gone;
      proxy.hold();
      for (let i = 1; i <= 50; i += 1) await sdk.trigger(name, 'ev', { i });
      proxy.restore();
      await events.until(51, '50 replayed events');
      assert.notEqual(c.connection.socket_id, socketId, 'a new session');
      assert.equal(c.connection.connection.transport.name, transport);
      await sdk.trigger(name, 'ev', { i: 51 });
      await events.until(52, 'the live event after the replay');
      assert.deepEqual(events.got.map((d) => d.i), Array.from({ length: 52 }, (_, i) => i));
      assert.equal(recovery.position(name)?.serial, 52);
    });
  });
}

/** `herald serve` with `args`; resolves with the child and its port once it listens. */
function serve(args) {
  const child = spawn(heraldBin(), ['serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH } });
  const stderr = [];
  createInterface({ input: child.stderr }).on('line', (l) => stderr.push(l));
  child.stderrLines = stderr;
  child.exited = new Promise((resolve) => child.once('exit', resolve));
  return withTimeout(
    new Promise((resolve, reject) => {
      createInterface({ input: child.stdout }).on('line', (line) => {
        const m = /^herald listening on 127\.0\.0\.1:(\d+)$/.exec(line.trim());
        if (m) resolve({ child, port: Number(m[1]) });
      });
      child.once('exit', (code) => reject(new Error(`herald exited (${code}): ${stderr.join('\n')}`)));
    }),
    'herald to listen',
    20000,
  );
}

describe('message recovery across restarts', () => {
  const children = [];
  let dir;
  let proxy;
  const clients = [];

  after(async () => {
    clients.forEach((c) => c.disconnect());
    proxy?.close();
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('herald serve --takeover and herald restart: nothing published meanwhile is lost', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'herald-history-'));
    const config = path.join(dir, 'herald.toml');
    writeFileSync(config, toml({
      server: { host: '127.0.0.1', port: 0, reuse_port: true, shutdown_grace: 5, pid_file: path.join(dir, 'herald.pid') },
      history: { snapshot_file: path.join(dir, 'history.json') },
      apps: [APP],
    }));
    const first = await serve(['-c', config]);
    children.push(first.child);
    const port = first.port;
    const sdk = rest({ port }, APP);
    proxy = new CuttableProxy(port);
    const proxyPort = await proxy.start();
    const c = pusherClient({ port }, APP, { wsPort: proxyPort });
    clients.push(c);
    enableRecovery(c);
    const name = uid('history');
    const channel = await subscribed(await connected(c), name);
    const events = recorder(channel, 'ev');
    await sdk.trigger(name, 'ev', { i: 0 });
    await events.until(1, 'the first live event');

    // Away while the first herald hands over to its successor.
    const gone = lost(c);
    proxy.cut();
    await gone;
    for (let i = 1; i <= 30; i += 1) await sdk.trigger(name, 'ev', { i });
    const second = await serve(['-c', config, '--port', String(port), '--takeover']);
    children.push(second.child);
    await withTimeout(first.child.exited, 'the first herald to drain and exit', 15000);
    for (let i = 31; i <= 60; i += 1) await sdk.trigger(name, 'ev', { i });
    proxy.restore();
    await events.until(61, 'the events published before and after the takeover');
    assert.deepEqual(events.got.map((d) => d.i), Array.from({ length: 61 }, (_, i) => i));
    assert.match(second.child.stderrLines.join('\n'), /history snapshot loaded/);

    // Away while `herald restart` drains the successor and a supervisor starts a third.
    const gone2 = lost(c);
    proxy.cut();
    await gone2;
    for (let i = 61; i <= 80; i += 1) await sdk.trigger(name, 'ev', { i });
    const restarted = await runHerald(['restart', '-c', config]);
    assert.equal(restarted.code, 0, restarted.stderr);
    const third = await serve(['-c', config, '--port', String(port)]);
    children.push(third.child);
    for (let i = 81; i <= 100; i += 1) await sdk.trigger(name, 'ev', { i });
    proxy.restore();
    await events.until(101, 'the events published around herald restart');
    await sdk.trigger(name, 'ev', { i: 101 });
    await events.until(102, 'a live event afterwards');
    assert.deepEqual(events.got.map((d) => d.i), Array.from({ length: 102 }, (_, i) => i));
  });
});
