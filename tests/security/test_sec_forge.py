"""Forging a server event through every protocol. Each attacker is refused and the victim, after
a legitimate event proved it listens, receives nothing."""

from __future__ import annotations

import time

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions

from conftest import APP_A, APP_B, APP_T
from sec_clients import (Wamp1Client, api_request, channel_auth, control, encode_query, join, member, sdk,
                         signed_query, uid, wamp)

# --- WAMP v2 -----------------------------------------------------------------------------------


@pytest.mark.parametrize("serializer", ["json", "msgpack"])
def test_anonymous_wamp2_publish_is_refused(main, subs, serializer):
    channel = uid("sec-forge-v2")
    victim = subs()
    victim.join(channel)
    control(main, APP_A, channel, victim)

    async def attack():
        session = await join(main.port, APP_A["id"], serializer=serializer)
        with pytest.raises(ApplicationError) as refused:
            await session.publish(channel, {"forged": 1}, options=PublishOptions(acknowledge=True))
        assert refused.value.error == "wamp.error.not_authorized", refused.value
        assert "not authorized to publish" in str(refused.value.args), refused.value.args
        # Without acknowledgement the publish is dropped silently; the acknowledged one after it
        # is answered only once the first was handled.
        session.publish(channel, {"forged": 2}, event="server-event")
        with pytest.raises(ApplicationError):
            await session.publish(channel, {"forged": 3}, options=PublishOptions(acknowledge=True))

    wamp(attack)
    victim.quiet(channel)


def test_wamp2_publisher_cannot_forge_pusher_protocol_events(main, subs):
    """Even the trusted anonymous role may not publish `pusher:` / `pusher_internal:` events."""
    channel = uid("sec-forge-internal")
    victim = subs(APP_T)
    victim.join(channel)
    control(main, APP_T, channel, victim)

    async def attack():
        session = await join(main.port, APP_T["id"])
        for name in ("pusher_internal:member_added", "pusher:connection_established", "pusher:error"):
            with pytest.raises(ApplicationError) as refused:
                await session.publish(channel, {"user_id": "admin"}, event=name,
                                      options=PublishOptions(acknowledge=True))
            assert refused.value.error in ("wamp.error.invalid_argument", "wamp.error.not_authorized")
        with pytest.raises(ApplicationError):
            await session.publish("pusher:error", {"code": 4001}, options=PublishOptions(acknowledge=True))

    wamp(attack)
    victim.quiet(channel)


# --- WAMP v1 -----------------------------------------------------------------------------------


def test_anonymous_wamp1_publish_is_ignored(main, subs):
    channel = uid("sec-forge-v1")
    victim = subs()
    victim.join(channel)
    v1_victim = Wamp1Client(main.v1_port)
    attacker = Wamp1Client(main.v1_port)
    try:
        v1_victim.subscribe(channel)
        control(main, APP_A, channel, victim)
        v1_victim.expect_event(channel)
        attacker.publish(channel, {"forged": 1})
        attacker.publish(channel, {"forged": 2}, False)
        attacker.publish(channel, {"forged": 3}, [], [v1_victim.session_id])
        attacker.sync()  # every PUBLISH above was handled
        victim.quiet(channel)
        v1_victim.sync()
        assert v1_victim.events(channel) == [{"legit": True}], v1_victim.events(channel)
    finally:
        attacker.close()
        v1_victim.close()


# --- Pusher client events ----------------------------------------------------------------------


def test_client_event_on_public_channel_is_refused(main, subs, pjs):
    channel = uid("sec-public")
    victim = subs()
    victim.join(channel)
    attacker = pjs()
    assert attacker.subscribe(channel)["type"] == "subscribed"
    control(main, APP_A, channel, victim)
    attacker.wait(lambda r: r["type"] == "event" and r["channel"] == channel, "the control event in pusher-js")
    attacker.command(op="trigger", channel=channel, event="client-forged", data={"forged": True})
    attacker.error("pusher:error for a client event on a public channel")
    victim.quiet(channel)


def test_client_event_with_client_events_disabled_is_refused(main, subs, pjs):
    channel = f"private-{uid('sec-quiet')}"
    victim = subs(APP_B)
    victim.join(channel)
    attacker = pjs(APP_B)
    answer = attacker.subscribe(channel, auth=channel_auth(APP_B, attacker.socket_id, channel))
    assert answer["type"] == "subscribed", answer
    control(main, APP_B, channel, victim)
    attacker.command(op="trigger", channel=channel, event="client-forged", data={"forged": True})
    attacker.error("pusher:error for a client event with client events disabled")
    victim.quiet(channel)


@pytest.mark.parametrize("event", [
    "pusher_internal:member_added", "pusher_internal:subscription_succeeded", "pusher_internal:member_removed",
    "pusher:connection_established", "pusher:error", "pusher:subscription_succeeded",
])
def test_pusher_protocol_event_from_a_client_reaches_nobody(main, subs, pjs, event):
    """App A has client events on: a `client-` event is relayed (control), a protocol event is not."""
    channel = f"presence-{uid('sec-internal')}"
    victim = subs()
    victim.join(channel, member("victim"))
    attacker = pjs()
    data = member("mallory")
    answer = attacker.subscribe(channel, auth=channel_auth(APP_A, attacker.socket_id, channel, data), channel_data=data)
    assert answer["type"] == "subscribed", answer
    victim.expect(channel, "pusher_internal:member_added")
    attacker.command(op="trigger", channel=channel, event="client-hello", data={"ok": True})
    victim.expect(channel, "client-hello")
    attacker.command(op="send_event", event=event, channel=channel,
                     data={"user_id": "admin", "user_info": {"role": "admin"}, "socket_id": victim.socket_id})
    victim.quiet(channel)


# --- HTTP API ----------------------------------------------------------------------------------


def _forged_requests(app: dict, channel: str) -> tuple[dict[str, tuple[str, bytes]], bytes]:
    path = f"/apps/{app['id']}/events"
    body = b'{"name":"server-event","channel":"%s","data":"{\\"forged\\":true}"}' % channel.encode()
    now = int(time.time())
    good = signed_query("POST", path, body=body, app=app)
    sig = dict(good)["auth_signature"]
    return {
        "absent": (path, b""),
        "wrong-secret": (path, encode_query(signed_query("POST", path, body=body,
                                                         app={**app, "secret": "x" * 40})).encode()),
        "expired": (path, encode_query(signed_query("POST", path, body=body, app=app, timestamp=now - 601)).encode()),
        "future": (path, encode_query(signed_query("POST", path, body=body, app=app, timestamp=now + 3600)).encode()),
        "signature-of-another-body": (path, encode_query(
            [(k, v) for k, v in signed_query("POST", path, body=b"{}", app=app)]).encode()),
        "signature-stripped": (path, encode_query([(k, v) for k, v in good if k != "auth_signature"]).encode()),
        "signature-zeroed": (path, encode_query([(k, "0" * len(sig) if k == "auth_signature" else v)
                                                 for k, v in good]).encode()),
    }, body


@pytest.mark.parametrize("forgery", ["absent", "wrong-secret", "expired", "future", "signature-of-another-body",
                                     "signature-stripped", "signature-zeroed"])
def test_http_api_with_forged_absent_or_expired_signature_is_401(main, subs, forgery):
    channel = uid("sec-api")
    victim = subs()
    victim.join(channel)
    control(main, APP_A, channel, victim)
    requests, body = _forged_requests(APP_A, channel)
    path, query = requests[forgery]
    status, text = api_request(main, "POST", path, query=query.decode(), body=body)
    assert status == 401, (status, text)
    victim.quiet(channel)


def test_pypi_sdk_with_the_wrong_secret_is_refused(main, subs):
    channel = uid("sec-sdk")
    victim = subs()
    victim.join(channel)
    control(main, APP_A, channel, victim)
    with pytest.raises(Exception) as refused:
        sdk(main, APP_A, secret="not-the-secret-of-app-a-0123456789").trigger(channel, "server-event", {"x": 1})
    assert "401" in repr(refused.value) or "auth" in type(refused.value).__name__.lower(), repr(refused.value)
    victim.quiet(channel)


# --- presence ----------------------------------------------------------------------------------


@pytest.mark.parametrize("claim", ["signed-for-other-data", "replayed-from-another-socket", "no-signature"])
def test_claiming_another_users_presence_is_refused(main, subs, pjs, claim):
    channel = f"presence-{uid('sec-presence')}"
    victim = subs()
    victim.join(channel, member("victim"))
    alice_data = member("alice", role="admin")
    attacker = pjs()
    auth = {
        # mallory holds a valid signature for her own data and presents alice's.
        "signed-for-other-data": channel_auth(APP_A, attacker.socket_id, channel, member("mallory")),
        # alice's real signature, taken from alice's socket.
        "replayed-from-another-socket": channel_auth(APP_A, victim.socket_id, channel, alice_data),
        "no-signature": f"{APP_A['key']}:",
    }[claim]
    answer = attacker.subscribe(channel, auth=auth, channel_data=alice_data)
    assert answer["type"] == "subscription_error", answer
    # The control: a legitimate member's arrival reaches the victim.
    honest = subs()
    honest.join(channel, member("bob"))
    added = victim.expect(channel, "pusher_internal:member_added")
    assert "bob" in str(added["data"]), added
    victim.quiet(channel)
