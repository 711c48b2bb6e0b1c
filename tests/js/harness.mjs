//! Test harness for the client suites: starts a real herald process on 127.0.0.1:0, builds
//! pusher-js / laravel-echo / SDK clients pointed at it, and offers event-driven waits.
//!
//! Nothing here sleeps to synchronise: every wait is a promise that settles on an event or
//! rejects after a timeout with a message saying what was awaited.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';

import autobahn from 'autobahn';
import Pusher from 'pusher-js';
import PusherServer from 'pusher';
import WebSocket from 'ws';

import { runHerald, startHerald as launch } from '../support/herald_launcher.mjs';
import { apiQuery } from '../support/pusher_sign.mjs';

export { runHerald };

/** Default time any single wait may take before the test fails. */
export const WAIT_MS = 5000;

/** Encryption master key shared by the SDK (server side) in the encrypted-channel tests. */
export const MASTER_KEY_BASE64 = randomBytes(32).toString('base64');

/** The apps every suite's herald serves; each exercises one configuration switch. */
export const APPS = {
  /** Everything a feature test needs switched on, limits at their defaults. */
  main: {
    id: '1001', key: 'main-key', secret: 'main-4e8a2c6f0b1d3957',
    enable_client_messages: true, enable_user_authentication: true,
  },
  /** Client events and user authentication off (the defaults). */
  quiet: { id: '1002', key: 'quiet-key', secret: 'quiet-1b5d9f3a7c0e2468' },
  /** Switched off: sockets are refused with 4003, HTTP with 403. */
  disabled: { id: '1003', key: 'disabled-key', secret: 'disabled-6c0e4a8f2b1d3579', enabled: false },
  /** Room for two sockets only. */
  limited: { id: '1004', key: 'limited-key', secret: 'limited-3f7b1d5a9e0c2486', max_connections: 2 },
  /** Pings after one idle second and gives up one second later. */
  impatient: {
    id: '1005', key: 'impatient-key', secret: 'impatient-8a2c6e0f4b1d3957',
    activity_timeout: 1, pong_timeout: 1,
  },
  /** Sends pusher_internal:subscription_count events. */
  counted: {
    id: '1006', key: 'counted-key', secret: 'counted-5d9f3b7a1c0e2468', enable_subscription_count: true,
  },
  /** Tight per-app limits, to show they are configurable. */
  small: {
    id: '1007', key: 'small-key', secret: 'small-2e6a0c4f8b1d3579',
    max_presence_members: 2, max_presence_user_info_bytes: 64, max_event_data_bytes: 100,
    max_message_bytes: 1024,
  },
};

/** Every socket close code any client saw in this process, for the "never 43xx" check. */
export const closeCodesSeen = [];

/** Cleanups registered by clients created in the current process. */
const liveClients = new Set();

/**
 * Starts herald on 127.0.0.1:0 (tests/support/herald_launcher.mjs) and resolves once it printed
 * its listening lines: the main one, and one per entry of `listeners`.
 *
 * `apps`: app tables written to a temporary TOML config (`null` = no `--config` at all).
 * `listeners`: `[[listeners]]` tables of that config. `env`: extra environment; PUSHER_*
 * variables of the caller's environment are never inherited.
 */
export async function startHerald({ apps = Object.values(APPS), listeners = [], env = {}, extraArgs = [] } = {}) {
  const config = apps === null ? null : { apps, ...(listeners.length > 0 ? { listeners } : {}) };
  const herald = await launch({ config, env, extraArgs, listeners: 1 + listeners.length });
  herald.apps = apps;
  herald.wsUrl = (key, query = 'protocol=7&client=js&version=8.6.0&flash=false') =>
    `ws://127.0.0.1:${herald.port}/app/${key}${query === '' ? '' : `?${query}`}`;
  // The clients of this process go first, so none of them sees the shutdown as a failure.
  herald.beforeStop.push(() => {
    for (const close of [...liveClients]) close();
  });
  return herald;
}

/**
 * A queue of things that happened (messages, events), with waits that consume the first
 * unconsumed matching entry, whether it arrived before or after the wait started.
 */
export class Inbox {
  constructor(label) {
    this.label = label;
    this.items = [];
    this.consumed = new Set();
    this.waiters = [];
  }

  push(item) {
    this.items.push(item);
    const index = this.items.length - 1;
    for (const waiter of [...this.waiters]) {
      if (!this.consumed.has(index) && waiter.pred(item)) {
        this.consumed.add(index);
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        clearTimeout(waiter.timer);
        waiter.resolve(item);
      }
    }
  }

  /** All items seen so far (consumed or not) that match `pred`. */
  all(pred = () => true) {
    return this.items.filter(pred);
  }

  /** Resolves with the first unconsumed item matching `pred`; rejects after `timeout` ms. */
  next(pred = () => true, { timeout = WAIT_MS, what = 'a matching item' } = {}) {
    const index = this.items.findIndex((item, i) => !this.consumed.has(i) && pred(item));
    if (index >= 0) {
      this.consumed.add(index);
      return Promise.resolve(this.items[index]);
    }
    return new Promise((resolve, reject) => {
      const waiter = { pred, resolve };
      waiter.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        const seen = this.items.map((x) => JSON.stringify(x)).slice(-10).join('\n  ');
        reject(new Error(`timed out after ${timeout} ms waiting for ${what} on ${this.label}; last seen:\n  ${seen || '(nothing)'}`));
      }, timeout);
      this.waiters.push(waiter);
    });
  }
}

/** Rejects after `ms` with a message naming `what`, else settles like `promise`. */
export function withTimeout(promise, what, ms = WAIT_MS) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Collects events of autobahn-js subscriptions as `{args, kwargs, details}`. */
export function eventInbox(label) {
  const inbox = new Inbox(label);
  inbox.handler = (args, kwargs, details) => inbox.push({ args, kwargs, details });
  return inbox;
}

/** Awaits a promise that must reject with an autobahn.Error; returns that error. */
export async function rejectsWith(promise, what) {
  let result;
  try {
    result = await withTimeout(promise, what);
  } catch (err) {
    if (err instanceof autobahn.Error) return err;
    throw err;
  }
  assert.fail(`${what}: expected an ERROR, got ${JSON.stringify(result)}`);
  return undefined;
}

/**
 * A raw WebSocket client (the `ws` package) that records every frame it receives.
 * Use it where a real client library would hide what the server sent.
 */
export class RawClient {
  constructor(url, wsOptions = {}) {
    this.url = url;
    this.messages = new Inbox(`raw socket ${url}`);
    this.texts = [];
    this.pings = new Inbox(`WebSocket pings on ${url}`);
    this.ws = new WebSocket(url, wsOptions);
    this.closeInfo = null;
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('unexpected-response', (_req, res) => {
        reject(new Error(`${url}: HTTP ${res.statusCode} instead of a WebSocket upgrade`));
      });
      this.ws.once('error', (err) => reject(new Error(`${url}: ${err.message}`)));
      this.ws.once('close', (code, reason) => reject(new Error(`${url}: closed with ${code} ${reason} before opening`)));
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        closeCodesSeen.push({ code, url });
        liveClients.delete(this.cleanup);
        resolve(this.closeInfo);
      });
    });
    this.ws.on('error', () => {});
    this.ws.on('ping', (data) => this.pings.push({ kind: 'ws', data }));
    this.ws.on('message', (data, isBinary) => {
      const text = data.toString('utf8');
      this.texts.push(text);
      let parsed;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = { unparsable: text, isBinary };
      }
      if (parsed && typeof parsed.data === 'string') {
        try {
          parsed.decoded = JSON.parse(parsed.data);
        } catch {
          parsed.decoded = parsed.data;
        }
      } else if (parsed) {
        parsed.decoded = parsed.data;
      }
      if (parsed && parsed.event === 'pusher:ping') this.pings.push({ kind: 'pusher', data: parsed });
      this.messages.push(parsed);
    });
    this.cleanup = () => this.terminate();
    liveClients.add(this.cleanup);
  }

  /** Opens and resolves with the decoded `pusher:connection_established` data. */
  static async connect(url, wsOptions) {
    const client = new RawClient(url, wsOptions);
    await withTimeout(client.opened, `${url} to open`);
    const msg = await client.next('pusher:connection_established');
    client.socketId = msg.decoded.socket_id;
    return client;
  }

  /** Resolves with the next message whose event is `event` (and that matches `pred`). */
  next(event, pred = () => true, timeout = WAIT_MS) {
    return this.messages.next((m) => m && m.event === event && pred(m), { timeout, what: event });
  }

  /** Resolves with `{code, reason}` when the socket closes; rejects after `timeout`. */
  waitClose(timeout = WAIT_MS) {
    return withTimeout(this.closed, `${this.url} to close`, timeout);
  }

  send(obj) {
    this.ws.send(JSON.stringify(obj));
  }

  sendRaw(payload, options = {}) {
    this.ws.send(payload, options);
  }

  /** Stops reading from the socket (the kernel buffers fill, then the server's outbox). */
  pause() {
    this.ws.pause();
  }

  resume() {
    this.ws.resume();
  }

  /** Subscribes and resolves with the subscription_succeeded message. */
  async subscribe(channel, extra = {}) {
    this.send({ event: 'pusher:subscribe', data: { channel, ...extra } });
    return this.next('pusher_internal:subscription_succeeded', (m) => m.channel === channel);
  }

  /** Sends pusher:ping and resolves with the pusher:pong. */
  async ping() {
    this.send({ event: 'pusher:ping', data: {} });
    return this.next('pusher:pong');
  }

  get isOpen() {
    return this.ws.readyState === WebSocket.OPEN;
  }

  terminate() {
    liveClients.delete(this.cleanup);
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
  }
}

/** The npm `pusher` server SDK configured for `app` on this herald. */
export function rest(herald, app, extra = {}) {
  return new PusherServer({
    appId: app.id,
    key: app.key,
    secret: app.secret,
    host: '127.0.0.1',
    port: String(herald.port),
    useTLS: false,
    encryptionMasterKeyBase64: MASTER_KEY_BASE64,
    ...extra,
  });
}

/**
 * pusher-js `channelAuthorization` whose customHandler signs with the npm SDK's
 * `authorizeChannel`, as an app's auth endpoint would. `presence(channel)` gives the
 * presence data ({user_id, user_info}) for presence channels.
 */
export function sdkChannelAuthorization(sdk, presence = () => ({ user_id: 'anonymous' })) {
  return {
    customHandler: ({ socketId, channelName }, callback) => {
      try {
        const data = channelName.startsWith('presence-') ? presence(channelName) : undefined;
        callback(null, sdk.authorizeChannel(socketId, channelName, data));
      } catch (err) {
        callback(err, null);
      }
    },
  };
}

/** pusher-js `userAuthentication` whose customHandler signs `userData` with the npm SDK. */
export function sdkUserAuthentication(sdk, userData) {
  return {
    customHandler: ({ socketId }, callback) => {
      try {
        callback(null, sdk.authenticateUser(socketId, userData));
      } catch (err) {
        callback(err, null);
      }
    },
  };
}

/**
 * A pusher-js 8 client (node build) for `app` on this herald. Adds two inboxes:
 * `client.closes` (close codes, told apart from pusher:error messages) and
 * `client.errors` (pusher:error messages).
 */
export function pusherClient(herald, app, options = {}) {
  const client = new Pusher(app.key, {
    cluster: 'mt1',
    wsHost: '127.0.0.1',
    wsPort: herald.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    ...options,
  });
  instrumentPusher(client, `pusher-js(${app.key})`);
  return client;
}

/** Records close codes and pusher:error messages of a pusher-js client. */
export function instrumentPusher(client, label) {
  client.closes = new Inbox(`${label} closes`);
  client.errors = new Inbox(`${label} pusher:error messages`);
  let errorMessages = 0;
  client.connection.bind('message', (m) => {
    if (m.event === 'pusher:error') {
      errorMessages += 1;
      client.errors.push(m.data);
    }
  });
  // pusher-js reports both a pusher:error message and a close code as an 'error' event of the
  // same shape; a message is always followed, in the same turn, by its 'message' event.
  client.connection.bind('error', (e) => {
    const code = e && e.data && e.data.code;
    if (typeof code !== 'number') return;
    const before = errorMessages;
    queueMicrotask(() => {
      if (errorMessages === before) {
        closeCodesSeen.push({ code, url: label });
        client.closes.push({ code, message: e.data.message });
      }
    });
  });
  // After a close from the server, pusher-js closes its node WebSocket (faye) a second time,
  // which arms a 30 s timer nothing clears: unreferenced, it no longer keeps a finished test
  // file's process alive.
  let socket;
  client.connection.bind('state_change', ({ current }) => {
    if (current === 'connected') socket = client.connection.connection?.transport?.socket;
    if (current === 'disconnected') socket?._closeTimer?.unref?.();
  });
  const cleanup = () => client.disconnect();
  liveClients.add(cleanup);
  const disconnect = client.disconnect.bind(client);
  client.disconnect = () => {
    liveClients.delete(cleanup);
    disconnect();
  };
  return client;
}

/** Resolves once a pusher-js client is `connected`; rejects if it fails or times out. */
export function connected(client, timeout = WAIT_MS) {
  if (client.connection.state === 'connected') return Promise.resolve(client);
  return new Promise((resolve, reject) => {
    const onChange = ({ current }) => {
      if (current === 'connected') {
        done();
        resolve(client);
      } else if (current === 'failed' || current === 'unavailable') {
        done();
        reject(new Error(`pusher-js went ${current} instead of connected`));
      }
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`pusher-js not connected after ${timeout} ms (state ${client.connection.state})`));
    }, timeout);
    const done = () => {
      clearTimeout(timer);
      client.connection.unbind('state_change', onChange);
    };
    client.connection.bind('state_change', onChange);
  });
}

/** Resolves with the first emission of `event` on a pusher-js emitter (channel, client, connection). */
export function once(emitter, event, { timeout = WAIT_MS, filter = () => true } = {}) {
  return new Promise((resolve, reject) => {
    const fn = (data, meta) => {
      if (!filter(data, meta)) return;
      clearTimeout(timer);
      emitter.unbind(event, fn);
      resolve(data);
    };
    const timer = setTimeout(() => {
      emitter.unbind(event, fn);
      reject(new Error(`timed out after ${timeout} ms waiting for ${event}`));
    }, timeout);
    emitter.bind(event, fn);
  });
}

/** Collects every emission of `event` on a pusher-js emitter as `{data, meta}` in an Inbox. */
export function collect(emitter, event) {
  const inbox = new Inbox(event);
  emitter.bind(event, (data, meta) => inbox.push({ data, meta }));
  return inbox;
}

/** Subscribes a pusher-js client and resolves with the channel once subscription succeeded. */
export function subscribed(client, name, timeout = WAIT_MS) {
  const channel = client.subscribe(name);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      finish();
      reject(new Error(`subscription to ${name} did not succeed within ${timeout} ms`));
    }, timeout);
    const ok = () => {
      finish();
      resolve(channel);
    };
    const failed = (status) => {
      finish();
      reject(new Error(`subscription to ${name} failed: ${JSON.stringify(status)}`));
    };
    const finish = () => {
      clearTimeout(timer);
      channel.unbind('pusher:subscription_succeeded', ok);
      channel.unbind('pusher:subscription_error', failed);
    };
    if (channel.subscribed) ok();
    else {
      channel.bind('pusher:subscription_succeeded', ok);
      channel.bind('pusher:subscription_error', failed);
    }
  });
}

/**
 * Whether the HTTP API serves `app`: its channel list answers 200, an unknown app id 404 (any
 * other failure is thrown). For changes that herald applies after the fact (a reload, an app
 * store's refresh).
 */
export async function served(herald, app) {
  try {
    await rest(herald, app).get({ path: '/channels' });
    return true;
  } catch (err) {
    if (err.status === 404) return false;
    throw err;
  }
}

/**
 * Polls `check` (a condition herald reaches on its own time, such as a reload after its signal)
 * every 20 ms until it resolves true; rejects after `ms` with `what` (a string, or a function
 * called then, for a message that shows the state at the deadline).
 */
export async function eventually(check, what, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${typeof what === 'function' ? what() : what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Sends an HTTP API request signed by hand (so tests can forge any part of it).
 *
 * `body`: raw string. `timestamp`: unix seconds. Overrides: `bodyMd5`, `signature`,
 * `key`, `secret`. Resolves `{status, text, json}`.
 */
export async function signedFetch(herald, app, {
  method = 'GET', path: reqPath, query = {}, body, timestamp = Math.floor(Date.now() / 1000),
  bodyMd5, signature, key = app.key, secret = app.secret,
} = {}) {
  const qs = apiQuery(method, reqPath, { query, body, key, secret, timestamp, bodyMd5, signature });
  const res = await fetch(`${herald.httpBase}${reqPath}?${qs}`, {
    method,
    body,
    headers: body !== undefined ? { 'content-type': 'application/json' } : {},
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json };
}

/** The human-readable message of an HTTP error body (JSON `error`/`message`, else the text). */
export function errorMessage(response) {
  if (response.json && typeof response.json === 'object') {
    const m = response.json.error ?? response.json.message;
    if (typeof m === 'string') return m;
  }
  return response.text;
}

/** A unique channel-name suffix, so tests sharing a herald never see each other's traffic. */
let counter = 0;
export function uid(prefix = 'ch') {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}`;
}

/**
 * A TCP proxy on 127.0.0.1:0 in front of herald's `port` whose connections a test can cut:
 * `cut()` drops every proxied connection and holds new ones until `restore()`, so a client's
 * reconnection completes as soon as the link is back. `start()` resolves with the proxy's port
 * (also `proxy.proxyPort`).
 */
export class CuttableProxy {
  constructor(port) {
    this.port = port;
    this.down = false;
    this.held = [];
    this.sockets = new Set();
  }

  async start() {
    this.server = net.createServer((client) => {
      if (this.down && this.refusing) {
        client.destroy();
        return;
      }
      if (this.down) {
        // Held, not refused: the client's next attempt completes as soon as the link is back,
        // instead of backing off for seconds.
        this.held.push(client);
        client.on('error', () => client.destroy());
        return;
      }
      this.pipe(client);
    });
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.proxyPort = this.server.address().port;
    return this.proxyPort;
  }

  pipe(client) {
    const upstream = net.connect(this.port, '127.0.0.1');
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

  /**
   * Drops every proxied connection and holds new ones until `restore()`. With `refuse`, new
   * connections are reset instead until `hold()`: an HTTP polling client whose next poll would
   * otherwise just wait (and then carry on in the same session) sees its session fail.
   */
  cut({ refuse = false } = {}) {
    this.down = true;
    this.refusing = refuse;
    for (const s of this.sockets) s.destroy();
  }

  /** While cut, holds new connections again instead of resetting them. */
  hold() {
    this.refusing = false;
  }

  /** Sends what comes next to `port` (another node), as a load balancer does on a reconnect. */
  to(port) {
    this.port = port;
    this.restore();
  }

  restore() {
    this.down = false;
    this.refusing = false;
    for (const client of this.held.splice(0)) if (!client.destroyed) this.pipe(client);
  }

  close() {
    this.cut();
    for (const client of this.held.splice(0)) client.destroy();
    this.server.close();
  }
}

/** A redis-server child on a unix socket in a fresh directory; resolves once it accepts. */
export async function startRedis() {
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
