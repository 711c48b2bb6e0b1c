"""Clients and signatures for the hostile-input suite: a raw-socket Pusher client, correctly
signed (or deliberately forged) HTTP API requests, raw HTTP, and the well-behaved watcher that
every test module keeps connected (see conftest.py).

The raw WebSocket client comes from tests/conformance/rawws.py, herald's launcher and the
Pusher signer from tests/support.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import socket
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "conformance"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

import pusher_sign  # noqa: E402
from herald_launcher import STARTUP_S, Herald  # noqa: E402
from pusher_sign import hmac_hex  # noqa: E402,F401
from rawws import CLOSE, PING, PONG, TEXT, ConnectionClosed, RawWebSocket  # noqa: E402

APP = {"id": "7001", "key": "hostile-key", "secret": "hostile-3d7f1b5e9a0c2468"}
OTHER_APP = {"id": "7002", "key": "other-key", "secret": "other-6f0b4d8a2e1c3579"}

CONFIG = f"""\
[[apps]]
id = "{APP['id']}"
key = "{APP['key']}"
secret = "{APP['secret']}"
enable_client_messages = true
enable_user_authentication = true

[[apps]]
id = "{OTHER_APP['id']}"
key = "{OTHER_APP['key']}"
secret = "{OTHER_APP['secret']}"
"""

WAIT_S = 5.0
PUBLISH_EVERY_S = 0.05
# A publication must reach the watcher within this long, whatever else the server is doing.
LATENCY_BOUND_S = 2.0


# --- signatures ------------------------------------------------------------------------------------

def channel_auth(socket_id: str, channel: str, channel_data: str | None = None, app: dict = APP) -> str:
    return pusher_sign.channel_auth(app, socket_id, channel, channel_data)


def signin_auth(socket_id: str, user_data: str, app: dict = APP) -> str:
    return pusher_sign.signin_auth(app, socket_id, user_data)


def signed_query(method: str, path: str, params: dict | list | None = None, body: bytes = b"", *,
                 app: dict = APP, timestamp: int | None = None) -> list[tuple[str, str]]:
    """The query pairs of a correctly signed API request (as a Pusher server SDK signs it)."""
    return pusher_sign.api_params(method, path, params, body, key=app["key"], secret=app["secret"],
                                  timestamp=timestamp)


def encode_query(pairs: list[tuple[str, str]]) -> str:
    return urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote)


def api_request(herald: Herald, method: str, path: str, *, query: str | None = None, body: bytes = b"",
                headers: dict | None = None, timeout: float = WAIT_S) -> tuple[int, str]:
    """Sends one HTTP request; `query` defaults to a correct signature. Returns (status, body)."""
    if query is None:
        query = encode_query(signed_query(method, path, body=body))
    conn = http.client.HTTPConnection("127.0.0.1", herald.port, timeout=timeout)
    try:
        hdrs = {"Content-Type": "application/json"} if body else {}
        hdrs.update(headers or {})
        conn.request(method, f"{path}?{query}" if query else path, body=body or None, headers=hdrs)
        res = conn.getresponse()
        return res.status, res.read().decode("utf-8", "replace")
    finally:
        conn.close()


def publish(herald: Herald, channel: str, name: str, data: str, app: dict = APP) -> tuple[int, str]:
    path = f"/apps/{app['id']}/events"
    body = json.dumps({"name": name, "channel": channel, "data": data}).encode()
    return api_request(herald, "POST", path, query=encode_query(signed_query("POST", path, body=body, app=app)),
                       body=body)


def raw_http(herald: Herald, data: bytes, *, timeout: float = WAIT_S, read_all: bool = False) -> bytes:
    """Sends raw bytes on a new TCP connection; returns what came back before EOF or `timeout`.

    Without `read_all` it stops after the first complete response head.
    """
    out = b""
    with socket.create_connection(("127.0.0.1", herald.port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
            if not read_all and b"\r\n\r\n" in out:
                break
    return out


def status_of(response: bytes) -> int | None:
    """The status code of a raw HTTP response, None when nothing (or not HTTP) came back."""
    if not response.startswith(b"HTTP/1."):
        return None
    return int(response.split(b" ", 2)[1])


# --- Pusher clients ----------------------------------------------------------------------------------

class PusherSocket(RawWebSocket):
    """A Pusher v7 client on a raw socket: JSON frames in and out, nothing hidden."""

    def __init__(self, herald: Herald, key: str = APP["key"], query: str = "protocol=7&client=hostile&version=1.0"):
        super().__init__(herald.port, f"/app/{key}?{query}")
        hello = self.event("pusher:connection_established")
        self.socket_id = json.loads(hello["data"])["socket_id"]

    def send_json(self, obj):
        self.text(json.dumps(obj))

    def next_json(self, timeout: float = WAIT_S) -> dict:
        """The next text message as JSON; answers WebSocket pings on the way."""
        deadline = time.monotonic() + timeout
        while True:
            opcode, payload = self.recv_message(max(0.0, deadline - time.monotonic()))
            if opcode == TEXT:
                return json.loads(payload)
            if opcode == PING:
                self.send_frame(PONG, payload)
            elif opcode == CLOSE:
                raise ConnectionClosed(f"server closed: {payload[:2].hex()} {payload[2:]!r}")

    def event(self, name: str, timeout: float = WAIT_S) -> dict:
        """The next message named `name`; others before it are skipped."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.next_json(max(0.0, deadline - time.monotonic()))
            if msg.get("event") == name:
                return msg

    def ping_pong(self):
        """Proves the socket is open and in sync: everything before the pong has been read."""
        self.send_json({"event": "pusher:ping", "data": {}})
        return self.event("pusher:pong")

    def subscribe(self, channel: str, **data) -> dict:
        self.send_json({"event": "pusher:subscribe", "data": {"channel": channel, **data}})
        return self.next_json()


@dataclass
class Endpoint:
    """Where a herald listens; what a process that did not start it needs to reach it."""
    port: int


class WatcherCore:
    """The well-behaved client and the publisher that feeds it, as two threads of one process."""

    def __init__(self, herald: Herald | Endpoint, channel: str):
        self.herald = herald
        self.channel = channel
        self.sock = PusherSocket(herald)
        ack = self.sock.subscribe(channel)
        assert ack["event"] == "pusher_internal:subscription_succeeded", ack
        self.received: list[tuple[int, float]] = []
        self.accepted: dict[int, float] = {}
        self.refused: list[tuple[int, int, str]] = []
        self.failure: str | None = None
        self.stop_publishing = threading.Event()
        self.stop_reading = threading.Event()
        self.last_seq: int | None = None
        self.got_last = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.publisher = threading.Thread(target=self._publish, daemon=True)
        self.reader.start()
        self.publisher.start()

    def _read(self):
        while not self.stop_reading.is_set():
            try:
                msg = self.sock.next_json(timeout=0.5)
            except TimeoutError:
                continue
            except Exception as err:  # noqa: BLE001 - any end of the watcher's socket is the finding
                self.failure = f"watcher socket failed: {err!r}"
                return
            if msg.get("event") == "pusher:ping":
                self.sock.send_json({"event": "pusher:pong", "data": {}})
            elif msg.get("event") == "tick" and msg.get("channel") == self.channel:
                seq = int(msg["data"])
                self.received.append((seq, time.monotonic()))
                if seq == self.last_seq:
                    self.got_last.set()

    def _publish(self):
        seq = 0
        while not self.stop_publishing.wait(PUBLISH_EVERY_S):
            seq += 1
            self._publish_one(seq)
        self.last_seq = seq + 1
        self._publish_one(self.last_seq)

    def _publish_one(self, seq: int):
        sent = time.monotonic()
        try:
            status, body = publish(self.herald, self.channel, "tick", str(seq))
        except OSError as err:
            self.refused.append((seq, 0, repr(err)))
            return
        if status == 200:
            self.accepted[seq] = sent
        else:
            self.refused.append((seq, status, body))

    def finish(self) -> dict:
        """Stops publishing, waits for the last event, and reports what happened."""
        self.stop_publishing.set()
        self.publisher.join(timeout=WAIT_S * 2)
        self.got_last.wait(timeout=WAIT_S)
        self.stop_reading.set()
        self.reader.join(timeout=WAIT_S)
        still_open = self.failure is None
        if still_open:
            try:
                self.sock.ping_pong()
            except Exception as err:  # noqa: BLE001 - reported below
                self.failure = f"watcher socket failed at the end: {err!r}"
        self.sock.shutdown()
        latencies = [t - self.accepted[s] for s, t in self.received if s in self.accepted]
        return {
            "failure": self.failure,
            "refused": self.refused[:5],
            "refused_count": len(self.refused),
            "received": [s for s, _ in self.received],
            "accepted": sorted(self.accepted),
            "worst_latency": max(latencies, default=0.0),
        }


def _watch(port: int, channel: str, conn):
    """Body of the watcher process: runs a WatcherCore until the parent says stop."""
    try:
        core = WatcherCore(Endpoint(port), channel)
    except Exception as err:  # noqa: BLE001 - sent to the parent, which fails the module
        conn.send({"failure": f"watcher could not start: {err!r}"})
        return
    conn.send({"ready": True})
    conn.recv()
    conn.send(core.finish())


class Watcher:
    """A WatcherCore in a process of its own, so what the test cases do in this process (floods
    of threads, megabyte payloads) cannot delay it; only the server can."""

    def __init__(self, herald: Herald, channel: str):
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_watch, args=(herald.port, channel, child), daemon=True)
        self.proc.start()
        if not self.conn.poll(STARTUP_S):
            raise AssertionError("the watcher process did not start")
        hello = self.conn.recv()
        assert hello.get("ready"), hello.get("failure")

    def verify(self) -> tuple[int, float]:
        """Asserts the watcher got every accepted event, in order, promptly, and stayed connected."""
        self.conn.send("stop")
        if not self.conn.poll(WAIT_S * 4):
            self.proc.kill()
            raise AssertionError("the watcher process did not report")
        r = self.conn.recv()
        self.proc.join(timeout=WAIT_S)
        assert r["failure"] is None, r["failure"]
        assert not r["refused_count"], f"the HTTP API refused {r['refused_count']} publishes: {r['refused']}"
        seqs, accepted = r["received"], r["accepted"]
        assert seqs == accepted, (
            f"watcher got {len(seqs)} events, API accepted {len(accepted)}; "
            f"missing {sorted(set(accepted) - set(seqs))[:10]}, duplicates {len(seqs) - len(set(seqs))}")
        assert r["worst_latency"] < LATENCY_BOUND_S, f"an event took {r['worst_latency']:.2f} s to reach the watcher"
        return len(seqs), r["worst_latency"]
