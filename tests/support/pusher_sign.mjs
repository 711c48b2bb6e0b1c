//! Pusher signatures for the JavaScript suites: HMAC-SHA256 in lowercase hex, as a Pusher server
//! library computes it for HTTP API requests, channel auths and webhooks. Every suite signs
//! through here; a test that forges a signature changes the inputs, not the signer.

import { createHash, createHmac } from 'node:crypto';

/** Lowercase hex HMAC-SHA256 of `text` (a string or bytes) keyed with `secret`. */
export function hmacHex(secret, text) {
  return createHmac('sha256', secret).update(text).digest('hex');
}

/** Lowercase hex MD5. */
export function md5(text) {
  return createHash('md5').update(text).digest('hex');
}

/** The `auth` of a private (or, with `channelData`, presence) subscription: `key:signature`. */
export function channelAuth(app, socketId, channel, channelData) {
  const text = `${socketId}:${channel}${channelData === undefined ? '' : `:${channelData}`}`;
  return `${app.key}:${hmacHex(app.secret, text)}`;
}

/**
 * The query string of an HTTP API request signed as a Pusher server library signs it: `query`
 * plus auth_key, auth_timestamp, auth_version, body_md5 (non-empty body only), sorted by name,
 * then auth_signature. `bodyMd5` and `signature`, when given, replace the computed ones.
 */
export function apiQuery(method, reqPath, { query = {}, body, key, secret, timestamp, bodyMd5, signature }) {
  const params = { ...query, auth_key: key, auth_timestamp: String(timestamp), auth_version: '1.0' };
  if (body !== undefined && body !== '') params.body_md5 = bodyMd5 ?? md5(body);
  const sorted = Object.keys(params).sort().map((k) => `${k}=${params[k]}`).join('&');
  const sig = signature ?? hmacHex(secret, `${method}\n${reqPath}\n${sorted}`);
  const qs = Object.keys(params)
    .sort()
    .map((k) => `${encodeURIComponent(k)}=${encodeURIComponent(params[k])}`)
    .join('&');
  return `${qs}&auth_signature=${sig}`;
}

/** The `auth` of a `pusher:signin`: `key:signature`. */
export function signinAuth(app, socketId, userData) {
  return `${app.key}:${hmacHex(app.secret, `${socketId}::user::${userData}`)}`;
}
