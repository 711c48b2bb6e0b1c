"""EspoCRM profile, connection side: herald in place of EspoCRM's websocket.php, driven by a raw
WAMP v1 client against the fake EspoCRM root (tests/fixtures/espo): listener, TLS, handshake,
authentication, keep-alive, config keys and the shipped example (docs/espocrm.md).

Requires php-cli and php-zmq (Debian packages) for the fake root's command.php and push.php.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "espo"))

from espo_harness import (  # noqa: E402
    APP, TOKENS, EspoHerald, barrier, base_espocrm, events, expect_app_close, uid,
)
import wamp1_client  # noqa: E402
from wamp1_client import OP_PONG, HandshakeRefused, Wamp1Client, upgrade_request  # noqa: E402

SESSION_ID = re.compile(r"[0-9a-z]{16,32}")


@pytest.fixture(scope="module")
def espo():
    server = EspoHerald()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def fresh(request):
    """Each test reads only the stdout lines printed after it started, and closes its clients."""
    server = request.getfixturevalue("espo") if "espo" in request.fixturenames else None
    if server:
        server.drain()
    yield
    if server:
        server.close_clients()
        server.assert_alive()


# --- E1, E2: listener and handshake -------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/ws", "/wss?x=1"])
def test_e1_listens_on_websocket_port_with_any_path(espo, path):
    client = espo.client("u1", path=path)
    assert client.upgrade.status == 101


def openssl(cwd: Path, *args: str):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 made with Debian's openssl: `cert.pem` + `key.pem`,
    `both.pem` (certificate and key in one file, as PHP's local_cert allows) and `enc.key`
    (encrypted PKCS#8, passphrase `espo-pass`)."""
    d = tmp_path_factory.mktemp("espo-tls")
    openssl(d, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "key.pem", "-out", "cert.pem", "-days", "2", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1")
    (d / "both.pem").write_text((d / "cert.pem").read_text() + (d / "key.pem").read_text())
    openssl(d, "pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", "key.pem", "-out", "enc.key", "-passout", "pass:espo-pass")
    return d


@pytest.mark.parametrize("files", ["cert+key", "both-in-one", "encrypted-key"])
def test_e1_secure_mode_serves_wss(certs, monkeypatch, files):
    tls = {"webSocketUseSecureServer": True, "webSocketSslAllowSelfSigned": True}
    if files == "cert+key":
        tls.update(webSocketSslCertificateFile=str(certs / "cert.pem"),
                   webSocketSslCertificateLocalPrivateKey=str(certs / "key.pem"))
    elif files == "both-in-one":
        tls.update(webSocketSslCertificateFile=str(certs / "both.pem"))
    else:
        tls.update(webSocketSslCertificateFile=str(certs / "cert.pem"),
                   webSocketSslCertificateLocalPrivateKey=str(certs / "enc.key"),
                   webSocketSslCertificatePassphrase="espo-pass")
    server = EspoHerald(base_espocrm(**tls))
    try:
        connect_over_tls(monkeypatch, certs)
        client = server.client("u1")
        assert len(client.welcome) == 3
        server.subscribe_approved(client, "newNotification")
        server.push('{"userId":"u1","topicId":"newNotification"}')
        assert client.expect_event("newNotification") == {"userId": "u1", "topicId": "newNotification"}
    finally:
        monkeypatch.undo()
        server.stop()


def connect_over_tls(monkeypatch, certs):
    """Makes the WAMP v1 client connect through TLS, trusting the test certificate."""
    context = ssl.create_default_context(cafile=str(certs / "cert.pem"))
    plain_connect = socket.create_connection

    def tls_connect(address, timeout=None):
        return context.wrap_socket(plain_connect(address, timeout=timeout), server_hostname="127.0.0.1")

    monkeypatch.setattr(wamp1_client.socket, "create_connection", tls_connect)


def test_e1_secure_listener_shares_the_main_edge_prefix_and_per_address_limits(certs, monkeypatch):
    """Over TLS, the [server] path_prefix and per-address limits apply to the EspoCRM listener."""
    tls = {"webSocketUseSecureServer": True, "webSocketSslCertificateFile": str(certs / "cert.pem"),
           "webSocketSslCertificateLocalPrivateKey": str(certs / "key.pem")}
    server = EspoHerald(base_espocrm(**tls), env={"HERALD__SERVER__PATH_PREFIX": "/ws",
                                                  "HERALD__SERVER__MAX_CONNECTIONS_PER_IP": "1"})
    try:
        connect_over_tls(monkeypatch, certs)
        client = server.client("u1", path="/ws/")
        assert len(client.welcome) == 3
        with pytest.raises(HandshakeRefused) as refused:
            server.client("u2", path="/ws/")
        assert refused.value.status == 429
    finally:
        monkeypatch.undo()
        server.stop()


def test_e1_secure_mode_needs_readable_certificate_files(certs):
    for table, key in ((base_espocrm(webSocketUseSecureServer=True), "webSocketSslCertificateFile"),
                       (base_espocrm(webSocketUseSecureServer=True, webSocketSslCertificateFile=str(certs / "nope.pem")),
                        "webSocketSslCertificateFile"),
                       (base_espocrm(webSocketUseSecureServer=True, webSocketSslCertificateFile=str(certs / "cert.pem")),
                        "private key")):
        server = EspoHerald(table, expect_exit=True)
        try:
            assert server.wait_exit() == 64, server.stderr_lines
            assert key in "\n".join(server.stderr_lines), server.stderr_lines
        finally:
            server.stop()


def test_e2_upgrade_without_wamp_subprotocol_gets_426(espo):
    for protocols in ((), ("wamp.2.json",)):
        with pytest.raises(HandshakeRefused) as refused:
            Wamp1Client(espo.espo_port, path=f"/?authToken={TOKENS['u1']}&userId=u1", protocols=protocols,
                        wait_welcome=False)
        assert refused.value.status == 426


def test_e2_wamp_subprotocol_is_echoed(espo):
    sock, answer, _ = upgrade_request(espo.espo_port, path=f"/?authToken={TOKENS['u1']}&userId=u1")
    try:
        assert answer.status == 101
        assert answer.header_values("Sec-WebSocket-Protocol") == ["wamp"]
    finally:
        sock.close()


# --- E3, E4: authentication ---------------------------------------------------------------------

@pytest.mark.parametrize("query", [
    f"authToken={TOKENS['u1']}",                  # no userId
    "userId=u1",                                  # no authToken
    f"userId=&authToken={TOKENS['u1']}",          # empty userId
    "userId=u1&authToken=%27%22%3B",              # nothing left after sanitising
])
def test_e3_missing_credentials_close_with_status_0_without_welcome(espo, query):
    client = Wamp1Client(espo.espo_port, path=f"/?{query}", wait_welcome=False)
    espo.opened.append(client)
    expect_app_close(client)
    assert client.messages == [], "no WELCOME"


def test_e4_valid_token_gets_exactly_the_espo_welcome(espo):
    client = espo.client("u1")
    assert len(client.welcome) == 3, client.welcome
    assert client.welcome[0] == 0 and client.welcome[2] == 1
    assert SESSION_ID.fullmatch(client.welcome[1])
    other = espo.client("u1", token=TOKENS["u1b"])
    assert other.welcome[1] != client.welcome[1]


@pytest.mark.parametrize("user,token", [
    ("u1", "ffffffffffffffffffffffffffffffff"),   # unknown token
    ("u2", TOKENS["u1"]),                         # u1's token presented as u2: foreign user
    ("u1", TOKENS["u1_inactive_token"]),          # token no longer active
    ("u9", TOKENS["u9_inactive_user"]),           # user deactivated
])
def test_e4_invalid_or_foreign_tokens_are_closed_without_welcome(espo, user, token):
    client = espo.client(user, token=token, welcome=False)
    expect_app_close(client)
    assert client.messages == []
    espo.wait_line(rf"authentication failed for user {user} ")


def test_e4_check_command_gets_token_and_user_and_verdicts_are_cached(espo):
    token = TOKENS["u3"]
    before = [c for c in espo.calls() if c[0] == "start" and c[3:] == ["AuthTokenCheck", token, "u3"]]
    espo.client("u3")
    espo.client("u3")
    runs = [c for c in espo.calls() if c[0] == "start" and c[3:] == ["AuthTokenCheck", token, "u3"]]
    assert len(runs) - len(before) <= 1, "the second connection reuses the cached verdict"
    assert len(runs) >= 1


def test_e4_timeout_closes_like_a_refusal():
    server = EspoHerald(base_espocrm(check_timeout=0.3), env={"ESPO_FAKE_SLOW_MS": "3000"})
    try:
        client = server.client("u2", token=TOKENS["u2_slow"], welcome=False)
        expect_app_close(client)
        server.wait_line(r"authentication failed for user u2 \(Failed\)")
    finally:
        server.stop()


def test_e4_legacy_espocrm_is_judged_by_the_printed_user_id():
    # EspoCRM < 9.2: AuthTokenCheck exits 0 for any token and prints the token's user id.
    server = EspoHerald(env={"ESPO_FAKE_LEGACY": "1"})
    try:
        ok = server.client("u1")
        assert len(ok.welcome) == 3
        foreign = server.client("u2", token=TOKENS["u1"], welcome=False)
        expect_app_close(foreign)
        unknown = server.client("u1", token="ffffffffffffffffffffffffffffffff", welcome=False)
        expect_app_close(unknown)
    finally:
        server.stop()


@pytest.mark.parametrize("mode", ["normal", "fin"])
def test_w10_application_close_is_switchable(mode):
    server = EspoHerald(base_espocrm(application_close=mode))
    try:
        expect_app_close(server.client("u1", token="ffffffffffffffffffffffffffffffff", welcome=False), mode)
        client = server.client("u1")
        client.publish("newNotification", {})
        expect_app_close(client, mode)
    finally:
        server.stop()


# --- E5: nothing before authentication ----------------------------------------------------------

def test_e5_subscribe_before_welcome_is_ignored():
    server = EspoHerald(env={"ESPO_FAKE_SLOW_MS": "700"})
    try:
        early = server.client("u2", token=TOKENS["u2_slow"], welcome=False)
        early.send([5, "appParamsUpdate"])       # while AuthTokenCheck runs
        welcome = early.recv()
        assert welcome[0] == 0
        barrier(early)
        late = server.client("u1")
        late.subscribe("appParamsUpdate", sync=False)
        barrier(late)
        early.send([5, "newNotification"])       # after WELCOME: kept
        barrier(early)
        server.push('{"topicId":"appParamsUpdate","n":1}', '{"topicId":"newNotification","n":2}')
        assert late.expect_event("appParamsUpdate") == {"topicId": "appParamsUpdate", "n": 1}
        assert early.expect_event("newNotification") == {"topicId": "newNotification", "n": 2}
        assert events(early, "appParamsUpdate") == [], "the early SUBSCRIBE left no state"
    finally:
        server.stop()


# --- E10, E11, W5: what a browser may send ------------------------------------------------------

def test_e10_keepalive_publish_is_ignored(espo):
    client = espo.client("u1")
    espo.subscribe_approved(client, "newNotification")
    client.send([7, "", ""])
    client.send([7, "", "", True])
    barrier(client)
    espo.push('{"userId":"u1","topicId":"newNotification","k":1}')
    assert client.expect_event("newNotification")["k"] == 1


def test_e10_publish_to_a_topic_closes_with_status_0(espo):
    client = espo.client("u1")
    client.publish("newNotification", {"x": 1})
    expect_app_close(client)


def test_e11_call_gets_callerror_then_status_0_close(espo):
    client = espo.client("u1")
    client.send([2, "c-1", "http://example.com/proc#x", 1, 2])
    assert client.recv() == [4, "c-1", "http://example.com/proc#x", "You are not allowed to make calls"]
    expect_app_close(client)


def test_w5_malformed_message_closes_with_1007(espo):
    client = espo.client("u1")
    client.send_text("[5,")
    closed = client.expect_close()
    assert closed.code == 1007


# --- E12: keepalive ------------------------------------------------------------------------------

def test_e12_silent_peer_is_closed_and_answering_peer_stays():
    server = EspoHerald(base_espocrm(keepalive_interval=0.4))
    try:
        silent = server.client("u1")
        silent.auto_pong = False
        alive = server.client("u2")
        server.subscribe_approved(alive, "newNotification")
        closed = silent.expect_close(timeout=5)
        assert closed.code == 1000, "Ratchet's keepalive closes with 1000"
        assert closed.raw == b"\x88\x02\x03\xe8"
        pings = 0
        while pings < 3:
            frame = alive.read_frame()
            if frame.opcode == 0x9:
                pings += 1
                alive.send_frame(OP_PONG, frame.payload)
        server.push('{"userId":"u2","topicId":"newNotification"}')
        assert alive.expect_event("newNotification") == {"userId": "u2", "topicId": "newNotification"}
    finally:
        server.stop()


# --- E13: debug output ---------------------------------------------------------------------------

def test_e13_debug_mode_prints_connection_lines(espo):
    client = espo.client("u1")
    cid = client.conn_id
    topic = f"recordUpdate.Account.u1-{uid('dbg')}"
    espo.subscribe_approved(client, topic)
    espo.push(f'{{"topicId":"{topic}"}}')
    client.expect_event(topic)
    client.close()
    espo.wait_line(rf"^\[\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\] {cid}: user u1 unsubscribed$")
    espo.wait_line(rf"^\[[-\d: ]+\] {cid}: close$")
    text = "\n".join(espo.stdout_lines)
    for line in (f"{cid}: open", f"{cid}: user u1 subscribed",
                 f"{cid}: check access succeed for topic {topic} for user u1",
                 f"{cid}: add topic {topic} for user u1", f"message {topic} for all: sent to 1"):
        assert line in text, line


def test_e13_no_debug_lines_when_off():
    server = EspoHerald(base_espocrm(webSocketDebugMode=False))
    try:
        client = server.client("u1", welcome=False)
        assert client.recv()[0] == 0
        client.close()
        assert all(line.startswith("herald listening") for line in server.stdout_lines), server.stdout_lines
    finally:
        server.stop()


# --- E14: config as EspoCRM has it, and start-up failures ---------------------------------------

def test_e14_docker_style_environment_configures_the_daemon():
    table = base_espocrm(webSocketPort=None, webSocketZeroMQSubscriberDsn=None, webSocketDebugMode=None)
    env = {
        "ESPOCRM_CONFIG_WEB_SOCKET_PORT": "0",
        "ESPOCRM_CONFIG_WEB_SOCKET_ZERO_M_Q_SUBSCRIBER_DSN": "'tcp://127.0.0.1:0'",
        "ESPOCRM_CONFIG_WEB_SOCKET_DEBUG_MODE": "true",
    }
    server = EspoHerald(table, env=env)
    try:
        client = server.client("u1")
        server.subscribe_approved(client, "newNotification")
        server.push('{"userId":"u1","topicId":"newNotification"}')
        assert client.expect_event("newNotification") == {"userId": "u1", "topicId": "newNotification"}
    finally:
        server.stop()


def test_e14_bind_failures_exit_non_zero():
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        for table in (base_espocrm(webSocketPort=port),
                      base_espocrm(webSocketZeroMQSubscriberDsn=f"tcp://127.0.0.1:{port}")):
            server = EspoHerald(table, expect_exit=True)
            try:
                assert server.wait_exit() == 69, server.stderr_lines
                assert str(port) in "\n".join(server.stderr_lines)
                assert not any(line.startswith("herald listening") for line in server.stdout_lines)
            finally:
                server.stop()
    finally:
        busy.close()


@pytest.mark.parametrize("table,key", [
    (base_espocrm(espocrm_root="/nonexistent"), "espocrm_root"),
    (base_espocrm(webSocketMessager="RabbitMQ"), "webSocketMessager"),
    (base_espocrm(app="nope"), "app"),
    (base_espocrm(phpExecutablePath="/nonexistent/php"), "php_path"),
])
def test_e14_invalid_config_exits_64_naming_the_key(table, key):
    server = EspoHerald(table, expect_exit=True)
    try:
        assert server.wait_exit() == 64
        assert key in "\n".join(server.stderr_lines), server.stderr_lines
    finally:
        server.stop()


def test_app_of_the_profile_must_exist_when_several():
    other = {"id": "4002", "key": "other-key", "secret": "other-6f0b4d8a2e1c3579"}
    server = EspoHerald(base_espocrm(), apps=[APP, other], expect_exit=True)
    try:
        assert server.wait_exit() == 64
        assert "espocrm.app" in "\n".join(server.stderr_lines)
    finally:
        server.stop()


def test_e14_deploy_example_config_is_valid(tmp_path):
    example = Path(__file__).resolve().parents[2] / "deploy" / "espocrm" / "herald-espocrm.toml"
    from espo_harness import ROOT
    from herald_launcher import herald_bin
    config = tmp_path / "espocrm.toml"
    # Filled in as its comments say: the EspoCRM root, and a random secret for the placeholder.
    text = example.read_text().replace('"/var/www/espocrm"', json.dumps(str(ROOT)))
    config.write_text(text.replace('secret = "CHANGE-ME"', 'secret = "espo-deploy-3b7f1d5a9c0e2468"'))
    result = subprocess.run([str(herald_bin()), "config", "check", "--config", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
