//! The one autobahn-js WAMP v2 joiner of the JavaScript suites: opens a connection to herald
//! (optionally with authmethods, authid, authextra and a CHALLENGE answer), resolves once WELCOME
//! arrives and rejects with `Aborted` when the router answers ABORT or the transport closes first.
//! Auto-reconnect is off. The caller bounds the wait (`withTimeout`) and closes the peers
//! (`closePeers`) after each test.

import autobahn from 'autobahn';

/** The router refused the session (ABORT) or the transport closed before WELCOME. */
export class Aborted extends Error {
  constructor(closeReason, details) {
    super(`session not opened: ${closeReason} ${JSON.stringify(details)}`);
    this.reason = details?.reason ?? null;
    this.closeReason = closeReason;
    this.message2 = details?.message ?? '';
  }
}

/**
 * Starts joining `realm` on 127.0.0.1:`port`. Returns `{peer, opened}`: `peer` is
 * `{connection, challenges}` (and `session`, `details` once joined), `opened` settles with `peer`
 * or with Aborted. `cred` is `{authmethods, authid, authextra, answer(extra)}` (`answer` may return
 * a promise); every CHALLENGE goes into `peer.challenges`. `onclose(reason, details)` sees every
 * close of the connection.
 */
export function openSession({ port, realm, serializer = 'json', path = '/ws', cred = null, onclose = null }) {
  const challenges = [];
  const auth = cred && {
    authmethods: cred.authmethods,
    authid: cred.authid,
    authextra: cred.authextra,
    onchallenge: (_session, method, extra) => {
      challenges.push({ method, extra });
      return cred.answer(extra);
    },
  };
  const connection = new autobahn.Connection({
    url: `ws://127.0.0.1:${port}${path}`,
    realm,
    serializers: [serializer === 'json' ? new autobahn.serializer.JSONSerializer() : new autobahn.serializer.MsgpackSerializer()],
    max_retries: 0,
    retry_if_unreachable: false,
    ...auth,
    // A callee throwing autobahn.Error is how it answers ERROR, not a bug: report only the rest.
    on_user_error: (err, message) => {
      if (!(err instanceof autobahn.Error)) console.error(message, err);
    },
  });
  const peer = { connection, challenges };
  const opened = new Promise((resolve, reject) => {
    let isOpen = false;
    connection.onopen = (session, details) => {
      isOpen = true;
      Object.assign(peer, { session, details });
      resolve(peer);
    };
    connection.onclose = (reason, details) => {
      onclose?.(reason, details);
      if (!isOpen) reject(new Aborted(reason, details));
      return true; // never retry
    };
  });
  connection.open();
  return { peer, opened };
}

/** Closes every peer's connection that is still open or connecting, and forgets them all. */
export function closePeers(peers) {
  for (const peer of peers) {
    try {
      if (peer.connection.isOpen || peer.connection.isConnected) peer.connection.close();
    } catch {
      // already closing
    }
  }
  peers.clear();
}
