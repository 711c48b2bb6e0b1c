"""Faults around herald rather than inside its input: SIGKILL under load and a restart on the
same port, a file system that is read-only or full, and a descriptor table that is full.

Documented answers:
- after SIGKILL the stale pid file does not stop the next start; clients that reconnect (as
  pusher-js does) and resubscribe receive what is published after the restart; the config file
  is unchanged (herald never writes it);
- the pid file is the only file herald writes. When it is configured and cannot be written
  (read-only or full file system, parent not a directory), herald exits with code 77 and
  `herald: cannot write the pid file <path>: <reason>`, leaving nothing behind; a read-only
  config directory simply works;
- when the descriptor table is full, a new connection is answered `503 Service Unavailable`
  with `Retry-After: 1` at once and closed (herald keeps one spare descriptor for this), the
  accept loop does not spin, existing connections keep receiving, and new connections are
  served again as soon as descriptors are free.
"""

from __future__ import annotations

import hashlib
import json
import functools
import os
import selectors
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from herald_launcher import Herald
from hostile_client import APP, PusherSocket
from rawws import ConnectionClosed
from spawned import KeepAlivePublisher, app_block

EX_NOPERM = 77
CONFIG = app_block(APP)


# --- SIGKILL and restart ------------------------------------------------------------------------------

class Reconnecting:
    """A subscriber that reconnects and resubscribes whenever its connection ends, with the
    back-off pusher-js uses (about 1 s, here 0.2 s to keep the test short)."""

    def __init__(self, port: int, channel: str):
        self.port, self.channel = port, channel
        self.got: list[str] = []
        self.connects = 0
        self.cond = threading.Condition()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped.is_set():
            try:
                sock = PusherSocket(_Port(self.port))
                sock.subscribe(self.channel)
            except (OSError, AssertionError, ConnectionClosed, TimeoutError, ValueError):
                self.stopped.wait(0.2)  # reconnect back-off
                continue
            with self.cond:
                self.connects += 1
                self.cond.notify_all()
            self._read(sock)
            sock.shutdown()

    def _read(self, sock: PusherSocket):
        while not self.stopped.is_set():
            try:
                msg = sock.next_json(timeout=0.5)
            except TimeoutError:
                continue
            except (OSError, ConnectionClosed, ValueError):
                return
            if msg.get("event") == "ev":
                with self.cond:
                    self.got.append(msg["data"])
                    self.cond.notify_all()
            elif msg.get("event") == "pusher:ping":
                sock.send_json({"event": "pusher:pong", "data": {}})

    def wait(self, pred, timeout: float = 20.0) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: pred(self), timeout)

    def stop(self):
        self.stopped.set()
        self.thread.join(timeout=5)


class _Port:
    def __init__(self, port: int):
        self.port = port


def test_sigkill_under_load_then_restart_on_the_same_port(tmp_path):
    pid_file = tmp_path / "run" / "herald.pid"
    pid_file.parent.mkdir()
    config = tmp_path / "herald.toml"
    config.write_text(f'[server]\npid_file = "{pid_file}"\n\n' + CONFIG)
    digest = hashlib.sha256(config.read_bytes()).hexdigest()
    first = Herald("", config_dir=tmp_path).start()
    port = first.port
    assert pid_file.read_text().strip() == str(first.pid)

    clients = [Reconnecting(port, "load") for _ in range(20)]
    assert all(c.wait(lambda c: c.connects >= 1) for c in clients)
    load_stop = threading.Event()
    statuses: list[int | str] = []

    def load():
        pub = KeepAlivePublisher(port, APP)
        seq = 0
        while not load_stop.is_set():
            seq += 1
            try:
                statuses.append(pub.publish("load", "ev", f"load-{seq}")[0])
            except OSError as err:
                statuses.append(type(err).__name__)
                pub.close()
                load_stop.wait(0.05)  # the server is down; retry shortly

    publisher = threading.Thread(target=load, daemon=True)
    publisher.start()
    assert all(c.wait(lambda c: len(c.got) >= 20) for c in clients), "load reaches every client"

    first.kill()
    assert pid_file.exists(), "SIGKILL leaves the pid file behind"
    stale = int(pid_file.read_text())
    second = Herald("", port=port, config_dir=tmp_path).start()
    try:
        assert second.port == port
        assert int(pid_file.read_text()) == second.pid != stale
        assert all(c.wait(lambda c: c.connects >= 2) for c in clients), "every client reconnected"
        # Every reconnected client receives what is published from now on.
        marker_pub = KeepAlivePublisher(port, APP)
        status, _, body = marker_pub.publish("load", "ev", "after-restart")
        marker_pub.close()
        assert status == 200, body
        assert all(c.wait(lambda c: "after-restart" in c.got) for c in clients)
        load_stop.set()
        publisher.join(timeout=10)
        assert 200 in statuses[-5:], statuses[-5:]
        assert hashlib.sha256(config.read_bytes()).hexdigest() == digest, "the config file is untouched"
        assert not list(pid_file.parent.glob("*.tmp*")), "no temporary pid files left over"
    finally:
        load_stop.set()
        for c in clients:
            c.stop()
        second.stop()
    assert not pid_file.exists(), "a clean stop removes the pid file"


# --- read-only and full file systems ------------------------------------------------------------------

def _unshare_available() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


def needs_mount_ns(test):
    """Marks a test that needs a private mount namespace. It fails (never skips) without one:
    CI runs as root, where `unshare -m` works."""
    @functools.wraps(test)
    def run(*args, **kwargs):
        assert _unshare_available(), "this test needs root and `unshare -m` (util-linux)"
        return test(*args, **kwargs)
    return run


def _in_tmpfs(setup: str, mount_point: Path) -> list[str]:
    """A command prefix running herald in a private mount namespace with a 64 KiB tmpfs at
    `mount_point`, prepared by the shell commands `setup` (run before herald starts). After
    herald exits, the files left in the tmpfs are listed on stderr ("left: ...")."""
    # herald runs as a child so the listing can follow; SIGTERM from Herald.stop() is passed on.
    script = (f"mount -t tmpfs -o size=64k tmpfs {mount_point} && {setup} && {{ \"$@\" & child=$!; "
              f"trap 'kill -TERM $child' TERM; wait $child; rc=$?; wait $child 2>/dev/null && rc=$?; "
              f"echo left: $(ls -A {mount_point}) >&2; exit $rc; }}")
    return ["unshare", "-m", "sh", "-c", script, "herald-in-tmpfs"]


@needs_mount_ns
@pytest.mark.parametrize("setup,reason", [
    ("mount -o remount,ro {mnt}", "Read-only file system"),
    ("(dd if=/dev/zero of={mnt}/fill bs=4k 2>/dev/null; true)", "No space left on device"),
], ids=["read-only", "full"])
def test_an_unwritable_pid_file_stops_herald_with_a_clear_message(tmp_path, setup, reason):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    config = f'[server]\npid_file = "{mnt}/herald.pid"\n\n' + CONFIG
    server = Herald(config, prefix=_in_tmpfs(setup.format(mnt=mnt), mnt)).start(expect_exit=True)
    assert server.proc.returncode == EX_NOPERM, server.stderr_tail()
    assert f"herald: cannot write the pid file {mnt}/herald.pid: {reason}" in server.stderr_tail()
    left = next(l for l in server.stderr_lines if l.startswith("left:")).split()[1:]
    assert [f for f in left if f != "fill"] == [], f"herald left {left} behind"


def test_a_pid_file_whose_parent_is_a_file_stops_herald(tmp_path):
    (tmp_path / "not-a-dir").write_text("")
    config = f'[server]\npid_file = "{tmp_path}/not-a-dir/herald.pid"\n\n' + CONFIG
    server = Herald(config).start(expect_exit=True)
    assert server.proc.returncode == EX_NOPERM
    assert "cannot write the pid file" in server.stderr_tail() and "Not a directory" in server.stderr_tail()


@needs_mount_ns
def test_a_read_only_config_directory_just_works(tmp_path):
    mnt = tmp_path / "etc"
    mnt.mkdir()
    staged = tmp_path / "staged.toml"
    staged.write_text(CONFIG)
    setup = f"cp {staged} {mnt}/herald.toml && mount -o remount,ro {mnt}"
    server = Herald("", config_dir=tmp_path, prefix=_in_tmpfs(setup, mnt))
    server.config = mnt / "herald.toml"
    server.start()
    try:
        sub = PusherSocket(server)
        assert sub.subscribe("ro")["event"] == "pusher_internal:subscription_succeeded"
        pub = KeepAlivePublisher(server.port, APP)
        assert pub.publish("ro", "ev", "x")[0] == 200
        pub.close()
        assert sub.event("ev")["data"] == "x"
        sub.shutdown()
    finally:
        server.stop()


# --- descriptor exhaustion ----------------------------------------------------------------------------

FD_LIMIT = 64


def _session_or_refusal(port: int) -> PusherSocket | str:
    """A Pusher session, or why the upgrade failed ("... answered 503, not 101")."""
    try:
        return PusherSocket(_Port(port))
    except (AssertionError, ConnectionClosed) as err:
        return str(err)


def _raw_upgrade(port: int) -> bytes:
    """Everything herald answers to an upgrade, up to its close (only used while it refuses)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /app/" + APP["key"].encode() + b"?protocol=7 HTTP/1.1\r\nHost: x\r\n"
                  b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        out = b""
        while True:
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out


def test_a_full_descriptor_table_refuses_new_connections_cleanly(tmp_path):
    server = Herald(CONFIG, prefix=["prlimit", f"--nofile={FD_LIMIT}:{FD_LIMIT}"]).start()
    try:
        publisher = KeepAlivePublisher(server.port, APP)
        assert publisher.publish("fd", "ev", "warm-up")[0] == 200  # keep-alive: holds its descriptor
        subs: list[PusherSocket] = []
        refusal = None
        for _ in range(FD_LIMIT):
            started = time.monotonic()
            got = _session_or_refusal(server.port)
            if isinstance(got, str):
                refusal_s = time.monotonic() - started
                assert "answered 503" in got, got
                refusal = _raw_upgrade(server.port)
                break
            assert got.subscribe("fd")["event"] == "pusher_internal:subscription_succeeded"
            subs.append(got)
        assert refusal is not None, f"{len(subs)} connections and the table is still not full"
        assert refusal.startswith(b"HTTP/1.1 503"), refusal[:80]
        assert b"retry-after: 1" in refusal.lower()
        assert refusal_s < 2.0, f"the refused client waited {refusal_s:.2f} s"

        # While full: more clients are refused at once, and the accept loop does not spin.
        ticks = server.cpu_ticks()
        t0 = time.monotonic()
        refusals = []
        for _ in range(20):
            t = time.monotonic()
            assert "answered 503" in _session_or_refusal(server.port)
            refusals.append(time.monotonic() - t)
        assert max(refusals) < 1.0, f"a refused client waited {max(refusals):.2f} s"
        time.sleep(1.0)  # measuring idle CPU over a fixed window
        cpu = (server.cpu_ticks() - ticks) / os.sysconf("SC_CLK_TCK") / (time.monotonic() - t0)
        assert cpu < 0.5, f"herald used {cpu:.0%} of a core while its table was full"

        # Existing connections are unaffected.
        assert publisher.publish("fd", "ev", "while-full")[0] == 200
        for s in subs:
            assert s.event("ev")["data"] == "while-full"

        # Free some descriptors: new connections are served again.
        for s in subs[:10]:
            s.shutdown()
        deadline = time.monotonic() + 10
        while True:
            got = _session_or_refusal(server.port)
            if not isinstance(got, str):
                break
            assert time.monotonic() < deadline, "no connection was served after descriptors were freed"
            time.sleep(0.05)  # the server notices the closed sockets asynchronously
        assert got.subscribe("fd")["event"] == "pusher_internal:subscription_succeeded"
        assert publisher.publish("fd", "ev", "after")[0] == 200
        assert got.event("ev")["data"] == "after"
        print(f"\nfd exhaustion: limit {FD_LIMIT}, {len(subs)} sessions open when full, "
              f"first refused in {refusal_s * 1000:.1f} ms, next 20 in at most {max(refusals) * 1000:.1f} ms, "
              f"CPU while full {cpu:.1%}")
        got.shutdown()
        for s in subs[10:]:
            s.shutdown()
        publisher.close()
    finally:
        server.stop()


def test_a_full_descriptor_table_on_the_oro_listener_refuses_cleanly():
    """Oro's listener has its own accept loop (the 101 and WELCOME go out in one write); it turns
    clients away the same way."""
    env = {"ORO_SECRET": "fd-oro-7a3e9c1f5b0d2468", "HERALD__SERVER__HOST": "127.0.0.1", "HERALD__SERVER__PORT": "0"}
    server = Herald("", prefix=["prlimit", f"--nofile={FD_LIMIT}:{FD_LIMIT}"], env=env,
                     args=["--profile", "oro"]).start(labels=("oro, app oro",))
    port = server.labelled["oro, app oro"]
    socks: list[socket.socket] = []
    try:
        for _ in range(FD_LIMIT + 16):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        # Accepted connections wait silently for their handshake; turned-away ones get the 503.
        sel = selectors.DefaultSelector()
        for s in socks:
            sel.register(s, selectors.EVENT_READ)
        answered: set[socket.socket] = set()
        ticks, t0 = server.cpu_ticks(), time.monotonic()
        while (left := t0 + 2.0 - time.monotonic()) > 0:
            for key, _ in sel.select(timeout=left):
                answered.add(key.fileobj)
                sel.unregister(key.fileobj)
        sel.close()
        cpu = (server.cpu_ticks() - ticks) / os.sysconf("SC_CLK_TCK") / (time.monotonic() - t0)
        assert 0 < len(answered) < len(socks), f"{len(answered)} of {len(socks)} answered"
        for s in answered:
            assert s.recv(4096).startswith(b"HTTP/1.1 503 Service Unavailable")
        assert cpu < 0.5, f"herald used {cpu:.0%} of a core while its table was full"
        held = len(socks) - len(answered)
    finally:
        for s in socks:
            s.close()
    # With descriptors free again, a client is served (a plain GET is not turned away with 503).
    deadline = time.monotonic() + 10
    while True:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            head = s.recv(4096)
        if head and not head.startswith(b"HTTP/1.1 503"):
            break
        assert time.monotonic() < deadline, f"still refused after descriptors were freed: {head[:40]!r}"
        time.sleep(0.05)  # the server notices the closed sockets asynchronously
    server.stop()
    print(f"\noro fd exhaustion: {held} connections held, {len(answered)} turned away with 503, CPU {cpu:.1%}")
