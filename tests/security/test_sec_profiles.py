"""EspoCRM's and Oro's topics from herald's main listener: a Pusher client of the profile's app
is closed with 4001 (as for an unknown key) and its WAMP v2 realm does not exist, even with
`wamp = true` on the app; meanwhile the profile's own clients keep receiving (the controls). On
Oro's listener, expired and wrong-secret sync tickets are refused.

Uses the EspoCRM fixture (tests/fixtures/espo: fake EspoCRM root, php-zmq sender) and the Oro
fixture (tests/fixtures/oro: ticket.php, backend_client.php)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import urllib.parse

import pytest

import sec_launch
from rawws import TEXT, frame
from sec_clients import Aborted, ConnectionClosed, RawWebSocket, join, uid, upgrade_status, wamp
from sec_launch import WAIT_S, start

ORO_FIXTURES = sec_launch.TESTS / "fixtures" / "oro"


def pusher_refusal(port: int, key: str, pipelined: str | None = None) -> tuple[list, int | None]:
    """A raw Pusher connection to `key` (optionally with a subscribe pipelined behind the
    upgrade): every message it read, and the close code."""
    extra = frame(TEXT, json.dumps({"event": "pusher:subscribe", "data": {"channel": pipelined}}).encode()) \
        if pipelined else b""
    ws = RawWebSocket(port, f"/app/{key}?protocol=7&client=sec&version=1.0", extra=extra)
    seen = []
    try:
        while True:
            try:
                opcode, payload = ws.recv_message(WAIT_S)
            except ConnectionClosed:
                return seen, None
            if opcode == 0x8:
                return seen, int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
            if opcode == TEXT:
                seen.append(json.loads(payload))
    finally:
        ws.sock.close()


# --- EspoCRM -----------------------------------------------------------------------------------

ESPO_APP = {"id": "8301", "key": "sec-espo-key",
            "secret": hashlib.sha256(b"sec-espo").hexdigest()[:40], "wamp": True}


# A second app with WAMP v2 on, so that the main listener does serve WAMP v2 and the profile's
# realm is refused at HELLO.
OTHER_WAMP_APP = {"id": "8302", "key": "sec-other-key",
                  "secret": hashlib.sha256(b"sec-other").hexdigest()[:40], "wamp": True}


@pytest.fixture(scope="module")
def espo():
    from espo_harness import EspoHerald, base_espocrm
    server = EspoHerald(base_espocrm(app=ESPO_APP["id"]), apps=[ESPO_APP, OTHER_WAMP_APP])
    yield server
    server.stop()


def _espo_victim(espo, topic: str):
    victim = espo.client("u1")
    espo.subscribe_approved(victim, topic)
    return victim


def test_espo_topics_are_closed_to_pusher_on_the_main_listener(espo):
    victim = _espo_victim(espo, "appParamsUpdate")
    seen, code = pusher_refusal(espo.port, ESPO_APP["key"], pipelined="appParamsUpdate")
    assert code == 4001, (code, seen)
    assert all(m.get("event") == "pusher:error" for m in seen), seen
    marker = uid("m")
    espo.push(json.dumps({"topicId": "appParamsUpdate", "marker": marker}))
    assert victim.expect_event("appParamsUpdate")["marker"] == marker
    victim.close()


def test_espo_realm_does_not_exist_for_wamp_v2_even_with_wamp_on(espo):
    async def attack():
        assert (await join(espo.port, OTHER_WAMP_APP["id"])).is_attached()  # control: WAMP v2 is served
        for methods in (None, ["anonymous"], ["ticket"]):
            with pytest.raises(Aborted) as refused:
                await join(espo.port, ESPO_APP["id"], authmethods=methods, authid="u1",
                           on_challenge=lambda c: "0a1b2c3d4e5f60718293a4b5c6d7e8f9")
            assert refused.value.reason == "wamp.error.no_such_realm", refused.value

    victim = _espo_victim(espo, "newNotification")
    wamp(attack)
    espo.push(json.dumps({"topicId": "newNotification", "n": 1}))
    assert victim.expect_event("newNotification") == {"topicId": "newNotification", "n": 1}
    victim.close()


def test_wamp_v2_hello_for_a_profile_realm_is_no_such_realm_when_it_is_the_only_app():
    """The contract's answer for a profile's realm is ABORT no_such_realm at HELLO; a WAMP v2
    upgrade from a client without an Origin header is not refused for its origin."""
    from espo_harness import EspoHerald
    server = EspoHerald(apps=[ESPO_APP])
    try:
        status = upgrade_status(server.port, "/ws", protocol="wamp.2.json")
        assert status == 101, f"the WAMP v2 upgrade (no Origin header) was answered {status}, not 101"

        async def attack():
            with pytest.raises(Aborted) as refused:
                await join(server.port, ESPO_APP["id"])
            assert refused.value.reason == "wamp.error.no_such_realm", refused.value

        wamp(attack)
    finally:
        server.stop()


# --- Oro ---------------------------------------------------------------------------------------

ORO_SECRET = hashlib.sha256(b"sec-oro").hexdigest()[:40]
ORO_LABEL = "oro, app oro"


def ticket(secret: str = ORO_SECRET, *options: str) -> str:
    out = subprocess.run(["php", str(ORO_FIXTURES / "ticket.php"), secret, *options], capture_output=True,
                         text=True, timeout=60, check=True)
    return out.stdout


def ticket_path(t: str) -> str:
    return "/?ticket=" + urllib.parse.quote(t, safe="")


@pytest.fixture(scope="module")
def oro():
    env = {"ORO_SECRET": ORO_SECRET, "HERALD__SERVER__HOST": "127.0.0.1", "HERALD__SERVER__PORT": "0"}
    doc = {"apps": [{"id": "oro", "key": "oro", "secret": ORO_SECRET, "wamp": True}, OTHER_WAMP_APP],
           "oro": {"application_url": "http://127.0.0.1", "state_poll_interval": 0}}
    server = start(doc, labels=(ORO_LABEL,), env=env, args=["--profile", "oro"])
    server.oro_port = server.labelled[ORO_LABEL]
    yield server
    server.stop()


class OroClient(RawWebSocket):
    """A WAMP v1 client of Oro's listener, as a browser from an admitted origin."""

    def __init__(self, port: int, path: str, pipelined: list | None = None):
        extra = b"".join(frame(TEXT, json.dumps(m).encode()) for m in (pipelined or []))
        super().__init__(port, path, headers={"Origin": "http://127.0.0.1", "Sec-WebSocket-Protocol": "wamp"},
                         extra=extra)
        self.messages: list = []

    def read(self, timeout: float = WAIT_S):
        """The next text message (JSON when it parses, else the text); None once closed."""
        while True:
            try:
                opcode, payload = self.recv_message(timeout)
            except ConnectionClosed:
                return None
            if opcode == 0x8:
                return None
            if opcode == TEXT:
                text = payload.decode("utf-8", "replace")
                try:
                    msg = json.loads(text)
                except ValueError:
                    msg = text
                self.messages.append(msg)
                return msg

    def until(self, pred, what: str):
        while True:
            msg = self.read()
            assert msg is not None, f"closed before {what}; read {self.messages}"
            if pred(msg):
                return msg


def _oro_subscriber(oro, topic: str) -> OroClient:
    sub = OroClient(oro.oro_port, ticket_path(ticket()))
    sub.until(lambda m: isinstance(m, list) and m[:1] == [0], "WELCOME")
    sub.text(json.dumps([5, topic]))
    sub.text(json.dumps([2, "barrier", "oro/ping"]))
    sub.until(lambda m: isinstance(m, list) and m[:2] == [4, "barrier"], "the barrier's CALLERROR")
    return sub


def _backend_publish(oro, topic: str, payload: dict):
    out = subprocess.run(["php", str(ORO_FIXTURES / "backend_client.php"), "127.0.0.1", str(oro.oro_port),
                          ticket_path(ticket()), topic, json.dumps(payload)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("connected"), out


def test_oro_topics_are_closed_to_pusher_and_wamp_v2_on_the_main_listener(oro):
    topic = "oro/data/update"
    sub = _oro_subscriber(oro, topic)
    try:
        seen, code = pusher_refusal(oro.port, "oro")
        assert code == 4001, (code, seen)

        async def attack():
            assert (await join(oro.port, OTHER_WAMP_APP["id"])).is_attached()  # control
            with pytest.raises(Aborted) as refused:
                await join(oro.port, "oro")
            assert refused.value.reason == "wamp.error.no_such_realm", refused.value

        wamp(attack)
        marker = uid("m")
        _backend_publish(oro, topic, {"marker": marker})
        got = sub.until(lambda m: isinstance(m, list) and m[:2] == [8, topic], "the backend's event")
        assert got[2] == {"marker": marker}, got
    finally:
        sub.sock.close()


@pytest.mark.parametrize("case", ["expired", "wrong-secret", "from-the-future", "absent"])
def test_oro_expired_or_wrong_secret_ticket_is_refused(oro, case):
    topic = "oro/data/update"
    path = {
        "expired": ticket_path(ticket(ORO_SECRET, "--offset=-400")),
        "wrong-secret": ticket_path(ticket(hashlib.sha256(b"not oro's").hexdigest()[:40])),
        "from-the-future": ticket_path(ticket(ORO_SECRET, "--offset=120")),
        "absent": "/",
    }[case]
    sub = _oro_subscriber(oro, topic)
    attacker = OroClient(oro.oro_port, path, pipelined=[[5, topic]])
    try:
        while attacker.read() is not None:
            pass
        assert any(isinstance(m, str) and "403" in m for m in attacker.messages), attacker.messages
        marker = uid("m")
        _backend_publish(oro, topic, {"marker": marker})
        sub.until(lambda m: isinstance(m, list) and m[:2] == [8, topic] and m[2] == {"marker": marker},
                  "the control event")
        assert not [m for m in attacker.messages if isinstance(m, list) and m[:1] == [8]], attacker.messages
    finally:
        attacker.sock.close()
        sub.sock.close()
