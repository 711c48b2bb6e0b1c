"""HTTP API error paths from Python: the SDK's own exceptions, and hand-signed or forged requests
(status codes and a non-empty message; exact texts are not part of the contract)."""

from __future__ import annotations

import hashlib
import json
import time

import pusher
import pytest
from pusher.errors import PusherBadAuth, PusherBadRequest, PusherBadStatus, PusherForbidden

from conftest import APPS, error_message, make_sdk, signed_request, uid

MAIN = APPS["main"]
EVENTS = f"/apps/{MAIN['id']}/events"


def _event_body(**fields) -> str:
    return json.dumps({"name": "x", "channels": ["c"], "data": "{}", **fields})


def _assert_error(status: int, text: str, expected: int):
    assert status == expected, f"expected {expected}, got {status}: {text}"
    assert error_message(text).strip(), "error response without a message"


def test_wrong_secret_raises_bad_auth(herald):
    wrong = pusher.Pusher(app_id=MAIN["id"], key=MAIN["key"], secret="wrong", ssl=False,
                          host="127.0.0.1", port=herald.port)
    with pytest.raises(PusherBadAuth):
        wrong.trigger("c", "x", {})


def test_unknown_app_id_is_404(herald):
    stranger = pusher.Pusher(app_id="999999", key=MAIN["key"], secret=MAIN["secret"], ssl=False,
                             host="127.0.0.1", port=herald.port)
    with pytest.raises(PusherBadStatus, match="404"):
        stranger.trigger("c", "x", {})


def test_disabled_app_raises_forbidden(herald):
    with pytest.raises(PusherForbidden):
        make_sdk(herald, APPS["disabled"]).trigger("c", "x", {})


def test_more_than_ten_batch_events_raises_bad_request(sdk):
    batch = [{"channel": f"b-{i}", "name": "x", "data": "{}"} for i in range(11)]
    with pytest.raises(PusherBadRequest):
        sdk.trigger_batch(batch)


def test_oversize_event_data_is_413(sdk):
    with pytest.raises(PusherBadStatus, match="413"):
        sdk.trigger(uid("py-big"), "huge", "x" * 20000)


def test_forged_signature_is_401(herald):
    status, text = signed_request(herald, MAIN, "POST", EVENTS, body=_event_body(), signature="b" * 64)
    _assert_error(status, text, 401)


def test_unknown_auth_key_is_401(herald):
    status, text = signed_request(herald, MAIN, "GET", f"/apps/{MAIN['id']}/channels", key="nobody", secret="x")
    _assert_error(status, text, 401)


def test_stale_timestamp_is_401(herald):
    status, text = signed_request(herald, MAIN, "GET", f"/apps/{MAIN['id']}/channels",
                                  timestamp=int(time.time()) - 601)
    _assert_error(status, text, 401)


def test_future_timestamp_is_401(herald):
    status, text = signed_request(herald, MAIN, "GET", f"/apps/{MAIN['id']}/channels",
                                  timestamp=int(time.time()) + 601)
    _assert_error(status, text, 401)


def test_wrong_body_md5_is_401(herald):
    status, text = signed_request(herald, MAIN, "POST", EVENTS, body=_event_body(), body_md5="1" * 32)
    _assert_error(status, text, 401)


def test_body_changed_after_signing_is_401(herald):
    # Signed for one body (md5 included), sent with another.
    signed_body = _event_body()
    status, text = signed_request(herald, MAIN, "POST", EVENTS, body=_event_body(name="y"),
                                  body_md5=hashlib.md5(signed_body.encode()).hexdigest())
    _assert_error(status, text, 401)


def test_more_than_100_channels_is_400(herald):
    channels = [f"c-{i}" for i in range(101)]
    status, text = signed_request(herald, MAIN, "POST", EVENTS, body=_event_body(channels=channels))
    _assert_error(status, text, 400)


def test_single_channel_field_is_accepted(herald, sockets):
    name = uid("py-single")
    sock = sockets()
    sock.subscribe(name)
    body = json.dumps({"name": "solo", "channel": name, "data": "1"})
    status, text = signed_request(herald, MAIN, "POST", EVENTS, body=body)
    assert status == 200, text
    assert json.loads(text) == {}
    assert sock.next("solo")["data"] == "1"


def test_unknown_path_is_404(herald):
    status, text = signed_request(herald, MAIN, "GET", f"/apps/{MAIN['id']}/nowhere")
    _assert_error(status, text, 404)


def test_server_still_serves_after_errors(sdk, sockets):
    name = uid("py-after")
    sock = sockets()
    sock.subscribe(name)
    sdk.trigger(name, "ok", 1)
    sock.next("ok")
