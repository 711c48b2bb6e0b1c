#![allow(clippy::unwrap_used)]

use std::io::IoSlice;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use ring::aead;
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::{Handover, LeanTls, take_over};
use crate::tls::framing::FramedTcp;
use crate::tls::record::{self, Protection};
use crate::tls::{CertStore, TlsFiles};

type Client = tokio_rustls::client::TlsStream<TcpStream>;

fn server_config(dir: &Path) -> Arc<ServerConfig> {
    herald_test_support::tls::make_certs(dir);
    let files = TlsFiles { cert: dir.join("leaf.pem"), key: dir.join("leaf.key"), passphrase: None };
    CertStore::open(files).unwrap().server_config().unwrap()
}

fn client_config(
    dir: &Path,
    suite: Option<SupportedCipherSuite>,
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(dir.join("ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(s) = suite {
        provider.cipher_suites = vec![s];
    }
    let config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// A handshake between a rustls client and herald's server configuration; the client sends
/// `request` (what hyper would read) and `pipelined` at once, the server reads `request` through
/// rustls and then takes the connection over. The client's task ends once its writes are done.
async fn handshake(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    request: &[u8],
    pipelined: Vec<u8>,
) -> (Client, Handover) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut first = request.to_vec();
    first.extend_from_slice(&pipelined);
    let client = tokio::spawn(async move {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into());
        let mut tls = TlsConnector::from(client).connect(name, tcp).await.unwrap();
        tls.write_all(&first).await.unwrap();
        tls.flush().await.unwrap();
        tls
    });
    let (tcp, _) = listener.accept().await.unwrap();
    let mut tls = TlsAcceptor::from(server).accept(FramedTcp::new(tcp)).await.unwrap();
    let mut got = vec![0; request.len()];
    tls.read_exact(&mut got).await.unwrap();
    assert_eq!(got, request);
    let handover = take_over(tls, Bytes::new()).unwrap();
    (client.await.unwrap(), handover)
}

fn lean(handover: Handover) -> (LeanTls, Bytes) {
    match handover {
        Handover::Lean(io, leftover) => (io, leftover),
        Handover::Rustls(..) => panic!("expected the switch to the lean record layer"),
    }
}

/// Writes `pieces` through `poll_write_vectored`, as the WebSocket does with queued frames.
async fn write_all_vectored<W: AsyncWrite + Unpin>(io: &mut W, pieces: &[Vec<u8>]) {
    let (mut i, mut off) = (0, 0);
    while i < pieces.len() {
        let slices: Vec<IoSlice<'_>> = std::iter::once(IoSlice::new(&pieces[i][off..]))
            .chain(pieces[i + 1..].iter().map(|p| IoSlice::new(p)))
            .collect();
        let mut n = io.write_vectored(&slices).await.unwrap();
        assert!(n > 0);
        while n > 0 && i < pieces.len() {
            let left = pieces[i].len() - off;
            if n >= left {
                n -= left;
                i += 1;
                off = 0;
            } else {
                off += n;
                n = 0;
            }
        }
    }
    io.flush().await.unwrap();
}

async fn read_n<R: AsyncRead + Unpin>(io: &mut R, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    io.read_exact(&mut buf).await.unwrap();
    buf
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// Both directions on the lean layer, for one cipher suite.
async fn exchange(suite: SupportedCipherSuite) {
    let dir = herald_test_support::process::TempDir::new("lean-tls");
    let server = server_config(&dir.0);
    let client = client_config(&dir.0, Some(suite), &[&rustls::version::TLS13]);
    let (mut client, handover) = handshake(server, client, b"GET / HTTP/1.1\r\n\r\n", Vec::new()).await;
    let (mut server, leftover) = lean(handover);
    assert!(leftover.is_empty());

    server.write_all(b"hello").await.unwrap();
    server.flush().await.unwrap();
    assert_eq!(read_n(&mut client, 5).await, b"hello");

    // Larger than a record, both ways.
    let big = pattern(100_000, 1);
    let sent = big.clone();
    let writer = tokio::spawn(async move {
        client.write_all(&sent).await.unwrap();
        client.flush().await.unwrap();
        client
    });
    assert_eq!(read_n(&mut server, big.len()).await, big);
    let mut client = writer.await.unwrap();
    let reply = pattern(70_000, 2);
    let reader = tokio::spawn(async move {
        let got = read_n(&mut client, 70_000).await;
        (client, got)
    });
    server.write_all(&reply).await.unwrap();
    server.flush().await.unwrap();
    let (mut client, got) = reader.await.unwrap();
    assert_eq!(got, reply);

    // Many small frames, packed by vectored writes.
    let frames: Vec<Vec<u8>> = (0..2000).map(|i| pattern(1 + i % 40, i as u8)).collect();
    let total: usize = frames.iter().map(Vec::len).sum();
    let reader = tokio::spawn(async move {
        let got = read_n(&mut client, total).await;
        (client, got)
    });
    write_all_vectored(&mut server, &frames).await;
    let (mut client, got) = reader.await.unwrap();
    assert_eq!(got, frames.concat());

    // Idle again: no buffer held.
    assert_eq!((server.partial.capacity(), server.plain.capacity(), server.unsent.capacity()), (0, 0, 0));

    // The client's close_notify is the end of the stream; ours is a clean end for the client.
    client.shutdown().await.unwrap();
    let mut rest = Vec::new();
    assert_eq!(server.read_to_end(&mut rest).await.unwrap(), 0);
    server.shutdown().await.unwrap();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
}

#[tokio::test]
async fn aes_128_gcm_with_a_rustls_client() {
    exchange(rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256).await;
}

#[tokio::test]
async fn aes_256_gcm_with_a_rustls_client() {
    exchange(rustls::crypto::ring::cipher_suite::TLS13_AES_256_GCM_SHA384).await;
}

#[tokio::test]
async fn chacha20_poly1305_with_a_rustls_client() {
    exchange(rustls::crypto::ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256).await;
}

/// A client that sends data right after its request loses none of it, whichever way the
/// connection goes on (a record half-read by rustls keeps it on rustls).
#[tokio::test]
async fn pipelined_data_is_not_lost() {
    let dir = herald_test_support::process::TempDir::new("lean-tls-pipe");
    let server = server_config(&dir.0);
    for size in [10, 3000, 20_000, 200_000] {
        let client = client_config(&dir.0, None, &[&rustls::version::TLS13]);
        let pipelined = pattern(size, 7);
        let (mut client, handover) = handshake(Arc::clone(&server), client, b"GET\n", pipelined.clone()).await;
        let got = match handover {
            Handover::Lean(mut io, leftover) => {
                let mut got = leftover.to_vec();
                got.extend(read_n(&mut io, size - got.len()).await);
                io.write_all(b"ok").await.unwrap();
                io.flush().await.unwrap();
                got
            }
            Handover::Rustls(mut io, leftover) => {
                let mut got = leftover.to_vec();
                got.extend(read_n(&mut io, size - got.len()).await);
                io.write_all(b"ok").await.unwrap();
                io.flush().await.unwrap();
                got
            }
        };
        assert_eq!(got, pipelined, "{size} bytes pipelined");
        assert_eq!(read_n(&mut client, 2).await, b"ok");
    }
}

#[tokio::test]
async fn tls_1_2_stays_on_rustls() {
    let dir = herald_test_support::process::TempDir::new("lean-tls12");
    let server = server_config(&dir.0);
    let client = client_config(&dir.0, None, &[&rustls::version::TLS12]);
    let (mut client, handover) = handshake(server, client, b"GET\n", b"more".to_vec()).await;
    let Handover::Rustls(mut io, leftover) = handover else { panic!("TLS 1.2 must stay on rustls") };
    let mut got = leftover.to_vec();
    got.extend(read_n(&mut io, 4 - got.len()).await);
    assert_eq!(got, b"more");
    io.write_all(b"ok").await.unwrap();
    io.flush().await.unwrap();
    assert_eq!(read_n(&mut client, 2).await, b"ok");
}

/// Records arriving a few bytes at a time (and a bad record) through a raw TCP peer sealing with
/// the same keys.
#[tokio::test]
async fn records_split_across_reads() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (key, iv) = ([3u8; 32], [4u8; aead::NONCE_LEN]);
    let keys = || Protection::from_parts(&aead::AES_256_GCM, &key, &iv, 5, u64::MAX).unwrap();
    let mut peer_tx = keys();
    let peer = tokio::spawn(async move {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let mut wire = Vec::new();
        let big = pattern(30_000, 9);
        for part in [&b"first"[..], b"", &big[..16_000], &big[16_000..]] {
            peer_tx.seal(0x17, part, &mut wire).unwrap();
        }
        peer_tx.seal(record::ALERT, &record::CLOSE_NOTIFY_ALERT, &mut wire).unwrap();
        for chunk in wire.chunks(777) {
            for piece in chunk.chunks(3) {
                tcp.write_all(piece).await.unwrap();
            }
            tokio::task::yield_now().await;
        }
        tcp
    });
    let (tcp, _) = listener.accept().await.unwrap();
    let mut lean = LeanTls::new(tcp, keys(), keys());
    let mut got = Vec::new();
    lean.read_to_end(&mut got).await.unwrap();
    let mut want = b"first".to_vec();
    want.extend(pattern(30_000, 9));
    assert_eq!(got, want);
    assert_eq!(lean.partial.capacity(), 0);
    drop(peer.await.unwrap());

    // A record that fails authentication is an error, not data.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut peer_tx = keys();
    let peer = tokio::spawn(async move {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        let mut wire = Vec::new();
        peer_tx.seal(0x17, b"tampered", &mut wire).unwrap();
        wire[7] ^= 1;
        tcp.write_all(&wire).await.unwrap();
        tcp
    });
    let (tcp, _) = listener.accept().await.unwrap();
    let mut lean = LeanTls::new(tcp, keys(), keys());
    let err = lean.read(&mut [0; 64]).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    drop(peer.await.unwrap());
}

#[test]
fn the_stream_is_small() {
    let size = std::mem::size_of::<LeanTls>();
    println!("LeanTls: {size} bytes, Protection: {}", std::mem::size_of::<Protection>());
    assert!(size <= 1536, "LeanTls is {size} bytes");
}
