//! Fuzzes Oro sync-ticket checking (`oro::ticket`): reading the ticket from a WebSocket request's
//! query string, the time window, the ISO 8601 dates, and the digest comparison.
//!
//! Beyond "no panic": a ticket verifies exactly when its digest is the one computed from its
//! own parts; a ticket rebuilt from the parsed parts with the right digest, encoded the way a
//! browser sends it, parses back to the same parts (so it would verify); `check_time` agrees
//! with the date `parse_iso8601` reads; and a date that parses lies within years 0–9999 give or
//! take a day.
//!
//! Input layout: the query string (`a=b&ticket=<base64>`). The password and secret are fixed,
//! so seeds signed with them (fuzz/seeds.py) reach the digest comparison with a match.
#![no_main]

use base64::Engine as _;
use herald_protocol::oro::ticket::{FUTURE_SKEW_SECS, Ticket, TicketError, digest, parse_iso8601};
use libfuzzer_sys::fuzz_target;

/// Server clock: 2026-07-02T09:02:11Z, the time of the seed tickets.
const NOW: i64 = 1_782_982_931;
const TTL: i64 = 300;
const PASSWORD: &str = "fuzz-password-hash";
const SECRET: &str = "fuzz-secret";
/// 9999-12-31T23:59:59Z plus a day of offset; the earliest date is 0000-01-01 minus a day.
const LATEST: i64 = 253_402_300_799 + 86_400;
const EARLIEST: i64 = -62_167_219_200 - 86_400;

/// The ticket query as encodeURIComponent would write it.
fn encode_query(ticket_text: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(ticket_text);
    format!("x=1&ticket={}", b64.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else { return };
    // The date parser on its own, whatever the query is.
    if let Some(t) = parse_iso8601(query) {
        assert!((EARLIEST..=LATEST).contains(&t), "{query:?} parsed to {t}");
    }
    let Ok(ticket) = Ticket::from_query(query) else { return };

    let created = parse_iso8601(&ticket.created);
    if let Some(c) = created {
        assert!((EARLIEST..=LATEST).contains(&c), "{:?} parsed to {c}", ticket.created);
    }
    let c = created.unwrap_or(0);
    let expect = if c > NOW && c - NOW > FUTURE_SKEW_SECS {
        Err(TicketError::Future(ticket.created.clone()))
    } else if NOW - c > TTL {
        Err(TicketError::Expired(ticket.created.clone()))
    } else {
        Ok(())
    };
    assert_eq!(ticket.check_time(NOW, TTL), expect, "time window disagrees with the date");

    let right = digest(&ticket.nonce, &ticket.created, PASSWORD, SECRET);
    assert_eq!(ticket.verify(PASSWORD, SECRET).is_ok(), ticket.digest == right, "verify disagrees with the digest");

    // Re-signed and sent again: the parts survive encoding, so the ticket would now verify.
    let text = format!("{right};{};{};{}", ticket.username, ticket.nonce, ticket.created);
    let Ok(again) = Ticket::from_query(&encode_query(&text)) else {
        panic!("re-signed ticket refused: {text:?}");
    };
    assert_eq!((&again.username, &again.nonce, &again.created), (&ticket.username, &ticket.nonce, &ticket.created));
    assert_eq!(again.digest, right);
});
