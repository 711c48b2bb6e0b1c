//! Validated Pusher channel names and their kind, derived from the name prefix (Pusher's "Channels" docs).
//!
//! After [`ChannelName::parse`] nothing else should look at prefixes: ask [`ChannelName::kind`].
//! Whether a given socket may use a channel (auth, sign-in) is not decided here.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

use super::ProtocolError;

/// herald's default channel-name length limit: pusher-http-node's 200 rather than the docs' 164,
/// so names accepted by the official server libraries are never refused.
pub const DEFAULT_MAX_LEN: usize = 200;

/// The only `#` channel that exists (server-to-user messages, for signed-in users).
const SERVER_TO_USER_PREFIX: &str = "#server-to-user-";

/// A channel name that passed [`ChannelName::parse`]. Cheap to clone (shared string).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ChannelName(Arc<str>);

/// Who may subscribe to a channel, by name prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// No prefix (or `cache-`): anyone may subscribe.
    Public,
    /// `private-`: a socket signature is required.
    Private,
    /// `private-encrypted-`: signed; payloads are end-to-end encrypted, the server never decrypts.
    PrivateEncrypted,
    /// `presence-`: signed with `channel_data` naming the member.
    Presence,
    /// `#server-to-user-<id>`: only a socket signed in as `<id>` may subscribe.
    ServerToUser,
}

/// Access class plus whether the channel is a cache channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChannelKind {
    /// Who may subscribe.
    pub access: Access,
    /// `cache-`, `private-cache-`, `private-encrypted-cache-` or `presence-cache-`: the last event
    /// is kept and replayed to new subscribers.
    pub cache: bool,
}

/// Prefixes in match order: longer prefixes that share a start with shorter ones come first.
const PREFIXES: [(&str, Access, bool); 7] = [
    ("private-encrypted-cache-", Access::PrivateEncrypted, true),
    ("private-encrypted-", Access::PrivateEncrypted, false),
    ("private-cache-", Access::Private, true),
    ("private-", Access::Private, false),
    ("presence-cache-", Access::Presence, true),
    ("presence-", Access::Presence, false),
    ("cache-", Access::Public, true),
];

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'=' | b'@' | b',' | b'.' | b';')
}

impl ChannelName {
    /// Validates a channel name: one or more of `[A-Za-z0-9_\-=@,.;]`, at most
    /// `max_len` characters; a leading `#` is allowed only as `#server-to-user-<id>` with a
    /// non-empty `<id>` from the same character set. herald's default limit is
    /// [`DEFAULT_MAX_LEN`].
    ///
    /// # Errors
    /// [`ProtocolError::InvalidChannelName`] for an empty name or a foreign character,
    /// [`ProtocolError::ReservedChannelName`] for any other `#` name,
    /// [`ProtocolError::ChannelNameTooLong`] past `max_len`.
    pub fn parse(s: &str, max_len: usize) -> Result<ChannelName, ProtocolError> {
        let body = match s.strip_prefix('#') {
            Some(_) => match s.strip_prefix(SERVER_TO_USER_PREFIX) {
                Some(id) if !id.is_empty() => id,
                _ => return Err(ProtocolError::ReservedChannelName),
            },
            None => s,
        };
        if body.is_empty() || !body.bytes().all(is_name_byte) {
            return Err(ProtocolError::InvalidChannelName);
        }
        // Every accepted byte is ASCII, so the byte length is the character count.
        if s.len() > max_len {
            return Err(ProtocolError::ChannelNameTooLong { len: s.len(), max: max_len });
        }
        Ok(ChannelName(Arc::from(s)))
    }

    /// A hub name for a WAMP topic URI, which may hold characters Pusher names cannot (`/`,
    /// `:`, `#`...). The WAMP adapters validate URIs with their own rules first; this only
    /// bounds the length and refuses empty names and control characters. `kind()` still reads
    /// the Pusher prefixes, so adapters can keep WAMP out of signed Pusher channels.
    ///
    /// # Errors
    /// [`ProtocolError::InvalidChannelName`] for an empty name or a control character,
    /// [`ProtocolError::ChannelNameTooLong`] past `max_len` bytes.
    pub fn topic(s: &str, max_len: usize) -> Result<ChannelName, ProtocolError> {
        if s.is_empty() || s.chars().any(char::is_control) {
            return Err(ProtocolError::InvalidChannelName);
        }
        if s.len() > max_len {
            return Err(ProtocolError::ChannelNameTooLong { len: s.len(), max: max_len });
        }
        Ok(ChannelName(Arc::from(s)))
    }

    /// The name as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The channel's access class and cache flag, from its prefix.
    pub fn kind(&self) -> ChannelKind {
        if self.0.starts_with(SERVER_TO_USER_PREFIX) {
            return ChannelKind { access: Access::ServerToUser, cache: false };
        }
        PREFIXES.iter().find(|(prefix, _, _)| self.0.starts_with(prefix)).map_or(
            ChannelKind { access: Access::Public, cache: false },
            |&(_, access, cache)| ChannelKind { access, cache },
        )
    }

    /// The user id of a `#server-to-user-<id>` channel, `None` for every other channel.
    pub fn server_to_user_id(&self) -> Option<&str> {
        self.0.strip_prefix(SERVER_TO_USER_PREFIX)
    }

    /// Whether `client-*` events may be sent on this channel: private and presence
    /// channels, cache variants included, but not `private-encrypted-*` (the server cannot
    /// check what it cannot read, and pusher-js refuses them there anyway).
    pub fn allows_client_events(&self) -> bool {
        matches!(self.kind().access, Access::Private | Access::Presence)
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Borrow<str> for ChannelName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for ChannelName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests;
