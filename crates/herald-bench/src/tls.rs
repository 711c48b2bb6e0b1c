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

use crate::error::BenchError;
use crate::ws_client;

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
    /// `inbuf`. `Ok(false)`: a spurious wake-up, or only part of a record arrived.
    ///
    /// # Errors
    /// The socket failed or closed, or a record did not decrypt.
    pub async fn read_into(&mut self, inbuf: &mut BytesMut) -> Result<bool, BenchError> {
        if self.take_plaintext(inbuf)? {
            return Ok(true);
        }
        self.tcp.readable().await?;
        ws_client::with_scratch(|scratch| self.feed(inbuf, scratch))
    }

    /// Reads the ciphertext waiting on the socket into `scratch` and decrypts it into `inbuf`.
    fn feed(&mut self, inbuf: &mut BytesMut, scratch: &mut [u8]) -> Result<bool, BenchError> {
        let n = match self.tcp.try_read(scratch) {
            Ok(0) => return Err(BenchError::Closed),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e.into()),
        };
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
        Ok(got)
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
