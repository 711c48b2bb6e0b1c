//! The EspoCRM app's authorizer: what sessions that did not come through the EspoCRM listener
//! (Pusher and WAMP v2 on the main listener, a plain `wamp1` listener of the app) may do with
//! EspoCRM's topics.
//!
//! Such a session has no EspoCRM identity: no `authToken` was checked, so no `AclCheck` can be
//! run for it. It gets what EspoCRM's checks grant without a user, and only when the operator
//! shares the app (`share_broadcasts`): subscriptions to categories without an access check.
//! Nobody but EspoCRM (its ZeroMQ ingress, or the HTTP API signed with the app secret) sends
//! into EspoCRM's topics. The EspoCRM listener's own sessions never ask this authorizer: they
//! run EspoCRM's checks themselves.

use herald_core::Conn;
use herald_core::authorize::{Action, Authorizer};

use super::categories::Categories;

/// EspoCRM's rules for sessions without an EspoCRM identity.
#[derive(Debug)]
pub(crate) struct Policy {
    categories: Categories,
    share_broadcasts: bool,
}

impl Policy {
    /// The policy of an EspoCRM app with these categories.
    pub(crate) fn new(categories: Categories, share_broadcasts: bool) -> Self {
        Self { categories, share_broadcasts }
    }
}

impl Authorizer for Policy {
    fn authorize(&self, _conn: &Conn, action: Action, uri: &str) -> bool {
        action == Action::Subscribe && self.share_broadcasts && self.categories.is_broadcast(uri)
    }

    fn covers_pusher(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use herald_core::conn::{ConnIds, Wire};
    use herald_core::OutboxLimits;

    use super::*;

    fn conn() -> Conn {
        let (id, sid) = ConnIds::new().next();
        Conn::new(id, sid, Wire::Pusher, OutboxLimits::default())
    }

    #[test]
    fn unshared_app_refuses_everything() {
        let p = Policy::new(Categories::built_in(), false);
        let c = conn();
        for action in [Action::Subscribe, Action::Publish, Action::Register, Action::Call] {
            assert!(!p.authorize(&c, action, "appParamsUpdate"), "{action:?}");
        }
        assert!(p.covers_pusher());
    }

    #[test]
    fn shared_app_allows_reading_unchecked_categories_only() {
        let p = Policy::new(Categories::built_in(), true);
        let c = conn();
        assert!(p.authorize(&c, Action::Subscribe, "appParamsUpdate"));
        assert!(p.authorize(&c, Action::Subscribe, "popupNotifications.event"));
        for topic in ["recordUpdate.Account.a1", "streamUpdate.Lead.l1", "calendarUpdate", "private-x", "other"] {
            assert!(!p.authorize(&c, Action::Subscribe, topic), "{topic}");
        }
        for action in [Action::Publish, Action::Register, Action::Call] {
            assert!(!p.authorize(&c, action, "appParamsUpdate"), "{action:?}");
        }
    }
}
