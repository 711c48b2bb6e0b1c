//! How a drop-in profile ends a connection where the PHP daemon's own code calls
//! `$conn->close()`: EspoCRM on a refused token, a PUBLISH or a CALL; Oro on a bad ticket.
//!
//! Ratchet's `WampConnection::close()` hands `null` on to `WsConnection::close()`, which packs
//! it as status 0: the close frame is `88 02 00 00`, a code RFC 6455 does not allow, and browsers
//! are expected to treat it as a lost connection and reconnect. herald sends those bytes by
//! default (`application_close = "status-0"`) and can send a 1000 close or a bare FIN instead.

use bytes::Bytes;
use herald_protocol::ws;
use serde::{Deserialize, Deserializer};

/// The close frame of an application-level close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AppClose {
    /// Ratchet's bytes: a close frame with status 0 (`88 02 00 00`), then FIN.
    Status0,
    /// A close frame with 1000.
    Normal,
    /// No close frame, only FIN.
    Fin,
}

impl AppClose {
    /// Every style.
    const ALL: [AppClose; 3] = [AppClose::Status0, AppClose::Normal, AppClose::Fin];

    /// The config value naming this style (`application_close`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            AppClose::Status0 => "status-0",
            AppClose::Normal => "normal",
            AppClose::Fin => "fin",
        }
    }

    /// The style a config value names, if any.
    pub(crate) fn from_name(name: &str) -> Option<AppClose> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Why a config value is refused.
    pub(crate) fn unknown(name: &str) -> String {
        format!("{name:?} is not \"status-0\", \"normal\" or \"fin\"")
    }

    /// The close frame to send, or `None` for a bare FIN.
    pub(crate) fn frame(self) -> Option<Bytes> {
        match self {
            // Status 0 on purpose, though no peer accepts it: it is what Ratchet sends.
            AppClose::Status0 => Some(ws::encode_close(0, "")),
            AppClose::Normal => Some(ws::encode_close(1000, "")),
            AppClose::Fin => None,
        }
    }
}

impl<'de> Deserialize<'de> for AppClose {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        AppClose::from_name(&name).ok_or_else(|| serde::de::Error::custom(AppClose::unknown(&name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_status_0_is_ratchets_bytes() {
        for style in AppClose::ALL {
            assert_eq!(AppClose::from_name(style.name()), Some(style));
        }
        assert_eq!(AppClose::from_name("status0"), None);
        assert_eq!(AppClose::Status0.frame().as_deref(), Some(&[0x88, 0x02, 0x00, 0x00][..]));
        assert_eq!(AppClose::Fin.frame(), None);
    }

    #[test]
    fn deserializes_from_the_documented_names() {
        #[derive(Deserialize)]
        struct File {
            application_close: AppClose,
        }
        let file: File = toml::from_str(r#"application_close = "status-0""#).unwrap();
        assert_eq!(file.application_close, AppClose::Status0);
        assert!(toml::from_str::<File>(r#"application_close = "slam""#).is_err());
    }
}
