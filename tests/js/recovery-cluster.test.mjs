//! Message recovery across nodes with the clients/js plugin: unmodified pusher-js subscribes on
//! node A, loses its connection (through a proxy the test cuts), the npm `pusher` SDK publishes
//! 100 events through node B, and the client comes back on node C: it gets exactly those 100,
//! in order, then live events. Three herald processes share one redis-server.

import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import { enableRecovery } from '../../clients/js/herald-recovery.mjs';
import { startHerald as launch } from '../support/herald_launcher.mjs';
import {
  APPS, CuttableProxy, connected, pusherClient, rest, startRedis, subscribed, uid, withTimeout,
} from './harness.mjs';

const APP = { ...APPS.main, history: [{ channels: 'history-*', max_messages: 1000 }] };

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
    balancer = new CuttableProxy(a.port);
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
