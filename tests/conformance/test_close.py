"""RFC 6455 §5.5.1, §7: the closing handshake, status codes and reasons. Autobahn section 7.

The answers the RFC requires:
- a Close from the client is answered by a Close (§5.5.1: "the endpoint MUST send a Close frame
  in response"), echoing its status code (an empty payload answers an empty one), after which
  the server closes the TCP connection (§7.1.1: the server closes it first);
- after its Close the client's data and pings are not processed (§5.5.1: no more data frames
  after a Close);
- a status code that may not appear on the wire (below 1000, 1004-1006, 1015, unassigned
  1016-2999, 5000 and up) or a one-byte payload is a protocol error: 1002 (§7.4);
- a reason that is not UTF-8 fails the connection with 1007 (§5.5.1, §8.1);
- a Close payload over 125 bytes is a protocol error like any other control frame: 1002.
"""

from __future__ import annotations

import struct

import pytest

from rawws import CLOSE, PING, TEXT, close_payload, frame

VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]
INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]


def test_empty_close_is_answered_and_tcp_closed(ws):
    ws.close(None)
    ws.expect_close(None)


@pytest.mark.parametrize("code", VALID_CODES)
def test_valid_status_code_is_echoed(ws, code):
    ws.close(code)
    ws.expect_close(code)


@pytest.mark.parametrize("code", INVALID_CODES)
def test_invalid_status_code_fails_with_1002(ws, code):
    ws.close(code)
    ws.expect_close(1002)


def test_one_byte_close_payload_fails_with_1002(ws):
    ws.send_frame(CLOSE, b"\x03")
    ws.expect_close(1002)


@pytest.mark.parametrize("reason", [
    b"Hello World!",
    "κόσμε, Grüße, 中文".encode(),
    b"*" * 123,
    "\U0001F600".encode() * 30,
], ids=["ascii", "multibyte", "123-bytes", "4-byte-chars"])
def test_close_with_valid_reason_is_echoed(ws, reason):
    ws.close(1000, reason)
    ws.expect_close(1000)


def test_close_payload_over_125_bytes_fails_with_1002(ws):
    ws.close(1000, b"*" * 124)
    ws.expect_close(1002)


@pytest.mark.parametrize("reason", [b"\xff", b"Hello\xed\xa0\x80world", b"\xc0\xaf", b"cut \xe2\x82"],
                         ids=["byte-ff", "surrogate", "overlong", "truncated"])
def test_close_with_invalid_utf8_reason_fails_with_1007(ws, reason):
    ws.close(1000, reason)
    ws.expect_close(1007)


def test_close_sent_byte_by_byte_is_answered(ws):
    ws.send_chopped(frame(CLOSE, close_payload(1000, b"slowly")), 1)
    ws.expect_close(1000)


def test_text_then_close_echoes_then_closes(ws):
    ws.send(frame(TEXT, b"last words") + frame(CLOSE, close_payload(1000)))
    ws.expect(TEXT, b"last words")
    ws.expect_close(1000)


def _first_frame_is_close(ws, code):
    f = ws.recv_frame()
    assert f.opcode == CLOSE, f"expected the Close reply first, got opcode {f.opcode:#x} {f.payload[:40]!r}"
    assert f.close_code == code
    ws.expect_tcp_closed()


def test_text_after_close_is_not_echoed(ws):
    ws.send(frame(CLOSE, close_payload(1000)) + frame(TEXT, b"after the close"))
    _first_frame_is_close(ws, 1000)


def test_ping_after_close_is_not_answered(ws):
    ws.send(frame(CLOSE, close_payload(1000)) + frame(PING, b"after the close"))
    _first_frame_is_close(ws, 1000)


def test_invalid_frame_after_close_is_ignored(ws):
    # After the Close the server discards whatever follows, even bytes that break the rules.
    ws.send(frame(CLOSE, close_payload(1001)) + frame(0x3, b"reserved opcode") + b"\xff" * 64)
    _first_frame_is_close(ws, 1001)


def test_large_data_after_close_is_discarded(ws):
    ws.send(frame(CLOSE, close_payload(1000)) + frame(TEXT, b"x" * (1 << 20)))
    _first_frame_is_close(ws, 1000)


def test_close_code_is_two_bytes_big_endian(ws):
    ws.send_frame(CLOSE, struct.pack(">H", 3001) + b"check byte order")
    ws.expect_close(3001)


def test_large_message_then_close_delivers_the_message_first(ws):
    payload = b"L" * (256 << 10)
    ws.send(frame(TEXT, payload) + frame(CLOSE, close_payload(1000)) + frame(PING, b"after the close"))
    ws.expect(TEXT, payload)
    _first_frame_is_close(ws, 1000)


def test_client_dropping_tcp_right_after_close_leaves_the_server_serving(herald, connect):
    first = connect("/echo")
    first.close(1000)
    first.shutdown()
    second = connect("/echo")
    second.text("still serving")
    second.expect(TEXT, b"still serving")
