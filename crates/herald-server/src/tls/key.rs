//! Reading a PEM certificate chain and private key from disk, decrypting PKCS#8 keys.
//!
//! rustls only takes decrypted DER. `-----BEGIN ENCRYPTED PRIVATE KEY-----` (PKCS#8 with PBES2,
//! or the OpenSSL 1.0-era PBKDF2-SHA1 / 3DES variants) is decrypted here with the passphrase.
//! The older OpenSSL "traditional" encryption (`Proc-Type: 4,ENCRYPTED`) is refused with the
//! command that converts it.

use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::{Passphrase, TlsError};

const ENCRYPTED_BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
const ENCRYPTED_END: &str = "-----END ENCRYPTED PRIVATE KEY-----";

/// Reads every certificate of a PEM chain, leaf first.
pub(super) fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path, "certificate")?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem { path: path.to_owned(), problem: e.to_string() })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate { path: path.to_owned() });
    }
    Ok(chain)
}

/// Reads the private key, decrypting it with `passphrase` when it is encrypted.
pub(super) fn read_key(path: &Path, passphrase: Option<&Passphrase>) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path, "private key")?;
    let text = String::from_utf8_lossy(&pem);
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(TlsError::LegacyEncryptedKey { path: path.to_owned() });
    }
    if let Some(block) = encrypted_block(&text) {
        let Some(pass) = passphrase else {
            return Err(TlsError::PassphraseRequired { path: path.to_owned() });
        };
        return decrypt(block, pass).ok_or_else(|| TlsError::WrongPassphrase { path: path.to_owned() });
    }
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoKey { path: path.to_owned() },
        other => TlsError::BadPem { path: path.to_owned(), problem: other.to_string() },
    })?;
    if passphrase.is_some() {
        tracing::warn!(path = %path.display(), "tls_passphrase is set but the private key is not encrypted");
    }
    Ok(key)
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { what, path: path.to_owned(), source })
}

/// The first `ENCRYPTED PRIVATE KEY` PEM block, markers included.
fn encrypted_block(text: &str) -> Option<&str> {
    let start = text.find(ENCRYPTED_BEGIN)?;
    let end = text[start..].find(ENCRYPTED_END)? + start + ENCRYPTED_END.len();
    Some(&text[start..end])
}

/// Decrypts an `ENCRYPTED PRIVATE KEY` block; `None` for a wrong passphrase or a corrupt block
/// (the two cannot be told apart: a wrong key yields garbage that fails to parse).
fn decrypt(block: &str, pass: &Passphrase) -> Option<PrivateKeyDer<'static>> {
    let (label, der) = pkcs8::der::pem::decode_vec(block.as_bytes()).ok()?;
    if label != "ENCRYPTED PRIVATE KEY" {
        return None;
    }
    let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(der.as_slice()).ok()?;
    let doc = info.decrypt(pass.expose().as_bytes()).ok()?;
    // A wrong passphrase occasionally survives the padding check; the result must still be a
    // well-formed PrivateKeyInfo.
    pkcs8::PrivateKeyInfoRef::try_from(doc.as_bytes()).ok()?;
    Some(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(doc.as_bytes().to_vec())))
}
