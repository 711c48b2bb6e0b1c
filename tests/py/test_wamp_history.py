"""WAMP v2 retained events and event history with autobahn-python, over both serializers:
PUBLISH `retain`, SUBSCRIBE `get_retained`, `EventDetails.retained` (advanced profile "Event
Retention"), and `wamp.subscription.get_events` on topics an app's `[[apps.history]]` covers.

Absence of a retained event is proven by ordering: a retained event is queued right after
SUBSCRIBED, before any later live event, so a live event published after SUBSCRIBED arriving
first and only proves no retained event was sent.
"""

from __future__ import annotations

import asyncio
import functools
import re

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions, SubscribeOptions

from conftest import make_sdk, uid
from redis_server import Redis
from wamp1_client import WAMP_APPS, EventInbox, Sessions, WampHerald, run, within
from wamp1_client import scenario as wamp_scenario

# A realm whose `hist.*` topics keep their last 5 events and `histbig.*` topics their last 1200.
HISTORY = {
    "id": "3006", "key": "wamp-history-key", "secret": "wamp-history-5b9d1f3a7c0e2468",
    "wamp": True, "wamp_anonymous_role": "trusted", "wamp_max_publishes_per_second": 100000,
    "history": [{"channels": "hist.*", "max_messages": 5}, {"channels": "histbig.*", "max_messages": 1200}],
}
GET_EVENTS = "wamp.subscription.get_events"


@pytest.fixture(scope="module")
def wamp_herald():
    """The WAMP apps and listeners of the other WAMP suites, plus the HISTORY realm."""
    server = WampHerald(apps=[*WAMP_APPS.values(), HISTORY])
    yield server
    server.stop()

OPEN = WAMP_APPS["open"]
RULES = WAMP_APPS["rules"]
# Sessions of the open realm unless a test says otherwise.
scenario = functools.partial(wamp_scenario, realm=OPEN["id"])
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


def test_welcome_announces_event_retention_and_history(wamp_herald, serializer):
    async def body(sessions):
        session = await sessions.join()
        broker = session._router_roles["broker"]
        assert broker.event_retention and broker.event_history
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


def test_retained_event_is_kept_on_every_node(serializer):
    """Two nodes on one Redis: an event retained through node A is the retained event of a
    `get_retained` subscriber that joins node B afterwards."""
    redis = Redis()
    nodes = []
    try:
        nodes = [WampHerald(apps=[OPEN], listeners={}, extra={"scale_out": {"redis_url": redis.url}})
                 for _ in range(2)]

        async def main():
            on_a, on_b = Sessions(nodes[0], serializer, OPEN["id"]), Sessions(nodes[1], serializer, OPEN["id"])
            try:
                pub = await on_a.join()
                t = topic()
                # A live subscriber on B: once the event reached it, B has kept it too.
                watcher = await subscribe(await on_b.join(), t, "watcher on B")
                await within(pub.publish(t, "kept across nodes", options=RETAIN), "PUBLISHED (retained)")
                assert (await watcher.next()).args == ["kept across nodes"]
                late = await subscribe(await on_b.join(), t, "get_retained on B", GET_RETAINED)
                got = await late.next()
                assert got.args == ["kept across nodes"] and got.details.retained is True, got
            finally:
                await on_a.close()
                await on_b.close()
        run(main())
    finally:
        for node in nodes:
            node.stop()
        redis.close()


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


# --- event history: wamp.subscription.get_events ----------------------------------------------

def test_get_events_returns_the_newest_first_in_crossbars_shape(wamp_herald, serializer):
    async def body(sessions):
        pub, sub = await sessions.join(), await sessions.join()
        t = topic("hist")
        inbox = EventInbox("history subscriber")
        subscription = await within(sub.subscribe(inbox.handler, t), "SUBSCRIBED")
        ids = []
        for i in range(7):
            published = await within(pub.publish(t, i, {"at": "x"}, n=i, options=ACK), "PUBLISHED")
            ids.append(published.id)
        events = await within(sub.call(GET_EVENTS, subscription.id, 3), "get_events")
        assert [e["args"] for e in events] == [[6, {"at": "x"}], [5, {"at": "x"}], [4, {"at": "x"}]]
        assert [e["publication"] for e in events] == ids[6:3:-1]
        for e in events:
            assert e["subscription"] == subscription.id and e["topic"] == t
            assert e["kwargs"] == {"n": int(e["args"][0])}
            assert isinstance(e["details"], dict)
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["timestamp"]), e["timestamp"]
        assert events[0]["timestamp"] >= events[-1]["timestamp"]
        # The history holds 5; without a limit Crossbar's default (10) applies, as a kwarg too.
        assert [e["args"][0] for e in await within(sub.call(GET_EVENTS, subscription.id), "get_events")] == [6, 5, 4, 3, 2]
        assert len(await within(sub.call(GET_EVENTS, subscription.id, limit=100), "get_events")) == 5
    scenario(wamp_herald, serializer, body, realm=HISTORY["id"])


def test_get_events_refuses_a_subscription_the_session_does_not_hold(wamp_herald, serializer):
    async def body(sessions):
        owner, other = await sessions.join(), await sessions.join()
        t = topic("hist")
        subscription = await within(owner.subscribe(lambda *a: None, t), "SUBSCRIBED")
        await within(owner.publish(t, "secret", options=ACK), "PUBLISHED")
        for session, sub_id in ((other, subscription.id), (owner, subscription.id + 1)):
            with pytest.raises(ApplicationError) as err:
                await within(session.call(GET_EVENTS, sub_id, 5), "ERROR")
            assert err.value.error == "wamp.error.no_such_subscription"
        # Once unsubscribed, the owner does not hold it either.
        await within(subscription.unsubscribe(), "UNSUBSCRIBED")
        with pytest.raises(ApplicationError) as err:
            await within(owner.call(GET_EVENTS, subscription.id, 5), "ERROR")
        assert err.value.error == "wamp.error.no_such_subscription"
    scenario(wamp_herald, serializer, body, realm=HISTORY["id"])


def test_get_events_on_a_topic_without_history_is_unavailable(wamp_herald, serializer):
    async def body(sessions):
        session = await sessions.join()
        plain = await within(session.subscribe(lambda *a: None, topic("nohist")), "SUBSCRIBED")
        pattern = await within(session.subscribe(lambda *a: None, "hist.", options=SubscribeOptions(match="prefix")),
                               "SUBSCRIBED (prefix)")
        for sub_id in (plain.id, pattern.id):
            with pytest.raises(ApplicationError) as err:
                await within(session.call(GET_EVENTS, sub_id, 5), "ERROR")
            assert err.value.error == "wamp.error.history_unavailable"
        # A topic with history but nothing published yet: an empty list.
        fresh = await within(session.subscribe(lambda *a: None, topic("hist")), "SUBSCRIBED")
        assert await within(session.call(GET_EVENTS, fresh.id, 5), "get_events") == []
    scenario(wamp_herald, serializer, body, realm=HISTORY["id"])


def test_get_events_limit_is_checked_and_bounded(wamp_herald, serializer):
    async def body(sessions):
        pub, sub = await sessions.join(), await sessions.join()
        t = topic("histbig")
        subscription = await within(sub.subscribe(lambda *a: None, t), "SUBSCRIBED")
        for bad in (0, -1, "ten", 1.5):
            with pytest.raises(ApplicationError) as err:
                await within(sub.call(GET_EVENTS, subscription.id, bad), "ERROR")
            assert err.value.error == "wamp.error.invalid_argument", bad
        for i in range(1100):
            pub.publish(t, i)
        # One session's messages are handled in order: this acknowledgement follows them all.
        await within(pub.publish(t, 1100, options=ACK), "PUBLISHED")
        events = await within(sub.call(GET_EVENTS, subscription.id, 5000), "get_events")
        assert len(events) == 1000  # at most 1000 per call, whatever the limit
        assert events[0]["args"] == [1100] and events[-1]["args"] == [101]
    scenario(wamp_herald, serializer, body, realm=HISTORY["id"])
