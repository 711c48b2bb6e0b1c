"""RFC 6455 §5.1-§5.3, §5.5.2-§5.5.3: framing, masking, pings and pongs, reserved bits and opcodes.

Autobahn sections 1 (framing), 2 (pings/pongs), 3 (reserved bits) and 4 (opcodes). The
answers the RFC requires:
- a data message comes back with the same opcode and payload (echo endpoint), in a frame the
  server did not mask (§5.1) and whose length uses the minimal encoding (§5.2);
- a Ping is answered by a Pong with "identical Application data" (§5.5.2); an unsolicited
  Pong needs no answer (§5.5.3);
- a client frame without the mask bit, a set RSV bit without a negotiated extension, a
  reserved opcode, a fragmented or oversized control frame, or a 64-bit length with its
  most significant bit set makes the server fail the connection (§5.1, §5.2, §5.5, §7.1.7):
  a Close with 1002 (protocol error, §7.4.1), then the TCP connection closes.
"""

from __future__ import annotations

import os
import struct

import pytest

from rawws import BINARY, CLOSE, CONT, PING, PONG, TEXT, frame

LENGTHS = [0, 1, 125, 126, 127, 128, 1000, 65535, 65536, 70000]


# --- 1. framing --------------------------------------------------------------------------------

@pytest.mark.parametrize("n", LENGTHS)
def test_text_of_each_length_form_is_echoed(ws, n):
    payload = b"*" * n
    ws.text(payload)
    ws.expect(TEXT, payload)


@pytest.mark.parametrize("n", LENGTHS)
def test_binary_of_each_length_form_is_echoed(ws, n):
    payload = os.urandom(n)
    ws.send_frame(BINARY, payload)
    ws.expect(BINARY, payload)


@pytest.mark.parametrize("chunk", [1, 2, 3, 997])
def test_frame_split_into_small_writes_is_echoed(ws, chunk):
    payload = bytes(range(256)) * 3
    ws.send_chopped(frame(BINARY, payload), chunk)
    ws.expect(BINARY, payload)


def test_text_of_64k_split_at_odd_offsets_is_echoed(ws):
    payload = b"x" * 65536
    ws.send_chopped(frame(TEXT, payload), 997)
    ws.expect(TEXT, payload)


@pytest.mark.parametrize("n,form", [(0, "16"), (5, "16"), (125, "16"), (5, "64"), (200, "64"), (65535, "64")])
def test_non_minimal_length_encoding_is_accepted(ws, n, form):
    # §5.2 says the minimal encoding MUST be used but names no reaction for a receiver;
    # herald documents that it accepts a padded length (herald_protocol::ws, "Leniency").
    payload = os.urandom(n)
    ws.send_frame(BINARY, payload, length_form=form)
    ws.expect(BINARY, payload)


@pytest.mark.parametrize("key", [b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x01\x02\x03\x04"])
def test_any_masking_key_is_accepted(ws, key):
    ws.send_frame(TEXT, b"masked with a chosen key", key=key)
    ws.expect(TEXT, b"masked with a chosen key")


def test_many_messages_in_one_write_are_echoed_in_order(ws):
    payloads = [f"message {i}".encode() for i in range(200)]
    ws.send(b"".join(frame(TEXT, p) for p in payloads))
    for p in payloads:
        ws.expect(TEXT, p)


def test_frame_pipelined_behind_the_handshake_is_echoed(connect):
    sock = connect("/echo", extra=frame(TEXT, b"right behind the request"))
    sock.expect(TEXT, b"right behind the request")


@pytest.mark.parametrize("opcode", [TEXT, BINARY, PING, CLOSE])
def test_unmasked_client_frame_fails_with_1002(ws, opcode):
    payload = b"" if opcode == CLOSE else b"unmasked"
    ws.send_frame(opcode, payload, mask=False)
    ws.expect_close(1002)


def test_unmasked_frame_after_a_valid_one_fails_with_1002(ws):
    ws.text("valid")
    ws.send_frame(TEXT, b"unmasked", mask=False)
    ws.expect(TEXT, b"valid")
    ws.expect_close(1002)


def test_64_bit_length_with_msb_set_fails_with_1002(ws):
    head = bytes([0x82, 0x80 | 127]) + struct.pack(">Q", 1 << 63) + b"\x00\x00\x00\x00"
    ws.send(head)
    ws.expect_close(1002)


# --- 2. pings and pongs --------------------------------------------------------------------------

@pytest.mark.parametrize("payload", [
    b"",
    b"Hello, world!",
    bytes([0x00, 0xFF, 0xFE, 0xFD, 0xFC, 0xFB, 0x00, 0xFF]),
    b"*" * 125,
    bytes(range(125)),
], ids=["empty", "text", "binary", "125-bytes", "all-byte-values"])
def test_ping_is_answered_by_pong_with_identical_payload(ws, payload):
    ws.send_frame(PING, payload)
    ws.expect(PONG, payload)


@pytest.mark.parametrize("n", [126, 200, 1000, 65536])
@pytest.mark.parametrize("opcode", [PING, PONG])
def test_control_frame_longer_than_125_fails_with_1002(ws, opcode, n):
    ws.send_frame(opcode, b"*" * n)
    ws.expect_close(1002)


def test_ping_sent_byte_by_byte_is_answered(ws):
    ws.send_chopped(frame(PING, b"Hello, world!"), 1)
    ws.expect(PONG, b"Hello, world!")


@pytest.mark.parametrize("payload", [b"", b"unsolicited", b"*" * 125])
def test_unsolicited_pong_gets_no_answer(ws, payload):
    ws.send_frame(PONG, payload)
    # The echo that follows must be the next frame: no answer to the Pong came before it.
    ws.text("after the pong")
    ws.expect(TEXT, b"after the pong")


def test_unsolicited_pong_then_ping_answers_only_the_ping(ws):
    ws.send_frame(PONG, b"unsolicited")
    ws.send_frame(PING, b"solicited")
    ws.expect(PONG, b"solicited")


def test_ten_pings_get_ten_pongs_in_order(ws):
    ws.send(b"".join(frame(PING, f"ping {i}".encode()) for i in range(10)))
    for i in range(10):
        ws.expect(PONG, f"ping {i}".encode())


def test_ten_pings_byte_by_byte_get_ten_pongs_in_order(ws):
    ws.send_chopped(b"".join(frame(PING, f"ping {i}".encode()) for i in range(10)), 1)
    for i in range(10):
        ws.expect(PONG, f"ping {i}".encode())


@pytest.mark.parametrize("opcode", [PING, PONG, CLOSE])
def test_fragmented_control_frame_fails_with_1002(ws, opcode):
    ws.send_frame(opcode, b"", fin=False)
    ws.expect_close(1002)


# --- 3. reserved bits ----------------------------------------------------------------------------

@pytest.mark.parametrize("rsv", range(1, 8))
@pytest.mark.parametrize("opcode", [TEXT, BINARY, PING, PONG, CLOSE])
def test_reserved_bits_without_extension_fail_with_1002(ws, rsv, opcode):
    payload = struct.pack(">H", 1000) if opcode == CLOSE else b"reserved bits"
    ws.send_frame(opcode, payload, rsv=rsv)
    ws.expect_close(1002)


@pytest.mark.parametrize("rsv", [1, 2, 4])
def test_reserved_bits_after_a_valid_message_fail_after_its_echo(ws, rsv):
    ws.text("valid")
    ws.send_frame(TEXT, b"reserved", rsv=rsv)
    ws.send_frame(PING, b"never answered")
    ws.expect(TEXT, b"valid")
    ws.expect_close(1002)


@pytest.mark.parametrize("rsv", [1, 4])
def test_reserved_bits_on_a_continuation_fail_with_1002(ws, rsv):
    ws.send_frame(TEXT, b"first ", fin=False)
    ws.send_frame(CONT, b"second", rsv=rsv)
    ws.expect_close(1002)


# --- 4. opcodes ----------------------------------------------------------------------------------

RESERVED_OPCODES = [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF]


@pytest.mark.parametrize("opcode", RESERVED_OPCODES, ids=[f"op{o:x}" for o in RESERVED_OPCODES])
def test_reserved_opcode_fails_with_1002(ws, opcode):
    ws.send_frame(opcode)
    ws.expect_close(1002)


@pytest.mark.parametrize("opcode", RESERVED_OPCODES, ids=[f"op{o:x}" for o in RESERVED_OPCODES])
def test_reserved_opcode_with_payload_after_valid_message_fails_after_echo(ws, opcode):
    ws.text("valid")
    ws.send_frame(opcode, b"reserved opcode payload")
    ws.send_frame(PING, b"never answered")
    ws.expect(TEXT, b"valid")
    ws.expect_close(1002)


@pytest.mark.parametrize("opcode", [3, 0xB], ids=["op3", "opb"])
def test_reserved_opcode_inside_a_fragmented_message_fails_with_1002(ws, opcode):
    ws.send_frame(TEXT, b"first", fin=False)
    ws.send_frame(opcode, b"")
    ws.expect_close(1002)
