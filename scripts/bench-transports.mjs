#!/usr/bin/env node
// Sessions over each transport side by side: idle memory per session and delivery rate for
// WebSocket, pusher-js's xhr_streaming and Server-Sent Events, one fresh herald per transport.
//
//   node scripts/bench-transports.mjs [--sessions 1000] [--events 50] [--transports ws,xhr_streaming,sse]
//                                     [--history]
//
// Each run opens --sessions sessions subscribed to one channel, waits until herald counts them
// all, and reads herald's RSS: (RSS - RSS before) / sessions is the idle memory per session. Then
// --events HTTP API publishes (10 per batch request) go to every session; the run ends when every
// session counted every event. The generator is one Node.js thread on the same machine, so the
// wall-clock rate measures it as much as herald: `per_cpu_s` (deliveries per second of herald's
// own CPU, utime + stime from /proc) is the server's figure to compare. --history gives the
// channel a history (`[[apps.history]] channels = "*"`), so every frame carries its position.
// Prints one JSON line per transport. HERALD_BIN picks the binary (default target/release/herald).

import http from 'node:http';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';

import { ROOT, startHerald } from '../tests/support/herald_launcher.mjs';
import { apiQuery } from '../tests/support/pusher_sign.mjs';

const { values } = parseArgs({
  options: {
    sessions: { type: 'string', default: '1000' },
    events: { type: 'string', default: '50' },
    transports: { type: 'string', default: 'ws,xhr_streaming,sse' },
    history: { type: 'boolean', default: false },
  },
});
const sessions = Number(values.sessions);
const events = Number(values.events);
process.env.HERALD_BIN ??= path.join(ROOT, 'target', 'release', 'herald');

const app = { id: 'bench', key: 'bench-key', secret: 'bench-transport-secret-0123456789' };
const CHANNEL = 'bench';
const EVENT = 'bench-ev';

const rssKiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
/** herald's CPU seconds so far (utime + stime; clock ticks of 100 Hz). */
const cpuSeconds = (pid) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
};

/** Counts EVENT markers in a byte stream, across chunk boundaries. */
class Counter {
  constructor(marker) {
    this.marker = marker;
    this.got = 0;
    this.carry = '';
  }

  feed(chunk) {
    const text = this.carry + chunk;
    let at = text.indexOf(this.marker);
    while (at !== -1) {
      this.got += 1;
      at = text.indexOf(this.marker, at + this.marker.length);
    }
    this.carry = text.slice(-(this.marker.length - 1));
  }
}

function request(port, options, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, agent: false, ...options }, resolve);
    req.on('error', reject);
    req.end(body);
  });
}

async function signed(port, method, reqPath, query = {}, body = undefined) {
  const qs = apiQuery(method, reqPath, { query, body, key: app.key, secret: app.secret, timestamp: Math.floor(Date.now() / 1000) });
  const res = await request(port, { method, path: `${reqPath}?${qs}`, headers: { 'content-type': 'application/json' } }, body);
  const chunks = [];
  for await (const c of res) chunks.push(c);
  if (res.statusCode !== 200) throw new Error(`${method} ${reqPath}: ${res.statusCode} ${Buffer.concat(chunks)}`);
  return JSON.parse(Buffer.concat(chunks).toString() || '{}');
}

/** Opens one session of `transport`, subscribed to CHANNEL; returns its counter and closer. */
async function open(transport, port, i) {
  const subscribe = JSON.stringify({ event: 'pusher:subscribe', data: { channel: CHANNEL } });
  if (transport === 'ws') {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/app/${app.key}?protocol=7&client=js&version=8.6.0`);
    const counter = new Counter(`"${EVENT}"`);
    await new Promise((resolve, reject) => {
      ws.once('error', reject);
      ws.on('message', (m) => {
        const text = String(m);
        if (text.includes('connection_established')) ws.send(subscribe);
        if (text.includes('subscription_succeeded')) resolve();
        counter.feed(text);
      });
    });
    return { counter, close: () => ws.terminate() };
  }
  if (transport === 'xhr_streaming') {
    const base = `/pusher/app/${app.key}/${i % 1000}/b${i}`;
    const res = await request(port, { method: 'POST', path: `${base}/xhr_streaming?protocol=7&client=js&version=8.6.0` });
    const counter = new Counter(`\\"${EVENT}\\"`);
    res.setEncoding('utf8');
    const established = new Promise((resolve) => {
      res.on('data', (d) => {
        if (d.includes('connection_established')) resolve();
        counter.feed(d);
      });
    });
    await established;
    const sent = await request(port, { method: 'POST', path: `${base}/xhr_send` }, JSON.stringify([subscribe]));
    sent.resume();
    return { counter, close: () => res.destroy() };
  }
  if (transport === 'sse') {
    const res = await request(port, { method: 'GET', path: `/apps/${app.key}/events?channels=${CHANNEL}` });
    const counter = new Counter(`event: ${EVENT}\n`);
    res.setEncoding('utf8');
    res.on('data', (d) => counter.feed(d));
    return { counter, close: () => res.destroy() };
  }
  throw new Error(`unknown transport ${transport}`);
}

async function run(transport) {
  const config = { apps: [{ ...app, max_connections: sessions * 2 }] };
  if (values.history) config.apps[0].history = [{ channels: '*', max_messages: 1000 }];
  const herald = await startHerald({ config });
  const pid = herald.child.pid;
  try {
    const before = rssKiB(pid);
    const opened = [];
    for (let i = 0; i < sessions; i++) opened.push(await open(transport, herald.port, i));
    const info = `/apps/${app.id}/channels/${CHANNEL}`;
    for (;;) {
      const c = await signed(herald.port, 'GET', info, { info: 'subscription_count' });
      if (c.subscription_count === sessions) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const idle = rssKiB(pid) - before;
    const cpu0 = cpuSeconds(pid);
    const t0 = process.hrtime.bigint();
    for (let e = 0; e < events; e += 10) {
      const batch = [];
      for (let k = e; k < Math.min(events, e + 10); k++) batch.push({ channel: CHANNEL, name: EVENT, data: JSON.stringify({ k }) });
      await signed(herald.port, 'POST', `/apps/${app.id}/batch_events`, {}, JSON.stringify({ batch }));
    }
    const want = sessions * events;
    const total = () => opened.reduce((n, s) => n + s.counter.got, 0);
    const deadline = Date.now() + 120_000;
    while (total() < want && Date.now() < deadline) await new Promise((r) => setImmediate(r));
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = cpuSeconds(pid) - cpu0;
    const got = total();
    const result = {
      transport,
      history: values.history,
      sessions,
      idle_kib_per_session: Number((idle / sessions).toFixed(2)),
      deliveries: got,
      expected: want,
      seconds: Number(secs.toFixed(3)),
      per_s: Math.round(got / secs),
      herald_cpu_s: Number(cpu.toFixed(2)),
      per_cpu_s: cpu > 0 ? Math.round(got / cpu) : null,
    };
    console.log(JSON.stringify(result));
    opened.forEach((s) => s.close());
  } finally {
    await herald.stop();
  }
}

for (const t of values.transports.split(',')) await run(t);
process.exit(0);
