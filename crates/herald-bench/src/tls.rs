//! The TLS client side: `wss://` subscribers and `https://` publishers for servers that
//! terminate TLS themselves (herald's `tls_cert`/`tls_key`, Soketi's `ssl.certPath`).
//!
//! The handshake goes through `tokio-rustls`; afterwards a subscriber drives the
//! [`ClientConnection`] itself over the raw `TcpStream` ([`TlsSocket`]), so ciphertext lands in
//! the same per-thread scratch buffer as plain reads and a connection keeps no read buffer of
//! its own beyond what rustls holds. The publisher's HTTP client keeps the `tokio-rustls`
//! stream, since hyper wants an `AsyncRead + AsyncWrite`.

use std::fmt;
use std::io::{self, Read as _, Write as _};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::clock;
use crate::error::BenchError;

/// How the generator opens TLS connections: trusts exactly the certificates of one PEM file.
#[derive(Clone)]
pub struct TlsClient {
    /// The client configuration, shared by every connection.
    config: Arc<ClientConfig>,
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsClient")
    }
}

impl TlsClient {
    /// A client trusting every certificate in the PEM file `ca` (a CA, or the server's own
    /// self-signed certificate).
    ///
    /// # Errors
    /// The file is unreadable, holds no certificate, or a certificate is unusable as a root.
    pub fn from_ca_file(ca: &Path) -> Result<Self, String> {
        let mut roots = RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("{}: {e}", ca.display()))?;
            roots.add(cert).map_err(|e| format!("{}: {e}", ca.display()))?;
        }
        if roots.is_empty() {
            return Err(format!("{} contains no PEM certificate", ca.display()));
        }
        // The ring provider, as herald itself uses: no second crypto backend in the build.
        let config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self { config: Arc::new(config) })
    }

    /// Runs the TLS handshake on `tcp`; the server's certificate must be valid for its IP
    /// address (a subjectAltName `IP:127.0.0.1`).
    ///
    /// # Errors
    /// The handshake failed or the certificate was refused.
    pub async fn handshake(&self, tcp: TcpStream, server: SocketAddr) -> Result<TlsStream<TcpStream>, BenchError> {
        let name = ServerName::IpAddress(server.ip().into());
        Ok(TlsConnector::from(Arc::clone(&self.config)).connect(name, tcp).await?)
    }
}

/// An established TLS connection driven by hand over its TCP stream.
#[derive(Debug)]
pub struct TlsSocket {
    /// The TCP stream carrying the records.
    tcp: TcpStream,
    /// rustls' state: keys, the partial record being received, records waiting to be sent.
    conn: ClientConnection,
}

impl TlsSocket {
    /// Takes over a connection whose handshake `tokio-rustls` completed. Plaintext already
    /// decrypted but not yet read stays in `conn` and is returned by the next read.
    pub fn new(stream: TlsStream<TcpStream>) -> Self {
        let (tcp, conn) = stream.into_inner();
        Self { tcp, conn }
    }

    /// Waits for the socket to be readable and appends whatever plaintext it brought to
    /// `inbuf`. Returns when the read that brought it returned ([`clock::now_us`], taken before
    /// decryption so that latency counts the generator's own work no more than on the plain
    /// path), or `None` after a spurious wake-up or when only part of a record arrived.
    ///
    /// # Errors
    /// The socket failed or closed, or a record did not decrypt.
    pub async fn read_into(&mut self, inbuf: &mut BytesMut) -> Result<Option<u64>, BenchError> {
        if self.take_plaintext(inbuf)? {
            return Ok(Some(clock::now_us()));
        }
        self.tcp.readable().await?;
        crate::scratch::with_scratch(|scratch| self.feed(inbuf, scratch))
    }

    /// Reads the ciphertext waiting on the socket into `scratch` and decrypts it into `inbuf`.
    fn feed(&mut self, inbuf: &mut BytesMut, scratch: &mut [u8]) -> Result<Option<u64>, BenchError> {
        let n = match self.tcp.try_read(scratch) {
            Ok(0) => return Err(BenchError::Closed),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let read_at = clock::now_us();
        let mut ciphertext = &scratch[..n];
        let mut got = false;
        // rustls takes at most about one record per call: feed it until the read is used up,
        // taking the plaintext out each time so its receive buffer never fills.
        while !ciphertext.is_empty() {
            if self.conn.read_tls(&mut ciphertext)? == 0 {
                return Err(BenchError::Closed);
            }
            got |= self.take_plaintext(inbuf)?;
        }
        Ok(got.then_some(read_at))
    }

    /// Decrypts the complete records rustls holds and moves their plaintext to `inbuf`.
    fn take_plaintext(&mut self, inbuf: &mut BytesMut) -> Result<bool, BenchError> {
        let state = self.conn.process_new_packets().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let n = state.plaintext_bytes_to_read();
        if n == 0 {
            return if state.peer_has_closed() { Err(BenchError::Closed) } else { Ok(false) };
        }
        let start = inbuf.len();
        inbuf.resize(start + n, 0);
        let got = self.conn.reader().read(&mut inbuf[start..])?;
        inbuf.truncate(start + got);
        Ok(got > 0)
    }

    /// Encrypts `data` and writes the records out.
    ///
    /// # Errors
    /// The socket failed.
    pub async fn write_all(&mut self, mut data: &[u8]) -> Result<(), BenchError> {
        while !data.is_empty() {
            let taken = self.conn.writer().write(data)?;
            if taken == 0 && !self.conn.wants_write() {
                return Err(io::Error::from(io::ErrorKind::WriteZero).into());
            }
            data = &data[taken..];
            while self.conn.wants_write() {
                match self.conn.write_tls(&mut TryWriter(&self.tcp)) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.tcp.writable().await?,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }
}

/// `std::io::Write` over a non-blocking tokio socket, for rustls' `write_tls`.
struct TryWriter<'a>(&'a TcpStream);

impl io::Write for TryWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::process::Command;

    use herald_protocol::ws::{self, Decoder, DecoderConfig, Message};
    use rustls::pki_types::PrivateKeyDer;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use super::*;
    use crate::ws_client::WsConn;

    /// A directory of its own under the system's temporary directory, removed on drop.
    struct TempDir(PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The certificate scripts/bench-peers makes: self-signed P-256 for IP 127.0.0.1, no CA.
    fn make_cert(name: &str) -> TempDir {
        let dir = TempDir(std::env::temp_dir().join(format!("herald-bench-{name}-{}", std::process::id())));
        std::fs::create_dir_all(&dir.0).unwrap();
        let out = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
            .args(["-days", "2", "-keyout", "key.pem", "-out", "cert.pem", "-subj", "/CN=127.0.0.1"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:FALSE"])
            .current_dir(&dir.0)
            .output()
            .expect("openssl is installed (Debian package openssl)");
        assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
        dir
    }

    fn acceptor(dir: &Path) -> tokio_rustls::TlsAcceptor {
        let certs =
            CertificateDer::pem_file_iter(dir.join("cert.pem")).unwrap().collect::<Result<Vec<_>, _>>().unwrap();
        let key = PrivateKeyDer::from_pem_file(dir.join("key.pem")).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }

    #[tokio::test]
    async fn websocket_over_tls_both_ways_across_record_boundaries() {
        let dir = make_cert("wss");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = acceptor(&dir.0);
        // Larger than one TLS record (16 KiB), so the client reassembles it from several.
        let big = vec![7u8; 40_000];
        let sent = big.clone();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut s = acceptor.accept(tcp).await.unwrap();
            let mut head = BytesMut::new();
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                assert!(s.read_buf(&mut head).await.unwrap() > 0, "client closed during the upgrade");
            }
            let text = String::from_utf8(head.to_vec()).unwrap();
            let key = text.lines().find_map(|l| l.strip_prefix("Sec-WebSocket-Key: ")).unwrap();
            let mut out = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {}\r\n\r\n",
                ws::accept_key(key.as_bytes())
            )
            .into_bytes();
            // A frame in the same record as the 101: the client must keep it past the upgrade.
            out.extend_from_slice(&ws::encode_text(b"first"));
            s.write_all(&out).await.unwrap();
            s.write_all(&ws::encode_binary(&sent)).await.unwrap();
            s.flush().await.unwrap();
            let mut decoder = Decoder::new(DecoderConfig::default());
            let mut buf = BytesMut::new();
            loop {
                if let Some(m) = decoder.decode(&mut buf).unwrap() {
                    return m;
                }
                assert!(s.read_buf(&mut buf).await.unwrap() > 0, "client closed before its message");
            }
        });
        let client = TlsClient::from_ca_file(&dir.0.join("cert.pem")).unwrap();
        let mut conn = WsConn::connect(addr, None, Some(&client), "/", None).await.unwrap();
        assert_eq!(&conn.next_data().await.unwrap()[..], b"first");
        assert_eq!(conn.next_data().await.unwrap(), big);
        conn.send_text(b"back").await.unwrap();
        assert!(matches!(server.await.unwrap(), Message::Text(b) if &b[..] == b"back"));
    }

    #[tokio::test]
    async fn a_certificate_not_in_the_ca_file_is_refused() {
        let (served, trusted) = (make_cert("served"), make_cert("trusted"));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = acceptor(&served.0);
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ = acceptor.accept(tcp).await;
        });
        let client = TlsClient::from_ca_file(&trusted.0.join("cert.pem")).unwrap();
        let err = WsConn::connect(addr, None, Some(&client), "/", None).await.unwrap_err();
        assert!(err.to_string().contains("certificate"), "{err}");
    }

    #[test]
    fn a_ca_file_without_certificates_is_an_error() {
        let dir = make_cert("nocert");
        let err = TlsClient::from_ca_file(&dir.0.join("key.pem")).unwrap_err();
        assert!(err.contains("no PEM certificate"), "{err}");
    }
}
