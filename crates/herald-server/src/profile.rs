//! Drop-in profiles: listeners that behave like a given application's own WebSocket daemon
//! (EspoCRM's `websocket.php`, Oro's `gos:websocket:server`) on top of the shared hub.
//!
//! Each profile keeps its configuration (`*/settings.rs`, plain data read by `config.rs`) apart
//! from its runtime (built by `runtime.rs`) and its sessions.

pub(crate) mod app_close;
pub(crate) mod espo;
pub(crate) mod oro;
