//! Members of a presence channel: distinct users, however many sockets each has open.
//!
//! Pusher counts users, not sockets: `member_added` goes out for a user's first socket and
//! `member_removed` for its last (Pusher's "Presence channels" docs).

use std::collections::HashMap;

use serde_json::value::RawValue;

/// One user present in a channel.
#[derive(Debug)]
pub struct Member {
    /// The `user_info` given at the user's first subscription.
    pub info: Option<Box<RawValue>>,
    /// Sockets of this user subscribed to the channel.
    sockets: u32,
}

/// The members of one presence channel, in join order for stable listings.
#[derive(Debug, Default)]
pub struct Presence {
    members: HashMap<Box<str>, Member>,
    order: Vec<Box<str>>,
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

    /// Adds one socket of `user_id`; true when the user is new to the channel.
    pub(crate) fn join(&mut self, user_id: &str, info: Option<Box<RawValue>>) -> bool {
        if let Some(m) = self.members.get_mut(user_id) {
            m.sockets += 1;
            return false;
        }
        self.members.insert(user_id.into(), Member { info, sockets: 1 });
        self.order.push(user_id.into());
        true
    }

    /// Removes one socket of `user_id`; true when it was the user's last one.
    pub(crate) fn leave(&mut self, user_id: &str) -> bool {
        let Some(m) = self.members.get_mut(user_id) else { return false };
        m.sockets -= 1;
        if m.sockets > 0 {
            return false;
        }
        self.members.remove(user_id);
        self.order.retain(|id| &**id != user_id);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_with_two_sockets_is_one_member() {
        let mut p = Presence::default();
        assert!(p.join("1", None));
        assert!(!p.join("1", None));
        assert!(p.join("2", None));
        assert_eq!(p.count(), 2);
        assert!(!p.leave("1"), "one socket of user 1 remains");
        assert_eq!(p.count(), 2);
        assert!(p.leave("1"));
        assert_eq!(p.iter().map(|(id, _)| id).collect::<Vec<_>>(), vec!["2"]);
    }
}
