//! SIGHUP reloads the apps of the config file while pusher-js clients stay connected: a new app
//! is served, a changed one keeps its connections, a removed app's clients are closed with 4001
//! and a disabled app's with 4003, and a file that does not load changes nothing.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { connected, eventually, once, pusherClient, rest, served, startHerald, subscribed, uid } from './harness.mjs';
import { toml } from '../support/herald_launcher.mjs';

const KEPT = { id: 'reload-kept', key: 'reload-kept-key', secret: 'reload-kept-5d1e9a7c3b' };
const GONE = { id: 'reload-gone', key: 'reload-gone-key', secret: 'reload-gone-8f2c6a0e4d' };
const NEW = { id: 'reload-new', key: 'reload-new-key', secret: 'reload-new-1b7d3f9e5a' };

describe('SIGHUP reloads the apps', () => {
  let herald;
  let file;
  before(async () => {
    herald = await startHerald({ apps: [KEPT, GONE], extraArgs: ['-v'] });
    file = path.join(herald.dir, 'herald.toml');
  });
  after(async () => {
    await herald?.stop();
  });

  function reloadWith(apps) {
    writeFileSync(file, toml({ apps }));
    herald.child.kill('SIGHUP');
  }

  test('apps are added, changed, removed and disabled without dropping anyone who stays', async () => {
    const kept = pusherClient(herald, KEPT);
    const gone = pusherClient(herald, GONE);
    try {
      await Promise.all([connected(kept), connected(gone)]);
      const socketId = kept.connection.socket_id;
      const channel = await subscribed(kept, uid('reload'));
      assert.equal(await served(herald, NEW), false, 'the new app is not served before the reload');

      reloadWith([{ ...KEPT, max_presence_members: 50 }, NEW]);
      const closed = await gone.closes.next(() => true, { what: 'the removed app\'s close' });
      assert.equal(closed.code, 4001, JSON.stringify(closed));
      await eventually(() => served(herald, NEW), 'the new app answers the HTTP API');

      // The changed app kept its connection and its subscription.
      assert.equal(kept.connection.state, 'connected');
      assert.equal(kept.connection.socket_id, socketId);
      const got = once(channel, 'after-reload');
      await rest(herald, KEPT).trigger(channel.name, 'after-reload', { n: 1 });
      assert.deepEqual(await got, { n: 1 });
      assert.equal(await served(herald, GONE), false, 'the removed app is no longer served');

      // The new app works end to end.
      const fresh = pusherClient(herald, NEW);
      try {
        const ch = await subscribed(fresh, uid('new'));
        const hello = once(ch, 'hello');
        await rest(herald, NEW).trigger(ch.name, 'hello', 'there');
        assert.equal(await hello, 'there');
      } finally {
        fresh.disconnect();
      }

      reloadWith([{ ...KEPT, enabled: false }, NEW]);
      const disabled = await kept.closes.next(() => true, { what: 'the disabled app\'s close' });
      assert.equal(disabled.code, 4003, JSON.stringify(disabled));
    } finally {
      kept.disconnect();
      gone.disconnect();
    }
  });

  test('a file that does not load changes nothing and says why', async () => {
    reloadWith([NEW]);
    await eventually(async () => !(await served(herald, KEPT)), 'the disabled app left');
    const client = pusherClient(herald, NEW);
    try {
      await connected(client);
      writeFileSync(file, '[[apps]]\nid = "broken"\nkey = ""\nsecret = "reload-broken-3c5e7a9b1d"\n');
      herald.child.kill('SIGHUP');
      await eventually(() => herald.stderrLines.some((l) => /not reloaded/.test(l) && /apps\[0\]\.key/.test(l)), () => `the refusal in the log:\n${herald.stderrLines.slice(-5).join('\n')}`);
      assert.equal(client.connection.state, 'connected');
      assert.equal(await served(herald, NEW), true, 'the apps are unchanged');
    } finally {
      client.disconnect();
    }
  });
});
