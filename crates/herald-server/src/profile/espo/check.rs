//! EspoCRM's check commands: `php command.php AuthTokenCheck <token> <userId>` and the
//! categories' `AclCheck ...`, run in the EspoCRM root with a concurrency cap, a timeout and a
//! short verdict cache.
//!
//! Identical checks in flight are run once and their verdict shared (a user reconnecting five
//! tabs after a restart costs one PHP process, not five). Failures (timeout, PHP missing) are
//! never cached, so the next attempt runs the command again.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{OnceCell, Semaphore};
use tokio::time::Instant;

use super::settings::{EspoSettings, OutputRule};

/// Above this many cache entries, expired ones are swept on insert.
const SWEEP_ABOVE: usize = 1024;

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Exit 0 (and the expected output under [`OutputRule::LastLine`]).
    Granted,
    /// The command said no.
    Denied,
    /// The command could not give an answer: timeout, or it could not be started.
    Failed,
}

/// One cached or in-flight verdict.
#[derive(Debug)]
struct Entry {
    verdict: OnceCell<Verdict>,
    born: Instant,
}

/// Verdicts by command line, each reused for `ttl` (in-flight checks are always shared).
#[derive(Debug)]
struct Cache {
    ttl: Duration,
    map: Mutex<HashMap<Vec<String>, Arc<Entry>>>,
}

impl Cache {
    fn new(ttl: Duration) -> Self {
        Self { ttl, map: Mutex::new(HashMap::new()) }
    }

    /// The entry for `key`: a live one, or a fresh one replacing an expired one.
    fn entry(&self, key: &[String]) -> Arc<Entry> {
        let now = Instant::now();
        let mut map = self.map.lock();
        let live = |e: &Entry| e.verdict.get().is_none() || now.duration_since(e.born) < self.ttl;
        if let Some(e) = map.get(key).filter(|e| live(e)) {
            return Arc::clone(e);
        }
        if map.len() > SWEEP_ABOVE {
            map.retain(|_, e| live(e));
        }
        let e = Arc::new(Entry { verdict: OnceCell::new(), born: now });
        map.insert(key.to_vec(), Arc::clone(&e));
        e
    }

    /// Forgets `entry` once decided, when its verdict must not be reused.
    fn settle(&self, key: &[String], entry: &Arc<Entry>, verdict: Verdict) {
        if verdict == Verdict::Failed || self.ttl.is_zero() {
            let mut map = self.map.lock();
            if map.get(key).is_some_and(|e| Arc::ptr_eq(e, entry)) {
                map.remove(key);
            }
        }
    }
}

/// Runs check commands for the EspoCRM profile.
#[derive(Debug)]
pub(crate) struct Checks {
    php: PathBuf,
    root: PathBuf,
    timeout: Duration,
    rule: OutputRule,
    /// Caps the PHP processes alive at once.
    slots: Semaphore,
    auth: Cache,
    acl: Cache,
}

impl Checks {
    /// A runner for the validated settings.
    pub(crate) fn new(s: &EspoSettings) -> Self {
        Self {
            php: s.php.clone(),
            root: s.root.clone(),
            timeout: s.check_timeout,
            rule: s.output_rule,
            slots: Semaphore::new(s.max_concurrent_checks),
            auth: Cache::new(s.auth_cache_ttl),
            acl: Cache::new(s.acl_cache_ttl),
        }
    }

    /// `AuthTokenCheck <token> <userId>`: granted when the token is an active token of that
    /// active user.
    pub(crate) async fn auth(&self, token: &str, user_id: &str) -> Verdict {
        let args = vec!["AuthTokenCheck".to_owned(), token.to_owned(), user_id.to_owned()];
        self.cached(&self.auth, args, user_id).await
    }

    /// A category's access check (`AclCheck --userId=... ...`), arguments after `command.php`.
    pub(crate) async fn acl(&self, args: Vec<String>) -> Verdict {
        self.cached(&self.acl, args, "true").await
    }

    async fn cached(&self, cache: &Cache, args: Vec<String>, expect: &str) -> Verdict {
        let entry = cache.entry(&args);
        let verdict = *entry.verdict.get_or_init(|| self.run(&args, expect)).await;
        cache.settle(&args, &entry, verdict);
        verdict
    }

    /// Runs `php command.php <args>` in the root; the timeout covers waiting for a slot.
    async fn run(&self, args: &[String], expect: &str) -> Verdict {
        let work = async {
            let Ok(_slot) = self.slots.acquire().await else { return Verdict::Failed };
            let child = tokio::process::Command::new(&self.php)
                .arg("command.php")
                .args(args)
                .current_dir(&self.root)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                // A timed-out check must not leave a PHP process behind.
                .kill_on_drop(true)
                .spawn();
            let child = match child {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(php = %self.php.display(), error = %e, "cannot start the EspoCRM check command");
                    return Verdict::Failed;
                }
            };
            match child.wait_with_output().await {
                Ok(out) => judge(self.rule, out.status.success(), &out.stdout, expect),
                Err(e) => {
                    tracing::warn!(error = %e, "EspoCRM check command failed");
                    Verdict::Failed
                }
            }
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(v) => v,
            Err(_) => {
                tracing::warn!(command = %args.first().map_or("", String::as_str), timeout = ?self.timeout, "EspoCRM check command timed out");
                Verdict::Failed
            }
        }
    }
}

/// Applies the output rule to a finished command.
pub(crate) fn judge(rule: OutputRule, exit_ok: bool, stdout: &[u8], expect: &str) -> Verdict {
    if !exit_ok {
        return Verdict::Denied;
    }
    match rule {
        OutputRule::ExitCode => Verdict::Granted,
        OutputRule::LastLine => {
            let text = String::from_utf8_lossy(stdout);
            let last = text.lines().map(str::trim).rfind(|l| !l.is_empty());
            if last == Some(expect) { Verdict::Granted } else { Verdict::Denied }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_line_rule_needs_exit_zero_and_the_expected_last_line() {
        let r = OutputRule::LastLine;
        assert_eq!(judge(r, true, b"u1\n", "u1"), Verdict::Granted);
        assert_eq!(judge(r, true, b"PHP Deprecated: x\nu1\n\n", "u1"), Verdict::Granted);
        assert_eq!(judge(r, true, b"u2\n", "u1"), Verdict::Denied, "pre-9.2 AuthTokenCheck exits 0 for any token");
        assert_eq!(judge(r, true, b"", "true"), Verdict::Denied);
        assert_eq!(judge(r, false, b"true\n", "true"), Verdict::Denied);
        assert_eq!(judge(OutputRule::ExitCode, true, b"", "true"), Verdict::Granted);
        assert_eq!(judge(OutputRule::ExitCode, false, b"true", "true"), Verdict::Denied);
    }

    #[tokio::test(start_paused = true)]
    async fn cache_reuses_decided_verdicts_until_the_ttl_and_never_keeps_failures() {
        let cache = Cache::new(Duration::from_secs(30));
        let key = vec!["AuthTokenCheck".to_owned(), "t".to_owned()];
        let a = cache.entry(&key);
        assert!(Arc::ptr_eq(&a, &cache.entry(&key)), "an in-flight check is shared");
        let _ = a.verdict.set(Verdict::Granted);
        cache.settle(&key, &a, Verdict::Granted);
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(Arc::ptr_eq(&a, &cache.entry(&key)));
        tokio::time::advance(Duration::from_secs(2)).await;
        let b = cache.entry(&key);
        assert!(!Arc::ptr_eq(&a, &b), "expired after the ttl");
        let _ = b.verdict.set(Verdict::Failed);
        cache.settle(&key, &b, Verdict::Failed);
        assert!(!Arc::ptr_eq(&b, &cache.entry(&key)), "a failure is not reused");
    }
}
