"""Around the herald processes a fault or flood test starts itself (tests/support/herald_launcher.py
gives them their own config, a chosen port, a command prefix such as prlimit or unshare, SIGKILL,
and their RSS and open descriptors read from /proc): config blocks, an RSS sampler and a signed
publisher over one keep-alive connection.
"""

from __future__ import annotations

import http.client
import json
import threading

from herald_launcher import Herald
from hostile_client import encode_query
from pusher_sign import api_params

WAIT_S = 10.0


def app_block(app: dict, **extra) -> str:
    lines = ["[[apps]]", f'id = "{app["id"]}"', f'key = "{app["key"]}"', f'secret = "{app["secret"]}"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


class RssPeak:
    """Samples a process's RSS every 20 ms on a thread until stopped; keeps the peak."""

    def __init__(self, server: Herald):
        self.server = server
        self.peak = server.rss_kib()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done.wait(0.02):
            try:
                self.peak = max(self.peak, self.server.rss_kib())
            except (OSError, KeyError):
                return

    def stop(self) -> int:
        self.done.set()
        self.thread.join(timeout=WAIT_S)
        return self.peak


def signed_path(app: dict, method: str, path: str, body: bytes) -> str:
    pairs = api_params(method, path, body=body, key=app["key"], secret=app["secret"])
    return f"{path}?{encode_query(pairs)}"


class KeepAlivePublisher:
    """Signed publishes over one keep-alive HTTP connection (reconnects if the server closes it)."""

    def __init__(self, port: int, app: dict):
        self.port, self.app = port, app
        self.conn: http.client.HTTPConnection | None = None

    def post(self, path_tail: str, payload: dict) -> tuple[int, dict, str]:
        body = json.dumps(payload).encode()
        path = f"/apps/{self.app['id']}/{path_tail}"
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=WAIT_S)
        self.conn.request("POST", signed_path(self.app, "POST", path, body), body=body,
                          headers={"Content-Type": "application/json"})
        res = self.conn.getresponse()
        text = res.read().decode("utf-8", "replace")
        if res.getheader("connection", "").lower() == "close":
            self.close()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, text

    def publish(self, channel: str, name: str, data: str) -> tuple[int, dict, str]:
        return self.post("events", {"name": name, "channel": channel, "data": data})

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None
