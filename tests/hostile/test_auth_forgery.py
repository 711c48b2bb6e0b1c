"""Forged, replayed and stale signatures, for every kind of authentication herald accepts:
private and presence channel auth, user sign-in, and the HTTP API (pusher-protocol.md §4, §7, §10).

Documented answers:
- channel auth: any signature other than HMAC-SHA256(secret, "<socket_id>:<channel>"
  [":<channel_data>"]) under this app's key gets `pusher:subscription_error` status 401 (then a
  `pusher:error`), and the socket joins nothing: a publication on that channel does not reach
  it. A signature is bound to the socket id, so replaying one on another socket fails the same
  way. Hex case does not matter (the signature is compared as bytes, in constant time).
- sign-in: a bad `auth` for `user_data` is answered with `pusher:error` code 4009; the socket
  is not signed in (its `#server-to-user-` channel stays closed to it: 403).
- HTTP API: a missing `auth_*` parameter, unknown key, wrong signature, altered body, path,
  method or query, `auth_timestamp` 600 s or more away from the server clock, or a wrong
  `body_md5` is answered 401 and publishes nothing. A correctly signed request can be replayed
  while its timestamp is inside the 600 s window: the Pusher protocol has no nonce, and herald
  accepts it like hosted Pusher does (this suite records that, it does not endorse it).
"""

from __future__ import annotations

import hashlib
import json
import time

import pytest

from hostile_client import (APP, OTHER_APP, api_request, channel_auth, encode_query, hmac_hex, signed_query,
                      signin_auth)


def sub_error_status(sock, channel):
    msg = sock.next_json()
    assert msg["event"] == "pusher:subscription_error", msg
    assert msg["channel"] == channel
    assert sock.next_json()["event"] == "pusher:error"
    return json.loads(msg["data"])["status"]


def assert_not_subscribed(herald, sock, channel):
    """A publication on `channel` must not reach `sock`."""
    status, body = api_request_publish(herald, channel)
    assert status == 200, body
    assert_next_is_pong(sock)


def assert_next_is_pong(sock):
    """Nothing (no leaked event) arrives before the answer to a ping sent now."""
    sock.send_json({"event": "pusher:ping", "data": {}})
    msg = sock.next_json()
    assert msg["event"] == "pusher:pong", f"received before the pong: {msg}"


def api_request_publish(herald, channel):
    path = f"/apps/{APP['id']}/events"
    body = json.dumps({"name": "secret-event", "channel": channel, "data": "for members only"}).encode()
    return api_request(herald, "POST", path, body=body)


# --- private channels --------------------------------------------------------------------------------

def forged_private_auths(socket_id: str, channel: str) -> dict[str, str | None]:
    good = channel_auth(socket_id, channel)
    key, sig = good.split(":")
    return {
        "absent": None,
        "empty": "",
        "no-colon": sig,
        "key-only": f"{key}:",
        "wrong-key": f"{OTHER_APP['key']}:{sig}",
        "other-app-signature": channel_auth(socket_id, channel, app=OTHER_APP),
        "wrong-secret": f"{key}:{hmac_hex('not-the-secret', f'{socket_id}:{channel}')}",
        "other-socket-id": channel_auth("1234.5678", channel),
        "other-channel": channel_auth(socket_id, channel + "-other"),
        "with-channel-data": channel_auth(socket_id, channel, "{}"),
        "truncated": good[:-1],
        "extra-char": good + "0",
        "not-hex": f"{key}:{'zz' * 32}",
        "sha256-of-nothing": f"{key}:{hmac_hex(APP['secret'], '')}",
        "plain-sha256": f"{key}:{hashlib.sha256(f'{socket_id}:{channel}'.encode()).hexdigest()}",
        "secret-as-signature": f"{key}:{APP['secret']}",
        "double-colon": f"{key}::{sig}",
        "whitespace": f" {good} ",
    }


FORGERIES = list(forged_private_auths("1.1", "private-x"))


@pytest.mark.parametrize("prefix", ["private-", "private-encrypted-", "private-cache-"])
@pytest.mark.parametrize("forgery", FORGERIES)
def test_forged_private_channel_auth_gets_401(herald, pusher_socket, prefix, forgery):
    sock = pusher_socket()
    channel = f"{prefix}forged"
    auth = forged_private_auths(sock.socket_id, channel)[forgery]
    data = {} if auth is None else {"auth": auth}
    sock.send_json({"event": "pusher:subscribe", "data": {"channel": channel, **data}})
    assert sub_error_status(sock, channel) == 401
    assert_not_subscribed(herald, sock, channel)


def test_uppercase_hex_signature_is_accepted(pusher_socket):
    sock = pusher_socket()
    key, sig = channel_auth(sock.socket_id, "private-upper").split(":")
    ack = sock.subscribe("private-upper", auth=f"{key}:{sig.upper()}")
    assert ack["event"] == "pusher_internal:subscription_succeeded", ack


def test_channel_auth_replayed_on_another_socket_gets_401(pusher_socket):
    victim, attacker = pusher_socket(), pusher_socket()
    auth = channel_auth(victim.socket_id, "private-replay")
    assert victim.subscribe("private-replay", auth=auth)["event"] == "pusher_internal:subscription_succeeded"
    attacker.send_json({"event": "pusher:subscribe", "data": {"channel": "private-replay", "auth": auth}})
    assert sub_error_status(attacker, "private-replay") == 401


def test_channel_auth_replayed_after_reconnect_gets_401(pusher_socket):
    first = pusher_socket()
    auth = channel_auth(first.socket_id, "private-reconnect")
    first.shutdown()
    second = pusher_socket()
    second.send_json({"event": "pusher:subscribe", "data": {"channel": "private-reconnect", "auth": auth}})
    assert sub_error_status(second, "private-reconnect") == 401


# --- presence channels --------------------------------------------------------------------------------

MEMBER = json.dumps({"user_id": "alice", "user_info": {"role": "user"}})


@pytest.mark.parametrize("case", [
    "signed-other-member", "unsigned-member", "member-changed-after-signing", "signed-without-member",
    "signed-for-private", "whitespace-added",
])
def test_forged_presence_auth_gets_401(herald, pusher_socket, case):
    sock = pusher_socket()
    channel = "presence-forged"
    sid = sock.socket_id
    admin = json.dumps({"user_id": "alice", "user_info": {"role": "admin"}})
    auth, data = {
        "signed-other-member": (channel_auth(sid, channel, MEMBER), admin),
        "unsigned-member": (None, MEMBER),
        "member-changed-after-signing": (channel_auth(sid, channel, MEMBER), MEMBER.replace("alice", "bob")),
        "signed-without-member": (channel_auth(sid, channel), MEMBER),
        "signed-for-private": (channel_auth(sid, "private-forged", MEMBER), MEMBER),
        "whitespace-added": (channel_auth(sid, channel, MEMBER), MEMBER + " "),
    }[case]
    payload = {"channel": channel, "channel_data": data}
    if auth is not None:
        payload["auth"] = auth
    sock.send_json({"event": "pusher:subscribe", "data": payload})
    assert sub_error_status(sock, channel) == 401
    assert_not_subscribed(herald, sock, channel)


@pytest.mark.parametrize("channel_data,why", [
    ('{"user_info":{}}', "no user_id"),
    ('{"user_id":""}', "empty user_id"),
    ('{"user_id":{"id":1}}', "object user_id"),
    ('{"user_id":["a"]}', "array user_id"),
    ('{"user_id":true}', "bool user_id"),
    ('{"user_id":"' + "u" * 129 + '"}', "user_id over 128 chars"),
    ('{"user_id":"u","user_info":"' + "i" * 1100 + '"}', "user_info over 1 KiB"),
    ("not json", "not JSON"),
    ("[]", "array"),
    ("null", "null"),
], ids=lambda v: v if len(v) < 30 else v[:20])
def test_validly_signed_but_invalid_member_gets_400(pusher_socket, channel_data, why):
    sock = pusher_socket()
    channel = "presence-invalid-member"
    sock.send_json({"event": "pusher:subscribe", "data": {
        "channel": channel, "channel_data": channel_data, "auth": channel_auth(sock.socket_id, channel, channel_data)}})
    assert sub_error_status(sock, channel) == 400, why


def test_presence_auth_replayed_on_another_socket_gets_401(pusher_socket):
    victim, attacker = pusher_socket(), pusher_socket()
    auth = channel_auth(victim.socket_id, "presence-replay", MEMBER)
    attacker.send_json({"event": "pusher:subscribe", "data": {
        "channel": "presence-replay", "channel_data": MEMBER, "auth": auth}})
    assert sub_error_status(attacker, "presence-replay") == 401


# --- sign-in ---------------------------------------------------------------------------------------

USER = json.dumps({"id": "alice", "watchlist": ["bob"]})
# Without a watchlist: no watchlist_events frame follows signin_success.
PLAIN_USER = json.dumps({"id": "alice"})


def signin_error(sock):
    msg = sock.next_json()
    assert msg["event"] == "pusher:error", msg
    return msg["data"]["code"]


@pytest.mark.parametrize("case", [
    "empty", "no-colon", "wrong-key", "wrong-secret", "other-socket", "user-data-changed",
    "channel-style-signature", "truncated", "other-app",
])
def test_forged_signin_gets_4009_and_no_user(pusher_socket, case):
    sock = pusher_socket()
    sid = sock.socket_id
    good = signin_auth(sid, USER)
    auth, user_data = {
        "empty": ("", USER),
        "no-colon": (good.split(":")[1], USER),
        "wrong-key": (f"{OTHER_APP['key']}:{good.split(':')[1]}", USER),
        "wrong-secret": (f"{APP['key']}:{hmac_hex('nope', f'{sid}::user::{USER}')}", USER),
        "other-socket": (signin_auth("99.99", USER), USER),
        "user-data-changed": (good, USER.replace("alice", "mallory")),
        "channel-style-signature": (channel_auth(sid, USER), USER),
        "truncated": (good[:-2], USER),
        "other-app": (signin_auth(sid, USER, app=OTHER_APP), USER),
    }[case]
    sock.send_json({"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}})
    code = signin_error(sock)
    assert code == 4009, f"expected code 4009, got {code}"
    for user in ("alice", "mallory"):
        sock.send_json({"event": "pusher:subscribe", "data": {"channel": f"#server-to-user-{user}"}})
        assert sub_error_status(sock, f"#server-to-user-{user}") == 403


def test_signin_replayed_on_another_socket_gets_4009(pusher_socket):
    victim, attacker = pusher_socket(), pusher_socket()
    auth = signin_auth(victim.socket_id, USER)
    victim.send_json({"event": "pusher:signin", "data": {"auth": auth, "user_data": USER}})
    assert victim.event("pusher:signin_success")
    attacker.send_json({"event": "pusher:signin", "data": {"auth": auth, "user_data": USER}})
    assert signin_error(attacker) == 4009


def test_signed_in_user_cannot_open_another_users_channel(pusher_socket):
    sock = pusher_socket()
    sock.send_json({"event": "pusher:signin",
                    "data": {"auth": signin_auth(sock.socket_id, PLAIN_USER), "user_data": PLAIN_USER}})
    sock.event("pusher:signin_success")
    sock.send_json({"event": "pusher:subscribe", "data": {"channel": "#server-to-user-bob"}})
    assert sub_error_status(sock, "#server-to-user-bob") == 403
    ack = sock.subscribe("#server-to-user-alice")
    assert ack["event"] == "pusher_internal:subscription_succeeded", ack


# --- HTTP API ------------------------------------------------------------------------------------

EVENTS = f"/apps/{APP['id']}/events"
BODY = json.dumps({"name": "forged", "channel": "watch-forgery-target", "data": "x"}).encode()


def tamper(pairs, key, value=None, drop=False):
    out = [(k, v) for k, v in pairs if k != key]
    if not drop:
        out.append((key, value))
    return out


def forged_queries(now: int) -> dict[str, str]:
    good = signed_query("POST", EVENTS, body=BODY)
    sig = dict(good)["auth_signature"]
    return {
        "no-auth_key": encode_query(tamper(good, "auth_key", drop=True)),
        "no-auth_timestamp": encode_query(tamper(good, "auth_timestamp", drop=True)),
        "no-auth_version": encode_query(tamper(good, "auth_version", drop=True)),
        "no-auth_signature": encode_query(tamper(good, "auth_signature", drop=True)),
        "no-body_md5": encode_query(tamper(good, "body_md5", drop=True)),
        "unknown-key": encode_query(tamper(good, "auth_key", "nobody")),
        "other-app-key": encode_query(tamper(good, "auth_key", OTHER_APP["key"])),
        "other-app-signed": encode_query(signed_query("POST", EVENTS, body=BODY, app=OTHER_APP)),
        "wrong-secret": encode_query(tamper(good, "auth_signature", hmac_hex("wrong", "x"))),
        "empty-signature": encode_query(tamper(good, "auth_signature", "")),
        "truncated-signature": encode_query(tamper(good, "auth_signature", sig[:-1])),
        "extra-char-signature": encode_query(tamper(good, "auth_signature", sig + "a")),
        "non-hex-signature": encode_query(tamper(good, "auth_signature", "g" * 64)),
        "version-2": encode_query(tamper(good, "auth_version", "2.0")),
        "wrong-body_md5": encode_query(tamper(good, "body_md5", hashlib.md5(b"other").hexdigest())),
        "stale-601s": encode_query(signed_query("POST", EVENTS, body=BODY, timestamp=now - 601)),
        "stale-600s": encode_query(signed_query("POST", EVENTS, body=BODY, timestamp=now - 600)),
        "future-601s": encode_query(signed_query("POST", EVENTS, body=BODY, timestamp=now + 601)),
        "future-1-day": encode_query(signed_query("POST", EVENTS, body=BODY, timestamp=now + 86_400)),
        "epoch-0": encode_query(signed_query("POST", EVENTS, body=BODY, timestamp=0)),
        "negative": encode_query(signed_query("POST", EVENTS, body=BODY, timestamp=-1)),
        "huge-timestamp": encode_query(tamper(good, "auth_timestamp", "9" * 30)),
        "float-timestamp": encode_query(tamper(good, "auth_timestamp", f"{now}.5")),
        "text-timestamp": encode_query(tamper(good, "auth_timestamp", "now")),
        "duplicate-auth_key": encode_query(good + [("auth_key", APP["key"])]),
        "duplicate-signature": encode_query(good + [("auth_signature", sig)]),
        "param-added-after-signing": encode_query(good + [("info", "subscription_count")]),
        "signed-for-get": encode_query(signed_query("GET", EVENTS, body=BODY)),
        "signed-for-other-path": encode_query(signed_query("POST", f"/apps/{APP['id']}/batch_events", body=BODY)),
        "signed-for-other-app-path": encode_query(signed_query("POST", f"/apps/{OTHER_APP['id']}/events", body=BODY)),
        "signed-for-other-body": encode_query(signed_query("POST", EVENTS, body=BODY + b" ")),
        "bad-percent-encoding": encode_query(good).replace("auth_key=", "auth_key=%zz"),
        "invalid-utf8-param": encode_query(good) + "&x=%ff%fe",
    }


@pytest.mark.parametrize("forgery", list(forged_queries(0)))
def test_forged_api_request_gets_401_and_publishes_nothing(herald, pusher_socket, forgery):
    sock = pusher_socket()
    assert sock.subscribe("watch-forgery-target")["event"] == "pusher_internal:subscription_succeeded"
    query = forged_queries(int(time.time()))[forgery]
    status, body = api_request(herald, "POST", EVENTS, query=query, body=BODY)
    assert status == 401, f"{forgery}: {status} {body}"
    assert "error" in json.loads(body)
    assert_next_is_pong(sock)


@pytest.mark.parametrize("skew", [-590, -1, 0, 1, 590])
def test_timestamp_inside_the_window_is_accepted(herald, skew):
    query = encode_query(signed_query("POST", EVENTS, body=BODY, timestamp=int(time.time()) + skew))
    status, body = api_request(herald, "POST", EVENTS, query=query, body=BODY)
    assert status == 200, body


def test_replayed_request_inside_the_window_is_accepted_like_pusher(herald):
    query = encode_query(signed_query("POST", EVENTS, body=BODY))
    assert api_request(herald, "POST", EVENTS, query=query, body=BODY)[0] == 200
    assert api_request(herald, "POST", EVENTS, query=query, body=BODY)[0] == 200


def test_replayed_request_with_another_body_is_refused(herald):
    query = encode_query(signed_query("POST", EVENTS, body=BODY))
    other = json.dumps({"name": "forged", "channel": "watch-forgery-target", "data": "evil"}).encode()
    status, _ = api_request(herald, "POST", EVENTS, query=query, body=other)
    assert status == 401


@pytest.mark.parametrize("path", [
    f"/apps/{APP['id']}/channels", f"/apps/{APP['id']}/channels/presence-x",
    f"/apps/{APP['id']}/channels/presence-x/users",
])
def test_unsigned_read_endpoints_get_401(herald, path):
    status, _ = api_request(herald, "GET", path, query="")
    assert status == 401


def test_unsigned_terminate_connections_gets_401(herald, pusher_socket):
    sock = pusher_socket()
    sock.send_json({"event": "pusher:signin",
                    "data": {"auth": signin_auth(sock.socket_id, PLAIN_USER), "user_data": PLAIN_USER}})
    sock.event("pusher:signin_success")
    path = f"/apps/{APP['id']}/users/alice/terminate_connections"
    status, _ = api_request(herald, "POST", path, query=encode_query(tamper(signed_query("POST", path), "auth_signature", "0" * 64)))
    assert status == 401
    assert_next_is_pong(sock)
