//! Fuzzes WAMP v1 client frames (`parse_v1`), CURIE resolution of what they name
//! (`Prefixes::apply`, both rules) and the v1 event frame built from a PUBLISH, which must be
//! valid JSON.
#![no_main]

use herald_protocol::wamp::v1::{CurieRule, V1ClientMsg};
use herald_protocol::wamp::{Prefixes, encode_event_v1, parse_v1};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = parse_v1(data) else { return };
    if let V1ClientMsg::Publish(publish) = &msg {
        let payload = publish.event.clone().into_raw();
        let frame = encode_event_v1(&publish.topic, &payload);
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&frame) {
            panic!("v1 EVENT is not JSON ({e}): {:?}", String::from_utf8_lossy(&frame));
        }
    }
    for rule in [CurieRule::Ratchet, CurieRule::Spec] {
        let mut prefixes = Prefixes::new(rule);
        let _ = prefixes.insert("p".into(), "http://example.com/p#".into());
        let _ = prefixes.apply(msg.clone());
    }
});
