//! What an accept loop does when the descriptor table is full (EMFILE/ENFILE).
//!
//! Pausing and retrying leaves the pending clients hanging in the kernel's backlog until their
//! own timeouts fire, and retrying at once spins a core. Instead herald keeps one spare
//! descriptor open: when accept fails for lack of descriptors it closes the spare, accepts one
//! pending connection, answers it `503` (plain listeners) or just closes it (TLS), and reopens
//! the spare. Each waiting client is told at once, existing connections are untouched, and the
//! loop does work only when a client arrives.

use std::fs::File;
use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;

use tokio::net::TcpListener;

/// The answer a plain-HTTP client gets when herald has no descriptor to serve it with.
const UNAVAILABLE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Length: 36\r\n\r\nherald is out of file descriptors.\r\n";

/// Connections turned away since the process started.
static REFUSED: AtomicU64 = AtomicU64::new(0);

/// The spare descriptor, shared by every listener of the process.
static SPARE: Mutex<Option<File>> = Mutex::new(None);

/// Opens the spare descriptor if it is not open; called when a listener starts, while
/// descriptors are still available.
pub(crate) fn arm() {
    let Ok(mut spare) = SPARE.lock() else { return };
    if spare.is_none() {
        *spare = File::open("/dev/null").ok();
    }
}

/// Whether `e` means the process or the system is out of descriptors.
pub(crate) fn is_fd_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(code) if code == rustix::io::Errno::MFILE.raw_os_error()
        || code == rustix::io::Errno::NFILE.raw_os_error())
}

/// Turns away one pending connection using the spare descriptor; `plain` listeners get a 503.
///
/// Returns false when it could not (no spare descriptor, or accept still failed), in which
/// case the caller should back off before accepting again.
pub(crate) async fn turn_away(listener: &TcpListener, plain: bool) -> bool {
    let released = match SPARE.lock() {
        Ok(mut spare) => spare.take().is_some(),
        Err(_) => false,
    };
    if !released {
        return false;
    }
    let pending = std::future::poll_fn(|cx| {
        Poll::Ready(match listener.poll_accept(cx) {
            Poll::Ready(Ok((stream, _))) => Ok(Some(stream)),
            // Nothing queued: the kernel reports EMFILE before it looks at the queue. The
            // listener's readiness is now cleared, so the next accept waits for a client.
            Poll::Pending => Ok(None),
            Poll::Ready(Err(e)) => Err(e),
        })
    })
    .await;
    let turned = pending.is_ok();
    if let Ok(Some(stream)) = pending {
        if plain {
            // A fresh socket's send buffer takes these bytes at once; if not, the close says enough.
            let _ = stream.try_write(UNAVAILABLE);
        }
        drop(stream);
        let refused = REFUSED.fetch_add(1, Ordering::Relaxed) + 1;
        // A log line per refusal would flood the log just when the host is in trouble.
        if refused.is_power_of_two() {
            tracing::warn!(refused, "out of file descriptors: new connections are answered 503; raise LimitNOFILE");
        }
    }
    arm();
    turned
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emfile_and_enfile_are_exhaustion_and_others_are_not() {
        assert!(is_fd_exhaustion(&io::Error::from_raw_os_error(24)));
        assert!(is_fd_exhaustion(&io::Error::from_raw_os_error(23)));
        assert!(!is_fd_exhaustion(&io::Error::from_raw_os_error(104)));
        assert!(!is_fd_exhaustion(&io::Error::other("x")));
    }

    #[test]
    fn the_response_declares_its_length() {
        let (head, body) = std::str::from_utf8(UNAVAILABLE).unwrap().split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }
}
