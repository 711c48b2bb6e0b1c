"""RFC 6455 §7.4.1 (1009), §10.4: large messages and size limits. Autobahn section 9, scaled down
to a few MiB so the suite stays fast.

The answers the RFC requires:
- large messages within the endpoint's limit are delivered whole, whether sent as one frame,
  many fragments, or many small TCP writes;
- "1009 indicates that an endpoint is terminating the connection because it has received a
  message that is too big for it to process" (§7.4.1). The echo endpoint's limit is 20 MiB
  (herald-server ws.rs); a frame declaring more, or fragments adding up to more, fail the
  connection with 1009, and herald decides from the header before buffering the payload.
"""

from __future__ import annotations

import os
import struct

import pytest

from rawws import BINARY, CONT, TEXT, frame

MiB = 1 << 20
ECHO_LIMIT = 20 * MiB


@pytest.mark.parametrize("size", [64 << 10, 256 << 10, MiB, 4 * MiB], ids=["64KiB", "256KiB", "1MiB", "4MiB"])
def test_large_text_in_one_frame_is_echoed(ws, size):
    payload = b"*" * size
    ws.text(payload)
    ws.expect(TEXT, payload, timeout=30)


@pytest.mark.parametrize("size", [MiB, 4 * MiB], ids=["1MiB", "4MiB"])
def test_large_binary_in_one_frame_is_echoed(ws, size):
    payload = os.urandom(size)
    ws.send_frame(BINARY, payload)
    ws.expect(BINARY, payload, timeout=30)


@pytest.mark.parametrize("size,chunk", [(MiB, 4 << 10), (4 * MiB, 64 << 10), (MiB, 256)],
                         ids=["1MiB-in-4KiB", "4MiB-in-64KiB", "1MiB-in-256B"])
def test_large_message_in_many_fragments_is_echoed(ws, size, chunk):
    payload = os.urandom(size)
    parts = [payload[i:i + chunk] for i in range(0, size, chunk)]
    last = len(parts) - 1
    ws.send(b"".join(frame(BINARY if i == 0 else CONT, p, fin=i == last) for i, p in enumerate(parts)))
    ws.expect(BINARY, payload, timeout=30)


def test_large_frame_in_small_tcp_writes_is_echoed(ws):
    payload = b"x" * MiB
    ws.send_chopped(frame(TEXT, payload), 4000)
    ws.expect(TEXT, payload, timeout=30)


@pytest.mark.parametrize("size", [16, 1024, 16 << 10], ids=["16B", "1KiB", "16KiB"])
def test_thousand_pipelined_messages_are_echoed_in_order(ws, size):
    payloads = [i.to_bytes(4, "big") + b"." * (size - 4) for i in range(1000)]
    ws.send(b"".join(frame(BINARY, p) for p in payloads))
    for p in payloads:
        ws.expect(BINARY, p, timeout=30)


def test_message_at_the_limit_boundary_header_only(ws):
    # A header declaring exactly one byte over the limit is refused before any payload is sent.
    ws.send(bytes([0x82, 0x80 | 127]) + struct.pack(">Q", ECHO_LIMIT + 1) + b"\x00\x00\x00\x00")
    ws.expect_close(1009)


@pytest.mark.parametrize("declared", [1 << 32, 1 << 40, (1 << 63) - 1], ids=["4GiB", "1TiB", "max-63-bit"])
def test_huge_declared_length_fails_with_1009(ws, declared):
    ws.send(bytes([0x81, 0x80 | 127]) + struct.pack(">Q", declared) + b"\x01\x02\x03\x04")
    ws.expect_close(1009)


def test_fragments_adding_up_past_the_limit_fail_with_1009(ws):
    chunk = b"\x00" * MiB
    ws.send_frame(BINARY, chunk, fin=False)
    sent = MiB
    frames = []
    while sent + MiB <= ECHO_LIMIT:
        frames.append(frame(CONT, chunk, fin=False))
        sent += MiB
    ws.send(b"".join(frames))
    # This fragment's header takes the total one byte past the limit.
    ws.send(frame(CONT, b"\x00", fin=True)[:2] + b"\x00\x00\x00\x00")
    ws.expect_close(1009, timeout=30)
