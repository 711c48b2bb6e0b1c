"""The attacker suite: configs of the herald instances under attack, and their fixtures.

`main` (one herald for the whole run) serves every app the cross-protocol attacks need:
- A: client events on, WAMP v2 realm with the default anonymous role, a WAMP v1 listener (anonymous
  role), and principals for every WAMP authentication method, all in the custom role `backend`;
- B: a second app with WAMP on and client events off (the default);
- C: WAMP off (the default): no realm;
- T: WAMP on with `wamp_anonymous_role = "trusted"` (the trusted-network switch);
- N: WAMP on with anonymous sessions refused (`wamp_anonymous_role = ""`).
The other instances (origins, limits, metrics, profiles, challenge timeout, start-up failures)
are started by the tests that need them, through sec_launch.
"""

from __future__ import annotations

import hashlib

import pytest

from sec_launch import start  # first: it puts tests/support on sys.path

from case_timeout import add_case_timeouts  # noqa: E402

CASE_TIMEOUT_S = 90


def pytest_collection_modifyitems(config, items):
    add_case_timeouts(config, items, CASE_TIMEOUT_S)


def _secret(name: str) -> str:
    return hashlib.sha256(f"herald-security-suite/{name}".encode()).hexdigest()[:40]


# Numeric ids: the PyPI SDK refuses app ids that are not all digits.
APP_A = {"id": "8101", "key": "sec-a-key", "secret": _secret("a")}
APP_B = {"id": "8102", "key": "sec-b-key", "secret": _secret("b")}
APP_C = {"id": "8103", "key": "sec-c-key", "secret": _secret("c")}
APP_T = {"id": "8104", "key": "sec-t-key", "secret": _secret("t")}
APP_N = {"id": "8105", "key": "sec-n-key", "secret": _secret("n")}

TICKET = {"alice": _secret("ticket-alice")}
CRA = {"carol": _secret("cra-carol"), "sally": _secret("cra-sally")}
SALT = {"salt": "sally-salt", "iterations": 100, "keylen": 32}
SEED = {"dave": hashlib.sha256(b"dave's ed25519 seed").digest(), "eve": hashlib.sha256(b"eve's seed").digest()}


def _pubkey(seed: bytes) -> str:
    from nacl.signing import SigningKey
    return SigningKey(seed).verify_key.encode().hex()


BACKEND_ROLE = {
    "name": "backend",
    "permissions": [
        {"uri": "sec", "match": "prefix", "allow": {"subscribe": True, "publish": True}},
        {"uri": "herald.pusher.authorize", "allow": {"call": True}},
    ],
}


def main_config() -> dict:
    app_a = {
        **APP_A, "enable_client_messages": True, "wamp": True,
        "wamp_roles": [BACKEND_ROLE],
        "wamp_auth": {
            "ticket": {"principals": {"alice": {"role": "backend", "ticket": TICKET["alice"]}}},
            "wampcra": {"principals": {
                "carol": {"role": "backend", "secret": CRA["carol"]},
                "sally": {"role": "backend", "secret": CRA["sally"], **SALT},
            }},
            "cryptosign": {"principals": {"dave": {"role": "backend", "authorized_keys": [_pubkey(SEED["dave"])]}}},
        },
    }
    app_n = {
        **APP_N, "wamp": True, "wamp_anonymous_role": "",
        "wamp_roles": [BACKEND_ROLE],
        "wamp_auth": {"ticket": {"principals": {"alice": {"role": "backend", "ticket": TICKET["alice"]}}}},
    }
    return {
        "apps": [
            app_a,
            {**APP_B, "wamp": True},
            dict(APP_C),
            {**APP_T, "wamp": True, "wamp_anonymous_role": "trusted"},
            app_n,
        ],
        "listeners": [{"host": "127.0.0.1", "port": 0, "protocol": "wamp1", "app": APP_A["id"]}],
    }


V1_LABEL = f"wamp1, app {APP_A['id']}"


@pytest.fixture(scope="session")
def main():
    server = start(main_config(), labels=(V1_LABEL,))
    server.v1_port = server.labelled[V1_LABEL]
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _main_stays_up(request):
    yield
    if "main" in request.fixturenames:
        server = request.getfixturevalue("main")
        assert server.alive(), "herald died during this case:\n" + server.stderr_tail()


@pytest.fixture
def subs(main):
    """Factory of raw Pusher victim sockets on `main`; all closed after the test."""
    from sec_clients import Sub
    opened = []

    def open_sub(app: dict = APP_A, server=None, headers=None):
        sock = Sub(server or main, app, headers=headers)
        opened.append(sock)
        return sock

    yield open_sub
    for sock in opened:
        sock.shutdown()


@pytest.fixture
def pjs(main):
    """Factory of pusher-js clients on `main`; all stopped after the test."""
    from sec_clients import PusherJs
    opened = []

    def open_client(app: dict = APP_A, server=None):
        client = PusherJs(server or main, app)
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        client.quit()
