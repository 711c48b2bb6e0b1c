"""What the public port gives away, and who may upgrade on it: /metrics and /health detail only
on the metrics listener (loopback by default); a browser from a foreign Origin is refused with
403 before the upgrade, for Pusher, WAMP v1 and WAMP v2."""

from __future__ import annotations

import pytest

from conftest import APP_A
from sec_clients import Aborted, Sub, http_get, join, upgrade_status, wamp
from sec_launch import start

# --- metrics and health ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/metrics", "/health", "/metrics?format=prometheus", "/health/", "/METRICS"])
def test_metrics_and_health_detail_are_not_on_the_public_port(main, path):
    status, body = http_get(main.port, path)
    assert status == 404, (path, status, body[:300])
    for detail in ("herald_", "backend", "connections", "# TYPE"):
        assert detail not in body, (path, body[:300])
    # Control: the port answers the liveness probes.
    assert http_get(main.port, "/up")[0] == 200
    assert http_get(main.port, "/ready")[0] == 200


def test_metrics_listener_serves_metrics_on_loopback_only_when_configured():
    server = start({"server": {"metrics_port": 0}, "apps": [{**APP_A}]}, labels=("metrics",))
    try:
        metrics_port = server.labelled["metrics"]  # the label regex already pinned 127.0.0.1
        status, body = http_get(metrics_port, "/metrics")
        assert status == 200 and "herald_" in body, (status, body[:300])
        status, body = http_get(metrics_port, "/health")
        assert status == 200 and "backend" in body, (status, body[:300])
        for path in ("/metrics", "/health"):
            status, body = http_get(server.port, path)
            assert status == 404 and "herald_" not in body and "backend" not in body, (path, status, body[:300])
    finally:
        server.stop()


# --- origins -----------------------------------------------------------------------------------

GOOD, OTHER, EVIL = "https://good.example", "https://other.example", "https://evil.example"
APP_O1 = {"id": "8201", "key": "sec-o1-key", "secret": APP_A["secret"] + "o1", "wamp": True, "allowed_origins": [GOOD]}
APP_O2 = {"id": "8202", "key": "sec-o2-key", "secret": APP_A["secret"] + "o2", "wamp": True, "allowed_origins": [OTHER]}
V1 = f"wamp1, app {APP_O1['id']}"


@pytest.fixture(scope="module")
def origins():
    server = start({"apps": [APP_O1, APP_O2],
                    "listeners": [{"host": "127.0.0.1", "port": 0, "protocol": "wamp1", "app": APP_O1["id"]}]},
                   labels=(V1,))
    server.v1_port = server.labelled[V1]
    yield server
    server.stop()


FOREIGN = [EVIL, "null", "https://good.example.evil.example", "http://good.example:1", "https://evilgood.example",
           "https://good.example@evil.example"]


@pytest.mark.parametrize("origin", FOREIGN)
def test_foreign_origin_gets_403_before_the_pusher_upgrade(origins, origin):
    path = f"/app/{APP_O1['key']}?protocol=7&client=js&version=8.6.0"
    assert upgrade_status(origins.port, path, {"Origin": origin}) == 403
    # Control: the admitted origin and a non-browser client (no Origin) are upgraded.
    assert upgrade_status(origins.port, path, {"Origin": GOOD}) == 101
    assert upgrade_status(origins.port, path) == 101


def test_origin_admitted_by_another_app_gets_403_on_this_app(origins):
    path = f"/app/{APP_O1['key']}?protocol=7&client=js&version=8.6.0"
    assert upgrade_status(origins.port, path, {"Origin": OTHER}) == 403
    path2 = f"/app/{APP_O2['key']}?protocol=7&client=js&version=8.6.0"
    assert upgrade_status(origins.port, path2, {"Origin": OTHER}) == 101


@pytest.mark.parametrize("origin", FOREIGN[:3])
def test_foreign_origin_gets_403_before_the_wamp_upgrade(origins, origin):
    assert upgrade_status(origins.v1_port, "/", {"Origin": origin}, protocol="wamp") == 403
    assert upgrade_status(origins.port, "/ws", {"Origin": origin}, protocol="wamp.2.json") == 403
    # Controls.
    assert upgrade_status(origins.v1_port, "/", {"Origin": GOOD}, protocol="wamp") == 101
    assert upgrade_status(origins.port, "/ws", {"Origin": GOOD}, protocol="wamp.2.json") == 101


def test_foreign_origin_that_another_realm_admits_is_aborted_at_hello(origins):
    async def attack():
        with pytest.raises(Aborted) as refused:
            await join(origins.port, APP_O1["id"], origin=OTHER)
        assert refused.value.reason == "wamp.error.not_authorized", refused.value
        session = await join(origins.port, APP_O2["id"], origin=OTHER)
        assert session.is_attached()
        session = await join(origins.port, APP_O1["id"], origin=GOOD)
        assert session.is_attached()

    wamp(attack)


def test_pusher_socket_from_an_admitted_origin_works(origins):
    sock = Sub(origins, APP_O1, headers={"Origin": GOOD})
    try:
        sock.ping_pong()
    finally:
        sock.shutdown()
