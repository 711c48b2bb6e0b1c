"""Connection floods from one address: with per-address limits set, the surplus gets 429 before
the upgrade (a forged X-Forwarded-For from an untrusted peer changes nothing); with the defaults a
reconnect storm of a few hundred connections from loopback is served. And a WAMP publisher
flooding a channel is cut at its per-session publish rate."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions

from conftest import APP_A, APP_T
from sec_clients import Sub, control, join, uid, upgrade_status, wamp
from sec_launch import start

PUSHER_PATH = f"/app/{APP_A['key']}?protocol=7&client=js&version=8.6.0"


def test_connections_over_max_connections_per_ip_get_429_before_the_upgrade():
    server = start({"server": {"max_connections_per_ip": 3}, "apps": [{**APP_A, "wamp": True}]})
    held = []
    try:
        held = [Sub(server, APP_A) for _ in range(3)]  # control: the first three are served
        assert upgrade_status(server.port, PUSHER_PATH) == 429
        assert upgrade_status(server.port, "/ws", protocol="wamp.2.json") == 429
        for spoof in ({"X-Forwarded-For": "203.0.113.7"}, {"X-Real-IP": "203.0.113.8"},
                      {"Forwarded": "for=203.0.113.9"}):
            assert upgrade_status(server.port, PUSHER_PATH, spoof) == 429, spoof
        for sock in held:
            sock.ping_pong()  # the held ones are untouched
    finally:
        for sock in held:
            sock.shutdown()
        server.stop()


def test_new_connections_over_the_per_second_limit_get_429():
    server = start({"server": {"max_new_connections_per_ip_per_second": 5}, "apps": [{**APP_A}]})
    try:
        statuses = [upgrade_status(server.port, PUSHER_PATH) for _ in range(30)]
        assert statuses[:5] == [101] * 5, statuses
        assert 429 in statuses, statuses
        assert set(statuses) <= {101, 429}, statuses
    finally:
        server.stop()


def test_default_config_serves_a_reconnect_storm_from_loopback(main, subs):
    """300 connect / handshake / close cycles from 127.0.0.1, 20 at a time: none refused."""
    def cycle(_):
        sock = Sub(main, APP_A)
        try:
            return bool(sock.socket_id)
        finally:
            sock.shutdown()

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(cycle, range(300)))
    assert results.count(True) == 300
    channel = uid("sec-after-storm")
    victim = subs()
    victim.join(channel)
    control(main, APP_A, channel, victim)


def test_wamp_publish_flood_is_cut_at_the_session_rate(main, subs):
    """`wamp_max_publishes_per_second` (default 100): a flood of acknowledged publishes is
    answered herald.error.rate_limited past the budget, and the victim gets only the budget."""
    channel = uid("sec-flood")
    victim = subs(APP_T)
    victim.join(channel)
    control(main, APP_T, channel, victim)
    outcome = {"ok": 0, "limited": 0, "other": []}

    async def flood():
        session = await join(main.port, APP_T["id"])
        import asyncio

        async def one(i):
            try:
                await session.publish(channel, {"i": i}, options=PublishOptions(acknowledge=True))
                outcome["ok"] += 1
            except ApplicationError as err:
                if err.error == "herald.error.rate_limited":
                    outcome["limited"] += 1
                else:
                    outcome["other"].append(err.error)

        await asyncio.gather(*(one(i) for i in range(400)))

    wamp(flood)
    assert outcome["other"] == [], outcome
    assert outcome["limited"] > 0 and outcome["ok"] <= 250, outcome
    received = 0
    while True:
        try:
            msg = victim.next_json(1.0)
        except TimeoutError:
            break
        if msg.get("channel") == channel:
            received += 1
            assert "i" in json.loads(msg["data"])
    assert received == outcome["ok"], (received, outcome)
