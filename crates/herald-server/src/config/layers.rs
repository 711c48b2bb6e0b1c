//! The layers of the configuration, as one TOML table: the file, then the variables of other
//! servers (`config/aliases.rs`), then `HERALD__SECTION__KEY` variables, then command-line
//! flags, each written over the one before. The table is deserialised once at the end, and
//! [`Sources`] remembers which layer wrote each key, for error messages and `herald config check`.
//!
//! Every variable is applied and then checked against the schema on its own, so that a value
//! the schema refuses (or a key it does not know) is reported under the variable's name rather
//! than a path in a table the operator never wrote.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::{ConfigError, FileConfig};

/// Prefix of the generic variables; `__` separates the path's segments.
pub(super) const PREFIX: &str = "HERALD__";

/// Which layer set a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Nobody: herald's default (or a value derived from other settings).
    Default,
    /// The configuration file.
    File(PathBuf),
    /// An environment variable, by name.
    Env(String),
    /// A command-line flag, e.g. `--port`.
    Flag(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::File(p) => write!(f, "file {}", p.display()),
            Self::Env(v) => write!(f, "env {v}"),
            Self::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// Where each key of the merged table came from, by path (`server.port`, `apps[0].secret`).
#[derive(Clone, Debug, Default)]
pub struct Sources {
    file: Option<PathBuf>,
    by_key: BTreeMap<String, Source>,
}

impl Sources {
    /// The source of `key`: its own, else that of the nearest enclosing key that was set as a
    /// whole (an array from one variable), else that of a key inside it.
    pub fn of(&self, key: &str) -> Source {
        if let Some(s) = self.by_key.get(key) {
            return s.clone();
        }
        let mut k = key;
        while let Some(cut) = k.rfind(['.', '[']) {
            k = &k[..cut];
            if let Some(s) = self.by_key.get(k) {
                return s.clone();
            }
        }
        let inside = |p: &&String| p.starts_with(key) && matches!(p.as_bytes().get(key.len()), Some(b'.' | b'['));
        self.by_key.iter().find(|(p, _)| inside(p)).map_or(Source::Default, |(_, s)| s.clone())
    }

    /// A [`ConfigError::Invalid`] for `key`, named as the operator wrote it: the variable or
    /// flag when one set it, else the key in the file (or the defaults when there is none).
    pub(super) fn invalid(&self, key: &str, problem: String) -> ConfigError {
        let (origin, key) = match self.of(key) {
            Source::Env(var) => ("environment".to_owned(), var),
            Source::Flag(flag) => ("command line".to_owned(), flag.to_owned()),
            Source::File(p) => (p.display().to_string(), key.to_owned()),
            Source::Default => (self.origin(), key.to_owned()),
        };
        ConfigError::Invalid { origin, key, problem }
    }

    /// The file's path as messages name it, or `defaults` without a file.
    pub(super) fn origin(&self) -> String {
        self.file.as_ref().map_or_else(|| "defaults".to_owned(), |p| p.display().to_string())
    }

    /// Whether any layer above the defaults set `key` or something inside it.
    pub(super) fn is_set(&self, key: &str) -> bool {
        self.of(key) != Source::Default
    }

    fn set(&mut self, key: String, source: Source) {
        // The key replaces whatever was inside it.
        self.by_key.retain(|p, _| !(p.starts_with(&key) && matches!(p.as_bytes().get(key.len()), Some(b'.' | b'['))));
        self.by_key.insert(key, source);
    }
}

/// One segment of a path into the table.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Seg {
    /// An element of an array.
    Index(usize),
    /// A key of a table.
    Key(String),
}

/// `apps[0].enable_client_messages` for a path.
pub(super) fn key_name(path: &[Seg]) -> String {
    let mut out = String::new();
    for s in path {
        match s {
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
            Seg::Key(k) if out.is_empty() => out.push_str(k),
            Seg::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
        }
    }
    out
}

/// The table being layered, with the sources of its keys.
pub(super) struct Layers {
    pub(super) table: Table,
    pub(super) sources: Sources,
}

impl Layers {
    /// The file's table (or an empty one), every key sourced to the file. A file that does not
    /// match the schema is refused here, with the parser's line and column.
    pub(super) fn from_file(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut sources = Sources { file: path.map(Path::to_owned), by_key: BTreeMap::new() };
        let Some(path) = path else { return Ok(Self { table: Table::new(), sources }) };
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let parse = |source| ConfigError::Parse { path: path.to_owned(), source };
        // Typed first: its errors carry the line the operator must fix.
        toml::from_str::<FileConfig>(&text).map_err(parse)?;
        let table: Table = toml::from_str(&text).map_err(parse)?;
        let file = Source::File(path.to_owned());
        record(&table, &mut String::new(), &file, &mut sources);
        Ok(Self { table, sources })
    }

    /// Writes `value` at `path` on behalf of `source`, and checks the result against the schema.
    /// Text values are tried as TOML (number, boolean, array), then as a string, then as a
    /// comma-separated list, and the first that the schema takes wins.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the variable (or flag) when no reading fits.
    pub(super) fn apply(&mut self, path: &[Seg], value: Written, source: Source) -> Result<(), ConfigError> {
        let name = match &source {
            Source::Env(v) => v.clone(),
            Source::Flag(f) => (*f).to_owned(),
            _ => key_name(path),
        };
        let origin = if matches!(source, Source::Flag(_)) { "command line" } else { "environment" };
        let invalid = |problem: String| ConfigError::Invalid { origin: origin.to_owned(), key: name.clone(), problem };
        let candidates = match value {
            Written::Value(v) => vec![v],
            Written::Text(text) => readings(&text),
        };
        let mut first_error = None;
        for candidate in candidates {
            let mut table = self.table.clone();
            if let Err(problem) = put(&mut table, path, candidate) {
                return Err(invalid(problem));
            }
            // A missing field means the value fits and the element is not complete yet: the
            // next variable (`__PROTOCOL` after `__PORT` of a new listener) may complete it.
            let fits = match Value::Table(table.clone()).try_into::<FileConfig>() {
                Ok(_) => Ok(()),
                Err(e) if e.message().starts_with("missing field") => Ok(()),
                Err(e) => Err(e),
            };
            match fits {
                Ok(()) => {
                    self.table = table;
                    self.sources.set(key_name(path), source);
                    return Ok(());
                }
                Err(e) => {
                    first_error.get_or_insert_with(|| format!("{} (as {})", e.message().trim(), key_name(path)));
                }
            }
        }
        Err(invalid(first_error.unwrap_or_default()))
    }

    /// Every `HERALD__SECTION__KEY` variable, in path order so that `APPS__1` comes after
    /// `APPS__0` (an index may name an existing element or the next one).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the variable.
    pub(super) fn overlay_env(&mut self, vars: &BTreeMap<String, String>) -> Result<(), ConfigError> {
        let mut generic: Vec<(Vec<Seg>, &str, &str)> = Vec::new();
        for (name, value) in vars.range(PREFIX.to_owned()..).take_while(|(n, _)| n.starts_with(PREFIX)) {
            if value.is_empty() {
                continue;
            }
            let path = parse_name(name).map_err(|problem| ConfigError::Invalid {
                origin: "environment".into(),
                key: name.clone(),
                problem,
            })?;
            generic.push((path, name, value));
        }
        generic.sort();
        for (path, name, value) in generic {
            self.apply(&path, Written::Text(value.to_owned()), Source::Env(name.to_owned()))?;
        }
        Ok(())
    }

    /// The merged table as herald's schema.
    /// The file itself was checked when read, so what is still missing here is in an element
    /// the environment added.
    pub(super) fn finish(&self) -> Result<FileConfig, ConfigError> {
        Value::Table(self.table.clone()).try_into::<FileConfig>().map_err(|e| ConfigError::Invalid {
            origin: "environment".into(),
            key: "a list element added by HERALD__ variables".into(),
            problem: e.message().trim().to_owned(),
        })
    }
}

/// A value to write: already typed, or text from a variable or flag.
pub(super) enum Written {
    /// Typed by the caller.
    Value(Value),
    /// Text, read as [`readings`] says.
    Text(String),
}

/// `HERALD__APPS__0__ENABLE_CLIENT_MESSAGES` as `apps`, `0`, `enable_client_messages`.
fn parse_name(name: &str) -> Result<Vec<Seg>, String> {
    let rest = &name[PREFIX.len()..];
    let mut path = Vec::new();
    for part in rest.split("__") {
        if part.is_empty() {
            return Err(format!("is not {PREFIX}SECTION__KEY (an empty segment)"));
        }
        path.push(match part.parse::<usize>() {
            Ok(i) if !path.is_empty() => Seg::Index(i),
            _ => Seg::Key(part.to_ascii_lowercase()),
        });
    }
    Ok(path)
}

/// The readings of a variable's text, most specific first.
fn readings(text: &str) -> Vec<Value> {
    let trimmed = text.trim();
    let mut out = Vec::new();
    if trimmed.starts_with('[') || trimmed.starts_with('{') {
        if let Ok(mut t) = toml::from_str::<Table>(&format!("v = {trimmed}"))
            && let Some(v) = t.remove("v")
        {
            out.push(v);
        }
    } else if let Ok(b) = trimmed.parse::<bool>() {
        out.push(Value::Boolean(b));
    } else if let Ok(i) = trimmed.parse::<i64>() {
        out.push(Value::Integer(i));
    } else if trimmed.contains('.')
        && trimmed.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
        && let Ok(f) = trimmed.parse::<f64>()
    {
        out.push(Value::Float(f));
    }
    out.push(Value::String(text.to_owned()));
    if !trimmed.starts_with('[') {
        let items = text.split(',').map(str::trim).filter(|s| !s.is_empty());
        out.push(Value::Array(items.map(|s| Value::String(s.to_owned())).collect()));
    }
    out
}

/// Writes `value` at `path`, creating the tables on the way (and the next element of an array).
fn put(table: &mut Table, path: &[Seg], value: Value) -> Result<(), String> {
    let Some((Seg::Key(first), rest)) = path.split_first() else {
        return Err("must start with a section name".into());
    };
    let mut slot = table.entry(first.clone()).or_insert_with(|| empty_for(rest.first()));
    for (i, seg) in rest.iter().enumerate() {
        let next = rest.get(i + 1);
        let container = key_name(&path[..=i]);
        slot = match (seg, slot) {
            (Seg::Key(k), Value::Table(t)) => t.entry(k.clone()).or_insert_with(|| empty_for(next)),
            (Seg::Index(n), Value::Array(a)) => {
                if *n == a.len() {
                    a.push(empty_for(next));
                }
                let len = a.len();
                a.get_mut(*n)
                    .ok_or_else(|| format!("{container} has {len} entries; an index names one of them or the next"))?
            }
            (Seg::Key(_), _) => return Err(format!("{container} is not a table")),
            (Seg::Index(_), _) => return Err(format!("{container} is not a list")),
        };
    }
    *slot = value;
    Ok(())
}

/// The container a path continues into.
fn empty_for(next: Option<&Seg>) -> Value {
    match next {
        Some(Seg::Index(_)) => Value::Array(Vec::new()),
        _ => Value::Table(Table::new()),
    }
}

/// Records every key of `table` (leaves and arrays alike) as coming from `source`.
fn record(table: &Table, prefix: &mut String, source: &Source, sources: &mut Sources) {
    for (k, v) in table {
        let len = prefix.len();
        if !prefix.is_empty() {
            prefix.push('.');
        }
        prefix.push_str(k);
        record_value(v, prefix, source, sources);
        prefix.truncate(len);
    }
}

fn record_value(v: &Value, prefix: &mut String, source: &Source, sources: &mut Sources) {
    match v {
        Value::Table(t) => record(t, prefix, source, sources),
        Value::Array(a) if a.iter().any(Value::is_table) => {
            for (i, item) in a.iter().enumerate() {
                let len = prefix.len();
                prefix.push_str(&format!("[{i}]"));
                record_value(item, prefix, source, sources);
                prefix.truncate(len);
            }
        }
        _ => {
            sources.by_key.insert(prefix.clone(), source.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_paths() {
        assert_eq!(
            parse_name("HERALD__APPS__0__ENABLE_CLIENT_MESSAGES").unwrap(),
            [Seg::Key("apps".into()), Seg::Index(0), Seg::Key("enable_client_messages".into())]
        );
        assert_eq!(key_name(&parse_name("HERALD__SCALE_OUT__REDIS_URL").unwrap()), "scale_out.redis_url");
        assert!(parse_name("HERALD__SERVER____PORT").is_err());
    }

    #[test]
    fn text_is_read_as_toml_then_string_then_list() {
        assert_eq!(readings("true")[0], Value::Boolean(true));
        assert_eq!(readings("7000")[0], Value::Integer(7000));
        assert_eq!(readings("1.5")[0], Value::Float(1.5));
        assert_eq!(readings("[\"a\", \"b\"]")[0].as_array().map(Vec::len), Some(2));
        assert_eq!(readings("10.0.0.1")[0], Value::String("10.0.0.1".into()));
        assert_eq!(readings("a, b").last().and_then(Value::as_array).map(Vec::len), Some(2));
    }

    #[test]
    fn sources_fall_back_to_the_enclosing_key() {
        let mut s = Sources::default();
        s.set("apps[0].webhooks".into(), Source::Env("SOKETI_DEFAULT_APP_WEBHOOKS".into()));
        assert_eq!(s.of("apps[0].webhooks[0].url"), Source::Env("SOKETI_DEFAULT_APP_WEBHOOKS".into()));
        s.set("server.trusted_proxies".into(), Source::Flag("--x"));
        assert_eq!(s.of("server.trusted_proxies"), Source::Flag("--x"));
        assert_eq!(s.of("apps[0]"), Source::Env("SOKETI_DEFAULT_APP_WEBHOOKS".into()));
        assert_eq!(s.of("server.port"), Source::Default);
    }
}
