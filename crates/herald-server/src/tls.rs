//! TLS termination in process, per listener, with rustls on the ring provider.
//!
//! Each TLS listener owns a [`CertStore`]: the loaded certificate and key behind an `ArcSwap`,
//! handed to rustls as its certificate resolver. A reload (SIGHUP) swaps in a freshly loaded
//! pair; handshakes already done keep their keys, so no connection is dropped, and a reload
//! that fails keeps the previous certificate. Everything is loaded before a port is bound, so a
//! bad file stops herald with a clear message and nothing half-started.

mod framing;
mod key;
pub(crate) mod lean;
mod record;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// A server-side TLS stream, as the accept loop hands it on (and upgraded WebSockets find it
/// under hyper).
/// rustls reads through [`framing::FramedTcp`], so that [`lean::take_over`] knows whether it
/// holds a partial record.
pub(crate) type TlsStream = tokio_rustls::server::TlsStream<framing::FramedTcp>;

/// Wraps an accepted connection for the TLS handshake.
pub(crate) fn framed(io: tokio::net::TcpStream) -> framing::FramedTcp {
    framing::FramedTcp::new(io)
}

/// A secret that never appears in `Debug` output or logs.
#[derive(Clone)]
pub struct Passphrase(String);

impl Passphrase {
    /// Wraps a passphrase.
    pub fn new(s: String) -> Self {
        Self(s)
    }

    /// The passphrase itself, for the decryption call only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where a listener's certificate chain and private key are.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first (Let's Encrypt's `fullchain.pem`).
    pub cert: PathBuf,
    /// PEM private key: PKCS#8, PKCS#1 or SEC1, or encrypted PKCS#8 with `passphrase`.
    pub key: PathBuf,
    /// Passphrase of an encrypted key.
    pub passphrase: Option<Passphrase>,
}

/// Why a certificate or key cannot be used; at start-up herald exits with code 64.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file is missing or unreadable.
    #[error("cannot read the {what} file {path}: {source}")]
    Read {
        /// `certificate` or `private key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file holds no `CERTIFICATE` block.
    #[error("{path} contains no PEM certificate")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The file holds no private key block.
    #[error("{path} contains no PEM private key")]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// A PEM block is malformed.
    #[error("{path} is not valid PEM: {problem}")]
    BadPem {
        /// The file.
        path: PathBuf,
        /// The parser's account.
        problem: String,
    },
    /// The key is encrypted and no passphrase was configured.
    #[error("the private key {path} is encrypted: set tls_passphrase")]
    PassphraseRequired {
        /// The key file.
        path: PathBuf,
    },
    /// The passphrase does not decrypt the key.
    #[error("cannot decrypt the private key {path}: wrong tls_passphrase (or a corrupt key)")]
    WrongPassphrase {
        /// The key file.
        path: PathBuf,
    },
    /// OpenSSL's pre-PKCS#8 encryption, which herald does not read.
    #[error(
        "the private key {path} uses OpenSSL's legacy encryption (Proc-Type: 4,ENCRYPTED); convert it with \
         `openssl pkcs8 -topk8 -v2 aes-256-cbc -in OLD.key -out NEW.key`"
    )]
    LegacyEncryptedKey {
        /// The key file.
        path: PathBuf,
    },
    /// rustls cannot use the key (unsupported algorithm or curve).
    #[error("the private key {path} cannot be used: {source}")]
    UnusableKey {
        /// The key file.
        path: PathBuf,
        /// rustls' account.
        #[source]
        source: rustls::Error,
    },
    /// The key does not belong to the certificate.
    #[error("the private key {key} does not match the certificate {cert}")]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The crypto provider cannot build a server configuration (a build problem, not a file one).
    #[error("TLS provider: {0}")]
    Provider(#[source] rustls::Error),
    /// The certificate cannot be parsed.
    #[error("the certificate {path} cannot be used: {source}")]
    BadCertificate {
        /// The certificate file.
        path: PathBuf,
        /// rustls' account.
        #[source]
        source: rustls::Error,
    },
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Loads and checks a certificate chain and its key.
///
/// # Errors
/// [`TlsError`] for a missing or unreadable file, a malformed PEM, an encrypted key without or
/// with a wrong passphrase, or a key that does not match the certificate.
pub fn load(files: &TlsFiles) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = key::read_chain(&files.cert)?;
    let der = key::read_key(&files.key, files.passphrase.as_ref())?;
    let signing = provider()
        .key_provider
        .load_private_key(der)
        .map_err(|source| TlsError::UnusableKey { path: files.key.clone(), source })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(Arc::new(certified)),
        Err(rustls::Error::InconsistentKeys(_)) => {
            Err(TlsError::KeyMismatch { cert: files.cert.clone(), key: files.key.clone() })
        }
        Err(source) => Err(TlsError::BadCertificate { path: files.cert.clone(), source }),
    }
}

/// Loads every certificate of `all` (for `herald config check`: every listener's, from
/// `config::Settings::tls_files`); returns how many were checked.
///
/// # Errors
/// The first [`TlsError`].
pub fn check<'a>(all: impl IntoIterator<Item = &'a TlsFiles>) -> Result<usize, TlsError> {
    let mut n = 0;
    for files in all {
        load(files)?;
        n += 1;
    }
    Ok(n)
}

/// A listener's current certificate, swappable while connections are open.
pub struct CertStore {
    files: TlsFiles,
    current: ArcSwap<CertifiedKey>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore").field("cert", &self.files.cert).finish_non_exhaustive()
    }
}

impl CertStore {
    /// Loads the files once.
    ///
    /// # Errors
    /// See [`load`].
    pub fn open(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        let key = load(&files)?;
        Ok(Arc::new(Self { current: ArcSwap::new(key), files }))
    }

    /// Loads the files again and swaps them in; on error the previous certificate stays.
    ///
    /// # Errors
    /// See [`load`].
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = load(&self.files)?;
        self.current.store(key);
        Ok(())
    }

    /// The certificate file, for log lines.
    pub fn cert_path(&self) -> &Path {
        &self.files.cert
    }

    /// A rustls server configuration that resolves through this store (HTTP/1.1 only:
    /// WebSocket upgrades need it).
    ///
    /// # Errors
    /// [`TlsError::Provider`] if the crypto provider lacks the default protocol versions.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsError> {
        let resolver: Arc<dyn ResolvesServerCert> = Arc::clone(self) as _;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Provider)?
            .with_no_client_auth()
            .with_cert_resolver(resolver);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        // Upgraded WebSockets continue on the lean record layer (`lean.rs`), which needs the keys.
        config.enable_secret_extraction = true;
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}
