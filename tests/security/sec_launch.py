"""How this suite starts herald: a config written as nested Python dicts, rendered to TOML and
handed to the launcher every suite shares (tests/support/herald_launcher.py), which starts herald
on 127.0.0.1:0, waits for its listening lines, labelled listeners included, and can expect an
early exit.

The EspoCRM tests use the EspoCRM fixture's launcher (tests/fixtures/espo/espo_harness.py, built
on the same one), which knows its ZeroMQ endpoint and debug lines.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
ROOT = TESTS.parent
for extra in (TESTS / "support", TESTS / "hostile", TESTS / "conformance", TESTS / "fixtures" / "espo"):
    if str(extra) not in sys.path:
        sys.path.append(str(extra))

from herald_launcher import Herald  # noqa: E402

WAIT_S = 5.0


def start(doc: dict | None, *, labels: tuple[str, ...] = (), env: dict | None = None,
          args: list[str] | None = None) -> Herald:
    """A running herald for `doc` (None: an empty config file), once every listening line asked
    for in `labels` (e.g. "metrics", "oro, app oro") was printed; stop it with `.stop()`."""
    return Herald(doc if doc is not None else "", env=env, args=args).start(labels=labels)


def exit_of(doc: dict | None, *, env: dict | None = None, args: list[str] | None = None) -> Herald:
    """A herald that must exit before printing a listening line (start() fails if it binds);
    `.proc.returncode` is its exit status, `.stderr_tail()` its message."""
    server = Herald(doc if doc is not None else "", env=env, args=args)
    server.start(expect_exit=True)
    server.tmp.cleanup()
    return server
