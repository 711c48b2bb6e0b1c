#!/usr/bin/env node
// Webhook throughput to a local receiver: client events on private channels, each one a
// `client_event` webhook, posted in batches to an HTTP receiver in this process that checks
// every signature. Prints one JSON line: events/s and requests/s delivered, and herald's CPU.
//
//   node scripts/bench-webhooks.mjs [--conns 8] [--events 5000] [--rate 20000] [--batch-ms 0]
//                                    [--batch-max 50] [--redis redis+unix:///path.sock]
//
// --events is per connection; --rate is client events per second, all connections together
// (paced in 10 ms ticks). Sent faster than the endpoint takes them, what does not fit the
// bounded queues is dropped (and counted by herald): compare `received` with `events`. The rate
// is the receiver's, from its first event to its last; the run ends once nothing came for 2 s.
// With --redis, herald runs as a node of a cluster on that Redis:
// the events then go through the app's webhook stream in Redis and back (sent once per
// cluster). HERALD_BIN picks the binary (default target/release/herald).

import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';

import { ROOT, startHerald } from '../tests/support/herald_launcher.mjs';
import { channelAuth, hmacHex } from '../tests/support/pusher_sign.mjs';

const { values } = parseArgs({
  options: {
    conns: { type: 'string', default: '8' },
    events: { type: 'string', default: '5000' },
    rate: { type: 'string', default: '20000' },
    'batch-ms': { type: 'string', default: '0' },
    'batch-max': { type: 'string', default: '50' },
    redis: { type: 'string' },
  },
});
const conns = Number(values.conns);
const perConn = Number(values.events);
const total = conns * perConn;
process.env.HERALD_BIN ??= path.join(ROOT, 'target', 'release', 'herald');

const app = { id: 'bench', key: 'bench-key', secret: 'bench-webhook-secret-0123456789' };

// The receiver: counts events, refuses nothing, checks each signature as a backend would.
let received = 0;
let requests = 0;
let badSignatures = 0;
let first = null;
let last = null;
const receiver = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    if (req.headers['x-pusher-signature'] !== hmacHex(app.secret, body)) badSignatures += 1;
    requests += 1;
    received += JSON.parse(body).events.length;
    last = process.hrtime.bigint();
    first ??= last;
    res.end('{}');
  });
});
await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
const hookUrl = `http://127.0.0.1:${receiver.address().port}/hooks`;

const config = {
  apps: [
    {
      ...app,
      enable_client_messages: true,
      max_client_events_per_second: 1000000,
      webhook_batch_ms: Number(values['batch-ms']),
      webhook_batch_max: Number(values['batch-max']),
      webhooks: [{ url: hookUrl, event_types: ['client_event'] }],
    },
  ],
};
if (values.redis) config.scale_out = { redis_url: values.redis, prefix: `bench${process.pid}` };
const herald = await startHerald({ config });

/** CPU seconds of herald so far (utime + stime). */
function cpuSeconds() {
  const stat = readFileSync(`/proc/${herald.child.pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** A client subscribed to its own private channel, ready to send. */
async function client(i) {
  const ws = new WebSocket(`ws://127.0.0.1:${herald.port}/app/${app.key}?protocol=7&client=js&version=8.6.0`);
  const next = () => new Promise((resolve) => ws.once('message', (m) => resolve(JSON.parse(m))));
  const hello = await next();
  const socketId = JSON.parse(hello.data).socket_id;
  const channel = `private-bench-${i}`;
  ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel, auth: channelAuth(app, socketId, channel) } }));
  for (;;) {
    const m = await next();
    if (m.event === 'pusher_internal:subscription_succeeded') break;
  }
  return { ws, channel };
}

const clients = await Promise.all(Array.from({ length: conns }, (_, i) => client(i)));
const cpu0 = cpuSeconds();
const t0 = process.hrtime.bigint();
await Promise.all(
  clients.map(async ({ ws, channel }) => {
    const frame = JSON.stringify({ event: 'client-tick', channel, data: { n: 1, text: 'x'.repeat(64) } });
    const perTick = Math.max(1, Math.round(Number(values.rate) / conns / 100));
    const start = Date.now();
    for (let n = 0, tick = 0; n < perConn; tick += 1) {
      for (let k = 0; k < perTick && n < perConn; k += 1, n += 1) ws.send(frame);
      const due = start + (tick + 1) * 10;
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - Date.now())));
    }
  }),
);
const sent = Number(process.hrtime.bigint() - t0) / 1e9;
// Until the receiver has been idle for 2 s (or 120 s in all).
for (let waited = 0; waited < 120000; waited += 100) {
  await new Promise((resolve) => setTimeout(resolve, 100));
  if (last !== null && Number(process.hrtime.bigint() - last) / 1e6 > 2000) break;
}
const seconds = last === null ? 0 : Number(last - first) / 1e9;
const cpu = cpuSeconds() - cpu0;
for (const { ws } of clients) ws.terminate();
await herald.stop();
receiver.close();
console.log(
  JSON.stringify({
    scenario: 'webhooks',
    mode: values.redis ? 'redis' : 'one node',
    conns,
    events: total,
    received,
    bad_signatures: badSignatures,
    sent_in_s: Number(sent.toFixed(3)),
    delivering_s: Number(seconds.toFixed(3)),
    events_per_s: Math.round(received / seconds),
    requests_per_s: Math.round(requests / seconds),
    herald_cpu_s: Number(cpu.toFixed(2)),
  }),
);
