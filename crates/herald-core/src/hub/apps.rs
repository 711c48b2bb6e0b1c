//! The apps a hub serves, and how they change while it runs: a reload of the apps file or an
//! app store adds, replaces and removes apps without dropping anyone who stays welcome.
//!
//! A change builds a new [`AppRegistry`] and swaps it in under a short write lock; lookups take
//! the read lock only to clone an `Arc`. A replaced app keeps its channels and connections (the
//! new version shares them, see [`App::succeeding`]); sessions keep the version they connected
//! with, so a changed limit applies to new connections. Connections the change leaves without an
//! app are asked to close, with the reason their protocol gives for it (Pusher 4001 or 4003).

use std::sync::Arc;

use super::Hub;
use crate::app::{App, AppConfig, AppRegistry, DuplicateApp};
use crate::outbox::CloseRequest;

/// What [`Hub::upsert_app`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppChange {
    /// The app is new.
    Added,
    /// The app's settings changed; its connections stay unless the change closed them.
    Replaced,
    /// The settings are those the app already has: nothing was swapped.
    Unchanged,
}

impl Hub {
    /// The apps served now: a snapshot, unaffected by later changes.
    pub fn apps(&self) -> Arc<AppRegistry> {
        Arc::clone(&self.apps.read())
    }

    /// The app with this key (WebSocket path, signatures).
    pub fn app_by_key(&self, key: &str) -> Option<Arc<App>> {
        self.apps.read().by_key(key).cloned()
    }

    /// The app with this id (HTTP API paths, WAMP realms, cluster envelopes).
    pub fn app_by_id(&self, id: &str) -> Option<Arc<App>> {
        self.apps.read().by_id(id).cloned()
    }

    /// Adds the app, or replaces the app with its id. A replaced app keeps its channels and
    /// connections, except that disabling it closes them with [`CloseRequest::AppDisabled`]
    /// and changing its key closes them with [`CloseRequest::AppRemoved`] (their key is gone).
    ///
    /// # Errors
    /// When another app has the key; nothing changes then.
    pub fn upsert_app(&self, config: AppConfig) -> Result<(Arc<App>, AppChange), DuplicateApp> {
        let (app, previous) = {
            let mut apps = self.apps.write();
            if let Some(same) = apps.by_id(&config.id).filter(|a| a.config == config) {
                return Ok((Arc::clone(same), AppChange::Unchanged));
            }
            let (next, app, previous) = apps.upserted(config)?;
            *apps = Arc::new(next);
            (app, previous)
        };
        let Some(previous) = previous else { return Ok((app, AppChange::Added)) };
        // Outside the registry's lock: closing touches every member's outbox.
        if previous.config.key != app.config.key {
            app.close_connections(CloseRequest::AppRemoved);
        } else if !app.config.enabled && previous.config.enabled {
            app.close_connections(CloseRequest::AppDisabled);
        }
        Ok((app, AppChange::Replaced))
    }

    /// Removes the app with this id and asks its connections to close with
    /// [`CloseRequest::AppRemoved`]; returns it, or `None` when there was none.
    pub fn remove_app(&self, id: &str) -> Option<Arc<App>> {
        let app = {
            let mut apps = self.apps.write();
            let (next, app) = apps.removed(id)?;
            *apps = Arc::new(next);
            app
        };
        app.close_connections(CloseRequest::AppRemoved);
        Some(app)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use herald_protocol::pusher::channel_name::ChannelName;

    use super::AppChange;
    use crate::app::{App, AppConfig, AppRegistry, ConnectionSlot};
    use crate::backend::LocalBackend;
    use crate::conn::Conn;
    use crate::hub::Hub;
    use crate::outbox::{CloseRequest, OutboxLimits};
    use crate::wire::Wire;

    fn config(id: &str, key: &str) -> AppConfig {
        AppConfig { id: id.into(), key: key.into(), secret: "s".into(), ..AppConfig::default() }
    }

    /// The close request waiting in `conn`'s outbox, if any.
    fn close_of(conn: &Conn) -> Option<CloseRequest> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match conn.outbox.poll_close(&mut cx) {
            std::task::Poll::Ready(why) => Some(why),
            std::task::Poll::Pending => None,
        }
    }

    /// A connection of `app` holding its place.
    fn member(hub: &Hub, app: &Arc<App>) -> (Arc<Conn>, ConnectionSlot) {
        let slot = app.try_connect().expect("place");
        let conn = hub.connect(Wire::Pusher);
        slot.attach(&conn);
        (conn, slot)
    }

    fn hub() -> Hub {
        let apps = AppRegistry::new(vec![config("1", "k1")]).expect("apps");
        Hub::new(apps, Arc::new(LocalBackend), OutboxLimits::default())
    }

    /// A replaced app keeps its subscribers: a publication through the new version reaches a
    /// connection that joined through the old one.
    #[test]
    fn replacing_an_app_keeps_its_channels_and_connections() {
        let hub = hub();
        let old = hub.app_by_id("1").expect("app");
        let (conn, slot) = member(&hub, &old);
        let channel = ChannelName::parse("news", 200).expect("name");
        hub.subscribe(&old, &conn, &channel, None, |_| {}).expect("subscribed");

        let changed = AppConfig { enable_client_messages: true, ..config("1", "k1") };
        let (new, change) = hub.upsert_app(changed).expect("upsert");
        assert_eq!(change, AppChange::Replaced);
        assert!(new.same_app(&old) && new.config.enable_client_messages);
        assert_eq!(new.connection_count(), 1);
        assert_eq!(hub.subscription_totals(&new), (1, 1));
        assert_eq!(close_of(&conn), None, "a change of settings closes nobody");
        let same = hub.upsert_app(new.config.clone()).expect("upsert");
        assert_eq!(same.1, AppChange::Unchanged);
        drop(slot);
        assert_eq!(new.connection_count(), 0);
    }

    #[test]
    fn disabling_removing_or_rekeying_closes_the_apps_connections() {
        let hub = hub();
        let app = hub.app_by_id("1").expect("app");
        let (disabled, _slot) = member(&hub, &app);
        hub.upsert_app(AppConfig { enabled: false, ..config("1", "k1") }).expect("upsert");
        assert_eq!(close_of(&disabled), Some(CloseRequest::AppDisabled));

        let app = hub.app_by_id("1").expect("app");
        let (rekeyed, _slot) = member(&hub, &app);
        hub.upsert_app(config("1", "k1-new")).expect("upsert");
        assert_eq!(close_of(&rekeyed), Some(CloseRequest::AppRemoved));
        assert!(hub.app_by_key("k1").is_none() && hub.app_by_key("k1-new").is_some());

        let app = hub.app_by_id("1").expect("app");
        let (removed, slot) = member(&hub, &app);
        slot.detach(&removed);
        drop(slot);
        let (kept, _slot) = member(&hub, &app);
        assert!(hub.remove_app("1").is_some());
        assert_eq!(close_of(&kept), Some(CloseRequest::AppRemoved));
        assert_eq!(close_of(&removed), None, "a connection that left is no member");
        assert!(hub.app_by_id("1").is_none() && hub.remove_app("1").is_none());
    }

    #[test]
    fn a_key_held_by_another_app_is_refused_and_nothing_changes() {
        let hub = hub();
        let err = hub.upsert_app(config("2", "k1")).expect_err("duplicate key");
        assert_eq!(err.field, "key");
        assert!(hub.app_by_id("2").is_none());
        assert_eq!(hub.app_by_key("k1").expect("app").config.id, "1");
        let (_, change) = hub.upsert_app(config("2", "k2")).expect("upsert");
        assert_eq!(change, AppChange::Added);
        assert_eq!(hub.apps().len(), 2);
    }
}
