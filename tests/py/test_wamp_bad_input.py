"""Bad input on WAMP v2 (raw frames, both serializers): malformed arrays, wrong types, unknown
message types, out-of-order messages, huge payloads, calls to missing procedures. Each gets the
protocol's answer (ABORT wamp.error.protocol_violation for a broken message, ERROR for a bad
request in a good message), herald survives, and a bystander session keeps working.

(v1 bad input, which closes with 1007, is in test_wamp_v1.py.)
"""

from __future__ import annotations

import json
import time

import msgpack
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from conftest import WAIT_S, make_sdk, uid
from wamp1_client import WAMP_APPS, wamp_herald

__all__ = ["wamp_herald"]

OPEN = WAMP_APPS["open"]
HELLO, WELCOME, ABORT, GOODBYE, ERROR = 1, 2, 3, 6, 8
PUBLISH, PUBLISHED, SUBSCRIBE, SUBSCRIBED, UNSUBSCRIBE, EVENT = 16, 17, 32, 33, 34, 36
CALL, RESULT, REGISTER, REGISTERED, UNREGISTER = 48, 50, 64, 65, 66
VIOLATION = "wamp.error.protocol_violation"
CLIENT_ROLES = {"roles": {"publisher": {}, "subscriber": {}, "caller": {}, "callee": {}}}


class RawV2:
    """A WAMP v2 peer on a plain WebSocket, so tests can send anything."""

    def __init__(self, herald, serializer: str = "json", path: str = "/ws"):
        self.serializer = serializer
        self.ws = connect(herald.v2_url(path), subprotocols=[f"wamp.2.{serializer}"], open_timeout=WAIT_S,
                          max_size=None, close_timeout=1, legacy=True)
        assert self.ws.subprotocol == f"wamp.2.{serializer}"
        self.seen: list = []
        self.close_code: int | None = None
        self.request = 0

    def encode(self, msg) -> str | bytes:
        return json.dumps(msg) if self.serializer == "json" else msgpack.packb(msg)

    def send(self, msg):
        self.ws.send(self.encode(msg))

    def send_raw(self, data: str | bytes):
        self.ws.send(data)

    def recv(self, timeout: float = WAIT_S):
        data = self.ws.recv(timeout=timeout)
        if self.serializer == "json":
            assert isinstance(data, str), "wamp.2.json must use text frames"
            msg = json.loads(data)
        else:
            assert isinstance(data, bytes), "wamp.2.msgpack must use binary frames"
            msg = msgpack.unpackb(data)
        self.seen.append(msg)
        return msg

    def expect(self, pred, what: str, timeout: float = WAIT_S):
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {what} within {timeout} s; seen {self.seen[-10:]}")
            try:
                msg = self.recv(remaining)
            except TimeoutError:
                continue
            if pred(msg):
                return msg

    def next_id(self) -> int:
        self.request += 1
        return self.request

    def hello(self, realm: str = OPEN["id"]):
        self.send([HELLO, realm, CLIENT_ROLES])
        welcome = self.recv()
        assert welcome[0] == WELCOME, welcome
        self.session_id = welcome[1]
        return welcome

    def subscribe(self, topic: str, options=None) -> int:
        req = self.next_id()
        self.send([SUBSCRIBE, req, options or {}, topic])
        answer = self.expect(lambda m: m[0] in (SUBSCRIBED, ERROR) and m[1 if m[0] == SUBSCRIBED else 2] == req,
                             f"answer to SUBSCRIBE {req}")
        assert answer[0] == SUBSCRIBED, answer
        return answer[2]

    def publish_ack(self, topic: str, *args):
        req = self.next_id()
        self.send([PUBLISH, req, {"acknowledge": True}, topic, list(args)])
        return self.expect(lambda m: (m[0] == PUBLISHED and m[1] == req) or (m[0] == ERROR and m[2] == req),
                           f"answer to PUBLISH {req}")

    def expect_abort(self, reason: str = VIOLATION):
        """The router's ABORT (or GOODBYE) with `reason`, then the socket closes."""
        msg = self.expect(lambda m: m[0] in (ABORT, GOODBYE), f"ABORT {reason}")
        assert msg[0] == ABORT, f"expected ABORT, got {msg}"
        assert msg[2] == reason, msg
        assert isinstance(msg[1], dict)
        self.expect_closed()
        return msg

    def expect_closed(self, timeout: float = WAIT_S) -> int | None:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"socket still open after {timeout} s; seen {self.seen[-5:]}")
            try:
                self.recv(remaining)
            except ConnectionClosed as closed:
                self.close_code = closed.rcvd.code if closed.rcvd else None
                return self.close_code
            except TimeoutError:
                continue

    def close(self):
        self.ws.close()


@pytest.fixture(params=["json", "msgpack"])
def serializer(request):
    return request.param


@pytest.fixture
def raw(wamp_herald, serializer):
    """Factory of raw v2 peers (the test's serializer); bystander proof and cleanup after the test."""
    opened: list[RawV2] = []

    def open_peer(ser: str | None = None, joined: bool = True) -> RawV2:
        peer = RawV2(wamp_herald, ser or serializer)
        opened.append(peer)
        if joined:
            peer.hello()
        return peer

    bystander = open_peer("json")
    topic = f"bad.{uid('bystander')}"
    bystander.subscribe(topic)
    yield open_peer
    # Whatever the test threw at herald, an unrelated session still gets its events.
    make_sdk(wamp_herald, OPEN).trigger(topic, "still", {"alive": True})
    event = bystander.expect(lambda m: m[0] == EVENT, "bystander EVENT")
    assert event[4] == [{"alive": True}], event
    for peer in opened:
        peer.close()
    wamp_herald.assert_alive()


# --- before and during HELLO --------------------------------------------------------------

HELLO_VIOLATIONS = {
    "not an array": {"hello": True},
    "empty array": [],
    "type is a string": ["1", "realm", {}],
    "realm is a number": [HELLO, 3001, CLIENT_ROLES],
    "details is a list": [HELLO, OPEN["id"], []],
    "missing details": [HELLO, OPEN["id"]],
    "subscribe before hello": [SUBSCRIBE, 1, {}, "a.b"],
    "unknown type before hello": [999, 1],
}


@pytest.mark.parametrize("msg", HELLO_VIOLATIONS.values(), ids=HELLO_VIOLATIONS.keys())
def test_bad_first_message_is_aborted(raw, msg):
    peer = raw(joined=False)
    peer.send(msg)
    peer.expect_abort()


def test_invalid_encoding_before_hello_is_aborted(raw, serializer):
    peer = raw(joined=False)
    peer.send_raw("[1, \"unterminated" if serializer == "json" else b"\xc1\x00")
    peer.expect_abort()


def test_second_hello_is_a_protocol_violation(raw):
    peer = raw()
    peer.send([HELLO, OPEN["id"], CLIENT_ROLES])
    peer.expect_abort()


def test_hello_with_empty_realm_or_bad_realm_uri(raw):
    peer = raw(joined=False)
    peer.send([HELLO, "", CLIENT_ROLES])
    msg = peer.expect(lambda m: m[0] == ABORT, "ABORT")
    assert msg[2] in ("wamp.error.no_such_realm", VIOLATION, "wamp.error.invalid_uri"), msg


# --- after WELCOME: broken messages end the session -----------------------------------------

SESSION_VIOLATIONS = {
    "not an array": "a string",
    "empty array": [],
    "unknown type 999": [999, 1, {}],
    "unknown type 7": [7, 1],
    "CANCEL (unsupported)": [49, 1, {}],
    "subscribe too short": [SUBSCRIBE, 1, {}],
    "subscribe request id string": [SUBSCRIBE, "1", {}, "a.b"],
    "subscribe request id zero": [SUBSCRIBE, 0, {}, "a.b"],
    "subscribe request id above 2^53": [SUBSCRIBE, 2 ** 53 + 1, {}, "a.b"],
    "subscribe request id negative": [SUBSCRIBE, -5, {}, "a.b"],
    "subscribe options is a list": [SUBSCRIBE, 1, [], "a.b"],
    "subscribe topic is a number": [SUBSCRIBE, 1, {}, 5],
    "publish args is a dict": [PUBLISH, 1, {}, "a.b", {"not": "a list"}],
    "publish kwargs is a list": [PUBLISH, 1, {}, "a.b", [], [1]],
    "publish too long": [PUBLISH, 1, {}, "a.b", [], {}, "extra"],
    "call without procedure": [CALL, 1, {}],
    "register procedure null": [REGISTER, 1, {}, None],
    "client sends EVENT": [EVENT, 1, 1, {}, []],
    "client sends WELCOME": [WELCOME, 1, {}],
    "client sends RESULT": [RESULT, 1, {}],
}


@pytest.mark.parametrize("msg", SESSION_VIOLATIONS.values(), ids=SESSION_VIOLATIONS.keys())
def test_bad_message_in_session_is_aborted(raw, msg):
    peer = raw()
    peer.send(msg)
    peer.expect_abort()


def test_undecodable_frame_in_session_is_aborted(raw, serializer):
    peer = raw()
    peer.send_raw("[32, 1, {}, " if serializer == "json" else b"\x94\x20\x01\x80")  # truncated msgpack array
    peer.expect_abort()


def test_wrong_frame_type_for_serializer(raw, serializer):
    """wamp.2.json is text frames, wamp.2.msgpack binary: the other kind ends the session."""
    peer = raw()
    if serializer == "json":
        peer.send_raw(msgpack.packb([SUBSCRIBE, 1, {}, "a.b"]))
    else:
        peer.send_raw(json.dumps([SUBSCRIBE, 1, {}, "a.b"]))
    try:
        msg = peer.expect(lambda m: m[0] in (ABORT, SUBSCRIBED, ERROR), "ABORT or an answer")
    except ConnectionClosed:
        return  # closed outright: acceptable
    assert msg[0] == ABORT and msg[2] == VIOLATION, msg


def test_deep_nesting_is_aborted_not_crashing(raw, serializer):
    peer = raw()
    if serializer == "json":
        peer.send_raw('[16, 1, {}, "a.b", [' + "[" * 10000 + "]" * 10000 + "]]")
    else:
        peer.send_raw(b"\x95\x10\x01\x80\xa3a.b\x91" + b"\x91" * 10000 + b"\x90")
    peer.expect_abort()


# --- after WELCOME: bad requests in good messages get ERROR, the session goes on -------------

def test_invalid_uri_gets_error_and_session_continues(raw):
    peer = raw()
    for bad in ("has space.x", "a..b", "", ".a", "a.#.b"):
        req = peer.next_id()
        peer.send([SUBSCRIBE, req, {}, bad])
        err = peer.expect(lambda m: m[0] in (ERROR, SUBSCRIBED), f"answer for {bad!r}")
        assert err[:3] == [ERROR, SUBSCRIBE, req] and err[4] == "wamp.error.invalid_uri", (bad, err)
    peer.subscribe(f"fine.{uid('after-bad-uri')}")


def test_overlong_uri_gets_invalid_uri(raw):
    peer = raw()
    req = peer.next_id()
    peer.send([SUBSCRIBE, req, {}, "a." + "b" * 5000])
    err = peer.expect(lambda m: m[0] in (ERROR, SUBSCRIBED), "answer")
    assert err[:3] == [ERROR, SUBSCRIBE, req] and err[4] == "wamp.error.invalid_uri", err
    peer.subscribe(f"fine.{uid('after-long-uri')}")


def test_v2_keepalive_closes_a_peer_that_never_answers_pings(wamp_herald):
    """A raw v2 peer on app `impatient` (1 s + 1 s) that ignores pings is disconnected."""
    from wamp1_client import OP_PING, Wamp1Client
    peer = Wamp1Client(wamp_herald.port, path="/ws", protocols=("wamp.2.json",), wait_welcome=False)
    try:
        assert peer.upgrade.header_values("Sec-WebSocket-Protocol") == ["wamp.2.json"]
        peer.auto_pong = False
        peer.send([HELLO, WAMP_APPS["impatient"]["id"], CLIENT_ROLES])
        assert peer.recv()[0] == WELCOME
        assert peer.read_frame(timeout=5).opcode == OP_PING
        closed = peer.expect_close(timeout=5)
        assert closed.code in (1000, 1001, 1002, 1006, 1008, None), closed.raw.hex(" ")
    finally:
        peer.close()


def test_bad_options_get_invalid_argument(raw):
    peer = raw()
    req = peer.next_id()
    peer.send([SUBSCRIBE, req, {"match": "regex"}, "a.b"])
    err = peer.expect(lambda m: m[0] in (ERROR, SUBSCRIBED), "answer")
    assert err[:3] == [ERROR, SUBSCRIBE, req] and err[4] == "wamp.error.invalid_argument", err
    req = peer.next_id()
    peer.send([CALL, req, {"timeout": "soon"}, "a.b"])
    err = peer.expect(lambda m: m[0] in (ERROR, RESULT), "answer")
    assert err[:3] == [ERROR, CALL, req] and err[4] == "wamp.error.invalid_argument", err
    req = peer.next_id()
    peer.send([PUBLISH, req, {"acknowledge": True, "exclude": "everyone"}, "a.b", []])
    err = peer.expect(lambda m: m[0] in (ERROR, PUBLISHED), "answer")
    assert err[:3] == [ERROR, PUBLISH, req] and err[4] == "wamp.error.invalid_argument", err
    peer.subscribe(f"fine.{uid('after-bad-options')}")


def test_unknown_subscription_and_registration_ids(raw):
    peer = raw()
    req = peer.next_id()
    peer.send([UNSUBSCRIBE, req, 424242])
    err = peer.expect(lambda m: m[0] == ERROR, "ERROR")
    assert err[:3] == [ERROR, UNSUBSCRIBE, req] and err[4] == "wamp.error.no_such_subscription", err
    req = peer.next_id()
    peer.send([UNREGISTER, req, 424242])
    err = peer.expect(lambda m: m[0] == ERROR, "ERROR")
    assert err[:3] == [ERROR, UNREGISTER, req] and err[4] == "wamp.error.no_such_registration", err


def test_call_to_missing_procedure_keeps_session(raw):
    peer = raw()
    for _ in range(3):
        req = peer.next_id()
        peer.send([CALL, req, {}, f"missing.{uid('proc')}", [1], {"k": "v"}])
        err = peer.expect(lambda m: m[0] in (ERROR, RESULT), "answer")
        assert err[:3] == [ERROR, CALL, req] and err[4] == "wamp.error.no_such_procedure", err
        assert isinstance(err[3], dict)
    assert peer.publish_ack(f"fine.{uid('after-missing')}", 1)[0] == PUBLISHED


def test_unregister_by_another_session_is_refused(raw):
    owner, thief = raw(), raw()
    req = owner.next_id()
    owner.send([REGISTER, req, {}, f"owned.{uid('proc')}"])
    registered = owner.expect(lambda m: m[0] in (REGISTERED, ERROR), "REGISTERED")
    assert registered[0] == REGISTERED
    req = thief.next_id()
    thief.send([UNREGISTER, req, registered[2]])
    err = thief.expect(lambda m: m[0] in (ERROR, 67), "answer")
    assert err[0] == ERROR and err[4] == "wamp.error.no_such_registration", err


def test_stray_yield_and_error_for_unknown_invocations_are_ignored(raw):
    """A late YIELD (after a call timed out) or ERROR for an unknown INVOCATION is dropped."""
    peer = raw()
    peer.send([70, 12345, {}, ["late"]])
    peer.send([ERROR, 68, 12346, {}, "com.example.late"])
    assert peer.publish_ack(f"stray.{uid('t')}", 1)[0] == PUBLISHED


def test_request_id_reuse_is_tolerated(raw):
    """Reusing a request id is the client's problem; herald answers each request."""
    peer = raw()
    topic = f"reuse.{uid('t')}"
    for _ in range(2):
        peer.send([PUBLISH, 7, {"acknowledge": True}, topic, [1]])
        ack = peer.expect(lambda m: m[0] in (PUBLISHED, ERROR), "PUBLISHED")
        assert ack[:2] == [PUBLISHED, 7], ack


# --- size -----------------------------------------------------------------------------------

def test_huge_message_is_refused_with_1009(raw, serializer):
    peer = raw()
    big = "z" * 200_000
    peer.send([PUBLISH, 1, {}, "huge.topic", [big]])
    code = peer.expect_closed()
    assert code == 1009, f"expected close 1009 for a 200 kB message, got {code}"


def test_large_message_under_limit_round_trips(raw, serializer):
    sub, pub = raw(), raw()
    topic = f"large.{uid('t')}"
    sub.subscribe(topic)
    blob = "w" * 60_000
    assert pub.publish_ack(topic, {"blob": blob})[0] == PUBLISHED
    event = sub.expect(lambda m: m[0] == EVENT, "EVENT")
    assert event[4] == [{"blob": blob}]


# --- GOODBYE --------------------------------------------------------------------------------

def test_goodbye_is_answered_with_goodbye_and_out(raw):
    peer = raw()
    peer.send([GOODBYE, {}, "wamp.close.close_realm"])
    reply = peer.expect(lambda m: m[0] == GOODBYE, "GOODBYE reply")
    assert reply == [GOODBYE, {}, "wamp.close.goodbye_and_out"] or (
        reply[0] == GOODBYE and reply[2] == "wamp.close.goodbye_and_out"), reply


def test_messages_after_goodbye_do_not_crash(raw):
    peer = raw()
    peer.send([GOODBYE, {}, "wamp.close.close_realm"])
    try:
        peer.send([SUBSCRIBE, 1, {}, "after.goodbye"])
    except ConnectionClosed:
        pass  # herald already closed after its GOODBYE reply
    peer.expect(lambda m: m[0] == GOODBYE, "GOODBYE reply")
    # The subscribe after GOODBYE must not have been honoured; the fixture's bystander check
    # proves herald is still serving.
    assert not [m for m in peer.seen if m[0] == SUBSCRIBED], peer.seen


def test_abrupt_disconnect_mid_session(raw, wamp_herald):
    peer = raw()
    peer.subscribe(f"abrupt.{uid('t')}")
    req = peer.next_id()
    peer.send([REGISTER, req, {}, f"abrupt.{uid('p')}"])
    peer.expect(lambda m: m[0] == REGISTERED, "REGISTERED")
    peer.ws.socket.close()  # no close frame, no GOODBYE
