"""WAMP v2 authentication and authorization with autobahn-python (asyncio) over `wamp.2.json` and
`wamp.2.msgpack`: anonymous, ticket, WAMP-CRA (plain and salted) and WAMP-Cryptosign against static
principals and against a dynamic authenticator (an HTTP backend in this process on 127.0.0.1:0),
roles and their refusals, the per-session publish rate, realms being off unless `wamp = true`, and
Pusher private/presence channels opened to WAMP by a role or by `herald.pusher.authorize`.

Cases that a real client cannot produce (a replayed AUTHENTICATE, an AUTHENTICATE out of turn) use a
raw WAMP client on the `websockets` package that sends the message arrays itself.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import msgpack
import nacl.signing
import pytest
from autobahn.wamp import auth as wamp_auth
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from conftest import WAIT_S, RawSocket, make_sdk, signed_request, uid
from pusher_sign import channel_auth, hmac_hex
from wamp1_client import EventInbox, WampHerald
from wamp_session import Aborted, close_sessions, join, run, within

SERIALIZERS = ["json", "msgpack"]
NOT_AUTHORIZED = "wamp.error.not_authorized"
SOCKET_ID = re.compile(r"\d+\.\d+")

# --- credentials ---------------------------------------------------------------------------------

TICKET_ALICE = "alice-ticket-4c1d9e7f20b3"
TICKET_READER = "reader-ticket-8a02f4d6c1e5"
CRA_BOB = "bob-cra-key-95e1c0d7a3f2"
CRA_CAROL = "carol-cra-key-1b7e3a9d5c04"
CAROL_SALT, CAROL_ITERATIONS, CAROL_KEYLEN = "carol-salt-62f1", 100, 32
DAVE_KEY = nacl.signing.SigningKey.generate()
STRANGER_KEY = nacl.signing.SigningKey.generate()
DYN_TICKET = "dyn-ticket-value-7d3a0c2e91"
DYN_CRA = "dyn-cra-key-0f4b8e2d6a15"
DYN_CRA_SALTED = "dyn-cra-salted-key-a7c3e9015b"
DYN_SALT, DYN_ITERATIONS, DYN_KEYLEN = "dyn-salt-3e8d", 200, 32
DYN_CS_KEY = nacl.signing.SigningKey.generate()


def pubkey_hex(key: nacl.signing.SigningKey) -> str:
    return key.verify_key.encode().hex()


# --- apps ----------------------------------------------------------------------------------------

ROLES = [
    {"name": "backend", "permissions": [
        {"uri": "com.auth.", "match": "prefix",
         "allow": {"subscribe": True, "publish": True, "register": True, "call": True}},
        {"uri": "private-granted-", "match": "prefix", "allow": {"subscribe": True, "publish": True}},
        {"uri": "presence-granted-", "match": "prefix", "allow": {"subscribe": True}},
    ]},
    {"name": "reader", "permissions": [
        {"uri": "com.auth.", "match": "prefix", "allow": {"subscribe": True}},
    ]},
]

# The app ids are numeric: the PyPI pusher SDK refuses others.
ANON = {"id": "5100", "key": "auth-anon-key", "secret": "anon-3f9a7c1e5d2b8046a1f3", "wamp": True}
STATIC = {
    "id": "5101", "key": "auth-static-key", "secret": "static-8e2d4a6c0b1f3957e2d4", "wamp": True,
    "wamp_roles": ROLES,
    "wamp_auth": {
        "ticket": {"principals": {
            "alice": {"role": "backend", "ticket": TICKET_ALICE, "user_info": json.dumps({"name": "Alice"})},
            "reader": {"role": "reader", "ticket": TICKET_READER},
        }},
        "wampcra": {"principals": {
            "bob": {"role": "backend", "secret": CRA_BOB},
            "carol": {"role": "backend", "secret": CRA_CAROL, "salt": CAROL_SALT,
                      "iterations": CAROL_ITERATIONS, "keylen": CAROL_KEYLEN},
        }},
        "cryptosign": {"principals": {
            "dave": {"role": "backend", "authorized_keys": [pubkey_hex(DAVE_KEY)]},
        }},
    },
}
DYN_TIMEOUT_MS = 600
DYNAMIC = {
    "id": "5102", "key": "auth-dynamic-key", "secret": "dynamic-5b1e9c3a7d0f2468b1e9", "wamp": True,
    "wamp_roles": ROLES,
    # The dynamic URLs are filled in once the backend listens.
}
TRUSTED = {
    "id": "5103", "key": "auth-trusted-key", "secret": "trusted-0c6f2a8e4b1d3579c0f6", "wamp": True,
    "wamp_anonymous_role": "trusted", "wamp_max_publishes_per_second": 3,
}
CHALLENGE_TIMEOUT_MS = 400
SHORT = {
    "id": "5104", "key": "auth-short-key", "secret": "short-7a3c9e1f5b0d2486a3c9", "wamp": True,
    "wamp_roles": ROLES,
    "wamp_auth": {"challenge_timeout_ms": CHALLENGE_TIMEOUT_MS,
                  "ticket": {"principals": {"alice": {"role": "backend", "ticket": TICKET_ALICE}}}},
}
OFF = {"id": "5105", "key": "auth-off-key", "secret": "off-2d8b4f0a6c1e3597d2b8"}
CLOSED = {
    "id": "5106", "key": "auth-closed-key", "secret": "closed-9f5d1b7e3a0c2468f9d5", "wamp": True,
    "wamp_anonymous_role": "", "wamp_roles": ROLES,
    "wamp_auth": {"ticket": {"principals": {"alice": {"role": "backend", "ticket": TICKET_ALICE}}}},
}


class AuthHerald(WampHerald):
    """herald with these apps on its main listener only (WAMP v2; no WAMP v1 listeners)."""

    def __init__(self, apps: list[dict]):
        super().__init__(apps=apps, listeners={})


# --- the dynamic authenticator -------------------------------------------------------------------

class Authenticator:
    """The app's backend answering herald's authentication requests on 127.0.0.1:0.

    Every request is recorded with whether its X-Pusher-Key and X-Pusher-Signature were right;
    a request with a wrong signature is answered 400.
    """

    def __init__(self, app: dict):
        self.app = app
        self.requests: list[dict] = []
        self.release_slow = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                expected = hmac_hex(outer.app["secret"], raw)
                record = {
                    "path": self.path,
                    "content_type": self.headers.get("Content-Type", ""),
                    "key_ok": self.headers.get("X-Pusher-Key") == outer.app["key"],
                    "signature_ok": hmac.compare_digest(self.headers.get("X-Pusher-Signature", ""), expected),
                }
                try:
                    record["body"] = json.loads(raw)
                except ValueError:
                    record["body"] = None
                outer.requests.append(record)
                if not (record["key_ok"] and record["signature_ok"]) or not isinstance(record["body"], dict):
                    return self._answer(400, {"error": "bad signature"})
                status, answer = outer.decide(record["body"])
                self._answer(status, answer)

            def _answer(self, status: int, body):
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # herald gave up waiting (the timeout case)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, method: str) -> str:
        return f"http://127.0.0.1:{self.port}/wamp-auth/{method}"

    def decide(self, body: dict) -> tuple[int, dict]:
        method, authid = body.get("authmethod"), body.get("authid")
        if authid == "dyn-slow":
            # Holds the answer past herald's dynamic_timeout_ms; released when the test is done.
            self.release_slow.wait(timeout=10)
            return 200, {"role": "backend"}
        if authid == "dyn-broken":
            return 503, {"error": "backend down"}
        if authid == "dyn-forbidden":
            return 403, {"error": "forbidden"}
        if method == "ticket" and authid == "dyn-ticket":
            if body.get("ticket") == DYN_TICKET:
                return 200, {"role": "backend", "user_info": {"name": "Dyn Ticket"}}
            return 401, {"error": "wrong ticket"}
        if method == "wampcra" and authid == "dyn-cra":
            return 200, {"role": "backend", "secret": DYN_CRA}
        if method == "wampcra" and authid == "dyn-cra-salted":
            return 200, {"role": "backend", "secret": DYN_CRA_SALTED, "salt": DYN_SALT,
                         "iterations": DYN_ITERATIONS, "keylen": DYN_KEYLEN}
        if method == "cryptosign" and authid == "dyn-cs":
            return 200, {"role": "backend", "authorized_keys": [pubkey_hex(DYN_CS_KEY)]}
        return 401, {"error": "unknown principal"}

    def requests_for(self, authid: str) -> list[dict]:
        return [r for r in self.requests if isinstance(r["body"], dict) and r["body"].get("authid") == authid]

    def stop(self):
        self.release_slow.set()
        self.server.shutdown()
        self.server.server_close()


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound once by the kernel's choice, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def backend():
    server = Authenticator(DYNAMIC)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def herald(backend):
    dynamic = dict(DYNAMIC)
    method = {"dynamic_timeout_ms": DYN_TIMEOUT_MS}
    dynamic["wamp_auth"] = {
        "ticket": {"dynamic": backend.url("ticket"), **method},
        "wampcra": {"dynamic": backend.url("wampcra"), **method},
        "cryptosign": {"dynamic": backend.url("cryptosign"), **method},
    }
    closed = dict(CLOSED)
    closed["wamp_auth"] = dict(CLOSED["wamp_auth"],
                               wampcra={"dynamic": f"http://127.0.0.1:{closed_port()}/unreachable"})
    server = AuthHerald([ANON, STATIC, dynamic, TRUSTED, SHORT, OFF, closed])
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _alive(herald):
    yield
    herald.assert_alive()


@pytest.fixture(params=SERIALIZERS)
def serializer(request):
    return request.param


# --- autobahn-python sessions with credentials ---------------------------------------------------

class Credentials:
    """What a client offers in HELLO and how it answers CHALLENGE (with autobahn's own helpers)."""

    def __init__(self, authmethods=None, authid=None, authextra=None, answer=None):
        self.authmethods = authmethods
        self.authid = authid
        self.authextra = authextra
        self.answer = answer  # challenge -> signature (or a future of one)

    @classmethod
    def ticket(cls, authid, ticket):
        return cls(["ticket"], authid, None, lambda challenge: ticket)

    @classmethod
    def wampcra(cls, authid, secret):
        def answer(challenge):
            key = secret.encode()
            if "salt" in challenge.extra:
                key = wamp_auth.derive_key(key, challenge.extra["salt"], challenge.extra["iterations"],
                                           challenge.extra["keylen"])
            return wamp_auth.compute_wcs(key, challenge.extra["challenge"].encode()).decode("ascii")
        return cls(["wampcra"], authid, None, answer)

    @classmethod
    def cryptosign(cls, authid, signing_key, announce=None):
        """Signs with `signing_key` (PyNaCl: autobahn's own cryptosign module needs the optional
        base58 package); `announce` is the key whose public part HELLO carries."""
        shown = announce or signing_key
        return cls(["cryptosign"], authid, {"pubkey": pubkey_hex(shown)},
                   lambda challenge: cs_signature(signing_key, challenge.extra))


class Joiner:
    """Joins autobahn-python sessions with credentials; closes them all at the end."""

    def __init__(self, herald: WampHerald, serializer: str):
        self.herald = herald
        self.serializer = serializer
        self.opened = []
        self.challenges = []

    async def join(self, realm: str, creds: Credentials | None = None):
        creds = creds or Credentials()

        def answer(challenge):
            self.challenges.append(challenge)
            return creds.answer(challenge)

        return await join(self.herald.port, realm, serializer=self.serializer, authmethods=creds.authmethods,
                          authid=creds.authid, authextra=creds.authextra, on_challenge=answer,
                          welcome_timeout=WAIT_S + 5, track=self.opened)

    async def close(self):
        await close_sessions(self.opened)


def scenario(herald, serializer, body):
    async def main():
        joiner = Joiner(herald, serializer)
        try:
            return await body(joiner)
        finally:
            await joiner.close()
    return run(main())


async def aborted(joiner: Joiner, realm: str, creds: Credentials | None = None) -> Aborted:
    with pytest.raises(Aborted) as err:
        await joiner.join(realm, creds)
    return err.value


async def blocking(fn, *args):
    loop = asyncio.get_running_loop()
    return await within(loop.run_in_executor(None, lambda: fn(*args)), getattr(fn, "__name__", "call"))


def topic(name: str) -> str:
    return f"com.auth.{uid(name)}"


def welcome_of(session) -> dict:
    d = session.joined.result()
    return {"authid": d.authid, "authrole": d.authrole, "authmethod": d.authmethod,
            "authprovider": d.authprovider, "authextra": d.authextra}


# --- successful authentication -------------------------------------------------------------------

STATIC_SUCCESS = {
    "ticket": (lambda: Credentials.ticket("alice", TICKET_ALICE), "alice"),
    "wampcra": (lambda: Credentials.wampcra("bob", CRA_BOB), "bob"),
    "wampcra-salted": (lambda: Credentials.wampcra("carol", CRA_CAROL), "carol"),
    "cryptosign": (lambda: Credentials.cryptosign("dave", DAVE_KEY), "dave"),
}
DYNAMIC_SUCCESS = {
    "ticket": (lambda: Credentials.ticket("dyn-ticket", DYN_TICKET), "dyn-ticket"),
    "wampcra": (lambda: Credentials.wampcra("dyn-cra", DYN_CRA), "dyn-cra"),
    "wampcra-salted": (lambda: Credentials.wampcra("dyn-cra-salted", DYN_CRA_SALTED), "dyn-cra-salted"),
    "cryptosign": (lambda: Credentials.cryptosign("dyn-cs", DYN_CS_KEY), "dyn-cs"),
}


def test_anonymous_welcome_details(herald, serializer):
    async def body(joiner):
        session = await joiner.join(ANON["id"])
        w = welcome_of(session)
        assert w["authmethod"] == "anonymous", w
        assert w["authrole"] == "anonymous", w
        assert w["authid"] == str(session.session_id), w
        assert isinstance(w["authextra"], dict) and SOCKET_ID.fullmatch(str(w["authextra"].get("socket_id"))), w
        other = welcome_of(await joiner.join(ANON["id"]))
        assert other["authextra"]["socket_id"] != w["authextra"]["socket_id"]
    scenario(herald, serializer, body)


@pytest.mark.parametrize("method", list(STATIC_SUCCESS))
def test_static_principal_is_welcomed_with_its_role(herald, serializer, method):
    make, authid = STATIC_SUCCESS[method]

    async def body(joiner):
        session = await joiner.join(STATIC["id"], make())
        w = welcome_of(session)
        assert (w["authid"], w["authrole"], w["authmethod"], w["authprovider"]) == \
            (authid, "backend", method.split("-")[0], "static"), w
        assert SOCKET_ID.fullmatch(str((w["authextra"] or {}).get("socket_id"))), w
        challenge = joiner.challenges[-1]
        assert challenge.method == method.split("-")[0]
        if method.startswith("wampcra"):
            inner = json.loads(challenge.extra["challenge"])
            assert inner["authid"] == authid and inner["authrole"] == "backend" and inner["authmethod"] == "wampcra"
            assert inner["session"] == session.session_id and inner["nonce"], inner
            assert ("salt" in challenge.extra) == (method == "wampcra-salted"), challenge.extra
            if method == "wampcra-salted":
                assert (challenge.extra["salt"], challenge.extra["iterations"], challenge.extra["keylen"]) == \
                    (CAROL_SALT, CAROL_ITERATIONS, CAROL_KEYLEN)
        if method == "cryptosign":
            assert re.fullmatch(r"[0-9a-f]{64}", challenge.extra["challenge"]), challenge.extra
        # The role is in force: backend may publish under com.auth.
        t = topic("static-ok")
        inbox = EventInbox("subscriber")
        await within(session.subscribe(inbox.handler, t), "SUBSCRIBED")
        await within(session.publish(t, method, options=PublishOptions(acknowledge=True, exclude_me=False)),
                     "PUBLISHED")
        assert (await inbox.next()).args == [method]
    scenario(herald, serializer, body)


@pytest.mark.parametrize("method", list(DYNAMIC_SUCCESS))
def test_dynamic_authenticator_is_asked_with_a_signed_request(herald, backend, serializer, method):
    make, authid = DYNAMIC_SUCCESS[method]
    wire_method = method.split("-")[0]

    async def body(joiner):
        before = len(backend.requests_for(authid))
        session = await joiner.join(DYNAMIC["id"], make())
        w = welcome_of(session)
        assert (w["authid"], w["authrole"], w["authmethod"], w["authprovider"]) == \
            (authid, "backend", wire_method, "dynamic"), w
        requests = backend.requests_for(authid)[before:]
        assert len(requests) == 1, requests
        req = requests[0]
        assert req["key_ok"] and req["signature_ok"], req
        assert req["content_type"].startswith("application/json"), req
        assert req["path"] == f"/wamp-auth/{wire_method}"
        b = req["body"]
        assert (b["realm"], b["authmethod"], b["authid"]) == (DYNAMIC["id"], wire_method, authid), b
        assert "session" in b and "authextra" in b, b
        if wire_method == "ticket":
            assert b["ticket"] == DYN_TICKET
        else:
            assert "ticket" not in b, b
        if wire_method == "cryptosign":
            assert b["authextra"]["pubkey"] == pubkey_hex(DYN_CS_KEY), b
        if method == "wampcra-salted":
            challenge = joiner.challenges[-1]
            assert (challenge.extra["salt"], challenge.extra["iterations"], challenge.extra["keylen"]) == \
                (DYN_SALT, DYN_ITERATIONS, DYN_KEYLEN)
        t = topic("dyn-ok")
        await within(session.publish(t, 1, options=PublishOptions(acknowledge=True)), "PUBLISHED as backend")
    scenario(herald, serializer, body)


# --- refused authentication ----------------------------------------------------------------------

STATIC_WRONG = {
    "ticket": (lambda: Credentials.ticket("alice", "not-" + TICKET_ALICE),
               "ticket in static WAMP-Ticket authentication is invalid"),
    "wampcra": (lambda: Credentials.wampcra("bob", "not-" + CRA_BOB), "WAMP-CRA client signature is invalid"),
    "wampcra-salted": (lambda: Credentials.wampcra("carol", "not-" + CRA_CAROL),
                       "WAMP-CRA client signature is invalid"),
    # HELLO announces dave's key, the signature is made with another one.
    "cryptosign": (lambda: Credentials.cryptosign("dave", STRANGER_KEY, announce=DAVE_KEY),
                   "signed message has invalid signature"),
}


@pytest.mark.parametrize("method", list(STATIC_WRONG))
def test_static_wrong_secret_is_not_authorized(herald, serializer, method):
    make, message = STATIC_WRONG[method]

    async def body(joiner):
        err = await aborted(joiner, STATIC["id"], make())
        assert err.reason == NOT_AUTHORIZED, err
        assert message in (err.message or ""), err
    scenario(herald, serializer, body)


def test_cryptosign_key_not_authorized_for_principal(herald, serializer):
    async def body(joiner):
        err = await aborted(joiner, STATIC["id"], Credentials.cryptosign("dave", STRANGER_KEY))
        assert err.reason == NOT_AUTHORIZED, err
    scenario(herald, serializer, body)


@pytest.mark.parametrize("method", ["ticket", "wampcra", "cryptosign"])
def test_static_unknown_authid_is_not_authorized(herald, serializer, method):
    creds = {
        "ticket": Credentials.ticket("nobody", TICKET_ALICE),
        "wampcra": Credentials.wampcra("nobody", CRA_BOB),
        "cryptosign": Credentials.cryptosign("nobody", DAVE_KEY),
    }[method]

    async def body(joiner):
        err = await aborted(joiner, STATIC["id"], creds)
        assert err.reason == NOT_AUTHORIZED, err
        assert 'no principal with authid "nobody" exists' in (err.message or ""), err
    scenario(herald, serializer, body)


DYNAMIC_WRONG = {
    "ticket": lambda: Credentials.ticket("dyn-ticket", "not-" + DYN_TICKET),
    "wampcra": lambda: Credentials.wampcra("dyn-cra", "not-" + DYN_CRA),
    "wampcra-salted": lambda: Credentials.wampcra("dyn-cra-salted", "not-" + DYN_CRA_SALTED),
    "cryptosign": lambda: Credentials.cryptosign("dyn-cs", STRANGER_KEY, announce=DYN_CS_KEY),
    "cryptosign-other-key": lambda: Credentials.cryptosign("dyn-cs", STRANGER_KEY),
    "unknown-authid": lambda: Credentials.ticket("dyn-nobody", DYN_TICKET),
    "backend-403": lambda: Credentials.ticket("dyn-forbidden", DYN_TICKET),
}


@pytest.mark.parametrize("case", list(DYNAMIC_WRONG))
def test_dynamic_refusal_is_not_authorized(herald, backend, serializer, case):
    async def body(joiner):
        err = await aborted(joiner, DYNAMIC["id"], DYNAMIC_WRONG[case]())
        assert err.reason == NOT_AUTHORIZED, err
        if case.startswith("wampcra"):
            assert "WAMP-CRA client signature is invalid" in (err.message or ""), err
        if case == "cryptosign":
            assert "signed message has invalid signature" in (err.message or ""), err
    scenario(herald, serializer, body)
    assert all(r["signature_ok"] and r["key_ok"] for r in backend.requests), backend.requests


def test_dynamic_authenticator_5xx_is_authentication_failed(herald, backend, serializer):
    async def body(joiner):
        err = await aborted(joiner, DYNAMIC["id"], Credentials.ticket("dyn-broken", DYN_TICKET))
        assert err.reason == "wamp.error.authentication_failed", err
        assert "authenticator unavailable" in (err.message or ""), err
    scenario(herald, serializer, body)
    assert backend.requests_for("dyn-broken"), "herald never asked the backend"


def test_dynamic_authenticator_timeout_is_authentication_failed(herald, backend, serializer):
    async def body(joiner):
        started = time.monotonic()
        err = await aborted(joiner, DYNAMIC["id"], Credentials.ticket("dyn-slow", DYN_TICKET))
        elapsed = time.monotonic() - started
        assert err.reason == "wamp.error.authentication_failed", err
        assert "authenticator unavailable" in (err.message or ""), err
        assert elapsed >= DYN_TIMEOUT_MS / 1000 * 0.8, f"ABORT after {elapsed:.2f} s, before the timeout"
    scenario(herald, serializer, body)
    assert backend.requests_for("dyn-slow"), "herald never asked the backend"


def test_dynamic_authenticator_unreachable_is_authentication_failed(herald, serializer):
    async def body(joiner):
        err = await aborted(joiner, CLOSED["id"], Credentials.wampcra("anyone", CRA_BOB))
        assert err.reason == "wamp.error.authentication_failed", err
        assert "authenticator unavailable" in (err.message or ""), err
    scenario(herald, serializer, body)


def test_expired_challenge_is_aborted_when_the_timeout_fires(herald, serializer):
    async def body(joiner):
        never = asyncio.get_running_loop().create_future()
        creds = Credentials(["ticket"], "alice", None, lambda challenge: never)
        started = time.monotonic()
        err = await aborted(joiner, SHORT["id"], creds)
        elapsed = time.monotonic() - started
        assert err.reason == "wamp.error.authentication_failed", err
        assert "challenge expired" in (err.message or ""), err
        assert elapsed >= CHALLENGE_TIMEOUT_MS / 1000 * 0.8, f"ABORT after {elapsed:.2f} s"
        assert len(joiner.challenges) == 1
        # Answered in time, the same principal is welcome.
        session = await joiner.join(SHORT["id"], Credentials.ticket("alice", TICKET_ALICE))
        assert welcome_of(session)["authid"] == "alice"
    scenario(herald, serializer, body)


def test_no_acceptable_method_is_no_auth_method(herald, serializer):
    async def body(joiner):
        # ANON has no [apps.wamp_auth] table at all.
        err = await aborted(joiner, ANON["id"], Credentials.ticket("alice", TICKET_ALICE))
        assert err.reason == "wamp.error.no_auth_method", err
        # The first method of the client's list that the realm accepts is used.
        creds = Credentials.ticket("alice", TICKET_ALICE)
        creds.authmethods = ["cryptosign", "ticket"]
        session = await joiner.join(CLOSED["id"], creds)
        assert welcome_of(session)["authmethod"] == "ticket"
    scenario(herald, serializer, body)


def test_anonymous_refused_when_anonymous_role_is_empty(herald, serializer):
    async def body(joiner):
        err = await aborted(joiner, CLOSED["id"])
        assert err.reason in (NOT_AUTHORIZED, "wamp.error.no_auth_method"), err
        session = await joiner.join(CLOSED["id"], Credentials.ticket("alice", TICKET_ALICE))
        assert welcome_of(session)["authrole"] == "backend"
    scenario(herald, serializer, body)


def test_realm_off_unless_wamp_is_true(herald, serializer):
    async def body(joiner):
        err = await aborted(joiner, OFF["id"])
        assert err.reason == "wamp.error.no_such_realm", err
        assert (await joiner.join(ANON["id"])).is_attached()
    scenario(herald, serializer, body)
    # The app itself is served to Pusher clients.
    sock = RawSocket(f"ws://127.0.0.1:{herald.port}/app/{OFF['key']}?protocol=7&client=python&version=1.0")
    try:
        assert SOCKET_ID.fullmatch(sock.socket_id)
    finally:
        sock.close()


# --- raw WAMP: replays and messages out of turn ---------------------------------------------------

HELLO, WELCOME, ABORT, CHALLENGE, AUTHENTICATE = 1, 2, 3, 4, 5
CLIENT_ROLES = {"roles": {"subscriber": {}, "publisher": {}, "caller": {}, "callee": {}}}


class RawWamp:
    """A WAMP v2 client that sends and reads the message arrays itself."""

    def __init__(self, herald: WampHerald, serializer: str):
        self.serializer = serializer
        self.ws = connect(herald.v2_url("/ws"), subprotocols=[f"wamp.2.{serializer}"], open_timeout=WAIT_S,
                          max_size=None, legacy=True)
        assert self.ws.subprotocol == f"wamp.2.{serializer}"

    def send(self, msg: list):
        if self.serializer == "json":
            self.ws.send(json.dumps(msg))
        else:
            self.ws.send(msgpack.packb(msg, use_bin_type=True))

    def recv(self, timeout: float = WAIT_S) -> list:
        data = self.ws.recv(timeout=timeout)
        return json.loads(data) if isinstance(data, str) else msgpack.unpackb(data, raw=False)

    def hello(self, realm: str, authmethods: list[str], authid: str, authextra: dict | None = None) -> list:
        details = dict(CLIENT_ROLES, authmethods=authmethods, authid=authid)
        if authextra is not None:
            details["authextra"] = authextra
        self.send([HELLO, realm, details])
        return self.recv()

    def closes(self, timeout: float = WAIT_S) -> bool:
        """Whether the server closes the connection within `timeout` (reading what is left)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.recv(timeout=max(0.01, deadline - time.monotonic()))
            except ConnectionClosed:
                return True
            except TimeoutError:
                return False
        return False

    def close(self):
        self.ws.close()


def cra_signature(secret: str, challenge_extra: dict) -> str:
    return wamp_auth.compute_wcs(secret.encode(), challenge_extra["challenge"].encode()).decode("ascii")


def cs_signature(key: nacl.signing.SigningKey, challenge_extra: dict) -> str:
    data = bytes.fromhex(challenge_extra["challenge"])
    return key.sign(data).signature.hex() + data.hex()


REPLAY = {
    "wampcra": (["wampcra"], "bob", None, lambda extra: cra_signature(CRA_BOB, extra)),
    "cryptosign": (["cryptosign"], "dave", {"pubkey": pubkey_hex(DAVE_KEY)}, lambda extra: cs_signature(DAVE_KEY, extra)),
}


@pytest.mark.parametrize("method", list(REPLAY))
def test_replayed_challenge_answer_is_refused(herald, serializer, method):
    authmethods, authid, authextra, sign = REPLAY[method]
    first = RawWamp(herald, serializer)
    second = RawWamp(herald, serializer)
    try:
        challenge = first.hello(STATIC["id"], authmethods, authid, authextra)
        assert challenge[:2] == [CHALLENGE, method], challenge
        signature = sign(challenge[2])
        first.send([AUTHENTICATE, signature, {}])
        welcome = first.recv()
        assert welcome[0] == WELCOME and welcome[2]["authid"] == authid, welcome
        # The captured answer, replayed in a new session, does not open it.
        challenge2 = second.hello(STATIC["id"], authmethods, authid, authextra)
        assert challenge2[:2] == [CHALLENGE, method], challenge2
        assert challenge2[2]["challenge"] != challenge[2]["challenge"], "the router repeated its challenge"
        second.send([AUTHENTICATE, signature, {}])
        answer = second.recv()
        assert answer[0] == ABORT and answer[2] == NOT_AUTHORIZED, answer
        assert second.closes(), "the connection stayed open after ABORT"
    finally:
        first.close()
        second.close()


def assert_authenticate_out_of_turn_aborts(herald, serializer, before=None):
    """After `before(client)`, an AUTHENTICATE is answered with ABORT protocol_violation and a close."""
    client = RawWamp(herald, serializer)
    try:
        if before is not None:
            before(client)
        client.send([AUTHENTICATE, TICKET_ALICE, {}])
        answer = client.recv()
        assert answer[0] == ABORT and answer[2] == "wamp.error.protocol_violation", answer
        assert client.closes()
    finally:
        client.close()


def test_second_authenticate_is_protocol_violation(herald, serializer):
    def authenticated(client):
        challenge = client.hello(STATIC["id"], ["ticket"], "alice")
        assert challenge[:2] == [CHALLENGE, "ticket"] and challenge[2] == {}, challenge
        client.send([AUTHENTICATE, TICKET_ALICE, {}])
        welcome = client.recv()
        assert welcome[0] == WELCOME and welcome[2]["authmethod"] == "ticket", welcome

    assert_authenticate_out_of_turn_aborts(herald, serializer, authenticated)


def test_authenticate_without_challenge_is_protocol_violation(herald, serializer):
    assert_authenticate_out_of_turn_aborts(herald, serializer)


def test_authenticate_after_expiry_gets_the_abort_not_a_welcome(herald, serializer):
    client = RawWamp(herald, serializer)
    try:
        started = time.monotonic()
        challenge = client.hello(SHORT["id"], ["ticket"], "alice")
        assert challenge[0] == CHALLENGE, challenge
        answer = client.recv(timeout=CHALLENGE_TIMEOUT_MS / 1000 + WAIT_S)
        elapsed = time.monotonic() - started
        assert answer[0] == ABORT and answer[2] == "wamp.error.authentication_failed", answer
        assert "challenge expired" in answer[1].get("message", ""), answer
        assert elapsed >= CHALLENGE_TIMEOUT_MS / 1000 * 0.8, elapsed
        try:
            client.send([AUTHENTICATE, TICKET_ALICE, {}])
        except ConnectionClosed:
            pass
        assert client.closes(), "the connection stayed open after ABORT"
    finally:
        client.close()


# --- authorization by role -----------------------------------------------------------------------

def test_role_refusals_are_not_authorized_with_the_uri(herald, serializer):
    async def body(joiner):
        reader = await joiner.join(STATIC["id"], Credentials.ticket("reader", TICKET_READER))
        assert welcome_of(reader)["authrole"] == "reader"
        backend_session = await joiner.join(STATIC["id"], Credentials.ticket("alice", TICKET_ALICE))
        t = topic("reader")
        inbox = EventInbox("reader")
        await within(reader.subscribe(inbox.handler, t), "SUBSCRIBED (allowed)")
        with pytest.raises(ApplicationError) as err:
            await within(reader.publish(t, "x", options=PublishOptions(acknowledge=True)), "ERROR for publish")
        assert err.value.error == NOT_AUTHORIZED
        assert list(err.value.args) == [f"session not authorized to publish to topic '{t}'"], err.value.args
        proc = topic("proc")
        with pytest.raises(ApplicationError) as err:
            await within(reader.register(lambda: 1, proc), "ERROR for register")
        assert err.value.error == NOT_AUTHORIZED and proc in str(err.value.args), err.value.args
        await within(backend_session.register(lambda: "ok", proc), "REGISTERED by backend")
        with pytest.raises(ApplicationError) as err:
            await within(reader.call(proc), "ERROR for call")
        assert err.value.error == NOT_AUTHORIZED and proc in str(err.value.args), err.value.args
        elsewhere = f"com.other.{uid('sub')}"
        with pytest.raises(ApplicationError) as err:
            await within(reader.subscribe(lambda *a: None, elsewhere), "ERROR for subscribe")
        assert err.value.error == NOT_AUTHORIZED and elsewhere in str(err.value.args), err.value.args
        # Publish without acknowledge is dropped silently: the backend's later event comes first and only.
        reader.publish(t, "dropped")
        await within(backend_session.publish(t, "kept", options=PublishOptions(acknowledge=True)), "PUBLISHED")
        assert (await inbox.next()).args == ["kept"]
        assert inbox.payloads() == ["kept"]
        assert reader.is_attached()
    scenario(herald, serializer, body)


def test_anonymous_default_subscribes_only(herald, serializer):
    async def body(joiner):
        session = await joiner.join(ANON["id"])
        t = f"com.anon.{uid('pub')}"
        inbox = EventInbox("anonymous subscriber")
        await within(session.subscribe(inbox.handler, t), "SUBSCRIBED")
        await blocking(make_sdk(herald, ANON).trigger, t, "from-http", {"n": 1})
        event = await inbox.next()
        assert event.args == [{"n": 1}] and event.kwargs == {"event": "from-http"}, event
        with pytest.raises(ApplicationError) as err:
            await within(session.publish(t, "no", options=PublishOptions(acknowledge=True)), "ERROR for publish")
        assert err.value.error == NOT_AUTHORIZED
        session.publish(t, "dropped")
        with pytest.raises(ApplicationError) as err:
            await within(session.register(lambda: 1, f"com.anon.{uid('proc')}"), "ERROR for register")
        assert err.value.error == NOT_AUTHORIZED
        with pytest.raises(ApplicationError) as err:
            await within(session.call(f"com.anon.{uid('proc')}"), "ERROR for call")
        assert err.value.error == NOT_AUTHORIZED
        other = await joiner.join(ANON["id"])
        watch = EventInbox("second anonymous subscriber")
        await within(other.subscribe(watch.handler, t), "SUBSCRIBED")
        await blocking(make_sdk(herald, ANON).trigger, t, "from-http", {"n": 2})
        assert (await watch.next()).args == [{"n": 2}]
        assert (await inbox.next()).args == [{"n": 2}]
        assert inbox.payloads() == [{"n": 1}, {"n": 2}] and watch.payloads() == [{"n": 2}]
    scenario(herald, serializer, body)


def test_publish_rate_limit_per_session(herald, serializer):
    limit = TRUSTED["wamp_max_publishes_per_second"]

    async def body(joiner):
        pub, sub, other = await joiner.join(TRUSTED["id"]), await joiner.join(TRUSTED["id"]), await joiner.join(TRUSTED["id"])
        t = f"com.rate.{uid('burst')}"
        inbox = EventInbox("subscriber")
        await within(sub.subscribe(inbox.handler, t), "SUBSCRIBED")
        burst = [pub.publish(t, n, options=PublishOptions(acknowledge=True)) for n in range(limit * 4)]
        results = await within(asyncio.gather(*burst, return_exceptions=True), "answers to the burst")
        accepted = [n for n, r in enumerate(results) if not isinstance(r, Exception)]
        refused = [r for r in results if isinstance(r, Exception)]
        assert refused, f"{len(results)} publishes in one burst all accepted with a limit of {limit}/s"
        assert all(isinstance(r, ApplicationError) and r.error == "herald.error.rate_limited" for r in refused), refused
        assert accepted[:limit] == list(range(limit)), accepted
        # Another session of the same app is not limited by the first one's burst.
        await within(other.publish(t, "other", options=PublishOptions(acknowledge=True)), "PUBLISHED (other session)")
        await inbox.until(lambda e: e.args == ["other"])
        delivered = [p for p in inbox.payloads() if p != "other"]
        assert delivered == accepted, f"delivered {delivered}, acknowledged {accepted}"
    scenario(herald, serializer, body)


# --- Pusher private and presence channels --------------------------------------------------------

@pytest.mark.parametrize("prefix", ["private-", "presence-"])
def test_signed_channels_refused_without_a_grant(herald, serializer, prefix):
    async def body(joiner):
        trusted = await joiner.join(TRUSTED["id"])
        channel = f"{prefix}{uid('nogrant')}"
        with pytest.raises(ApplicationError) as err:
            await within(trusted.subscribe(lambda *a: None, channel), "ERROR")
        assert err.value.error == NOT_AUTHORIZED
        # A configured role that has no permission for it is refused too.
        alice = await joiner.join(STATIC["id"], Credentials.ticket("alice", TICKET_ALICE))
        with pytest.raises(ApplicationError) as err:
            await within(alice.subscribe(lambda *a: None, channel), "ERROR")
        assert err.value.error == NOT_AUTHORIZED
    scenario(herald, serializer, body)


def watched_scenario(herald, serializer, app, channel, watcher_member: dict, body):
    """Runs `body(joiner, watcher)` while a Pusher client (`watcher_member`) is in presence `channel`."""
    watcher = RawSocket(f"ws://127.0.0.1:{herald.port}/app/{app['key']}?protocol=7&client=python&version=1.0")
    try:
        data = json.dumps(watcher_member)
        watcher.subscribe(channel, auth=channel_auth(app, watcher.socket_id, channel, data), channel_data=data)
        scenario(herald, serializer, lambda joiner: body(joiner, watcher))
    finally:
        watcher.close()


async def members_seen(herald, app, watcher, channel, added_member: dict, user_ids: list):
    """The Pusher `watcher` saw `added_member` join `channel`, and the HTTP API lists `user_ids`."""
    added = await blocking(watcher.next, "pusher_internal:member_added")
    assert added["decoded"] == added_member, added
    status, text = await blocking(signed_request, herald, app, "GET", f"/apps/{app['id']}/channels/{channel}/users")
    assert status == 200, text
    assert sorted(u["id"] for u in json.loads(text)["users"]) == user_ids, text


def test_private_channel_opened_by_role_permission(herald, serializer):
    async def body(joiner):
        alice = await joiner.join(STATIC["id"], Credentials.ticket("alice", TICKET_ALICE))
        channel = f"private-granted-{uid('role')}"
        inbox = EventInbox("alice")
        await within(alice.subscribe(inbox.handler, channel), "SUBSCRIBED")
        await blocking(make_sdk(herald, STATIC).trigger, channel, "secret-event", {"for": "alice"})
        event = await inbox.next()
        assert event.args == [{"for": "alice"}] and event.kwargs == {"event": "secret-event"}
    scenario(herald, serializer, body)


def test_presence_member_from_principal_for_role_grant(herald, serializer):
    channel = f"presence-granted-{uid('role')}"

    async def body(joiner, watcher):
        alice = await joiner.join(STATIC["id"], Credentials.ticket("alice", TICKET_ALICE))
        await within(alice.subscribe(lambda *a: None, channel), "SUBSCRIBED")
        await members_seen(herald, STATIC, watcher, channel, {"user_id": "alice", "user_info": {"name": "Alice"}},
                           ["alice", "watcher"])
    watched_scenario(herald, serializer, STATIC, channel, {"user_id": "watcher", "user_info": {"name": "Watcher"}},
                     body)


def test_private_channel_opened_by_pusher_authorize(herald, serializer):
    async def body(joiner):
        session = await joiner.join(TRUSTED["id"])
        socket_id = welcome_of(session)["authextra"]["socket_id"]
        channel = f"private-{uid('authz')}"
        with pytest.raises(ApplicationError) as err:
            await within(session.subscribe(lambda *a: None, channel), "ERROR before authorize")
        assert err.value.error == NOT_AUTHORIZED
        # A signature for another socket id (or with the wrong secret) is refused.
        for bad in (channel_auth(TRUSTED, "1.2", channel),
                    channel_auth(dict(TRUSTED, secret="wrong-" + TRUSTED["secret"]), socket_id, channel)):
            with pytest.raises(ApplicationError) as err:
                await within(session.call("herald.pusher.authorize", channel, bad), "ERROR for a wrong signature")
            assert err.value.error == NOT_AUTHORIZED
        with pytest.raises(ApplicationError) as err:
            await within(session.subscribe(lambda *a: None, channel), "ERROR after a wrong signature")
        assert err.value.error == NOT_AUTHORIZED
        await within(session.call("herald.pusher.authorize", channel, channel_auth(TRUSTED, socket_id, channel)),
                     "RESULT of herald.pusher.authorize")
        inbox = EventInbox("authorized")
        await within(session.subscribe(inbox.handler, channel), "SUBSCRIBED after authorize")
        await blocking(make_sdk(herald, TRUSTED).trigger, channel, "ev", {"ok": True})
        assert (await inbox.next()).args == [{"ok": True}]
        # The authorization is for this session only.
        other = await joiner.join(TRUSTED["id"])
        with pytest.raises(ApplicationError) as err:
            await within(other.subscribe(lambda *a: None, channel), "ERROR in another session")
        assert err.value.error == NOT_AUTHORIZED
    scenario(herald, serializer, body)


def test_presence_channel_opened_by_pusher_authorize_with_channel_data(herald, serializer):
    channel = f"presence-{uid('authz')}"

    async def body(joiner, watcher):
        session = await joiner.join(TRUSTED["id"])
        socket_id = welcome_of(session)["authextra"]["socket_id"]
        member = json.dumps({"user_id": "u-42", "user_info": {"name": "Forty Two"}})
        forged = json.dumps({"user_id": "admin"})
        with pytest.raises(ApplicationError) as err:
            # Signed for one member, presented with another.
            await within(session.call("herald.pusher.authorize", channel,
                                      channel_auth(TRUSTED, socket_id, channel, member), forged), "ERROR")
        assert err.value.error == NOT_AUTHORIZED
        await within(session.call("herald.pusher.authorize", channel,
                                  channel_auth(TRUSTED, socket_id, channel, member), member), "RESULT")
        await within(session.subscribe(lambda *a: None, channel), "SUBSCRIBED")
        await members_seen(herald, TRUSTED, watcher, channel, {"user_id": "u-42", "user_info": {"name": "Forty Two"}},
                           ["u-42", "watcher"])
    watched_scenario(herald, serializer, TRUSTED, channel, {"user_id": "watcher"}, body)
