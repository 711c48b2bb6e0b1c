// A real pusher-js client (the npm package, node build) driven by the security suite over
// stdin/stdout, one JSON object per line each way.
//
//   node pusher_js_driver.mjs PORT APP_KEY
//
// Commands (stdin):
//   {"op": "subscribe", "channel": C, "auth": "key:sig"?, "channel_data": "..."?}
//       the auth (if any) is what the channel authorizer hands pusher-js, unchecked;
//   {"op": "trigger", "channel": C, "event": "client-...", "data": {...}}   Channel#trigger
//   {"op": "send_event", "event": E, "data": {...}, "channel": C?}          Pusher#send_event (raw)
//   {"op": "quit"}
// Reports (stdout): {"type": "connected", "socket_id"}, {"type": "subscribed", "channel"},
//   {"type": "subscription_error", "channel", "status"}, {"type": "event", "channel", "event", "data"},
//   {"type": "pusher_error", "data"}, {"type": "done", "op"} after every command, {"type": "closed"}.

import { createInterface } from 'node:readline';

import Pusher from 'pusher-js';

const [port, key] = process.argv.slice(2);
const report = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);

const auths = new Map();
const client = new Pusher(key, {
  cluster: 'mt1',
  wsHost: '127.0.0.1',
  wsPort: Number(port),
  forceTLS: false,
  enabledTransports: ['ws'],
  disableStats: true,
  channelAuthorization: {
    customHandler: ({ channelName }, callback) => {
      const auth = auths.get(channelName);
      if (auth) callback(null, auth);
      else callback(new Error(`no auth given for ${channelName}`), null);
    },
  },
});

client.connection.bind('connected', () => report({ type: 'connected', socket_id: client.connection.socket_id }));
client.connection.bind('message', (m) => {
  if (m.event === 'pusher:error') report({ type: 'pusher_error', data: m.data });
});
client.connection.bind('state_change', ({ current }) => {
  if (current === 'disconnected' || current === 'failed' || current === 'unavailable') report({ type: 'closed', state: current });
});

function subscribe({ channel, auth, channel_data: channelData }) {
  if (auth !== undefined) auths.set(channel, channelData === undefined ? { auth } : { auth, channel_data: channelData });
  const ch = client.subscribe(channel);
  ch.bind('pusher:subscription_succeeded', () => report({ type: 'subscribed', channel }));
  ch.bind('pusher:subscription_error', (e) => report({ type: 'subscription_error', channel, status: e?.status ?? null }));
  ch.bind_global((event, data) => {
    if (event === 'pusher:subscription_succeeded' || event === 'pusher:subscription_error') return;
    report({ type: 'event', channel, event, data });
  });
}

const input = createInterface({ input: process.stdin });
input.on('line', (line) => {
  const cmd = JSON.parse(line);
  switch (cmd.op) {
    case 'subscribe':
      subscribe(cmd);
      break;
    case 'trigger':
      report({ type: 'triggered', accepted: client.channel(cmd.channel).trigger(cmd.event, cmd.data) });
      break;
    case 'send_event':
      client.send_event(cmd.event, cmd.data, cmd.channel);
      break;
    case 'quit':
      client.disconnect();
      report({ type: 'done', op: cmd.op });
      process.exit(0);
      break;
    default:
      throw new Error(`unknown op ${cmd.op}`);
  }
  report({ type: 'done', op: cmd.op });
});
input.on('close', () => {
  client.disconnect();
  process.exit(0);
});
