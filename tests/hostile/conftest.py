"""Harness of the hostile-input suite: one herald per test module, a well-behaved Pusher client
watching it the whole time, and clients that send what no client should.

Every module gets:
- `herald`: a fresh herald (module scope), configured by hostile_client.CONFIG;
- a *watcher* (autouse, module scope): a raw-socket Pusher client subscribed to a public
  channel, and a publisher thread posting one signed event to that channel every 50 ms through
  the HTTP API. When the module ends, every event the API accepted must have reached the
  watcher exactly once, in order, each within LATENCY_BOUND_S, and the watcher must never
  have been disconnected: whatever the hostile cases did, a well-behaved client noticed nothing;
- after every single case, the herald process must still be running.

The clients and signing helpers the cases use live in hostile_client.py.
"""

from __future__ import annotations

import pytest

from hostile_client import CONFIG, Herald, PusherSocket, Watcher
from case_timeout import add_case_timeouts  # noqa: E402

CASE_TIMEOUT_S = 60


def pytest_collection_modifyitems(config, items):
    add_case_timeouts(config, items, CASE_TIMEOUT_S)


@pytest.fixture(scope="module")
def herald():
    server = Herald(CONFIG).start()
    yield server
    server.stop()


WATCH_REPORT: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def watcher(herald, request):
    w = Watcher(herald, f"watch-{request.module.__name__.rsplit('.', 1)[-1]}")
    yield w
    count, worst = w.verify()
    WATCH_REPORT.append(f"{request.module.__name__}: watcher received {count}/{count} events, "
                        f"worst latency {worst * 1000:.0f} ms, never disconnected")
    assert herald.alive(), "herald died:\n" + herald.stderr_tail()


@pytest.fixture(autouse=True)
def server_stays_up(herald):
    yield
    assert herald.alive(), "herald died during this case:\n" + herald.stderr_tail()


@pytest.fixture
def pusher_socket(herald):
    """Factory of Pusher sockets on the main app; all closed after the test."""
    opened: list[PusherSocket] = []

    def open_socket(**kw) -> PusherSocket:
        sock = PusherSocket(herald, **kw)
        opened.append(sock)
        return sock

    yield open_socket
    for sock in opened:
        sock.shutdown()


def pytest_terminal_summary(terminalreporter):
    if WATCH_REPORT:
        terminalreporter.section("well-behaved watcher")
        for line in WATCH_REPORT:
            terminalreporter.write_line(line)
