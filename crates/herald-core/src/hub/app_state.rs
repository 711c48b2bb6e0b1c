//! The live state of one app, owned by the hub: channels and their presence members,
//! signed-in users, cached events, WAMP pattern subscriptions and the WAMP dealer.
//!
//! An [`App`](crate::App) carries its `AppState` behind a handle that every version of the app
//! shares, so a publish or a subscribe finds it with no lock or lookup, and replacing an app's
//! settings keeps its channels.

use parking_lot::{Mutex, RwLock};

use super::cache::CacheStore;
use super::channels::ChannelShards;
use super::dealer::Dealer;
use super::pattern::Patterns;
use super::retained::RetainedStore;
use super::users::UserIndex;
use crate::history::HistoryStore;

/// Everything of one app that changes while it runs. Each part has its own lock, so a
/// publication, a sign-in and an RPC call of the same app never wait for each other.
#[derive(Debug, Default)]
pub(crate) struct AppState {
    /// Channel name -> subscribers, sharded to keep lock hold times short.
    pub(super) channels: ChannelShards,
    /// Signed-in users, their connections and watchlists.
    pub(super) users: Mutex<UserIndex>,
    /// Last event of each cache channel.
    pub(super) cache: Mutex<CacheStore>,
    /// WAMP v2 prefix and wildcard subscriptions.
    pub(super) patterns: RwLock<Patterns>,
    /// WAMP v2 procedures and calls in flight.
    pub(super) dealer: Mutex<Dealer>,
    /// The retained event of each channel (WAMP v2 `retain`).
    pub(super) retained: Mutex<RetainedStore>,
    /// Held publications of the channels with history.
    pub(super) history: HistoryStore,
}
