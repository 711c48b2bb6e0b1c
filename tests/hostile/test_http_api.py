"""Hostile requests to the Pusher HTTP API that are correctly signed (so they reach validation)
or malformed at the HTTP level (pusher-protocol.md §10; RFC 9110/9112).

Documented answers (JSON body `{"error": "..."}` for every API refusal):
- 400: body that is not the JSON object the endpoint expects, a missing or mistyped field, an
  invalid channel name, more than 100 channels, more than 10 batch events, an event name
  over 200 characters, a malformed socket_id or `info`; a batch is published whole or not at all;
- 413: event `data` over 10 KiB, or a body over the app's body limit;
- 404: unknown app id or API path; 405: known path, wrong method;
- `data` given as JSON that is not a string is published as its JSON text (lenient, like the
  peers); an HTTP-level malformation (bad chunked encoding, conflicting lengths, NUL bytes)
  is refused by the HTTP parser with a 4xx or a closed connection, never a publish.
"""

from __future__ import annotations

import json

import pytest

from hostile_client import APP, api_request, encode_query, raw_http, signed_query, status_of

EVENTS = f"/apps/{APP['id']}/events"
BATCH = f"/apps/{APP['id']}/batch_events"
TARGET = "hostile-api-target"


def post(herald, path, body: bytes):
    return api_request(herald, "POST", path, body=body)


def assert_nothing_published(sock):
    sock.send_json({"event": "pusher:ping", "data": {}})
    msg = sock.next_json()
    assert msg["event"] == "pusher:pong", f"something was published: {msg}"


@pytest.fixture
def target(pusher_socket):
    sock = pusher_socket()
    assert sock.subscribe(TARGET)["event"] == "pusher_internal:subscription_succeeded"
    return sock


BAD_BODIES = {
    "not-json": b"not json",
    "truncated": b'{"name":"e","channel":"x","data":"d"',
    "array": b'[{"name":"e","channel":"x","data":"d"}]',
    "string": b'"hello"',
    "number": b"42",
    "null": b"null",
    "empty-object": b"{}",
    "name-missing": json.dumps({"channel": TARGET, "data": "d"}).encode(),
    "name-null": json.dumps({"name": None, "channel": TARGET, "data": "d"}).encode(),
    "name-number": json.dumps({"name": 1, "channel": TARGET, "data": "d"}).encode(),
    "name-array": json.dumps({"name": ["e"], "channel": TARGET, "data": "d"}).encode(),
    "name-empty": json.dumps({"name": "", "channel": TARGET, "data": "d"}).encode(),
    "name-201": json.dumps({"name": "e" * 201, "channel": TARGET, "data": "d"}).encode(),
    "data-missing": json.dumps({"name": "e", "channel": TARGET}).encode(),
    "channel-missing": json.dumps({"name": "e", "data": "d"}).encode(),
    "channel-number": json.dumps({"name": "e", "channel": 1, "data": "d"}).encode(),
    "channel-null-only": json.dumps({"name": "e", "channel": None, "data": "d"}).encode(),
    "channel-object": json.dumps({"name": "e", "channel": {"a": 1}, "data": "d"}).encode(),
    "channels-string": json.dumps({"name": "e", "channels": TARGET, "data": "d"}).encode(),
    "channels-empty": json.dumps({"name": "e", "channels": [], "data": "d"}).encode(),
    "channels-numbers": json.dumps({"name": "e", "channels": [1, 2], "data": "d"}).encode(),
    "channels-101": json.dumps({"name": "e", "channels": [f"c{i}" for i in range(101)], "data": "d"}).encode(),
    "channel-invalid-name": json.dumps({"name": "e", "channel": "a b", "data": "d"}).encode(),
    "channel-201": json.dumps({"name": "e", "channel": "c" * 201, "data": "d"}).encode(),
    "channel-hash": json.dumps({"name": "e", "channel": "#evil", "data": "d"}).encode(),
    "one-bad-channel-of-two": json.dumps({"name": "e", "channels": [TARGET, "bad name"], "data": "d"}).encode(),
    "socket_id-text": json.dumps({"name": "e", "channel": TARGET, "data": "d", "socket_id": "abc"}).encode(),
    "socket_id-number": json.dumps({"name": "e", "channel": TARGET, "data": "d", "socket_id": 1.5}).encode(),
    "socket_id-three-parts": json.dumps({"name": "e", "channel": TARGET, "data": "d", "socket_id": "1.2.3"}).encode(),
    "info-unknown": json.dumps({"name": "e", "channel": TARGET, "data": "d", "info": "bogus"}).encode(),
    "info-number": json.dumps({"name": "e", "channel": TARGET, "data": "d", "info": 1}).encode(),
    "nul-in-json": b'{"name":"e\x00","channel":"x","data":"d"}',
    "invalid-utf8": b'{"name":"\xff\xfe","channel":"x","data":"d"}',
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_invalid_event_body_gets_400_and_publishes_nothing(herald, target, body):
    status, text = post(herald, EVENTS, body)
    assert status == 400, f"{status} {text}"
    assert "error" in json.loads(text)
    assert_nothing_published(target)


@pytest.mark.parametrize("data,expected", [
    (10_240, 200), (10_241, 413), (100_000, 413),
], ids=["10KiB", "10KiB+1", "100KB"])
def test_event_data_size_limit(herald, target, data, expected):
    body = json.dumps({"name": "big", "channel": TARGET, "data": "x" * data}).encode()
    status, text = post(herald, EVENTS, body)
    assert status == expected, text
    if expected == 200:
        assert target.next_json()["event"] == "big"
    assert_nothing_published(target)


@pytest.mark.parametrize("data", ['1', 'true', '{"a": 1}', '[1,  2]', "[" * 1000 + "]" * 1000],
                         ids=["number", "bool", "object", "array", "nested-1000-deep"])
def test_non_string_data_is_published_as_its_json_text(herald, target, data):
    body = b'{"name":"lenient","channel":"' + TARGET.encode() + b'","data":' + data.encode() + b"}"
    status, text = post(herald, EVENTS, body)
    assert status == 200, text
    msg = target.next_json()
    assert msg["event"] == "lenient"
    assert msg["data"] == data, "the JSON text is relayed byte for byte"


def test_null_data_counts_as_missing(herald, target):
    status, _ = post(herald, EVENTS, json.dumps({"name": "e", "channel": TARGET, "data": None}).encode())
    assert status == 400
    assert_nothing_published(target)


BAD_BATCHES = {
    "not-object": b"[]",
    "batch-missing": b"{}",
    "batch-object": b'{"batch":{}}',
    "batch-string": b'{"batch":"x"}',
    "eleven-events": json.dumps({"batch": [{"name": "e", "channel": TARGET, "data": str(i)} for i in range(11)]}).encode(),
    "one-invalid-of-three": json.dumps({"batch": [
        {"name": "e", "channel": TARGET, "data": "1"},
        {"name": "e", "channel": "bad name", "data": "2"},
        {"name": "e", "channel": TARGET, "data": "3"}]}).encode(),
    "one-oversize-of-two": json.dumps({"batch": [
        {"name": "e", "channel": TARGET, "data": "1"},
        {"name": "e", "channel": TARGET, "data": "x" * 10_241}]}).encode(),
    "event-not-object": b'{"batch":[1]}',
}


@pytest.mark.parametrize("body", BAD_BATCHES.values(), ids=BAD_BATCHES.keys())
def test_invalid_batch_is_refused_whole(herald, target, body):
    status, text = post(herald, BATCH, body)
    assert status in (400, 413), f"{status} {text}"
    assert_nothing_published(target)


def test_empty_batch_is_accepted_and_publishes_nothing(herald, target):
    status, text = post(herald, BATCH, b'{"batch":[]}')
    assert status == 200, text
    assert_nothing_published(target)


def test_body_over_the_limit_gets_413(herald, target):
    body = b'{"name":"e","channel":"x","data":"' + b"x" * 600_000 + b'"}'
    status, _ = post(herald, EVENTS, body)
    assert status == 413
    assert_nothing_published(target)


@pytest.mark.parametrize("method,path,expected", [
    ("GET", EVENTS, 405), ("DELETE", EVENTS, 405), ("PUT", BATCH, 405),
    ("POST", f"/apps/{APP['id']}/channels", 405),
    ("GET", f"/apps/{APP['id']}/nope", 404),
    ("GET", "/apps/999999/channels", 404),
    ("GET", "/apps//channels", 404),
    ("GET", f"/apps/{APP['id']}/channels/a/b/c/d", 404),
    ("GET", f"/apps/{APP['id']}/channels/%ff%fe", 400),
    ("GET", f"/apps/{APP['id']}/channels/bad%20name", 400),
    ("GET", f"/apps/{APP['id']}/channels/public-x/users", 400),
])
def test_wrong_method_or_path(herald, method, path, expected):
    status, text = api_request(herald, method, path, query=encode_query(signed_query(method, path)))
    assert status == expected, f"{status} {text}"


@pytest.mark.parametrize("info", ["bogus", "user_count", "cache,bogus"])
def test_invalid_info_on_channel_queries_gets_400(herald, info):
    path = f"/apps/{APP['id']}/channels"
    status, _ = api_request(herald, "GET", path, query=encode_query(signed_query("GET", path, {"info": info})))
    assert status == 400


def test_thousand_query_parameters_are_handled(herald):
    path = f"/apps/{APP['id']}/channels"
    params = [(f"p{i}", "v") for i in range(1000)]
    status, text = api_request(herald, "GET", path, query=encode_query(signed_query("GET", path, params)))
    assert status == 200, text


RAW_MALFORMED = {
    "bad-chunk-size": (b"POST " + EVENTS.encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
    "cl-and-te": (b"POST " + EVENTS.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    "two-content-lengths": (b"POST " + EVENTS.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                            b"Content-Length: 6\r\n\r\nhello!"),
    "negative-content-length": b"POST " + EVENTS.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "nul-in-path": b"GET /apps/\x00/channels HTTP/1.1\r\nHost: x\r\n\r\n",
    "nul-in-header": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "space-in-header-name": b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: v\r\n\r\n",
    "no-colon-header": b"GET / HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n folded\r\n\r\n",
    "http-2-preface-as-1": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "garbage": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(64)),
    "version-9": b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
    "lowercase-method-line": b"get / http/1.1\r\nhost: x\r\n\r\n",
}


@pytest.mark.parametrize("request_bytes", RAW_MALFORMED.values(), ids=RAW_MALFORMED.keys())
def test_malformed_http_is_refused_by_the_parser(herald, target, request_bytes):
    response = raw_http(herald, request_bytes)
    status = status_of(response)
    assert status is None or 400 <= status < 600, response[:200]
    assert status != 200
    assert_nothing_published(target)


def test_chunked_body_is_read(herald, target):
    body = json.dumps({"name": "chunked", "channel": TARGET, "data": "d"}).encode()
    query = encode_query(signed_query("POST", EVENTS, body=body))
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7]) for i in range(0, len(body), 7))
    request = (f"POST {EVENTS}?{query} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").encode() + chunks + b"0\r\n\r\n"
    assert status_of(raw_http(herald, request)) == 200
    assert target.next_json()["event"] == "chunked"


def test_pipelined_requests_are_answered_in_order(herald):
    requests = b"".join(b"GET /up HTTP/1.1\r\nHost: x\r\n\r\n" for _ in range(100))
    response = raw_http(herald, requests + b"GET /up HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", read_all=True)
    assert response.count(b"HTTP/1.1 200") == 101
