//! herald's command line and configuration as an operator meets them: the development
//! defaults, and invalid configuration refused with exit code 64 before a port is bound.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  RawClient, connected, once, pusherClient, rest, runHerald, sdkChannelAuthorization, startHerald, subscribed, uid,
} from './harness.mjs';

describe('configuration', () => {
  let dir;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'herald-config-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  function configFile(name, text) {
    const file = path.join(dir, name);
    writeFileSync(file, text);
    return file;
  }

  test('without config or PUSHER_* env herald serves app-key/app-secret and warns', async () => {
    const herald = await startHerald({ apps: null });
    try {
      const app = { id: 'app-id', key: 'app-key', secret: 'app-secret' };
      const client = pusherClient(herald, app);
      try {
        await connected(client);
        const channel = client.subscribe(uid('dev'));
        const got = new Promise((resolve) => channel.bind('hi', resolve));
        await new Promise((resolve) => channel.bind('pusher:subscription_succeeded', resolve));
        await rest(herald, app).trigger(channel.name, 'hi', 'there');
        assert.equal(await got, 'there');
      } finally {
        client.disconnect();
      }
      assert.match(herald.stderr(), /warn/i, 'no warning about the development credentials');
    } finally {
      await herald.stop();
    }
  });

  test('an unknown key in the config file exits 64 and names the key', async () => {
    const file = configFile('typo.toml', '[[apps]]\nid = "1"\nkey = "k"\nsecret = "cfg-5c9e1a3f7b0d2468"\nenable_client_mesages = true\n');
    const { code, stderr } = await runHerald(['serve', '--host', '127.0.0.1', '--port', '0', '--config', file]);
    assert.equal(code, 64, stderr);
    assert.match(stderr, /enable_client_mesages/);
  });

  test('an invalid value exits 64 and names the key', async () => {
    const file = configFile('bad.toml', '[[apps]]\nid = "1"\nkey = "k"\nsecret = "cfg-5c9e1a3f7b0d2468"\nmax_connections = "lots"\n');
    const { code, stderr } = await runHerald(['serve', '--host', '127.0.0.1', '--port', '0', '--config', file]);
    assert.equal(code, 64, stderr);
    assert.match(stderr, /max_connections/);
  });

  test('a missing config file exits 64', async () => {
    const { code, stderr } = await runHerald(['serve', '--host', '127.0.0.1', '--port', '0', '--config', path.join(dir, 'absent.toml')]);
    assert.equal(code, 64, stderr);
  });

  test('config check accepts a valid file and does not print secrets', async () => {
    const file = configFile('ok.toml', '[[apps]]\nid = "1"\nkey = "k"\nsecret = "cfg-check-8b2d6f0a4e1c3579"\n');
    const { code, stdout, stderr } = await runHerald(['config', 'check', '--config', file]);
    assert.equal(code, 0, stderr);
    assert.ok(!stdout.includes('cfg-check-8b2d6f0a4e1c3579'), 'config check printed the secret');
  });

  test('config check rejects an invalid file with exit code 64', async () => {
    const file = configFile('check-bad.toml', '[[apps]]\nid = "1"\nkey = "k"\nsecret = "cfg-5c9e1a3f7b0d2468"\nactivity_timeout = -5\n');
    const { code, stderr } = await runHerald(['config', 'check', '--config', file]);
    assert.equal(code, 64, stderr);
    assert.match(stderr, /activity_timeout/);
  });

  test('two apps from one file are both served', async () => {
    const apps = [
      { id: '11', key: 'first-key', secret: 'first-4a8e2c6f0d1b3957' },
      { id: '12', key: 'second-key', secret: 'second-7c1e5a9f3b0d2468' },
    ];
    const herald = await startHerald({ apps });
    try {
      for (const app of apps) {
        const raw = await RawClient.connect(herald.wsUrl(app.key));
        const name = uid('multi-app');
        await raw.subscribe(name);
        await rest(herald, app).trigger(name, 'ping', 'x');
        assert.equal((await raw.next('ping')).channel, name);
        raw.terminate();
      }
    } finally {
      await herald.stop();
    }
  });

  test('apps are isolated: an event of one app never reaches the other', async () => {
    const apps = [
      { id: '21', key: 'iso-a-key', secret: 'iso-a-0f4b8d2a6e1c3579' },
      { id: '22', key: 'iso-b-key', secret: 'iso-b-6e0a4c8f2d1b3957' },
    ];
    const herald = await startHerald({ apps });
    try {
      const a = await RawClient.connect(herald.wsUrl(apps[0].key));
      const b = await RawClient.connect(herald.wsUrl(apps[1].key));
      await a.subscribe('shared-name');
      await b.subscribe('shared-name');
      await rest(herald, apps[0]).trigger('shared-name', 'only-a', 1);
      await rest(herald, apps[1]).trigger('shared-name', 'only-b', 2);
      await a.next('only-a');
      await b.next('only-b');
      assert.equal(b.messages.all((m) => m.event === 'only-a').length, 0);
      a.terminate();
      b.terminate();
    } finally {
      await herald.stop();
    }
  });

  test('config check names where each value came from and never prints a secret', async () => {
    const secret = 'reverb-3f9a1c7e5b2d4680';
    const file = configFile('sources.toml', '[server]\nshutdown_grace = 4\n[scale_out]\nredis_url = "redis://user:redis-pw-5521@127.0.0.1:6379"\n');
    const { code, stdout, stderr } = await runHerald(['config', 'check', '--config', file, '--host', '127.0.0.1'], {
      env: {
        REVERB_APP_ID: '417301', REVERB_APP_KEY: 'reverb-key', REVERB_APP_SECRET: secret,
        REVERB_SERVER_PORT: '8080', HERALD__SERVER__PORT: '7123', HERALD__APPS__0__ENABLE_CLIENT_MESSAGES: 'true',
      },
    });
    assert.equal(code, 0, stderr);
    for (const line of [
      'port = 7123  # env HERALD__SERVER__PORT',
      'host = "127.0.0.1"  # flag --host',
      `shutdown_grace = 4  # file ${file}`,
      'key = "reverb-key"  # env REVERB_APP_KEY',
      'secret = "<redacted>"  # env REVERB_APP_SECRET',
      'enable_client_messages = true  # env HERALD__APPS__0__ENABLE_CLIENT_MESSAGES',
      'activity_timeout = 120  # default',
      '[history]',
      '[scale_out]',
    ]) {
      assert.ok(stdout.includes(line), `${line} missing from:\n${stdout}`);
    }
    assert.ok(!stdout.includes(secret), 'config check printed the app secret');
    assert.ok(!stdout.includes('redis-pw-5521'), 'config check printed the Redis password');
  });

  test('an unknown HERALD__ variable exits 64 and names it', async () => {
    const { code, stderr } = await runHerald(['serve', '--host', '127.0.0.1', '--port', '0'], {
      env: { HERALD__SERVER__PROT: '7000' },
    });
    assert.equal(code, 64, stderr);
    assert.match(stderr, /environment: HERALD__SERVER__PROT:/);
  });

  test('a partial REVERB_APP_* set exits 64 naming the missing variables', async () => {
    const { code, stderr } = await runHerald(['serve', '--host', '127.0.0.1', '--port', '0'], {
      env: { REVERB_APP_KEY: 'k', REVERB_APP_SECRET: 'reverb-3f9a1c7e5b2d4680' },
    });
    assert.equal(code, 64, stderr);
    assert.match(stderr, /REVERB_APP_ID/);
  });

  test('a Laravel app on Reverb variables gets whispers without a config file', async () => {
    const app = { id: '417301', key: 'reverb-whisper-key', secret: 'reverb-8c2e6a0f4b1d3579' };
    const herald = await startHerald({
      apps: null,
      env: {
        REVERB_APP_ID: app.id, REVERB_APP_KEY: app.key, REVERB_APP_SECRET: app.secret,
        SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES: 'true',
      },
    });
    const clients = [];
    try {
      const client = async () => {
        const c = pusherClient(herald, app, { channelAuthorization: sdkChannelAuthorization(rest(herald, app)) });
        clients.push(c);
        return connected(c);
      };
      const name = uid('private-whisper');
      const alice = await client();
      const bob = await client();
      const aliceChannel = await subscribed(alice, name);
      const bobChannel = await subscribed(bob, name);
      const got = once(bobChannel, 'client-typing');
      assert.equal(aliceChannel.trigger('client-typing', { who: 'alice' }), true);
      assert.deepEqual(await got, { who: 'alice' });
    } finally {
      clients.forEach((c) => c.disconnect());
      await herald.stop();
    }
  });
});
