"""Pusher signatures for the Python suites: HMAC-SHA256 in lowercase hex, as a Pusher server
library computes it for HTTP API requests, channel auths, sign-ins and webhooks. Every suite
signs through here; a test that forges a signature changes the inputs, not the signer.
"""

from __future__ import annotations

import hashlib
import hmac
import time


def hmac_hex(secret: str | bytes, text: str | bytes) -> str:
    """Lowercase hex HMAC-SHA256 of `text` keyed with `secret`."""
    key = secret.encode() if isinstance(secret, str) else secret
    msg = text.encode() if isinstance(text, str) else text
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def channel_auth(app: dict, socket_id: str, channel: str, channel_data: str | None = None) -> str:
    """The `auth` of a private (or, with `channel_data`, presence) subscription: `key:signature`."""
    text = f"{socket_id}:{channel}" + (f":{channel_data}" if channel_data is not None else "")
    return f"{app['key']}:{hmac_hex(app['secret'], text)}"


def signin_auth(app: dict, socket_id: str, user_data: str) -> str:
    """The `auth` of a `pusher:signin`: `key:signature`."""
    return f"{app['key']}:{hmac_hex(app['secret'], f'{socket_id}::user::{user_data}')}"


def api_params(method: str, path: str, params: dict | list | None = None, body: bytes | str = b"", *,
               key: str, secret: str, timestamp: int | None = None, body_md5: str | None = None,
               signature: str | None = None) -> list[tuple[str, str]]:
    """The query pairs of an HTTP API request signed as a Pusher server library signs it:
    `params` plus auth_key, auth_timestamp (now unless given), auth_version, body_md5 (non-empty
    body only) and auth_signature, sorted by name. `body_md5` and `signature`, when given,
    replace the computed ones (forgeries)."""
    pairs = list(params.items()) if isinstance(params, dict) else list(params or [])
    pairs += [("auth_key", key),
              ("auth_timestamp", str(int(time.time()) if timestamp is None else timestamp)),
              ("auth_version", "1.0")]
    raw = body.encode() if isinstance(body, str) else body
    if raw:
        pairs.append(("body_md5", body_md5 or hashlib.md5(raw).hexdigest()))
    pairs.sort()
    to_sign = "&".join(f"{k}={v}" for k, v in pairs)
    pairs.append(("auth_signature", signature or hmac_hex(secret, f"{method}\n{path}\n{to_sign}")))
    return pairs
