//! Message recovery across nodes with the clients/js plugin: unmodified pusher-js subscribes on
//! node A, loses its connection (through a proxy the test cuts), the npm `pusher` SDK publishes
//! 100 events through node B, and the client comes back on node C: it gets exactly those 100,
//! in order, then live events. Three herald processes share one redis-server.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { after, afterEach, before, describe, test } from 'node:test';

import { enableRecovery } from '../../clients/js/herald-recovery.mjs';
import { startHerald as launch } from '../support/herald_launcher.mjs';
import { APPS, connected, pusherClient, rest, subscribed, uid, withTimeout } from './harness.mjs';

const APP = { ...APPS.main, history: [{ channels: 'history-*', max_messages: 1000 }] };

/** A redis-server child on a unix socket in a fresh directory; resolves once it accepts. */
async function startRedis() {
  const dir = mkdtempSync(path.join(tmpdir(), 'herald-js-redis-'));
  const socket = path.join(dir, 'redis.sock');
  const child = spawn('redis-server', [
    '--port', '0', '--unixsocket', socket, '--save', '', '--appendonly', 'no', '--dir', dir,
  ], { stdio: ['ignore', 'pipe', 'ignore'] });
  await withTimeout(new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line.toLowerCase().includes('ready to accept connections')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`redis-server exited (${code})`)));
  }), 'redis-server to accept connections', 10000);
  return {
    url: `redis+unix://${socket}`,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The client's one address: a TCP proxy on 127.0.0.1:0 that forwards to one node at a time.
 * `cut()` drops its connections and holds new ones; `to(port)` sends what comes next to another
 * node, as a load balancer does when a client reconnects.
 */
class Balancer {
  constructor(port) {
    this.upstream = port;
    this.down = false;
    this.held = [];
    this.sockets = new Set();
  }

  async start() {
    this.server = net.createServer((client) => {
      client.on('error', () => client.destroy());
      if (this.down) {
        this.held.push(client);
        return;
      }
      this.pipe(client);
    });
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return this.server.address().port;
  }

  pipe(client) {
    const upstream = net.connect(this.upstream, '127.0.0.1');
    for (const [a, b] of [[client, upstream], [upstream, client]]) {
      this.sockets.add(a);
      a.on('error', () => b.destroy());
      a.on('close', () => {
        this.sockets.delete(a);
        b.destroy();
      });
      a.pipe(b);
    }
  }

  cut() {
    this.down = true;
    for (const s of this.sockets) s.destroy();
  }

  to(port) {
    this.upstream = port;
    this.down = false;
    for (const client of this.held.splice(0)) if (!client.destroyed) this.pipe(client);
  }

  close() {
    this.cut();
    for (const client of this.held.splice(0)) client.destroy();
    this.server.close();
  }
}

/** Resolves once the client noticed its connection is gone. */
function lost(client) {
  return withTimeout(new Promise((resolve) => {
    const onChange = ({ current }) => {
      if (current !== 'connected') {
        client.connection.unbind('state_change', onChange);
        resolve();
      }
    };
    client.connection.bind('state_change', onChange);
  }), 'pusher-js to notice the cut');
}

describe('message recovery across nodes', () => {
  let redis;
  let nodes;
  let balancer;
  const clients = [];

  before(async () => {
    redis = await startRedis();
    nodes = [];
    for (let i = 0; i < 3; i += 1) {
      nodes.push(await launch({ config: { apps: [APP], scale_out: { redis_url: redis.url, prefix: 'jsr' } } }));
    }
  });
  afterEach(() => nodes.forEach((n) => n.assertAlive()));
  after(async () => {
    clients.forEach((c) => c.disconnect());
    balancer?.close();
    for (const n of nodes ?? []) await n.stop();
    await redis?.stop();
  });

  test('subscribed on A, away while B publishes 100, back on C: exactly the 100, in order', async () => {
    const [a, b, c] = nodes;
    balancer = new Balancer(a.port);
    const port = await balancer.start();
    const client = pusherClient(a, APP, { wsPort: port });
    clients.push(client);
    const recovery = enableRecovery(client);
    const failures = [];
    const name = uid('history-orders');
    const channel = await subscribed(await connected(client), name);
    channel.bind('pusher:recovery_failed', (f) => failures.push(f));
    const got = [];
    const waiters = [];
    channel.bind('ev', (data) => {
      got.push(data.i);
      for (const w of waiters.filter((w) => got.length >= w.n)) w.resolve();
    });
    const until = (n, what) => withTimeout(
      new Promise((resolve) => (got.length >= n ? resolve() : waiters.push({ n, resolve }))), what, 15000,
    );
    const sdkB = rest(b, APP);
    await sdkB.trigger(name, 'ev', { i: 0 });
    await until(1, 'the first event, published on B, on A');
    assert.equal(recovery.position(name)?.serial, 1);

    const gone = lost(client);
    balancer.cut();
    await gone;
    for (let i = 1; i <= 100; i += 1) await sdkB.trigger(name, 'ev', { i });
    balancer.to(c.port);
    await until(101, 'the 100 events published while away, replayed by C');
    await rest(a, APP).trigger(name, 'ev', { i: 101 });
    await until(102, 'a live event after the replay');
    assert.deepEqual(got, Array.from({ length: 102 }, (_, i) => i));
    assert.deepEqual(failures, []);
    assert.equal(recovery.position(name)?.serial, 102);
  });
});
