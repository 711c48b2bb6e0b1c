"""The attacker's and the victim's clients: raw Pusher sockets (tests/hostile's), the PyPI
`pusher` SDK, pusher-js (the npm package, through pusher_js_driver.mjs), autobahn-python for
WAMP v2, the raw WAMP v1 client of tests/py, and hand-written upgrade requests.

The rule of every attack test: a victim that WOULD see a forged event first proves it works (a
legitimate event reaches it), then the attack runs, then `quiet()` asserts that nothing at all
reaches the victim on that channel within QUIET_S.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import itertools
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pusher

import sec_launch
from sec_launch import WAIT_S

sys.path.append(str(sec_launch.TESTS / "py"))

from hostile_client import (Endpoint, PusherSocket, api_request, encode_query, hmac_hex,  # noqa: E402,F401
                            raw_http, signed_query, status_of)
from rawws import TEXT, ConnectionClosed, RawWebSocket  # noqa: E402,F401
from wamp1_client import Wamp1Client  # noqa: E402,F401

import wamp_session  # noqa: E402
from wamp_session import Aborted, run  # noqa: E402,F401

# How long a victim must stay silent after an attack.
QUIET_S = 1.0
NODE_DRIVER = Path(__file__).resolve().parent / "pusher_js_driver.mjs"

_ids = itertools.count(1)


def uid(prefix: str) -> str:
    """A channel / topic name unique in this run (valid as a Pusher channel and a WAMP URI)."""
    return f"{prefix}-{os.getpid()}-{next(_ids)}"


# --- signatures ------------------------------------------------------------------------------------

def channel_auth(app: dict, socket_id: str, channel: str, channel_data: str | None = None,
                 secret: str | None = None) -> str:
    text = f"{socket_id}:{channel}" + (f":{channel_data}" if channel_data is not None else "")
    return f"{app['key']}:{hmac_hex(secret or app['secret'], text)}"


def member(user_id: str, **info) -> str:
    return json.dumps({"user_id": user_id, "user_info": info or {"name": user_id}})


# --- HTTP ----------------------------------------------------------------------------------------

def sdk(server, app: dict, **override) -> pusher.Pusher:
    """The PyPI SDK aimed at `server`; `override` replaces app_id / key / secret (forgeries)."""
    creds = {"app_id": app["id"], "key": app["key"], "secret": app["secret"], **override}
    return pusher.Pusher(ssl=False, host="127.0.0.1", port=server.port, timeout=WAIT_S, **creds)


def publish(server, app: dict, channel: str, name: str, data) -> None:
    """A legitimate event through the HTTP API (the positive control)."""
    sdk(server, app).trigger(channel, name, data)


def http_get(port: int, path: str, headers: dict | None = None) -> tuple[int, str]:
    head = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}Connection: close\r\n\r\n"
    raw = raw_http(Endpoint(port), request.encode(), read_all=True)
    status = status_of(raw)
    return (status or 0), raw.partition(b"\r\n\r\n")[2].decode("utf-8", "replace")


def upgrade_status(port: int, path: str, headers: dict | None = None, protocol: str | None = None) -> int:
    """The status herald answers a WebSocket upgrade with (101, 403, 429...), on a raw socket."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    if protocol:
        lines.append(f"Sec-WebSocket-Protocol: {protocol}")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    raw = raw_http(Endpoint(port), ("\r\n".join(lines) + "\r\n\r\n").encode())
    return status_of(raw) or 0


# --- Pusher: raw victim socket ---------------------------------------------------------------------

class Sub(PusherSocket):
    """A raw Pusher socket on `app` that joins channels and watches what reaches them."""

    def __init__(self, server, app: dict, headers: dict | None = None):
        self.app = app
        if headers:
            RawWebSocket.__init__(self, server.port, f"/app/{app['key']}?protocol=7&client=sec&version=1.0",
                                  headers=headers)
            hello = self.event("pusher:connection_established")
            self.socket_id = json.loads(hello["data"])["socket_id"]
        else:
            super().__init__(server, key=app["key"])
        self.pending: list[dict] = []

    def join(self, channel: str, channel_data: str | None = None, auth: str | None = None) -> dict:
        """Subscribes (signing private/presence channels with the app's secret); waits for success."""
        data: dict = {"channel": channel}
        if channel.startswith(("private-", "presence-")):
            data["auth"] = auth or channel_auth(self.app, self.socket_id, channel, channel_data)
        if channel_data is not None:
            data["channel_data"] = channel_data
        self.send_json({"event": "pusher:subscribe", "data": data})
        return self.expect(channel, "pusher_internal:subscription_succeeded")

    def refused(self, channel: str, auth: str | None, channel_data: str | None = None) -> int:
        """Subscribes with a given (forged) auth; returns the subscription_error status."""
        data = {"channel": channel, "auth": auth}
        if channel_data is not None:
            data["channel_data"] = channel_data
        self.send_json({"event": "pusher:subscribe", "data": data})
        msg = self.expect(channel, "pusher:subscription_error")
        return json.loads(msg["data"])["status"] if isinstance(msg["data"], str) else msg["data"]["status"]

    def expect(self, channel: str, name: str, timeout: float = WAIT_S) -> dict:
        for i, msg in enumerate(self.pending):
            if msg.get("channel") == channel and msg.get("event") == name:
                return self.pending.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self.next_json(max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise AssertionError(f"{name} on {channel} did not arrive within {timeout} s") from None
            if msg.get("channel") == channel and msg.get("event") == name:
                return msg
            self.pending.append(msg)

    def quiet(self, channel: str, seconds: float = QUIET_S, allow=()) -> None:
        """Nothing arrives on `channel` within `seconds` (events named in `allow` excepted)."""
        leaked = [m for m in self.pending if m.get("channel") == channel and m.get("event") not in allow]
        deadline = time.monotonic() + seconds
        while not leaked:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                msg = self.next_json(remaining)
            except TimeoutError:
                return
            if msg.get("channel") == channel and msg.get("event") not in allow:
                leaked.append(msg)
            else:
                self.pending.append(msg)
        raise AssertionError(f"a forged event reached the victim on {channel}: {leaked}")

    def shutdown(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - already closed by the server
            pass
        self.sock.close()


def control(server, app: dict, channel: str, *victims: Sub) -> None:
    """Positive control: a legitimate HTTP API event on `channel` reaches every victim."""
    name = f"control-{next(_ids)}"
    publish(server, app, channel, name, {"legit": True})
    for victim in victims:
        victim.expect(channel, name)


# --- Pusher: pusher-js -------------------------------------------------------------------------------

class PusherJs:
    """One real pusher-js client in a node child process (pusher_js_driver.mjs)."""

    def __init__(self, server, app: dict):
        self.proc = subprocess.Popen(["node", str(NODE_DRIVER), str(server.port), app["key"]],
                                     cwd=str(sec_launch.ROOT), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.reports: queue.Queue = queue.Queue()
        self.seen: list[dict] = []
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()
        self.socket_id = self.wait(lambda r: r["type"] == "connected", "pusher-js to connect")["socket_id"]

    def _pump(self):
        for line in self.proc.stdout:
            self.reports.put(json.loads(line))
        self.reports.put(None)

    def command(self, **cmd) -> None:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        self.wait(lambda r: r["type"] == "done" and r["op"] == cmd["op"], f"pusher-js to run {cmd['op']}")

    def wait(self, pred, what: str, timeout: float = WAIT_S) -> dict:
        for r in self.seen:
            if pred(r) and not r.get("_used"):
                r["_used"] = True
                return r
        deadline = time.monotonic() + timeout
        while True:
            try:
                r = self.reports.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"timed out waiting for {what}; pusher-js reported {self.seen[-10:]}; "
                                     f"stderr {''.join(self.stderr)[-500:]}") from None
            if r is None:
                raise AssertionError(f"pusher-js exited while waiting for {what}: {''.join(self.stderr)[-800:]}")
            self.seen.append(r)
            if pred(r):
                r["_used"] = True
                return r

    def subscribe(self, channel: str, auth: str | None = None, channel_data: str | None = None) -> dict:
        cmd = {"op": "subscribe", "channel": channel}
        if auth is not None:
            cmd["auth"] = auth
        if channel_data is not None:
            cmd["channel_data"] = channel_data
        self.command(**cmd)
        return self.wait(lambda r: r.get("channel") == channel and r["type"] in ("subscribed", "subscription_error"),
                         f"the answer to subscribing {channel}")

    def quiet(self, channel: str, seconds: float = QUIET_S) -> None:
        """No event of `channel` reaches this pusher-js client within `seconds`."""
        try:
            got = self.wait(lambda r: r["type"] == "event" and r.get("channel") == channel, "", timeout=seconds)
        except AssertionError:
            return
        raise AssertionError(f"pusher-js received {got}")

    def error(self, what: str) -> dict:
        return self.wait(lambda r: r["type"] == "pusher_error", what)

    def quit(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=WAIT_S)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


# --- WAMP v2: autobahn-python ------------------------------------------------------------------------

_opened: list = []


# join(port, realm, *, authmethods=, authid=, authextra=, on_challenge=, serializer=, origin=, path=):
# an autobahn-python session on herald's main listener; raises Aborted on ABORT. `on_challenge`
# returns the AUTHENTICATE signature (may be a coroutine). Closed by `wamp()` when the test ends.
join = functools.partial(wamp_session.join, welcome_timeout=WAIT_S * 2, track=_opened)


async def close_sessions():
    await wamp_session.close_sessions(_opened)
    _opened.clear()


def wamp(body, timeout: float = 40.0):
    """Runs `await body()` on a fresh loop; every session it opened is closed afterwards."""
    async def main():
        try:
            return await body()
        finally:
            await close_sessions()
    return run(main(), timeout)


class Inbox:
    """Events of an autobahn subscription; `next()` waits, `quiet()` asserts silence."""

    def __init__(self):
        self.items: list = []
        self.queue: asyncio.Queue = asyncio.Queue()

    def __call__(self, *args, details=None, **kwargs):
        item = (getattr(details, "topic", None), list(args), kwargs)
        self.items.append(item)
        self.queue.put_nowait(item)

    async def next(self, timeout: float = WAIT_S):
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"no WAMP event within {timeout} s; seen {self.items[-5:]}") from None

    async def quiet(self, seconds: float = QUIET_S):
        try:
            item = await asyncio.wait_for(self.queue.get(), seconds)
        except asyncio.TimeoutError:
            return
        raise AssertionError(f"a WAMP subscriber received {item}")


# --- WAMP authentication material --------------------------------------------------------------------

def wampcra_signature(key: bytes | str, challenge_text: str) -> str:
    key = key.encode() if isinstance(key, str) else key
    import hmac as _hmac
    return base64.b64encode(_hmac.new(key, challenge_text.encode(), hashlib.sha256).digest()).decode()


def cryptosign_signature(seed: bytes, challenge_hex: str) -> str:
    """hex(Ed25519 signature + challenge), as autobahn's cryptosign client answers."""
    from nacl.signing import SigningKey
    return SigningKey(seed).sign(bytes.fromhex(challenge_hex)).hex()


def cryptosign_pubkey(seed: bytes) -> str:
    from nacl.signing import SigningKey
    return SigningKey(seed).verify_key.encode().hex()


# --- WAMP v2: raw JSON socket ------------------------------------------------------------------------

class RawWamp2(RawWebSocket):
    """WAMP v2 over `wamp.2.json` on a raw socket: exactly the messages the test writes."""

    def __init__(self, port: int, headers: dict | None = None):
        super().__init__(port, "/ws", headers={"Sec-WebSocket-Protocol": "wamp.2.json", **(headers or {})})

    def send_msg(self, msg: list):
        self.text(json.dumps(msg))

    def recv_msg(self, timeout: float = WAIT_S) -> list | None:
        """The next WAMP message, or None when the server closed."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                opcode, payload = self.recv_message(max(0.0, deadline - time.monotonic()))
            except ConnectionClosed:
                return None
            if opcode == TEXT:
                return json.loads(payload)
            if opcode == 0x8:
                return None
