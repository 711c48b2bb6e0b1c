//! Drop-in profiles: listeners that behave like a given application's own WebSocket daemon
//! (EspoCRM's `websocket.php`, Oro's `gos:websocket:server`) on top of the shared hub.

pub(crate) mod app_close;
pub(crate) mod espo;
pub(crate) mod oro;

use std::sync::Arc;

use herald_core::authorize::{Action, Authorizer};
use herald_core::{Conn, Hub};
use tokio::net::TcpListener;

use crate::StartError;
use crate::config::Profile;
use crate::ingress::zmq::PullIngress;

/// Installs each profile's rules as the authorizer of its app, before any listener accepts a
/// connection: from the first session on, whoever reaches a profile's app without coming
/// through the profile's listener (Pusher, WAMP v2, a plain `wamp1` listener) is judged by them.
pub(crate) fn install_authorizers(hub: &Hub, listeners: &[(TcpListener, Profile, Option<String>)]) {
    for (_, profile, _) in listeners {
        let (app_id, authorizer): (&str, Arc<dyn Authorizer>) = match profile {
            Profile::Espo(listener) => (listener.app(), Arc::new(listener.0.policy())),
            Profile::Oro(settings) => match oro::Policy::new(settings) {
                Ok(policy) => (&settings.app, Arc::new(policy)),
                // Config validation refuses bad routes, so this cannot happen; fail closed.
                Err(e) => {
                    tracing::error!(error = %e, "oro: bad route; the Oro app refuses other sessions");
                    (&settings.app, Arc::new(Closed))
                }
            },
            Profile::Pusher | Profile::Wamp1 { .. } => continue,
        };
        if let Some(app) = hub.apps().by_id(app_id) {
            app.set_authorizer(authorizer);
        }
    }
}

/// Refuses everything, Pusher subscriptions included.
#[derive(Debug)]
struct Closed;

impl Authorizer for Closed {
    fn authorize(&self, _conn: &Conn, _action: Action, _uri: &str) -> bool {
        false
    }

    fn covers_pusher(&self) -> bool {
        true
    }
}

/// Binds the ZeroMQ ingress of every EspoCRM listener, before any "listening" line is printed (a
/// bind failure stops herald, as it stops EspoCRM's `websocket.php`), and adds the bound endpoint
/// to the listener's label.
///
/// # Errors
/// [`StartError::Bind`] naming the endpoint that could not be bound.
pub(crate) async fn bind_ingress(
    hub: &Arc<Hub>,
    listeners: &mut [(TcpListener, Profile, Option<String>)],
) -> Result<Vec<PullIngress>, StartError> {
    let mut bound = Vec::new();
    for (_, profile, label) in listeners.iter_mut() {
        let Profile::Espo(listener) = profile else { continue };
        let espo = Arc::clone(&listener.0);
        let endpoint = espo.settings.zmq_endpoint.clone();
        let Some(app) = hub.apps().by_id(&espo.settings.app).cloned() else {
            let source = std::io::Error::other(format!("no app has id {:?}", espo.settings.app));
            return Err(StartError::Bind { addr: endpoint, source });
        };
        let hub = Arc::clone(hub);
        let sink = Box::new(move |bytes: bytes::Bytes| {
            espo.submit(&hub, &app, &bytes);
        });
        let ingress = PullIngress::bind(&endpoint, sink)
            .await
            .map_err(|e| StartError::Bind { addr: endpoint.clone(), source: std::io::Error::other(e) })?;
        let text = label.get_or_insert_with(String::new);
        text.push_str(&format!(", zeromq {}", ingress.endpoint()));
        bound.push(ingress);
    }
    Ok(bound)
}
