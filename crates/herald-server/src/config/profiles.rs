//! The drop-in profiles' sections (`[espocrm]`, `[oro]`) turned into listeners: each profile
//! parses its own keys (`profile/*/settings.rs`, plain data like this module), and here they get
//! their TLS files and their errors the shape of every other configuration error.

use herald_core::AppConfig;

use super::layers::Sources;
use super::{ConfigError, ListenerSettings, Profile, ops};
use crate::cli::ServeArgs;
use crate::profile::espo::categories::Categories;
use crate::profile::espo::settings::{EspoProfile, EspoSettings};
use crate::profile::oro::settings::{self as oro_settings, OroFile};
use crate::tls::{Passphrase, TlsFiles};

/// The EspoCRM listener from the `[espocrm]` section; `origin` names the config file.
///
/// # Errors
/// [`ConfigError::Invalid`] naming the key (or `ESPOCRM_CONFIG_*` variable) at fault.
pub(super) fn espo(
    table: toml::Table,
    apps: &mut [AppConfig],
    origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ListenerSettings, ConfigError> {
    let ids: Vec<&str> = apps.iter().map(|a| a.id.as_str()).collect();
    let invalid =
        |origin: &str, key: String, problem: String| ConfigError::Invalid { origin: origin.to_owned(), key, problem };
    let settings = EspoSettings::from_table(table, &ids, env)
        .map_err(|e| invalid(if e.from_env { "environment" } else { origin }, e.key, e.problem))?;
    let categories = Categories::load(&settings.root, settings.categories.as_ref())
        .map_err(|e| invalid(origin, "espocrm.categories".into(), e.to_string()))?;
    // The app belongs to the profile: Pusher and WAMP v2 clients of the main listener have no
    // EspoCRM identity, so they do not even find the app unless the operator shares it.
    if let Some(app) = apps.iter_mut().find(|a| a.id == settings.app) {
        app.profile_only = !settings.share_broadcasts;
    }
    // Native TLS (`webSocketUseSecureServer`) through the listeners' TLS support. PHP's
    // `local_cert` may hold the key too, so without `webSocketSslCertificateLocalPrivateKey` the
    // key is read from the certificate file. `webSocketSslAllowSelfSigned` concerns verifying
    // peers, which a server without client certificates never does.
    let tls = settings.tls.as_ref().map(|t| TlsFiles {
        cert: t.cert.clone(),
        key: t.key.clone().unwrap_or_else(|| t.cert.clone()),
        passphrase: t.passphrase.clone().map(Passphrase::new),
    });
    Ok(ListenerSettings {
        host: settings.host.clone(),
        port: settings.port,
        tls,
        profile: Profile::Espo(std::sync::Arc::new(EspoProfile { settings, categories })),
    })
}

/// The Oro listener when the profile is on (`--profile oro` or `[oro]`), adding the Oro app to
/// `apps` when no `[[apps]]` entry has its id.
///
/// # Errors
/// [`ConfigError::Invalid`] naming the variable or key at fault.
pub(super) fn oro(
    args: &ServeArgs,
    file: Option<&OroFile>,
    sources: &Sources,
    env: &dyn Fn(&str) -> Option<String>,
    apps: &mut Vec<AppConfig>,
) -> Result<Option<ListenerSettings>, ConfigError> {
    let configured = oro_settings::configure(args, file, &sources.origin(), env, apps)
        .map_err(|e| ConfigError::Invalid { origin: e.origin, key: e.key, problem: e.problem })?;
    let Some(l) = configured else { return Ok(None) };
    let tls = match file {
        Some(f) => ops::tls_files(f.tls_cert.clone(), f.tls_key.clone(), f.tls_passphrase.clone(), sources, "oro")?,
        None => None,
    };
    Ok(Some(ListenerSettings {
        host: l.host,
        port: l.port,
        profile: Profile::Oro(std::sync::Arc::new(l.settings)),
        tls,
    }))
}
