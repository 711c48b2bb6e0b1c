"""Weak or partial credentials stop herald with exit code 64 before it binds a port (no
listening line is ever printed), with a message naming what is wrong. The controls show the same
configs start once the credential is sound."""

from __future__ import annotations

import time

import pytest

from conftest import APP_A
from sec_launch import exit_of, start


def _wait_stderr(server, *fragments: str, timeout: float = 5.0) -> str:
    """herald's stderr once it contains every fragment (its pump thread may lag the exit)."""
    deadline = time.monotonic() + timeout
    while True:
        text = "\n".join(server.stderr_lines)
        if all(f in text for f in fragments) or time.monotonic() > deadline:
            return text
        time.sleep(0.02)


@pytest.mark.parametrize("secret", ["short-secret", "", "CHANGE-ME", "CHANGE-ME-CHANGE-ME-CHANGE-ME", "change-me-please-now"])
def test_weak_app_secret_exits_64_before_binding(secret):
    server = exit_of({"apps": [{**APP_A, "secret": secret}]})
    assert server.proc.returncode == 64, server.stderr_tail()
    text = _wait_stderr(server, "secret")
    assert "secret" in text, text


@pytest.mark.parametrize("present, missing", [
    ({"PUSHER_APP_ID": "1"}, "PUSHER_APP_KEY"),
    ({"PUSHER_APP_ID": "1", "PUSHER_APP_KEY": "k"}, "PUSHER_APP_SECRET"),
    ({"PUSHER_APP_KEY": "k", "PUSHER_APP_SECRET": "s" * 32}, "PUSHER_APP_ID"),
    ({"PUSHER_APP_SECRET": "s" * 32}, "PUSHER_APP_"),
])
def test_partial_pusher_environment_exits_64_naming_the_missing_variable(present, missing):
    server = exit_of(None, env=present)
    assert server.proc.returncode == 64, server.stderr_tail()
    text = _wait_stderr(server, missing)
    assert missing in text, text


def test_weak_secret_from_the_environment_exits_64():
    server = exit_of(None, env={"PUSHER_APP_ID": "1", "PUSHER_APP_KEY": "k", "PUSHER_APP_SECRET": "secret"})
    assert server.proc.returncode == 64, server.stderr_tail()


@pytest.mark.parametrize("principal", [
    {"ticket": {"principals": {"alice": {"role": "anonymous"}}}},
    {"wampcra": {"principals": {"carol": {"role": "anonymous"}}}},
    {"cryptosign": {"principals": {"dave": {"role": "anonymous", "authorized_keys": ["not-hex"]}}}},
])
def test_partial_wamp_principal_exits_64(principal):
    server = exit_of({"apps": [{**APP_A, "wamp": True, "wamp_auth": principal}]})
    assert server.proc.returncode == 64, server.stderr_tail()
    assert "wamp_auth" in _wait_stderr(server, "wamp_auth")


def test_sound_credentials_start():
    """Controls: the same shapes with sound values bind and serve."""
    for kwargs in ({"doc": {"apps": [APP_A]}},
                   {"doc": None, "env": {"PUSHER_APP_ID": "1", "PUSHER_APP_KEY": "k", "PUSHER_APP_SECRET": "s" * 32}},
                   {"doc": None}):
        server = start(kwargs["doc"], env=kwargs.get("env"))
        try:
            assert server.alive()
        finally:
            server.stop()
