//! TLS for the operations tests: a test CA and leaf certificates made with Debian's `openssl`,
//! and a rustls client trusting that CA.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use tokio::net::TcpStream;

use crate::WAIT;

/// Runs `openssl ARGS` in `dir`, panicking with its stderr on failure.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed (Debian package openssl)");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A test CA and leaf certificates for 127.0.0.1/localhost, made with openssl:
/// `ca.pem`, `leaf.pem`/`leaf.key`, `leaf2.pem`/`leaf2.key` (a second leaf, for reloads),
/// `other.key` (matches nothing), `leaf-enc.key` (PKCS#8, AES-256, passphrase `s3cret-pass`),
/// `leaf-legacy.key` (traditional OpenSSL encryption).
pub fn make_certs(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=herald test CA",
        ],
    );
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
    for (name, cn) in [("leaf", "herald leaf one"), ("leaf2", "herald leaf two")] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={cn}"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ],
        );
    }
    openssl(dir, &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "other.key"]);
    openssl(
        dir,
        &[
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-in",
            "leaf.key",
            "-out",
            "leaf-enc.key",
            "-passout",
            "pass:s3cret-pass",
        ],
    );
    openssl(dir, &["ec", "-in", "leaf.key", "-out", "leaf-legacy.key", "-aes256", "-passout", "pass:s3cret-pass"]);
}

/// A TLS connection to `addr` (named by its IP address) trusting the CA in `ca`.
pub async fn tls_connect(addr: SocketAddr, ca: &Path) -> tokio_rustls::client::TlsStream<TcpStream> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
    tokio::time::timeout(WAIT, connector.connect(name, tcp)).await.expect("handshake in time").expect("handshake")
}

/// The subject CN of the certificate the server presented.
pub fn peer_cn(s: &tokio_rustls::client::TlsStream<TcpStream>) -> String {
    let cert = s.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    // The CN is the last printable string in our tiny test certificates' subject; find it by
    // its known prefix instead of parsing ASN.1.
    let text = String::from_utf8_lossy(&cert).into_owned();
    ["herald leaf one", "herald leaf two"]
        .iter()
        .find(|cn| text.contains(**cn))
        .map(|s| (*s).to_owned())
        .unwrap_or_default()
}
