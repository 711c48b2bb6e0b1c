"""The HTTP API and the auth helpers through the PyPI `pusher` SDK, observed by raw subscribers."""

from __future__ import annotations

import json

import pytest

from pusher.errors import PusherBadStatus
from pusher.http import POST, Request

from conftest import APPS, make_sdk, uid


def test_trigger_to_one_channel_reaches_the_subscriber(sdk, sockets):
    name = uid("py-public")
    sock = sockets()
    sock.subscribe(name)
    assert sdk.trigger(name, "created", {"id": 1}) == {}
    msg = sock.next("created")
    assert msg["channel"] == name
    assert json.loads(msg["data"]) == {"id": 1}


def test_trigger_to_a_list_of_channels_reaches_each(sdk, sockets):
    names = [uid("py-multi") for _ in range(3)]
    socks = []
    for name in names:
        sock = sockets()
        sock.subscribe(name)
        socks.append(sock)
    sdk.trigger(names, "fanout", "x")
    for name, sock in zip(names, socks):
        assert sock.next("fanout")["channel"] == name


def test_trigger_with_socket_id_excludes_that_socket(sdk, sockets):
    name = uid("py-exclude")
    excluded, other = sockets(), sockets()
    excluded.subscribe(name)
    other.subscribe(name)
    sdk.trigger(name, "first", 1, socket_id=excluded.socket_id)
    other.next("first")
    sdk.trigger(name, "second", 2)
    excluded.next("second")
    # Delivery to one socket is ordered: `first` would have come before `second`.
    assert excluded.events("first") == []


def test_trigger_batch_delivers_every_event(sdk, sockets):
    a, b = uid("py-batch"), uid("py-batch")
    sock = sockets()
    sock.subscribe(a)
    sock.subscribe(b)
    sdk.trigger_batch([
        {"channel": a, "name": "one", "data": {"n": 1}},
        {"channel": b, "name": "two", "data": {"n": 2}},
    ])
    assert sock.next("one")["channel"] == a
    assert sock.next("two")["channel"] == b


def test_channels_info_filters_by_prefix(sdk, sockets):
    prefix = uid("py-pfx")
    sock = sockets()
    sock.subscribe(f"{prefix}-a")
    sock.subscribe(f"{prefix}-b")
    sock.subscribe(uid("py-other"))
    result = sdk.channels_info(prefix_filter=prefix)
    assert sorted(result["channels"]) == [f"{prefix}-a", f"{prefix}-b"]


def test_channels_info_is_an_object_when_empty(sdk):
    assert sdk.channels_info(prefix_filter=uid("py-none")) == {"channels": {}}


def test_channels_info_reports_presence_user_count(herald, sdk, sockets):
    name = f"presence-{uid('py-room')}"
    for user in ("u1", "u2"):
        sock = sockets()
        auth = sdk.authenticate(name, sock.socket_id, {"user_id": user})
        sock.subscribe(name, auth=auth["auth"], channel_data=auth["channel_data"])
    result = sdk.channels_info(prefix_filter="presence-", attributes=["user_count"])
    assert result["channels"][name]["user_count"] == 2


def test_channel_info_reports_occupied_and_subscription_count(herald, sockets):
    counted = make_sdk(herald, APPS["counted"])
    name = uid("py-occupied")
    for _ in range(2):
        sockets(APPS["counted"]).subscribe(name)
    info = counted.channel_info(name, ["subscription_count"])
    assert info["occupied"] is True
    assert info["subscription_count"] == 2
    assert counted.channel_info(uid("py-vacant"))["occupied"] is False


def test_channel_info_reports_presence_user_count(sdk, sockets):
    name = uid("presence-py-count")
    sock = sockets()
    auth = sdk.authenticate(name, sock.socket_id, {"user_id": "solo"})
    sock.subscribe(name, auth=auth["auth"], channel_data=auth["channel_data"])
    info = sdk.channel_info(name, ["user_count"])
    assert info["occupied"] is True
    assert info["user_count"] == 1


def test_users_info_lists_each_user_once(sdk, sockets):
    name = uid("presence-py-users")
    for user in ("ann", "ann", "ben"):
        sock = sockets()
        auth = sdk.authenticate(name, sock.socket_id, {"user_id": user, "user_info": {"n": user}})
        sock.subscribe(name, auth=auth["auth"], channel_data=auth["channel_data"])
    users = sdk.users_info(name)["users"]
    assert sorted(u["id"] for u in users) == ["ann", "ben"]


def test_authenticate_private_signature_is_accepted(sdk, sockets):
    name = uid("private-py")
    sock = sockets()
    auth = sdk.authenticate(name, sock.socket_id)
    ok = sock.subscribe(name, auth=auth["auth"])
    assert ok["data"] == "{}"
    sdk.trigger(name, "secret", "s")
    assert sock.next("secret")["data"] == "s"


def test_authenticate_presence_reports_members(sdk, sockets):
    name = uid("presence-py-members")
    first, second = sockets(), sockets()
    a = sdk.authenticate(name, first.socket_id, {"user_id": "a", "user_info": {"name": "A"}})
    first.subscribe(name, auth=a["auth"], channel_data=a["channel_data"])
    b = sdk.authenticate(name, second.socket_id, {"user_id": "b", "user_info": {"name": "B"}})
    ok = second.subscribe(name, auth=b["auth"], channel_data=b["channel_data"])
    presence = ok["decoded"]["presence"]
    assert sorted(presence["ids"]) == ["a", "b"]
    assert presence["count"] == 2
    assert presence["hash"]["a"] == {"name": "A"}
    added = first.next("pusher_internal:member_added")
    assert added["decoded"]["user_id"] == "b"


def signed_in_socket(sdk, sockets, user_id: str):
    """A raw subscriber signed in as `user_id` with the SDK's user authentication."""
    sock = sockets()
    signed = sdk.authenticate_user(sock.socket_id, {"id": user_id})
    sock.send({"event": "pusher:signin", "data": {"auth": signed["auth"], "user_data": signed["user_data"]}})
    sock.next("pusher:signin_success")
    return sock


def test_send_to_user_reaches_the_signed_in_socket(sdk, sockets):
    user_id = uid("pyuser")
    sock = signed_in_socket(sdk, sockets, user_id)
    sock.subscribe(f"#server-to-user-{user_id}", auth="")
    sdk.send_to_user(user_id, "notice", {"hello": user_id})
    msg = sock.next("notice")
    assert json.loads(msg["data"]) == {"hello": user_id}


def test_terminate_user_connections_closes_with_4009(herald, sdk, sockets):
    # pusher 3.3.4's terminate_user_connections() posts to /users/{id}/terminate_connections,
    # without the /apps/{app_id} prefix of the documented path: herald finds the app by the key
    # that signed the request.
    user_id = uid("pyterm")
    sock = signed_in_socket(sdk, sockets, user_id)
    assert sdk.terminate_user_connections(user_id) == {}
    assert sock.wait_closed() == 4009


def test_terminate_user_connections_on_the_documented_path_closes_with_4009(herald, sdk, sockets):
    user_id = uid("pyterm2")
    sock = signed_in_socket(sdk, sockets, user_id)
    client = sdk._pusher_client
    request = Request(client, POST, f"/apps/{client.app_id}/users/{user_id}/terminate_connections", {})
    assert client.http.send_request(request) == {}
    assert sock.wait_closed() == 4009


def test_unprefixed_user_termination_with_an_unknown_key_is_404(herald):
    stranger = make_sdk(herald, {"id": "999", "key": "unknown-key", "secret": "not-the-secret"})
    with pytest.raises(PusherBadStatus, match=r"^404: "):
        stranger.terminate_user_connections("someone")


def test_empty_get_with_body_md5_of_empty_body_is_accepted(sdk):
    # The PyPI SDK always sends body_md5, even for a GET with no body.
    assert "channels" in sdk.channels_info()
