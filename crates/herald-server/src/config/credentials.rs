//! App credentials: the `PUSHER_APP_*` variables (and Reverb's and Soketi's sets), which only
//! make sense as a set, and secrets that are placeholders rather than secrets.
//!
//! A secret signs every HTTP API publish and every private-channel authorisation, so a
//! guessable one hands the app to anyone who can reach the port. herald refuses to start with
//! one instead of warning: a warning scrolls by, a refusal gets fixed.

/// The variables a Laravel `.env` names the app with, in the order they are reported.
pub(super) const PUSHER_VARS: [&str; 3] = ["PUSHER_APP_ID", "PUSHER_APP_KEY", "PUSHER_APP_SECRET"];

/// Shortest secret accepted, in bytes. `openssl rand -hex 32` gives 64.
pub(super) const MIN_SECRET_BYTES: usize = 16;

/// Why a set of credential variables cannot be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(super) enum EnvCredentialsError {
    /// Some of the three are set and some are not.
    #[error("missing: {} are used together, and only {} is set", .all.join(", "), .set.join(" and "))]
    Partial {
        /// The three variables of the set.
        all: [&'static str; 3],
        /// The variables that are missing, comma-separated (the config key of the error).
        missing: String,
        /// The variables that are set.
        set: Vec<&'static str>,
    },
}

/// The app named by the set `vars` (id, key, secret): `Ok(None)` when none of the three is set.
///
/// # Errors
/// [`EnvCredentialsError::Partial`] naming the missing variables.
pub(super) fn from_env(
    vars: [&'static str; 3],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<(String, String, String)>, EnvCredentialsError> {
    let [id, key, secret] = vars.map(env);
    match (id, key, secret) {
        (None, None, None) => Ok(None),
        (Some(id), Some(key), Some(secret)) => Ok(Some((id, key, secret))),
        (id, key, secret) => {
            let present = [id.is_some(), key.is_some(), secret.is_some()];
            let pick = |want: bool| -> Vec<&'static str> {
                vars.iter().zip(present).filter(|(_, p)| *p == want).map(|(v, _)| *v).collect()
            };
            Err(EnvCredentialsError::Partial { all: vars, missing: pick(false).join(", "), set: pick(true) })
        }
    }
}

/// What is wrong with `secret`, or `None` when it may be used.
///
/// Refused: empty, shorter than [`MIN_SECRET_BYTES`], `secret`, or anything containing a
/// "change me" marker in any case and spelling, so that a copied example with a long
/// placeholder (`CHANGE-ME-to-something-random`) does not start either.
pub(super) fn weak_secret(secret: &str) -> Option<String> {
    let folded: String = secret.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
    if secret.is_empty() {
        return Some("is empty; generate one with `openssl rand -hex 32`".to_owned());
    }
    if folded.contains("changeme") || folded == "secret" {
        return Some("is a placeholder; replace it with a random value (`openssl rand -hex 32`)".to_owned());
    }
    if secret.len() < MIN_SECRET_BYTES {
        return Some(format!(
            "is {} bytes, shorter than the {MIN_SECRET_BYTES} required; generate one with `openssl rand -hex 32`",
            secret.len()
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn placeholders_and_short_secrets_are_refused() {
        for bad in
            ["", "CHANGE-ME", "changeme", "Change-Me", "change_me", "secret", "SECRET", "app-secret", "0123456789abcde"]
        {
            assert!(weak_secret(bad).is_some(), "{bad:?}");
        }
        assert!(weak_secret("CHANGE-ME-to-a-long-random-value").is_some());
        assert!(weak_secret("0123456789abcdef").is_none());
        assert!(weak_secret("a-long-enough-random-secret").is_none());
    }

    #[test]
    fn the_pusher_variables_go_together() {
        assert_eq!(from_env(PUSHER_VARS, &env(&[])), Ok(None));
        let all = [("PUSHER_APP_ID", "1"), ("PUSHER_APP_KEY", "k"), ("PUSHER_APP_SECRET", "s")];
        assert_eq!(from_env(PUSHER_VARS, &env(&all)), Ok(Some(("1".into(), "k".into(), "s".into()))));
        let Err(EnvCredentialsError::Partial { missing, .. }) = from_env(PUSHER_VARS, &env(&all[..1])) else {
            panic!("a partial set must be refused");
        };
        assert_eq!(missing, "PUSHER_APP_KEY, PUSHER_APP_SECRET");
        let Err(EnvCredentialsError::Partial { missing, .. }) = from_env(PUSHER_VARS, &env(&all[..2])) else {
            panic!("a partial set must be refused");
        };
        assert_eq!(missing, "PUSHER_APP_SECRET");
    }
}
