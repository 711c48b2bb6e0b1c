//! herald behind a real nginx (Debian's `nginx` package), using the shipped snippets in
//! `deploy/nginx/` verbatim (only the upstream port is changed): the dedicated `/ws` location
//! with `path_prefix`, the same-location `map $http_upgrade` form from the seeds, signed API
//! calls through the prefix, `X-Forwarded-For` from a trusted proxy, and pusher-js's
//! `xhr_streaming` passed through unbuffered.
//!
//! nginx runs as this test's own child on a free loopback port. Without nginx installed the
//! test is skipped, unless `HERALD_REQUIRE_OPS_TOOLS=1` (CI) makes that a failure.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use herald_test_support::http::{http_on, signed_publish};
use herald_test_support::process::{Herald, TempDir, free_port};
use herald_test_support::{next_json, subscribe};

/// At least 16 bytes and no placeholder: herald refuses anything weaker.
const SECRET: &str = "proxy-test-secret-0123456789";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn nginx_bin() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"].iter().map(PathBuf::from).find(|p| p.exists())
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_nginx(bin: &Path, dir: &TempDir, herald: std::net::SocketAddr, dedicated: u16, same: u16) -> Nginx {
    let deploy = repo_root().join("deploy/nginx");
    let http_part = std::fs::read_to_string(deploy.join("herald-http.conf")).unwrap();
    assert!(http_part.contains("127.0.0.1:6001"), "the shipped upstream names herald's default port");
    dir.write("herald-http.conf", &http_part.replace("127.0.0.1:6001", &herald.to_string()));
    let d = dir.0.display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
         include {d}/herald-http.conf;\n\
         server {{\n    listen 127.0.0.1:{dedicated};\n    include {dep}/herald-location.conf;\n    \
         location / {{ return 200 \"site\\n\"; }}\n  }}\n\
         server {{\n    listen 127.0.0.1:{same};\n    location / {{ try_files /nonexistent @$herald_type; }}\n    \
         location @web {{ return 200 \"web\\n\"; }}\n    include {dep}/herald-same-location.conf;\n  }}\n}}\n",
        dep = deploy.display()
    );
    let conf_path = dir.write("nginx.conf", &conf);
    let child = Command::new(bin)
        .args(["-e", &format!("{d}/error.log"), "-p", &d.to_string(), "-c", &conf_path.display().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start nginx");
    Nginx(child)
}

/// Waits until nginx accepts on `port` (it has no readiness signal when run in the foreground).
async fn wait_listening(nginx: &mut Nginx, port: u16, dir: &TempDir) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        if let Ok(Some(status)) = nginx.0.try_wait() {
            let log = std::fs::read_to_string(dir.path("error.log")).unwrap_or_default();
            panic!("nginx exited with {status}: {log}");
        }
        assert!(tokio::time::Instant::now() < deadline, "nginx did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the proxy answers an HTTP request, not merely accepts TCP: Apache binds its
/// port before its configuration pass is over and resets what it accepted in between.
async fn wait_answering(proxy: &mut Nginx, port: u16, dir: &TempDir) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        wait_listening(proxy, port, dir).await;
        if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            let mut answer = Vec::new();
            let asked = s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n").await.is_ok();
            let read = tokio::time::timeout(Duration::from_secs(2), s.read_to_end(&mut answer)).await;
            if asked && matches!(read, Ok(Ok(_))) && answer.starts_with(b"HTTP/") {
                return;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "the proxy never answered an HTTP request");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn post(addr: (&str, u16), target: &str, body: &str, headers: &[(&str, &str)]) -> (u16, String) {
    http_on(tokio::net::TcpStream::connect(addr).await.unwrap(), "POST", target, headers, body).await
}

#[tokio::test]
async fn nginx_dedicated_location_and_same_location_forms() {
    let Some(bin) = nginx_bin() else {
        assert!(std::env::var_os("HERALD_REQUIRE_OPS_TOOLS").is_none(), "nginx is required (apt-get install nginx)");
        eprintln!("skipped: nginx is not installed");
        return;
    };
    let dir = TempDir::new("nginx");
    let cfg = dir.write(
        "herald.toml",
        &format!(
            "[server]\nhost = \"127.0.0.1\"\nport = 0\npath_prefix = \"/ws\"\ntrusted_proxies = [\"127.0.0.1\"]\n\n\
             [[apps]]\nid = \"1\"\nkey = \"key\"\nsecret = \"{SECRET}\"\n"
        ),
    );
    let herald = Herald::spawn(&["serve", "-c", &cfg.display().to_string(), "-v"], 1).unwrap();
    let (dedicated, same) = (free_port(), free_port());
    let mut nginx = start_nginx(&bin, &dir, herald.addr(), dedicated, same);
    wait_listening(&mut nginx, dedicated, &dir).await;
    wait_listening(&mut nginx, same, &dir).await;

    // Dedicated location: pusher-js with wsPath '/ws'.
    let url = format!("ws://127.0.0.1:{dedicated}/ws/app/key?protocol=7&client=js&version=8.4.0&flash=false");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("upgrade through nginx");
    assert_eq!(next_json(&mut ws).await["event"], "pusher:connection_established");
    subscribe(&mut ws, "news").await;

    // The HTTP API through the prefix: signed the SDK way (without /ws) and over the full path.
    let at = ("127.0.0.1", dedicated);
    let (target, body) = signed_publish("1", "key", SECRET, "news", "sdk-style", "/ws", "");
    assert_eq!(post(at, &target, &body, &[]).await.0, 200);
    assert_eq!(next_json(&mut ws).await["data"], "sdk-style");
    let (target, body) = signed_publish("1", "key", SECRET, "news", "full-path", "/ws", "/ws");
    assert_eq!(post(at, &target, &body, &[]).await.0, 200);
    assert_eq!(next_json(&mut ws).await["data"], "full-path");
    let (target, body) = signed_publish("1", "key", "wrong", "news", "forged", "/ws", "");
    assert_eq!(post(at, &target, &body, &[]).await.0, 401);
    let (code, text) = http_on(tokio::net::TcpStream::connect(at).await.unwrap(), "GET", "/", &[], "").await;
    assert_eq!((code, text.as_str()), (200, "site\n"), "the rest of the site is nginx's");

    // X-Forwarded-For: nginx appends the real peer; a client's own entries on the left are not
    // believed, the hop nginx vouches for is.
    let headers = [("X-Forwarded-For", "203.0.113.7")];
    let (code, _) = http_on(tokio::net::TcpStream::connect(at).await.unwrap(), "GET", "/ws/up", &headers, "").await;
    assert_eq!(code, 200);
    herald.wait_log("client=203.0.113.7");

    // Same-location form: WebSocket handshakes on any path go to herald, the rest to @web.
    let url = format!("ws://127.0.0.1:{same}/app/key?protocol=7&client=js&version=8.4.0");
    let (mut ws2, _) = tokio_tungstenite::connect_async(url).await.expect("upgrade through the map form");
    assert_eq!(next_json(&mut ws2).await["event"], "pusher:connection_established");
    let (code, text) =
        http_on(tokio::net::TcpStream::connect(("127.0.0.1", same)).await.unwrap(), "GET", "/", &[], "").await;
    assert_eq!((code, text.as_str()), (200, "web\n"));
}

/// A proxy binary, or `None` (skipped) unless `HERALD_REQUIRE_OPS_TOOLS=1` makes it required.
fn proxy_bin(candidates: &[&str], package: &str) -> Option<PathBuf> {
    let found = candidates.iter().map(PathBuf::from).find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var_os("HERALD_REQUIRE_OPS_TOOLS").is_none(),
            "{package} is required (apt-get install {package})"
        );
        eprintln!("skipped: {package} is not installed");
    }
    found
}

/// herald with `path_prefix = "/ws"`, then a WebSocket and a signed publish through `front`.
async fn check_through(herald: &Herald, front: u16, ws_path: &str, api_prefix: &str) {
    let url = format!("ws://127.0.0.1:{front}{ws_path}?protocol=7&client=js&version=8.4.0");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("upgrade through the proxy");
    assert_eq!(next_json(&mut ws).await["event"], "pusher:connection_established");
    subscribe(&mut ws, "news").await;
    let (target, body) = signed_publish("1", "key", SECRET, "news", "proxied", api_prefix, "");
    assert_eq!(post(("127.0.0.1", front), &target, &body, &[]).await, (200, "{}".to_owned()));
    assert_eq!(next_json(&mut ws).await["data"], "proxied");
    let _ = herald;
}

fn prefixed_herald(dir: &TempDir) -> Herald {
    let cfg = dir.write(
        "herald.toml",
        &format!(
            "[server]\nhost = \"127.0.0.1\"\nport = 0\npath_prefix = \"/ws\"\ntrusted_proxies = [\"127.0.0.1\"]\n\n\
             [[apps]]\nid = \"1\"\nkey = \"key\"\nsecret = \"{SECRET}\"\n"
        ),
    );
    Herald::spawn(&["serve", "-c", &cfg.display().to_string()], 1).unwrap()
}

#[tokio::test]
async fn apache_with_the_shipped_snippet() {
    let Some(bin) = proxy_bin(&["/usr/sbin/apache2", "/usr/sbin/httpd"], "apache2") else { return };
    let dir = TempDir::new("apache");
    let herald = prefixed_herald(&dir);
    let snippet = std::fs::read_to_string(repo_root().join("deploy/apache/herald.conf")).unwrap();
    dir.write("herald.conf", &snippet.replace("127.0.0.1:6001", &herald.addr().to_string()));
    let port = free_port();
    let d = dir.0.display();
    let modules = "/usr/lib/apache2/modules";
    let conf = format!(
        "ServerName localhost\nListen 127.0.0.1:{port}\nPidFile {d}/httpd.pid\nErrorLog {d}/error.log\n\
         Mutex file:{d} default\nDocumentRoot {d}\n\
         LoadModule mpm_event_module {modules}/mod_mpm_event.so\n\
         LoadModule authz_core_module {modules}/mod_authz_core.so\n\
         LoadModule headers_module {modules}/mod_headers.so\n\
         LoadModule proxy_module {modules}/mod_proxy.so\n\
         LoadModule proxy_http_module {modules}/mod_proxy_http.so\n\
         LoadModule proxy_wstunnel_module {modules}/mod_proxy_wstunnel.so\n\
         <VirtualHost 127.0.0.1:{port}>\n  Include {d}/herald.conf\n</VirtualHost>\n"
    );
    let conf_path = dir.write("httpd.conf", &conf);
    let child = Command::new(bin)
        .args(["-f", &conf_path.display().to_string(), "-DFOREGROUND", "-X"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start apache");
    let mut apache = Nginx(child);
    wait_answering(&mut apache, port, &dir).await;
    check_through(&herald, port, "/ws/app/key", "/ws").await;
}

#[tokio::test]
async fn caddy_with_the_shipped_snippets() {
    let Some(bin) = proxy_bin(&["/usr/bin/caddy", "/usr/local/bin/caddy"], "caddy") else { return };
    let dir = TempDir::new("caddy");
    let herald = prefixed_herald(&dir);
    let snippets = std::fs::read_to_string(repo_root().join("deploy/caddy/herald.caddy")).unwrap();
    dir.write("herald.caddy", &snippets.replace("127.0.0.1:6001", &herald.addr().to_string()));
    let (path_port, upgrade_port) = (free_port(), free_port());
    let d = dir.0.display();
    let conf = format!(
        "{{\n\tadmin off\n\tauto_https off\n\tstorage file_system {d}/data\n}}\n\
         import {d}/herald.caddy\n\
         http://:{path_port} {{\n\tbind 127.0.0.1\n\timport herald_path\n\trespond \"site\"\n}}\n\
         http://:{upgrade_port} {{\n\tbind 127.0.0.1\n\timport herald_upgrade\n\troot * {d}/www\n\tfile_server\n}}\n"
    );
    let conf_path = dir.write("Caddyfile", &conf);
    // The site's own content, served after the WebSocket matcher as php_fastcgi would be.
    std::fs::create_dir(dir.path("www")).unwrap();
    dir.write("www/index.html", "web");
    let child = Command::new(bin)
        .args(["run", "--config", &conf_path.display().to_string(), "--adapter", "caddyfile"])
        .env("HOME", &dir.0)
        .env("XDG_DATA_HOME", dir.path("data"))
        .env("XDG_CONFIG_HOME", dir.path("config"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start caddy");
    let mut caddy = Nginx(child);
    wait_listening(&mut caddy, path_port, &dir).await;
    wait_listening(&mut caddy, upgrade_port, &dir).await;
    check_through(&herald, path_port, "/ws/app/key", "/ws").await;
    // The upgrade-matcher form: handshakes on the site's own paths.
    let url = format!("ws://127.0.0.1:{upgrade_port}/app/key?protocol=7&client=js&version=8.4.0");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("upgrade through caddy");
    assert_eq!(next_json(&mut ws).await["event"], "pusher:connection_established");
    let (code, text) =
        http_on(tokio::net::TcpStream::connect(("127.0.0.1", upgrade_port)).await.unwrap(), "GET", "/", &[], "").await;
    assert_eq!((code, text.as_str()), (200, "web"));
}

/// Reads the streaming response on `s` until `needle` shows up, failing if the response ends
/// first (the last chunk `0\r\n\r\n`, or EOF) or nothing comes for 5 s: whatever arrives
/// arrived while the response was still open.
async fn read_until_open(s: &mut tokio::net::TcpStream, seen: &mut Vec<u8>, needle: &str) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(seen).contains(needle) {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{needle} did not arrive promptly; got {}", String::from_utf8_lossy(seen)))
            .unwrap();
        assert!(n > 0, "the streaming response ended before {needle}: {}", String::from_utf8_lossy(seen));
        seen.extend_from_slice(&buf[..n]);
        assert!(!String::from_utf8_lossy(seen).contains("\r\n0\r\n\r\n"), "the streaming response ended");
    }
}

#[tokio::test]
async fn nginx_passes_xhr_streaming_unbuffered() {
    use tokio::io::AsyncWriteExt;
    let Some(bin) = nginx_bin() else {
        assert!(std::env::var_os("HERALD_REQUIRE_OPS_TOOLS").is_none(), "nginx is required (apt-get install nginx)");
        eprintln!("skipped: nginx is not installed");
        return;
    };
    let dir = TempDir::new("nginx-xhr");
    let herald = prefixed_herald(&dir);
    let (dedicated, same) = (free_port(), free_port());
    let mut nginx = start_nginx(&bin, &dir, herald.addr(), dedicated, same);
    wait_listening(&mut nginx, dedicated, &dir).await;
    wait_listening(&mut nginx, same, &dir).await;

    for (port, base) in [(dedicated, "/ws/pusher/app/key/7/stream01"), (same, "/pusher/app/key/7/stream02")] {
        // pusher-js's receive request (httpPath '/ws/pusher' for the dedicated location).
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let head = format!(
            "POST {base}/xhr_streaming?protocol=7&client=js&version=8.6.0 HTTP/1.1\r\nHost: localhost\r\n\
             Content-Length: 0\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let mut seen = Vec::new();
        read_until_open(&mut s, &mut seen, "pusher:connection_established").await;
        assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&seen));

        let subscribe = r#"["{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"news\"}}"]"#;
        let at = ("127.0.0.1", port);
        assert_eq!(post(at, &format!("{base}/xhr_send"), subscribe, &[]).await.0, 204);
        read_until_open(&mut s, &mut seen, "pusher_internal:subscription_succeeded").await;

        let (target, body) = signed_publish("1", "key", SECRET, "news", "through-nginx", "", "");
        let direct = herald.addr();
        assert_eq!(post((&direct.ip().to_string(), direct.port()), &target, &body, &[]).await.0, 200);
        read_until_open(&mut s, &mut seen, "through-nginx").await;
    }
}
