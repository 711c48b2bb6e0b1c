#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target: valid messages of each protocol, built here from
the protocol documents (the Pusher Channels docs, the WAMP v1 spec and WAMP v2 Basic Profile,
EspoCRM's and Oro's PHP sources, RFC 6455), so libFuzzer starts from inputs that reach deep into
each parser instead of bouncing off the first byte.

Usage: fuzz/seeds.py CORPUS_DIR  -> CORPUS_DIR/<target>/seed-<sha1> (idempotent; stdlib only).
The input layouts match the targets' doc comments (fuzz/fuzz_targets/*.rs).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
import sys
import urllib.parse
from pathlib import Path

# Must match fuzz_targets/rest_signature.rs and presence_user_data.rs.
NOW = 1_700_000_000
KEY, SECRET, SOCKET = "fuzz-key", "fuzz-secret", "123.456"


def sign(text: str) -> str:
    return hmac.new(SECRET.encode(), text.encode(), hashlib.sha256).hexdigest()


# --- Pusher ------------------------------------------------------------------------------------

PRESENCE_DATA = json.dumps({"user_id": "42", "user_info": {"name": "Ada", "tags": [1, 2.5, None, True]}})
USER_DATA = json.dumps({"id": "42", "user_info": {"name": "Ada"}, "watchlist": ["1", 2, "three"]})


def pusher_client_msgs() -> list[bytes]:
    msgs = [
        {"event": "pusher:ping", "data": {}},
        {"event": "pusher:pong", "data": {}},
        {"event": "pusher:subscribe", "data": {"channel": "my-channel"}},
        {"event": "pusher:subscribe", "data": {"channel": "cache-news", "auth": ""}},
        {"event": "pusher:subscribe", "data": {"channel": "private-orders",
                                               "auth": f"{KEY}:{sign(SOCKET + ':private-orders')}"}},
        {"event": "pusher:subscribe", "data": {"channel": "presence-room", "channel_data": PRESENCE_DATA,
                                               "auth": f"{KEY}:{sign(SOCKET + ':presence-room:' + PRESENCE_DATA)}"}},
        {"event": "pusher:subscribe", "data": json.dumps({"channel": "double-encoded"})},
        {"event": "pusher:subscribe", "data": {"channel": "#server-to-user-42"}},
        {"event": "pusher:unsubscribe", "data": {"channel": "my-channel"}},
        {"event": "pusher:signin", "data": {"user_data": USER_DATA,
                                            "auth": f"{KEY}:{sign(SOCKET + '::user::' + USER_DATA)}"}},
        {"event": "client-typing", "channel": "private-chat", "data": {"user": "Ada", "text": "h\u00e9llo \u2603"}},
        {"event": "client-raw", "channel": "presence-room", "data": "a string payload"},
        {"event": "client-null", "channel": "private-chat", "data": None},
        {"event": "client-nested", "channel": "private-chat", "data": {"a": [[[{"b": [1e308, -0.0]}]]]}},
        {"event": "my-app-event", "data": {}},
    ]
    return [json.dumps(m).encode() for m in msgs] + [
        b'{"event":"pusher:ping"}',
        b'{"data":{"channel":"x"},"event":"pusher:subscribe","extra":true}',
        b'{"event":"client-esc","channel":"private-c","data":"\\u0000\\ud83d\\ude00\\"\\\\"}',
    ]


def channel_names() -> list[bytes]:
    names = ["my-channel", "private-orders", "presence-room", "private-encrypted-secret",
             "private-cache-x", "presence-cache-y", "cache-z", "private-encrypted-cache-q",
             "#server-to-user-42", "a_b-c=d@e,f.g;h", "x" * 200, "private-" + "y" * 192]
    return [bytes([limit]) + n.encode() for n in names for limit in (200, 10)]


def presence_user_data() -> list[bytes]:
    channel_data = [PRESENCE_DATA, '{"user_id":42}', '{"user_id":"u","user_info":null}',
                    '{"user_id":"' + "u" * 128 + '"}', '{"user_info":{},"user_id":"\\u00e9"}']
    user_data = [USER_DATA, '{"id":"1"}', '{"id":"1","watchlist":[]}', '{"id":"1","watchlist":null}']
    return [b"\x00" + d.encode() for d in channel_data] + [b"\x01" + d.encode() for d in user_data]


def rest_requests() -> list[bytes]:
    def signed(method: str, path: str, params: list[tuple[str, str]], body: bytes = b"") -> bytes:
        params = params + [("auth_key", KEY), ("auth_timestamp", str(NOW)), ("auth_version", "1.0")]
        if body:
            params.append(("body_md5", hashlib.md5(body).hexdigest()))
        params.sort()
        to_sign = "&".join(f"{k}={v}" for k, v in params)
        params.append(("auth_signature", sign(f"{method}\n{path}\n{to_sign}")))
        query = urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
        return f"{method}\n{path}\n{query}\n".encode() + body

    event = json.dumps({"name": "my-event", "channels": ["a", "b"], "data": '{"x":1}', "socket_id": "1.2"}).encode()
    batch = json.dumps({"batch": [{"name": "e", "channel": "a", "data": "d", "info": "subscription_count"}]}).encode()
    return [
        signed("POST", "/apps/1/events", [], event),
        signed("POST", "/apps/1/batch_events", [], batch),
        signed("GET", "/apps/1/channels", [("filter_by_prefix", "presence-"), ("info", "user_count")]),
        signed("GET", "/apps/1/channels/presence-room", [("info", "user_count,subscription_count")]),
        signed("GET", "/apps/1/channels/presence-room/users", []),
        signed("POST", "/apps/1/users/42/terminate_connections", []),
        signed("GET", "/apps/1/channels", [("info[]", "a"), ("info[]", "b")]),
        b"GET\n/apps/1/channels\nauth_key=fuzz-key&auth_timestamp=1&auth_version=1.0&auth_signature=00\n",
    ]


# --- WebSocket -----------------------------------------------------------------------------------

def ws_frame(opcode: int, payload: bytes, fin: bool = True, masked: bool = True) -> bytes:
    n = len(payload)
    first = (0x80 if fin else 0) | opcode
    bit = 0x80 if masked else 0
    head = bytes([first, bit | n]) if n < 126 else (
        bytes([first, bit | 126]) + struct.pack(">H", n) if n < 65536 else
        bytes([first, bit | 127]) + struct.pack(">Q", n))
    if not masked:
        return head + payload
    key = b"\x37\xfa\x21\x3d"
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def ws_streams() -> list[bytes]:
    def stream(frames: list[bytes], flags: int = 0, sizes: bytes = b"") -> bytes:
        return bytes([flags, len(sizes)]) + sizes + b"".join(frames)

    hello = "Hello-µ@ßöäüàá-UTF-8!!".encode()
    masked = [
        [ws_frame(0x1, b"Hello")],
        [ws_frame(0x2, bytes(range(256)))],
        [ws_frame(0x1, hello[:7], fin=False), ws_frame(0x9, b"ping"), ws_frame(0x0, hello[7:])],
        [ws_frame(0x9, b""), ws_frame(0xA, b"pong"), ws_frame(0x8, b"\x03\xe8bye")],
        [ws_frame(0x2, b"x" * 300)],
        [ws_frame(0x1, b"y" * 70000)],
        [ws_frame(0x8, b"")],
    ]
    out = [stream(f) for f in masked]
    out += [stream(f, sizes=b"\x01\x02\x03\x05\x08") for f in masked[:4]]
    out += [stream([ws_frame(0x1, b"server text", masked=False), ws_frame(0x8, b"\x03\xe9", masked=False)], flags=1)]
    out += [stream(masked[1], flags=2), stream(masked[4], flags=4)]
    return out


# --- WAMP ----------------------------------------------------------------------------------------

def wamp_v1() -> list[bytes]:
    msgs = [
        [1, "event", "http://example.com/event#"],
        [2, "call-1", "http://example.com/rpc#add", 1, 2],
        [2, 7, "event:add", {"a": [1, 2]}],
        [5, "http://example.com/topic"],
        [5, "event:topic"],
        [6, "http://example.com/topic"],
        [7, "http://example.com/topic", {"text": "hello"}],
        [7, "event:topic", "payload", True],
        [7, "event:topic", None, ["sess-1", "sess-2"], ["sess-3"]],
        ["5", "loose type code"],
    ]
    return [json.dumps(m).encode() for m in msgs]


WAMP_V2 = [
    [1, "realm1", {"roles": {"publisher": {}, "subscriber": {"features": {"pattern_based_subscription": True}}},
                   "agent": "seed"}],
    [3, {"message": "bye"}, "wamp.error.no_such_realm"],
    [6, {}, "wamp.close.close_realm"],
    [8, 68, 12, {}, "com.example.error", ["reason"], {"code": 7}],
    [16, 1, {}, "com.example.topic"],
    [16, 2, {"acknowledge": True, "exclude_me": False, "exclude": [1], "eligible": [2, 3]},
     "com.example.topic", [1, "two", 3.5, None, True], {"k": "v"}],
    [32, 3, {}, "com.example.topic"],
    [32, 4, {"match": "prefix"}, "com.example"],
    [32, 5, {"match": "wildcard"}, "com..topic"],
    [34, 6, 9007199254740992],
    [48, 7, {"timeout": 1000}, "com.example.add", [1, 2]],
    [48, 8, {}, "com.example.kw", [], {"a": {"nested": [1, {"b": []}]}}],
    [64, 9, {}, "com.example.add"],
    [66, 10, 11],
    [70, 12, {}, [3]],
    [70, 13, {}, [], {"result": "ok"}],
]


def msgpack(value) -> bytes:
    """A minimal MessagePack encoder for the seed values above (spec: msgpack/msgpack spec.md)."""
    if value is None:
        return b"\xc0"
    if value is True:
        return b"\xc3"
    if value is False:
        return b"\xc2"
    if isinstance(value, int):
        if 0 <= value < 128:
            return bytes([value])
        if 0 <= value < 1 << 64:
            return b"\xcf" + struct.pack(">Q", value)
        return b"\xd3" + struct.pack(">q", value)
    if isinstance(value, float):
        return b"\xcb" + struct.pack(">d", value)
    if isinstance(value, str):
        data = value.encode()
        return (bytes([0xA0 | len(data)]) if len(data) < 32 else b"\xd9" + bytes([len(data)])) + data
    if isinstance(value, bytes):
        return b"\xc4" + bytes([len(value)]) + value
    if isinstance(value, list):
        return bytes([0x90 | len(value)]) + b"".join(msgpack(v) for v in value)
    if isinstance(value, dict):
        return bytes([0x80 | len(value)]) + b"".join(msgpack(k) + msgpack(v) for k, v in value.items())
    raise TypeError(type(value))


def wamp_v2_json() -> list[bytes]:
    extra = [b'[16,14,{},"com.example.bin",["\\u0000AQID"]]', b'[48,15,{},"x",[-1,1.5e300,-9007199254740991]]']
    return [json.dumps(m).encode() for m in WAMP_V2] + extra


def wamp_v2_msgpack() -> list[bytes]:
    extra = [msgpack([16, 14, {}, "com.example.bin", [b"\x01\x02\x03"]]), msgpack([48, 15, {}, "x", [-1, 1.5e300]])]
    return [msgpack(m) for m in WAMP_V2] + extra


# --- EspoCRM and Oro ---------------------------------------------------------------------------

def espo_submissions() -> list[bytes]:
    """ZeroMQ messages as EspoCRM's `Submission::submit()` writes them, and the refused shapes."""
    msgs = [
        {"userId": "6627a", "topicId": "newNotification"},
        {"createdById": "u1", "noteId": "n1", "pin": False, "topicId": "streamUpdate.Account.a1"},
        {"topicId": "x", "userId": None},
        {"topicId": "x", "userId": ""},
        {"topicId": "x", "userId": 7},
        {"topicId": "x", "userId": 0.0},
        {"topicId": "recordUpdate.Lead.l1", "userId": "0", "nested": {"a": [1, 2.5e-3, "\u2603"]}},
        {"topicId": "popupNotifications.event", "userId": False},
    ]
    return [json.dumps(m).encode() for m in msgs] + [
        b' {"topicId":"ws-around"}\n',
        b'{"topicId":"x","topicId":"y"}',
        b'{"topicId":"x","userId":["u1"]}',
        b'["newNotification","u1"]',
        b'"newNotification"',
        b'{"userId":"u1"}',
        b'{"topicId":""}',
    ]


# Must match fuzz_targets/oro_ticket.rs.
ORO_NOW_CREATED = "2026-07-02T09:02:11+00:00"
ORO_PASSWORD, ORO_SECRET = "fuzz-password-hash", "fuzz-secret"


def oro_digest(nonce: str, created: str, password: str, secret: str) -> str:
    """Symfony's MessageDigestPasswordHasher (sha512, 5000 rounds, base64) as Oro uses it."""
    salted = f"{nonce}|{created}|{password}".encode() + (f"{{{secret}}}".encode() if secret else b"")
    d = hashlib.sha512(salted).digest()
    for _ in range(1, 5000):
        d = hashlib.sha512(d + salted).digest()
    return base64.b64encode(d).decode()


def oro_tickets() -> list[bytes]:
    def query(text: str, quote: bool = True) -> bytes:
        b64 = base64.b64encode(text.encode()).decode()
        return ("x=1&ticket=" + (urllib.parse.quote(b64, safe="") if quote else b64)).encode()

    out = []
    for user, nonce, created in [
        ("", "0123456789abcdef", ORO_NOW_CREATED),
        ("admin", "fedcba9876543210", "2026-07-02T11:02:11+02:00"),
        ("ada@example.com", "00ff00ff00ff00ff", "2026-07-02T09:02:11.123456Z"),
        ("bob", "1111222233334444", "2026-07-02 09:01:00"),
        ("eve", "5555666677778888", "2026-07-02T04:02:11-05"),
    ]:
        text = f"{oro_digest(nonce, created, ORO_PASSWORD, ORO_SECRET)};{user};{nonce};{created}"
        out += [query(text), query(text, quote=False)]
    # The PHP vectors of the unit tests (another secret: they parse but do not verify here).
    out += [
        b"x=1&ticket=TzNxTTJHTWN6MFIvZXVLNWNhdzJlS2dTM0s2UFNYSFNrVWJRanVCa1J3Y3VJd3NSVjMzMy9PdTJoN2gxQ0srY1ZwaDdrZTlwNkpoQnVIWjFkME9vdmc9PTs7MDEyMzQ1Njc4OWFiY2RlZjsyMDI2LTA3LTAyVDA5OjAyOjExKzAwOjAw",
        b"ticket=ZDt1O247YztleHRyYQ==",
        b"ticket=YTtiO2M=",
        b"a=b",
        b"ticket=",
        b"2026-07-02T09:02:11+0200",
    ]
    return out


# --- Scale-out ----------------------------------------------------------------------------------

def envelope(flags: int, kind: int, fields: list[bytes], data: bytes, filter_ids=None, publisher=None,
             version: int = 2, node: int = 0x2A) -> bytes:
    """A node-to-node envelope (crates/herald-protocol/src/cluster/envelope.rs), little-endian."""
    def sized(b: bytes) -> bytes:
        return struct.pack("<I", len(b)) + b

    def ids(values: list[int]) -> bytes:
        return struct.pack("<I", len(values)) + b"".join(struct.pack("<Q", v) for v in values)

    out = bytes([version]) + struct.pack("<QQQ", node, 7, 9007199254740993) + bytes([flags, kind])
    out += b"".join(sized(f) for f in fields)
    if filter_ids is not None:
        exclude, eligible = filter_ids
        out += ids(exclude) + (b"\x01" + ids(eligible) if eligible is not None else b"\x00")
    if publisher is not None:
        session, authid, authrole = publisher
        out += struct.pack("<Q", session) + sized(authid) + sized(authrole)
    return out + sized(data)


def cluster_envelopes() -> list[bytes]:
    wamp = msgpack([["hi", b"\x00\xff", 0.1, None, -3], {"event": "ev", "n": [True]}])
    return [
        envelope(0, 0, [b"news", b"ev"], b'{"id":1}'),
        envelope(2, 0, [b"private-orders", b"created", b"123.456"], "payload \u2603".encode()),
        envelope(6, 1, [b"presence-room", b"client-typing", b"1.2", b"u-7"], b'{"typing":true,"n":1.5}'),
        envelope(1 | 8 | 16, 2, [b"com.example.topic", b"com.example.topic"], wamp,
                 filter_ids=([5, 6], [7]), publisher=(11, b"ada", b"admin")),
        envelope(8, 2, [b"com.example", b"com.example"], msgpack([[], {}]), filter_ids=([], None)),
        envelope(0, 0, [b"news", b"ev"], b"d", version=1),
        envelope(0, 0, [b"news", b"ev"], b"d", version=3, node=2**64 - 1),
    ]


TARGETS = {
    "pusher_client_msg": pusher_client_msgs,
    "rest_signature": rest_requests,
    "channel_name": channel_names,
    "presence_user_data": presence_user_data,
    "ws_decoder": ws_streams,
    "wamp_v1": wamp_v1,
    "wamp_v2_json": wamp_v2_json,
    "wamp_v2_msgpack": wamp_v2_msgpack,
    "espo_submission": espo_submissions,
    "oro_ticket": oro_tickets,
    "cluster_envelope": cluster_envelopes,
}


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    root = Path(sys.argv[1])
    total = 0
    for target, make in TARGETS.items():
        out = root / target
        out.mkdir(parents=True, exist_ok=True)
        for seed in make():
            (out / f"seed-{hashlib.sha1(seed).hexdigest()}").write_bytes(seed)
            total += 1
    print(f"seeds.py: {total} seeds for {len(TARGETS)} targets in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
