"""WAMP authorization (docs/wamp.md "Authorization"): an app with `wamp_authorizer = "rules"`
(rules in wamp1_client.WAMP_APPS["rules"]), and Pusher's private/presence channels being closed to
WAMP on every app.

v2 denials are `ERROR wamp.error.not_authorized`; v1 ignores denied SUBSCRIBE / PUBLISH silently
(proven by a later allowed event on the same path arriving first and only) and answers a denied
CALL with CALLERROR.
"""

from __future__ import annotations

import asyncio
import functools

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions, SubscribeOptions

from conftest import RawSocket, make_sdk, uid
from pusher_sign import channel_auth
from wamp1_client import (
    CALLERROR, CALLRESULT, SUBSCRIBE, WAMP_APPS, EventInbox, Wamp1Client, wamp_herald, within,
)
from wamp1_client import scenario as wamp_scenario

__all__ = ["wamp_herald"]

RULES = WAMP_APPS["rules"]
OPEN = WAMP_APPS["open"]
# Sessions of the rules realm unless a test says otherwise.
scenario = functools.partial(wamp_scenario, realm=RULES["id"])
NOT_AUTHORIZED = "wamp.error.not_authorized"


@pytest.fixture(params=["json", "msgpack"])
def serializer(request):
    return request.param


@pytest.fixture(autouse=True)
def _alive(wamp_herald):
    yield
    wamp_herald.assert_alive()




async def blocking(fn, *args):
    loop = asyncio.get_running_loop()
    return await within(loop.run_in_executor(None, lambda: fn(*args)), getattr(fn, "__name__", "call"))


def name(area: str, what: str) -> str:
    return f"authz.{area}.{uid(what)}"


# --- v2 with rules -------------------------------------------------------------------------

def test_v2_subscribe_allowed_and_denied(wamp_herald, serializer):
    async def body(sessions):
        session = await sessions.join()
        await within(session.subscribe(lambda *a: None, name("open", "sub")), "SUBSCRIBED")
        await within(session.subscribe(lambda *a: None, name("readonly", "sub")), "SUBSCRIBED")
        for denied in (name("closed", "sub"), "authz.openx.t", "other.thing"):
            with pytest.raises(ApplicationError) as err:
                await within(session.subscribe(lambda *a: None, denied), f"ERROR for {denied}")
            assert err.value.error == NOT_AUTHORIZED, denied
        # Wildcard rule `authz..wild`: one component in the middle.
        await within(session.subscribe(lambda *a: None, "authz.anything.wild"), "SUBSCRIBED (wildcard rule)")
        with pytest.raises(ApplicationError) as err:
            await within(session.subscribe(lambda *a: None, "authz.anything.tame"), "ERROR")
        assert err.value.error == NOT_AUTHORIZED
        assert session.is_attached()
    scenario(wamp_herald, serializer, body)


def test_v2_publish_denied_with_ack_and_silently_without(wamp_herald, serializer):
    async def body(sessions):
        pub, sub = await sessions.join(), await sessions.join()
        readonly = name("readonly", "pub")
        inbox = EventInbox("readonly subscriber")
        await within(sub.subscribe(inbox.handler, readonly), "SUBSCRIBED")
        with pytest.raises(ApplicationError) as err:
            await within(pub.publish(readonly, "denied", options=PublishOptions(acknowledge=True)), "ERROR")
        assert err.value.error == NOT_AUTHORIZED
        pub.publish(readonly, "denied, unacknowledged")  # no answer, nothing delivered
        # The HTTP API is not subject to WAMP rules: its event arrives first and only.
        await blocking(make_sdk(wamp_herald, RULES).trigger, readonly, "http", "allowed")
        assert (await inbox.next()).args == ["allowed"]
        assert inbox.payloads() == ["allowed"]
        # Allowed topic works for the same publisher.
        open_topic = name("open", "pub")
        open_inbox = EventInbox("open subscriber")
        await within(sub.subscribe(open_inbox.handler, open_topic), "SUBSCRIBED")
        await within(pub.publish(open_topic, "ok", options=PublishOptions(acknowledge=True)), "PUBLISHED")
        assert (await open_inbox.next()).args == ["ok"]
    scenario(wamp_herald, serializer, body)


def test_v2_register_and_call_rules(wamp_herald, serializer):
    async def body(sessions):
        callee, caller = await sessions.join(), await sessions.join()
        with pytest.raises(ApplicationError) as err:
            await within(callee.register(lambda: 1, name("closed", "proc")), "ERROR")
        assert err.value.error == NOT_AUTHORIZED
        allowed = name("open", "proc")
        await within(callee.register(lambda x: x * 2, allowed), "REGISTERED")
        assert await within(caller.call(allowed, 21), "RESULT") == 42
        # First matching rule wins: `call authz.open.secret` is denied before the prefix allow.
        await within(callee.register(lambda: "secret", "authz.open.secret"), "REGISTERED")
        with pytest.raises(ApplicationError) as err:
            await within(caller.call("authz.open.secret"), "ERROR")
        assert err.value.error == NOT_AUTHORIZED
        # A denied call to an unregistered procedure is not_authorized, not no_such_procedure.
        with pytest.raises(ApplicationError) as err:
            await within(caller.call(name("closed", "missing")), "ERROR")
        assert err.value.error == NOT_AUTHORIZED
        with pytest.raises(ApplicationError) as err:
            await within(caller.call(name("open", "missing")), "ERROR")
        assert err.value.error == "wamp.error.no_such_procedure"
    scenario(wamp_herald, serializer, body)


# --- Pusher-only channels are closed to WAMP (every app) -------------------------------------

PUSHER_ONLY = ["private-{}", "presence-{}", "private-encrypted-{}"]


@pytest.mark.parametrize("pattern", PUSHER_ONLY)
def test_v2_subscribe_or_publish_to_pusher_only_channel_refused(wamp_herald, serializer, pattern):
    async def body(sessions):
        session = await sessions.join()
        channel = pattern.format(uid("wamp"))
        with pytest.raises(ApplicationError) as err:
            await within(session.subscribe(lambda *a: None, channel), "ERROR")
        assert err.value.error == NOT_AUTHORIZED
        with pytest.raises(ApplicationError) as err:
            await within(session.publish(channel, 1, options=PublishOptions(acknowledge=True)), "ERROR")
        assert err.value.error == NOT_AUTHORIZED
    scenario(wamp_herald, serializer, body, realm=OPEN["id"])


PATTERN_LEAKS = [
    # (match, pattern, Pusher-only channel it covers, public channel it covers)
    ("prefix", "privat", "private-{s}", "privatized-{s}"),
    ("prefix", "pres", "presence-{s}", "press-{s}"),
    ("prefix", "private-enc", "private-encrypted-{s}", None),
    ("wildcard", ".{s}", "private-x.{s}", "public.{s}"),
]


@pytest.mark.parametrize("match,pattern,secret,public", PATTERN_LEAKS,
                         ids=["prefix-private", "prefix-presence", "prefix-encrypted", "wildcard-private"])
def test_v2_pattern_subscription_never_sees_pusher_only_channels(wamp_herald, match, pattern, secret, public):
    """A pattern that also covers `private-`/`presence-` names must not leak their events:
    either the subscription is refused, or those events are filtered out."""
    async def body(sessions):
        session = await sessions.join()
        stem = uid("leak").replace("-", "")
        inbox = EventInbox(f"{match} {pattern}")
        try:
            await within(session.subscribe(inbox.handler, pattern.format(s=stem),
                                           options=SubscribeOptions(match=match, details=True)), "SUBSCRIBED or ERROR")
        except ApplicationError as err:
            assert err.error == NOT_AUTHORIZED
            return
        sdk = make_sdk(wamp_herald, OPEN)
        await blocking(sdk.trigger, secret.format(s=stem), "secret", {"leak": True})
        if public is None:
            # Nothing public shares this prefix: a v2 publish to a matching public URI is impossible,
            # so follow with a direct subscription on a control topic.
            control = f"control.{stem}"
            control_inbox = EventInbox("control")
            await within(session.subscribe(control_inbox.handler, control), "SUBSCRIBED")
            await blocking(sdk.trigger, control, "public", {"leak": False})
            await control_inbox.next()
        else:
            await blocking(sdk.trigger, public.format(s=stem), "public", {"leak": False})
            event = await inbox.next()
            assert event.topic == public.format(s=stem) and event.args == [{"leak": False}], event
        assert [e for e in inbox.items if e.args == [{"leak": True}]] == [], \
            f"{match} subscription {pattern!r} received an event of {secret.format(s=stem)}"
    scenario(wamp_herald, "json", body, realm=OPEN["id"])


def test_v1_subscribe_and_publish_to_private_channel_ignored(wamp_herald):
    channel = f"private-{uid('v1')}"
    pusher = RawSocket(wamp_herald.pusher_url("open"))
    old = Wamp1Client(wamp_herald.v1_port("open"))
    try:
        pusher.subscribe(channel, auth=channel_auth(OPEN, pusher.socket_id, channel))
        old.subscribe(channel)
        old.publish(channel, {"from": "v1"})
        old.sync()
        make_sdk(wamp_herald, OPEN).trigger(channel, "from-http", {"from": "http"})
        first = pusher.next("from-http")
        assert first["decoded"] == {"from": "http"}
        assert [m for m in pusher.seen if m.get("channel") == channel and m.get("event") != "pusher_internal:subscription_succeeded"] == [first], \
            "the v1 publish to a private channel was delivered"
        # The v1 subscription was refused: a later public event on another topic is the first thing it gets.
        public = f"pub-{uid('v1')}"
        old.subscribe(public)
        make_sdk(wamp_herald, OPEN).trigger(public, "x", "public")
        assert old.expect_event(public) == "public"
        assert old.events(channel) == []
    finally:
        pusher.close()
        old.close()


# --- v1 with rules -------------------------------------------------------------------------

def test_v1_denied_subscribe_is_silently_ignored(wamp_herald):
    denied, allowed = name("closed", "v1sub"), name("open", "v1sub")
    watcher = RawSocket(wamp_herald.pusher_url("rules"))
    old = Wamp1Client(wamp_herald.v1_port("rules"))
    try:
        watcher.subscribe(denied)
        old.send([SUBSCRIBE, denied])
        old.subscribe(allowed)
        assert old.messages[1:] == [old.messages[-1]] and old.messages[-1][0] == CALLERROR, \
            f"denied SUBSCRIBE must not be answered: {old.messages}"
        sdk = make_sdk(wamp_herald, RULES)
        sdk.trigger(denied, "e", "must not arrive")
        assert watcher.next("e")["data"] == "must not arrive"  # the event was fanned out
        sdk.trigger(allowed, "e", "allowed")
        assert old.expect_event(allowed) == "allowed"
        assert old.events(denied) == []
        assert [m[1] for m in old.messages if m[0] == 8] == [allowed]
    finally:
        watcher.close()
        old.close()


def test_v1_denied_publish_is_silently_ignored(wamp_herald):
    async def body(sessions):
        readonly = name("readonly", "v1pub")
        sub = await sessions.join()
        inbox = EventInbox("v2 subscriber on readonly topic")
        await within(sub.subscribe(inbox.handler, readonly), "SUBSCRIBED")
        old = Wamp1Client(wamp_herald.v1_port("rules"))
        try:
            old.publish(readonly, "denied v1 publish")
            await blocking(old.sync)
            assert old.closed is None
            await blocking(make_sdk(wamp_herald, RULES).trigger, readonly, "e", "from http")
            assert (await inbox.next()).args == ["from http"]
            assert inbox.payloads() == ["from http"]
            # An allowed v1 publish from the same connection goes through.
            allowed = name("open", "v1pub")
            other = EventInbox("v2 subscriber on open topic")
            await within(sub.subscribe(other.handler, allowed), "SUBSCRIBED")
            old.publish(allowed, "allowed v1 publish")
            assert (await other.next()).args == ["allowed v1 publish"]
        finally:
            old.close()
    scenario(wamp_herald, "json", body)


def test_v1_denied_call_gets_callerror(wamp_herald):
    old = Wamp1Client(wamp_herald.v1_port("rules"))
    try:
        denied = old.call("authz.open.secret", 1, call_id="denied-1")
        assert denied[0] == CALLERROR and denied[1] == "denied-1", denied
        assert isinstance(denied[2], str) and denied[2], denied
        closed_area = old.call(name("closed", "proc"), call_id="denied-2")
        assert closed_area[0] == CALLERROR and closed_area[1] == "denied-2"
        missing = old.call(name("open", "proc"), call_id="allowed-missing")
        assert missing[0] == CALLERROR and missing[2] == "http://herald.invalid/error#no_such_procedure", missing
        assert all(m[0] in (CALLERROR,) for m in old.messages[1:]), old.messages
        assert CALLRESULT not in [m[0] for m in old.messages]
        assert old.closed is None
        print("v1 denied CALL error URIs:", denied[2], closed_area[2])
    finally:
        old.close()
