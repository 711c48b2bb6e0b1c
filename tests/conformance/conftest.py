"""Harness of the RFC 6455 conformance suite: one herald with `[server] test_echo_endpoint = true`,
and a fresh raw WebSocket on `/echo` for every test.

`/echo` echoes text and binary messages with their opcode, answers pings, and closes as the RFC
says, through the same codec (herald_protocol::ws) and socket pump (herald-server ws/socket.rs)
that Pusher and WAMP sessions use. The cases are grouped the way the Autobahn|Testsuite groups
them (1 framing, 2 pings, 3 reserved bits, 4 opcodes, 5 fragmentation, 6 UTF-8, 7 close,
9 limits), written from the RFC text.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The launcher every suite shares (tests/support).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

from herald_launcher import Herald  # noqa: E402
from case_timeout import add_case_timeouts  # noqa: E402
from rawws import RawWebSocket  # noqa: E402

CONFIG = """\
[server]
test_echo_endpoint = true

[[apps]]
id = "conf-id"
key = "conf-key"
secret = "conf-0e4c8a2f6b1d3579"
"""

# Seconds one test may take in all; a hung case fails instead of stalling the suite.
CASE_TIMEOUT_S = 30


def pytest_collection_modifyitems(config, items):
    add_case_timeouts(config, items, CASE_TIMEOUT_S)


@pytest.fixture(scope="session")
def herald():
    server = Herald(CONFIG).start()
    yield server
    server.stop()


@pytest.fixture
def ws(herald):
    """A fresh WebSocket on /echo; after the test the server must still be running."""
    sock = RawWebSocket(herald.port, "/echo")
    yield sock
    sock.shutdown()
    assert herald.alive(), "herald died during this case:\n" + herald.stderr_tail()


@pytest.fixture
def connect(herald):
    """Factory for extra sockets (custom paths, pipelined bytes); all closed after the test."""
    opened = []

    def open_socket(path: str = "/echo", **kw) -> RawWebSocket:
        sock = RawWebSocket(herald.port, path, **kw)
        opened.append(sock)
        return sock

    yield open_socket
    for sock in opened:
        sock.shutdown()
