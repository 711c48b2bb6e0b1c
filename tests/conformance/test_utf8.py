"""RFC 6455 §5.6, §8.1: text messages must be valid UTF-8 (RFC 3629). Autobahn section 6.

The answers the RFC requires:
- valid UTF-8 (including noncharacters such as U+FFFE, which RFC 3629 allows) is echoed, also
  when a code point is split across fragments (validity is a property of the whole message);
- "When an endpoint is to interpret a byte stream as UTF-8 but finds that the byte stream is
  not, in fact, a valid UTF-8 stream, that endpoint MUST _Fail the WebSocket Connection_"
  (§8.1) with 1007 (§7.4.1): overlong forms, surrogates (U+D800-U+DFFF), code points above
  U+10FFFF, stray continuation bytes, bytes 0xC0, 0xC1, 0xF5-0xFF, truncated sequences;
- binary messages carry arbitrary bytes and are not validated;
- herald fails fast: as soon as the bytes received so far cannot start valid UTF-8, before the
  frame or message is complete (Autobahn 6.4).
"""

from __future__ import annotations

import pytest

from rawws import BINARY, CONT, PING, PONG, TEXT, frame

VALID = {
    "empty": b"",
    "ascii": b"Hello, world",
    "latin-mix": "Hello-µ@ßöäüàá-UTF-8!!".encode(),
    "greek": "κόσμε".encode(),
    "first-1-byte": b"\x00",
    "first-2-byte": "\u0080".encode(),
    "first-3-byte": "\u0800".encode(),
    "first-4-byte": "\U00010000".encode(),
    "last-1-byte": b"\x7f",
    "last-2-byte": "\u07ff".encode(),
    "last-3-byte": "\uffff".encode(),
    "last-4-byte": "\U0010ffff".encode(),
    "before-surrogates": "\ud7ff".encode(),
    "after-surrogates": "\ue000".encode(),
    "replacement-char": "\ufffd".encode(),
    "nonchar-fffe": "\ufffe".encode(),
    "nonchar-1fffe": "\U0001fffe".encode(),
    "nonchar-10fffe": "\U0010fffe".encode(),
    "emoji": "\U0001F600\U0001F680".encode(),
    "mixed-widths": "a\u00e9\u4e2d\U0001d11e" .encode() * 10,
}

INVALID = {
    "stray-continuation-80": b"\x80",
    "stray-continuation-bf": b"\xbf",
    "continuations-80-bf-80": b"\x80\xbf\x80",
    "all-continuation-bytes": bytes(range(0x80, 0xC0)),
    "lonely-2-byte-start": b"\xc2\x20",
    "lonely-3-byte-start": b"\xe0\x20",
    "lonely-4-byte-start": b"\xf0\x20",
    "truncated-2-byte": b"\xc2",
    "truncated-3-byte": b"\xe2\x82",
    "truncated-4-byte": b"\xf0\x90\x80",
    "truncated-in-text": b"abc\xe2\x82",
    "byte-fe": b"\xfe",
    "byte-ff": b"\xff",
    "fe-fe-ff-ff": b"\xfe\xfe\xff\xff",
    "byte-c0": b"\xc0",
    "byte-c1": b"\xc1\xbf",
    "byte-f5": b"\xf5\x80\x80\x80",
    "byte-f7": b"\xf7\xbf\xbf\xbf",
    "overlong-slash-2": b"\xc0\xaf",
    "overlong-slash-3": b"\xe0\x80\xaf",
    "overlong-slash-4": b"\xf0\x80\x80\xaf",
    "overlong-slash-5": b"\xf8\x80\x80\x80\xaf",
    "overlong-max-2": b"\xc1\xbf",
    "overlong-max-3": b"\xe0\x9f\xbf",
    "overlong-max-4": b"\xf0\x8f\xbf\xbf",
    "overlong-nul-2": b"\xc0\x80",
    "overlong-nul-3": b"\xe0\x80\x80",
    "five-byte-form": b"\xf8\x88\x80\x80\x80",
    "six-byte-form": b"\xfc\x84\x80\x80\x80\x80",
    "surrogate-d800": b"\xed\xa0\x80",
    "surrogate-db7f": b"\xed\xad\xbf",
    "surrogate-db80": b"\xed\xae\x80",
    "surrogate-dbff": b"\xed\xaf\xbf",
    "surrogate-dc00": b"\xed\xb0\x80",
    "surrogate-df80": b"\xed\xbe\x80",
    "surrogate-dfff": b"\xed\xbf\xbf",
    "surrogate-pair": b"\xed\xa0\x80\xed\xb0\x80",
    "above-10ffff": b"\xf4\x90\x80\x80",
    "cesu-emoji": b"\xed\xa0\xbd\xed\xb8\x80",
    "greek-then-surrogate": "κόσμε".encode() + b"\xed\xa0\x80edited",
    "valid-ff-valid": b"Hello\xffworld",
    "invalid-after-4k-valid": b"a" * 4096 + b"\xff",
}


def per_byte_fragments(payload: bytes) -> bytes:
    """A text message whose every byte is its own fragment (so code points are split)."""
    if not payload:
        return frame(TEXT, b"")
    last = len(payload) - 1
    return b"".join(frame(TEXT if i == 0 else CONT, payload[i:i + 1], fin=i == last)
                    for i in range(len(payload)))


@pytest.mark.parametrize("payload", VALID.values(), ids=VALID.keys())
def test_valid_utf8_in_one_frame_is_echoed(ws, payload):
    ws.text(payload)
    ws.expect(TEXT, payload)


@pytest.mark.parametrize("payload", VALID.values(), ids=VALID.keys())
def test_valid_utf8_one_byte_per_fragment_is_echoed(ws, payload):
    ws.send(per_byte_fragments(payload))
    ws.expect(TEXT, payload)


@pytest.mark.parametrize("payload", [VALID["greek"], VALID["emoji"], VALID["mixed-widths"]],
                         ids=["greek", "emoji", "mixed-widths"])
def test_valid_utf8_byte_by_byte_on_the_wire_is_echoed(ws, payload):
    ws.send_chopped(frame(TEXT, payload), 1)
    ws.expect(TEXT, payload)


@pytest.mark.parametrize("payload", INVALID.values(), ids=INVALID.keys())
def test_invalid_utf8_in_one_frame_fails_with_1007(ws, payload):
    ws.text(payload)
    ws.expect_close(1007)


@pytest.mark.parametrize("payload", INVALID.values(), ids=INVALID.keys())
def test_invalid_utf8_one_byte_per_fragment_fails_with_1007(ws, payload):
    ws.send(per_byte_fragments(payload))
    ws.expect_close(1007)


@pytest.mark.parametrize("payload", [INVALID["surrogate-d800"], INVALID["overlong-slash-3"], INVALID["byte-ff"]],
                         ids=["surrogate", "overlong", "byte-ff"])
def test_invalid_utf8_byte_by_byte_on_the_wire_fails_with_1007(ws, payload):
    ws.send_chopped(frame(TEXT, payload), 1)
    ws.expect_close(1007)


@pytest.mark.parametrize("payload", INVALID.values(), ids=INVALID.keys())
def test_invalid_utf8_in_a_binary_message_is_echoed(ws, payload):
    ws.send_frame(BINARY, payload)
    ws.expect(BINARY, payload)


def test_code_point_split_across_two_fragments_is_echoed(ws):
    euro = "€".encode()  # e2 82 ac
    ws.send(frame(TEXT, b"price: " + euro[:1], fin=False) + frame(CONT, euro[1:] + b" 5", fin=True))
    ws.expect(TEXT, b"price: " + euro + b" 5")


def test_message_ending_inside_a_code_point_fails_with_1007(ws):
    ws.send(frame(TEXT, b"ends in the middle \xce", fin=False) + frame(CONT, b"\xba\xe1", fin=True))
    ws.expect_close(1007)


def test_invalid_byte_in_the_second_fragment_fails_with_1007(ws):
    ws.send(frame(TEXT, "κόσμε".encode(), fin=False) + frame(CONT, b"\xed\xa0\x80", fin=False)
            + frame(CONT, b"edited", fin=True))
    ws.expect_close(1007)


def test_fail_fast_inside_an_unfinished_frame(ws):
    # The header declares 1000 bytes; only 20 arrive and byte 10 cannot be UTF-8. The server
    # must not wait for the other 980 (which never come) to fail the connection.
    payload = b"0123456789\xff" + b"x" * 989
    ws.send(frame(TEXT, payload)[:2 + 2 + 4 + 20])
    ws.expect_close(1007)


def test_fail_fast_inside_an_unfinished_message(ws):
    # A fragmented message whose second fragment is invalid; the final fragment never comes.
    ws.send(frame(TEXT, "κόσμε".encode(), fin=False) + frame(CONT, b"\xf4\x90\x80\x80", fin=False))
    ws.expect_close(1007)


def test_fail_fast_before_a_ping_in_the_same_write(ws):
    # The invalid text comes first on the wire: the connection fails, the Ping is never answered.
    ws.send(frame(TEXT, b"\xc0\xaf") + frame(PING, b"too late"))
    f = ws.expect_close(1007)
    assert f.opcode != PONG


def test_valid_text_then_invalid_text_echoes_the_first(ws):
    ws.send(frame(TEXT, b"fine") + frame(TEXT, b"\xed\xbf\xbf"))
    ws.expect(TEXT, b"fine")
    ws.expect_close(1007)
