//! Table tests of channel-name validation and kinds.

use super::{Access, ChannelKind, ChannelName, DEFAULT_MAX_LEN};
use crate::pusher::ProtocolError;

fn parse(s: &str) -> Result<ChannelName, ProtocolError> {
    ChannelName::parse(s, DEFAULT_MAX_LEN)
}

#[test]
fn accepts_every_allowed_character() {
    for name in [
        "a",
        "my-channel",
        "ABC_xyz-019",
        "with=equals",
        "user@example.com",
        "a,b;c",
        "private-chat,room;1=2@x.y",
        "-._=@,;",
        "presence-cache-x",
    ] {
        let parsed = parse(name);
        assert!(parsed.is_ok(), "{name} rejected: {parsed:?}");
        assert_eq!(parsed.map(|c| c.to_string()).ok().as_deref(), Some(name));
    }
}

#[test]
fn rejects_foreign_characters_and_empty_names() {
    for name in ["", "has space", "slash/", "colon:", "star*", "quote\"", "é", "tab\t", "ab#", "a|b", "a%20"] {
        assert_eq!(parse(name), Err(ProtocolError::InvalidChannelName), "{name:?}");
    }
}

#[test]
fn hash_prefix_only_for_server_to_user() {
    let c = parse("#server-to-user-42");
    assert_eq!(c.as_ref().ok().and_then(ChannelName::server_to_user_id), Some("42"));
    assert_eq!(c.map(|c| c.kind().access).ok(), Some(Access::ServerToUser));
    assert!(parse("#server-to-user-a.b@c").is_ok());
    for name in ["#", "#foo", "#server-to-user-", "#server-to-user", "##server-to-user-1", "#Server-to-user-1"] {
        assert_eq!(parse(name), Err(ProtocolError::ReservedChannelName), "{name:?}");
    }
    assert_eq!(parse("#server-to-user-a b"), Err(ProtocolError::InvalidChannelName));
    assert_eq!(parse("server-to-user-1").ok().and_then(|c| c.server_to_user_id().map(str::to_owned)), None);
}

#[test]
fn length_limit_is_inclusive() {
    let at_limit = "a".repeat(200);
    assert!(parse(&at_limit).is_ok());
    let over = "a".repeat(201);
    assert_eq!(parse(&over), Err(ProtocolError::ChannelNameTooLong { len: 201, max: 200 }));
    assert!(ChannelName::parse(&"b".repeat(164), 164).is_ok());
    assert!(ChannelName::parse(&"b".repeat(165), 164).is_err());
    let s2u = format!("#server-to-user-{}", "1".repeat(184));
    assert_eq!(s2u.len(), 200);
    assert!(parse(&s2u).is_ok());
}

#[test]
fn kind_follows_prefix() {
    let table = [
        ("public", Access::Public, false),
        ("cache-x", Access::Public, true),
        ("private-x", Access::Private, false),
        ("private-cache-x", Access::Private, true),
        ("private-encrypted-x", Access::PrivateEncrypted, false),
        ("private-encrypted-cache-x", Access::PrivateEncrypted, true),
        ("presence-x", Access::Presence, false),
        ("presence-cache-x", Access::Presence, true),
        ("#server-to-user-7", Access::ServerToUser, false),
        ("privatex", Access::Public, false),
        ("cachex", Access::Public, false),
        ("x-private-y", Access::Public, false),
    ];
    for (name, access, cache) in table {
        let kind = parse(name).map(|c| c.kind());
        assert_eq!(kind, Ok(ChannelKind { access, cache }), "{name}");
    }
}

#[test]
fn client_events_only_on_private_and_presence() {
    let table = [
        ("public", false),
        ("cache-x", false),
        ("private-x", true),
        ("private-cache-x", true),
        ("presence-x", true),
        ("presence-cache-x", true),
        ("private-encrypted-x", false),
        ("private-encrypted-cache-x", false),
        ("#server-to-user-1", false),
    ];
    for (name, allowed) in table {
        assert_eq!(parse(name).map(|c| c.allows_client_events()), Ok(allowed), "{name}");
    }
}

#[test]
fn borrows_as_str_for_map_lookups() {
    use std::collections::HashSet;
    let mut set = HashSet::new();
    if let Ok(c) = parse("private-a") {
        set.insert(c);
    }
    assert!(set.contains("private-a"));
    assert!(!set.contains("private-b"));
}
