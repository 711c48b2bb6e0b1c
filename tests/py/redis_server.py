"""A real redis-server child for the scale-out tests, on a unix socket (no TCP port).
redis-server comes from scripts/install-test-deps; without it these tests fail rather than skip.
"""

from __future__ import annotations

import queue
import subprocess
import tempfile
import threading
from pathlib import Path

from conftest import WAIT_S


class Redis:
    """A redis-server child on `<tmp>/redis.sock`; restartable on the same socket."""

    def __init__(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="herald-py-redis-")
        self.socket = Path(self.tmp.name) / "redis.sock"
        self.proc: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis+unix://{self.socket}"

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", "0", "--unixsocket", str(self.socket), "--save", "",
             "--appendonly", "no", "--dir", self.tmp.name],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        ready: queue.Queue[bool] = queue.Queue()

        def pump(stream):
            for line in stream:
                if "ready to accept connections" in line.lower():
                    ready.put(True)
            ready.put(False)

        threading.Thread(target=pump, args=(self.proc.stdout,), daemon=True).start()
        if not ready.get(timeout=WAIT_S):
            raise RuntimeError("redis-server exited before it was ready")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self):
        self.kill()
        self.tmp.cleanup()
