"""A herald child process under the control of a fault or flood test: its own config, a chosen
port, a command prefix (prlimit, unshare), SIGKILL, and its RSS and open descriptors read from
/proc. The module-wide herald of conftest.py cannot do these, so the tests of test_faults.py and
test_floods_limits.py start their own.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import queue
import re
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from hostile_client import encode_query, hmac_hex
from rawws import STARTUP_S, herald_bin

WAIT_S = 10.0


def app_block(app: dict, **extra) -> str:
    lines = ["[[apps]]", f'id = "{app["id"]}"', f'key = "{app["key"]}"', f'secret = "{app["secret"]}"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


class Spawned:
    """One herald process. `start()` waits for its listening line (or its exit)."""

    def __init__(self, config_toml: str, *, port: int = 0, prefix: list[str] | None = None,
                 config_dir: Path | None = None, env: dict | None = None, args: list[str] | None = None):
        self.tmp = tempfile.TemporaryDirectory(prefix="herald-faults-")
        self.dir = Path(config_dir or self.tmp.name)
        self.config = self.dir / "herald.toml"
        if not self.config.exists():
            self.config.write_text(config_toml)
        self.port = port
        self.prefix = prefix or []
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("PUSHER_", "HERALD_"))}
        self.env.update(env or {})
        self.args = args or []
        # Ports of the labelled listeners ("oro, app oro" -> port), filled by start(labels=...).
        self.labelled: dict[str, int] = {}
        self.proc: subprocess.Popen | None = None
        self.stderr_lines: list[str] = []

    def start(self, *, expect_exit: bool = False, labels: tuple[str, ...] = ()) -> "Spawned":
        """`labels`: also wait for the listening lines of these labelled listeners."""
        cmd = [*self.prefix, str(herald_bin()), "serve", "--host", "127.0.0.1", "--port", str(self.port),
               "--config", str(self.config), *self.args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env,
                                     text=True, errors="replace")
        self.stderr_lines = []
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_pump, args=(self.proc.stdout, lines.put, True), daemon=True).start()
        threading.Thread(target=_pump, args=(self.proc.stderr, self._keep, False), daemon=True).start()
        deadline = time.monotonic() + STARTUP_S
        main_seen = False
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise AssertionError(f"herald did not start within {STARTUP_S} s:\n{self.stderr_tail()}")
            if line is None:
                self.proc.wait(timeout=WAIT_S)
                if expect_exit:
                    return self
                raise AssertionError(f"herald exited with {self.proc.returncode}:\n{self.stderr_tail()}")
            m = re.fullmatch(r"herald listening on 127\.0\.0\.1:(\d+)(?: \((.+)\))?", line.strip())
            if m and m.group(2):
                self.labelled[m.group(2)] = int(m.group(1))
            elif m:
                self.port, main_seen = int(m.group(1)), True
            if main_seen and all(label in self.labelled for label in labels):
                if expect_exit:
                    self.stop()
                    raise AssertionError("herald started, but it was expected to exit")
                return self

    def _keep(self, line: str):
        if len(self.stderr_lines) < 20_000:
            self.stderr_lines.append(line)

    def stderr_tail(self, n: int = 40) -> str:
        return "\n".join(self.stderr_lines[-n:])

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_kib(self) -> int:
        return _status_field(self.pid, "VmRSS")

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def cpu_ticks(self) -> int:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    def kill(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=WAIT_S)

    def stop(self):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=WAIT_S * 2)
            except subprocess.TimeoutExpired:
                self.kill()
        self.tmp.cleanup()


def _pump(stream, sink, signal_eof: bool):
    for line in stream:
        sink(line.rstrip("\n"))
    if signal_eof:
        sink(None)


def _status_field(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise KeyError(name)


class RssPeak:
    """Samples a process's RSS every 20 ms on a thread until stopped; keeps the peak."""

    def __init__(self, server: Spawned):
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
    pairs = [("auth_key", app["key"]), ("auth_timestamp", str(int(time.time()))), ("auth_version", "1.0")]
    if body:
        pairs.append(("body_md5", hashlib.md5(body).hexdigest()))
    pairs.sort()
    to_sign = "&".join(f"{k}={v}" for k, v in pairs)
    pairs.append(("auth_signature", hmac_hex(app["secret"], f"{method}\n{path}\n{to_sign}")))
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
