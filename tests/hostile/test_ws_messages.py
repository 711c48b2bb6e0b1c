"""Hostile Pusher WebSocket messages: malformed JSON, wrong types in every field of every client
event, hostile channel names, oversized and invalid frames.

Documented answers (pusher-protocol.md §1-§7; RFC 6455 §7.4.1):
- ERROR: a message that is not a JSON object, or a known event with a missing or mistyped
  field, is answered with `pusher:error` whose `code` is null (non-fatal, spec §2); the
  connection stays open and in sync (a `pusher:ping` right after gets its `pusher:pong`).
- SUB_ERROR(s): a subscription herald refuses is answered with `pusher:subscription_error` on
  that channel with `status` s (400 invalid name or member data, 401 bad signature, 403 not
  yours), followed by a `pusher:error`; the connection stays open.
- CLIENT_EVENT_ERROR: a refused client event is answered with `pusher:error` code 4301; the
  connection stays open.
- PONG / SILENT: answered with `pusher:pong`, or not answered at all.
- CLOSE(c): the connection is failed with WebSocket close code c: 1002 protocol error,
  1007 invalid UTF-8, 1009 message over `max_message_bytes` (65536 by default).
"""

from __future__ import annotations

import json
import struct

import pytest

from hostile_client import channel_auth
from rawws import BINARY, CONT, PING, PONG, TEXT, frame

ERROR = ("error", None)
CLIENT_EVENT_ERROR = ("error", 4301)
PONG_ANSWER = ("pong", None)
SILENT = ("silent", None)


def SUB_ERROR(status):  # noqa: N802 - reads as a constant in the tables
    return ("sub_error", status)


def CLOSE(code):  # noqa: N802
    return ("close", code)


def check(sock, expected):
    kind, arg = expected
    if kind == "close":
        sock.expect_close(arg)
        return
    if kind == "silent":
        pong = sock.ping_pong()
        assert pong["event"] == "pusher:pong"
        return
    msg = sock.next_json()
    if kind == "pong":
        assert msg["event"] == "pusher:pong", msg
    elif kind == "error":
        assert msg["event"] == "pusher:error", msg
        assert msg["data"]["code"] == arg, msg
        assert isinstance(msg["data"]["message"], str) and msg["data"]["message"], msg
    elif kind == "sub_error":
        assert msg["event"] == "pusher:subscription_error", msg
        assert json.loads(msg["data"])["status"] == arg, msg
        follow = sock.next_json()
        assert follow["event"] == "pusher:error", follow
    else:
        raise AssertionError(f"unknown expectation {kind}")
    # Still open and in sync: nothing else was queued before this pong.
    assert sock.ping_pong()["event"] == "pusher:pong"


# --- malformed JSON ------------------------------------------------------------------------------

MALFORMED = {
    "empty": b"",
    "space": b" ",
    "open-brace": b"{",
    "close-brace": b"}",
    "open-bracket": b"[",
    "empty-array": b"[]",
    "array": b'[1,"pusher:ping"]',
    "null": b"null",
    "true": b"true",
    "number": b"1",
    "string": b'"pusher:ping"',
    "missing-value": b'{"event":}',
    "unterminated": b'{"event":"pusher:ping"',
    "extra-brace": b'{"event":"pusher:ping"}}',
    "trailing-garbage": b'{"event":"pusher:ping"} trailing',
    "two-objects": b'{"event":"pusher:ping"}{"event":"pusher:ping"}',
    "single-quotes": b"{'event':'pusher:ping'}",
    "bare-key": b'{event:"pusher:ping"}',
    "trailing-comma": b'{"event":"pusher:ping",}',
    "byte-order-mark": "\ufeff".encode() + b'{"event":"pusher:ping"}',
    "nan": b'{"event":NaN}',
    "infinity": b'{"event":"x","data":Infinity}',
    "huge-exponent": b'{"event":"pusher:subscribe","data":1e999999}',
    "nul-after-json": b'{"event":"pusher:ping"}\x00',
    "control-char-in-string": b'{"event":"pusher:\x01ping"}',
    "deep-arrays": b"[" * 60_000,
    "deep-objects": b'{"a":' * 12_000,
    "deep-data": b'{"event":"pusher:subscribe","data":' + b"[" * 5000 + b"]" * 5000 + b"}",
    "long-key": b'{"' + b"k" * 60_000 + b'":1}',
}


@pytest.mark.parametrize("payload", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_json_gets_pusher_error(pusher_socket, payload):
    sock = pusher_socket()
    sock.text(payload)
    check(sock, ERROR)


def test_lone_surrogate_escape_in_event_name_is_handled(pusher_socket):
    # Valid JSON syntax, not valid Unicode: either refused or treated as an unknown event.
    sock = pusher_socket()
    sock.text(b'{"event":"\\ud800"}')
    check(sock, ERROR)


def test_duplicate_event_key_uses_the_last_value(pusher_socket):
    # herald reads a repeated key the way JSON.parse does: the last value wins.
    sock = pusher_socket()
    sock.text(b'{"event":"pusher:subscribe","event":"pusher:ping"}')
    check(sock, PONG_ANSWER)


# --- wrong types in every field of every client event -------------------------------------------

WRONG = [1, 1.5, True, [], {}, ["pusher:ping"]]


@pytest.mark.parametrize("value", WRONG + [None], ids=[json.dumps(v) for v in WRONG + [None]])
def test_event_field_of_wrong_type(pusher_socket, value):
    sock = pusher_socket()
    sock.send_json({"event": value, "data": {}})
    check(sock, ERROR)


def test_event_field_missing(pusher_socket):
    sock = pusher_socket()
    sock.send_json({"data": {"channel": "x"}})
    check(sock, ERROR)


SUBSCRIBE_DATA = {
    "missing": ...,
    "null": None,
    "number": 1,
    "bool": True,
    "array": [],
    "string-not-json": "not json",
    "string-array": "[]",
    "string-number": "1",
    "string-object-wrong-channel": '{"channel":1}',
}


@pytest.mark.parametrize("data", SUBSCRIBE_DATA.values(), ids=SUBSCRIBE_DATA.keys())
def test_subscribe_data_of_wrong_type(pusher_socket, data):
    sock = pusher_socket()
    msg = {"event": "pusher:subscribe"}
    if data is not ...:
        msg["data"] = data
    sock.send_json(msg)
    check(sock, ERROR)


@pytest.mark.parametrize("channel", [..., None, 1, True, [], {}, ["a"]],
                         ids=["missing", "null", "number", "bool", "array", "object", "list"])
def test_subscribe_channel_of_wrong_type(pusher_socket, channel):
    sock = pusher_socket()
    data = {} if channel is ... else {"channel": channel}
    sock.send_json({"event": "pusher:subscribe", "data": data})
    check(sock, ERROR)


@pytest.mark.parametrize("field,value", [
    ("auth", 1), ("auth", []), ("auth", {}), ("auth", True),
    ("channel_data", 1), ("channel_data", {"user_id": "1"}), ("channel_data", []), ("channel_data", False),
])
def test_subscribe_optional_field_of_wrong_type(pusher_socket, field, value):
    sock = pusher_socket()
    sock.send_json({"event": "pusher:subscribe", "data": {"channel": "private-x", field: value}})
    check(sock, ERROR)


BAD_CHANNELS = {
    "empty": "",
    "space": "a b",
    "non-ascii": "caf\u00e9",
    "emoji": "\U0001F600",
    "slash": "a/b",
    "colon": "a:b",
    "quote": 'a"b',
    "backslash": "a\\b",
    "newline": "a\nb",
    "nul": "a\u0000b",
    "too-long": "a" * 201,
    "private-too-long": "private-" + "a" * 193,
    "hash": "#foo",
    "hash-server-to-user-empty": "#server-to-user-",
    "percent": "a%20b",
    "html": "<script>",
}


@pytest.mark.parametrize("name", BAD_CHANNELS.values(), ids=BAD_CHANNELS.keys())
def test_invalid_channel_name_gets_subscription_error_400(pusher_socket, name):
    sock = pusher_socket()
    sock.send_json({"event": "pusher:subscribe", "data": {"channel": name}})
    check(sock, SUB_ERROR(400))


def test_channel_name_of_exactly_200_chars_is_accepted(pusher_socket):
    sock = pusher_socket()
    msg = sock.subscribe("a" * 200)
    assert msg["event"] == "pusher_internal:subscription_succeeded", msg


@pytest.mark.parametrize("data", [..., None, 1, [], "x"], ids=["missing", "null", "number", "array", "string"])
def test_unsubscribe_data_of_wrong_type(pusher_socket, data):
    sock = pusher_socket()
    msg = {"event": "pusher:unsubscribe"}
    if data is not ...:
        msg["data"] = data
    sock.send_json(msg)
    check(sock, ERROR)


@pytest.mark.parametrize("channel", [..., None, 1, [], {}], ids=["missing", "null", "number", "array", "object"])
def test_unsubscribe_channel_of_wrong_type(pusher_socket, channel):
    sock = pusher_socket()
    sock.send_json({"event": "pusher:unsubscribe", "data": {} if channel is ... else {"channel": channel}})
    check(sock, ERROR)


@pytest.mark.parametrize("channel", ["never-subscribed", "private-never", "a b"])
def test_unsubscribe_from_a_channel_never_joined_is_ignored(pusher_socket, channel):
    sock = pusher_socket()
    sock.send_json({"event": "pusher:unsubscribe", "data": {"channel": channel}})
    check(sock, SILENT)


@pytest.mark.parametrize("data", [
    ..., None, 1, [], "x",
    {"auth": "k:s"},
    {"user_data": '{"id":"1"}'},
    {"auth": 1, "user_data": '{"id":"1"}'},
    {"auth": "k:s", "user_data": {"id": "1"}},
    {"auth": "k:s", "user_data": 1},
    {"auth": None, "user_data": None},
], ids=["missing", "null", "number", "array", "string", "no-user_data", "no-auth", "auth-number",
        "user_data-object", "user_data-number", "both-null"])
def test_signin_data_of_wrong_type(pusher_socket, data):
    sock = pusher_socket()
    msg = {"event": "pusher:signin"}
    if data is not ...:
        msg["data"] = data
    sock.send_json(msg)
    check(sock, ERROR)


@pytest.mark.parametrize("msg", [
    {"event": "client-x", "data": {}},
    {"event": "client-x", "channel": None, "data": {}},
    {"event": "client-x", "channel": 1, "data": {}},
    {"event": "client-x", "channel": ["private-x"], "data": {}},
    {"event": "client-x", "channel": "private-x"},
], ids=["no-channel", "channel-null", "channel-number", "channel-array", "no-data"])
def test_client_event_fields_of_wrong_type(pusher_socket, msg):
    sock = pusher_socket()
    sock.send_json(msg)
    check(sock, ERROR)


@pytest.mark.parametrize("channel", ["public-chan", "private-not-joined", "presence-not-joined",
                                     "private-encrypted-x"])
def test_client_event_on_a_channel_not_joined_is_refused(pusher_socket, channel):
    sock = pusher_socket()
    sock.send_json({"event": "client-x", "channel": channel, "data": {}})
    check(sock, CLIENT_EVENT_ERROR)


def test_client_event_on_a_public_channel_is_refused(pusher_socket):
    sock = pusher_socket()
    assert sock.subscribe("public-joined")["event"] == "pusher_internal:subscription_succeeded"
    sock.send_json({"event": "client-x", "channel": "public-joined", "data": {}})
    check(sock, CLIENT_EVENT_ERROR)


def _private(sock, channel="private-hostile"):
    ack = sock.subscribe(channel, auth=channel_auth(sock.socket_id, channel))
    assert ack["event"] == "pusher_internal:subscription_succeeded", ack
    return channel


@pytest.mark.parametrize("name,data", [
    ("client-" + "x" * 200, {}),
    ("client-big", "x" * 10_241),
    ("client-big-object", {"k": "v" * 10_240}),
], ids=["name-over-200", "data-over-10KiB", "object-over-10KiB"])
def test_oversize_client_event_is_refused(pusher_socket, name, data):
    sock = pusher_socket()
    channel = _private(sock)
    sock.send_json({"event": name, "channel": channel, "data": data})
    check(sock, CLIENT_EVENT_ERROR)


def test_deeply_nested_client_event_data_is_relayed_verbatim(pusher_socket):
    sender, receiver = pusher_socket(), pusher_socket()
    channel = _private(sender, "private-deep")
    _private(receiver, "private-deep")
    data = "[" * 5000 + "]" * 5000
    sender.text(b'{"event":"client-deep","channel":"private-deep","data":' + data.encode() + b"}")
    # Python's json module cannot parse 5000 levels; check the frame's bytes instead.
    opcode, payload = receiver.recv_message()
    assert opcode == TEXT and b'"client-deep"' in payload and b'"data":' + data.encode() in payload
    check(sender, SILENT)


def test_client_event_flood_is_rate_limited_not_fatal(pusher_socket):
    sender, receiver = pusher_socket(), pusher_socket()
    channel = _private(sender, "private-flood")
    _private(receiver, "private-flood")
    burst = b"".join(frame(TEXT, json.dumps({"event": "client-burst", "channel": channel, "data": {"i": i}}).encode())
                     for i in range(50))
    sender.send(burst)
    errors = [sender.next_json() for _ in range(40)]
    assert all(e["event"] == "pusher:error" and e["data"]["code"] == 4301 for e in errors), errors[:3]
    relayed = [receiver.next_json() for _ in range(10)]
    assert [r["event"] for r in relayed] == ["client-burst"] * 10
    assert receiver.ping_pong()["event"] == "pusher:pong", "more than 10 burst events were relayed"
    assert sender.ping_pong()["event"] == "pusher:pong"


@pytest.mark.parametrize("data", [None, 1, "x", [], {"nested": {"deep": [1, 2]}}],
                         ids=["null", "number", "string", "array", "object"])
def test_ping_with_any_data_gets_pong(pusher_socket, data):
    sock = pusher_socket()
    sock.send_json({"event": "pusher:ping", "data": data})
    check(sock, PONG_ANSWER)


def test_unsolicited_pusher_pong_is_ignored(pusher_socket):
    sock = pusher_socket()
    sock.send_json({"event": "pusher:pong", "data": {}})
    check(sock, SILENT)


@pytest.mark.parametrize("event", [
    "pusher:unknown", "pusher_internal:subscription_succeeded", "pusher_internal:member_added",
    "pusher:connection_established", "pusher:error", "my-event", "client", "",
])
def test_unknown_or_server_only_event_is_refused_and_not_relayed(pusher_socket, event):
    sock = pusher_socket()
    sock.send_json({"event": event, "channel": "watch-test_ws_messages", "data": {"forged": True}})
    check(sock, ERROR)


def test_thousand_pings_in_one_write_get_thousand_pongs(pusher_socket):
    sock = pusher_socket()
    sock.send(frame(TEXT, b'{"event":"pusher:ping","data":{}}') * 1000)
    for _ in range(1000):
        assert sock.next_json()["event"] == "pusher:pong"


def test_five_hundred_subscriptions_on_one_socket(pusher_socket):
    sock = pusher_socket()
    sock.send(b"".join(frame(TEXT, json.dumps({"event": "pusher:subscribe", "data": {"channel": f"many-{i}"}}).encode())
                       for i in range(500)))
    for _ in range(500):
        assert sock.next_json()["event"] == "pusher_internal:subscription_succeeded"
    check(sock, SILENT)


# --- frames --------------------------------------------------------------------------------------

def test_binary_frame_gets_pusher_error(pusher_socket):
    sock = pusher_socket()
    sock.send_frame(BINARY, b'{"event":"pusher:ping"}')
    check(sock, ERROR)


def test_websocket_ping_gets_pong(pusher_socket):
    sock = pusher_socket()
    sock.send_frame(PING, b"are you there")
    sock.expect(PONG, b"are you there")
    check(sock, SILENT)


def test_message_of_exactly_max_message_bytes_is_read(pusher_socket):
    sock = pusher_socket()
    body = b'{"event":"pusher:ping","data":"' + b"x" * (65536 - 33) + b'"}'
    assert len(body) == 65536
    sock.text(body)
    check(sock, PONG_ANSWER)


@pytest.mark.parametrize("how", ["one-frame", "fragments", "header-only-4GiB", "header-only-max"])
def test_message_over_max_message_bytes_closes_1009(pusher_socket, how):
    sock = pusher_socket()
    if how == "one-frame":
        sock.text(b'{"event":"pusher:ping","data":"' + b"x" * 65536 + b'"}')
    elif how == "fragments":
        sock.send(frame(TEXT, b"x" * 40_000, fin=False) + frame(CONT, b"x" * 40_000, fin=True))
    elif how == "header-only-4GiB":
        sock.send(bytes([0x81, 0xFF]) + struct.pack(">Q", 1 << 32) + b"\x00" * 4)
    else:
        sock.send(bytes([0x81, 0xFF]) + struct.pack(">Q", (1 << 63) - 1) + b"\x00" * 4)
    sock.expect_close(1009)


@pytest.mark.parametrize("payload", [b"\xff", b'{"event":"pusher:ping","data":"\xed\xa0\x80"}', b"\xc0\xaf"],
                         ids=["byte-ff", "surrogate-in-json", "overlong"])
def test_invalid_utf8_text_closes_1007(pusher_socket, payload):
    sock = pusher_socket()
    sock.text(payload)
    sock.expect_close(1007)


@pytest.mark.parametrize("bad", ["unmasked", "rsv1", "opcode-3", "opcode-b", "ping-126", "continuation",
                                 "fragmented-ping", "close-1-byte", "close-code-1005"])
def test_framing_violation_closes_1002(pusher_socket, bad):
    sock = pusher_socket()
    data = {
        "unmasked": frame(TEXT, b'{"event":"pusher:ping"}', mask=False),
        "rsv1": frame(TEXT, b'{"event":"pusher:ping"}', rsv=4),
        "opcode-3": frame(0x3, b""),
        "opcode-b": frame(0xB, b""),
        "ping-126": frame(PING, b"x" * 126),
        "continuation": frame(CONT, b"x"),
        "fragmented-ping": frame(PING, b"x", fin=False),
        "close-1-byte": frame(0x8, b"\x03"),
        "close-code-1005": frame(0x8, struct.pack(">H", 1005)),
    }[bad]
    sock.send(data)
    sock.expect_close(1002)


def test_client_close_is_answered(pusher_socket):
    sock = pusher_socket()
    sock.close(1000)
    sock.expect_close(1000)


def test_abrupt_disconnect_mid_frame_is_harmless(herald, pusher_socket):
    sock = pusher_socket()
    _private(sock, "private-abrupt")
    sock.send(frame(TEXT, b'{"event":"pusher:ping"}' * 100)[:50])
    sock.shutdown()
    other = pusher_socket()
    assert other.ping_pong()["event"] == "pusher:pong"
