"""Harness for the Python client suite: a real herald on 127.0.0.1:0, the PyPI `pusher` SDK
pointed at it, raw WebSocket subscribers (websockets, sync API) and hand-signed HTTP requests.

Nothing here sleeps to synchronise: every wait reads the socket or a queue with a timeout.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import queue
import re
import subprocess
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import pusher
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 5.0
STARTUP_S = 20.0

# Numeric ids: the PyPI SDK refuses app ids that are not all digits.
APPS = {
    "main": {
        "id": "2001", "key": "py-main-key", "secret": "py-main-5e1d9c3a7b2f4068",
        "enable_client_messages": True, "enable_user_authentication": True,
    },
    "disabled": {"id": "2002", "key": "py-disabled-key", "secret": "py-disabled-0a8c6e4f2b1d3579", "enabled": False},
    "counted": {
        "id": "2003", "key": "py-counted-key", "secret": "py-counted-9d3b7f1e5a0c2468",
        "enable_subscription_count": True,
    },
}


def herald_bin() -> Path:
    """The herald binary under test: $HERALD_BIN, else target/debug/herald."""
    if os.environ.get("HERALD_BIN"):
        return Path(os.environ["HERALD_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    if not target.is_absolute():
        target = ROOT / target
    return target / "debug" / "herald"


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value)


def to_toml(apps: list[dict]) -> str:
    """herald's TOML config for these app tables."""
    blocks = []
    for app in apps:
        lines = ["[[apps]]"] + [f"{k} = {_toml_value(v)}" for k, v in app.items()]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


class Herald:
    """A running herald process on 127.0.0.1 with the port it printed."""

    def __init__(self, apps: list[dict] | None, env: dict[str, str] | None = None):
        binary = herald_bin()
        if not binary.exists():
            raise RuntimeError(
                f"herald binary not found at {binary}: run `cargo build -p herald-server` or set HERALD_BIN")
        self.apps = apps
        self.tmp = tempfile.TemporaryDirectory(prefix="herald-py-")
        args = [str(binary), "serve", "--host", "127.0.0.1", "--port", "0"]
        if apps is not None:
            config = Path(self.tmp.name) / "herald.toml"
            config.write_text(to_toml(apps))
            args += ["--config", str(config)]
        child_env = {k: v for k, v in os.environ.items() if not k.startswith(("PUSHER_", "HERALD_"))}
        child_env.update(env or {})
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env, text=True)
        self.stderr_lines: list[str] = []
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(self.proc.stdout, lines.put, True), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr_lines.append, False),
                         daemon=True).start()
        deadline = time.monotonic() + STARTUP_S
        self.port = None
        while self.port is None:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self._fail(f"herald did not print its listening line within {STARTUP_S} s")
            if line is None:
                self.proc.wait(timeout=WAIT_S)
                self._fail(f"herald exited early with code {self.proc.returncode}")
            match = re.fullmatch(r"herald listening on 127\.0\.0\.1:(\d+)", line.strip())
            if match:
                self.port = int(match.group(1))

    @staticmethod
    def _pump(stream, sink, signal_eof: bool):
        for line in stream:
            sink(line.rstrip("\n"))
        if signal_eof:
            sink(None)

    def _fail(self, why: str):
        self.proc.kill()
        self.proc.wait()
        raise RuntimeError(f"{why}\n--- herald stderr ---\n" + "\n".join(self.stderr_lines))

    def stderr(self) -> str:
        return "\n".join(self.stderr_lines)

    def ws_url(self, key: str, query: str = "protocol=7&client=python&version=1.0&flash=false") -> str:
        return f"ws://127.0.0.1:{self.port}/app/{key}" + (f"?{query}" if query else "")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.tmp.cleanup()


class RawSocket:
    """A raw Pusher-protocol WebSocket client keeping every frame it read."""

    def __init__(self, url: str):
        self.url = url
        self.ws = connect(url, open_timeout=WAIT_S, max_size=None, legacy=True)
        self.seen: list[dict] = []
        self.pending: list[dict] = []
        self.close_code: int | None = None
        hello = self.next("pusher:connection_established")
        self.socket_id = hello["decoded"]["socket_id"]

    def _read(self, timeout: float) -> dict:
        text = self.ws.recv(timeout=timeout)
        msg = json.loads(text)
        if isinstance(msg.get("data"), str):
            try:
                msg["decoded"] = json.loads(msg["data"])
            except ValueError:
                msg["decoded"] = msg["data"]
        else:
            msg["decoded"] = msg.get("data")
        self.seen.append(msg)
        return msg

    def next(self, event: str, pred=lambda m: True, timeout: float = WAIT_S) -> dict:
        """The next frame whose event is `event` (and matching `pred`), buffered ones first."""
        for i, msg in enumerate(self.pending):
            if msg.get("event") == event and pred(msg):
                return self.pending.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {event} within {timeout} s on {self.url}; seen: {self.seen[-10:]}")
            try:
                msg = self._read(remaining)
            except TimeoutError as err:
                raise AssertionError(f"no {event} within {timeout} s on {self.url}; seen: {self.seen[-10:]}") from err
            if msg.get("event") == event and pred(msg):
                return msg
            self.pending.append(msg)

    def events(self, event: str) -> list[dict]:
        return [m for m in self.seen if m.get("event") == event]

    def send(self, obj: dict):
        self.ws.send(json.dumps(obj))

    def subscribe(self, channel: str, **extra) -> dict:
        self.send({"event": "pusher:subscribe", "data": {"channel": channel, **extra}})
        return self.next("pusher_internal:subscription_succeeded", lambda m: m.get("channel") == channel)

    def ping(self) -> dict:
        self.send({"event": "pusher:ping", "data": {}})
        return self.next("pusher:pong")

    def wait_closed(self, timeout: float = WAIT_S) -> int:
        """Reads until the server closes the socket; returns the close code."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.url} still open after {timeout} s")
            try:
                self._read(remaining)
            except ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd else 1006
            except TimeoutError:
                continue

    def close(self):
        self.ws.close()


def sign(secret: str, text: str) -> str:
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def signed_request(herald: Herald, app: dict, method: str, path: str, *, query=None, body: str | None = None,
                   timestamp: int | None = None, body_md5: str | None = None, signature: str | None = None,
                   key: str | None = None, secret: str | None = None):
    """Sends a hand-signed HTTP API request (any part may be forged). Returns (status, text)."""
    params = dict(query or {})
    params.update({
        "auth_key": key or app["key"],
        "auth_timestamp": str(timestamp if timestamp is not None else int(time.time())),
        "auth_version": "1.0",
    })
    if body:
        params["body_md5"] = body_md5 or hashlib.md5(body.encode()).hexdigest()
    to_sign = "&".join(f"{k}={params[k]}" for k in sorted(params))
    params["auth_signature"] = signature or sign(secret or app["secret"], f"{method}\n{path}\n{to_sign}")
    conn = http.client.HTTPConnection("127.0.0.1", herald.port, timeout=WAIT_S)
    try:
        headers = {"Content-Type": "application/json"} if body else {}
        conn.request(method, f"{path}?{urllib.parse.urlencode(params)}", body=body, headers=headers)
        res = conn.getresponse()
        return res.status, res.read().decode()
    finally:
        conn.close()


def error_message(text: str) -> str:
    """The message of an HTTP error body (JSON `error`/`message`, else the text)."""
    try:
        body = json.loads(text)
    except ValueError:
        return text
    if isinstance(body, dict):
        for field in ("error", "message"):
            if isinstance(body.get(field), str):
                return body[field]
    return text


_counter = [0]


def uid(prefix: str = "ch") -> str:
    """A channel-name suffix unique within this run."""
    _counter[0] += 1
    return f"{prefix}-py{os.getpid()}-{_counter[0]}"


@pytest.fixture(scope="session")
def herald():
    server = Herald(list(APPS.values()))
    yield server
    server.stop()


@pytest.fixture
def sdk(herald):
    """The PyPI `pusher` SDK for the main app."""
    return make_sdk(herald, APPS["main"])


def make_sdk(herald: Herald, app: dict) -> pusher.Pusher:
    return pusher.Pusher(
        app_id=app["id"], key=app["key"], secret=app["secret"],
        ssl=False, host="127.0.0.1", port=herald.port, timeout=WAIT_S)


@pytest.fixture
def sockets(herald):
    """Factory of raw sockets on an app; all closed after the test."""
    opened: list[RawSocket] = []

    def open_socket(app: dict = APPS["main"]) -> RawSocket:
        sock = RawSocket(herald.ws_url(app["key"]))
        opened.append(sock)
        return sock

    yield open_socket
    for sock in opened:
        try:
            sock.close()
        except Exception:  # noqa: BLE001 - the socket may already be closed by the test
            pass
