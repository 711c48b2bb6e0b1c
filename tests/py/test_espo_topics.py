"""EspoCRM profile, topic side: categories, access checks, the ZeroMQ submission path and routing
(docs/espocrm.md), with php-zmq (libzmq) as EspoCRM's sender,
the fake EspoCRM root's AclCheck, raw WAMP v1 clients, and Pusher / WAMP v2 subscribers of the
same app.

An event's absence is proven by order: submissions of one push() reach every socket in order,
so when a later one arrived, an earlier one that did not is not coming.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "espo"))

from conftest import RawSocket, signed_request  # noqa: E402
from espo_harness import APP, EspoHerald, barrier, base_espocrm, events, uid  # noqa: E402


@pytest.fixture(scope="module")
def espo():
    # Shared with Pusher clients, the HTTP API and WAMP v2, as the one-hub tests below need.
    server = EspoHerald(base_espocrm(share_broadcasts=True))
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def fresh(request):
    name = next((n for n in ("espo", "shared") if n in request.fixturenames), None)
    server = request.getfixturevalue(name) if name else None
    if server:
        server.drain()
    yield
    if server:
        server.close_clients()
        server.assert_alive()


def record(owner: str = "u1", scope: str = "Account", kind: str = "recordUpdate") -> str:
    return f"{kind}.{scope}.{owner}-{uid('r')}"


def marker(espo, client) -> str:
    """Subscribes `client` to a fresh approved topic used as an end-of-batch marker."""
    topic = record("public", kind="recordUpdate")
    espo.subscribe_approved(client, topic)
    return topic


# --- E6: categories -------------------------------------------------------------------------------

def test_e6_category_topics_are_allowed_and_others_ignored(espo):
    client = espo.client("u1")
    own = record("u1")
    espo.subscribe_approved(client, own)
    espo.subscribe_approved(client, "popupNotifications.event")
    deal = f"dealRoom.u1-{uid('d')}"          # custom/ metadata category
    espo.subscribe_approved(client, deal)
    client.send([5, "foo.bar"])
    client.send([5, "popupNotifications.other"])
    barrier(client)
    espo.push('{"topicId":"foo.bar"}', '{"topicId":"popupNotifications.other"}',
              f'{{"topicId":"{own}"}}', '{"userId":"u1","topicId":"popupNotifications.event","list":[]}',
              f'{{"topicId":"{deal}"}}')
    assert client.expect_event(own) == {"topicId": own}
    assert client.expect_event("popupNotifications.event") == {"userId": "u1", "topicId": "popupNotifications.event",
                                                              "list": []}
    assert client.expect_event(deal) == {"topicId": deal}
    assert events(client, "foo.bar") == [] and events(client, "popupNotifications.other") == []
    espo.wait_stderr("dropping an EspoCRM submission for a topic that is not a category")


# --- E7: access checks ----------------------------------------------------------------------------

def test_e7_access_check_command_is_built_like_espocrm(espo):
    client = espo.client("u2")
    topic = record("u2", scope="Lead", kind="streamUpdate")
    espo.subscribe_approved(client, topic)
    rec = topic.split(".")[2]
    starts = [c[3:] for c in espo.calls() if c[0] == "start" and c[3] == "AclCheck"]
    assert ["AclCheck", "--userId=u2", "--scope=Lead", f"--id={rec}", "--action=stream"] in starts
    espo.subscribe_approved(client, "calendarUpdate")
    starts = [c[3:] for c in espo.calls() if c[0] == "start" and c[3] == "AclCheck"]
    assert ["AclCheck", "--userId=u2", "--scope=Calendar"] in starts


def test_e7_denied_records_get_no_events_even_broadcasts(espo):
    owner = espo.client("u1")
    intruder = espo.client("u2")
    topic = record("u1")
    espo.subscribe_approved(owner, topic)
    espo.subscribe_denied(intruder, topic)
    espo.subscribe_denied(espo.client("u3"), "calendarUpdate")
    end = marker(espo, intruder)
    espo.push(f'{{"topicId":"{topic}","n":1}}', f'{{"topicId":"{end}"}}')
    assert owner.expect_event(topic) == {"topicId": topic, "n": 1}
    intruder.expect_event(end)
    assert events(intruder, topic) == [], "EspoCRM's own daemon leaks broadcasts to denied subscribers"


def test_e7_unsubscribe_while_the_check_runs_wins():
    server = EspoHerald(env={"ESPO_FAKE_SLOW_MS": "500"})
    try:
        client = server.client("u1")
        slow = f"recordUpdate.Account.u1-slow{uid('s')}"
        client.send([5, slow])
        client.send([6, slow])
        server.wait_line(rf"check for topic {slow} ignored: unsubscribed meanwhile")
        end = marker(server, client)
        server.push(f'{{"topicId":"{slow}"}}', f'{{"topicId":"{end}"}}')
        client.expect_event(end)
        assert events(client, slow) == []
    finally:
        server.stop()


def test_e7_checks_run_concurrently_up_to_the_cap():
    server = EspoHerald(base_espocrm(max_concurrent_checks=2, check_timeout=30), env={"ESPO_FAKE_SLOW_MS": "300"})
    try:
        client = server.client("u1")
        topics = [f"recordUpdate.Account.u1-slow{uid('c')}" for _ in range(6)]
        for t in topics:
            client.send([5, t])
        added = set()
        while added != set(topics):
            line = server.wait_line(r"add topic recordUpdate\.Account\.u1-slow", timeout=30)
            added.add(line.split("add topic ")[1].split(" ")[0])
        live = peak = 0
        for call in server.calls():
            if call[3] != "AclCheck":
                continue
            live += 1 if call[0] == "start" else -1
            peak = max(peak, live)
        assert peak == 2, f"at most max_concurrent_checks PHP processes at once (peak {peak})"
    finally:
        server.stop()


# --- E8, E9: the ZeroMQ path and routing --------------------------------------------------------

def test_e8_e9_user_submission_reaches_only_that_users_subscribed_sockets(espo):
    a = espo.client("u1")
    b = espo.client("u1")
    idle = espo.client("u1")                   # u1, not subscribed
    other = espo.client("u2")
    for c in (a, b, other):
        espo.subscribe_approved(c, "newNotification")
    end = marker(espo, other)
    idle_end = marker(espo, idle)
    espo.push('{"userId":"u1","topicId":"newNotification"}', f'{{"topicId":"{end}"}}', f'{{"topicId":"{idle_end}"}}')
    for c in (a, b):
        assert c.expect_event("newNotification") == {"userId": "u1", "topicId": "newNotification"}
    other.expect_event(end)
    idle.expect_event(idle_end)
    assert events(other, "newNotification") == [] and events(idle, "newNotification") == []


def test_e9_broadcast_reaches_every_subscriber_with_the_whole_object(espo):
    clients = [espo.client(u) for u in ("u1", "u2", "u3")]
    for c in clients:
        espo.subscribe_approved(c, "appParamsUpdate")
    payload = {"createdById": "u1", "noteId": "n1", "pin": False, "nested": {"a": [1, 2.5, None]},
               "text": "caf\u00e9 \u2603 \"q\"", "topicId": "appParamsUpdate"}
    espo.push(json.dumps(payload, ensure_ascii=False))
    for c in clients:
        msg = c.expect(lambda m: m[:2] == [8, "appParamsUpdate"])
        assert msg == [8, "appParamsUpdate", payload]


def test_e9_malformed_submissions_are_dropped_and_logged(espo):
    client = espo.client("u1")
    espo.subscribe_approved(client, "newNotification")
    bad = ["not json", '{"userId":"u1"', '["newNotification"]', '"newNotification"', '{"userId":"u1"}',
           '{"topicId":""}', '{"topicId":5}', '{"topicId":"newNotification","userId":["u1"]}',
           '{"topicId":"newNotification","topicId":"x"}', "\xff\xfe", ""]
    espo.push(*bad, '{"userId":"u1","topicId":"newNotification","ok":true}')
    assert client.expect_event("newNotification") == {"userId": "u1", "topicId": "newNotification", "ok": True}
    assert events(client, "newNotification") == [{"userId": "u1", "topicId": "newNotification", "ok": True}]
    for _ in bad:
        espo.wait_stderr("dropping an invalid EspoCRM submission")


def test_e8_multipart_messages_are_dropped(espo):
    client = espo.client("u1")
    espo.subscribe_approved(client, "newNotification")
    espo.push_args("--multipart", '{"userId":"u1","topicId":"newNotification","part":1}', "x")
    espo.push('{"userId":"u1","topicId":"newNotification","after":true}')
    assert client.expect_event("newNotification") == {"userId": "u1", "topicId": "newNotification", "after": True}
    assert len(events(client, "newNotification")) == 1


def test_e9_flood_of_submissions_loses_nothing(espo):
    topic = record("public")
    subscribers = [espo.client(u) for u in ("u1", "u2", "u3")]
    for c in subscribers:
        espo.subscribe_approved(c, topic)
    n = 3000
    espo.push_args("--flood", str(n), topic)
    for c in subscribers:
        c.expect(lambda m: m[:2] == [8, topic] and m[2]["seq"] == n - 1, timeout=60, what="the last event")
        assert [e["seq"] for e in events(c, topic)] == list(range(n))


def test_w3_abrupt_close_frees_the_subscription(espo):
    client = espo.client("u1")
    topic = record("u1")
    espo.subscribe_approved(client, topic)
    path = f"/apps/{APP['id']}/channels/{topic}"
    status, body = signed_request(espo, APP, "GET", path, query={"info": "subscription_count"})
    assert status == 200 and json.loads(body)["occupied"] is True, body
    client.abort()
    espo.wait_line(rf"\] {client.conn_id}: close$")
    status, body = signed_request(espo, APP, "GET", path, query={"info": "subscription_count"})
    assert status == 200 and json.loads(body)["occupied"] is False, body


def test_e8_many_short_lived_php_senders_lose_nothing(espo):
    # Like EspoCRM's web requests: each PHP process connects, sends one message, disconnects.
    from concurrent.futures import ThreadPoolExecutor
    topic = record("public")
    client = espo.client("u2")
    espo.subscribe_approved(client, topic)
    n = 40
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: espo.push(json.dumps({"seq": i, "topicId": topic})), range(n)))
    seen = set()
    while len(seen) < n:
        seen.add(client.expect_event(topic, timeout=30)["seq"])
    assert seen == set(range(n))


# --- One hub: the app is the profile's own unless shared -------------------------------------------
#
# Sessions of the main listener (Pusher, WAMP v2) have no EspoCRM identity. By default they do not
# find the EspoCRM app at all; with `share_broadcasts = true` they may read the categories that
# EspoCRM grants without an access check, and never send into EspoCRM's topics.

def pusher_url(server) -> str:
    return f"ws://127.0.0.1:{server.port}/app/{APP['key']}?protocol=7&client=python&version=1.0"


def v2_sessions(server):
    from wamp1_client import Sessions

    class Target:
        port = server.port

        @staticmethod
        def v2_url(path="/ws"):
            return f"ws://127.0.0.1:{server.port}{path}"

    return Sessions(Target, realm=APP["id"])


def pusher_refusal(server) -> tuple[list[dict], int]:
    """Connects a Pusher client that the server closes; returns what it read and the close code."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    seen = []
    with connect(pusher_url(server), open_timeout=10) as ws:
        while True:
            try:
                seen.append(json.loads(ws.recv(timeout=10)))
            except ConnectionClosed as closed:
                return seen, closed.rcvd.code if closed.rcvd else 1006


@pytest.fixture(scope="module")
def shared():
    server = EspoHerald(espocrm=base_espocrm(share_broadcasts=True),
                        apps=[{**APP, "wamp": True, "enable_client_messages": True}])
    yield server
    server.stop()


def test_espo_app_is_closed_to_pusher_and_wamp_v2_by_default():
    from wamp1_client import Aborted

    server = EspoHerald(apps=[{**APP, "wamp": True}])
    try:
        seen, code = pusher_refusal(server)
        assert code == 4001, "app not found, as for an unknown key"
        assert [m["event"] for m in seen] == ["pusher:error"], seen

        async def hello():
            sessions = v2_sessions(server)
            try:
                with pytest.raises(Aborted) as aborted:
                    await sessions.join()
                return aborted.value.reason
            finally:
                await sessions.close()

        assert asyncio.run(asyncio.wait_for(hello(), 30)) == "wamp.error.no_such_realm", "even with wamp = true"
        server.assert_alive()
    finally:
        server.stop()


def test_http_api_still_publishes_into_espo_topics(espo):
    topic = f"appParamsUpdate.{uid('h')}"
    client = espo.client("u1")
    espo.subscribe_approved(client, topic)
    body = json.dumps({"name": "update", "channel": topic, "data": json.dumps({"n": 1})})
    status, text = signed_request(espo, APP, "POST", f"/apps/{APP['id']}/events", body=body)
    assert status == 200, text
    assert client.expect_event(topic) == {"n": 1}


def test_shared_app_lets_pusher_read_broadcast_categories_only(shared):
    checked = record("public")
    broadcast = f"appParamsUpdate.{uid('b')}"
    v1 = shared.client("u1")
    shared.subscribe_approved(v1, checked)
    shared.subscribe_approved(v1, broadcast)
    calls_before = len(shared.calls())
    pusher = RawSocket(pusher_url(shared))
    for topic in (checked, "calendarUpdate", f"dealRoom.{uid('d')}", "foo.bar"):
        pusher.send({"event": "pusher:subscribe", "data": {"channel": topic}})
        refused = pusher.next("pusher:subscription_error", lambda m, t=topic: m.get("channel") == t)
        assert refused["decoded"]["status"] == 403, refused
    pusher.subscribe(broadcast)
    assert len(shared.calls()) == calls_before, "refusals run no check command"
    shared.push(f'{{"topicId":"{checked}","n":1}}', f'{{"topicId":"{broadcast}","n":2}}',
                f'{{"userId":"u1","topicId":"{broadcast}","n":3}}', f'{{"topicId":"{broadcast}","n":4}}')
    got = [json.loads(pusher.next(broadcast)["data"])["n"] for _ in range(2)]
    assert got == [2, 4], "broadcasts only: user-targeted messages stay with that user's EspoCRM sockets"
    assert not [m for m in pusher.seen if m.get("channel") == checked and m.get("event") != "pusher:subscription_error"]
    assert v1.expect_event(checked)["n"] == 1
    assert [v1.expect_event(broadcast)["n"] for _ in range(3)] == [2, 3, 4]
    pusher.close()


def test_shared_app_refuses_pusher_client_events_and_signed_channels(shared):
    from pusher_sign import channel_auth

    broadcast = f"appParamsUpdate.{uid('c')}"
    v1 = shared.client("u2")
    shared.subscribe_approved(v1, broadcast)
    pusher = RawSocket(pusher_url(shared))
    pusher.subscribe(broadcast)
    pusher.send({"event": "client-forged", "channel": broadcast, "data": {"n": 0}})
    assert "Client event" in pusher.next("pusher:error")["decoded"]["message"]
    # Even a correctly signed private channel is not the profile's to give.
    channel = "private-espo"
    auth = channel_auth(APP, pusher.socket_id, channel)
    pusher.send({"event": "pusher:subscribe", "data": {"channel": channel, "auth": auth}})
    refused = pusher.next("pusher:subscription_error", lambda m: m.get("channel") == channel)
    assert refused["decoded"]["status"] == 403, refused
    shared.push(f'{{"topicId":"{broadcast}","n":1}}')
    assert v1.expect_event(broadcast) == {"topicId": broadcast, "n": 1}, "the forged event never arrived"
    pusher.close()


def test_shared_app_lets_wamp_v2_read_broadcasts_but_never_publish(shared):
    from autobahn.wamp.exception import ApplicationError
    from autobahn.wamp.types import PublishOptions
    from wamp1_client import EventInbox, within

    checked = record("public")
    broadcast = f"appParamsUpdate.{uid('w')}"
    v1 = shared.client("u1")
    shared.subscribe_approved(v1, broadcast)

    async def v2_side():
        sessions = v2_sessions(shared)
        try:
            session = await sessions.join()
            inbox = EventInbox(broadcast)
            with pytest.raises(ApplicationError) as err:
                await within(session.subscribe(inbox.handler, checked), "ERROR")
            assert err.value.error == "wamp.error.not_authorized"
            await within(session.subscribe(inbox.handler, broadcast), "SUBSCRIBED")
            for topic in (broadcast, checked):
                with pytest.raises(ApplicationError) as err:
                    await within(session.publish(topic, {"forged": True}, options=PublishOptions(acknowledge=True)),
                                 "ERROR")
                assert err.value.error == "wamp.error.not_authorized"
            await asyncio.get_running_loop().run_in_executor(
                None, shared.push, f'{{"topicId":"{broadcast}","n":6}}',
                f'{{"userId":"u1","topicId":"{broadcast}","n":7}}', f'{{"topicId":"{broadcast}","n":8}}')
            return [(await inbox.next()).args, (await inbox.next()).args]
        finally:
            await sessions.close()

    got = asyncio.run(asyncio.wait_for(v2_side(), 30))
    assert got == [[{"topicId": broadcast, "n": 6}], [{"topicId": broadcast, "n": 8}]], "v2 gets broadcasts only"
    assert [v1.expect_event(broadcast)["n"] for _ in range(3)] == [6, 7, 8], "and no forged event came first"
