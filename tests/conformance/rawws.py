"""A byte-exact WebSocket client over a raw `socket`.

Shared by the RFC 6455 conformance suite (tests/conformance) and the hostile-input suite
(tests/hostile, which puts this directory on sys.path). No third-party WebSocket library is
involved: every frame the tests send is built here bit by bit, so a test can send exactly the
malformed bytes it means to, and every frame the server sends is parsed here and checked
against RFC 6455 §5 (server frames are never masked, control frames are at most 125 bytes).

Nothing here sleeps to synchronise: every wait is a socket read with a deadline.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import time
from dataclasses import dataclass

WAIT_S = 5.0

# Opcodes of RFC 6455 §5.2.
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# --- frames ------------------------------------------------------------------------------------

def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0, mask: bool = True,
          key: bytes | None = None, length_form: str | None = None, declared_len: int | None = None) -> bytes:
    """One client frame, byte-exact.

    `rsv` is the three RSV bits as a number 0-7 (RSV1 = 4). `length_form` forces the 7-bit
    ("7"), 16-bit ("16") or 64-bit ("64") length encoding instead of the minimal one.
    `declared_len` puts a length in the header that differs from the payload actually appended.
    """
    first = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    n = len(payload) if declared_len is None else declared_len
    form = length_form or ("7" if n <= 125 else "16" if n <= 0xFFFF else "64")
    mask_bit = 0x80 if mask else 0
    if form == "7":
        head = bytes([first, mask_bit | n])
    elif form == "16":
        head = bytes([first, mask_bit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([first, mask_bit | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + payload
    key = key if key is not None else os.urandom(4)
    return head + key + apply_mask(payload, key)


def apply_mask(data: bytes, key: bytes) -> bytes:
    """XORs `data` with the 4-byte masking key (RFC 6455 §5.3); fast for megabytes."""
    if not data:
        return b""
    reps = len(data) // 4 + 1
    keystream = int.from_bytes((key * reps)[: len(data)], "big")
    return (int.from_bytes(data, "big") ^ keystream).to_bytes(len(data), "big")


def close_payload(code: int | None, reason: bytes = b"") -> bytes:
    return b"" if code is None else struct.pack(">H", code) + reason


@dataclass
class Frame:
    """A frame the server sent."""
    fin: bool
    rsv: int
    opcode: int
    payload: bytes

    @property
    def close_code(self) -> int | None:
        return struct.unpack(">H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    @property
    def close_reason(self) -> bytes:
        return self.payload[2:]


class ConnectionClosed(Exception):
    """The server closed the TCP connection (EOF or reset) before the expected frame."""


class ProtocolViolation(AssertionError):
    """The server sent something RFC 6455 forbids a server to send."""


class RawWebSocket:
    """A WebSocket client over a plain TCP socket; the caller controls every byte sent."""

    def __init__(self, port: int, path: str = "/echo", *, headers: dict[str, str] | None = None,
                 extra: bytes = b"", timeout: float = WAIT_S):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        # `extra` rides in the same write as the request: frames pipelined behind the handshake.
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + extra)
        status, response_headers = self._read_http_head(timeout)
        if status != 101:
            raise AssertionError(f"upgrade of {path} answered {status}, not 101")
        expected = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        if response_headers.get("sec-websocket-accept") != expected:
            raise ProtocolViolation(f"Sec-WebSocket-Accept {response_headers.get('sec-websocket-accept')!r}, "
                                    f"expected {expected!r} (RFC 6455 §4.2.2)")
        self.headers = response_headers

    def _read_http_head(self, timeout: float) -> tuple[int, dict[str, str]]:
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            self._fill(deadline)
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        self.buf = bytearray(rest)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers

    def _fill(self, deadline: float):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no data from the server before the deadline")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(1 << 20)
        except socket.timeout as err:
            raise TimeoutError("no data from the server before the deadline") from err
        except (ConnectionResetError, BrokenPipeError) as err:
            raise ConnectionClosed(f"connection reset: {err}") from err
        if not chunk:
            raise ConnectionClosed("server closed the TCP connection")
        self.buf += chunk

    def _need(self, n: int, deadline: float):
        while len(self.buf) < n:
            self._fill(deadline)

    # -- sending --

    def send(self, data: bytes):
        """Sends raw bytes; a reset while sending is reported as ConnectionClosed."""
        try:
            self.sock.sendall(data)
        except (ConnectionResetError, BrokenPipeError) as err:
            raise ConnectionClosed(f"connection reset while sending: {err}") from err

    def send_chopped(self, data: bytes, size: int = 1):
        """Sends `data` in writes of `size` bytes, each its own TCP segment (TCP_NODELAY)."""
        for i in range(0, len(data), size):
            self.send(data[i:i + size])

    def send_frame(self, opcode: int, payload: bytes = b"", **kw):
        self.send(frame(opcode, payload, **kw))

    def text(self, payload: bytes | str, **kw):
        self.send_frame(TEXT, payload.encode() if isinstance(payload, str) else payload, **kw)

    def close(self, code: int | None = 1000, reason: bytes = b""):
        self.send_frame(CLOSE, close_payload(code, reason))

    # -- receiving --

    def recv_frame(self, timeout: float = WAIT_S) -> Frame:
        """The next frame, checked against what RFC 6455 allows a server to send."""
        deadline = time.monotonic() + timeout
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        if b1 & 0x80:
            raise ProtocolViolation("server frame is masked (RFC 6455 §5.1)")
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            self._need(4, deadline)
            n = struct.unpack(">H", self.buf[2:4])[0]
            pos = 4
            if n < 126:
                raise ProtocolViolation(f"non-minimal 16-bit length {n} (RFC 6455 §5.2)")
        elif n == 127:
            self._need(10, deadline)
            n = struct.unpack(">Q", self.buf[2:10])[0]
            pos = 10
            if n <= 0xFFFF:
                raise ProtocolViolation(f"non-minimal 64-bit length {n} (RFC 6455 §5.2)")
        self._need(pos + n, deadline)
        payload = bytes(self.buf[pos:pos + n])
        del self.buf[:pos + n]
        f = Frame(fin=bool(b0 & 0x80), rsv=(b0 >> 4) & 7, opcode=b0 & 0xF, payload=payload)
        if f.rsv:
            raise ProtocolViolation(f"server set RSV bits {f.rsv} without an extension")
        if f.opcode >= 0x8 and (not f.fin or len(payload) > 125):
            raise ProtocolViolation("server control frame fragmented or longer than 125 bytes")
        return f

    def recv_message(self, timeout: float = WAIT_S) -> tuple[int, bytes]:
        """The next data message (fragments joined) or control frame, as (opcode, payload)."""
        deadline = time.monotonic() + timeout
        first = self.recv_frame(max(0.0, deadline - time.monotonic()))
        if first.opcode >= 0x8 or first.fin:
            return first.opcode, first.payload
        parts = [first.payload]
        while True:
            f = self.recv_frame(max(0.0, deadline - time.monotonic()))
            if f.opcode != CONT:
                raise ProtocolViolation(f"server interleaved opcode {f.opcode} inside a fragmented message")
            parts.append(f.payload)
            if f.fin:
                return first.opcode, b"".join(parts)

    def expect(self, opcode: int, payload: bytes, timeout: float = WAIT_S):
        got_op, got = self.recv_message(timeout)
        assert got_op == opcode, f"expected opcode {opcode:#x}, got {got_op:#x} ({got[:80]!r})"
        assert got == payload, (f"payload differs: {len(got)} bytes, expected {len(payload)}; "
                                f"first bytes {got[:40]!r} vs {payload[:40]!r}")

    def expect_close(self, code: int | None, timeout: float = WAIT_S) -> Frame:
        """Reads until a Close frame; asserts its code (None = no payload) and the TCP close.

        Data frames before the Close are allowed (the server may still have echoes in flight)
        but a Close that never comes, or a bare TCP close, fails the assertion.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                f = self.recv_frame(max(0.0, deadline - time.monotonic()))
            except ConnectionClosed as err:
                raise AssertionError(f"TCP closed without a Close frame (expected code {code})") from err
            if f.opcode == CLOSE:
                break
        if code is None:
            assert f.payload == b"", f"expected an empty Close payload, got {f.payload!r}"
        else:
            assert f.close_code == code, f"Close code {f.close_code} ({f.close_reason!r}), expected {code}"
            try:
                f.close_reason.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ProtocolViolation("Close reason is not UTF-8 (RFC 6455 §5.5.1)") from err
        self.expect_tcp_closed(max(0.5, deadline - time.monotonic()))
        return f

    def expect_tcp_closed(self, timeout: float = WAIT_S):
        """Asserts the server closes the TCP connection (after its Close, nothing more comes)."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._fill(deadline)
                if self.buf:
                    raise AssertionError(f"server sent {bytes(self.buf[:40])!r} after its Close frame")
        except ConnectionClosed:
            return
        except TimeoutError as err:
            raise AssertionError(f"server kept the TCP connection open {timeout:.1f} s after Close") from err

    def expect_silence(self, timeout: float = 0.3):
        """Asserts nothing arrives within `timeout` (used sparingly: it costs wall time)."""
        deadline = time.monotonic() + timeout
        try:
            self._fill(deadline)
        except TimeoutError:
            return
        except ConnectionClosed:
            return
        raise AssertionError(f"unexpected bytes from the server: {bytes(self.buf[:60])!r}")

    def shutdown(self):
        try:
            self.sock.close()
        except OSError:
            pass
