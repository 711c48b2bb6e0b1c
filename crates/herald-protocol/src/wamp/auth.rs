//! WAMP v2 authentication, sans-IO: the challenges a router sends and the checks of the
//! client's answers, for WAMP-Ticket, WAMP-CRA (salted and unsalted) and WAMP-Cryptosign.
//!
//! Randomness and time come in as arguments, so every function here is deterministic.
//! Comparisons of secrets are constant-time.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Why a client's answer to a challenge was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// The ticket differs from the principal's.
    #[error("ticket in static WAMP-Ticket authentication is invalid")]
    WrongTicket,
    /// The WAMP-CRA signature does not match the challenge and the secret.
    #[error("WAMP-CRA client signature is invalid")]
    WrongCraSignature,
    /// The Ed25519 signature is malformed or made by another key, or signs another challenge.
    #[error("signed message has invalid signature")]
    WrongCryptosignSignature,
    /// The client's public key is not hex of 32 bytes.
    #[error("authextra.pubkey must be a hex-encoded Ed25519 public key")]
    BadPublicKey,
}

/// Checks a WAMP-Ticket answer.
///
/// # Errors
/// [`AuthFailure::WrongTicket`] when the tickets differ.
pub fn verify_ticket(expected: &str, presented: &str) -> Result<(), AuthFailure> {
    if bool::from(expected.as_bytes().ct_eq(presented.as_bytes())) { Ok(()) } else { Err(AuthFailure::WrongTicket) }
}

/// The fields a WAMP-CRA challenge string carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CraChallenge<'a> {
    /// The principal's authid.
    pub authid: &'a str,
    /// The role the session will get.
    pub authrole: &'a str,
    /// `static` or `dynamic`.
    pub authprovider: &'a str,
    /// Random text, unique to this challenge.
    pub nonce: &'a str,
    /// ISO 8601 UTC time of the challenge.
    pub timestamp: &'a str,
    /// The session id the client will get.
    pub session: u64,
}

impl CraChallenge<'_> {
    /// The challenge string the client signs: a JSON object, as autobahn and Crossbar write it.
    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "authid": self.authid,
            "authrole": self.authrole,
            "authmethod": "wampcra",
            "authprovider": self.authprovider,
            "nonce": self.nonce,
            "timestamp": self.timestamp,
            "session": self.session,
        })
        .to_string()
    }
}

/// PBKDF2 parameters of a salted WAMP-CRA secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CraSalt {
    /// The salt, as text.
    pub salt: String,
    /// PBKDF2 iterations (autobahn's default: 1000).
    pub iterations: u32,
    /// Derived key length in bytes (autobahn's default: 32).
    pub keylen: u32,
}

/// The HMAC key of WAMP-CRA: the secret's bytes, or for a salted secret the base64 text of
/// PBKDF2-HMAC-SHA256(secret, salt, iterations, keylen) (autobahn's `derive_key`: the base64
/// text itself is the key, not the bytes it encodes).
#[must_use]
pub fn cra_key(secret: &str, salt: Option<&CraSalt>) -> Vec<u8> {
    let Some(s) = salt else { return secret.as_bytes().to_vec() };
    let iterations = std::num::NonZeroU32::new(s.iterations).unwrap_or(std::num::NonZeroU32::MIN);
    let mut derived = vec![0u8; s.keylen.clamp(1, 1024) as usize];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        s.salt.as_bytes(),
        secret.as_bytes(),
        &mut derived,
    );
    BASE64.encode(derived).into_bytes()
}

/// The signature a client holding `key` sends for `challenge`: base64(HMAC-SHA256(key, challenge)).
#[must_use]
pub fn cra_sign(key: &[u8], challenge: &str) -> String {
    cra_mac(key, challenge).map_or_else(String::new, |mac| BASE64.encode(mac.finalize().into_bytes()))
}

/// HMAC-SHA256 keyed with `key` over `challenge` (HMAC takes keys of any length).
fn cra_mac(key: &[u8], challenge: &str) -> Option<Hmac<Sha256>> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).ok()?;
    mac.update(challenge.as_bytes());
    Some(mac)
}

/// Checks a WAMP-CRA answer.
///
/// # Errors
/// [`AuthFailure::WrongCraSignature`] when it is not the signature of `challenge` with `key`.
pub fn verify_cra(key: &[u8], challenge: &str, signature: &str) -> Result<(), AuthFailure> {
    let presented = BASE64.decode(signature.trim()).map_err(|_| AuthFailure::WrongCraSignature)?;
    let mac = cra_mac(key, challenge).ok_or(AuthFailure::WrongCraSignature)?;
    mac.verify_slice(&presented).map_err(|_| AuthFailure::WrongCraSignature)
}

/// A WAMP-Cryptosign public key, parsed from the client's `authextra.pubkey`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// Parses 64 hex digits.
    ///
    /// # Errors
    /// [`AuthFailure::BadPublicKey`] for anything else.
    pub fn from_hex(hex_key: &str) -> Result<Self, AuthFailure> {
        let bytes = hex::decode(hex_key.trim()).map_err(|_| AuthFailure::BadPublicKey)?;
        bytes.try_into().map(PublicKey).map_err(|_| AuthFailure::BadPublicKey)
    }

    /// Whether `hex_key` (e.g. an entry of a principal's `authorized_keys`) is this key.
    #[must_use]
    pub fn is(&self, hex_key: &str) -> bool {
        PublicKey::from_hex(hex_key).is_ok_and(|k| k == *self)
    }

    /// The key as lower-case hex.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// Checks a WAMP-Cryptosign answer: hex of the Ed25519 signature of `challenge` by `key`,
/// followed by the challenge itself (PyNaCl's and autobahn's signed message), or the 64-byte
/// signature alone.
///
/// # Errors
/// [`AuthFailure::WrongCryptosignSignature`] for a malformed or wrong signature, or a signed
/// message that carries another challenge.
pub fn verify_cryptosign(key: &PublicKey, challenge: &[u8], signature_hex: &str) -> Result<(), AuthFailure> {
    let bad = AuthFailure::WrongCryptosignSignature;
    let signed = hex::decode(signature_hex.trim()).map_err(|_| bad)?;
    let (signature, message) = match signed.len() {
        64 => (&signed[..], challenge),
        n if n == 64 + challenge.len() => {
            if !bool::from(signed[64..].ct_eq(challenge)) {
                return Err(bad);
            }
            (&signed[..64], challenge)
        }
        _ => return Err(bad),
    };
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &key.0)
        .verify(message, signature)
        .map_err(|_| bad)
}

#[cfg(test)]
mod tests;
