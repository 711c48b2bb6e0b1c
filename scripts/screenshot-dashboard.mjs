#!/usr/bin/env node
// Saves docs/img/dashboard.png: herald (target/debug/herald, or $HERALD_BIN) with a demo app and
// the dashboard on, a few pusher-js clients subscribed, events published for a few seconds,
// then Debian's Chromium (playwright-core) logged in and photographed at 1280x800.
//
//   nice cargo build -p herald-server && scripts/screenshot-dashboard

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { chromium } from 'playwright-core';
import Pusher from 'pusher-js';
import PusherServer from 'pusher';

import { ROOT, startHerald } from '../tests/support/herald_launcher.mjs';

const PASSWORD = 'screenshot-password';
const app = { id: 'demo', key: 'demo-key', secret: 'demo-secret-0123456789abcdef', enable_client_messages: true };

const herald = await startHerald({
  config: { server: { metrics_port: 0 }, apps: [app], dashboard: { enabled: true, password: PASSWORD } },
  listeners: 2,
});
const metrics = herald.listening.find((l) => l.label === 'metrics').port;
const dash = `http://127.0.0.1:${metrics}/dashboard`;
const dataDir = mkdtempSync(path.join(tmpdir(), 'herald-shot-'));
const browser = await chromium.launchPersistentContext(dataDir, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1280, height: 800 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'],
});
const clients = [];
try {
  const page = await browser.newPage();
  await page.goto(dash);
  await page.fill('#password', PASSWORD);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#main:not([hidden])');
  await page.waitForFunction(() => document.body.dataset.console === 'open');

  const channels = ['orders', 'chat-room-1', 'chat-room-2', 'prices'];
  for (let i = 0; i < 6; i++) {
    const c = new Pusher(app.key, {
      cluster: 'mt1', wsHost: '127.0.0.1', wsPort: herald.port, forceTLS: false, enabledTransports: ['ws'], disableStats: true,
    });
    c.subscribe(channels[i % channels.length]);
    clients.push(c);
    await new Promise((r) => setTimeout(r, 700));
  }
  const sdk = new PusherServer({ appId: app.id, key: app.key, secret: app.secret, host: '127.0.0.1', port: String(herald.port), useTLS: false });
  const until = Date.now() + 12_000;
  let n = 0;
  while (Date.now() < until) {
    await sdk.trigger(channels[n % channels.length], 'update', { n, price: (100 + Math.sin(n / 5) * 4).toFixed(2) });
    n += 1;
    await new Promise((r) => setTimeout(r, 60 + (n % 7) * 30));
  }
  await page.fill('#ev-channel', 'orders');
  await page.fill('#ev-name', 'order-shipped');
  await page.fill('#ev-data', '{"order": 1042, "carrier": "DHL"}');
  await page.click('#creator button[type=submit]');
  await page.waitForFunction(() => document.querySelector('#creator-result').textContent === 'Published.');
  await page.waitForTimeout(1200);
  await page.screenshot({ path: path.join(ROOT, 'docs/img/dashboard.png') });
  console.log('saved docs/img/dashboard.png');
} finally {
  for (const c of clients) c.disconnect();
  await browser.close();
  await herald.stop();
  rmSync(dataDir, { recursive: true, force: true });
}
