//! Drop-in profiles: listeners that behave like a given application's own WebSocket daemon
//! (EspoCRM's `websocket.php`, Oro's `gos:websocket:server`) on top of the shared hub.

pub(crate) mod espo;
pub(crate) mod oro;

use std::sync::Arc;

use herald_core::Hub;
use tokio::net::TcpListener;

use crate::StartError;
use crate::config::Profile;
use crate::ingress::zmq::PullIngress;

/// Binds the ZeroMQ ingress of every EspoCRM listener, before any "listening" line is printed
/// (a bind failure stops herald, E14), and adds the bound endpoint to the listener's label.
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
