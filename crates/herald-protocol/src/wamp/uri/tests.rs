use super::*;

use Components::{AnyMayBeEmpty, LastMayBeEmpty, NonEmpty};
use UriRule::{Loose, Strict};

#[test]
fn uri_rules_table() {
    // (uri, loose non-empty, strict non-empty, loose any-empty, strict any-empty)
    let table: &[(&str, bool, bool, bool, bool)] = &[
        ("com.myapp.mytopic1", true, true, true, true),
        ("com", true, true, true, true),
        ("com.my_app.topic_2", true, true, true, true),
        ("com.MyApp.Topic", true, false, true, false),
        ("com.my-app.topic", true, false, true, false),
        ("oro/data/update", true, false, true, false),
        ("com.myapp..userevent", false, false, true, true),
        (".com", false, false, true, true),
        ("com.", false, false, true, true),
        ("..", false, false, true, true),
        ("com.my app", false, false, false, false),
        ("com.my\tapp", false, false, false, false),
        ("com.my\u{a0}app", false, false, false, false),
        ("com.my#app", false, false, false, false),
        ("", false, false, false, false),
    ];
    for &(uri, loose, strict, loose_empty, strict_empty) in table {
        assert_eq!(is_valid(uri, Loose, NonEmpty), loose, "{uri:?} loose");
        assert_eq!(is_valid(uri, Strict, NonEmpty), strict, "{uri:?} strict");
        assert_eq!(is_valid(uri, Loose, AnyMayBeEmpty), loose_empty, "{uri:?} loose/empty");
        assert_eq!(is_valid(uri, Strict, AnyMayBeEmpty), strict_empty, "{uri:?} strict/empty");
    }
}

#[test]
fn prefix_patterns_may_end_with_a_dot_only() {
    assert!(is_valid("com.app.", Loose, LastMayBeEmpty));
    assert!(is_valid("com.app", Loose, LastMayBeEmpty));
    assert!(!is_valid("com..app", Loose, LastMayBeEmpty));
    assert!(!is_valid(".", Loose, LastMayBeEmpty));
    assert!(!is_valid(".app", Loose, LastMayBeEmpty));
}

#[test]
fn check_reports_the_uri() {
    let err = check("a..b", Loose, NonEmpty).unwrap_err();
    assert!(matches!(&err, WampError::InvalidUri { uri } if uri == "a..b"));
    assert!(!err.is_protocol_violation());
    assert_eq!(err.v2_error_uri(), "wamp.error.invalid_uri");
    assert!(check("a.b", Strict, NonEmpty).is_ok());
}

#[test]
fn match_policy_table() {
    use MatchPolicy::{Exact, Prefix, Wildcard};
    // Examples from the advanced profile's pattern-based subscription section.
    let table: &[(MatchPolicy, &str, &str, bool)] = &[
        (Exact, "com.myapp.topic", "com.myapp.topic", true),
        (Exact, "com.myapp.topic", "com.myapp.topic.x", false),
        (Exact, "com.myapp.topic", "com.myapp", false),
        (Prefix, "com.myapp.topic.emergency", "com.myapp.topic.emergency.11", true),
        (Prefix, "com.myapp.topic.emergency", "com.myapp.topic.emergency-low", true),
        (Prefix, "com.myapp.topic.emergency", "com.myapp.topic.emergency.category.severe", true),
        (Prefix, "com.myapp.topic.emergency", "com.myapp.topic.emergency", true),
        (Prefix, "com.myapp.topic.emergency", "com.myapp.topic.emerge", false),
        (Prefix, "com.app.", "com.app.x", true),
        (Prefix, "com.app.", "com.apple", false),
        (Wildcard, "com.myapp..userevent", "com.myapp.foo.userevent", true),
        (Wildcard, "com.myapp..userevent", "com.myapp.bar.userevent", true),
        (Wildcard, "com.myapp..userevent", "com.myapp.a12.userevent", true),
        (Wildcard, "com.myapp..userevent", "com.myapp.foo.userevent.bar", false),
        (Wildcard, "com.myapp..userevent", "com.myapp.foo.user", false),
        (Wildcard, "com.myapp..userevent", "com.myapp2.foo.userevent", false),
        (Wildcard, "com.myapp..userevent", "com.myapp.userevent", false),
        (Wildcard, "..", "a.b.c", true),
        (Wildcard, "..", "a.b", false),
        (Wildcard, "a.b", "a.b", true),
    ];
    for &(policy, pattern, topic, expected) in table {
        assert_eq!(policy.matches(pattern, topic), expected, "{policy:?} {pattern:?} {topic:?}");
    }
}

#[test]
fn match_policy_names_and_patterns() {
    for policy in [MatchPolicy::Exact, MatchPolicy::Prefix, MatchPolicy::Wildcard] {
        assert_eq!(MatchPolicy::from_name(policy.as_str()), Some(policy));
    }
    assert_eq!(MatchPolicy::from_name("regex"), None);
    assert_eq!(MatchPolicy::default(), MatchPolicy::Exact);
    assert!(MatchPolicy::Wildcard.check_pattern("com..x", Loose).is_ok());
    assert!(MatchPolicy::Exact.check_pattern("com..x", Loose).is_err());
    assert!(MatchPolicy::Prefix.check_pattern("com.", Loose).is_ok());
}
