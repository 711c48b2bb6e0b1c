"""Replayed, expired and wrong-secret credentials, for every way herald authenticates: Pusher
private/presence channel signatures, HTTP API signatures, WAMP-Ticket, WAMP-CRA, WAMP-Cryptosign
(and the WAMP handshake itself). Each refusal is paired with the same method succeeding."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from autobahn.wamp import auth as wamp_auth

from conftest import APP_A, CRA, SALT, SEED, TICKET
from sec_clients import (Aborted, RawWamp2, api_request, channel_auth, control, cryptosign_pubkey,
                         cryptosign_signature, encode_query, join, member, signed_query, uid, wamp)
from sec_launch import start

REALM = APP_A["id"]


def _aborted(reason: str, *fragments: str):
    """Asserts a join raises ABORT `reason` whose message contains every fragment."""
    async def check(coro):
        with pytest.raises(Aborted) as refused:
            await coro
        assert refused.value.reason == reason, refused.value
        for fragment in fragments:
            assert fragment in refused.value.message, refused.value
        return refused.value
    return check


# --- Pusher channel signatures -----------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["private-", "presence-"])
@pytest.mark.parametrize("case", ["replayed-from-another-socket", "wrong-secret", "other-channel"])
def test_pusher_channel_auth_replayed_or_wrong_secret_is_refused(main, subs, pjs, prefix, case):
    channel = f"{prefix}{uid('sec-cred')}"
    data = member("mallory") if prefix == "presence-" else None
    victim = subs()
    victim.join(channel, member("victim") if data else None)
    attacker = pjs()
    auth = {
        # Taken from a legitimate socket (the victim's own signature).
        "replayed-from-another-socket": channel_auth(APP_A, victim.socket_id, channel, data),
        "wrong-secret": channel_auth(APP_A, attacker.socket_id, channel, data, secret="w" * 40),
        "other-channel": channel_auth(APP_A, attacker.socket_id, channel + "-other", data),
    }[case]
    answer = attacker.subscribe(channel, auth=auth, channel_data=data)
    assert answer["type"] == "subscription_error", answer
    control(main, APP_A, channel, victim)
    attacker.quiet(channel)
    victim.quiet(channel)  # no member_added for the refused attacker


def test_pusher_channel_auth_after_reconnect_is_refused(main, subs):
    """A signature is bound to a socket id: after a reconnect the old one is worthless."""
    channel = f"private-{uid('sec-reconnect')}"
    first = subs()
    old_auth = channel_auth(APP_A, first.socket_id, channel)
    first.join(channel, auth=old_auth)
    first.shutdown()
    second = subs()
    assert second.refused(channel, old_auth) == 401
    fresh = subs()
    fresh.join(channel)
    control(main, APP_A, channel, fresh)  # a legitimate subscriber gets events
    second.quiet(channel)


# --- HTTP API ----------------------------------------------------------------------------------


@pytest.mark.parametrize("age", [601, 3600, 86400 * 30])
def test_http_api_request_replayed_after_the_window_is_401(main, subs, age):
    """A captured, correctly signed request is refused once its timestamp is 600 s old."""
    channel = uid("sec-old")
    victim = subs()
    victim.join(channel)
    control(main, APP_A, channel, victim)
    path = f"/apps/{APP_A['id']}/events"
    body = json.dumps({"name": "server-event", "channel": channel, "data": "{}"}).encode()
    captured = encode_query(signed_query("POST", path, body=body, app=APP_A, timestamp=int(time.time()) - age))
    status, text = api_request(main, "POST", path, query=captured, body=body)
    assert status == 401, (status, text)
    victim.quiet(channel)


# --- WAMP-Ticket -------------------------------------------------------------------------------


def test_wamp_ticket_wrong_or_unknown_is_refused(main):
    async def attack():
        await _aborted("wamp.error.not_authorized", "ticket in static WAMP-Ticket authentication is invalid")(
            join(main.port, REALM, authmethods=["ticket"], authid="alice", on_challenge=lambda c: "guess"))
        await _aborted("wamp.error.not_authorized", 'no principal with authid "mallory" exists')(
            join(main.port, REALM, authmethods=["ticket"], authid="mallory", on_challenge=lambda c: TICKET["alice"]))
        # A ticket of the app's secret, or another method's secret, is not the ticket.
        for guess in (APP_A["secret"], CRA["carol"], ""):
            await _aborted("wamp.error.not_authorized")(
                join(main.port, REALM, authmethods=["ticket"], authid="alice", on_challenge=lambda c, g=guess: g))
        session = await join(main.port, REALM, authmethods=["ticket"], authid="alice",
                             on_challenge=lambda c: TICKET["alice"])
        details = session.joined.result()
        assert (details.authid, details.authrole, details.authmethod) == ("alice", "backend", "ticket"), details

    wamp(attack)


# --- WAMP-CRA ----------------------------------------------------------------------------------


def _cra(secret: str, salted: bool = False):
    def answer(challenge):
        key = secret.encode()
        if salted:
            extra = challenge.extra
            key = wamp_auth.derive_key(secret.encode(), extra["salt"].encode(), extra["iterations"], extra["keylen"])
        return wamp_auth.compute_wcs(key, challenge.extra["challenge"].encode()).decode()
    return answer


def test_wampcra_wrong_secret_is_refused(main):
    async def attack():
        await _aborted("wamp.error.not_authorized", "WAMP-CRA client signature is invalid")(
            join(main.port, REALM, authmethods=["wampcra"], authid="carol", on_challenge=_cra(CRA["sally"])))
        # The salted principal answered with its secret unsalted.
        await _aborted("wamp.error.not_authorized", "WAMP-CRA client signature is invalid")(
            join(main.port, REALM, authmethods=["wampcra"], authid="sally", on_challenge=_cra(CRA["sally"])))
        await _aborted("wamp.error.not_authorized", 'no principal with authid "mallory" exists')(
            join(main.port, REALM, authmethods=["wampcra"], authid="mallory", on_challenge=_cra(CRA["carol"])))
        carol = await join(main.port, REALM, authmethods=["wampcra"], authid="carol", on_challenge=_cra(CRA["carol"]))
        sally = await join(main.port, REALM, authmethods=["wampcra"], authid="sally",
                           on_challenge=_cra(CRA["sally"], salted=True))
        for session, who in ((carol, "carol"), (sally, "sally")):
            details = session.joined.result()
            assert (details.authid, details.authrole, details.authmethod) == (who, "backend", "wampcra"), details

    wamp(attack)


async def _replay_is_refused(main, sign, refusal: str, what: str, **hello) -> tuple[dict, dict]:
    """Joins once answering with `sign`, then answers a second CHALLENGE with that same signature:
    ABORT not_authorized with `refusal`, over a fresh challenge. Returns (first, second) challenge."""
    captured = {}

    def capture(challenge):
        captured["challenge"] = challenge.extra["challenge"]
        captured["signature"] = sign(challenge)
        return captured["signature"]

    await join(main.port, REALM, on_challenge=capture, **hello)
    fresh = {}

    def replay(challenge):
        fresh["challenge"] = challenge.extra["challenge"]
        return captured["signature"]

    await _aborted("wamp.error.not_authorized", refusal)(join(main.port, REALM, on_challenge=replay, **hello))
    assert fresh["challenge"] != captured["challenge"], f"herald repeated a {what} challenge"
    return captured, fresh


def test_wampcra_replayed_signature_is_refused(main):
    async def attack():
        captured, fresh = await _replay_is_refused(main, _cra(CRA["carol"]), "WAMP-CRA client signature is invalid",
                                                   "WAMP-CRA", authmethods=["wampcra"], authid="carol")
        nonce = json.loads(fresh["challenge"]).get("nonce")
        assert nonce and nonce != json.loads(captured["challenge"]).get("nonce")

    wamp(attack)


# --- WAMP-Cryptosign ---------------------------------------------------------------------------


def _signer(seed: bytes):
    return lambda challenge: cryptosign_signature(seed, challenge.extra["challenge"])


def test_cryptosign_wrong_key_or_unauthorized_key_is_refused(main):
    dave, eve = cryptosign_pubkey(SEED["dave"]), cryptosign_pubkey(SEED["eve"])

    async def attack():
        # eve claims dave's public key and signs with her own.
        await _aborted("wamp.error.not_authorized", "signed message has invalid signature")(
            join(main.port, REALM, authmethods=["cryptosign"], authid="dave", authextra={"pubkey": dave},
                 on_challenge=_signer(SEED["eve"])))
        # eve's own key is not among dave's authorized keys.
        await _aborted("wamp.error.not_authorized")(
            join(main.port, REALM, authmethods=["cryptosign"], authid="dave", authextra={"pubkey": eve},
                 on_challenge=_signer(SEED["eve"])))
        # A signature over something else than the challenge.
        await _aborted("wamp.error.not_authorized", "signed message has invalid signature")(
            join(main.port, REALM, authmethods=["cryptosign"], authid="dave", authextra={"pubkey": dave},
                 on_challenge=lambda c: cryptosign_signature(SEED["dave"], "00" * 32)))
        session = await join(main.port, REALM, authmethods=["cryptosign"], authid="dave",
                             authextra={"pubkey": dave}, on_challenge=_signer(SEED["dave"]))
        details = session.joined.result()
        assert (details.authid, details.authrole, details.authmethod) == ("dave", "backend", "cryptosign"), details

    wamp(attack)


def test_cryptosign_replayed_signature_is_refused(main):
    dave = cryptosign_pubkey(SEED["dave"])

    async def attack():
        await _replay_is_refused(main, _signer(SEED["dave"]), "signed message has invalid signature", "Cryptosign",
                                 authmethods=["cryptosign"], authid="dave", authextra={"pubkey": dave})

    wamp(attack)


# --- the handshake -----------------------------------------------------------------------------


def test_anonymous_session_is_refused_where_the_anonymous_role_is_empty(main):
    from conftest import APP_N

    async def attack():
        with pytest.raises(Aborted) as refused:
            await join(main.port, APP_N["id"])
        assert refused.value.reason in ("wamp.error.not_authorized", "wamp.error.no_auth_method"), refused.value
        with pytest.raises(Aborted) as refused:
            await join(main.port, APP_N["id"], authmethods=["anonymous"])
        assert refused.value.reason in ("wamp.error.not_authorized", "wamp.error.no_auth_method"), refused.value
        session = await join(main.port, APP_N["id"], authmethods=["anonymous", "ticket"], authid="alice",
                             on_challenge=lambda c: TICKET["alice"])
        assert session.joined.result().authmethod == "ticket"

    wamp(attack)


def test_authenticate_without_challenge_or_twice_is_a_protocol_violation(main):
    early = RawWamp2(main.port)
    try:
        early.send_msg([5, TICKET["alice"], {}])
        answer = early.recv_msg()
        assert answer is not None and answer[0] == 3 and answer[2] == "wamp.error.protocol_violation", answer
    finally:
        early.sock.close()
    twice = RawWamp2(main.port)
    try:
        twice.send_msg([1, REALM, {"roles": {"subscriber": {}}, "authmethods": ["ticket"], "authid": "alice"}])
        challenge = twice.recv_msg()
        assert challenge[:2] == [4, "ticket"], challenge
        twice.send_msg([5, TICKET["alice"], {}])
        welcome = twice.recv_msg()
        assert welcome[0] == 2, welcome
        twice.send_msg([5, TICKET["alice"], {}])
        answer = twice.recv_msg()
        assert answer is None or answer[0] in (3, 6), answer  # ABORT (or GOODBYE), then closed
        if answer is not None:
            assert "protocol_violation" in json.dumps(answer), answer
    finally:
        twice.sock.close()


def test_challenge_left_unanswered_expires():
    """AUTHENTICATE after challenge_timeout_ms: herald aborts with "challenge expired"."""
    app = {**APP_A, "wamp": True,
           "wamp_roles": [{"name": "backend", "permissions": [{"uri": "sec", "match": "prefix",
                                                                "allow": {"subscribe": True}}]}],
           "wamp_auth": {"challenge_timeout_ms": 400,
                         "ticket": {"principals": {"alice": {"role": "backend", "ticket": TICKET["alice"]}}}}}
    server = start({"apps": [app]})
    try:
        async def attack():
            never = asyncio.get_running_loop().create_future()
            await _aborted("wamp.error.authentication_failed", "challenge expired")(
                join(server.port, REALM, authmethods=["ticket"], authid="alice", on_challenge=lambda c: never))
            session = await join(server.port, REALM, authmethods=["ticket"], authid="alice",
                                 on_challenge=lambda c: TICKET["alice"])
            assert session.is_attached()

        wamp(attack)
    finally:
        server.stop()
