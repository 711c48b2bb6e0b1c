//! Tests of the category table: lookups, access-check commands, metadata merging.

use super::*;

fn args(v: &[&str]) -> Option<Vec<String>> {
    Some(v.iter().map(|s| (*s).to_owned()).collect())
}

#[test]
fn topics_are_allowed_by_key_or_first_segment() {
    let c = Categories::built_in();
    assert!(c.is_allowed("newNotification"));
    assert!(c.is_allowed("recordUpdate.Account.x"));
    assert!(c.is_allowed("popupNotifications.event"));
    assert!(!c.is_allowed("popupNotifications.other"), "dotted keys only match whole");
    assert!(!c.is_allowed("foo.bar"));
    assert!(!c.is_allowed(""));
}

#[test]
fn access_checks_are_built_like_espocrm() {
    let c = Categories::built_in();
    assert_eq!(
        c.access_check("recordUpdate.Account.a1", "u1"),
        args(&["AclCheck", "--userId=u1", "--scope=Account", "--id=a1", "--action=read"])
    );
    assert_eq!(
        c.access_check("streamUpdate.Lead", "u1"),
        args(&["AclCheck", "--userId=u1", "--scope=Lead", "--id=", "--action=stream"]),
        "a missing segment is an empty value"
    );
    assert_eq!(c.access_check("calendarUpdate", "u2"), args(&["AclCheck", "--userId=u2", "--scope=Calendar"]));
    assert_eq!(c.access_check("newNotification", "u1"), None);
    assert_eq!(
        c.access_check("recordUpdate.Acc'ount;rm.:id", "u1"),
        args(&["AclCheck", "--userId=u1", "--scope=Acc'ount;rm", "--id=:id", "--action=read"]),
        "values are literal arguments and never rescanned"
    );
}

#[test]
fn metadata_and_config_extend_the_table() {
    let dir = std::env::temp_dir().join(format!("herald-espo-cats-{}", std::process::id()));
    let write = |rel: &str, text: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("application/Espo/Resources/metadata/app/webSocket.json", r#"{"categories":{"newNotification":{}}}"#);
    write(
        "custom/Espo/Custom/Resources/metadata/app/webSocket.json",
        r#"{"categories":{"myTopic":{"paramList":["id"],"accessCheckCommand":"MyCheck --id=:id --user=:userId"}}}"#,
    );
    let extra: toml::Table = toml::from_str("[fromConfig]\n").unwrap();
    let c = Categories::load(&dir, Some(&extra)).unwrap();
    assert!(c.is_allowed("myTopic.7") && c.is_allowed("fromConfig") && c.is_allowed("recordUpdate.A.b"));
    assert_eq!(c.access_check("myTopic.7", "u1"), args(&["MyCheck", "--id=7", "--user=u1"]));
    write("custom/Espo/Custom/Resources/metadata/app/webSocket.json", "{not json");
    assert!(matches!(Categories::load(&dir, None), Err(CategoryError::Metadata { .. })));
    let bad: toml::Table = toml::from_str("[x]\naccessCheckCommand = 5\n").unwrap();
    write("custom/Espo/Custom/Resources/metadata/app/webSocket.json", "{}");
    assert!(matches!(Categories::load(&dir, Some(&bad)), Err(CategoryError::Config { .. })));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn broadcasts_are_categories_without_check_or_user() {
    let mut c = Categories::built_in();
    for open in ["appParamsUpdate", "appParamsUpdate.x", "newNotification", "popupNotifications.event"] {
        assert!(c.is_broadcast(open), "{open}");
    }
    for closed in ["recordUpdate.Account.a1", "streamUpdate.Lead.l1", "calendarUpdate", "foo.bar", ""] {
        assert!(!c.is_broadcast(closed), "{closed}");
    }
    let extra: toml::Table = toml::from_str("[inbox]\nparamList = [\"userId\"]\n").unwrap();
    let Ok(Value::Object(merged)) = serde_json::to_value(&extra) else { panic!("a table") };
    c.map.extend(Categories::from_merged(&merged).map);
    assert!(c.is_allowed("inbox.u1"));
    assert!(!c.is_broadcast("inbox.u1"), "a topic naming a user is that user's");
    let extra: toml::Table =
        toml::from_str("[appParamsUpdateAudit]\naccessCheckCommand = \"AclCheck --userId=:userId --scope=Audit\"\n")
            .unwrap();
    let Ok(Value::Object(merged)) = serde_json::to_value(&extra) else { panic!("a table") };
    c.map.extend(Categories::from_merged(&merged).map);
    assert!(!c.is_broadcast("appParamsUpdate"), "as a prefix it would match appParamsUpdateAudit");
    assert!(c.is_broadcast("appParamsUpdate.x"), "a dotted topic stays within its category");
}
