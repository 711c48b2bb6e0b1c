//! `herald config check`: the settings as TOML, every section, secrets redacted, and after each
//! value the layer it came from (`# default`, `# file herald.toml`, `# env HERALD__SERVER__PORT`,
//! `# env REVERB_APP_KEY`, `# flag --port`).
//!
//! The output is valid TOML that herald itself would read back (comments aside, the redacted
//! secrets are placeholders an operator must replace).

use std::fmt::Write;

use toml::{Table, Value};

use super::layers::Sources;
use super::{Profile, Settings};

/// Keys printed before the others of their table.
const FIRST: [&str; 4] = ["id", "key", "secret", "url"];

/// What a secret is printed as.
const REDACTED: &str = "<redacted>";

/// String values under these keys are secrets wherever they appear (app secrets, WAMP tickets
/// and CRA secrets, passphrases); so is every value of a webhook's `headers`.
const SECRET_KEYS: [&str; 5] = ["secret", "ticket", "password", "passphrase", "tls_passphrase"];

/// The settings as commented TOML.
pub fn describe(settings: &Settings, sources: &Sources) -> String {
    let mut d = Describe { out: String::new(), sources };
    d.out.push_str("# herald configuration; after each value, where it came from\n");
    d.server(settings);
    d.history(settings);
    d.dashboard(settings);
    d.scale_out(settings);
    d.app_store(settings);
    d.listeners(settings);
    for (i, app) in settings.apps.iter().enumerate() {
        let Ok(Value::Table(table)) = Value::try_from(app) else { continue };
        let _ = writeln!(d.out, "\n[[apps]]");
        d.table(&redact(table, false), "apps", &format!("apps[{i}]"));
    }
    d.profiles(settings);
    d.out
}

struct Describe<'a> {
    out: String,
    sources: &'a Sources,
}

impl Describe<'_> {
    /// `key = value  # source`, the source looked up at `path`.
    fn line(&mut self, key: &str, value: &Value, path: &str) {
        let _ = writeln!(self.out, "{key} = {value}  # {}", self.sources.of(path));
    }

    /// A value that is not set: a comment, so the key is still shown.
    fn unset(&mut self, key: &str, path: &str) {
        let _ = writeln!(self.out, "# {key} is not set  # {}", self.sources.of(path));
    }

    fn opt(&mut self, key: &str, value: Option<Value>, path: &str) {
        match value {
            Some(v) => self.line(key, &v, path),
            None => self.unset(key, path),
        }
    }

    fn server(&mut self, s: &Settings) {
        let o = &s.ops;
        self.out.push_str("\n[server]\n");
        self.line("host", &s.host.as_str().into(), "server.host");
        self.line("port", &int(s.port), "server.port");
        self.line("shutdown_grace", &int(s.shutdown_grace.as_secs()), "server.shutdown_grace");
        self.line("outbox_max_frames", &int(s.outbox.max_frames), "server.outbox_max_frames");
        self.line("outbox_max_bytes", &int(s.outbox.max_bytes), "server.outbox_max_bytes");
        self.line("test_echo_endpoint", &Value::Boolean(s.test_echo_endpoint), "server.test_echo_endpoint");
        let tls = o.tls.as_ref();
        self.opt("tls_cert", tls.map(|t| path(&t.cert)), "server.tls_cert");
        self.opt("tls_key", tls.map(|t| path(&t.key)), "server.tls_key");
        let pass = tls.and_then(|t| t.passphrase.as_ref()).map(|_| REDACTED.into());
        self.opt("tls_passphrase", pass, "server.tls_passphrase");
        self.line("tls_handshake_timeout", &int(o.tls_handshake_timeout.as_secs()), "server.tls_handshake_timeout");
        self.opt("metrics_host", o.metrics_addr.as_ref().map(|(h, _)| h.as_str().into()), "server.metrics_host");
        self.opt("metrics_port", o.metrics_addr.as_ref().map(|(_, p)| int(*p)), "server.metrics_port");
        self.opt("path_prefix", o.path_prefix.as_deref().map(Into::into), "server.path_prefix");
        let proxies = o.trusted_proxies.iter().map(|n| Value::String(n.to_string())).collect();
        self.line("trusted_proxies", &Value::Array(proxies), "server.trusted_proxies");
        self.line("reuse_port", &Value::Boolean(o.reuse_port), "server.reuse_port");
        self.opt("pid_file", o.pid_file.as_deref().map(path), "server.pid_file");
        self.line("max_connections_per_ip", &int(o.per_ip.max_connections), "server.max_connections_per_ip");
        let key = "max_new_connections_per_ip_per_second";
        self.line(key, &int(o.per_ip.max_new_per_second), &format!("server.{key}"));
    }

    fn history(&mut self, s: &Settings) {
        self.out.push_str("\n[history]\n");
        self.line("max_bytes", &int(s.history.max_bytes), "history.max_bytes");
        self.opt("snapshot_file", s.history.snapshot_file.as_deref().map(path), "history.snapshot_file");
    }

    fn dashboard(&mut self, s: &Settings) {
        let Some(d) = &s.dashboard else {
            self.out.push_str("\n# [dashboard] is off (enabled = false)\n");
            return;
        };
        self.out.push_str("\n[dashboard]\n");
        self.line("enabled", &Value::Boolean(true), "dashboard.enabled");
        self.line("password", &REDACTED.into(), "dashboard.password");
        let nets = d.allowed_addresses.iter().map(|n| Value::String(n.to_string())).collect();
        self.line("allowed_addresses", &Value::Array(nets), "dashboard.allowed_addresses");
        let origins = d.allowed_origins.iter().map(|o| Value::String(o.clone())).collect();
        self.line("allowed_origins", &Value::Array(origins), "dashboard.allowed_origins");
    }

    fn scale_out(&mut self, s: &Settings) {
        let Some(so) = &s.scale_out else {
            self.out.push_str("\n# [scale_out] is not set: one process, state in memory\n");
            return;
        };
        self.out.push_str("\n[scale_out]\n");
        // Credentials in the URLs are redacted.
        if so.redis_cluster.is_empty() {
            self.line("redis_url", &so.redacted_url().into(), "scale_out.redis_url");
        } else {
            let seeds = so.redacted_url().split(',').map(|u| Value::String(u.to_owned())).collect();
            self.line("redis_cluster", &Value::Array(seeds), "scale_out.redis_cluster");
        }
        self.line("prefix", &so.prefix.as_str().into(), "scale_out.prefix");
        self.line("replay_window_secs", &int(so.replay_window.as_secs()), "scale_out.replay_window_secs");
    }

    fn app_store(&mut self, s: &Settings) {
        let Some(a) = &s.app_store else {
            self.out.push_str("\n# [app_store] is not set: the apps above only\n");
            return;
        };
        self.out.push_str("\n[app_store]\n");
        self.line("driver", &a.driver.name().into(), "app_store.driver");
        // Credentials in the URL are redacted.
        self.line("url", &a.redacted_url().into(), "app_store.url");
        self.line("table", &a.table.as_str().into(), "app_store.table");
        self.line("cache_ttl_secs", &int(a.cache_ttl.as_secs()), "app_store.cache_ttl_secs");
        self.line("negative_ttl_secs", &int(a.negative_ttl.as_secs()), "app_store.negative_ttl_secs");
        self.line(
            "max_lookups_per_second",
            &int(u64::from(a.max_lookups_per_second)),
            "app_store.max_lookups_per_second",
        );
        let channel = a.listen_channel.as_deref().unwrap_or("");
        self.line("listen_channel", &channel.into(), "app_store.listen_channel");
    }

    fn listeners(&mut self, s: &Settings) {
        // The `[[listeners]]` come first, in the file's order; the profiles' follow.
        let plain = s.listeners.iter().filter(|l| matches!(l.profile, Profile::Pusher | Profile::Wamp1 { .. }));
        for (i, l) in plain.enumerate() {
            let at = |k: &str| format!("listeners[{i}].{k}");
            self.out.push_str("\n[[listeners]]\n");
            self.line("host", &l.host.as_str().into(), &at("host"));
            self.line("port", &int(l.port), &at("port"));
            match &l.profile {
                Profile::Wamp1 { app, strict_subprotocol } => {
                    self.line("protocol", &"wamp1".into(), &at("protocol"));
                    self.line("app", &app.as_str().into(), &at("app"));
                    self.line("strict_subprotocol", &Value::Boolean(*strict_subprotocol), &at("strict_subprotocol"));
                }
                _ => self.line("protocol", &"pusher".into(), &at("protocol")),
            }
            if let Some(t) = &l.tls {
                self.line("tls_cert", &path(&t.cert), &at("tls_cert"));
                self.line("tls_key", &path(&t.key), &at("tls_key"));
                if t.passphrase.is_some() {
                    self.line("tls_passphrase", &REDACTED.into(), &at("tls_passphrase"));
                }
            }
        }
    }

    fn profiles(&mut self, s: &Settings) {
        for l in &s.listeners {
            match &l.profile {
                Profile::Oro(oro) => {
                    oro.describe(&l.host, l.port, &mut self.out);
                    let _ = writeln!(self.out, "# from {} and the ORO_* variables", self.sources.of("oro"));
                    if let Some(t) = &l.tls {
                        self.line("tls_cert", &path(&t.cert), "oro.tls_cert");
                        self.line("tls_key", &path(&t.key), "oro.tls_key");
                    }
                }
                Profile::Espo(espo) => {
                    let e = &espo.settings;
                    let _ = writeln!(self.out, "\n[espocrm]  # listening on {}:{}", l.host, l.port);
                    let _ = writeln!(self.out, "# from {} and EspoCRM's data/config.php", self.sources.of("espocrm"));
                    self.line("app", &e.app.as_str().into(), "espocrm.app");
                    self.line("root", &path(&e.root), "espocrm.root");
                    self.line("zmq_endpoint", &e.zmq_endpoint.as_str().into(), "espocrm.zmq_endpoint");
                    self.line("share_broadcasts", &Value::Boolean(e.share_broadcasts), "espocrm.share_broadcasts");
                    if let Some(t) = &l.tls {
                        self.line("tls_cert", &path(&t.cert), "espocrm.tls_cert");
                    }
                }
                Profile::Pusher | Profile::Wamp1 { .. } => {}
            }
        }
    }

    /// A table: its plain values first (TOML needs them before any sub-table header), then its
    /// tables and arrays of tables. `header` is the TOML name (`apps.webhooks`), `at` the
    /// source path (`apps[0].webhooks[1]`).
    fn table(&mut self, t: &Table, header: &str, at: &str) {
        let nested = |v: &Value| v.is_table() || is_table_array(v);
        // What names the entry first (an app's id, key and secret, a webhook's url), the rest
        // in the table's order.
        let mut plain: Vec<_> = t.iter().filter(|(_, v)| !nested(v)).collect();
        plain.sort_by_key(|(k, _)| FIRST.iter().position(|f| f == k).unwrap_or(FIRST.len()));
        for (k, v) in plain {
            self.line(&toml_key(k), v, &format!("{at}.{k}"));
        }
        for (k, v) in t.iter().filter(|(_, v)| nested(v)) {
            let (header, at) = (format!("{header}.{}", toml_key(k)), format!("{at}.{k}"));
            match v {
                Value::Table(sub) => {
                    let _ = writeln!(self.out, "[{header}]");
                    self.table(sub, &header, &at);
                }
                Value::Array(items) => {
                    for (j, item) in items.iter().enumerate() {
                        let _ = writeln!(self.out, "[[{header}]]");
                        if let Value::Table(sub) = item {
                            self.table(sub, &header, &format!("{at}[{j}]"));
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

fn is_table_array(v: &Value) -> bool {
    v.as_array().is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_table))
}

/// A key as TOML writes it: bare when it can be, quoted otherwise (header names).
fn toml_key(k: &str) -> String {
    let bare = !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare { k.to_owned() } else { Value::String(k.to_owned()).to_string() }
}

/// `table` with its secrets replaced; `headers`: every string in it is a secret.
fn redact(table: Table, headers: bool) -> Table {
    table
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(_) if headers || SECRET_KEYS.contains(&k.as_str()) => REDACTED.into(),
                Value::Table(t) => Value::Table(redact(t, headers || k == "headers")),
                Value::Array(items) => Value::Array(
                    items
                        .into_iter()
                        .map(|i| match i {
                            Value::Table(t) => Value::Table(redact(t, headers)),
                            other => other,
                        })
                        .collect(),
                ),
                other => other,
            };
            (k, v)
        })
        .collect()
}

fn int<T: TryInto<i64>>(n: T) -> Value {
    Value::Integer(n.try_into().unwrap_or(i64::MAX))
}

fn path(p: &std::path::Path) -> Value {
    Value::String(p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_at_any_depth() {
        let t: Table = toml::from_str(
            "secret = \"s1\"\nkey = \"k\"\n[[webhooks]]\nurl = \"u\"\nheaders = { Authorization = \"Bearer t\" }\n\
             [wamp_auth.ticket.principals.joe]\nticket = \"t1\"\nrole = \"r\"\n",
        )
        .unwrap();
        let text = toml::to_string(&redact(t, false)).unwrap();
        for secret in ["s1", "Bearer t", "t1"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("\"k\"") && text.contains("\"r\"") && text.contains("\"u\""), "{text}");
    }
}
