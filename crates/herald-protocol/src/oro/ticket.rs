//! Oro sync tickets (OroPlatform's `SyncBundle/Authentication`): reading the `ticket` query
//! parameter, splitting it, the ±30 s / TTL window and the digest, as pure functions.
//!
//! No I/O and no clock here: the caller passes "now" and the password (the user's stored hash
//! from Oro's database, or `ORO_SECRET` itself for anonymous backend tickets).

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use sha2::{Digest as _, Sha512};
use subtle::ConstantTimeEq;

/// How far in the future a ticket's creation time may be (Oro's fixed 30 s).
pub const FUTURE_SKEW_SECS: i64 = 30;
/// Rounds of SHA-512 in Symfony's `MessageDigestPasswordHasher` as Oro configures it.
const ITERATIONS: usize = 5000;

/// Why a ticket was refused; every variant ends the connection with the 403 text frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// No `ticket` query parameter, or it decodes to fewer than three `;`.
    #[error("authentication ticket has an invalid format")]
    Format,
    /// The creation time is more than 30 s ahead of the server clock.
    #[error("ticket creation date {0:?} is in the future")]
    Future(String),
    /// The creation time is older than the ticket TTL (or not a date at all, as with PHP's
    /// `strtotime` returning false).
    #[error("ticket created at {0:?} is expired")]
    Expired(String),
    /// The ticket names a user that Oro's database does not know.
    #[error("ticket user {0:?} was not found")]
    UnknownUser(String),
    /// The digest does not match.
    #[error("ticket for {0:?} has an invalid digest")]
    Digest(String),
}

/// A ticket split into its four parts: `digest;username;nonce;created`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// Base64 SHA-512 digest (88 characters when well-formed).
    pub digest: String,
    /// Oro username (or email); empty for the anonymous backend ticket.
    pub username: String,
    /// 16 hex characters chosen by the issuer.
    pub nonce: String,
    /// PHP `date('c')` of the issuer, e.g. `2026-07-02T09:02:11+00:00`.
    pub created: String,
}

impl Ticket {
    /// Reads the ticket from a request's query string the way Oro does: PHP `parse_str`
    /// (form decoding, the last `ticket` wins), lenient `base64_decode`, then at least three
    /// `;`; parts past the fourth are ignored (PHP `list(...) = explode(';', ...)`).
    ///
    /// # Errors
    /// [`TicketError::Format`].
    pub fn from_query(query: &str) -> Result<Self, TicketError> {
        let param = query
            .split('&')
            .filter_map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (form_decode(k) == b"ticket").then(|| form_decode(v))
            })
            .next_back()
            .ok_or(TicketError::Format)?;
        let raw = lenient_base64(&param);
        let text = String::from_utf8_lossy(&raw);
        if text.is_empty() || text.matches(';').count() < 3 {
            return Err(TicketError::Format);
        }
        let mut parts = text.split(';').map(str::to_owned);
        let mut next = || parts.next().unwrap_or_default();
        Ok(Self { digest: next(), username: next(), nonce: next(), created: next() })
    }

    /// Whether the creation time lies in `[now - ttl, now + 30 s]`.
    ///
    /// # Errors
    /// [`TicketError::Future`] or [`TicketError::Expired`].
    pub fn check_time(&self, now_unix: i64, ttl_secs: i64) -> Result<(), TicketError> {
        // PHP: strtotime() === false compares as 0, so an unreadable date is simply expired.
        let created = parse_iso8601(&self.created).unwrap_or(0);
        if created > now_unix && created - now_unix > FUTURE_SKEW_SECS {
            return Err(TicketError::Future(self.created.clone()));
        }
        if now_unix - created > ttl_secs {
            return Err(TicketError::Expired(self.created.clone()));
        }
        Ok(())
    }

    /// Recomputes the digest with `password` and compares it in constant time.
    ///
    /// # Errors
    /// [`TicketError::Digest`].
    pub fn verify(&self, password: &str, secret: &str) -> Result<(), TicketError> {
        let expected = digest(&self.nonce, &self.created, password, secret);
        if bool::from(expected.as_bytes().ct_eq(self.digest.as_bytes())) {
            Ok(())
        } else {
            Err(TicketError::Digest(self.username.clone()))
        }
    }
}

/// The ticket digest: Symfony's `MessageDigestPasswordHasher('sha512', base64, 5000)` hashing
/// `nonce|created|password` salted with `{secret}` (no suffix when the secret is empty).
pub fn digest(nonce: &str, created: &str, password: &str, secret: &str) -> String {
    let mut salted = format!("{nonce}|{created}|{password}").into_bytes();
    if !secret.is_empty() {
        salted.push(b'{');
        salted.extend_from_slice(secret.as_bytes());
        salted.push(b'}');
    }
    let mut d = Sha512::digest(&salted);
    for _ in 1..ITERATIONS {
        let mut h = Sha512::new();
        h.update(d);
        h.update(&salted);
        d = h.finalize();
    }
    base64::engine::general_purpose::STANDARD.encode(d)
}

/// PHP `urldecode` as `parse_str` applies it: `+` is a space, `%XX` a byte, and a `%` not
/// followed by two hex digits stays as it is.
fn form_decode(s: &str) -> Vec<u8> {
    // Literal `+` first: a `%2B` must come out as `+`, not as a space.
    let spaced: Vec<u8> = s.bytes().map(|b| if b == b'+' { b' ' } else { b }).collect();
    percent_encoding::percent_decode(&spaced).collect()
}

/// PHP's non-strict `base64_decode`: characters outside the alphabet are skipped, padding is
/// optional, and a dangling sixth bit group is dropped.
fn lenient_base64(s: &[u8]) -> Vec<u8> {
    let mut clean: Vec<u8> =
        s.iter().copied().filter(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/').collect();
    if clean.len() % 4 == 1 {
        clean.pop();
    }
    let engine = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::RequireNone),
    );
    engine.decode(&clean).unwrap_or_default()
}

/// Seconds since the Unix epoch of an ISO 8601 date-time as PHP `date('c')` writes it:
/// `YYYY-MM-DD[T ]HH:MM:SS[.fraction][Z|±HH:MM|±HHMM|±HH]`; no offset means UTC.
pub fn parse_iso8601(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from + len)?;
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
    };
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        rest = frac.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match rest.as_bytes().first() {
        None => 0,
        Some(b'Z' | b'z') if rest.len() == 1 => 0,
        Some(sign @ (b'+' | b'-')) => {
            let digits: String = rest[1..].chars().filter(|c| *c != ':').collect();
            if !digits.bytes().all(|c| c.is_ascii_digit()) || !matches!(digits.len(), 2 | 4) {
                return None;
            }
            let h: i64 = digits[..2].parse().ok()?;
            let m: i64 = if digits.len() == 4 { digits[2..].parse().ok()? } else { 0 };
            let secs = h * 3600 + m * 60;
            if *sign == b'+' { secs } else { -secs }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's civil algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests;
