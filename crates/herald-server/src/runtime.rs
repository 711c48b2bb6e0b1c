//! The runtime objects the settings describe, built in one place once the ports are bound:
//! each listener's [`Serves`] (the EspoCRM profile's check runner, debug log and user index; the
//! Oro profile's rules, database client and origin list), the profiles' authorizers on their
//! apps, and the EspoCRM ZeroMQ ingress.
//!
//! The configuration (`config.rs`) stays plain data; this is where it comes alive, below the
//! code that serves (`listen.rs`, `http.rs`, `ws.rs`), which only reads what is built here.

use std::sync::Arc;

use herald_core::Hub;
use tokio::net::TcpListener;

use crate::config::Profile;
use crate::ingress::zmq::PullIngress;
use crate::profile::espo::EspoListener;
use crate::profile::oro::{Oro, OroError};

/// What a running listener serves: a [`Profile`] with its runtime objects.
#[derive(Debug)]
pub(crate) enum Serves {
    /// Pusher (`/app/{key}`), the Pusher HTTP API and WAMP v2 (realm = app id).
    Pusher,
    /// WAMP v1 for one app, on any path.
    Wamp1 {
        /// The app id the listener belongs to.
        app: String,
        /// Refuse upgrades that do not offer the `wamp` subprotocol (HTTP 426).
        strict_subprotocol: bool,
    },
    /// The EspoCRM profile, through hyper like the main listener.
    Espo(EspoListener),
    /// The Oro profile, through the edge's raw-head upgrade (101 + WELCOME in one write).
    Oro(Arc<Oro>),
}

/// A bound listener, what it serves and its label in the "listening" line.
pub(crate) type Bound = (TcpListener, Serves, Option<String>);

/// Builds what the listener bound on `port` serves.
///
/// # Errors
/// [`OroError`] when the Oro profile's app or routes cannot be used.
pub(crate) fn serves(profile: &Profile, hub: &Arc<Hub>, port: u16) -> Result<Serves, OroError> {
    Ok(match profile {
        Profile::Pusher => Serves::Pusher,
        Profile::Wamp1 { app, strict_subprotocol } => {
            Serves::Wamp1 { app: app.clone(), strict_subprotocol: *strict_subprotocol }
        }
        Profile::Espo(espo) => Serves::Espo(EspoListener::new(espo)),
        Profile::Oro(settings) => Serves::Oro(Oro::new(Arc::clone(settings), hub, port)?),
    })
}

/// Installs each profile's rules as the authorizer of its app, before any listener accepts a
/// connection: from the first session on, whoever reaches a profile's app without coming
/// through the profile's listener (Pusher, WAMP v2, a plain `wamp1` listener) is judged by them.
pub(crate) fn install_authorizers(hub: &Hub, listeners: &[Bound]) {
    for (_, serves, _) in listeners {
        match serves {
            Serves::Espo(listener) => {
                if let Some(app) = hub.app_by_id(listener.app()) {
                    app.set_authorizer(Arc::new(listener.0.policy()));
                }
            }
            Serves::Oro(oro) => oro.install_authorizer(),
            Serves::Pusher | Serves::Wamp1 { .. } => {}
        }
    }
}

/// An EspoCRM ZeroMQ endpoint that could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot bind {endpoint}: {source}")]
pub(crate) struct IngressError {
    /// The endpoint.
    pub(crate) endpoint: String,
    /// Why.
    #[source]
    pub(crate) source: std::io::Error,
}

/// Binds the ZeroMQ ingress of every EspoCRM listener, before any "listening" line is printed (a
/// bind failure stops herald, as it stops EspoCRM's `websocket.php`), and adds the bound endpoint
/// to the listener's label.
///
/// # Errors
/// [`IngressError`] naming the endpoint that could not be bound.
pub(crate) async fn bind_ingress(hub: &Arc<Hub>, listeners: &mut [Bound]) -> Result<Vec<PullIngress>, IngressError> {
    let mut bound = Vec::new();
    for (_, serves, label) in listeners.iter_mut() {
        let Serves::Espo(listener) = serves else { continue };
        let espo = Arc::clone(&listener.0);
        let endpoint = espo.settings.zmq_endpoint.clone();
        let Some(app) = hub.app_by_id(&espo.settings.app) else {
            let source = std::io::Error::other(format!("no app has id {:?}", espo.settings.app));
            return Err(IngressError { endpoint, source });
        };
        let hub = Arc::clone(hub);
        let sink = Box::new(move |bytes: bytes::Bytes| {
            espo.submit(&hub, &app, &bytes);
        });
        let ingress = PullIngress::bind(&endpoint, sink)
            .await
            .map_err(|e| IngressError { endpoint: endpoint.clone(), source: std::io::Error::other(e) })?;
        let text = label.get_or_insert_with(String::new);
        text.push_str(&format!(", zeromq {}", ingress.endpoint()));
        bound.push(ingress);
    }
    Ok(bound)
}
