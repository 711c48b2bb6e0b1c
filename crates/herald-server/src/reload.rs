//! SIGHUP: certificates and the apps of the configuration are read again, while every
//! connection stays up.
//!
//! The apps are loaded exactly as at start-up (file, environment, flags), then applied to the
//! hub one by one: new apps are added, changed ones replaced (keeping their channels and
//! connections), and apps that are gone are removed, which closes their connections with Pusher
//! 4001; an app that is now disabled closes its connections with 4003. A configuration that does
//! not load changes nothing. Apps owned by a drop-in profile and apps of an app store are not
//! the file's to remove: only the ids the configuration itself declared are.

use std::collections::BTreeSet;
use std::sync::Arc;

use herald_core::app::AppConfig;
use herald_core::hub::AppChange;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::apps::Apps;
use crate::tls::CertStore;

/// Loads the apps of the configuration again; the error says why it cannot.
pub type LoadApps = Box<dyn Fn() -> Result<Vec<AppConfig>, String> + Send + Sync>;

/// The apps of the configuration, reloadable.
pub struct AppsReload {
    load: LoadApps,
    /// The ids the configuration declared at the last load: a reload removes those it no
    /// longer declares, and nothing else.
    declared: Mutex<BTreeSet<String>>,
}

/// What one reload did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// Apps new to the hub.
    pub added: usize,
    /// Apps whose settings changed.
    pub replaced: usize,
    /// Apps no longer declared.
    pub removed: usize,
    /// Apps that could not be applied (a key held by another app), with why.
    pub refused: Vec<String>,
}

impl std::fmt::Debug for AppsReload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppsReload").field("declared", &*self.declared.lock()).finish_non_exhaustive()
    }
}

impl AppsReload {
    /// Reloads with `load`; `initial` are the apps the hub was started with.
    pub fn new(load: LoadApps, initial: &[AppConfig]) -> Self {
        let declared = initial.iter().filter(|a| !a.profile_only).map(|a| a.id.clone()).collect();
        Self { load, declared: Mutex::new(declared) }
    }

    /// Loads the configuration and applies its apps to `live` (the hub, then their webhooks).
    ///
    /// # Errors
    /// Why the configuration does not load; the hub is unchanged then.
    pub fn apply(&self, live: &Apps) -> Result<Reloaded, String> {
        let apps: Vec<AppConfig> = (self.load)()?.into_iter().filter(|a| !a.profile_only).collect();
        let mut declared = self.declared.lock();
        let mut done = Reloaded::default();
        let now: BTreeSet<String> = apps.iter().map(|a| a.id.clone()).collect();
        // Removals first: an app may take over the key of one that left in the same reload.
        for id in declared.difference(&now) {
            if live.remove(id).is_some() {
                done.removed += 1;
            }
        }
        for config in apps {
            let id = config.id.clone();
            match live.upsert(config) {
                Ok((_, AppChange::Added)) => done.added += 1,
                Ok((_, AppChange::Replaced)) => done.replaced += 1,
                Ok((_, AppChange::Unchanged)) => {}
                Err(e) => done.refused.push(format!("app {id:?}: key {:?} is used by another app", e.value)),
            }
        }
        *declared = now;
        Ok(done)
    }
}

/// Reloads the certificates and the apps on each SIGHUP of `hangup` until `stop` is cancelled.
///
/// The stream exists even without anything to reload: SIGHUP's default action would kill the
/// process, and `systemctl reload` sends it whatever the configuration.
pub(crate) async fn on_sighup(
    stores: Vec<Arc<CertStore>>,
    apps: Option<(AppsReload, Arc<Apps>)>,
    hangup: std::io::Result<tokio::signal::unix::Signal>,
    stop: CancellationToken,
) {
    let mut hup = match hangup {
        Ok(hup) => hup,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP: nothing will be reloaded");
            return;
        }
    };
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            r = hup.recv() => if r.is_none() { return },
        }
        for store in &stores {
            match store.reload() {
                Ok(()) => tracing::info!(cert = %store.cert_path().display(), "certificate reloaded"),
                Err(e) => tracing::error!(error = %e, "certificate reload failed; keeping the previous certificate"),
            }
        }
        let Some((reload, apps)) = &apps else { continue };
        match reload.apply(apps) {
            Ok(done) => {
                for why in &done.refused {
                    tracing::error!("SIGHUP: {why}; that app was not changed");
                }
                tracing::info!(
                    added = done.added,
                    replaced = done.replaced,
                    removed = done.removed,
                    "SIGHUP: apps reloaded"
                );
            }
            Err(e) => tracing::error!("SIGHUP: configuration not reloaded, the apps are unchanged: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use herald_core::Hub;
    use herald_core::app::{AppConfig, AppRegistry};
    use herald_core::backend::LocalBackend;
    use herald_core::outbox::OutboxLimits;
    use parking_lot::Mutex;

    use super::{AppsReload, Reloaded};

    fn app(id: &str, key: &str) -> AppConfig {
        AppConfig { id: id.into(), key: key.into(), secret: "s".into(), ..AppConfig::default() }
    }

    #[test]
    fn a_reload_adds_replaces_and_removes_only_what_the_file_declared() {
        let initial = vec![app("a", "ka"), app("b", "kb")];
        let hub =
            Hub::new(AppRegistry::new(initial.clone()).expect("apps"), Arc::new(LocalBackend), OutboxLimits::default());
        let hub = Arc::new(hub);
        let live = crate::apps::Apps::new(Arc::clone(&hub));
        // An app the file never declared (an app store's) survives every reload.
        hub.upsert_app(app("stored", "ks")).expect("upsert");
        let next = Arc::new(Mutex::new(Ok(vec![AppConfig { max_connections: 5, ..app("a", "ka") }, app("c", "kb")])));
        let source = Arc::clone(&next);
        let reload = AppsReload::new(Box::new(move || source.lock().clone()), &initial);

        let done = reload.apply(&live).expect("reloaded");
        assert_eq!(done, Reloaded { added: 1, replaced: 1, removed: 1, refused: vec![] });
        assert_eq!(hub.app_by_key("kb").expect("c").config.id, "c", "a key freed in the same reload is taken");
        assert_eq!(hub.app_by_id("a").expect("a").config.max_connections, 5);
        assert!(hub.app_by_id("stored").is_some());

        *next.lock() = Err("apps[0].key: must not be empty".into());
        assert!(reload.apply(&live).is_err());
        assert_eq!(hub.apps().len(), 3, "a configuration that does not load changes nothing");

        *next.lock() = Ok(vec![app("a", "ka"), app("c", "kb"), app("d", "ks")]);
        let done = reload.apply(&live).expect("reloaded");
        assert_eq!(done.refused.len(), 1, "the store's key is not taken over");
        assert_eq!(hub.app_by_key("ks").expect("stored").config.id, "stored");
    }
}
