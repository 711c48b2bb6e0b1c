//! EspoCRM's topic categories (`app.webSocket.categories` metadata): which topics exist, and
//! the access-check command of each.
//!
//! The table starts from EspoCRM's built-in categories, then merges the metadata files of the
//! EspoCRM root in EspoCRM's order (core, modules, extension modules, `custom/`), then the
//! `[espocrm.categories]` of herald's config. Lookups follow EspoCRM's `Pusher`: a topic is
//! allowed when it is a category key or its first dot-segment is; its category data is taken
//! by first segment, then by the whole topic; parameter *i* is dot-segment *i + 1*.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// One category.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Category {
    /// `paramList`: names of the dot-segments after the first.
    params: Vec<String>,
    /// `accessCheckCommand`, split into arguments (after `command.php`).
    check: Option<Vec<String>>,
}

/// Why a category source could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CategoryError {
    /// A metadata file is not readable JSON.
    #[error("{path}: {problem}")]
    Metadata {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A category of the config is malformed.
    #[error("espocrm.categories.{name}: {problem}")]
    Config {
        /// The category.
        name: String,
        /// What is wrong.
        problem: &'static str,
    },
}

/// The category table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Categories {
    map: HashMap<String, Category>,
}

/// EspoCRM's built-in categories: core plus the Crm module (used when the root has no metadata).
const BUILT_IN: &str = r#"{
  "newNotification": {},
  "appParamsUpdate": {},
  "recordUpdate": {"paramList": ["scope", "id"],
                   "accessCheckCommand": "AclCheck --userId=:userId --scope=:scope --id=:id --action=read"},
  "streamUpdate": {"paramList": ["scope", "id"],
                   "accessCheckCommand": "AclCheck --userId=:userId --scope=:scope --id=:id --action=stream"},
  "popupNotifications.event": {},
  "calendarUpdate": {"accessCheckCommand": "AclCheck --userId=:userId --scope=Calendar"}
}"#;

/// Where a metadata file sits under a metadata directory.
const METADATA_FILE: &str = "app/webSocket.json";

impl Categories {
    /// EspoCRM's built-in categories.
    #[cfg(test)]
    pub(crate) fn built_in() -> Self {
        let mut merged = Map::new();
        if let Ok(Value::Object(cats)) = serde_json::from_str::<Value>(BUILT_IN) {
            merged = cats;
        }
        Self::from_merged(&merged)
    }

    /// The built-ins, merged with the metadata of `root` and then with `extra` (config).
    ///
    /// # Errors
    /// [`CategoryError`] naming the file or config key that is malformed.
    pub(crate) fn load(root: &Path, extra: Option<&toml::Table>) -> Result<Self, CategoryError> {
        let mut merged = match serde_json::from_str::<Value>(BUILT_IN) {
            Ok(Value::Object(cats)) => cats,
            _ => Map::new(),
        };
        for dir in metadata_dirs(root) {
            let path = dir.join(METADATA_FILE);
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            let doc: Value = serde_json::from_str(&text)
                .map_err(|e| CategoryError::Metadata { path: path.clone(), problem: e.to_string() })?;
            match doc.get("categories") {
                None => {}
                Some(Value::Object(cats)) => merge(&mut merged, cats),
                Some(_) => {
                    return Err(CategoryError::Metadata { path, problem: "\"categories\" is not an object".into() });
                }
            }
        }
        if let Some(extra) = extra {
            let json = serde_json::to_value(extra)
                .map_err(|_| CategoryError::Config { name: String::new(), problem: "cannot be read as JSON" })?;
            if let Value::Object(cats) = json {
                merge(&mut merged, &cats);
            }
        }
        for (name, data) in &merged {
            validate(name, data)?;
        }
        Ok(Self::from_merged(&merged))
    }

    fn from_merged(merged: &Map<String, Value>) -> Self {
        let map = merged
            .iter()
            .map(|(name, data)| {
                let params = data
                    .get("paramList")
                    .and_then(Value::as_array)
                    .map(|l| l.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                    .unwrap_or_default();
                let check = data
                    .get("accessCheckCommand")
                    .and_then(Value::as_str)
                    .map(|c| c.split_whitespace().map(str::to_owned).collect());
                (name.clone(), Category { params, check })
            })
            .collect();
        Self { map }
    }

    /// Whether `topic` is a category key or its first dot-segment is (EspoCRM `isTopicAllowed`).
    pub(crate) fn is_allowed(&self, topic: &str) -> bool {
        !topic.is_empty() && (self.map.contains_key(topic) || self.map.contains_key(first_segment(topic)))
    }

    /// Whether a session without an EspoCRM identity may read `topic`: it is a category whose
    /// subscriptions EspoCRM grants without an access check, and none of its parameters names
    /// a user (such a topic is one user's, even unchecked).
    pub(crate) fn is_broadcast(&self, topic: &str) -> bool {
        let open = |c: &Category| c.check.is_none() && !c.params.iter().any(|p| p == "userId");
        // WAMP v2 prefix subscriptions are judged on their prefix, and a prefix without a dot
        // also matches the topics of every category whose name starts with it.
        let extends_a_closed_one =
            !topic.contains('.') && self.map.iter().any(|(name, c)| name.starts_with(topic) && !open(c));
        self.is_allowed(topic) && self.category(topic).is_some_and(open) && !extends_a_closed_one
    }

    /// The category data of `topic`: by first segment, else by the whole topic.
    fn category(&self, topic: &str) -> Option<&Category> {
        self.map.get(first_segment(topic)).or_else(|| self.map.get(topic))
    }

    /// The arguments after `command.php` of the access check for `user_id` subscribing to
    /// `topic`, or `None` when its category has no check.
    ///
    /// Placeholders `:name` of the command are replaced by the parameters (in `paramList`
    /// order, a missing segment giving `""`), then `:userId`. Values are passed as whole
    /// arguments, never through a shell, so no escaping is needed and a value is never
    /// rescanned for placeholders.
    pub(crate) fn access_check(&self, topic: &str, user_id: &str) -> Option<Vec<String>> {
        let category = self.category(topic)?;
        let template = category.check.as_ref()?;
        let segments: Vec<&str> = topic.split('.').collect();
        let mut values: Vec<(&str, &str)> = category
            .params
            .iter()
            .enumerate()
            .map(|(i, name)| (name.as_str(), segments.get(i + 1).copied().unwrap_or("")))
            .collect();
        values.push(("userId", user_id));
        Some(template.iter().map(|arg| substitute(arg, &values)).collect())
    }
}

fn first_segment(topic: &str) -> &str {
    topic.split('.').next().unwrap_or(topic)
}

/// Replaces each `:name` of `arg` by its value, the first name in `values` order that matches
/// at a position winning (EspoCRM replaces in that order).
fn substitute(arg: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    while let Some(at) = rest.find(':') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        match values.iter().find(|(name, _)| !name.is_empty() && after.starts_with(name)) {
            Some((name, value)) => {
                out.push_str(value);
                rest = &after[name.len()..];
            }
            None => {
                out.push(':');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// EspoCRM merges metadata objects recursively; anything else is replaced.
fn merge(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    for (k, v) in from {
        match (into.get_mut(k), v) {
            (Some(Value::Object(a)), Value::Object(b)) => merge(a, b),
            _ => {
                into.insert(k.clone(), v.clone());
            }
        }
    }
}

fn validate(name: &str, data: &Value) -> Result<(), CategoryError> {
    let bad = |problem| Err(CategoryError::Config { name: name.to_owned(), problem });
    let Value::Object(fields) = data else { return bad("must be a table") };
    if let Some(list) = fields.get("paramList")
        && !list.as_array().is_some_and(|l| l.iter().all(Value::is_string))
    {
        return bad("paramList must be a list of names");
    }
    if let Some(cmd) = fields.get("accessCheckCommand")
        && cmd.as_str().is_none_or(|c| c.trim().is_empty())
    {
        return bad("accessCheckCommand must be a non-empty string");
    }
    Ok(())
}

/// The metadata directories in EspoCRM's merge order: core, its modules, extension modules,
/// then `custom/Espo/Custom`. Modules are taken in name order (EspoCRM orders them by the
/// `order` of each `module.json`; the built-in Crm module comes first either way).
fn metadata_dirs(root: &Path) -> Vec<PathBuf> {
    let subdirs = |dir: PathBuf| -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_dir()).collect())
            .unwrap_or_default();
        out.sort();
        out
    };
    let resources = |p: PathBuf| p.join("Resources").join("metadata");
    let mut dirs = vec![root.join("application/Espo/Resources/metadata")];
    dirs.extend(subdirs(root.join("application/Espo/Modules")).into_iter().map(resources));
    dirs.extend(subdirs(root.join("custom/Espo/Modules")).into_iter().map(resources));
    dirs.push(root.join("custom/Espo/Custom/Resources/metadata"));
    dirs
}

#[cfg(test)]
mod tests;
