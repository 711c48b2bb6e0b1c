"""The one way this suite starts herald: a config written as nested Python dicts, rendered to
TOML, handed to the hostile suite's process launcher (tests/hostile/spawned.py, which already
starts herald on 127.0.0.1:0 from a raw TOML text, waits for its listening lines, labelled
listeners included, and can expect an early exit).

The EspoCRM tests use the EspoCRM fixture's own launcher (tests/fixtures/espo/espo_harness.py),
which knows its ZeroMQ endpoint and debug lines.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
ROOT = TESTS.parent
for extra in (TESTS / "hostile", TESTS / "conformance", TESTS / "fixtures" / "espo"):
    if str(extra) not in sys.path:
        sys.path.append(str(extra))

from rawws import STARTUP_S, herald_bin  # noqa: E402
from spawned import Spawned  # noqa: E402

WAIT_S = 5.0

__all__ = ["STARTUP_S", "WAIT_S", "herald_bin", "toml", "start", "exit_of", "Spawned"]


# --- TOML ----------------------------------------------------------------------------------------

def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)


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


def _is_table(v) -> bool:
    return isinstance(v, dict) and not getattr(v, "inline", False)


def _is_table_array(v) -> bool:
    return isinstance(v, list) and bool(v) and all(_is_table(x) for x in v)


class Inline(dict):
    """A dict written as a TOML inline table (`{ a = 1 }`) instead of a `[table]`."""
    inline = True


def toml(doc: dict) -> str:
    """`{"server": {...}, "apps": [{...}], "listeners": [...]}` as herald's TOML config text."""
    out: list[str] = []
    _table([], doc, out)
    return "\n".join(out).strip() + "\n"


# --- processes -----------------------------------------------------------------------------------

def start(doc: dict | None, *, labels: tuple[str, ...] = (), env: dict | None = None,
          args: list[str] | None = None) -> Spawned:
    """A running herald for `doc` (None: an empty config file), once every listening line asked
    for in `labels` (e.g. "metrics", "oro, app oro") was printed; stop it with `.stop()`."""
    return Spawned(toml(doc) if doc is not None else "", env=env, args=args).start(labels=labels)


def exit_of(doc: dict | None, *, env: dict | None = None, args: list[str] | None = None) -> Spawned:
    """A herald that must exit before printing a listening line (start() fails if it binds);
    `.proc.returncode` is its exit status, `.stderr_tail()` its message."""
    server = Spawned(toml(doc) if doc is not None else "", env=env, args=args)
    server.start(expect_exit=True)
    server.tmp.cleanup()
    return server
