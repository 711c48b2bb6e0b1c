"""One hub across protocols (docs/wamp.md "One hub across protocols"): within an app, a WAMP
topic and a Pusher channel with the same name are one channel. Publishers: the PyPI `pusher` SDK
(HTTP API), autobahn-python (v2, both serializers) and the raw v1 client; subscribers: a raw Pusher
socket, v1 and v2 sessions, all on one herald.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from autobahn.wamp.types import PublishOptions

from conftest import RawSocket, make_sdk, uid
from wamp1_client import WAMP_APPS, EventInbox, Sessions, Wamp1Client, run, wamp_herald, within

__all__ = ["wamp_herald"]

OPEN = WAMP_APPS["open"]


def channel(name: str) -> str:
    """A name valid both as a Pusher channel and as a WAMP v2 URI."""
    return f"xp.{uid(name)}"


@pytest.fixture(autouse=True)
def _alive(wamp_herald):
    yield
    wamp_herald.assert_alive()


async def blocking(fn, *args, **kwargs):
    """Runs a blocking call (SDK request, sync socket read) off the event loop."""
    loop = asyncio.get_running_loop()
    return await within(loop.run_in_executor(None, lambda: fn(*args, **kwargs)), getattr(fn, "__name__", "call"))


def cross(herald, body):
    async def main():
        sessions_json = Sessions(herald, "json")
        sessions_msgpack = Sessions(herald, "msgpack")
        v1_clients: list[Wamp1Client] = []
        pushers: list[RawSocket] = []

        def v1():
            client = Wamp1Client(herald.v1_port())
            v1_clients.append(client)
            return client

        def pusher_socket():
            sock = RawSocket(herald.pusher_url())
            pushers.append(sock)
            return sock

        try:
            return await body(sessions_json, sessions_msgpack, v1, pusher_socket)
        finally:
            await sessions_json.close()
            await sessions_msgpack.close()
            for client in v1_clients:
                client.close()
            for sock in pushers:
                sock.close()
    return run(main())


PUSHER_DATA = [
    # (what the SDK is given, the WAMP payload)
    ({"order": 7, "items": ["a", "b"]}, {"order": 7, "items": ["a", "b"]}),
    ('{"already": "json text"}', {"already": "json text"}),
    ("plain text, not JSON", "plain text, not JSON"),
    ([1, 2, 3], [1, 2, 3]),
    ("42", 42),
]


@pytest.mark.parametrize("data,payload", PUSHER_DATA, ids=["dict", "json-text", "non-json", "list", "number-text"])
def test_pusher_http_api_reaches_wamp_v1_and_v2(wamp_herald, data, payload):
    async def body(json_sessions, msgpack_sessions, v1, pusher_socket):
        name = channel("to-wamp")
        sub_json, sub_msgpack = await json_sessions.join(), await msgpack_sessions.join()
        inbox_json, inbox_msgpack = EventInbox("v2 json"), EventInbox("v2 msgpack")
        await within(sub_json.subscribe(inbox_json.handler, name), "SUBSCRIBED json")
        await within(sub_msgpack.subscribe(inbox_msgpack.handler, name), "SUBSCRIBED msgpack")
        old = v1()
        await blocking(old.subscribe, name)
        sdk = make_sdk(wamp_herald, OPEN)
        await blocking(sdk.trigger, name, "order-placed", data)
        for inbox in (inbox_json, inbox_msgpack):
            event = await inbox.next()
            assert event.args == [payload], event
            assert event.kwargs == {"event": "order-placed"}, event
        assert await blocking(old.expect_event, name) == payload
    cross(wamp_herald, body)


def test_pusher_batch_and_multi_channel_reach_wamp(wamp_herald):
    async def body(json_sessions, _msgpack, v1, _pusher):
        a, b = channel("multi-a"), channel("multi-b")
        sub = await json_sessions.join()
        inbox = EventInbox("v2")
        await within(sub.subscribe(inbox.handler, a), "SUBSCRIBED")
        await within(sub.subscribe(inbox.handler, b), "SUBSCRIBED")
        old = v1()
        await blocking(old.subscribe, a, b)
        sdk = make_sdk(wamp_herald, OPEN)
        await blocking(sdk.trigger, [a, b], "both", {"n": 1})
        await blocking(sdk.trigger_batch, [{"channel": a, "name": "batched", "data": json.dumps({"n": 2})}])
        got = [await inbox.next() for _ in range(3)]
        assert sorted((e.kwargs["event"], json.dumps(e.args)) for e in got) == sorted(
            [("both", '[{"n": 1}]'), ("both", '[{"n": 1}]'), ("batched", '[{"n": 2}]')])
        assert await blocking(old.expect_event, a) in ({"n": 1}, {"n": 2})
        assert await blocking(old.expect_event, b) == {"n": 1}
        assert await blocking(old.expect_event, a) in ({"n": 1}, {"n": 2})
        assert sorted(json.dumps(p) for p in old.events(a)) == ['{"n": 1}', '{"n": 2}']
    cross(wamp_herald, body)


def test_wamp_v2_publish_reaches_pusher_and_v1(wamp_herald):
    async def body(json_sessions, msgpack_sessions, v1, pusher_socket):
        name = channel("from-v2")
        sock = await blocking(pusher_socket)
        await blocking(sock.subscribe, name)
        old = v1()
        await blocking(old.subscribe, name)
        for sessions in (json_sessions, msgpack_sessions):
            pub = await sessions.join()
            ack = PublishOptions(acknowledge=True)
            # One argument, no kwargs: event name = topic, data = that argument.
            await within(pub.publish(name, {"x": 1}, options=ack), "PUBLISHED")
            msg = await blocking(sock.next, name)
            assert msg["channel"] == name and msg["decoded"] == {"x": 1}
            assert await blocking(old.expect_event, name) == {"x": 1}
            # kwargs.event names the Pusher event.
            await within(pub.publish(name, {"y": 2}, event="custom-event", options=ack), "PUBLISHED")
            msg = await blocking(sock.next, "custom-event")
            assert msg["channel"] == name and msg["decoded"] == {"y": 2}
            assert await blocking(old.expect_event, name) == {"y": 2}
            # A string argument is sent as that string.
            await within(pub.publish(name, "just text", event="txt", options=ack), "PUBLISHED")
            msg = await blocking(sock.next, "txt")
            assert msg["data"] == "just text"
            assert await blocking(old.expect_event, name) == "just text"
            # Several arguments or other kwargs: {"args": [...], "kwargs": {...}}.
            await within(pub.publish(name, 1, 2, event="multi", extra="v", options=ack), "PUBLISHED")
            msg = await blocking(sock.next, "multi")
            assert msg["decoded"]["args"] == [1, 2] and msg["decoded"]["kwargs"]["extra"] == "v", msg
            v1_payload = await blocking(old.expect_event, name)
            assert v1_payload["args"] == [1, 2] and v1_payload["kwargs"]["extra"] == "v", v1_payload
    cross(wamp_herald, body)


def test_wamp_v1_publish_reaches_pusher_and_v2(wamp_herald):
    async def body(json_sessions, msgpack_sessions, v1, pusher_socket):
        name = channel("from-v1")
        sock = await blocking(pusher_socket)
        await blocking(sock.subscribe, name)
        sub_json, sub_msgpack = await json_sessions.join(), await msgpack_sessions.join()
        inboxes = [EventInbox("v2 json"), EventInbox("v2 msgpack")]
        await within(sub_json.subscribe(inboxes[0].handler, name), "SUBSCRIBED")
        await within(sub_msgpack.subscribe(inboxes[1].handler, name), "SUBSCRIBED")
        publisher = v1()
        for payload in ({"from": "v1", "n": [1, 2]}, "v1 text", None, 3.5):
            publisher.publish(name, payload)
            msg = await blocking(sock.next, name)
            if isinstance(payload, str):
                assert msg["data"] == payload
            else:
                assert json.loads(msg["data"]) == payload
            for inbox in inboxes:
                event = await inbox.next()
                assert event.args == [payload] and event.kwargs == {}, event
    cross(wamp_herald, body)


def test_wamp_v1_and_v2_share_a_topic(wamp_herald):
    async def body(json_sessions, _msgpack, v1, _pusher):
        name = channel("v1v2")
        session = await json_sessions.join()
        inbox = EventInbox("v2")
        await within(session.subscribe(inbox.handler, name), "SUBSCRIBED")
        old = v1()
        await blocking(old.subscribe, name)
        await within(session.publish(name, {"from": "v2"}, options=PublishOptions(acknowledge=True)), "PUBLISHED")
        assert await blocking(old.expect_event, name) == {"from": "v2"}
        old.publish(name, {"from": "v1"}, True)
        assert (await inbox.next()).args == [{"from": "v1"}]
    cross(wamp_herald, body)


def test_pusher_channel_occupancy_counts_wamp_subscribers(wamp_herald):
    async def body(json_sessions, _msgpack, v1, _pusher):
        name = channel("occupancy")
        sdk = make_sdk(wamp_herald, OPEN)
        assert (await blocking(sdk.channel_info, name))["occupied"] is False
        session = await json_sessions.join()
        subscription = await within(session.subscribe(lambda *a, **k: None, name), "SUBSCRIBED")
        assert (await blocking(sdk.channel_info, name))["occupied"] is True
        await within(subscription.unsubscribe(), "UNSUBSCRIBED")
        assert (await blocking(sdk.channel_info, name))["occupied"] is False
    cross(wamp_herald, body)


def test_apps_are_separate_hubs(wamp_herald):
    """Same topic name in another app (realm) never crosses over."""
    async def body(json_sessions, _msgpack, v1, _pusher):
        name = f"authz.open.{uid('apps')}"
        other_app = await json_sessions.join(realm=WAMP_APPS["rules"]["id"])
        mine = await json_sessions.join()
        other_inbox, my_inbox = EventInbox("rules app"), EventInbox("open app")
        await within(other_app.subscribe(other_inbox.handler, name), "SUBSCRIBED")
        await within(mine.subscribe(my_inbox.handler, name), "SUBSCRIBED")
        await blocking(make_sdk(wamp_herald, OPEN).trigger, name, "e", {"app": "open"})
        await blocking(make_sdk(wamp_herald, WAMP_APPS["rules"]).trigger, name, "e", {"app": "rules"})
        assert (await my_inbox.next()).args == [{"app": "open"}]
        assert (await other_inbox.next()).args == [{"app": "rules"}]
        assert my_inbox.payloads() == [{"app": "open"}] and other_inbox.payloads() == [{"app": "rules"}]
    cross(wamp_herald, body)


RESERVED_NAMES = ["pusher:error", "pusher:connection_established", "pusher:ping",
                  "pusher_internal:subscription_succeeded", "pusher_internal:member_added", "e" * 201]


@pytest.mark.parametrize("event_name", RESERVED_NAMES, ids=[n[:40] for n in RESERVED_NAMES[:-1]] + ["201-chars"])
def test_wamp_publisher_cannot_spoof_pusher_protocol_events(wamp_herald, event_name):
    """WAMP publishers are untrusted clients: `kwargs.event` must not become a Pusher protocol
    event (`pusher:`/`pusher_internal:`) or an over-long name on a Pusher socket. herald may refuse
    the publish (ERROR) or fall back to the topic as event name; it must not deliver it as is."""
    async def body(json_sessions, _msgpack, _v1, pusher_socket):
        name = channel("spoof")
        sock = await blocking(pusher_socket)
        await blocking(sock.subscribe, name)
        pub = await json_sessions.join()
        from autobahn.wamp.exception import ApplicationError
        try:
            await within(pub.publish(name, {"spoof": True}, event=event_name, options=PublishOptions(acknowledge=True)),
                         "PUBLISHED or ERROR")
        except ApplicationError:
            pass
        await within(pub.publish(name, "end", event="end", options=PublishOptions(acknowledge=True)), "PUBLISHED")
        await blocking(sock.next, "end")
        # Only the forged payload counts: the socket's own genuine subscription ack has the
        # same channel and, for one of the names, the same event.
        spoofed = [m for m in sock.seen
                   if m.get("channel") == name and m.get("event") == event_name and "spoof" in str(m.get("data"))]
        assert spoofed == [], f"a WAMP publisher delivered {event_name[:60]!r} to a Pusher socket: {spoofed}"
    cross(wamp_herald, body)


def test_shutdown_says_goodbye_to_wamp_v2_and_closes_v1_with_1001():
    """SIGTERM drains every protocol: v2 sessions get GOODBYE wamp.close.system_shutdown, v1
    sockets a 1001 close, and herald exits 0."""
    from wamp1_client import WampHerald
    herald = WampHerald()
    try:
        async def main():
            sessions = Sessions(herald, "json")
            try:
                session = await sessions.join()
                old = Wamp1Client(herald.v1_port())
                herald.proc.terminate()
                details = await within(session.left, "GOODBYE on shutdown", timeout=15)
                assert details.reason == "wamp.close.system_shutdown"
                closed = await blocking(old.expect_close, 15)
                assert closed.code == 1001, closed.raw.hex(" ")
            finally:
                await sessions.close()
        run(main())
        assert herald.proc.wait(timeout=15) == 0
    finally:
        herald.stop()
