"""The one way the Python suites start herald: a child process of the binary under test, on
127.0.0.1 and port 0 unless told otherwise, from a config given as TOML text or as nested dicts.

Every suite puts this directory on `sys.path` (its conftest.py does, explicitly) and builds on
`Herald`; what is specific to a suite (its apps, its clients) stays in the suite.

Nothing here sleeps to synchronise: `start()` reads herald's stdout until the listening lines it
waits for, `wait_line()`/`wait_stderr()` read the output with a deadline.
"""

from __future__ import annotations

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

ROOT = Path(__file__).resolve().parents[2]
# Longest wait for herald to print its listening lines (or to exit, when it must not start).
STARTUP_S = 30.0
# Longest wait for a stop (SIGTERM, then SIGKILL) or for one line of output.
STOP_S = 20.0
WAIT_S = 5.0

# `herald listening on 127.0.0.1:PORT` and, for a listener with a label, ` (LABEL)`.
LISTENING = re.compile(r"herald listening on 127\.0\.0\.1:(\d+)(?: \((.*)\))?")
# Variables of the test environment that would configure herald behind the suite's back.
DROPPED_ENV = ("PUSHER_", "HERALD_", "REVERB_", "SOKETI_", "LARAVEL_WEBSOCKETS_")
# Lines of stderr kept in memory: a flood of log lines must not grow the test process unbounded.
MAX_STDERR_LINES = 20_000


def herald_bin() -> Path:
    """The binary under test: $HERALD_BIN, else $CARGO_TARGET_DIR/debug/herald, else target/."""
    if os.environ.get("HERALD_BIN"):
        return Path(os.environ["HERALD_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    if not target.is_absolute():
        target = ROOT / target
    return target / "debug" / "herald"


# --- TOML ----------------------------------------------------------------------------------------

class Inline(dict):
    """A dict written as a TOML inline table (`{ a = 1 }`) instead of a `[table]`."""
    inline = True


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    # Arrays and inline tables on one line: an inline table may not span lines.
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _is_table(v) -> bool:
    return isinstance(v, dict) and not getattr(v, "inline", False)


def _is_table_array(v) -> bool:
    return isinstance(v, list) and bool(v) and all(_is_table(x) for x in v)


def _table(path: list[str], table: dict, out: list[str], array: bool = False):
    """Scalars (and inline values) first, then sub-tables and arrays of tables."""
    scalars = {k: v for k, v in table.items() if not _is_table(v) and not _is_table_array(v)}
    if path:
        name = ".".join(_key(p) for p in path)
        out.append(f"[[{name}]]" if array else f"[{name}]")
    out += [f"{_key(k)} = {_value(v)}" for k, v in scalars.items()]
    out.append("")
    for k, v in table.items():
        if _is_table(v):
            _table(path + [k], v, out)
        elif _is_table_array(v):
            for row in v:
                _table(path + [k], row, out, array=True)


def toml(doc: dict) -> str:
    """`{"server": {...}, "apps": [{...}], "listeners": [...], "espocrm": {...}, "oro": {...}}` as
    herald's TOML config text: dicts are `[tables]` and lists of dicts `[[arrays of tables]]`,
    at any depth; an `Inline` dict is written as an inline table."""
    out: list[str] = []
    _table([], doc, out)
    return "\n".join(out).strip() + "\n"


# --- the process ---------------------------------------------------------------------------------

def _pump(stream, sink):
    """Reads a pipe to its end: each line to `sink`, then None."""
    for line in stream:
        sink(line.rstrip("\n"))
    sink(None)


class Herald:
    """One herald process.

    `config`: a dict (written with `toml()`), TOML text, or None for no `--config` at all.
    `port`: the main listener's port (0: any free one). `prefix`: a command to run herald under
    (prlimit, unshare...). `config_dir`: where herald.toml goes (kept if it already exists there).
    `env`: added to the test's environment, from which `PUSHER_*`, `HERALD_*` and `drop_env`
    prefixes are removed. `args`: more arguments after `serve --host --port --config`.

    `start()` spawns and waits for the listening lines; `spawn()` only spawns (for a herald
    that must exit: then `wait_exit()`).
    """

    def __init__(self, config: dict | str | None = "", *, port: int = 0, prefix: list[str] | None = None,
                 config_dir: Path | None = None, env: dict | None = None, args: list[str] | None = None,
                 drop_env: tuple[str, ...] = ()):
        self.tmp = tempfile.TemporaryDirectory(prefix="herald-test-")
        self.dir = Path(config_dir or self.tmp.name)
        self.config_text = toml(config) if isinstance(config, dict) else config
        self.config: Path | None = None
        if self.config_text is not None:
            self.config = self.dir / "herald.toml"
            if not self.config.exists():
                self.config.write_text(self.config_text)
        self.port = port
        self.prefix = prefix or []
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(DROPPED_ENV + tuple(drop_env))}
        self.env.update(env or {})
        self.args = args or []
        # Every listening line in order: (port, label or None).
        self.listening: list[tuple[int, str | None]] = []
        # Ports of the labelled listeners ("oro, app oro" -> port).
        self.labelled: dict[str, int] = {}
        self.proc: subprocess.Popen | None = None
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.err_lines: queue.Queue[str | None] = queue.Queue()
        self.pumps: list[threading.Thread] = []

    def command(self) -> list[str]:
        binary = herald_bin()
        if not binary.exists():
            raise RuntimeError(f"herald binary not found at {binary}: "
                               "run `cargo build -p herald-server` or set HERALD_BIN")
        cmd = [*self.prefix, str(binary), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        return cmd + self.args

    def spawn(self) -> "Herald":
        """Starts the process and the readers of its output; does not wait for anything."""
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env,
                                     text=True, errors="replace")
        self.stdout_lines, self.stderr_lines = [], []
        self.lines, self.err_lines = queue.Queue(), queue.Queue()
        self.pumps = [
            threading.Thread(target=_pump, args=(self.proc.stdout, self._stdout), daemon=True),
            threading.Thread(target=_pump, args=(self.proc.stderr, self._stderr), daemon=True),
        ]
        for pump in self.pumps:
            pump.start()
        return self

    def start(self, *, labels: tuple[str, ...] = (), listeners: int = 1, expect_exit: bool = False) -> "Herald":
        """Spawns herald and returns once it printed the main listening line, one for each of
        `labels`, and `listeners` lines in all. With `expect_exit`, returns once it exited
        before that (and fails if it started)."""
        self.spawn()
        self.listening, self.labelled = [], {}
        deadline = time.monotonic() + STARTUP_S
        main_seen = False
        while not (main_seen and len(self.listening) >= listeners and all(l in self.labelled for l in labels)):
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise AssertionError(f"herald did not start within {STARTUP_S} s:\n{self.report()}") from None
            if line is None:
                self.wait_exit(STOP_S)
                if expect_exit:
                    return self
                raise AssertionError(f"herald exited with {self.proc.returncode}:\n{self.report()}")
            m = LISTENING.fullmatch(line.strip())
            if not m:
                continue
            port, label = int(m.group(1)), m.group(2)
            self.listening.append((port, label))
            if label:
                self.labelled[label] = port
            elif not main_seen:
                self.port, main_seen = port, True
        if expect_exit:
            self.stop()
            raise AssertionError("herald started, but it was expected to exit")
        return self

    def _stdout(self, line: str | None):
        if line is not None:
            self.stdout_lines.append(line)
        self.lines.put(line)

    def _stderr(self, line: str | None):
        if line is None:
            self.err_lines.put(None)
        elif len(self.stderr_lines) < MAX_STDERR_LINES:
            self.stderr_lines.append(line)
            self.err_lines.put(line)

    def report(self, n: int = 40) -> str:
        """The config, stdout and the tail of stderr, for failure messages."""
        return (f"--- config ---\n{self.config_text}\n--- stdout ---\n" + "\n".join(self.stdout_lines[-n:])
                + "\n--- stderr ---\n" + self.stderr_tail(n))

    def stderr(self) -> str:
        return "\n".join(self.stderr_lines)

    def stderr_tail(self, n: int = 40) -> str:
        return "\n".join(self.stderr_lines[-n:])

    # --- output --------------------------------------------------------------------------------

    def next_line(self, timeout: float, what: str) -> str:
        """The next stdout line not read yet."""
        try:
            line = self.lines.get(timeout=max(0.0, timeout))
        except queue.Empty:
            raise AssertionError(f"no {what} on herald's stdout within the deadline; stdout tail: "
                                 f"{self.stdout_lines[-15:]}\nstderr tail: {self.stderr_lines[-15:]}") from None
        if line is None:
            self.lines.put(None)
            raise AssertionError(f"herald exited ({self.proc.poll()}) while waiting for {what}; "
                                 f"stderr tail: {self.stderr_lines[-15:]}")
        return line

    def wait_line(self, pattern: str, timeout: float = WAIT_S) -> str:
        """The next stdout line matching `pattern` (a regex, searched), skipping others."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while True:
            line = self.next_line(deadline - time.monotonic(), f"line /{pattern}/")
            if regex.search(line):
                return line

    def wait_stderr(self, text: str, timeout: float = WAIT_S) -> str:
        """The next stderr (log) line containing `text`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.err_lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no log line with {text!r}; stderr tail: {self.stderr_lines[-15:]}") from None
            if line is None:
                self.err_lines.put(None)
                raise AssertionError(f"herald exited while waiting for {text!r}")
            if text in line:
                return line

    def drain(self):
        """Forgets stdout and stderr lines printed so far (by earlier tests)."""
        for lines in (self.lines, self.err_lines):
            while True:
                try:
                    line = lines.get_nowait()
                except queue.Empty:
                    break
                if line is None:
                    lines.put(None)
                    break

    # --- the process ---------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def assert_alive(self):
        if not self.alive():
            raise AssertionError(f"herald exited with code {self.proc.returncode}\n--- herald stderr (tail) ---\n"
                                 + self.stderr_tail())

    def rss_kib(self) -> int:
        return _status_field(self.pid, "VmRSS")

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def cpu_ticks(self) -> int:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    def wait_exit(self, timeout: float = STARTUP_S) -> int:
        """Waits for the process to exit and for its output to be read to the end; its code."""
        code = self.proc.wait(timeout=timeout)
        for pump in self.pumps:
            pump.join(timeout=WAIT_S)
        return code

    def kill(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=STOP_S)

    def stop(self):
        """SIGTERM (SIGKILL if it does not exit in time), then removes the temporary directory."""
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_S)
            except subprocess.TimeoutExpired:
                self.kill()
        self.tmp.cleanup()


def _status_field(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise KeyError(name)
