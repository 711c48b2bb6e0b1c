//! Members of a presence channel: distinct users, however many sockets each has open.
//!
//! Pusher counts users, not sockets: `member_added` goes out for a user's first socket and
//! `member_removed` for its last (Pusher's "Presence channels" docs).
//!
//! When nodes share state, a user may be present through sockets on other nodes only. The
//! cluster then says who is a member (`cluster` below, set and cleared by the backend) and this
//! node adds what it knows first: its own sockets. A member is listed while it has a socket
//! here or the cluster counts it.

use std::collections::HashMap;

use serde_json::value::RawValue;

/// One user present in a channel.
#[derive(Debug)]
pub struct Member {
    /// The `user_info` given at the user's first subscription.
    pub info: Option<Box<RawValue>>,
    /// Sockets of this user subscribed to the channel on this node.
    sockets: u32,
    /// Whether the cluster counts the user as a member (only when nodes share state).
    cluster: bool,
}

/// The members of one presence channel, in join order for stable listings.
#[derive(Debug, Default)]
pub struct Presence {
    members: HashMap<Box<str>, Member>,
    order: Vec<Box<str>>,
}

/// What a change did to the listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Change {
    /// The user's first socket on this node joined, or its last one here left.
    pub(crate) local: bool,
    /// The user entered or left the listing.
    pub(crate) listed: bool,
}

impl Presence {
    /// Number of distinct users.
    pub fn count(&self) -> usize {
        self.order.len()
    }

    /// Whether `user_id` is present.
    pub fn contains(&self, user_id: &str) -> bool {
        self.members.contains_key(user_id)
    }

    /// Members in join order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, Option<&RawValue>)> {
        self.order.iter().map(move |id| {
            let info = self.members.get(id).and_then(|m| m.info.as_deref());
            (&**id, info)
        })
    }

    /// The `user_info` of a member.
    pub(crate) fn info_of(&self, user_id: &str) -> Option<&RawValue> {
        self.members.get(user_id).and_then(|m| m.info.as_deref())
    }

    /// Users with a socket on this node.
    pub(crate) fn local_users(&self) -> impl Iterator<Item = &str> {
        self.order.iter().filter(|id| self.members.get(*id).is_some_and(|m| m.sockets > 0)).map(|id| &**id)
    }

    /// Adds one socket of `user_id` on this node.
    pub(crate) fn join(&mut self, user_id: &str, info: Option<Box<RawValue>>) -> Change {
        if let Some(m) = self.members.get_mut(user_id) {
            m.sockets += 1;
            return Change { local: m.sockets == 1, listed: false };
        }
        self.members.insert(user_id.into(), Member { info, sockets: 1, cluster: false });
        self.order.push(user_id.into());
        Change { local: true, listed: true }
    }

    /// Removes one socket of `user_id` on this node. The user stays listed while the cluster
    /// counts it (`leave` then reports `listed: false`).
    pub(crate) fn leave(&mut self, user_id: &str) -> Change {
        let Some(m) = self.members.get_mut(user_id) else { return Change { local: false, listed: false } };
        m.sockets = m.sockets.saturating_sub(1);
        if m.sockets > 0 {
            return Change { local: false, listed: false };
        }
        if m.cluster {
            return Change { local: true, listed: false };
        }
        self.remove(user_id);
        Change { local: true, listed: true }
    }

    /// The cluster counts `user_id` as a member; true when it did not before (so this node's
    /// subscribers have not been told yet: a socket of the user here joined unannounced).
    pub(crate) fn cluster_add(&mut self, user_id: &str, info: Option<Box<RawValue>>) -> bool {
        if let Some(m) = self.members.get_mut(user_id) {
            let news = !m.cluster;
            m.cluster = true;
            if m.info.is_none() {
                m.info = info;
            }
            return news;
        }
        self.members.insert(user_id.into(), Member { info, sockets: 0, cluster: true });
        self.order.push(user_id.into());
        true
    }

    /// The cluster no longer counts `user_id`; true when it left the listing (a socket of the
    /// user here keeps it listed: its own leave is on its way to the cluster).
    pub(crate) fn cluster_remove(&mut self, user_id: &str) -> bool {
        let Some(m) = self.members.get_mut(user_id) else { return false };
        m.cluster = false;
        if m.sockets > 0 {
            return false;
        }
        self.remove(user_id);
        true
    }

    /// Users the cluster counts that are not in `keep`: for a reset of the cluster's view.
    pub(crate) fn cluster_users_except(&self, keep: &dyn Fn(&str) -> bool) -> Vec<Box<str>> {
        self.members.iter().filter(|(id, m)| m.cluster && !keep(id)).map(|(id, _)| id.clone()).collect()
    }

    fn remove(&mut self, user_id: &str) {
        self.members.remove(user_id);
        self.order.retain(|id| &**id != user_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_with_two_sockets_is_one_member() {
        let mut p = Presence::default();
        assert_eq!(p.join("1", None), Change { local: true, listed: true });
        assert_eq!(p.join("1", None), Change { local: false, listed: false });
        assert!(p.join("2", None).listed);
        assert_eq!(p.count(), 2);
        assert_eq!(p.leave("1"), Change { local: false, listed: false }, "one socket of user 1 remains");
        assert_eq!(p.count(), 2);
        assert_eq!(p.leave("1"), Change { local: true, listed: true });
        assert_eq!(p.iter().map(|(id, _)| id).collect::<Vec<_>>(), vec!["2"]);
    }

    #[test]
    fn a_member_the_cluster_counts_stays_listed_after_its_local_sockets_leave() {
        let mut p = Presence::default();
        assert!(p.cluster_add("remote", None), "present on another node only");
        assert!(p.join("1", None).listed);
        assert!(p.cluster_add("1", None), "listed through its socket here, news to the cluster's view");
        assert!(!p.cluster_add("1", None), "told once");
        assert_eq!(p.leave("1"), Change { local: true, listed: false }, "the cluster still counts it");
        assert_eq!(p.count(), 2);
        assert!(p.cluster_remove("1"));
        assert_eq!(p.local_users().count(), 0);
        assert_eq!(p.iter().map(|(id, _)| id).collect::<Vec<_>>(), vec!["remote"]);
        assert_eq!(p.cluster_users_except(&|_| false), vec![Box::<str>::from("remote")]);
    }

    #[test]
    fn a_cluster_removal_keeps_a_user_that_rejoined_here() {
        let mut p = Presence::default();
        p.cluster_add("1", None);
        p.join("1", None);
        assert!(!p.cluster_remove("1"), "its socket here keeps it listed");
        assert!(p.contains("1"));
    }
}
