//! EspoCRM's wire formats that reach herald from outside, sans-IO: the ZeroMQ submission its
//! PHP side pushes for every event (EspoCRM's `Core/WebSocket/Submission.php` and
//! `ZeroMQSender.php`).
//!
//! The WAMP v1 session and the ZeroMQ socket live in `herald-server` (`profile/espo`); the
//! parser is here so that it is deterministic and can be fuzzed (`fuzz/fuzz_targets/espo_submission.rs`).

pub mod submission;
