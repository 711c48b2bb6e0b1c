"""Raw WAMP v1 client over a bare TCP socket, and a herald launcher with WAMP listeners.

The client speaks RFC 6455 by hand so tests see exactly what herald put on the wire: the 101
headers, every frame's bytes (close frames included) and the order of messages. Nothing here
sleeps to synchronise: reads block on the socket with a deadline, and `sync()` is a CALL whose
CALLERROR proves every earlier message of this connection was processed.

The launcher (`WampHerald`, on tests/support/herald_launcher.py) writes a config with `[[apps]]`
and `[[listeners]]` tables and waits for one `herald listening on 127.0.0.1:PORT` line per
listener (the main listener first, then the `[[listeners]]` in file order).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import re
import socket
import struct
import time
from dataclasses import dataclass, field

import pytest

from herald_launcher import WAIT_S
from herald_launcher import Herald as Launcher
from wamp_session import Aborted, close_sessions, join, run, serializer_for, within  # noqa: F401

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

# v1 message type ids (§1.1 of the spec note).
WELCOME, PREFIX, CALL, CALLRESULT, CALLERROR, SUBSCRIBE, UNSUBSCRIBE, PUBLISH, EVENT = range(9)

# Procedure nobody registers: a CALL to it is answered with CALLERROR, which makes it a barrier.
BARRIER_PROC = "http://herald.test/barrier#sync"

# Numeric ids: the PyPI pusher SDK refuses app ids that are not all digits.
# Every app is a WAMP v2 realm (`wamp = true`); sessions without credentials (all of them here,
# and every WAMP v1 session) get the `trusted` role, which may publish, register and call.
WAMP_APPS = {
    # Default authorizer (allow-all).
    "open": {"id": "3001", "key": "wamp-open-key", "secret": "wamp-open-4f2a8c6e0b1d3957",
             "wamp": True, "wamp_anonymous_role": "trusted"},
    # `rules` authorizer: first matching rule decides, nothing matching denies.
    "rules": {
        "id": "3002", "key": "wamp-rules-key", "secret": "wamp-rules-7b1d5f9a3c0e2486",
        "wamp": True, "wamp_anonymous_role": "trusted",
        "wamp_authorizer": "rules",
        "wamp_rules": [
            {"action": "call", "uri": "authz.open.secret", "allow": False},
            {"action": "*", "uri": "authz.open.", "match": "prefix", "allow": True},
            {"action": "subscribe", "uri": "authz.readonly.", "match": "prefix", "allow": True},
            {"action": "subscribe", "uri": "authz..wild", "match": "wildcard", "allow": True},
        ],
    },
    # Pings after one idle second and gives up one second later.
    "impatient": {"id": "3004", "key": "wamp-impatient-key", "secret": "wamp-impatient-2c6e0a4f8b1d3579",
                  "wamp": True, "wamp_anonymous_role": "trusted", "activity_timeout": 1, "pong_timeout": 1},
    # Switched off: no protocol may serve it.
    "disabled": {"id": "3003", "key": "wamp-disabled-key", "secret": "wamp-disabled-8e4a2c6f0d1b3957",
                 "wamp": True, "wamp_anonymous_role": "trusted", "enabled": False},
}

# WAMP v1 listeners on free ports, by name: one per app, plus a strict-subprotocol one.
WAMP_LISTENERS = {
    "open": {"host": "127.0.0.1", "port": 0, "protocol": "wamp1", "app": WAMP_APPS["open"]["id"]},
    "rules": {"host": "127.0.0.1", "port": 0, "protocol": "wamp1", "app": WAMP_APPS["rules"]["id"]},
    "strict": {"host": "127.0.0.1", "port": 0, "protocol": "wamp1", "app": WAMP_APPS["open"]["id"],
               "strict_subprotocol": True},
    "disabled": {"host": "127.0.0.1", "port": 0, "protocol": "wamp1", "app": WAMP_APPS["disabled"]["id"]},
    "impatient": {"host": "127.0.0.1", "port": 0, "protocol": "wamp1", "app": WAMP_APPS["impatient"]["id"]},
}

SESSION_ID = re.compile(r"[0-9a-z]{16,32}")


# --- the process -------------------------------------------------------------------------

class WampHerald(Launcher):
    """A herald process serving the WAMP apps: Pusher + WAMP v2 on `port`, WAMP v1 per listener."""

    def __init__(self, apps: list[dict] | None = None, listeners: dict[str, dict] | None = None,
                 extra: dict | None = None):
        """`extra`: more top-level tables of the config file (e.g. `scale_out`)."""
        self.apps = list(WAMP_APPS.values()) if apps is None else apps
        self.listener_names = list((WAMP_LISTENERS if listeners is None else listeners).keys())
        self.listeners = list((WAMP_LISTENERS if listeners is None else listeners).values())
        doc = {"apps": self.apps, **(extra or {})}
        if self.listeners:
            doc["listeners"] = self.listeners
        super().__init__(doc)
        # One listening line per listener, the main one first.
        self.start(listeners=1 + len(self.listeners))
        self.v1_ports = self._assign(self.listening[1:])

    def _assign(self, lines: list[tuple[int, str | None]]) -> dict[str, int]:
        """Listener name -> port, in file order; a label naming another app is a mistake."""
        ports: dict[str, int] = {}
        for name, listener, (port, label) in zip(self.listener_names, self.listeners, lines):
            if label and listener["app"] not in label:
                self.stop()
                raise AssertionError(f"listening line for listener {name!r} (app {listener['app']}) says {label!r}")
            ports[name] = port
        return ports

    def v1_port(self, listener: str = "open") -> int:
        """Port of the WAMP v1 listener named `listener` in WAMP_LISTENERS."""
        return self.v1_ports[listener]

    def v2_url(self, path: str = "/ws") -> str:
        """WAMP v2 endpoint (any path but /app/{key} on the main listener)."""
        return f"ws://127.0.0.1:{self.port}{path}"

    def pusher_url(self, app: str = "open") -> str:
        return f"ws://127.0.0.1:{self.port}/app/{WAMP_APPS[app]['key']}?protocol=7&client=python&version=1.0"


@pytest.fixture(scope="module")
def wamp_herald():
    """One herald per test module with the WAMP apps and listeners; checked alive after each test."""
    server = WampHerald()
    yield server
    server.stop()


# --- the raw client ------------------------------------------------------------------------

class HandshakeRefused(Exception):
    """The server answered the upgrade with something other than 101."""

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes):
        super().__init__(f"HTTP {status} instead of 101: {headers} {body[:200]!r}")
        self.status = status
        self.headers = headers
        self.body = body


@dataclass
class Frame:
    """One WebSocket frame as received: opcode, FIN bit, payload and the exact bytes."""
    opcode: int
    fin: bool
    payload: bytes
    raw: bytes


class Closed(Exception):
    """The server closed: `code` None means TCP ended without a close frame."""

    def __init__(self, code: int | None, reason: bytes, raw: bytes):
        super().__init__(f"closed by server: code {code}, frame {raw.hex(' ')}")
        self.code = code
        self.reason = reason
        self.raw = raw


@dataclass
class Upgrade:
    """The server's answer to an upgrade request."""
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    leftover: bytes = b""

    def header_values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


def _read_head(sock: socket.socket, deadline: float) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
        if time.monotonic() > deadline:
            break
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def upgrade_request(port: int, path: str = "/", protocols: tuple[str, ...] | None = ("wamp",),
                    extra: str = "", key: str | None = None, omit: tuple[str, ...] = ()) -> tuple[socket.socket, Upgrade, str]:
    """Sends a hand-written upgrade request; returns the socket, the parsed answer and the key used."""
    key = key or base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    if protocols:
        lines.append(f"Sec-WebSocket-Protocol: {', '.join(protocols)}")
    lines = [line for line in lines if line.split(":")[0] not in omit]
    request = "\r\n".join(lines) + "\r\n" + extra + "\r\n"
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(request.encode())
    head, rest = _read_head(sock, time.monotonic() + WAIT_S)
    text = head.decode("latin-1").split("\r\n")
    status_line = text[0] if text else ""
    parts = status_line.split(" ")
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    headers = []
    for line in text[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return sock, Upgrade(status, headers, rest), key


def accept_value(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


class Wamp1Client:
    """A WAMP v1 client on a raw socket that keeps every frame and message it read.

    `welcome` holds the WELCOME message; `session_id` its session id. Messages that arrive while
    a test waits for something else are kept in `pending` for later `expect` calls.
    """

    _call_ids = itertools.count(1)

    def __init__(self, port: int, path: str = "/", protocols: tuple[str, ...] = ("wamp",), wait_welcome: bool = True):
        self.port = port
        self.sock, self.upgrade, key = upgrade_request(port, path, protocols)
        if self.upgrade.status != 101:
            body = self.upgrade.leftover
            self.sock.close()
            raise HandshakeRefused(self.upgrade.status, self.upgrade.headers, body)
        accept = self.upgrade.header_values("Sec-WebSocket-Accept")
        assert accept == [accept_value(key)], f"bad Sec-WebSocket-Accept {accept}"
        self.buf = bytearray(self.upgrade.leftover)
        self.frames: list[Frame] = []
        self.messages: list = []
        self.pending: list = []
        self.pongs: list[bytes] = []
        self.auto_pong = True
        self.closed: Closed | None = None
        self._fragments: list[bytes] | None = None
        self.welcome = None
        self.session_id = None
        if wait_welcome:
            self.welcome = self.recv()
            assert isinstance(self.welcome, list) and self.welcome[:1] == [WELCOME], \
                f"first message is not WELCOME: {self.welcome!r}"
            self.session_id = self.welcome[1]

    # -- bytes -----------------------------------------------------------------------------

    def _fill(self, n: int, deadline: float):
        while len(self.buf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout as err:
                raise TimeoutError from err
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise EOFError
            self.buf += chunk

    def _take(self, n: int) -> bytes:
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_frame(self, timeout: float = WAIT_S) -> Frame:
        """The next frame, exactly as sent. Server frames must be unmasked."""
        deadline = time.monotonic() + timeout
        self._fill(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        length = b1 & 0x7F
        header = 2
        if length == 126:
            self._fill(4, deadline)
            length = struct.unpack(">H", self.buf[2:4])[0]
            header = 4
        elif length == 127:
            self._fill(10, deadline)
            length = struct.unpack(">Q", self.buf[2:10])[0]
            header = 10
        assert not b1 & 0x80, "server sent a masked frame"
        assert not b0 & 0x70, f"server set RSV bits: {b0:#x}"
        self._fill(header + length, deadline)
        raw = self._take(header + length)
        frame = Frame(b0 & 0x0F, bool(b0 & 0x80), raw[header:], raw)
        self.frames.append(frame)
        return frame

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True, mask: bool = True):
        b0 = (0x80 if fin else 0) | opcode
        n = len(payload)
        if n < 126:
            header = struct.pack(">BB", b0, (0x80 if mask else 0) | n)
        elif n < 65536:
            header = struct.pack(">BBH", b0, (0x80 if mask else 0) | 126, n)
        else:
            header = struct.pack(">BBQ", b0, (0x80 if mask else 0) | 127, n)
        if mask:
            key = os.urandom(4)
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload)) if n < 4096 else _mask_fast(payload, key)
            header += key
        self.sock.sendall(header + payload)

    # -- messages --------------------------------------------------------------------------

    def recv(self, timeout: float = WAIT_S):
        """The next text message, parsed (answers pings). Raises Closed when the server closes."""
        deadline = time.monotonic() + timeout
        while True:
            if self.closed:
                raise self.closed
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            try:
                frame = self.read_frame(remaining)
            except EOFError:
                self.closed = Closed(None, b"", b"")
                raise self.closed from None
            if frame.opcode == OP_PING:
                if self.auto_pong:
                    self.send_frame(OP_PONG, frame.payload)
                continue
            if frame.opcode == OP_PONG:
                self.pongs.append(frame.payload)
                continue
            if frame.opcode == OP_CLOSE:
                code = struct.unpack(">H", frame.payload[:2])[0] if len(frame.payload) >= 2 else None
                self.closed = Closed(code, frame.payload[2:], frame.raw)
                raise self.closed
            if frame.opcode == OP_BINARY:
                raise AssertionError(f"WAMP v1 server sent a binary frame: {frame.raw[:40].hex(' ')}")
            if frame.opcode == OP_TEXT and frame.fin:
                text = frame.payload
            elif frame.opcode == OP_TEXT:
                self._fragments = [frame.payload]
                continue
            else:
                assert self._fragments is not None, "continuation frame without a start"
                self._fragments.append(frame.payload)
                if not frame.fin:
                    continue
                text = b"".join(self._fragments)
                self._fragments = None
            msg = _parse(text.decode("utf-8"))
            self.messages.append(msg)
            return msg

    def expect(self, pred, timeout: float = WAIT_S, what: str = "a matching message"):
        """The first message (buffered ones first) matching `pred`; others stay pending."""
        for i, msg in enumerate(self.pending):
            if pred(msg):
                return self.pending.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                msg = self.recv(remaining)
            except TimeoutError:
                raise AssertionError(f"no {what} within {timeout} s on v1 port {self.port}; "
                                     f"seen: {self.messages[-10:]}") from None
            if pred(msg):
                return msg
            self.pending.append(msg)

    def expect_event(self, topic: str, timeout: float = WAIT_S):
        """The next EVENT on `topic`; returns its payload."""
        msg = self.expect(lambda m: m[:2] == [EVENT, topic], timeout, f"EVENT on {topic!r}")
        assert len(msg) == 3, f"EVENT must have 3 elements: {msg!r}"
        return msg[2]

    def events(self, topic: str) -> list:
        """Payloads of every EVENT on `topic` read so far, in order."""
        return [m[2] for m in self.messages if isinstance(m, list) and m[:2] == [EVENT, topic]]

    def send(self, msg):
        self.send_text(json.dumps(msg))

    def send_text(self, text: str):
        self.send_frame(OP_TEXT, text.encode("utf-8"))

    def call(self, proc: str, *args, call_id: str | None = None, timeout: float = WAIT_S):
        """Sends CALL and returns the CALLRESULT or CALLERROR with the same call id."""
        call_id = call_id or f"c{next(self._call_ids)}"
        self.send([CALL, call_id, proc, *args])
        return self.expect(lambda m: isinstance(m, list) and m[:1] in ([CALLRESULT], [CALLERROR])
                           and len(m) > 1 and m[1] == call_id, timeout, f"answer to CALL {call_id}")

    def sync(self):
        """Barrier: once this returns, herald has processed everything sent before on this socket."""
        answer = self.call(BARRIER_PROC)
        assert answer[0] == CALLERROR, f"barrier CALL unexpectedly answered {answer!r}"

    def subscribe(self, *topics: str, sync: bool = True):
        for topic in topics:
            self.send([SUBSCRIBE, topic])
        if sync:
            self.sync()

    def unsubscribe(self, *topics: str, sync: bool = True):
        for topic in topics:
            self.send([UNSUBSCRIBE, topic])
        if sync:
            self.sync()

    def publish(self, topic: str, event, *rest):
        self.send([PUBLISH, topic, event, *rest])

    def expect_close(self, timeout: float = WAIT_S) -> Closed:
        """Reads until the server closes; returns the close (frame bytes, code)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"v1 socket still open after {timeout} s; seen: {self.messages[-10:]}")
            try:
                self.recv(remaining)
            except Closed as closed:
                return closed
            except TimeoutError:
                continue

    def expect_eof(self, timeout: float = WAIT_S):
        """Asserts the server ends TCP (after its close frame) within `timeout` without our close reply."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"TCP still open {timeout} s after the close frame")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                return
            if not chunk:
                return
            self.buf += chunk

    def close(self):
        """Clean close: close frame 1000, then drop the socket."""
        try:
            if not self.closed:
                self.send_frame(OP_CLOSE, struct.pack(">H", 1000))
        except OSError:
            pass
        self.abort()

    def abort(self):
        """Drops TCP without a close frame."""
        try:
            self.sock.close()
        except OSError:
            pass


class DeepJson(list):
    """A message too deeply nested for Python's json module: `[type, element1, "<deep>"]` + text."""

    def __init__(self, head: list, text: str):
        super().__init__(head)
        self.text = text


def _parse(text: str):
    try:
        return json.loads(text)
    except RecursionError:
        match = re.match(r'\[(\d+),("(?:[^"\\]|\\.)*"),', text)
        if not match:
            raise
        return DeepJson([int(match.group(1)), json.loads(match.group(2)), "<deep>"], text)


def _mask_fast(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    mask = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(n, "big")


class Clients:
    """Opens v1 clients and closes them all at the end of a test."""

    def __init__(self, herald: WampHerald):
        self.herald = herald
        self.opened: list[Wamp1Client] = []

    def __call__(self, listener: str = "open", **kwargs) -> Wamp1Client:
        client = Wamp1Client(self.herald.v1_port(listener), **kwargs)
        self.opened.append(client)
        return client

    def close_all(self):
        for client in self.opened:
            client.close()


@pytest.fixture
def v1(wamp_herald):
    """Factory of raw WAMP v1 clients on the test module's herald; all closed after the test."""
    clients = Clients(wamp_herald)
    yield clients
    clients.close_all()
    wamp_herald.assert_alive()


# --- WAMP v2 sessions (autobahn-python, asyncio) --------------------------------------------
#
# Every WAMP test module joins through tests/support/wamp_session.py; autobahn is imported lazily
# there, so a v1-only run does not need it.

class V2Event:
    """One event as an autobahn-python handler saw it."""

    def __init__(self, args: tuple, kwargs: dict, details):
        self.args = list(args)
        self.kwargs = kwargs
        self.details = details
        self.topic = getattr(details, "topic", None)

    def __repr__(self):
        return f"V2Event(args={self.args}, kwargs={self.kwargs}, topic={self.topic})"


class EventInbox:
    """Collects events of one or more subscriptions; `next()` waits with a timeout."""

    def __init__(self, label: str):
        import asyncio
        self.label = label
        self.items: list[V2Event] = []
        self._queue: asyncio.Queue[V2Event] = asyncio.Queue()

    def handler(self, *args, details=None, **kwargs):
        event = V2Event(args, kwargs, details)
        self.items.append(event)
        self._queue.put_nowait(event)

    async def next(self, timeout: float = WAIT_S) -> V2Event:
        import asyncio
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"no event within {timeout} s on {self.label}; seen {self.items[-10:]}") from None

    async def until(self, pred, timeout: float = WAIT_S) -> V2Event:
        """Skips events until one matches `pred`."""
        while True:
            event = await self.next(timeout)
            if pred(event):
                return event

    def payloads(self) -> list:
        return [e.args[0] if e.args else None for e in self.items]


class Sessions:
    """Joins autobahn-python sessions and closes them all (`await sessions.close()`)."""

    def __init__(self, herald: WampHerald, serializer: str = "json", realm: str | None = None):
        self.herald = herald
        self.serializer = serializer
        self.realm = realm or WAMP_APPS["open"]["id"]
        self.opened = []

    async def join(self, realm: str | None = None, serializer: str | None = None, path: str = "/ws"):
        """A joined session; raises Aborted when the router answers HELLO with ABORT."""
        return await join(self.herald.port, realm or self.realm, serializer=serializer or self.serializer,
                          path=path, track=self.opened)

    async def close(self):
        await close_sessions(self.opened)


def scenario(herald: WampHerald, serializer: str, body, realm: str | None = None):
    """Runs `body(sessions)` with a Sessions factory of `realm`, closing every session afterwards."""
    async def main():
        sessions = Sessions(herald, serializer, realm)
        try:
            return await body(sessions)
        finally:
            await sessions.close()
    return run(main())
