"""RFC 6455 §4.1-§4.2: the opening handshake, as the server must check and answer it.

The answers the RFC requires:
- a valid upgrade (GET, HTTP/1.1, `Upgrade: websocket` and `Connection: Upgrade` in any case
  and among other tokens, a 16-byte base64 `Sec-WebSocket-Key`, `Sec-WebSocket-Version: 13`)
  is answered `101 Switching Protocols` with the right `Sec-WebSocket-Accept` (§4.2.2);
- a handshake that does not match §4.2.1 gets "an HTTP response with an appropriate error code
  (such as 400 Bad Request)" and no upgrade; an unsupported version gets an error response
  carrying `Sec-WebSocket-Version: 13` (§4.2.2 item 4, §4.4).
"""

from __future__ import annotations

import base64
import os
import socket
import time

import pytest

from rawws import TEXT, WAIT_S


def raw_request(port: int, request: bytes, timeout: float = WAIT_S) -> tuple[int, dict[str, str]]:
    """Sends `request` on a new connection; returns the status and headers of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        buf = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in buf:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            if not chunk:
                raise AssertionError(f"connection closed without an HTTP answer; got {buf!r}")
            buf += chunk
    head = buf.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(head[0].split(" ", 2)[1]), headers


def upgrade_request(port: int, *, method="GET", version="HTTP/1.1", upgrade="websocket",
                    connection="Upgrade", key: str | None = "auto", ws_version: str | None = "13",
                    host: bool = True) -> bytes:
    lines = [f"{method} /echo {version}"]
    if host:
        lines.append(f"Host: 127.0.0.1:{port}")
    if upgrade is not None:
        lines.append(f"Upgrade: {upgrade}")
    if connection is not None:
        lines.append(f"Connection: {connection}")
    if key == "auto":
        key = base64.b64encode(os.urandom(16)).decode()
    if key is not None:
        lines.append(f"Sec-WebSocket-Key: {key}")
    if ws_version is not None:
        lines.append(f"Sec-WebSocket-Version: {ws_version}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize("upgrade,connection", [
    ("websocket", "Upgrade"),
    ("WebSocket", "upgrade"),
    ("WEBSOCKET", "UPGRADE"),
    ("websocket", "keep-alive, Upgrade"),
    ("websocket", "Upgrade, HTTP2-Settings"),
])
def test_valid_upgrade_variants_get_101(herald, upgrade, connection):
    status, headers = raw_request(herald.port, upgrade_request(herald.port, upgrade=upgrade, connection=connection))
    assert status == 101
    assert headers.get("upgrade", "").lower() == "websocket"
    assert "upgrade" in headers.get("connection", "").lower()


def test_accept_key_matches_the_rfc_example(herald):
    # §1.3 works the example key "dGhlIHNhbXBsZSBub25jZQ==" through to this accept value.
    status, headers = raw_request(herald.port, upgrade_request(herald.port, key="dGhlIHNhbXBsZSBub25jZQ=="))
    assert status == 101
    assert headers["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("header,value", [
    ("Sec-WebSocket-Protocol", "chat, superchat"),
    ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"),
    ("Origin", "http://example.invalid"),
])
def test_unsupported_offers_are_not_selected(connect, header, value):
    # §4.2.2: the server answers only with a subprotocol or extension it supports; /echo
    # supports none, so neither header may come back, and the RSV bits keep no meaning.
    sock = connect("/echo", headers={header: value})
    assert "sec-websocket-protocol" not in sock.headers
    assert "sec-websocket-extensions" not in sock.headers
    sock.text("hello")
    sock.expect(TEXT, b"hello")


def test_rsv1_is_refused_even_when_deflate_was_offered(connect):
    sock = connect("/echo", headers={"Sec-WebSocket-Extensions": "permessage-deflate"})
    sock.send_frame(TEXT, b"\xf2\x48\xcd\xc9\xc9\x07\x00", rsv=4)
    sock.expect_close(1002)


@pytest.mark.parametrize("kw", [
    {"key": None},
    {"ws_version": None},
    {"ws_version": "8"},
    {"ws_version": "14"},
    {"method": "POST"},
    {"method": "PUT"},
], ids=["no-key", "no-version", "version-8", "version-14", "post", "put"])
def test_invalid_handshake_is_refused_without_upgrade(herald, kw):
    status, headers = raw_request(herald.port, upgrade_request(herald.port, **kw))
    assert 400 <= status < 500, f"expected a 4xx refusal, got {status}"
    if "ws_version" in kw and kw["ws_version"] is not None:
        assert headers.get("sec-websocket-version") == "13", "§4.4: the refusal names the supported version"


@pytest.mark.parametrize("key", ["abc", base64.b64encode(os.urandom(15)).decode(), "not base64 at all!!",
                                 base64.b64encode(os.urandom(32)).decode()],
                         ids=["short", "15-bytes", "not-base64", "32-bytes"])
def test_malformed_key_is_refused(herald, key):
    status, _ = raw_request(herald.port, upgrade_request(herald.port, key=key))
    assert 400 <= status < 500, f"expected a 4xx refusal, got {status}"


def test_http_1_0_upgrade_is_refused(herald):
    status, _ = raw_request(herald.port, upgrade_request(herald.port, version="HTTP/1.0"))
    assert status != 101


def test_upgrade_without_host_is_refused(herald):
    status, _ = raw_request(herald.port, upgrade_request(herald.port, host=False))
    assert 400 <= status < 500, f"expected a 4xx refusal, got {status}"


def test_plain_get_without_upgrade_headers_is_not_upgraded(herald):
    status, _ = raw_request(herald.port, upgrade_request(herald.port, upgrade=None, connection=None))
    assert status != 101
