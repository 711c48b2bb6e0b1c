"""WAMP v2 Basic Profile with autobahn-python (asyncio), unchanged, over both serializers
(`wamp.2.json`, `wamp.2.msgpack`): sessions, broker, dealer and their errors.

The realm is the app id. Absence of an event is proven by ordering: events of one topic reach a
subscriber in publication order, so a later event arriving first-and-only proves the earlier one
was never sent.
"""

from __future__ import annotations

import asyncio

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import (
    CallOptions, CallResult, PublishOptions, SubscribeOptions,
)

from conftest import uid
from wamp1_client import WAMP_APPS, Aborted, EventInbox, scenario, wamp_herald, within

__all__ = ["wamp_herald"]

SERIALIZERS = ["json", "msgpack"]
OPEN = WAMP_APPS["open"]


def uri(name: str) -> str:
    """A fresh WAMP URI (dots and hyphens only, so it is also a valid Pusher channel name)."""
    return f"com.herald.{uid(name)}"


@pytest.fixture(params=SERIALIZERS)
def serializer(request):
    return request.param


@pytest.fixture(autouse=True)
def _alive(wamp_herald):
    yield
    wamp_herald.assert_alive()




# --- session lifecycle ---------------------------------------------------------------------

def test_join_realm_is_app_id_and_welcome_announces_roles(wamp_herald, serializer):
    async def body(sessions):
        session = await sessions.join()
        assert isinstance(session.session_id, int) and 1 <= session.session_id <= 2 ** 53
        details = session.joined.result()
        assert details.realm == OPEN["id"] and details.session == session.session_id
        assert details.serializer == serializer  # the subprotocol herald selected
        # autobahn parses WELCOME.Details.roles into role feature objects.
        roles = session._router_roles or {}
        assert "broker" in roles and "dealer" in roles, roles
        assert roles["broker"].pattern_based_subscription
        assert roles["broker"].publisher_exclusion
        assert roles["broker"].subscriber_blackwhite_listing
        assert roles["dealer"].call_timeout
        other = await sessions.join()
        assert other.session_id != session.session_id
    scenario(wamp_herald, serializer, body)


def test_unknown_realm_is_aborted_with_no_such_realm(wamp_herald, serializer):
    async def body(sessions):
        with pytest.raises(Aborted) as aborted:
            await sessions.join(realm="no-such-app")
        assert aborted.value.reason == "wamp.error.no_such_realm"
        # Realm is the app id, not its key.
        with pytest.raises(Aborted) as aborted:
            await sessions.join(realm=OPEN["key"])
        assert aborted.value.reason == "wamp.error.no_such_realm"
    scenario(wamp_herald, serializer, body)


def test_disabled_app_realm_is_aborted(wamp_herald, serializer):
    async def body(sessions):
        with pytest.raises(Aborted) as aborted:
            await sessions.join(realm=WAMP_APPS["disabled"]["id"])
        assert aborted.value.reason in ("wamp.error.not_authorized", "wamp.error.no_such_realm"), aborted.value
    scenario(wamp_herald, serializer, body)


@pytest.mark.parametrize("path", ["/ws", "/", "/wamp?x=1"])
def test_any_path_but_app_serves_wamp_v2(wamp_herald, path):
    async def body(sessions):
        session = await sessions.join(path=path)
        assert session.is_attached()
    scenario(wamp_herald, "json", body)


def test_goodbye_handshake(wamp_herald, serializer):
    async def body(sessions):
        session = await sessions.join()
        session.leave("wamp.close.close_realm", "bye")
        details = await within(session.left, "GOODBYE reply")
        assert details.reason == "wamp.close.goodbye_and_out"
        await within(session.gone, "the transport to close after GOODBYE")
    scenario(wamp_herald, serializer, body)


# --- broker ----------------------------------------------------------------------------------

def test_publish_acknowledged_and_exclude_me_default(wamp_herald, serializer):
    async def body(sessions):
        pub, sub = await sessions.join(), await sessions.join()
        topic = uri("ack")
        pub_inbox, sub_inbox = EventInbox("publisher"), EventInbox("subscriber")
        await within(pub.subscribe(pub_inbox.handler, topic), "SUBSCRIBED (publisher)")
        await within(sub.subscribe(sub_inbox.handler, topic), "SUBSCRIBED (subscriber)")
        publication = await within(pub.publish(topic, "first", {"k": 1}, extra=True,
                                               options=PublishOptions(acknowledge=True)), "PUBLISHED")
        assert isinstance(publication.id, int) and publication.id > 0
        event = await sub_inbox.next()
        assert event.args == ["first", {"k": 1}] and event.kwargs == {"extra": True}
        # exclude_me defaults to true: the publisher gets its own event only when it asks.
        await within(pub.publish(topic, "second", options=PublishOptions(acknowledge=True, exclude_me=False)),
                     "PUBLISHED")
        mine = await pub_inbox.next()
        assert mine.args == ["second"]
        assert pub_inbox.payloads() == ["second"], "publisher received its own event despite exclude_me default"
        assert (await sub_inbox.next()).args == ["second"]
    scenario(wamp_herald, serializer, body)


def test_unacknowledged_publish_is_delivered(wamp_herald, serializer):
    async def body(sessions):
        pub, sub = await sessions.join(), await sessions.join()
        topic = uri("noack")
        inbox = EventInbox("subscriber")
        await within(sub.subscribe(inbox.handler, topic), "SUBSCRIBED")
        assert pub.publish(topic, 42) is None
        assert (await inbox.next()).args == [42]
    scenario(wamp_herald, serializer, body)


def test_exclude_and_eligible_by_session_id(wamp_herald, serializer):
    async def body(sessions):
        pub = await sessions.join()
        subs = [await sessions.join() for _ in range(3)]
        topic = uri("lists")
        inboxes = [EventInbox(f"sub{i}") for i in range(3)]
        for session, inbox in zip(subs, inboxes):
            await within(session.subscribe(inbox.handler, topic), "SUBSCRIBED")
        a, b, c = (s.session_id for s in subs)
        ack = dict(acknowledge=True)
        await within(pub.publish(topic, "exclude a", options=PublishOptions(exclude=[a], **ack)), "PUBLISHED")
        await within(pub.publish(topic, "eligible b", options=PublishOptions(eligible=[b], **ack)), "PUBLISHED")
        await within(pub.publish(topic, "eligible b c exclude b",
                                 options=PublishOptions(eligible=[b, c], exclude=[b], **ack)), "PUBLISHED")
        await within(pub.publish(topic, "end", options=PublishOptions(**ack)), "PUBLISHED")
        for inbox in inboxes:
            await inbox.until(lambda e: e.args == ["end"])
        assert inboxes[0].payloads() == ["end"]
        assert inboxes[1].payloads() == ["exclude a", "eligible b", "end"]
        assert inboxes[2].payloads() == ["exclude a", "eligible b c exclude b", "end"]
    scenario(wamp_herald, serializer, body)


def test_empty_eligible_list_means_nobody_in_v2(wamp_herald, serializer):
    """Unlike WAMP v1 (Ratchet ignores an empty eligible list), v2 `eligible: []` admits no one."""
    async def body(sessions):
        pub, sub = await sessions.join(), await sessions.join()
        topic = uri("eligible-empty")
        inbox = EventInbox("subscriber")
        await within(sub.subscribe(inbox.handler, topic), "SUBSCRIBED")
        await within(pub.publish(topic, "nobody", options=PublishOptions(acknowledge=True, eligible=[])), "PUBLISHED")
        await within(pub.publish(topic, "everyone", options=PublishOptions(acknowledge=True)), "PUBLISHED")
        assert (await inbox.next()).args == ["everyone"]
        assert inbox.payloads() == ["everyone"]
    scenario(wamp_herald, serializer, body)


def test_subscribing_twice_shares_one_subscription(wamp_herald, serializer):
    async def body(sessions):
        pub, sub = await sessions.join(), await sessions.join()
        topic = uri("twice")
        first, second = EventInbox("first handler"), EventInbox("second handler")
        s1 = await within(sub.subscribe(first.handler, topic), "SUBSCRIBED")
        s2 = await within(sub.subscribe(second.handler, topic), "SUBSCRIBED")
        assert s1.id == s2.id, "the router must return the existing subscription id"
        for n in (1, 2):
            await within(pub.publish(topic, n, options=PublishOptions(acknowledge=True)), "PUBLISHED")
        for inbox in (first, second):
            await inbox.until(lambda e: e.args == [2])
            assert inbox.payloads() == [1, 2], "one EVENT per publication, not one per subscribe"
    scenario(wamp_herald, serializer, body)


def test_prefix_subscription_event_carries_topic(wamp_herald, serializer):
    async def body(sessions):
        pub, sub = await sessions.join(), await sessions.join()
        base = uri("prefix")
        inbox = EventInbox("prefix")
        subscription = await within(sub.subscribe(inbox.handler, base + ".",
                                                  options=SubscribeOptions(match="prefix", details=True)), "SUBSCRIBED")
        assert subscription.id > 0
        await within(pub.publish(f"{base}.a", 1, options=PublishOptions(acknowledge=True)), "PUBLISHED")
        await within(pub.publish(f"{base}.b.c", 2, options=PublishOptions(acknowledge=True)), "PUBLISHED")
        await within(pub.publish(f"{base}x.other", 3, options=PublishOptions(acknowledge=True)), "PUBLISHED")
        first, second = await inbox.next(), await inbox.next()
        assert (first.args, first.topic) == ([1], f"{base}.a")
        assert (second.args, second.topic) == ([2], f"{base}.b.c")
        # A sibling URI that only shares characters is not under the prefix.
        await within(pub.publish(f"{base}.z", 4, options=PublishOptions(acknowledge=True)), "PUBLISHED")
        assert (await inbox.next()).args == [4]
        assert inbox.payloads() == [1, 2, 4]
    scenario(wamp_herald, serializer, body)


def test_wildcard_subscription_event_carries_topic(wamp_herald, serializer):
    async def body(sessions):
        pub, sub = await sessions.join(), await sessions.join()
        base = uri("wild")
        inbox = EventInbox("wildcard")
        await within(sub.subscribe(inbox.handler, f"{base}..created",
                                   options=SubscribeOptions(match="wildcard", details=True)), "SUBSCRIBED")
        for t, n in ((f"{base}.user.created", 1), (f"{base}.user.deleted", 2), (f"{base}.a.b.created", 3),
                     (f"{base}.order.created", 4)):
            await within(pub.publish(t, n, options=PublishOptions(acknowledge=True)), "PUBLISHED")
        first, second = await inbox.next(), await inbox.next()
        assert (first.args, first.topic) == ([1], f"{base}.user.created")
        assert (second.args, second.topic) == ([4], f"{base}.order.created")
        assert inbox.payloads() == [1, 4]
    scenario(wamp_herald, serializer, body)


def test_exact_and_pattern_subscriptions_both_receive(wamp_herald, serializer):
    async def body(sessions):
        pub, sub = await sessions.join(), await sessions.join()
        base = uri("both")
        exact, prefix = EventInbox("exact"), EventInbox("prefix")
        await within(sub.subscribe(exact.handler, f"{base}.x", options=SubscribeOptions(details=True)), "SUBSCRIBED")
        await within(sub.subscribe(prefix.handler, base, options=SubscribeOptions(match="prefix", details=True)),
                     "SUBSCRIBED")
        await within(pub.publish(f"{base}.x", "hello", options=PublishOptions(acknowledge=True)), "PUBLISHED")
        assert (await exact.next()).args == ["hello"]
        event = await prefix.next()
        assert event.args == ["hello"] and event.topic == f"{base}.x"
    scenario(wamp_herald, serializer, body)


def test_unsubscribe_stops_delivery(wamp_herald, serializer):
    async def body(sessions):
        pub, sub, watcher = await sessions.join(), await sessions.join(), await sessions.join()
        topic = uri("unsub")
        inbox, watch = EventInbox("sub"), EventInbox("watcher")
        subscription = await within(sub.subscribe(inbox.handler, topic), "SUBSCRIBED")
        await within(watcher.subscribe(watch.handler, topic), "SUBSCRIBED")
        await within(pub.publish(topic, 1, options=PublishOptions(acknowledge=True)), "PUBLISHED")
        assert (await inbox.next()).args == [1]
        await within(subscription.unsubscribe(), "UNSUBSCRIBED")
        await within(pub.publish(topic, 2, options=PublishOptions(acknowledge=True)), "PUBLISHED")
        assert (await watch.until(lambda e: e.args == [2])).args == [2]
        # Re-subscribing proves the session is fine and event 2 never came.
        inbox2 = EventInbox("resub")
        await within(sub.subscribe(inbox2.handler, topic), "SUBSCRIBED again")
        await within(pub.publish(topic, 3, options=PublishOptions(acknowledge=True)), "PUBLISHED")
        assert (await inbox2.next()).args == [3]
        assert inbox.payloads() == [1]
    scenario(wamp_herald, serializer, body)


# --- dealer ----------------------------------------------------------------------------------

def test_register_and_call_with_args_and_kwargs(wamp_herald, serializer):
    async def body(sessions):
        callee, caller = await sessions.join(), await sessions.join()
        proc = uri("proc.add")

        def add(a, b, *, scale=1):
            return CallResult(a + b, (a + b) * scale, note=f"scaled by {scale}")

        registration = await within(callee.register(add, proc), "REGISTERED")
        assert registration.id > 0
        result = await within(caller.call(proc, 2, 3, scale=10), "RESULT")
        assert isinstance(result, CallResult)
        assert list(result.results) == [5, 50] and result.kwresults == {"note": "scaled by 10"}
        # A single positional result comes back as the plain value.
        single = uri("proc.echo")
        await within(callee.register(lambda x: x, single), "REGISTERED")
        assert await within(caller.call(single, {"nested": [1, "two", None]}), "RESULT") == {"nested": [1, "two", None]}
        assert await within(caller.call(single, "ünïcødé"), "RESULT") == "ünïcødé"
    scenario(wamp_herald, serializer, body)


def test_async_callee_and_concurrent_calls(wamp_herald, serializer):
    async def body(sessions):
        callee, caller = await sessions.join(), await sessions.join()
        proc = uri("proc.slow")
        gates: dict[int, asyncio.Future] = {}
        all_invoked = asyncio.get_running_loop().create_future()

        async def slow(n):
            gates[n] = asyncio.get_running_loop().create_future()
            if len(gates) == 3:
                all_invoked.set_result(True)
            return await gates[n]

        await within(callee.register(slow, proc), "REGISTERED")
        calls = [asyncio.ensure_future(caller.call(proc, n)) for n in range(3)]
        await within(all_invoked, "three INVOCATIONs in flight at once")
        # Answer out of order: each result reaches its own call.
        for n in (2, 0, 1):
            gates[n].set_result(n * 100)
        assert await within(asyncio.gather(*calls), "three RESULTs") == [0, 100, 200]
    scenario(wamp_herald, serializer, body)


def test_second_register_is_procedure_already_exists(wamp_herald, serializer):
    async def body(sessions):
        first, second = await sessions.join(), await sessions.join()
        proc = uri("proc.once")
        await within(first.register(lambda: "first", proc), "REGISTERED")
        with pytest.raises(ApplicationError) as err:
            await within(second.register(lambda: "second", proc), "ERROR")
        assert err.value.error == "wamp.error.procedure_already_exists"
        with pytest.raises(ApplicationError) as err:
            await within(first.register(lambda: "again", proc), "ERROR")
        assert err.value.error == "wamp.error.procedure_already_exists"
        assert await within(second.call(proc), "RESULT") == "first"
    scenario(wamp_herald, serializer, body)


def test_unregister_then_call_is_no_such_procedure_and_name_is_free(wamp_herald, serializer):
    async def body(sessions):
        callee, caller = await sessions.join(), await sessions.join()
        proc = uri("proc.unreg")
        registration = await within(callee.register(lambda: 1, proc), "REGISTERED")
        assert await within(caller.call(proc), "RESULT") == 1
        await within(registration.unregister(), "UNREGISTERED")
        with pytest.raises(ApplicationError) as err:
            await within(caller.call(proc), "ERROR")
        assert err.value.error == "wamp.error.no_such_procedure"
        await within(caller.register(lambda: 2, proc), "REGISTERED by another session")
        assert await within(callee.call(proc), "RESULT") == 2
    scenario(wamp_herald, serializer, body)


def test_call_with_nothing_registered_is_no_such_procedure(wamp_herald, serializer):
    async def body(sessions):
        caller = await sessions.join()
        with pytest.raises(ApplicationError) as err:
            await within(caller.call(uri("proc.missing"), 1, x=2), "ERROR")
        assert err.value.error == "wamp.error.no_such_procedure"
        # The session survives the error.
        proc = uri("proc.later")
        await within(caller.register(lambda: "ok", proc), "REGISTERED")
        assert await within(caller.call(proc), "RESULT") == "ok"
    scenario(wamp_herald, serializer, body)


def test_callee_error_reaches_caller_with_uri_args_and_kwargs(wamp_herald, serializer):
    async def body(sessions):
        callee, caller = await sessions.join(), await sessions.join()
        proc = uri("proc.fail")

        def fail(amount):
            raise ApplicationError("com.example.error.insufficient_funds", "balance too low", amount, needed=amount + 5)

        await within(callee.register(fail, proc), "REGISTERED")
        with pytest.raises(ApplicationError) as err:
            await within(caller.call(proc, 10), "ERROR")
        assert err.value.error == "com.example.error.insufficient_funds"
        assert list(err.value.args) == ["balance too low", 10]
        assert err.value.kwargs == {"needed": 15}
    scenario(wamp_herald, serializer, body)


def test_callee_disconnect_fails_pending_call_with_canceled(wamp_herald, serializer):
    async def body(sessions):
        callee, caller = await sessions.join(), await sessions.join()
        proc = uri("proc.vanish")
        invoked = asyncio.get_running_loop().create_future()

        async def hang():
            invoked.set_result(True)
            await asyncio.get_running_loop().create_future()  # never answers

        await within(callee.register(hang, proc), "REGISTERED")
        call = asyncio.ensure_future(caller.call(proc))
        await within(invoked, "INVOCATION at the callee")
        callee.disconnect()  # drops the WebSocket without GOODBYE
        with pytest.raises(ApplicationError) as err:
            await within(call, "ERROR after the callee left")
        assert err.value.error == "wamp.error.canceled"
        # The registration went with the callee.
        with pytest.raises(ApplicationError) as err:
            await within(caller.call(proc), "ERROR")
        assert err.value.error == "wamp.error.no_such_procedure"
    scenario(wamp_herald, serializer, body)


def test_callee_goodbye_fails_pending_call_with_canceled(wamp_herald, serializer):
    async def body(sessions):
        callee, caller = await sessions.join(), await sessions.join()
        proc = uri("proc.leave")
        invoked = asyncio.get_running_loop().create_future()

        async def hang():
            invoked.set_result(True)
            await asyncio.get_running_loop().create_future()

        await within(callee.register(hang, proc), "REGISTERED")
        call = asyncio.ensure_future(caller.call(proc))
        await within(invoked, "INVOCATION at the callee")
        callee.leave()
        with pytest.raises(ApplicationError) as err:
            await within(call, "ERROR after the callee said GOODBYE")
        assert err.value.error == "wamp.error.canceled"
    scenario(wamp_herald, serializer, body)


def test_call_timeout_option_gives_timeout_error(wamp_herald, serializer):
    async def body(sessions):
        callee, caller = await sessions.join(), await sessions.join()
        proc = uri("proc.timeout")
        late: list[asyncio.Future] = []

        async def slow(n):
            gate = asyncio.get_running_loop().create_future()
            late.append(gate)
            return await gate

        await within(callee.register(slow, proc), "REGISTERED")
        # CALL.Options.timeout is in milliseconds on the wire.
        started = asyncio.get_running_loop().time()
        with pytest.raises(ApplicationError) as err:
            await within(caller.call(proc, 1, options=CallOptions(timeout=300)), "ERROR wamp.error.timeout")
        elapsed = asyncio.get_running_loop().time() - started
        assert err.value.error == "wamp.error.timeout"
        assert 0.2 <= elapsed < 4, f"timeout fired after {elapsed:.2f} s for 300 ms"
        # The callee answers late: herald drops the stray YIELD; both sessions stay healthy.
        for gate in late:
            if not gate.done():
                gate.set_result("too late")
        fast = uri("proc.fast")
        await within(callee.register(lambda: "fine", fast), "REGISTERED")
        assert await within(caller.call(fast), "RESULT") == "fine"
        assert callee.is_attached() and caller.is_attached()
    scenario(wamp_herald, serializer, body)


def test_caller_leaving_does_not_break_callee(wamp_herald, serializer):
    async def body(sessions):
        callee, caller, other = await sessions.join(), await sessions.join(), await sessions.join()
        proc = uri("proc.orphan")
        gate = asyncio.get_running_loop().create_future()
        invoked = asyncio.get_running_loop().create_future()

        async def slow():
            invoked.set_result(True)
            return await gate

        await within(callee.register(slow, proc), "REGISTERED")
        call = asyncio.ensure_future(caller.call(proc))
        await within(invoked, "INVOCATION")
        caller.disconnect()
        await within(caller.gone, "the caller's transport to close")
        gate.set_result("nobody listens")  # YIELD for a caller that is gone
        echo = uri("proc.echo2")
        await within(callee.register(lambda x: x, echo), "REGISTERED")
        assert await within(other.call(echo, 7), "RESULT") == 7
        call.cancel()
    scenario(wamp_herald, serializer, body)


def test_mixed_serializers_interoperate(wamp_herald):
    async def body(sessions):
        json_session = await sessions.join(serializer="json")
        msgpack_session = await sessions.join(serializer="msgpack")
        topic = uri("mixed")
        inbox = EventInbox("msgpack subscriber")
        await within(msgpack_session.subscribe(inbox.handler, topic), "SUBSCRIBED")
        payload = {"n": 2 ** 40, "f": 1.5, "s": "é", "l": [None, True], "empty": {}}
        await within(json_session.publish(topic, payload, options=PublishOptions(acknowledge=True)), "PUBLISHED")
        assert (await inbox.next()).args == [payload]
        # Binary: msgpack `bin` travels to JSON peers as WAMP's "\0" + base64 string, which
        # autobahn turns back into bytes.
        json_inbox = EventInbox("json subscriber")
        await within(json_session.subscribe(json_inbox.handler, topic), "SUBSCRIBED")
        blob = bytes(range(256))
        await within(msgpack_session.publish(topic, blob, options=PublishOptions(acknowledge=True)), "PUBLISHED")
        assert (await json_inbox.next()).args == [blob]
        proc = uri("proc.mixed")
        await within(msgpack_session.register(lambda x: {"echo": x}, proc), "REGISTERED")
        assert await within(json_session.call(proc, payload), "RESULT") == {"echo": payload}
    scenario(wamp_herald, "json", body)
