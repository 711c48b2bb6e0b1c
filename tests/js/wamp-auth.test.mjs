//! WAMP v2 authentication and authorization with autobahn-js over `wamp.2.json` and
//! `wamp.2.msgpack`: anonymous, ticket, WAMP-CRA (plain and salted) and WAMP-Cryptosign against
//! static principals and a dynamic authenticator (an HTTP backend in this process on
//! 127.0.0.1:0), role refusals, the per-session publish rate, realms off unless `wamp = true`, and
//! Pusher private/presence channels opened to WAMP by a role or by `herald.pusher.authorize`.
//! A replayed AUTHENTICATE is sent by a raw WAMP client (`ws`), which a real client never does.

import assert from 'node:assert/strict';
import { generateKeyPairSync, sign as edSign } from 'node:crypto';
import { createServer } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { after, afterEach, before, describe, test } from 'node:test';

import autobahn from 'autobahn';
import WebSocket from 'ws';

import {
  eventInbox, Inbox, RawClient, rejectsWith, rest, startHerald, uid, withTimeout, WAIT_MS,
} from './harness.mjs';
import { Aborted, closePeers, openSession } from '../support/wamp_session.mjs';
import { channelAuth, hmacHex } from '../support/pusher_sign.mjs';

globalThis.WebSocket ??= WebSocket;
if (!process.env.AUTOBAHN_DEBUG) autobahn.log.warn = () => {};

const SUITE_MS = 180000;
const NOT_AUTHORIZED = 'wamp.error.not_authorized';
const SOCKET_ID = /^\d+\.\d+$/;

// --- credentials ---------------------------------------------------------------------------------

/** An Ed25519 key pair as tweetnacl (used by autobahn-js) holds it: secretKey = seed || public key. */
function ed25519() {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  const seed = Buffer.from(jwk.d, 'base64url');
  const pub = Buffer.from(jwk.x, 'base64url');
  return {
    publicKey: new Uint8Array(pub),
    secretKey: new Uint8Array(Buffer.concat([seed, pub])),
    hex: pub.toString('hex'),
    nodeKey: privateKey,
    nodePublic: publicKey,
  };
}

const TICKET_ALICE = 'alice-ticket-js-3e9b1c7d';
const TICKET_READER = 'reader-ticket-js-6a0f2d84';
const CRA_BOB = 'bob-cra-js-key-8d2e4f61';
const CRA_CAROL = 'carol-cra-js-key-1c9a5b37';
const CAROL = { salt: 'carol-js-salt', iterations: 100, keylen: 32 };
const DAVE = ed25519();
const STRANGER = ed25519();
const DYN_TICKET = 'dyn-js-ticket-5f0c8e2a';
const DYN_CRA = 'dyn-js-cra-key-b74d1e09';
const DYN_CRA_SALTED = 'dyn-js-cra-salted-2a6f9c13';
const DYN_SALTING = { salt: 'dyn-js-salt', iterations: 150, keylen: 32 };
const DYN_CS = ed25519();

// --- apps ----------------------------------------------------------------------------------------

const ROLES = [
  {
    name: 'backend',
    permissions: [
      { uri: 'com.auth.', match: 'prefix', allow: { subscribe: true, publish: true, register: true, call: true } },
      { uri: 'private-granted-', match: 'prefix', allow: { subscribe: true } },
      { uri: 'presence-granted-', match: 'prefix', allow: { subscribe: true } },
    ],
  },
  { name: 'reader', permissions: [{ uri: 'com.auth.', match: 'prefix', allow: { subscribe: true } }] },
];

const ANON = { id: '6100', key: 'js-auth-anon-key', secret: 'js-anon-4b8e2c6a0d1f3957', wamp: true };
const STATIC = {
  id: '6101', key: 'js-auth-static-key', secret: 'js-static-9c3e5a7b1d0f2468', wamp: true,
  wamp_roles: ROLES,
  wamp_auth: {
    ticket: {
      principals: {
        alice: { role: 'backend', ticket: TICKET_ALICE, user_info: JSON.stringify({ name: 'Alice' }) },
        reader: { role: 'reader', ticket: TICKET_READER },
      },
    },
    wampcra: {
      principals: {
        bob: { role: 'backend', secret: CRA_BOB },
        carol: { role: 'backend', secret: CRA_CAROL, ...CAROL },
      },
    },
    cryptosign: { principals: { dave: { role: 'backend', authorized_keys: [DAVE.hex] } } },
  },
};
const DYN_TIMEOUT_MS = 600;
const DYNAMIC = { id: '6102', key: 'js-auth-dynamic-key', secret: 'js-dynamic-2f7a9d1c3e5b8046', wamp: true, wamp_roles: ROLES };
const TRUSTED = {
  id: '6103', key: 'js-auth-trusted-key', secret: 'js-trusted-7e1c3a5f9b2d4068', wamp: true,
  wamp_anonymous_role: 'trusted', wamp_max_publishes_per_second: 3,
};
const CHALLENGE_TIMEOUT_MS = 400;
const SHORT = {
  id: '6104', key: 'js-auth-short-key', secret: 'js-short-0d4f6b8a2c1e3579', wamp: true, wamp_roles: ROLES,
  wamp_auth: {
    challenge_timeout_ms: CHALLENGE_TIMEOUT_MS,
    ticket: { principals: { alice: { role: 'backend', ticket: TICKET_ALICE } } },
  },
};
const OFF = { id: '6105', key: 'js-auth-off-key', secret: 'js-off-5a9c1e3b7d0f2486' };

// --- the dynamic authenticator -------------------------------------------------------------------

/** The app's backend answering herald's authentication requests; records each request. */
class Authenticator {
  constructor(app) {
    this.app = app;
    this.requests = [];
    this.slow = new Set();
    this.server = createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks);
        const expected = hmacHex(app.secret, raw);
        const record = {
          path: req.url,
          contentType: req.headers['content-type'] ?? '',
          keyOk: req.headers['x-pusher-key'] === app.key,
          signatureOk: req.headers['x-pusher-signature'] === expected,
        };
        try {
          record.body = JSON.parse(raw.toString('utf8'));
        } catch {
          record.body = null;
        }
        this.requests.push(record);
        const answer = (status, body) => {
          if (res.destroyed) return;
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(JSON.stringify(body));
        };
        if (!record.keyOk || !record.signatureOk || !record.body) return answer(400, { error: 'bad signature' });
        const { authmethod, authid, ticket } = record.body;
        if (authid === 'dyn-slow') {
          // Held past herald's dynamic_timeout_ms; answered when the backend stops.
          this.slow.add(() => answer(200, { role: 'backend' }));
          return undefined;
        }
        if (authid === 'dyn-broken') return answer(500, { error: 'backend down' });
        if (authid === 'dyn-forbidden') return answer(403, { error: 'forbidden' });
        if (authmethod === 'ticket' && authid === 'dyn-ticket') {
          return ticket === DYN_TICKET ? answer(200, { role: 'backend' }) : answer(401, { error: 'wrong ticket' });
        }
        if (authmethod === 'wampcra' && authid === 'dyn-cra') return answer(200, { role: 'backend', secret: DYN_CRA });
        if (authmethod === 'wampcra' && authid === 'dyn-cra-salted') {
          return answer(200, { role: 'backend', secret: DYN_CRA_SALTED, ...DYN_SALTING });
        }
        if (authmethod === 'cryptosign' && authid === 'dyn-cs') {
          return answer(200, { role: 'backend', authorized_keys: [DYN_CS.hex] });
        }
        return answer(401, { error: 'unknown principal' });
      });
    });
  }

  async listen() {
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = this.server.address().port;
  }

  url(method) {
    return `http://127.0.0.1:${this.port}/wamp-auth/${method}`;
  }

  forAuthid(authid) {
    return this.requests.filter((r) => r.body && r.body.authid === authid);
  }

  async stop() {
    for (const release of this.slow) release();
    this.server.closeAllConnections?.();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/** A port on 127.0.0.1 nothing listens on (chosen by the kernel, then released). */
async function closedPort() {
  const srv = createTcpServer();
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address();
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

// --- autobahn-js sessions ------------------------------------------------------------------------

const peers = new Set();

const creds = {
  ticket: (authid, ticket) => ({ authmethods: ['ticket'], authid, answer: () => ticket }),
  wampcra: (authid, secret) => ({
    authmethods: ['wampcra'],
    authid,
    answer: (extra) => {
      const key = extra.salt ? autobahn.auth_cra.derive_key(secret, extra.salt, extra.iterations, extra.keylen) : secret;
      return autobahn.auth_cra.sign(key, extra.challenge);
    },
  }),
  /** Signs with `signer`; HELLO announces `announce`'s public key. */
  cryptosign: (authid, signer, announce = signer) => ({
    authmethods: ['cryptosign'],
    authid,
    authextra: { pubkey: announce.hex },
    answer: (extra) => autobahn.auth_cryptosign.sign_challenge(signer, extra),
  }),
};

/**
 * Joins `realm` with autobahn-js; resolves `{session, details, challenges}` or rejects with
 * Aborted. `cred` as built by `creds`, or an object with `answer` returning a promise.
 */
function join(herald, serializer, realm, cred = {}) {
  const { peer, opened } = openSession({ port: herald.port, realm, serializer, cred });
  peers.add(peer);
  return withTimeout(opened, `autobahn-js (${serializer}) WELCOME or ABORT on realm ${realm}`, WAIT_MS + 5000);
}

async function refused(promise) {
  try {
    const peer = await promise;
    assert.fail(`expected ABORT, got WELCOME ${JSON.stringify(peer.details)}`);
  } catch (err) {
    if (err instanceof Aborted) return err;
    throw err;
  }
  return undefined;
}

const topic = (name) => `com.auth.${uid(name)}`;
const ACK = { acknowledge: true };

// --- the suite -----------------------------------------------------------------------------------

let herald;
let backend;

before(async () => {
  backend = new Authenticator(DYNAMIC);
  await backend.listen();
  const dynamic = {
    ...DYNAMIC,
    wamp_auth: Object.fromEntries(['ticket', 'wampcra', 'cryptosign'].map((m) => [m, { dynamic: backend.url(m), dynamic_timeout_ms: DYN_TIMEOUT_MS }])),
  };
  const unreachable = {
    id: '6106', key: 'js-auth-unreachable-key', secret: 'js-unreach-8b2d4f6a0c1e3579', wamp: true,
    wamp_auth: { wampcra: { dynamic: `http://127.0.0.1:${await closedPort()}/gone` } },
  };
  herald = await startHerald({ apps: [ANON, STATIC, dynamic, TRUSTED, SHORT, OFF, unreachable] });
});
afterEach(() => {
  closePeers(peers);
  herald?.assertAlive();
});
after(async () => {
  await herald?.stop();
  await backend?.stop();
});

const STATIC_OK = {
  ticket: [() => creds.ticket('alice', TICKET_ALICE), 'alice'],
  wampcra: [() => creds.wampcra('bob', CRA_BOB), 'bob'],
  'wampcra-salted': [() => creds.wampcra('carol', CRA_CAROL), 'carol'],
  cryptosign: [() => creds.cryptosign('dave', DAVE), 'dave'],
};
const DYNAMIC_OK = {
  ticket: [() => creds.ticket('dyn-ticket', DYN_TICKET), 'dyn-ticket'],
  wampcra: [() => creds.wampcra('dyn-cra', DYN_CRA), 'dyn-cra'],
  'wampcra-salted': [() => creds.wampcra('dyn-cra-salted', DYN_CRA_SALTED), 'dyn-cra-salted'],
  cryptosign: [() => creds.cryptosign('dyn-cs', DYN_CS), 'dyn-cs'],
};

for (const serializer of ['json', 'msgpack']) {
  describe(`WAMP v2 authentication with autobahn-js (wamp.2.${serializer})`, { timeout: SUITE_MS }, () => {
    const open = (realm, cred) => join(herald, serializer, realm, cred);

    test('anonymous session: WELCOME names the anonymous role and the Pusher socket id', async () => {
      const { session, details } = await open(ANON.id);
      assert.equal(details.authmethod, 'anonymous');
      assert.equal(details.authrole, 'anonymous');
      assert.equal(details.authid, String(session.id));
      assert.match(String(details.authextra?.socket_id), SOCKET_ID);
    });

    for (const [method, [make, authid]] of Object.entries(STATIC_OK)) {
      test(`static ${method}: WELCOME carries authid, role, method and provider; the role applies`, async () => {
        const peer = await open(STATIC.id, make());
        const { details, session, challenges } = peer;
        assert.deepEqual(
          [details.authid, details.authrole, details.authmethod, details.authprovider],
          [authid, 'backend', method.split('-')[0], 'static'],
        );
        assert.match(String(details.authextra?.socket_id), SOCKET_ID);
        assert.equal(challenges.length, 1);
        if (method === 'wampcra-salted') {
          assert.deepEqual([challenges[0].extra.salt, challenges[0].extra.iterations, challenges[0].extra.keylen],
            [CAROL.salt, CAROL.iterations, CAROL.keylen]);
        }
        if (method === 'wampcra') assert.equal(challenges[0].extra.salt, undefined);
        const t = topic('static');
        const inbox = eventInbox('self');
        await withTimeout(session.subscribe(t, inbox.handler), 'SUBSCRIBED');
        await withTimeout(session.publish(t, [method], {}, { ...ACK, exclude_me: false }), 'PUBLISHED');
        assert.deepEqual((await inbox.next()).args, [method]);
      });
    }

    for (const [method, [make, authid]] of Object.entries(DYNAMIC_OK)) {
      test(`dynamic ${method}: the backend gets a signed request and decides the role`, async () => {
        const before = backend.forAuthid(authid).length;
        const { details, session } = await open(DYNAMIC.id, make());
        const wire = method.split('-')[0];
        assert.deepEqual(
          [details.authid, details.authrole, details.authmethod, details.authprovider],
          [authid, 'backend', wire, 'dynamic'],
        );
        const reqs = backend.forAuthid(authid).slice(before);
        assert.equal(reqs.length, 1);
        const [r] = reqs;
        assert.ok(r.keyOk && r.signatureOk, JSON.stringify(r));
        assert.match(r.contentType, /^application\/json/);
        assert.equal(r.path, `/wamp-auth/${wire}`);
        assert.deepEqual([r.body.realm, r.body.authmethod, r.body.authid], [DYNAMIC.id, wire, authid]);
        assert.ok('session' in r.body && 'authextra' in r.body, JSON.stringify(r.body));
        if (wire === 'ticket') assert.equal(r.body.ticket, DYN_TICKET);
        else assert.equal(r.body.ticket, undefined);
        if (wire === 'cryptosign') assert.equal(r.body.authextra.pubkey, DYN_CS.hex);
        await withTimeout(session.publish(topic('dyn'), [1], {}, ACK), 'PUBLISHED as backend');
      });
    }

    const WRONG = {
      'static ticket': [STATIC.id, () => creds.ticket('alice', `not-${TICKET_ALICE}`), 'ticket in static WAMP-Ticket authentication is invalid'],
      'static wampcra': [STATIC.id, () => creds.wampcra('bob', `not-${CRA_BOB}`), 'WAMP-CRA client signature is invalid'],
      'static wampcra salted': [STATIC.id, () => creds.wampcra('carol', `not-${CRA_CAROL}`), 'WAMP-CRA client signature is invalid'],
      'static cryptosign, wrong signing key': [STATIC.id, () => creds.cryptosign('dave', STRANGER, DAVE), 'signed message has invalid signature'],
      'static cryptosign, key not authorized': [STATIC.id, () => creds.cryptosign('dave', STRANGER), null],
      'static unknown authid (ticket)': [STATIC.id, () => creds.ticket('nobody', TICKET_ALICE), 'no principal with authid "nobody" exists'],
      'static unknown authid (wampcra)': [STATIC.id, () => creds.wampcra('nobody', CRA_BOB), 'no principal with authid "nobody" exists'],
      'static unknown authid (cryptosign)': [STATIC.id, () => creds.cryptosign('nobody', DAVE), 'no principal with authid "nobody" exists'],
      'dynamic ticket': [DYNAMIC.id, () => creds.ticket('dyn-ticket', `not-${DYN_TICKET}`), null],
      'dynamic wampcra': [DYNAMIC.id, () => creds.wampcra('dyn-cra', `not-${DYN_CRA}`), 'WAMP-CRA client signature is invalid'],
      'dynamic wampcra salted': [DYNAMIC.id, () => creds.wampcra('dyn-cra-salted', `not-${DYN_CRA_SALTED}`), 'WAMP-CRA client signature is invalid'],
      'dynamic cryptosign, wrong signing key': [DYNAMIC.id, () => creds.cryptosign('dyn-cs', STRANGER, DYN_CS), 'signed message has invalid signature'],
      'dynamic cryptosign, key not authorized': [DYNAMIC.id, () => creds.cryptosign('dyn-cs', STRANGER), null],
      'dynamic unknown authid (401)': [DYNAMIC.id, () => creds.ticket('dyn-nobody', DYN_TICKET), null],
      'dynamic 403': [DYNAMIC.id, () => creds.ticket('dyn-forbidden', DYN_TICKET), null],
    };
    for (const [name, [realm, make, message]] of Object.entries(WRONG)) {
      test(`${name}: ABORT wamp.error.not_authorized`, async () => {
        const err = await refused(open(realm, make()));
        assert.equal(err.reason, NOT_AUTHORIZED, String(err));
        if (message) assert.ok(err.message2.includes(message), `message ${JSON.stringify(err.message2)}`);
        assert.ok(backend.requests.every((r) => r.keyOk && r.signatureOk), 'herald sent a badly signed request');
      });
    }

    test('dynamic authenticator answering 5xx: ABORT wamp.error.authentication_failed', async () => {
      const err = await refused(open(DYNAMIC.id, creds.ticket('dyn-broken', DYN_TICKET)));
      assert.equal(err.reason, 'wamp.error.authentication_failed');
      assert.ok(err.message2.includes('authenticator unavailable'), err.message2);
      assert.ok(backend.forAuthid('dyn-broken').length > 0);
    });

    test('dynamic authenticator too slow: ABORT wamp.error.authentication_failed after the timeout', async () => {
      const started = Date.now();
      const err = await refused(open(DYNAMIC.id, creds.ticket('dyn-slow', DYN_TICKET)));
      const elapsed = Date.now() - started;
      assert.equal(err.reason, 'wamp.error.authentication_failed');
      assert.ok(err.message2.includes('authenticator unavailable'), err.message2);
      assert.ok(elapsed >= DYN_TIMEOUT_MS * 0.8, `ABORT after ${elapsed} ms`);
    });

    test('dynamic authenticator unreachable: ABORT wamp.error.authentication_failed', async () => {
      const err = await refused(open('6106', creds.wampcra('anyone', CRA_BOB)));
      assert.equal(err.reason, 'wamp.error.authentication_failed');
      assert.ok(err.message2.includes('authenticator unavailable'), err.message2);
    });

    test('challenge not answered in time: the router sends ABORT when the timeout fires', async () => {
      const started = Date.now();
      const never = { authmethods: ['ticket'], authid: 'alice', answer: () => new Promise(() => {}) };
      const err = await refused(open(SHORT.id, never));
      const elapsed = Date.now() - started;
      assert.equal(err.reason, 'wamp.error.authentication_failed');
      assert.ok(err.message2.includes('challenge expired'), err.message2);
      assert.ok(elapsed >= CHALLENGE_TIMEOUT_MS * 0.8, `ABORT after ${elapsed} ms`);
      const ok = await open(SHORT.id, creds.ticket('alice', TICKET_ALICE));
      assert.equal(ok.details.authid, 'alice');
    });

    test('no method the realm accepts: ABORT wamp.error.no_auth_method', async () => {
      const err = await refused(open(ANON.id, creds.ticket('alice', TICKET_ALICE)));
      assert.equal(err.reason, 'wamp.error.no_auth_method');
    });

    test('a realm without wamp = true: ABORT wamp.error.no_such_realm', async () => {
      const err = await refused(open(OFF.id));
      assert.equal(err.reason, 'wamp.error.no_such_realm');
      const pusher = await RawClient.connect(herald.wsUrl(OFF.key));
      assert.match(pusher.socketId, SOCKET_ID);
      pusher.terminate();
    });

    test('role refusals: ERROR wamp.error.not_authorized naming the URI', async () => {
      const reader = await open(STATIC.id, creds.ticket('reader', TICKET_READER));
      assert.equal(reader.details.authrole, 'reader');
      const alice = await open(STATIC.id, creds.ticket('alice', TICKET_ALICE));
      const t = topic('reader');
      const inbox = eventInbox('reader');
      await withTimeout(reader.session.subscribe(t, inbox.handler), 'SUBSCRIBED');
      const pub = await rejectsWith(reader.session.publish(t, ['x'], {}, ACK), 'PUBLISH');
      assert.equal(pub.error, NOT_AUTHORIZED);
      assert.deepEqual(pub.args, [`session not authorized to publish to topic '${t}'`]);
      const proc = topic('proc');
      const reg = await rejectsWith(reader.session.register(proc, () => 1), 'REGISTER');
      assert.equal(reg.error, NOT_AUTHORIZED);
      assert.ok(JSON.stringify(reg.args).includes(proc), JSON.stringify(reg.args));
      await withTimeout(alice.session.register(proc, () => 'ok'), 'REGISTERED by backend');
      const call = await rejectsWith(reader.session.call(proc), 'CALL');
      assert.equal(call.error, NOT_AUTHORIZED);
      assert.ok(JSON.stringify(call.args).includes(proc), JSON.stringify(call.args));
      const elsewhere = `com.other.${uid('sub')}`;
      const sub = await rejectsWith(reader.session.subscribe(elsewhere, () => {}), 'SUBSCRIBE');
      assert.equal(sub.error, NOT_AUTHORIZED);
      reader.session.publish(t, ['dropped']);
      await withTimeout(alice.session.publish(t, ['kept'], {}, ACK), 'PUBLISHED');
      assert.deepEqual((await inbox.next()).args, ['kept']);
      assert.deepEqual(inbox.all().map((e) => e.args), [['kept']]);
    });

    test('anonymous default: subscribes and gets Pusher HTTP API events; may not publish, register, call', async () => {
      const { session } = await open(ANON.id);
      const t = `com.anon.${uid('pub')}`;
      const inbox = eventInbox('anonymous');
      await withTimeout(session.subscribe(t, inbox.handler), 'SUBSCRIBED');
      await withTimeout(rest(herald, ANON).trigger(t, 'from-http', { n: 1 }), 'HTTP API trigger');
      const got = await inbox.next();
      assert.deepEqual([got.args, got.kwargs], [[{ n: 1 }], { event: 'from-http' }]);
      assert.equal((await rejectsWith(session.publish(t, ['no'], {}, ACK), 'PUBLISH')).error, NOT_AUTHORIZED);
      assert.equal((await rejectsWith(session.register(`com.anon.${uid('p')}`, () => 1), 'REGISTER')).error, NOT_AUTHORIZED);
      assert.equal((await rejectsWith(session.call(`com.anon.${uid('p')}`), 'CALL')).error, NOT_AUTHORIZED);
    });

    test('per-session publish rate: over it, herald.error.rate_limited and nothing delivered', async () => {
      const limit = TRUSTED.wamp_max_publishes_per_second;
      const pub = await open(TRUSTED.id);
      const sub = await open(TRUSTED.id);
      const other = await open(TRUSTED.id);
      const t = `com.rate.${uid('burst')}`;
      const inbox = eventInbox('subscriber');
      await withTimeout(sub.session.subscribe(t, inbox.handler), 'SUBSCRIBED');
      const results = await withTimeout(Promise.allSettled(
        Array.from({ length: limit * 4 }, (_, n) => pub.session.publish(t, [n], {}, ACK)),
      ), 'answers to the burst');
      const accepted = results.flatMap((r, n) => (r.status === 'fulfilled' ? [n] : []));
      const refusedOnes = results.filter((r) => r.status === 'rejected');
      assert.ok(refusedOnes.length > 0, `all ${results.length} accepted with a limit of ${limit}/s`);
      for (const r of refusedOnes) assert.equal(r.reason.error, 'herald.error.rate_limited');
      assert.deepEqual(accepted.slice(0, limit), [...Array(limit).keys()]);
      await withTimeout(other.session.publish(t, ['other'], {}, ACK), 'PUBLISHED by another session');
      await inbox.next((e) => e.args[0] === 'other');
      assert.deepEqual(inbox.all().map((e) => e.args[0]).filter((a) => a !== 'other'), accepted);
    });

    test('private and presence channels: refused without a grant', async () => {
      const trusted = await open(TRUSTED.id);
      const alice = await open(STATIC.id, creds.ticket('alice', TICKET_ALICE));
      for (const name of [`private-${uid('n')}`, `presence-${uid('n')}`]) {
        assert.equal((await rejectsWith(trusted.session.subscribe(name, () => {}), `SUBSCRIBE ${name}`)).error, NOT_AUTHORIZED);
        assert.equal((await rejectsWith(alice.session.subscribe(name, () => {}), `SUBSCRIBE ${name}`)).error, NOT_AUTHORIZED);
      }
    });

    test('private channel opened by an explicit role permission', async () => {
      const { session } = await open(STATIC.id, creds.ticket('alice', TICKET_ALICE));
      const name = `private-granted-${uid('r')}`;
      const inbox = eventInbox('alice');
      await withTimeout(session.subscribe(name, inbox.handler), 'SUBSCRIBED');
      await withTimeout(rest(herald, STATIC).trigger(name, 'secret-event', { for: 'alice' }), 'HTTP API trigger');
      assert.deepEqual((await inbox.next()).args, [{ for: 'alice' }]);
    });

    test('presence by role grant: the member is the principal, with its user_info', async () => {
      const name = `presence-granted-${uid('r')}`;
      const watcher = await RawClient.connect(herald.wsUrl(STATIC.key));
      const data = JSON.stringify({ user_id: 'watcher' });
      await watcher.subscribe(name, { auth: channelAuth(STATIC, watcher.socketId, name, data), channel_data: data });
      const { session } = await open(STATIC.id, creds.ticket('alice', TICKET_ALICE));
      await withTimeout(session.subscribe(name, () => {}), 'SUBSCRIBED');
      const added = await watcher.next('pusher_internal:member_added');
      assert.deepEqual(added.decoded, { user_id: 'alice', user_info: { name: 'Alice' } });
      const users = await withTimeout(rest(herald, STATIC).get({ path: `/channels/${name}/users` }), 'GET users');
      assert.equal(users.status, 200);
      assert.deepEqual((await users.json()).users.map((u) => u.id).sort(), ['alice', 'watcher']);
      watcher.terminate();
    });

    test('private channel opened by herald.pusher.authorize with the app signature; wrong one refused', async () => {
      const { session, details } = await open(TRUSTED.id);
      const socketId = details.authextra.socket_id;
      const name = `private-${uid('a')}`;
      for (const bad of [channelAuth(TRUSTED, '1.2', name), channelAuth({ ...TRUSTED, secret: `x${TRUSTED.secret}` }, socketId, name)]) {
        const err = await rejectsWith(session.call('herald.pusher.authorize', [name, bad]), 'CALL with a wrong signature');
        assert.equal(err.error, NOT_AUTHORIZED);
      }
      assert.equal((await rejectsWith(session.subscribe(name, () => {}), 'SUBSCRIBE')).error, NOT_AUTHORIZED);
      await withTimeout(session.call('herald.pusher.authorize', [name, channelAuth(TRUSTED, socketId, name)]), 'RESULT');
      const inbox = eventInbox('authorized');
      await withTimeout(session.subscribe(name, inbox.handler), 'SUBSCRIBED after authorize');
      await withTimeout(rest(herald, TRUSTED).trigger(name, 'ev', { ok: true }), 'HTTP API trigger');
      assert.deepEqual((await inbox.next()).args, [{ ok: true }]);
    });

    test('presence channel opened by herald.pusher.authorize: member data from channel_data', async () => {
      const name = `presence-${uid('a')}`;
      const { session, details } = await open(TRUSTED.id);
      const member = JSON.stringify({ user_id: 'u-7', user_info: { name: 'Seven' } });
      const auth = channelAuth(TRUSTED, details.authextra.socket_id, name, member);
      const forged = await rejectsWith(session.call('herald.pusher.authorize', [name, auth, JSON.stringify({ user_id: 'admin' })]), 'CALL with other channel_data');
      assert.equal(forged.error, NOT_AUTHORIZED);
      await withTimeout(session.call('herald.pusher.authorize', [name, auth, member]), 'RESULT');
      await withTimeout(session.subscribe(name, () => {}), 'SUBSCRIBED');
      const users = await withTimeout(rest(herald, TRUSTED).get({ path: `/channels/${name}/users` }), 'GET users');
      assert.equal(users.status, 200);
      assert.deepEqual((await users.json()).users, [{ id: 'u-7' }]);
    });
  });
}

describe('WAMP v2 authentication, raw messages', { timeout: SUITE_MS }, () => {
  /** A raw `wamp.2.json` client; resolves once open. */
  async function raw() {
    const ws = new WebSocket(`ws://127.0.0.1:${herald.port}/ws`, ['wamp.2.json']);
    const inbox = new Inbox('raw wamp');
    const closed = new Promise((resolve) => ws.once('close', (code) => resolve(code)));
    ws.on('message', (data) => inbox.push(JSON.parse(data.toString('utf8'))));
    ws.on('error', () => {});
    await withTimeout(new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    }), 'raw WAMP socket to open');
    return { ws, inbox, closed, send: (m) => ws.send(JSON.stringify(m)) };
  }
  const roles = { subscriber: {}, publisher: {}, caller: {}, callee: {} };

  test('an AUTHENTICATE captured from one session does not open another (wampcra)', async () => {
    const first = await raw();
    const second = await raw();
    try {
      first.send([1, STATIC.id, { roles, authmethods: ['wampcra'], authid: 'bob' }]);
      const c1 = await first.inbox.next((m) => m[0] === 4, { what: 'CHALLENGE' });
      const signature = autobahn.auth_cra.sign(CRA_BOB, c1[2].challenge);
      first.send([5, signature, {}]);
      const welcome = await first.inbox.next((m) => m[0] === 2 || m[0] === 3, { what: 'WELCOME' });
      assert.equal(welcome[0], 2, JSON.stringify(welcome));
      second.send([1, STATIC.id, { roles, authmethods: ['wampcra'], authid: 'bob' }]);
      const c2 = await second.inbox.next((m) => m[0] === 4, { what: 'CHALLENGE' });
      assert.notEqual(c2[2].challenge, c1[2].challenge);
      second.send([5, signature, {}]);
      const abort = await second.inbox.next((m) => m[0] === 2 || m[0] === 3, { what: 'ABORT' });
      assert.deepEqual([abort[0], abort[2]], [3, NOT_AUTHORIZED]);
      await withTimeout(second.closed, 'the connection to close after ABORT');
    } finally {
      first.ws.terminate();
      second.ws.terminate();
    }
  });

  test('an AUTHENTICATE captured from one session does not open another (cryptosign)', async () => {
    const first = await raw();
    const second = await raw();
    const hello = [1, STATIC.id, { roles, authmethods: ['cryptosign'], authid: 'dave', authextra: { pubkey: DAVE.hex } }];
    try {
      first.send(hello);
      const c1 = await first.inbox.next((m) => m[0] === 4, { what: 'CHALLENGE' });
      assert.match(c1[2].challenge, /^[0-9a-f]{64}$/);
      const data = Buffer.from(c1[2].challenge, 'hex');
      const signature = edSign(null, data, DAVE.nodeKey).toString('hex') + data.toString('hex');
      first.send([5, signature, {}]);
      assert.equal((await first.inbox.next((m) => m[0] === 2 || m[0] === 3, { what: 'WELCOME' }))[0], 2);
      second.send(hello);
      await second.inbox.next((m) => m[0] === 4, { what: 'CHALLENGE' });
      second.send([5, signature, {}]);
      const abort = await second.inbox.next((m) => m[0] === 2 || m[0] === 3, { what: 'ABORT' });
      assert.deepEqual([abort[0], abort[2]], [3, NOT_AUTHORIZED]);
    } finally {
      first.ws.terminate();
      second.ws.terminate();
    }
  });

  test('a second AUTHENTICATE is a protocol violation', async () => {
    const c = await raw();
    try {
      c.send([1, STATIC.id, { roles, authmethods: ['ticket'], authid: 'alice' }]);
      const challenge = await c.inbox.next((m) => m[0] === 4, { what: 'CHALLENGE' });
      assert.deepEqual(challenge, [4, 'ticket', {}]);
      c.send([5, TICKET_ALICE, {}]);
      assert.equal((await c.inbox.next((m) => m[0] === 2 || m[0] === 3, { what: 'WELCOME' }))[0], 2);
      c.send([5, TICKET_ALICE, {}]);
      const abort = await c.inbox.next((m) => m[0] === 3, { what: 'ABORT' });
      assert.equal(abort[2], 'wamp.error.protocol_violation');
      await withTimeout(c.closed, 'the connection to close');
    } finally {
      c.ws.terminate();
    }
  });
});
