"""WAMP v2 retained events (advanced profile "Event Retention") with autobahn-python, over both
serializers: PUBLISH `retain`, SUBSCRIBE `get_retained`, `EventDetails.retained`.

Absence of a retained event is proven by ordering: a retained event is queued right after
SUBSCRIBED, before any later live event, so a live event published after SUBSCRIBED arriving
first and only proves no retained event was sent.
"""

from __future__ import annotations

import asyncio

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions, SubscribeOptions

from conftest import make_sdk, uid
from wamp1_client import WAMP_APPS, EventInbox, Sessions, run, wamp_herald, within

__all__ = ["wamp_herald"]

OPEN = WAMP_APPS["open"]
RULES = WAMP_APPS["rules"]
NOT_AUTHORIZED = "wamp.error.not_authorized"
ACK = PublishOptions(acknowledge=True)
RETAIN = PublishOptions(acknowledge=True, retain=True)
GET_RETAINED = SubscribeOptions(get_retained=True, details=True)
PLAIN = SubscribeOptions(details=True)


@pytest.fixture(params=["json", "msgpack"])
def serializer(request):
    return request.param


@pytest.fixture(autouse=True)
def _alive(wamp_herald):
    yield
    wamp_herald.assert_alive()


def scenario(herald, serializer, body, realm=OPEN["id"]):
    async def main():
        sessions = Sessions(herald, serializer, realm)
        try:
            return await body(sessions)
        finally:
            await sessions.close()
    return run(main())


def topic(area: str = "com.herald.retain") -> str:
    return f"{area}.{uid('t')}"


async def subscribe(session, topic_uri: str, label: str, options=PLAIN) -> EventInbox:
    """Subscribes with event details passed to the handler (autobahn's `details=True`)."""
    inbox = EventInbox(label)
    await within(session.subscribe(inbox.handler, topic_uri, options=options), f"SUBSCRIBED ({label})")
    return inbox


async def only_live(inbox: EventInbox, publisher, topic_uri: str):
    """Publishes a live event after SUBSCRIBED and checks it is the first and only event."""
    await within(publisher.publish(topic_uri, "live", options=ACK), "PUBLISHED (live)")
    first = await inbox.next()
    assert first.args == ["live"] and not first.details.retained, first
    assert inbox.payloads() == ["live"]


def test_welcome_announces_event_retention(wamp_herald, serializer):
    async def body(sessions):
        session = await sessions.join()
        assert session._router_roles["broker"].event_retention
    scenario(wamp_herald, serializer, body)


def test_retained_event_reaches_a_later_subscriber_marked_retained(wamp_herald, serializer):
    async def body(sessions):
        pub = await sessions.join()
        t = topic()
        await within(pub.publish(t, "kept", {"n": 1}, options=RETAIN), "PUBLISHED (retained)")
        sub = await sessions.join()
        inbox = await subscribe(sub, t, "get_retained", GET_RETAINED)
        got = await inbox.next()
        assert got.args == ["kept", {"n": 1}]
        assert got.details.retained is True
        # Then live events, not marked.
        await within(pub.publish(t, "after", options=ACK), "PUBLISHED (live)")
        live = await inbox.next()
        assert live.args == ["after"] and not live.details.retained
        assert inbox.payloads() == ["kept", "after"]
    scenario(wamp_herald, serializer, body)


def test_newer_retained_event_replaces_the_older_and_plain_events_do_not(wamp_herald, serializer):
    async def body(sessions):
        pub = await sessions.join()
        t = topic()
        await within(pub.publish(t, "old", options=RETAIN), "PUBLISHED (old)")
        await within(pub.publish(t, "new", options=RETAIN), "PUBLISHED (new)")
        await within(pub.publish(t, "not retained", options=ACK), "PUBLISHED (plain)")
        inbox = await subscribe(await sessions.join(), t, "get_retained", GET_RETAINED)
        got = await inbox.next()
        assert got.args == ["new"] and got.details.retained
        # Exactly one retained event per topic: the next event is live.
        await only_live_after(inbox, pub, t, seen=["new"])
    scenario(wamp_herald, serializer, body)


async def only_live_after(inbox: EventInbox, publisher, topic_uri: str, seen: list):
    await within(publisher.publish(topic_uri, "live", options=ACK), "PUBLISHED (live)")
    live = await inbox.next()
    assert live.args == ["live"] and not live.details.retained, live
    assert inbox.payloads() == [*seen, "live"]


def test_subscriber_without_get_retained_gets_nothing(wamp_herald, serializer):
    async def body(sessions):
        pub = await sessions.join()
        t = topic()
        await within(pub.publish(t, "kept", options=RETAIN), "PUBLISHED (retained)")
        inbox = await subscribe(await sessions.join(), t, "no option")
        await only_live(inbox, pub, t)
        # A prefix subscription asking for it gets nothing either: retention is per exact topic.
        prefix = await subscribe(await sessions.join(), t.rsplit(".", 1)[0], "prefix",
                                 SubscribeOptions(match="prefix", get_retained=True, details=True))
        await within(pub.publish(t, "live", options=ACK), "PUBLISHED (live)")
        first = await prefix.next()
        assert first.args == ["live"] and not first.details.retained
    scenario(wamp_herald, serializer, body)


def test_retained_event_is_never_seen_from_another_realm(wamp_herald, serializer):
    async def body(sessions):
        t = topic("authz.open")  # a topic the `rules` realm allows too
        pub = await sessions.join(realm=OPEN["id"])
        await within(pub.publish(t, "of the open app", options=RETAIN), "PUBLISHED (retained)")
        other_pub = await sessions.join(realm=RULES["id"])
        inbox = await subscribe(await sessions.join(realm=RULES["id"]), t, "other realm", GET_RETAINED)
        await only_live(inbox, other_pub, t)
        # The realm that retained it still has it.
        mine = await subscribe(await sessions.join(realm=OPEN["id"]), t, "same realm", GET_RETAINED)
        got = await mine.next()
        assert got.args == ["of the open app"] and got.details.retained
    scenario(wamp_herald, serializer, body)


def test_publisher_not_allowed_to_publish_cannot_retain(wamp_herald, serializer):
    async def body(sessions):
        t = topic("authz.readonly")  # subscribe allowed, publish denied by the rules
        pub = await sessions.join()
        with pytest.raises(ApplicationError) as err:
            await within(pub.publish(t, "denied", options=RETAIN), "ERROR")
        assert err.value.error == NOT_AUTHORIZED
        pub.publish(t, "denied, unacknowledged", options=PublishOptions(retain=True))
        inbox = await subscribe(await sessions.join(), t, "readonly", GET_RETAINED)
        # The HTTP API is not subject to WAMP rules: its live event arrives first and only.
        loop = asyncio.get_running_loop()
        sdk = make_sdk(wamp_herald, RULES)
        await within(loop.run_in_executor(None, lambda: sdk.trigger(t, "http", "live")), "HTTP publish")
        first = await inbox.next()
        assert first.args == ["live"] and not first.details.retained, first
        assert inbox.payloads() == ["live"]
    scenario(wamp_herald, serializer, body, realm=RULES["id"])


def test_retained_event_respects_eligible_sessions(wamp_herald, serializer):
    async def body(sessions):
        pub, chosen, other = await sessions.join(), await sessions.join(), await sessions.join()
        t = topic()
        options = PublishOptions(acknowledge=True, retain=True, eligible=[chosen.session_id])
        await within(pub.publish(t, "for one", options=options), "PUBLISHED (retained, eligible)")
        inbox = await subscribe(chosen, t, "eligible", GET_RETAINED)
        got = await inbox.next()
        assert got.args == ["for one"] and got.details.retained
        await only_live(await subscribe(other, t, "not eligible", GET_RETAINED), pub, t)
    scenario(wamp_herald, serializer, body)
