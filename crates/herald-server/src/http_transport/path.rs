//! The URLs of pusher-js's HTTP transports.
//!
//! pusher-js builds them as `{httpPath}/app/{key}/{server}/{session}/{kind}?…`, with `httpPath`
//! `/pusher` unless configured, `server` a number below 1000 and `session` eight base-32 digits
//! it picks per connection attempt.

/// What a request to an HTTP transport URL asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The long-lived receive request of `xhr_streaming`.
    Streaming,
    /// One receive request of `xhr_polling`, answered as soon as something is queued.
    Polling,
    /// Messages from the client (`xhr_send`).
    Send,
    /// A Server-Sent Events stream (`GET /apps/{key}/events`).
    Sse,
}

/// A parsed transport URL.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Target<'a> {
    /// The app key.
    pub(crate) key: &'a str,
    /// `{server}/{session}`, the session's name within the app.
    pub(crate) session: &'a str,
    /// What the request is for.
    pub(crate) kind: Kind,
}

/// Where the transports are mounted (pusher-js's default `httpPath`).
pub(crate) const MOUNT: &str = "/pusher/app/";

/// Longest session name accepted (pusher-js sends at most 3 + 1 + 8 characters).
const MAX_SESSION: usize = 64;

/// Parses `/pusher/app/{key}/{server}/{session}/{kind}`, or says why not.
pub(crate) fn parse(path: &str) -> Result<Target<'_>, &'static str> {
    let rest = path.strip_prefix(MOUNT).ok_or("Not found")?;
    let mut parts = rest.split('/');
    let (Some(key), Some(server), Some(session), Some(kind), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("Expected /pusher/app/{key}/{server}/{session}/{xhr_streaming|xhr|xhr_send}");
    };
    let kind = match kind {
        "xhr_streaming" => Kind::Streaming,
        "xhr" => Kind::Polling,
        "xhr_send" => Kind::Send,
        _ => return Err("Unknown transport: expected xhr_streaming, xhr or xhr_send"),
    };
    let name_ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if key.is_empty() || key.len() > 128 {
        return Err("Bad app key");
    }
    if !name_ok(server) || !name_ok(session) || server.len() + session.len() + 1 > MAX_SESSION {
        return Err("Bad session name: expected {server}/{session} of letters and digits");
    }
    // `server/session` is one slice of the path: both parts are adjacent.
    let start = MOUNT.len() + key.len() + 1;
    let name = path.get(start..start + server.len() + 1 + session.len()).ok_or("Bad session name")?;
    Ok(Target { key, session: name, kind })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_pusher_js_sends() {
        let t = parse("/pusher/app/k3y/123/abcdefgh/xhr_streaming").unwrap();
        assert_eq!(t, Target { key: "k3y", session: "123/abcdefgh", kind: Kind::Streaming });
        assert_eq!(parse("/pusher/app/k/1/a/xhr").unwrap().kind, Kind::Polling);
        assert_eq!(parse("/pusher/app/k/1/a/xhr_send").unwrap().kind, Kind::Send);
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "/pusher/app/",
            "/pusher/app/k",
            "/pusher/app/k/1/a",
            "/pusher/app/k/1/a/xhr/extra",
            "/pusher/app//1/a/xhr",
            "/pusher/app/k//a/xhr",
            "/pusher/app/k/1//xhr",
            "/pusher/app/k/1/a/websocket",
            "/pusher/app/k/1/a%2F/xhr",
            "/pusher/app/k/1/../xhr",
            "/pusher/ap/k/1/a/xhr",
            "/app/k/1/a/xhr",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let long = format!("/pusher/app/k/1/{}/xhr", "a".repeat(100));
        assert!(parse(&long).is_err());
    }

    #[test]
    fn never_panics_on_noise() {
        // A cheap fuzz: every prefix and every byte flip of a valid path.
        let valid = "/pusher/app/key/999/abcdefgh/xhr_send";
        for i in 0..=valid.len() {
            let _ = parse(&valid[..i]);
        }
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut bytes = valid.as_bytes().to_vec();
            let at = (seed as usize) % bytes.len();
            bytes[at] = b"/a%.\0_-x9\xff"[(seed >> 32) as usize % 10];
            if let Ok(s) = std::str::from_utf8(&bytes) {
                let _ = parse(s);
            }
        }
    }
}
