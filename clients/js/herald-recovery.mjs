// Message recovery for pusher-js (and laravel-echo, which uses it) against herald.
//
// herald puts each publication of a channel with history at a position: top-level "epoch" and
// "serial" fields of the raw frame. pusher-js drops unknown top-level fields when it decodes a
// frame, so this plugin listens to the raw frames of the connection's transport (the same
// object for the WebSocket and the HTTP streaming/polling transports), remembers the last
// position per channel, and adds "recover" to pusher:subscribe when pusher-js subscribes again
// after a reconnection. herald then replays what was missed before any live event; when it
// cannot, it sends pusher:recovery_failed on the channel.
//
// No build step: an ES module with no dependencies.

/**
 * Turns on recovery for one pusher-js client.
 *
 * @param {object} pusher a `Pusher` instance (for laravel-echo: `echo.connector.pusher`)
 * @param {object} [options]
 * @param {(failure: {channel: string, reason: string, epoch: string, serial: number}) => void} [options.onRecoveryFailed]
 *   called when herald could not replay what a channel missed (its events are then lost to
 *   this client: reload the channel's state from your backend). Channels also receive it as
 *   the `pusher:recovery_failed` event: `channel.bind('pusher:recovery_failed', fn)`.
 * @returns {{ position(channel: string): ({epoch: string, serial: number} | undefined), disable(): void }}
 */
export function enableRecovery(pusher, { onRecoveryFailed } = {}) {
  if (!pusher || typeof pusher.send_event !== 'function' || !pusher.connection) {
    throw new TypeError('enableRecovery needs a pusher-js Pusher instance');
  }
  /** channel -> { epoch, serial }: the last position this client received. */
  const positions = new Map();
  /** Channels whose pusher:subscribe asked to recover and whose acknowledgement is awaited. */
  const recovering = new Set();

  const sendEvent = pusher.send_event;
  pusher.send_event = function sendWithRecover(event, data, channel) {
    if (event === 'pusher:subscribe' && data && typeof data.channel === 'string') {
      const at = positions.get(data.channel);
      if (at) {
        recovering.add(data.channel);
        data = { ...data, recover: { epoch: at.epoch, serial: at.serial } };
      }
    } else if (event === 'pusher:unsubscribe' && data && typeof data.channel === 'string') {
      // Leaving on purpose: a later subscribe starts afresh.
      positions.delete(data.channel);
      recovering.delete(data.channel);
    }
    return sendEvent.call(this, event, data, channel);
  };

  function onRawMessage(message) {
    if (!message || typeof message.data !== 'string' || !message.data.includes('"channel"')) return;
    let frame;
    try {
      frame = JSON.parse(message.data);
    } catch {
      return;
    }
    const channel = frame && frame.channel;
    if (typeof channel !== 'string') return;
    const positioned = typeof frame.epoch === 'string' && Number.isSafeInteger(frame.serial);
    if (frame.event === 'pusher_internal:subscription_succeeded') {
      if (!positioned) return;
      const known = positions.get(channel);
      // While recovering in the same epoch, the replay that follows moves the position on;
      // otherwise the acknowledgement's position is where this client starts.
      if (!recovering.has(channel) || !known || known.epoch !== frame.epoch) {
        positions.set(channel, { epoch: frame.epoch, serial: frame.serial });
      }
      recovering.delete(channel);
    } else if (frame.event === 'pusher:recovery_failed') {
      let failure = {};
      try {
        failure = typeof frame.data === 'string' ? JSON.parse(frame.data) : frame.data || {};
      } catch {
        // A reason is still worth reporting without its details.
      }
      if (typeof failure.epoch === 'string' && Number.isSafeInteger(failure.serial)) {
        positions.set(channel, { epoch: failure.epoch, serial: failure.serial });
      }
      if (onRecoveryFailed) onRecoveryFailed({ channel, ...failure });
    } else if (positioned) {
      positions.set(channel, { epoch: frame.epoch, serial: frame.serial });
    }
  }

  // pusher.connection is the connection manager; its `connection` (set before 'connected' is
  // emitted) owns the transport, which emits every raw frame as 'message' ({ data }).
  let hooked = null;
  function hook() {
    const transport = pusher.connection.connection && pusher.connection.connection.transport;
    if (!transport || transport === hooked || typeof transport.bind !== 'function') return;
    if (hooked) hooked.unbind('message', onRawMessage);
    transport.bind('message', onRawMessage);
    hooked = transport;
  }
  pusher.connection.bind('connected', hook);
  hook();

  return {
    position: (channel) => positions.get(channel),
    disable() {
      pusher.send_event = sendEvent;
      pusher.connection.unbind('connected', hook);
      if (hooked) hooked.unbind('message', onRawMessage);
      hooked = null;
    },
  };
}
