//! TLS 1.3 record protection (RFC 8446 §5.2–5.3), sans-IO: the keys of one direction seal
//! plaintext into application_data records and open records back into plaintext.
//!
//! This is all an established TLS 1.3 connection needs once the handshake is over, and what
//! the lean WebSocket stream (`lean.rs`) runs on instead of a full rustls connection. Anything
//! beyond application data and close_notify (a KeyUpdate, another alert, an unexpected record
//! type) is an error that ends the connection: never a byte misread.

use std::io::{self, IoSlice};
use std::ops::Range;

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use rustls::ConnectionTrafficSecrets;

/// Length of a record header: content type, legacy version, length.
pub(crate) const HEADER_LEN: usize = 5;
/// Most plaintext in one record (RFC 8446 §5.1).
pub(crate) const MAX_PLAINTEXT: usize = 1 << 14;
/// Largest protected record body (RFC 8446 §5.2).
const MAX_CIPHERTEXT: usize = MAX_PLAINTEXT + 256;
/// The AEAD tag of all three ciphers.
const TAG_LEN: usize = 16;
/// Every record after the handshake is `application_data` outside, `legacy_record_version` 0x0303.
const OUTER_HEADER: [u8; 3] = [APPLICATION_DATA, 3, 3];

/// Content types (RFC 8446 §5.1).
pub(crate) const ALERT: u8 = 0x15;
const HANDSHAKE: u8 = 0x16;
const APPLICATION_DATA: u8 = 0x17;
/// The `close_notify` alert description (RFC 8446 §6.1).
const CLOSE_NOTIFY: u8 = 0;
/// The content of a close_notify alert: level warning, description close_notify.
pub(crate) const CLOSE_NOTIFY_ALERT: [u8; 2] = [1, CLOSE_NOTIFY];

/// Why a record cannot be sealed or opened. Every one ends the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RecordError {
    /// The outer content type is not application_data (after the handshake, nothing else is).
    #[error("TLS record of content type {0} after the handshake")]
    OuterType(u8),
    /// The legacy version is not 0x0303.
    #[error("TLS record with legacy version {0:#06x}")]
    Version(u16),
    /// The record is longer than TLS 1.3 allows, or too short to hold a tag.
    #[error("TLS record of {0} bytes is outside the TLS 1.3 limits")]
    Length(usize),
    /// The record does not decrypt under the connection's keys (tampered or misframed).
    #[error("TLS record fails authentication")]
    Authentication,
    /// The decrypted record is all padding: no content type.
    #[error("TLS record without a content type")]
    NoContentType,
    /// The peer sent an alert other than close_notify.
    #[error("TLS alert {level}/{description} from the peer")]
    Alert {
        /// Alert level (1 warning, 2 fatal).
        level: u8,
        /// Alert description.
        description: u8,
    },
    /// A post-handshake message (KeyUpdate, NewSessionTicket, ...): not handled here.
    #[error("TLS post-handshake message is not supported after the switch to the lean record layer")]
    Handshake,
    /// A protected record of a content type other than data, alert or handshake.
    #[error("protected TLS record of content type {0}")]
    InnerType(u8),
    /// The direction has used up its sequence numbers or its key's usage limit.
    #[error("TLS sequence number limit reached")]
    SequenceExhausted,
    /// The negotiated cipher is not one this layer implements.
    #[error("TLS cipher not supported by the lean record layer")]
    UnsupportedCipher,
    /// ring refused to seal (an input outside its limits).
    #[error("TLS record could not be sealed")]
    Seal,
}

impl From<RecordError> for io::Error {
    fn from(e: RecordError) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// What an opened record holds.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Opened {
    /// Application data: this range of the record buffer (possibly empty).
    Data(Range<usize>),
    /// close_notify: the peer sends nothing more.
    Close,
}

/// The total length (header included) of the record at the start of `buf`, once its header is
/// complete; `None` while it is not.
///
/// # Errors
/// A header no TLS 1.3 peer sends after the handshake.
pub(crate) fn record_len(buf: &[u8]) -> Result<Option<usize>, RecordError> {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    if header[0] != APPLICATION_DATA {
        return Err(RecordError::OuterType(header[0]));
    }
    let version = u16::from_be_bytes([header[1], header[2]]);
    if version != 0x0303 {
        return Err(RecordError::Version(version));
    }
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    // At least the tag and the content type.
    if !(TAG_LEN + 1..=MAX_CIPHERTEXT).contains(&len) {
        return Err(RecordError::Length(len));
    }
    Ok(Some(HEADER_LEN + len))
}

/// The keys and sequence number of one direction of a TLS 1.3 connection.
pub(crate) struct Protection {
    key: LessSafeKey,
    iv: [u8; aead::NONCE_LEN],
    /// The next record's sequence number.
    seq: u64,
    /// The first sequence number that may not be used: the AEAD's usage limit for this key
    /// (RFC 8446 §5.5), since the lean layer cannot update keys.
    limit: u64,
}

impl std::fmt::Debug for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protection").field("cipher", self.key.algorithm()).field("seq", &self.seq).finish()
    }
}

impl Protection {
    /// The protection of a direction whose keys rustls handed over, at sequence number `seq`.
    ///
    /// # Errors
    /// [`RecordError::UnsupportedCipher`] for a cipher other than AES-128-GCM, AES-256-GCM and
    /// ChaCha20-Poly1305.
    pub(crate) fn new(secrets: ConnectionTrafficSecrets, seq: u64) -> Result<Self, RecordError> {
        // AES-GCM: the limit rustls applies before it would update the keys (RFC 8446 §5.5).
        let (algorithm, limit, key, iv) = match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&aead::AES_128_GCM, 1 << 24, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&aead::AES_256_GCM, 1 << 24, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (&aead::CHACHA20_POLY1305, u64::MAX, key, iv),
            _ => return Err(RecordError::UnsupportedCipher),
        };
        Self::from_parts(algorithm, key.as_ref(), iv.as_ref(), seq, limit)
    }

    pub(super) fn from_parts(
        algorithm: &'static aead::Algorithm,
        key: &[u8],
        iv: &[u8],
        seq: u64,
        limit: u64,
    ) -> Result<Self, RecordError> {
        let key = UnboundKey::new(algorithm, key).map_err(|_| RecordError::UnsupportedCipher)?;
        let iv = iv.try_into().map_err(|_| RecordError::UnsupportedCipher)?;
        Ok(Self { key: LessSafeKey::new(key), iv, seq, limit })
    }

    /// The nonce of the next record (RFC 8446 §5.3), and the sequence number moved on.
    fn next_nonce(&mut self) -> Result<Nonce, RecordError> {
        if self.seq >= self.limit {
            return Err(RecordError::SequenceExhausted);
        }
        let mut nonce = self.iv;
        for (n, s) in nonce[aead::NONCE_LEN - 8..].iter_mut().zip(self.seq.to_be_bytes()) {
            *n ^= s;
        }
        self.seq += 1;
        Ok(Nonce::assume_unique_for_key(nonce))
    }

    /// Opens one complete record (`record` is exactly the header and body that [`record_len`]
    /// measured), decrypting it in place.
    ///
    /// # Errors
    /// A header, tag or content that does not pass: see [`RecordError`].
    pub(crate) fn open(&mut self, record: &mut [u8]) -> Result<Opened, RecordError> {
        if record_len(record)? != Some(record.len()) {
            return Err(RecordError::Length(record.len()));
        }
        let (header, body) = record.split_at_mut(HEADER_LEN);
        let aad: [u8; HEADER_LEN] = header.try_into().map_err(|_| RecordError::Length(HEADER_LEN))?;
        let nonce = self.next_nonce()?;
        let plain = self.key.open_in_place(nonce, Aad::from(aad), body).map_err(|_| RecordError::Authentication)?;
        // TLSInnerPlaintext: content, the real content type, then zero padding.
        let type_at = plain.iter().rposition(|&b| b != 0).ok_or(RecordError::NoContentType)?;
        if type_at > MAX_PLAINTEXT {
            return Err(RecordError::Length(type_at));
        }
        match plain[type_at] {
            APPLICATION_DATA => Ok(Opened::Data(HEADER_LEN..HEADER_LEN + type_at)),
            ALERT => match plain[..type_at] {
                [_, CLOSE_NOTIFY] => Ok(Opened::Close),
                [level, description] => Err(RecordError::Alert { level, description }),
                _ => Err(RecordError::Length(type_at)),
            },
            HANDSHAKE => Err(RecordError::Handshake),
            other => Err(RecordError::InnerType(other)),
        }
    }

    /// Seals up to [`MAX_PLAINTEXT`] bytes of `bufs`, skipping their first `skip` bytes, into one
    /// application_data record appended to `out`; returns how many plaintext bytes it holds (0,
    /// and nothing appended, when `bufs` hold nothing past `skip`).
    ///
    /// # Errors
    /// [`RecordError::SequenceExhausted`] when the keys may not seal another record.
    pub(crate) fn seal_vectored(
        &mut self,
        bufs: &[IoSlice<'_>],
        skip: usize,
        out: &mut Vec<u8>,
    ) -> Result<usize, RecordError> {
        let available = bufs.iter().map(|b| b.len()).sum::<usize>().saturating_sub(skip);
        let taken = available.min(MAX_PLAINTEXT);
        if taken == 0 {
            return Ok(0);
        }
        self.seal_with(APPLICATION_DATA, out, taken, |out| {
            let (mut skip, mut left) = (skip, taken);
            for buf in bufs {
                if left == 0 {
                    break;
                }
                if skip >= buf.len() {
                    skip -= buf.len();
                    continue;
                }
                let n = (buf.len() - skip).min(left);
                out.extend_from_slice(&buf[skip..skip + n]);
                skip = 0;
                left -= n;
            }
        })?;
        Ok(taken)
    }

    /// Seals `content` of `content_type` (at most [`MAX_PLAINTEXT`] bytes) into one record
    /// appended to `out`.
    ///
    /// # Errors
    /// [`RecordError::SequenceExhausted`] when the keys may not seal another record;
    /// [`RecordError::Length`] for too much content.
    pub(crate) fn seal(&mut self, content_type: u8, content: &[u8], out: &mut Vec<u8>) -> Result<(), RecordError> {
        if content.len() > MAX_PLAINTEXT {
            return Err(RecordError::Length(content.len()));
        }
        self.seal_with(content_type, out, content.len(), |out| out.extend_from_slice(content))
    }

    /// Appends a record to `out`: the header, the content `fill` appends (`len` bytes), the inner
    /// content type, sealed in place, and the tag.
    fn seal_with(
        &mut self,
        content_type: u8,
        out: &mut Vec<u8>,
        len: usize,
        fill: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), RecordError> {
        let body_len = u16::try_from(len + 1 + TAG_LEN).map_err(|_| RecordError::Length(len))?;
        let [hi, lo] = body_len.to_be_bytes();
        let header = [OUTER_HEADER[0], OUTER_HEADER[1], OUTER_HEADER[2], hi, lo];
        let nonce = self.next_nonce()?;
        let start = out.len();
        out.reserve(HEADER_LEN + usize::from(body_len));
        out.extend_from_slice(&header);
        fill(out);
        out.push(content_type);
        let sealed = self.key.seal_in_place_separate_tag(nonce, Aad::from(header), &mut out[start + HEADER_LEN..]);
        match sealed {
            Ok(tag) => {
                out.extend_from_slice(tag.as_ref());
                Ok(())
            }
            Err(_) => {
                out.truncate(start);
                Err(RecordError::Seal)
            }
        }
    }
}

#[cfg(test)]
mod tests;
