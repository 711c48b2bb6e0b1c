//! Changing the apps while herald runs: one place that applies a change to the hub, then to
//! what is built per app outside it (the webhooks, and in a cluster their queue in Redis).
//! Whatever changes apps (a SIGHUP reload, an app store) goes through [`Apps`], so an app added
//! at runtime gets the same webhooks, metrics and cluster queue as one present at start.
//!
//! An upsert changes the hub first: a new app's connections cannot exist before it serves the
//! app, and a refused change (a key held by another app) must not touch the webhooks; an event
//! of a changed app that happens between the two steps still goes to its previous endpoints. A
//! removal takes the webhooks away first: the departures of the connections the removal closes
//! are not sent for an app that is gone.

use std::sync::Arc;

use herald_core::app::{AppConfig, DuplicateApp};
use herald_core::hub::AppChange;
use herald_core::{App, Hub};

use crate::webhook::{Rebuilt, Webhooks};

/// The hub's apps and what follows them.
#[derive(Debug)]
pub struct Apps {
    hub: Arc<Hub>,
    webhooks: Option<Arc<Webhooks>>,
    hooks: Option<herald_redis::hooks::HookApps>,
}

impl Apps {
    /// The apps of `hub`, with nothing built per app (no webhooks follow them).
    pub fn new(hub: Arc<Hub>) -> Self {
        Self { hub, webhooks: None, hooks: None }
    }

    /// These apps, with `webhooks` (and, in a cluster, their Redis queue `hooks`) following
    /// each change.
    pub(crate) fn with_webhooks(
        mut self,
        webhooks: Arc<Webhooks>,
        hooks: Option<herald_redis::hooks::HookApps>,
    ) -> Self {
        self.webhooks = Some(webhooks);
        self.hooks = hooks;
        self
    }

    /// The hub.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Adds the app, or replaces the app with its id ([`Hub::upsert_app`]), then gives it the
    /// webhooks of its settings: new or changed endpoints take the events from now on, the
    /// previous ones send what they had queued and stop.
    ///
    /// An endpoint that cannot be used (validation refuses those first) is logged and leaves
    /// the app's webhooks as they were; the app itself is changed.
    ///
    /// # Errors
    /// When another app has the key; nothing changes then.
    pub fn upsert(&self, config: AppConfig) -> Result<(Arc<App>, AppChange), DuplicateApp> {
        let (app, change) = self.hub.upsert_app(config)?;
        if change != AppChange::Unchanged {
            self.follow(&app);
        }
        Ok((app, change))
    }

    /// Removes the app with this id: its webhooks first (what they had queued is sent, then
    /// they stop), then the app ([`Hub::remove_app`], which closes its connections). Returns
    /// the app, or `None` when there was none.
    pub fn remove(&self, id: &str) -> Option<Arc<App>> {
        if let Some(webhooks) = &self.webhooks {
            webhooks.remove(id);
        }
        if let Some(hooks) = &self.hooks {
            hooks.remove(id);
        }
        self.hub.remove_app(id)
    }

    fn follow(&self, app: &Arc<App>) {
        let Some(webhooks) = &self.webhooks else { return };
        let rebuilt = match webhooks.apply(app) {
            Ok(rebuilt) => rebuilt,
            Err(e) => {
                tracing::error!("{e}; the app's webhooks are unchanged");
                return;
            }
        };
        if let Some(hooks) = &self.hooks {
            hooks.update(app, rebuilt == Rebuilt::Yes);
        }
    }
}
