"""App A's credentials against app B: HTTP API writes and reads, Pusher channel signatures,
and WAMP realms. Apps share one process and one port, never a channel."""

from __future__ import annotations

import json

import pytest
from autobahn.wamp.types import PublishOptions

from conftest import APP_A, APP_B, APP_C, TICKET
from sec_clients import (Aborted, Inbox, api_request, channel_auth, control, encode_query, join, publish, sdk,
                         signed_query, uid, wamp)


@pytest.mark.parametrize("creds", ["key-and-secret-of-a", "key-of-b-secret-of-a", "key-of-a-secret-of-b"])
def test_http_api_write_to_another_app_is_401(main, subs, creds):
    channel = uid("sec-cross")
    victim = subs(APP_B)
    victim.join(channel)
    control(main, APP_B, channel, victim)
    override = {
        "key-and-secret-of-a": {"key": APP_A["key"], "secret": APP_A["secret"]},
        "key-of-b-secret-of-a": {"secret": APP_A["secret"]},
        "key-of-a-secret-of-b": {"key": APP_A["key"]},
    }[creds]
    with pytest.raises(Exception) as refused:
        sdk(main, APP_B, **override).trigger(channel, "server-event", {"forged": True})
    assert "401" in repr(refused.value) or "auth" in type(refused.value).__name__.lower(), repr(refused.value)
    path = f"/apps/{APP_B['id']}/events"
    body = json.dumps({"name": "server-event", "channel": channel, "data": "{}"}).encode()
    signer = {**APP_B, **override}
    status, text = api_request(main, "POST", path, body=body,
                               query=encode_query(signed_query("POST", path, body=body, app=signer)))
    assert status == 401, (status, text)
    victim.quiet(channel)


@pytest.mark.parametrize("endpoint", ["channels", "channels/{channel}", "channels/presence-{channel}/users"])
def test_http_api_read_of_another_app_is_401(main, subs, endpoint):
    channel = uid("sec-read")
    victim = subs(APP_B)
    victim.join(channel)
    path = f"/apps/{APP_B['id']}/" + endpoint.format(channel=channel)
    status, text = api_request(main, "GET", path, query=encode_query(signed_query("GET", path, app=APP_A)))
    assert status == 401, (status, text)
    assert channel not in text
    # Control: B's own signature reads the same endpoint.
    status, text = api_request(main, "GET", path, query=encode_query(signed_query("GET", path, app=APP_B)))
    assert status in (200, 400), (status, text)


def test_publishing_in_app_a_never_reaches_app_b(main, subs):
    """The same channel name in two apps: A's signed event stays in A."""
    channel = uid("sec-same-name")
    in_a, in_b = subs(APP_A), subs(APP_B)
    in_a.join(channel)
    in_b.join(channel)
    control(main, APP_B, channel, in_b)
    control(main, APP_A, channel, in_a)
    publish(main, APP_A, channel, "server-event", {"for": "a only"})
    in_a.expect(channel, "server-event")
    in_b.quiet(channel)


@pytest.mark.parametrize("forgery", ["signed-by-a", "key-of-b-signed-by-a"])
def test_private_channel_of_app_b_with_app_a_signature_is_refused(main, subs, pjs, forgery):
    channel = f"private-{uid('sec-cross')}"
    victim = subs(APP_B)
    victim.join(channel)
    attacker = pjs(APP_B)
    auth = channel_auth(APP_A, attacker.socket_id, channel)
    if forgery == "key-of-b-signed-by-a":
        auth = f"{APP_B['key']}:{auth.split(':', 1)[1]}"
    answer = attacker.subscribe(channel, auth=auth)
    assert answer["type"] == "subscription_error", answer
    control(main, APP_B, channel, victim)
    attacker.quiet(channel)


def test_wamp_ticket_of_app_a_is_refused_in_realm_b(main):
    async def attack():
        with pytest.raises(Aborted) as refused:
            await join(main.port, APP_B["id"], authmethods=["ticket"], authid="alice",
                       on_challenge=lambda c: TICKET["alice"])
        assert refused.value.reason in ("wamp.error.no_auth_method", "wamp.error.not_authorized"), refused.value
        # Control: the same ticket opens realm A.
        session = await join(main.port, APP_A["id"], authmethods=["ticket"], authid="alice",
                             on_challenge=lambda c: TICKET["alice"])
        assert session.is_attached()

    wamp(attack)


def test_realm_of_an_app_without_wamp_does_not_exist(main):
    async def attack():
        for methods in (None, ["ticket"]):
            with pytest.raises(Aborted) as refused:
                await join(main.port, APP_C["id"], authmethods=methods, authid="alice",
                           on_challenge=lambda c: TICKET["alice"])
            assert refused.value.reason == "wamp.error.no_such_realm", refused.value
        with pytest.raises(Aborted) as refused:
            await join(main.port, APP_A["key"])  # a key is not a realm
        assert refused.value.reason == "wamp.error.no_such_realm", refused.value

    wamp(attack)


def test_wamp_session_of_realm_b_never_sees_app_a(main):
    topic = uid("sec.realm")

    async def attack():
        in_b = await join(main.port, APP_B["id"])
        inbox = Inbox()
        await in_b.subscribe(inbox, topic)
        publish(main, APP_B, topic, "control", {"legit": True})
        await inbox.next()
        publish(main, APP_A, topic, "server-event", {"for": "a only"})
        alice = await join(main.port, APP_A["id"], authmethods=["ticket"], authid="alice",
                           on_challenge=lambda c: TICKET["alice"])
        await alice.publish(topic, {"for": "a only"}, options=PublishOptions(acknowledge=True))
        await inbox.quiet()

    wamp(attack)
