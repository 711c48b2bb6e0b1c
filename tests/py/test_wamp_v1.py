"""WAMP v1 (the `wamp` subprotocol of Ratchet 0.4 / autobahn 0.8) on a `protocol = "wamp1"`
listener, driven by a raw socket client, as docs/wamp.md describes it.

Absence of a message is always proven by ordering, never by waiting: events of one topic reach a
subscriber in publication order, and a CALL (answered with CALLERROR) is a barrier for everything
the same socket sent before it.
"""

from __future__ import annotations

import json
import socket
import struct
import time

import pytest

from conftest import WAIT_S, make_sdk, uid
from wamp1_client import (
    WAMP_APPS,
    CALL, CALLERROR, EVENT, OP_CLOSE, OP_CONT, OP_PING, OP_TEXT, PREFIX, PUBLISH, SESSION_ID, SUBSCRIBE,
    UNSUBSCRIBE, WELCOME, HandshakeRefused, Wamp1Client, accept_value, upgrade_request, v1, wamp_herald,
)

__all__ = ["v1", "wamp_herald"]  # fixtures, imported so pytest finds them

CLOSE_1007 = b"\x88\x02\x03\xef"


def topic(name: str = "v1") -> str:
    return f"com.herald.{uid(name)}"


# --- W1, W2: handshake ---------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/ws", "/wss?x=1", "/some/deep/path?authToken=abc&userId=u1"])
def test_w1_upgrades_on_any_path(wamp_herald, path):
    client = Wamp1Client(wamp_herald.v1_port(), path=path)
    try:
        assert client.upgrade.status == 101
        assert client.welcome[0] == WELCOME
    finally:
        client.close()


def test_w1_malformed_upgrade_gets_plain_http_4xx(wamp_herald):
    sock, answer, _ = upgrade_request(wamp_herald.v1_port(), omit=("Sec-WebSocket-Key",))
    try:
        assert 400 <= answer.status < 500, f"expected 4xx for an upgrade without a key, got {answer.status}"
    finally:
        sock.close()


def test_w2_subprotocol_wamp_echoed_exactly(wamp_herald):
    sock, answer, key = upgrade_request(wamp_herald.v1_port(), protocols=("wamp",))
    try:
        assert answer.status == 101, answer
        assert answer.header_values("Sec-WebSocket-Protocol") == ["wamp"]
        assert answer.header_values("Sec-WebSocket-Accept") == [accept_value(key)]
        # No permessage-deflate was offered, none may be accepted.
        assert answer.header_values("Sec-WebSocket-Extensions") == []
    finally:
        sock.close()


def test_w2_wamp_chosen_among_several_offers(wamp_herald):
    sock, answer, _ = upgrade_request(wamp_herald.v1_port(), protocols=("wamp.2.json", "wamp"))
    try:
        assert answer.status == 101
        assert answer.header_values("Sec-WebSocket-Protocol") == ["wamp"]
    finally:
        sock.close()


@pytest.mark.parametrize("offer", [(), ("wamp.2.json",)], ids=["nothing", "wamp.2.json"])
def test_w2_default_listener_is_lenient_like_gos_without_wamp(v1, offer):
    """Oro's (Gos) non-strict mode: upgrade anyway, no Sec-WebSocket-Protocol, WELCOME as usual."""
    client = v1(protocols=offer)
    assert client.upgrade.header_values("Sec-WebSocket-Protocol") == []
    assert client.welcome[0] == WELCOME and client.welcome[2] == 1


@pytest.mark.parametrize("offer", [(), ("wamp.2.json",), ("foo",)], ids=["nothing", "wamp.2.json", "foo"])
def test_w2_strict_listener_refuses_client_not_offering_wamp_with_426(wamp_herald, offer):
    """Espo's (Ratchet default) strict mode: `strict_subprotocol = true` answers HTTP 426."""
    with pytest.raises(HandshakeRefused) as refused:
        Wamp1Client(wamp_herald.v1_port("strict"), protocols=offer)
    assert refused.value.status == 426


def test_w2_strict_listener_accepts_wamp(v1):
    client = v1("strict")
    assert client.upgrade.header_values("Sec-WebSocket-Protocol") == ["wamp"]
    assert client.welcome[0] == WELCOME


def test_listener_of_disabled_app_serves_no_session(wamp_herald):
    """`enabled = false` switches the app off for every protocol: the v1 listener refuses the
    upgrade or closes the socket at once; it never runs a session."""
    try:
        client = Wamp1Client(wamp_herald.v1_port("disabled"), wait_welcome=False)
    except HandshakeRefused as refused:
        assert 400 <= refused.status < 600, refused.status
        return
    try:
        closed = client.expect_close()
        assert not [m for m in client.messages if m and m[0] == WELCOME], \
            f"a disabled app's v1 listener sent WELCOME before closing ({closed.raw.hex(' ')})"
    finally:
        client.close()


# --- W4 (and WELCOME) ----------------------------------------------------------------------

def test_w4_welcome_is_first_with_unique_session_ids(v1):
    clients = [v1() for _ in range(5)]
    ids = set()
    for client in clients:
        welcome = client.welcome
        assert len(welcome) == 4, welcome
        assert welcome[0] == WELCOME and welcome[2] == 1
        assert isinstance(welcome[1], str) and SESSION_ID.fullmatch(welcome[1]), welcome[1]
        assert not set('[]."') & set(welcome[1])
        assert isinstance(welcome[3], str) and welcome[3].startswith("herald/"), welcome[3]
        ids.add(welcome[1])
        # WELCOME is a single unfragmented text frame.
        assert client.frames[0].opcode == OP_TEXT and client.frames[0].fin
    assert len(ids) == len(clients)


# --- W3: frames ----------------------------------------------------------------------------

def test_w3_fragmented_publish_is_reassembled(v1):
    sub, pub = v1(), v1()
    t = topic("frag")
    sub.subscribe(t)
    text = json.dumps([PUBLISH, t, {"parts": "three fragments", "n": [1, 2, 3]}]).encode()
    pub.send_frame(OP_TEXT, text[:5], fin=False)
    pub.send_frame(OP_CONT, text[5:12], fin=False)
    pub.send_frame(OP_CONT, text[12:], fin=True)
    assert sub.expect_event(t) == {"parts": "three fragments", "n": [1, 2, 3]}


def test_w3_ping_answered_with_pong_same_payload(v1):
    client = v1()
    client.send_frame(OP_PING, b"are-you-there")
    client.sync()
    assert client.pongs == [b"are-you-there"]


def test_w3_control_frame_between_fragments(v1):
    sub, pub = v1(), v1()
    t = topic("frag-ping")
    sub.subscribe(t)
    text = json.dumps([PUBLISH, t, "split"]).encode()
    pub.send_frame(OP_TEXT, text[:4], fin=False)
    pub.send_frame(OP_PING, b"mid")
    pub.send_frame(OP_CONT, text[4:], fin=True)
    assert sub.expect_event(t) == "split"
    pub.sync()
    assert pub.pongs == [b"mid"]


def test_w3_unmasked_client_frame_is_a_protocol_error_1002(v1):
    victim = v1()
    victim.send_frame(OP_TEXT, json.dumps([SUBSCRIBE, "x"]).encode(), mask=False)
    closed = victim.expect_close()
    assert closed.code == 1002, closed.raw.hex(" ")


def test_w3_fragments_adding_up_past_the_limit_close_1009(v1):
    bystander, victim = v1(), v1()
    t = topic("frag-big")
    bystander.subscribe(t)
    for i in range(20):
        victim.send_frame(OP_TEXT if i == 0 else OP_CONT, b"x" * 10_000, fin=False)
    closed = victim.expect_close()
    assert closed.code == 1009, closed.raw.hex(" ")
    v1().publish(t, "fine")
    assert bystander.expect_event(t) == "fine"


def test_w3_abrupt_close_frees_subscriptions(wamp_herald, v1):
    """A v1 subscriber makes the hub channel occupied; killing its TCP connection frees it."""
    sdk = make_sdk(wamp_herald, WAMP_APPS["open"])
    name = uid("v1-gone")
    client = v1()
    client.subscribe(name)
    assert sdk.channel_info(name)["occupied"] is True
    client.abort()
    # herald notices the EOF asynchronously and nothing announces it: poll the HTTP API with a
    # deadline (the one place these tests poll).
    deadline = time.monotonic() + WAIT_S
    while sdk.channel_info(name)["occupied"]:
        assert time.monotonic() < deadline, "channel still occupied after the subscriber's TCP connection died"
        time.sleep(0.05)
    # Everyone else is unaffected.
    a, b = v1(), v1()
    a.subscribe(name)
    b.publish(name, "still fine")
    assert a.expect_event(name) == "still fine"


# --- W5: malformed messages close with 1007 ------------------------------------------------

MALFORMED = {
    "invalid json": "[5, \"a\"",
    "not json at all": "hello",
    "object": '{"type": 5, "topic": "a"}',
    "string": '"[5, \\"a\\"]"',
    "number": "5",
    "empty array": "[]",
    "element 1 is an object": '[5, {"topic": "a"}]',
    "element 1 is an array": '[5, ["a"]]',
    "element 1 is null": "[5, null]",
    "element 1 is a bool": "[5, true]",
    "unknown type 99": '[99, "a"]',
    "unknown type 9": '[9, "a"]',
    "negative type": '[-1, "a"]',
    "type is not numeric": '["subscribe", "a"]',
    "type is null": '[null, "a"]',
    "server type WELCOME": '[0, "x", 1, "y"]',
    "server type EVENT": '[8, "a", 1]',
    "server type CALLRESULT": '[3, "c", 1]',
    "subscribe without topic": "[5]",
    "publish without event": '[7, "a"]',
    "prefix without uri": '[1, "p"]',
    "call without procedure": '[2, "c1"]',
}


@pytest.mark.parametrize("text", MALFORMED.values(), ids=MALFORMED.keys())
def test_w5_malformed_message_closes_with_1007(v1, text):
    bystander, victim = v1(), v1()
    t = topic("bystander")
    bystander.subscribe(t)
    victim.send_text(text)
    closed = victim.expect_close()
    assert closed.code == 1007, f"close frame {closed.raw.hex(' ')}"
    assert closed.raw[:1] == b"\x88" and closed.raw[2:4] == b"\x03\xef"
    # The other session keeps working.
    other = v1()
    other.publish(t, {"after": text})
    assert bystander.expect_event(t) == {"after": text}


def test_w5_binary_frame_closes_the_connection(v1):
    bystander, victim = v1(), v1()
    t = topic("bin")
    bystander.subscribe(t)
    victim.send_frame(0x2, json.dumps([SUBSCRIBE, "x"]).encode())
    closed = victim.expect_close()
    assert closed.code in (1003, 1007), f"binary frame should be refused, close frame {closed.raw.hex(' ')}"
    v1().publish(t, 1)
    assert bystander.expect_event(t) == 1


def test_w5_invalid_utf8_text_closes_with_1007(v1):
    victim = v1()
    victim.send_frame(OP_TEXT, b'[5, "\xff\xfe"]')
    closed = victim.expect_close()
    assert closed.code == 1007, closed.raw.hex(" ")


def test_w5_numeric_string_type_and_numeric_topic_are_accepted_like_ratchet(v1):
    """PHP's loose switch accepts "5" as SUBSCRIBE; element 1 may be a number."""
    sub, pub = v1(), v1()
    t = topic("loose")
    sub.send_text(json.dumps(["5", t]))
    sub.sync()
    pub.publish(t, "loose type")
    assert sub.expect_event(t) == "loose type"
    # A numeric call id is echoed as a number.
    answer = sub.call("http://herald.test/nothing", call_id=None)
    assert answer[0] == CALLERROR
    sub.send([CALL, 42, "http://herald.test/nothing"])
    numeric = sub.expect(lambda m: m[:2] == [CALLERROR, 42], what="CALLERROR for numeric call id 42")
    assert numeric[1] == 42


# --- W6: PREFIX and CURIEs -----------------------------------------------------------------

def test_w6_prefix_then_curie_subscribe_resolves_ratchet_style(v1):
    sub, pub = v1(), v1()
    base = f"http://example.com/{uid('curie')}"
    sub.send([PREFIX, "ev", base])
    sub.subscribe("ev:news")
    # Ratchet adds '#' between the mapping and the local part.
    resolved = f"{base}#news"
    pub.publish(resolved, {"headline": "curie"})
    msg = sub.expect(lambda m: m[0] == EVENT, what="EVENT after CURIE subscribe")
    assert msg == [EVENT, resolved, {"headline": "curie"}]


def test_w6_curie_publish_is_resolved_and_event_carries_full_uri(v1):
    sub, pub = v1(), v1()
    base = f"http://example.com/{uid('curie-pub')}"
    resolved = f"{base}#update"
    sub.subscribe(resolved)
    pub.send([PREFIX, "app", base])
    pub.publish("app:update", [1, 2, 3])
    assert sub.expect(lambda m: m[0] == EVENT) == [EVENT, resolved, [1, 2, 3]]


def test_w6_prefixes_are_per_connection_and_absolute_uris_untouched(v1):
    a, b, pub = v1(), v1(), v1()
    base = f"http://example.com/{uid('curie-own')}"
    a.send([PREFIX, "x", base])
    a.subscribe("x:t")
    b.subscribe("x:t")  # b has no PREFIX: it subscribes the literal string "x:t"
    pub.send([PREFIX, "http", "http://should-not-apply"])
    pub.publish(f"{base}#t", "for a")  # has http:// -> left alone
    pub.publish("x:t", "for b")        # pub has no 'x' prefix -> literal
    assert a.expect(lambda m: m[0] == EVENT) == [EVENT, f"{base}#t", "for a"]
    assert b.expect(lambda m: m[0] == EVENT) == [EVENT, "x:t", "for b"]
    pub.sync()
    assert a.events("x:t") == [] and b.events(f"{base}#t") == []


# --- W7: SUBSCRIBE / UNSUBSCRIBE idempotent, unanswered --------------------------------------

def test_w7_subscribe_twice_is_one_subscription_and_unanswered(v1):
    sub, pub = v1(), v1()
    t = topic("twice")
    sub.send([SUBSCRIBE, t])
    sub.send([SUBSCRIBE, t])
    sub.sync()
    assert sub.messages[1:] == [sub.messages[-1]] and sub.messages[-1][0] == CALLERROR, \
        f"SUBSCRIBE must not be answered: {sub.messages}"
    pub.publish(t, 1)
    pub.publish(t, 2)
    assert sub.expect_event(t) == 1
    assert sub.expect_event(t) == 2
    assert sub.events(t) == [1, 2], "a duplicate subscription delivered twice"


def test_w7_unsubscribe_is_idempotent_unanswered_and_stops_delivery(v1):
    sub, pub = v1(), v1()
    gone, kept = topic("gone"), topic("kept")
    sub.subscribe(gone, kept)
    sub.send([UNSUBSCRIBE, gone])
    sub.send([UNSUBSCRIBE, gone])
    sub.send([UNSUBSCRIBE, topic("never-subscribed")])
    count_before = len(sub.messages)
    sub.sync()
    assert len(sub.messages) == count_before + 1, f"UNSUBSCRIBE must not be answered: {sub.messages}"
    watcher = v1()
    watcher.subscribe(gone)
    pub.publish(gone, "after unsubscribe")
    assert watcher.expect_event(gone) == "after unsubscribe"
    pub.publish(kept, "kept")
    assert sub.expect_event(kept) == "kept"
    assert sub.events(gone) == []


# --- W8: PUBLISH forms ---------------------------------------------------------------------

def test_w8_publish_forms_with_exclude_me_exclude_and_eligible(v1):
    a, b, c, p = v1(), v1(), v1(), v1()
    t = topic("forms")
    for client in (a, b, c, p):
        client.subscribe(t)
    A, B, C, P = (x.session_id for x in (a, b, c, p))
    p.publish(t, "3-element")                    # everyone, the publisher too
    p.publish(t, "excludeMe true", True)
    p.publish(t, "excludeMe false", False)
    p.publish(t, "excludeMe 1", 1)               # PHP-truthy non-array
    p.publish(t, "exclude a", [A])
    p.publish(t, "eligible b", [], [B])
    p.publish(t, "empty eligible", [], [])       # empty eligible = no restriction
    p.publish(t, "exclude b eligible b c", [B], [B, C])
    p.publish(t, "exclude p eligible p", [P], [P])
    # PHP truthiness of a non-array slot 3: "0", "", 0.0 and null are falsy; "x" is truthy.
    p.publish(t, "slot3 '0'", "0")
    p.publish(t, "slot3 ''", "")
    p.publish(t, "slot3 0.0", 0.0)
    p.publish(t, "slot3 null", None)
    p.publish(t, "slot3 'x'", "x")
    p.publish(t, "slot3 {}", {})                  # json_decode(..., true) makes it an empty array
    p.publish(t, "end", [], [])
    for client in (a, b, c, p):
        while "end" not in client.events(t):
            client.expect_event(t)
    everyone = ["3-element", "excludeMe true", "excludeMe false", "excludeMe 1", "exclude a", "eligible b",
                "empty eligible", "exclude b eligible b c", "slot3 '0'", "slot3 ''", "slot3 0.0", "slot3 null",
                "slot3 'x'", "slot3 {}", "end"]
    assert a.events(t) == [e for e in everyone if e not in ("exclude a", "eligible b", "exclude b eligible b c")]
    assert b.events(t) == [e for e in everyone if e != "exclude b eligible b c"]
    assert c.events(t) == [e for e in everyone if e != "eligible b"]
    assert p.events(t) == [e for e in everyone
                           if e not in ("excludeMe true", "excludeMe 1", "eligible b", "exclude b eligible b c",
                                        "slot3 'x'")]


def test_w8_publisher_not_subscribed_still_publishes(v1):
    sub, pub = v1(), v1()
    t = topic("nosub")
    sub.subscribe(t)
    pub.publish(t, {"k": "v"}, True)
    assert sub.expect_event(t) == {"k": "v"}
    pub.sync()
    assert pub.events(t) == []


def test_w8_unknown_session_ids_in_lists_are_harmless(v1):
    sub, pub = v1(), v1()
    t = topic("unknown-ids")
    sub.subscribe(t)
    pub.publish(t, "x", ["nobody", 5], [])
    assert sub.expect_event(t) == "x"
    pub.publish(t, "y", [], ["nobody"])
    pub.publish(t, "z", [], [])
    assert sub.expect_event(t) == "z"
    assert sub.events(t) == ["x", "z"]


# --- W9: EVENT shape and payload fidelity --------------------------------------------------

PAYLOADS = [None, 0, -1.5, 12345678901234, True, False, "", "plain text", "ünïcødé ✓ \u2028",
            [], [1, "two", None], {}, {"nested": {"list": [1, {"deep": True}]}, "s": "x"}]


def test_w9_event_is_three_elements_with_the_payload_as_published(v1):
    sub, pub = v1(), v1()
    t = topic("payloads")
    sub.subscribe(t)
    for payload in PAYLOADS:
        pub.publish(t, payload, [], [])
    for payload in PAYLOADS:
        msg = sub.expect(lambda m: m[:2] == [EVENT, t], what=f"EVENT {payload!r}")
        assert msg == [EVENT, t, payload]
        assert isinstance(msg[2], type(payload))


def test_w9_call_to_unknown_procedure_gets_callerror(v1):
    client = v1()
    answer = client.call("http://example.com/calc#square", 23, call_id="abc123")
    assert answer[0] == CALLERROR and answer[1] == "abc123"
    assert len(answer) in (4, 5), answer
    assert isinstance(answer[2], str) and answer[2], answer
    assert answer[2] == "http://herald.invalid/error#no_such_procedure", answer
    assert isinstance(answer[3], str)
    # The connection stays usable.
    client.sync()


# --- W10: close bytes ----------------------------------------------------------------------

def test_w10_protocol_error_close_is_exact_bytes_then_tcp_end(v1):
    victim = v1()
    victim.send_text("[5,")
    closed = victim.expect_close()
    assert closed.raw == CLOSE_1007, f"expected 88 02 03 ef, got {closed.raw.hex(' ')}"
    # Ratchet ends TCP right after its close frame, without waiting for our reply.
    victim.expect_eof()


def test_w10_keepalive_pings_and_closes_a_silent_peer_with_1000(v1):
    """App `impatient` (activity_timeout 1 s, pong_timeout 1 s): an idle v1 socket gets a
    WebSocket ping; without a pong it is closed with exactly 88 02 03 e8, then TCP ends."""
    silent = v1("impatient")
    silent.auto_pong = False
    frame = silent.read_frame(timeout=5)
    assert frame.opcode == OP_PING, frame
    closed = silent.expect_close(timeout=5)
    assert closed.raw == b"\x88\x02\x03\xe8", closed.raw.hex(" ")
    silent.expect_eof()


def test_w10_keepalive_keeps_a_peer_that_answers_pings(v1):
    alive = v1("impatient")
    pings = 0
    while pings < 3:
        frame = alive.read_frame(timeout=5)
        if frame.opcode == OP_PING:
            pings += 1
            alive.send_frame(0xA, frame.payload)
    alive.sync()
    assert alive.closed is None


def test_w10_client_close_is_answered(v1):
    client = v1()
    client.send_frame(OP_CLOSE, struct.pack(">H", 1000))
    closed = client.expect_close()
    assert closed.code == 1000, closed.raw.hex(" ")


def test_v1_huge_message_is_refused_and_others_unaffected(v1):
    bystander, victim = v1(), v1()
    t = topic("huge")
    bystander.subscribe(t)
    victim.publish(t, "x" * 200_000)
    closed = victim.expect_close()
    assert closed.code == 1009, f"expected 1009 (message too big), got {closed.raw[:8].hex(' ')}"
    other = v1()
    other.publish(t, "small")
    assert bystander.expect_event(t) == "small"
    assert bystander.events(t) == ["small"]


def test_v1_large_payload_under_limit_is_delivered_intact(v1):
    sub, pub = v1(), v1()
    t = topic("large")
    sub.subscribe(t)
    payload = {"blob": "y" * 60_000, "n": 1}
    pub.publish(t, payload)
    assert sub.expect_event(t) == payload


def test_v1_deeply_nested_payload_does_not_crash(v1):
    sub, pub = v1(), v1()
    t = topic("deep")
    sub.subscribe(t)
    deep = "[" * 5000 + "]" * 5000
    pub.send_text(f'[7, "{t}", {deep}]')
    try:
        pub.sync()
        outcome = "accepted"
    except Exception:  # noqa: BLE001 - either outcome is fine if it is clean
        outcome = "closed"
    if outcome == "closed":
        assert pub.closed is not None and pub.closed.code in (1007, 1009), pub.closed
    else:
        delivered = sub.expect(lambda m: m[:2] == [EVENT, t], what="the deep EVENT")
        assert getattr(delivered, "text", "").endswith("]" * 5001), "deep payload altered"
    other = v1()
    other.publish(t, "alive")
    assert sub.expect_event(t) == "alive"


def test_v1_abrupt_tcp_reset_mid_frame_does_not_crash(v1):
    sub = v1()
    t = topic("reset")
    sub.subscribe(t)
    victim = v1()
    # Half a frame header, then RST.
    victim.sock.sendall(b"\x81\xfe\x10")
    victim.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    victim.abort()
    v1().publish(t, "ok")
    assert sub.expect_event(t) == "ok"
