//! Tests of the upgrade request checks and the 101 bytes, fed from in-memory requests.

use super::*;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

async fn read(head: &str) -> Result<(Upgrade, Bytes), Option<Refusal>> {
    let mut io = head.as_bytes();
    read_request(&mut io).await
}

fn php_backend_request(extra: &str) -> String {
    format!(
        "GET /ws?ticket=abc%2B HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Protocol: wamp\r\nSec-WebSocket-Version: 13\r\n\
         Origin: 127.0.0.1\r\n{extra}\r\n"
    )
}

#[tokio::test]
async fn php_backend_request_is_an_upgrade_with_wamp() {
    let (u, rest) = read(&php_backend_request("")).await.unwrap();
    assert_eq!(u.query, "ticket=abc%2B");
    assert_eq!(u.origin.as_deref(), Some("127.0.0.1"));
    assert!(u.wamp);
    assert_eq!(u.accept.as_deref(), Ok("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    assert!(rest.is_empty());
}

#[tokio::test]
async fn bytes_after_the_head_are_kept() {
    let mut req = php_backend_request("");
    req.push('\u{81}');
    let (_, rest) = read(&req).await.unwrap();
    assert_eq!(&rest[..], "\u{81}".as_bytes());
}

#[tokio::test]
async fn http_problems_are_refused_before_the_origin_check() {
    let post = php_backend_request("").replacen("GET", "POST", 1);
    assert_eq!(read(&post).await.err(), Some(Some(Refusal::BadRequest)));
    let http10 = php_backend_request("").replacen("HTTP/1.1", "HTTP/1.0", 1);
    assert_eq!(read(&http10).await.err(), Some(Some(Refusal::BadRequest)));
    let two_hosts = php_backend_request("Host: other\r\n");
    assert_eq!(read(&two_hosts).await.err(), Some(Some(Refusal::BadRequest)));
    assert_eq!(read("garbage\r\n\r\n").await.err(), Some(Some(Refusal::BadRequest)));
    assert_eq!(read("").await.err(), Some(None));
}

#[tokio::test]
async fn websocket_problems_are_recorded_for_after_the_origin_check() {
    let v8 = php_backend_request("").replace("Version: 13", "Version: 8");
    assert_eq!(read(&v8).await.unwrap().0.accept, Err(Refusal::UpgradeRequired));
    let no_key = php_backend_request("").replace(KEY, "short");
    assert_eq!(read(&no_key).await.unwrap().0.accept, Err(Refusal::BadRequest));
    let plain = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(read(plain).await.unwrap().0.accept, Err(Refusal::BadRequest));
}

#[tokio::test]
async fn no_subprotocol_still_upgrades() {
    let req = php_backend_request("").replace("Sec-WebSocket-Protocol: wamp\r\n", "");
    let (u, _) = read(&req).await.unwrap();
    assert!(!u.wamp);
    let reply = u.switching_protocols("x", b"");
    assert!(!String::from_utf8(reply).unwrap().contains("Sec-WebSocket-Protocol"));
}

#[tokio::test]
async fn oversized_heads_are_refused() {
    let big = php_backend_request(&format!("X-Big: {}\r\n", "a".repeat(MAX_HEAD)));
    assert_eq!(read(&big).await.err(), Some(Some(Refusal::TooLarge)));
}

#[test]
fn switching_protocols_has_no_brackets_and_ends_with_the_frame() {
    let u = Upgrade {
        path: "/".into(),
        query: String::new(),
        forwarded_for: Vec::new(),
        origin: None,
        wamp: true,
        accept: Ok("abc".into()),
    };
    let out = u.switching_protocols("abc", b"[0]");
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("HTTP/1.1 101 "));
    let (head, frame) = text.split_once("\r\n\r\n").unwrap();
    assert!(!head.contains('[') && !head.contains(']'));
    assert!(head.contains("\r\nSec-WebSocket-Protocol: wamp"));
    assert_eq!(frame, "[0]");
}

#[test]
fn refusals_are_bare_http_responses() {
    let r = String::from_utf8(Refusal::Forbidden.response().to_vec()).unwrap();
    assert!(r.starts_with("HTTP/1.1 403 Forbidden\r\n"));
    assert!(r.ends_with("\r\n\r\n"));
    assert!(String::from_utf8_lossy(&Refusal::UpgradeRequired.response()).contains("Sec-WebSocket-Version: 13"));
}

#[test]
fn origin_hosts_like_parse_url() {
    assert_eq!(origin_host("127.0.0.1"), "127.0.0.1");
    assert_eq!(origin_host("https://evil.test"), "evil.test");
    assert_eq!(origin_host("https://Oro.Example.com:8443/path"), "Oro.Example.com");
    assert_eq!(origin_host("http://user@host.test"), "host.test");
    assert_eq!(origin_host("http://[::1]:80"), "::1");
    assert_eq!(origin_host("localhost:8080"), "localhost");
    assert_eq!(origin_host("null"), "null");
    assert_eq!(origin_host(""), "");
}
