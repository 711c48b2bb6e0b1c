"""Floods that must be bounded, not absorbed: the HTTP API flooded far above an app's
`max_backend_events_per_second`, large request bodies held open on many connections, and
subscribers that stop reading while a large volume is published to them.

Documented answers:
- over `max_backend_events_per_second` (counted per event and channel), `POST /events` and
  `/batch_events` are answered 429 with `Retry-After` and `{"error": "Too many events: ..."}`;
  nothing of a refused request is published, and everything answered 200 reaches each
  subscriber exactly once; 0 turns the limit off;
- bodies declaring more than 64 KiB share a 64 MiB process-wide reading budget; a request that
  does not fit is answered 503 with `Retry-After: 1` at once, while ordinary (small) publishes
  keep being served;
- a subscriber that stops reading is closed with 4100 once its outbox (1 MiB / 4096 frames by
  default) is full; the other subscribers get every event, in order;
- through all of it the server's RSS stays under the bounds below (debug build).
"""

from __future__ import annotations

import http.client
import json
import math
import socket
import threading
import time

import pytest

from herald_launcher import Herald
from hostile_client import APP, PusherSocket, signed_query, encode_query
from rawws import CLOSE, PING, PONG, TEXT, ConnectionClosed
from spawned import KeepAlivePublisher, RssPeak, app_block

FLOOD_APP = {"id": "7101", "key": "flood-key", "secret": "flood-5b9d3f7a1e0c2486"}
FREE_APP = {"id": "7102", "key": "free-key", "secret": "free-9f3b7d1a5c0e2468"}
RATE = 200
FLOOD_CONNS = 64
FLOOD_REQUESTS = 80
# Peak RSS of the debug build while flooded; it idles near 10 MB (observed peaks are in
# docs/reports/reliability.md).
FLOOD_RSS_BOUND_KIB = 64 * 1024
SLOW_SUBSCRIBERS = 10
GOOD_SUBSCRIBERS = 3
# 10 stalled outboxes of at most 1 MiB each, plus the batches in flight, plus the idle server.
SLOW_RSS_BOUND_KIB = 80 * 1024
BODY_BUDGET_KIB = 64 * 1024

# /metrics is served only on the metrics listener (on a free port; its listening line says which).
CONFIG = ("[server]\nmetrics_port = 0\n\n" + app_block(APP) + app_block(FLOOD_APP, max_backend_events_per_second=RATE)
          + app_block(FREE_APP, max_backend_events_per_second=0))


@pytest.fixture(scope="module")
def herald():
    server = Herald(CONFIG).start(labels=("metrics",))
    yield server
    server.stop()


class Collector:
    """A well-behaved subscriber reading on a thread: every `ev` data in arrival order."""

    def __init__(self, server: Herald, app: dict, channel: str):
        self.sock = PusherSocket(server, key=app["key"])
        ack = self.sock.subscribe(channel)
        assert ack["event"] == "pusher_internal:subscription_succeeded", ack
        self.channel = channel
        self.data: list[str] = []
        self.markers: set[str] = set()
        self.marker_seen = threading.Condition()
        self.failure: str | None = None
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped.is_set():
            try:
                msg = self.sock.next_json(timeout=0.5)
            except TimeoutError:
                continue
            except Exception as err:  # noqa: BLE001 - reported by wait_marker
                self.failure = repr(err)
                with self.marker_seen:
                    self.marker_seen.notify_all()
                return
            if msg.get("event") == "ev":
                self.data.append(msg["data"])
            elif msg.get("event") == "marker":
                with self.marker_seen:
                    self.markers.add(msg["data"])
                    self.marker_seen.notify_all()
            elif msg.get("event") == "pusher:ping":
                self.sock.send_json({"event": "pusher:pong", "data": {}})

    def wait_marker(self, marker: str, timeout: float = 15.0):
        with self.marker_seen:
            ok = self.marker_seen.wait_for(lambda: marker in self.markers or self.failure, timeout)
        assert self.failure is None, f"subscriber failed: {self.failure}"
        assert ok, f"marker {marker} never arrived"

    def close(self):
        self.stopped.set()
        self.thread.join(timeout=5)
        self.sock.shutdown()


def publish_marker(server: Herald, app: dict, channel: str, marker: str):
    """Publishes `marker`, honouring Retry-After while the app is over its budget."""
    pub = KeepAlivePublisher(server.port, app)
    deadline = time.monotonic() + 15
    try:
        while time.monotonic() < deadline:
            status, headers, body = pub.publish(channel, "marker", marker)
            if status == 200:
                return
            assert status == 429, (status, body)
            time.sleep(float(headers.get("retry-after", "1")))  # the server's own back-off instruction
        raise AssertionError("the marker was never accepted")
    finally:
        pub.close()


# --- HTTP API flood -----------------------------------------------------------------------------------

def test_api_flood_is_answered_429_and_loses_nothing_accepted(herald):
    sub = Collector(herald, FLOOD_APP, "flood")
    rss = RssPeak(herald)
    accepted: list[str] = []
    refused: list[tuple[int, dict, str]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def flood(c: int):
        pub = KeepAlivePublisher(herald.port, FLOOD_APP)
        try:
            for i in range(FLOOD_REQUESTS):
                data = f"{c}-{i}"
                status, headers, body = pub.publish("flood", "ev", data)
                with lock:
                    if status == 200:
                        accepted.append(data)
                    else:
                        refused.append((status, headers, body))
        except OSError as err:
            with lock:
                errors.append(repr(err))
        finally:
            pub.close()

    started = time.monotonic()
    threads = [threading.Thread(target=flood, args=(c,)) for c in range(FLOOD_CONNS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    publish_marker(herald, FLOOD_APP, "flood", "end")
    sub.wait_marker("end")
    peak = rss.stop()
    sub.close()

    total = FLOOD_CONNS * FLOOD_REQUESTS
    assert not errors, errors[:5]
    assert len(accepted) + len(refused) == total
    assert {s for s, _, _ in refused} == {429}, {s for s, _, _ in refused}
    for _, headers, body in refused[:50]:
        assert int(headers["retry-after"]) >= 1
        assert "Too many events" in json.loads(body)["error"] and f"{RATE} events per second" in body
    # The bucket holds one second of budget and refills RATE per second.
    assert len(accepted) <= RATE * (elapsed + 1) + 1, (len(accepted), elapsed)
    assert len(accepted) >= RATE * 0.5, "the limit must not refuse everything"
    assert len(sub.data) == len(set(sub.data)), "an accepted event was delivered twice"
    assert sorted(sub.data) == sorted(accepted), (
        f"accepted {len(accepted)}, delivered {len(sub.data)}; "
        f"missing {sorted(set(accepted) - set(sub.data))[:5]}, extra {sorted(set(sub.data) - set(accepted))[:5]}")
    assert peak < FLOOD_RSS_BOUND_KIB, f"peak RSS {peak} KiB"
    print(f"\nflood: {total} requests in {elapsed:.1f} s ({total / elapsed:.0f}/s) on {FLOOD_CONNS} "
          f"connections; {len(accepted)} accepted, {len(refused)} x 429; peak RSS {peak} KiB")


def test_a_batch_over_the_budget_publishes_none_of_its_events(herald):
    sub = Collector(herald, FLOOD_APP, "batch")
    pub = KeepAlivePublisher(herald.port, FLOOD_APP)
    try:
        # 10 events x 20 channels = 200 deliveries: one second's budget each.
        batch = [{"name": "ev", "channels": [f"batch-{k}" for k in range(19)] + ["batch"], "data": f"b{i}"}
                 for i in range(10)]
        first, _, body = pub.post("batch_events", {"batch": batch})
        second, headers, body = pub.post("batch_events", {"batch": [dict(e, data="x" + e["data"]) for e in batch]})
    finally:
        pub.close()
    publish_marker(herald, FLOOD_APP, "batch", "end")
    sub.wait_marker("end")
    sub.close()
    assert second == 429 and int(headers["retry-after"]) >= 1, (second, body)
    delivered = sub.data
    assert not any(d.startswith("x") for d in delivered), "a refused batch was published in part"
    assert first in (200, 429)
    assert delivered == ([f"b{i}" for i in range(10)] if first == 200 else [])


def test_zero_turns_the_limit_off(herald):
    pub = KeepAlivePublisher(herald.port, FREE_APP)
    try:
        statuses = {pub.publish("free", "ev", str(i))[0] for i in range(RATE * 3)}
    finally:
        pub.close()
    assert statuses == {200}


# --- large bodies held open ---------------------------------------------------------------------------

def _open_body(server: Herald, declared: int) -> socket.socket:
    path = f"/apps/{FLOOD_APP['id']}/events"
    query = encode_query(signed_query("POST", path, body=b"x", app=FLOOD_APP))
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(f"POST {path}?{query} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {declared}\r\n\r\n".encode())
    return sock


def test_large_bodies_held_open_are_bounded_by_the_body_budget(herald):
    declared = 400_000
    fit = BODY_BUDGET_KIB // math.ceil(declared / 1024)
    extra = 30
    rss = RssPeak(herald)
    socks = [_open_body(herald, declared) for _ in range(fit + extra)]
    busy = []
    try:
        # The ones that do not fit are answered at once; the others wait for their body.
        for s in socks:
            s.settimeout(0.0)
        deadline = time.monotonic() + 8
        answered: dict[int, bytes] = {}
        while len(answered) < extra and time.monotonic() < deadline:
            for i, s in enumerate(socks):
                if i in answered:
                    continue
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    continue
                answered[i] = data
            time.sleep(0.01)  # polling 230 non-blocking sockets; no event to wait on
        busy = [d for d in answered.values() if d.startswith(b"HTTP/1.1 503")]
        assert len(busy) == extra, (len(busy), [d[:40] for d in answered.values()][:3])
        assert all(b"retry-after: 1" in d.lower() and b"too many request bodies" in d for d in busy)
        # Ordinary publishes are not affected by the spent budget.
        small = KeepAlivePublisher(herald.port, APP)
        assert small.publish("budget", "ev", "small")[0] == 200
        small.close()
    finally:
        for s in socks:
            s.close()
    peak = rss.stop()
    assert peak < FLOOD_RSS_BOUND_KIB, f"peak RSS {peak} KiB"
    # Once the holders are gone the budget is free again: a large, valid batch passes.
    big = {"batch": [{"name": "ev", "channel": "budget", "data": "d" * 9000} for _ in range(10)]}
    pub = KeepAlivePublisher(herald.port, FREE_APP)
    try:
        deadline = time.monotonic() + 5
        while True:
            status, _, body = pub.post("batch_events", big)
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)  # the server notices the closed holders asynchronously
    finally:
        pub.close()
    assert status == 200, body


# --- slow consumers -----------------------------------------------------------------------------------

class Stalled:
    """A subscriber that stops reading right after subscribing."""

    def __init__(self, server: Herald, app: dict, channel: str):
        self.sock = PusherSocket(server, key=app["key"])
        ack = self.sock.subscribe(channel)
        assert ack["event"] == "pusher_internal:subscription_succeeded", ack

    def end(self) -> int | str:
        """Reads what the kernel still holds for it: the close code, or "eof".

        The server gives a closing socket 5 s to flush its close frame; a client that resumes
        reading later finds the frames already in the kernel's buffers, then the end of the stream.
        """
        deadline = time.monotonic() + 20
        while True:
            try:
                opcode, payload = self.sock.recv_message(max(0.0, deadline - time.monotonic()))
            except ConnectionClosed:
                return "eof"
            if opcode == CLOSE:
                return int.from_bytes(payload[:2], "big")
            if opcode == PING:
                self.sock.send_frame(PONG, payload)
            assert opcode in (TEXT, PING)


def test_stalled_subscribers_are_closed_4100_and_memory_stays_bounded(herald):
    good = [Collector(herald, FREE_APP, "busy") for _ in range(GOOD_SUBSCRIBERS)]
    stalled = [Stalled(herald, FREE_APP, "busy") for _ in range(SLOW_SUBSCRIBERS)]
    closed_before = slow_consumers_closed(herald)
    baseline = herald.rss_kib()
    rss = RssPeak(herald)
    pub = KeepAlivePublisher(herald.port, FREE_APP)
    sent = []
    try:
        # 300 batches x 10 events x 10 KB = 30 MB to each subscriber.
        for b in range(300):
            events = [{"name": "ev", "channel": "busy", "data": f"{b}-{i}-" + "p" * 10_000} for i in range(10)]
            status, _, body = pub.post("batch_events", {"batch": events})
            assert status == 200, body
            sent += [e["data"] for e in events]
    finally:
        pub.close()
    publish_marker(herald, FREE_APP, "busy", "end")
    for g in good:
        g.wait_marker("end", timeout=60)
    peak = rss.stop()
    closed = slow_consumers_closed(herald) - closed_before
    ends = [s.end() for s in stalled]
    for g in good:
        g.close()
    for s in stalled:
        s.sock.shutdown()
    assert closed == SLOW_SUBSCRIBERS, f"{closed} slow consumers closed"
    assert set(ends) <= {4100, "eof"}, ends
    for g in good:
        assert g.data == sent, f"a well-behaved subscriber got {len(g.data)}/{len(sent)} events"
    assert peak < SLOW_RSS_BOUND_KIB, f"peak RSS {peak} KiB (baseline {baseline} KiB)"
    print(f"\nslow consumers: 30 MB to {GOOD_SUBSCRIBERS} readers and {SLOW_SUBSCRIBERS} stalled; "
          f"RSS baseline {baseline} KiB, peak {peak} KiB; stalled ends {ends}")


def slow_consumers_closed(server: Herald) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", server.labelled["metrics"], timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    line = next(l for l in text.splitlines() if l.startswith("herald_slow_consumers_closed_total "))
    return int(line.split()[1])
