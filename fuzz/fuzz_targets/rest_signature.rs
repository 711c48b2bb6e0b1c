//! Fuzzes the Pusher HTTP API's authentication: `verify_request` over an arbitrary method, path,
//! query string and body, and the round trip `sign_request` → `verify_request`, which must
//! always succeed for a request signed with the right secret.
//!
//! Input layout (so seeds are plain text): `METHOD\nPATH\nQUERY\nBODY`; missing parts are empty.
//! The server clock is fixed at `NOW`, the app is `KEY` / `SECRET`, so seeds signed with them
//! reach the signature and body checks.
#![no_main]

use herald_protocol::pusher::rest_sign::{RestRequest, sign_request, verify_request};
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_700_000_000;
const KEY: &str = "fuzz-key";
const SECRET: &str = "fuzz-secret";

fn split4(data: &[u8]) -> [&[u8]; 4] {
    let mut parts = [&data[..0]; 4];
    let mut rest = data;
    for slot in parts.iter_mut().take(3) {
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                *slot = &rest[..i];
                rest = &rest[i + 1..];
            }
            None => {
                *slot = rest;
                rest = &rest[rest.len()..];
            }
        }
    }
    parts[3] = rest;
    parts
}

fuzz_target!(|data: &[u8]| {
    let [method, path, query, body] = split4(data);
    let (Ok(method), Ok(path), Ok(query)) =
        (std::str::from_utf8(method), std::str::from_utf8(path), std::str::from_utf8(query))
    else {
        return;
    };
    let req = RestRequest { method, path, query, body };
    let lookup = |k: &str| (k == KEY).then_some(SECRET);
    let _ = verify_request(&req, lookup, NOW);
    // The same request at the edges of the timestamp window.
    let _ = verify_request(&req, lookup, i64::MIN);
    let _ = verify_request(&req, lookup, i64::MAX);

    // Round trip: one extra parameter whose value is the fuzzed query text.
    let signed = sign_request(method, path, &[("fuzzparam", query)], body, KEY, SECRET, NOW);
    let req = RestRequest { method, path, query: &signed, body };
    if let Err(e) = verify_request(&req, lookup, NOW) {
        panic!("a correctly signed request was refused: {e}\nquery: {signed}");
    }
    let params = verify_request(&req, lookup, NOW).ok();
    assert_eq!(params.as_ref().and_then(|p| p.get("fuzzparam")), Some(query), "parameter value changed in transit");
});
