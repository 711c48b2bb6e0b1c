"""Header floods, slow clients (slowloris), and handshake floods against herald's one HTTP port.

Documented answers:
- one header line up to ~300 KiB is read (hyper's default buffer is 400 KiB); past that, and
  from the 100th header on, the answer is 431 Request Header Fields Too Large; a 100 KiB
  request target gets 414 URI Too Long; none of them is upgraded or published;
- a client that has not sent a complete request head within herald's header read timeout
  (10 s, herald-server listen.rs) is disconnected, whether it sends nothing, dribbles header
  lines, or idles on a keep-alive connection; this suite allows up to SLOW_CLOSE_BOUND_S;
- a flood of a few hundred concurrent WebSocket upgrades is served (each gets 101 and
  `pusher:connection_established`, or its Pusher close code), dropping them all at once
  leaves the server serving new clients at once;
- the watcher (conftest) keeps receiving every publication throughout.
"""

from __future__ import annotations

import base64
import os
import selectors
import socket
import struct
import threading
import time

import pytest

from hostile_client import APP, PusherSocket, raw_http, status_of
from rawws import CLOSE, RawWebSocket

HEADER_TIMEOUT_S = 10.0
SLOW_CLOSE_BOUND_S = 15.0
FLOOD = 300


# --- header floods -----------------------------------------------------------------------------------

@pytest.mark.parametrize("size,expected", [(8 << 10, 200), (64 << 10, 200), (300 << 10, 200),
                                           (1 << 20, 431), (4 << 20, 431)],
                         ids=["8KiB", "64KiB", "300KiB", "1MiB", "4MiB"])
def test_one_huge_header(herald, size, expected):
    response = raw_http(herald, b"GET /up HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size + b"\r\n\r\n")
    assert status_of(response) == expected, response[:80]


@pytest.mark.parametrize("count,expected", [(50, 200), (99, 200), (100, 431), (1000, 431), (20_000, 431)])
def test_many_headers(herald, count, expected):
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(count))
    response = raw_http(herald, b"GET /up HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert status_of(response) == expected, response[:80]


@pytest.mark.parametrize("size", [100_000, 1 << 20], ids=["100KB", "1MiB"])
def test_huge_request_target(herald, size):
    response = raw_http(herald, b"GET /" + b"a" * size + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(response) in (414, 431), response[:80]


def _upgrade_head(path: str, extra: bytes = b"") -> bytes:
    key = base64.b64encode(os.urandom(16))
    return (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n" + extra + b"\r\n")


@pytest.mark.parametrize("flood", ["1000-headers", "1MiB-header"])
def test_header_flood_on_an_upgrade_is_refused(herald, flood):
    extra = (b"".join(b"X-H%d: v\r\n" % i for i in range(1000)) if flood == "1000-headers"
             else b"X-Big: " + b"a" * (1 << 20) + b"\r\n")
    response = raw_http(herald, _upgrade_head(f"/app/{APP['key']}?protocol=7", extra))
    assert status_of(response) == 431, response[:80]


# --- slow clients ------------------------------------------------------------------------------------

class SlowClient(threading.Thread):
    """Opens a connection, behaves slowly as `kind` says, and records when the server hung up."""

    def __init__(self, port: int, kind: str):
        super().__init__(daemon=True)
        self.port = port
        self.kind = kind
        self.closed_after: float | None = None
        self.error: str | None = None
        self.start()

    def run(self):
        start = time.monotonic()
        deadline = start + SLOW_CLOSE_BOUND_S + 5
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
                plan = self._plan()
                sock.setblocking(False)
                sel = selectors.DefaultSelector()
                sel.register(sock, selectors.EVENT_READ)
                next_send = start
                while time.monotonic() < deadline:
                    now = time.monotonic()
                    if plan and now >= next_send:
                        try:
                            sock.send(plan.pop(0))
                        except (BrokenPipeError, ConnectionResetError):
                            self.closed_after = now - start
                            return
                        next_send = now + 0.5
                    timeout = max(0.0, min(next_send if plan else deadline, deadline) - time.monotonic())
                    if sel.select(timeout):
                        try:
                            data = sock.recv(65536)
                        except ConnectionResetError:
                            data = b""
                        if not data:
                            self.closed_after = time.monotonic() - start
                            return
                        # A response (e.g. to the keep-alive request) is fine; keep waiting for EOF.
        except OSError as err:
            self.error = repr(err)

    def _plan(self) -> list[bytes]:
        if self.kind == "silent":
            return []
        if self.kind == "request-line-only":
            return [b"GET /up HTTP/1.1\r\n"]
        if self.kind == "dribbled-headers":
            return [b"GET /up HTTP/1.1\r\n"] + [b"X-Slow-%d: v\r\n" % i for i in range(100)]
        if self.kind == "dribbled-bytes":
            return [bytes([b]) for b in b"GET /up HTTP/1.1\r\nHost: x\r\n" * 10]
        if self.kind == "dribbled-upgrade":
            head = _upgrade_head(f"/app/{APP['key']}?protocol=7")
            return [head[i:i + 4] for i in range(0, len(head) - 2, 4)]  # never the final CRLF
        if self.kind == "keepalive-idle":
            return [b"GET /up HTTP/1.1\r\nHost: x\r\n\r\n"]
        if self.kind == "slow-body":
            path = f"/apps/{APP['id']}/events"
            return [f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n".encode()] + [b"x"] * 100
        raise ValueError(self.kind)


SLOW_KINDS = ["silent", "request-line-only", "dribbled-headers", "dribbled-bytes", "dribbled-upgrade",
              "keepalive-idle", "slow-body"]
PER_KIND = 10


@pytest.fixture(scope="module")
def slow_clients(herald):
    """Starts every kind of slow client at once, PER_KIND of each, so the module waits only once."""
    return {kind: [SlowClient(herald.port, kind) for _ in range(PER_KIND)] for kind in SLOW_KINDS}


@pytest.mark.parametrize("kind", [k for k in SLOW_KINDS if k != "slow-body"])
def test_slow_client_is_disconnected_by_the_header_timeout(slow_clients, kind):
    clients = slow_clients[kind]
    for c in clients:
        c.join(timeout=SLOW_CLOSE_BOUND_S + 10)
    assert all(c.error is None for c in clients), [c.error for c in clients]
    times = [c.closed_after for c in clients]
    assert all(t is not None and t <= SLOW_CLOSE_BOUND_S for t in times), f"{kind}: closed after {times}"


def test_slow_body_is_disconnected(slow_clients):
    clients = slow_clients["slow-body"]
    for c in clients:
        c.join(timeout=SLOW_CLOSE_BOUND_S + 10)
    times = [c.closed_after for c in clients]
    assert all(t is not None and t <= SLOW_CLOSE_BOUND_S for t in times), f"slow-body: closed after {times}"


def test_well_behaved_clients_are_served_while_slow_clients_hang_on(herald, slow_clients):
    started = time.monotonic()
    for _ in range(20):
        assert status_of(raw_http(herald, b"GET /up HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) == 200
        sock = PusherSocket(herald)
        assert sock.ping_pong()["event"] == "pusher:pong"
        sock.shutdown()
    assert time.monotonic() - started < 10


# --- handshake floods -------------------------------------------------------------------------------

def _flood(port: int, requests: list[bytes], want: bytes, timeout: float = 30.0) -> list[socket.socket]:
    """Opens one connection per request, sends them all, and waits until each received `want`."""
    sel = selectors.DefaultSelector()
    socks = []
    for req in requests:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(req)
        s.setblocking(False)
        socks.append(s)
        sel.register(s, selectors.EVENT_READ, bytearray())
    pending = len(socks)
    deadline = time.monotonic() + timeout
    done = set()
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=max(0.0, deadline - time.monotonic())):
            try:
                chunk = key.fileobj.recv(65536)
            except (BlockingIOError, ConnectionResetError):
                chunk = b""
            key.data.extend(chunk)
            if want in key.data or not chunk:
                sel.unregister(key.fileobj)
                done.add(key.fileobj)
                pending -= 1
    missing = [s for s in socks if s not in done]
    assert not missing, f"{len(missing)} of {len(socks)} connections got no answer within {timeout} s"
    return socks


def _drop_all(socks: list[socket.socket]):
    """Closes every socket with a TCP reset (SO_LINGER 0): the harshest mass disconnect."""
    for s in socks:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        except OSError:
            pass


@pytest.mark.parametrize("target,want", [
    (f"/app/{APP['key']}?protocol=7&client=flood&version=1.0", b"pusher:connection_established"),
    ("/app/no-such-key?protocol=7", b"4001"),
    (f"/app/{APP['key']}", b"4008"),
], ids=["sessions", "unknown-key", "no-protocol"])
def test_handshake_flood_is_served_and_survives_mass_disconnect(herald, target, want):
    socks = _flood(herald.port, [_upgrade_head(target) for _ in range(FLOOD)], want)
    _drop_all(socks)
    started = time.monotonic()
    sock = PusherSocket(herald)
    assert sock.ping_pong()["event"] == "pusher:pong"
    sock.shutdown()
    assert time.monotonic() - started < 2.0, "a new client waited on the mass disconnect"


def test_invalid_upgrade_flood_gets_400s(herald):
    bad = (b"GET /app/x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Version: 13\r\n\r\n")
    socks = _flood(herald.port, [bad] * FLOOD, b"HTTP/1.1 400")
    _drop_all(socks)


def test_connect_and_drop_flood(herald):
    for _ in range(500):
        s = socket.create_connection(("127.0.0.1", herald.port), timeout=5)
        _drop_all([s])
    assert status_of(raw_http(herald, b"GET /up HTTP/1.1\r\nHost: x\r\n\r\n")) == 200


def test_upgrade_then_drop_mid_frame_flood(herald):
    socks = _flood(herald.port, [_upgrade_head(f"/app/{APP['key']}?protocol=7") for _ in range(100)],
                   b"pusher:connection_established")
    for s in socks:
        s.setblocking(True)
        s.sendall(b"\x81\xfe\x10\x00\x01\x02\x03\x04" + b"x" * 100)  # a 4 KiB frame, cut short
    _drop_all(socks)
    sock = RawWebSocket(herald.port, f"/app/{APP['key']}?protocol=7")
    sock.close(1000)
    f = sock.recv_frame()
    while f.opcode != CLOSE:
        f = sock.recv_frame()
    sock.shutdown()
