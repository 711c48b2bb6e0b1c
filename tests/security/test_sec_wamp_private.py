"""Pusher private and presence channels from WAMP without a grant: anonymous, trusted and
authenticated-but-not-granted sessions are refused, prefix subscriptions never match them, and
`herald.pusher.authorize` admits only the app's own signature for this session's socket id."""

from __future__ import annotations

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions, SubscribeOptions

from conftest import APP_A, APP_T, TICKET
from sec_clients import Inbox, channel_auth, join, member, publish, uid, wamp

PRIVATE_PREFIXES = ["private-", "presence-", "private-encrypted-"]


async def _alice():
    return await join(_alice.port, APP_A["id"], authmethods=["ticket"], authid="alice",
                      on_challenge=lambda c: TICKET["alice"])


@pytest.fixture(autouse=True)
def _port(main):
    _alice.port = main.port


async def _refused(coro, uri: str | None = "wamp.error.not_authorized"):
    """The request is answered with ERROR `uri` (any ERROR when None)."""
    with pytest.raises(ApplicationError) as refused:
        await coro
    assert uri is None or refused.value.error == uri, refused.value
    return refused.value


@pytest.mark.parametrize("prefix", PRIVATE_PREFIXES)
@pytest.mark.parametrize("who", ["anonymous", "trusted", "authenticated-without-grant"])
def test_wamp_subscribe_to_private_channel_without_grant_is_refused(main, subs, who, prefix):
    app = APP_T if who == "trusted" else APP_A
    channel = f"{prefix}{uid('sec-wp')}"
    public = uid("sec-wp-public")

    async def attack():
        if who == "authenticated-without-grant":
            session = await _alice()
        else:
            session = await join(main.port, app["id"])
        inbox = Inbox()
        await _refused(session.subscribe(inbox, channel))
        # Control: the same session does receive a public channel.
        await session.subscribe(inbox, public)
        publish(main, app, public, "control", {"legit": True})
        await inbox.next()
        if not prefix.startswith("private-encrypted-"):
            publish(main, app, channel, "secret", {"members": "only"})
        await inbox.quiet()

    wamp(attack)


@pytest.mark.parametrize("prefix", ["presence-", "private-"])
def test_wamp_publish_to_private_channel_without_grant_is_refused(main, subs, prefix):
    """The trusted role may publish anywhere public, not into a private or presence channel."""
    channel = f"{prefix}{uid('sec-wp-pub')}"
    victim = subs(APP_T)
    victim.join(channel, member("victim") if prefix == "presence-" else None)
    publish(main, APP_T, channel, "control", {"legit": True})
    victim.expect(channel, "control")

    async def attack():
        session = await join(main.port, APP_T["id"])
        await _refused(session.publish(channel, {"forged": True}, options=PublishOptions(acknowledge=True)))

    wamp(attack)
    victim.quiet(channel)


@pytest.mark.parametrize("match", ["prefix", "wildcard"])
def test_pattern_subscription_never_matches_private_channels(main, match):
    suffix = uid("wp")
    public, private, presence = f"pr.{suffix}", f"private-sec.{suffix}", f"presence-sec.{suffix}"
    pattern = "pr" if match == "prefix" else f".{suffix}"

    async def attack():
        session = await join(main.port, APP_T["id"])
        inbox = Inbox()
        await session.subscribe(inbox, pattern, options=SubscribeOptions(match=match, details_arg="details"))
        publish(main, APP_T, private, "secret", {"members": "only"})
        publish(main, APP_T, presence, "secret", {"members": "only"})
        publish(main, APP_T, public, "control", {"legit": True})
        topic, _, _ = await inbox.next()
        assert topic == public, f"the first event matched by {match} '{pattern}' came from {topic}"
        await inbox.quiet()

    wamp(attack)


@pytest.mark.parametrize("forgery", ["wrong-secret", "other-socket-id", "other-app", "other-channel", "key-only"])
def test_pusher_authorize_with_a_forged_signature_is_refused(main, subs, forgery):
    channel = f"private-{uid('sec-authz')}"
    victim = subs()

    async def attack():
        session = await _alice()
        socket_id = session.joined.result().authextra["socket_id"]
        auth = {
            "wrong-secret": channel_auth(APP_A, socket_id, channel, secret="z" * 40),
            "other-socket-id": channel_auth(APP_A, victim.socket_id, channel),
            "other-app": channel_auth(APP_T, socket_id, channel),
            "other-channel": channel_auth(APP_A, socket_id, channel + "x"),
            "key-only": f"{APP_A['key']}:",
        }[forgery]
        await _refused(session.call("herald.pusher.authorize", channel, auth))
        inbox = Inbox()
        await _refused(session.subscribe(inbox, channel))
        # Control: the right signature for this session opens the channel.
        await session.call("herald.pusher.authorize", channel, channel_auth(APP_A, socket_id, channel))
        await session.subscribe(inbox, channel)
        publish(main, APP_A, channel, "control", {"legit": True})
        await inbox.next()

    wamp(attack)


def test_pusher_authorize_cannot_claim_another_presence_member(main, subs):
    channel = f"presence-{uid('sec-authz-presence')}"
    victim = subs()
    victim.join(channel, member("victim"))

    async def attack():
        session = await _alice()
        socket_id = session.joined.result().authextra["socket_id"]
        claimed = member("admin", role="admin")
        for auth in (channel_auth(APP_A, socket_id, channel, member("alice")),
                     channel_auth(APP_A, victim.socket_id, channel, claimed)):
            await _refused(session.call("herald.pusher.authorize", channel, auth, claimed))
        inbox = Inbox()
        await _refused(session.subscribe(inbox, channel))

    wamp(attack)
    # Control: a legitimate member reaches the victim, and it is the first one.
    honest = subs()
    honest.join(channel, member("bob"))
    added = victim.expect(channel, "pusher_internal:member_added")
    assert "bob" in str(added["data"]), added
    victim.quiet(channel)
    honest.shutdown()


def test_wamp1_anonymous_subscription_to_private_channel_gets_nothing(main):
    from sec_clients import Wamp1Client
    channel = f"private-{uid('sec-v1-private')}"
    public = uid("sec-v1-public")
    client = Wamp1Client(main.v1_port)
    try:
        client.subscribe(channel, public)
        publish(main, APP_A, channel, "secret", {"members": "only"})
        publish(main, APP_A, public, "control", {"legit": True})
        assert client.expect(lambda m: m[0] == 8, what="an EVENT")[1] == public
        client.sync()
        assert client.events(channel) == []
    finally:
        client.close()


def test_presence_from_wamp_role_grant_uses_the_authid_not_the_clients_claim(main, subs):
    """Without a role permission and without a signature, channel_data alone opens nothing."""
    channel = f"presence-{uid('sec-claim')}"

    async def attack():
        session = await _alice()
        await _refused(session.call("herald.pusher.authorize", channel, "", member("admin")))

    wamp(attack)


@pytest.mark.parametrize("procedure", ["herald.pusher.authorize", "herald.anything"])
def test_no_session_may_register_a_herald_procedure(main, procedure):
    """Even the trusted role cannot stand in for herald's own channel-signature check."""
    async def attack():
        session = await join(main.port, APP_T["id"])
        await _refused(session.register(lambda *a: True, procedure), uri=None)

    wamp(attack)
