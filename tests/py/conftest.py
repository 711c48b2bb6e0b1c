"""Harness for the Python client suite: a real herald on 127.0.0.1:0, the PyPI `pusher` SDK
pointed at it, raw WebSocket subscribers (websockets, sync API) and hand-signed HTTP requests.

Nothing here sleeps to synchronise: every wait reads the socket or a queue with a timeout.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import time
import urllib.parse
from pathlib import Path

import pusher
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

# The launcher and signer every suite shares (tests/support).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

from herald_launcher import Herald as Launcher  # noqa: E402
from pusher_sign import api_params  # noqa: E402

WAIT_S = 5.0

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


class Herald(Launcher):
    """A running herald on 127.0.0.1 serving `apps` (None: no config file at all)."""

    def __init__(self, apps: list[dict] | None, env: dict[str, str] | None = None):
        super().__init__({"apps": apps} if apps is not None else None, env=env)
        self.apps = apps
        self.start()

    def ws_url(self, key: str, query: str = "protocol=7&client=python&version=1.0&flash=false") -> str:
        return f"ws://127.0.0.1:{self.port}/app/{key}" + (f"?{query}" if query else "")


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


def signed_request(herald: Herald, app: dict, method: str, path: str, *, query=None, body: str | None = None,
                   timestamp: int | None = None, body_md5: str | None = None, signature: str | None = None,
                   key: str | None = None, secret: str | None = None):
    """Sends a hand-signed HTTP API request (any part may be forged). Returns (status, text)."""
    params = api_params(method, path, dict(query or {}), body or b"", key=key or app["key"],
                        secret=secret or app["secret"], timestamp=timestamp, body_md5=body_md5, signature=signature)
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
