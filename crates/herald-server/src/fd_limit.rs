//! The open-file limit: every WebSocket is a file descriptor, and the usual soft limit of 1024
//! caps a server at about a thousand clients. herald raises the soft limit to the hard limit
//! at start, logs both, and warns when the configured connection limits cannot fit.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors kept back for listeners, the log, config files and upstream connections.
const RESERVED_FDS: u64 = 64;

/// The soft and hard limits on open files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdLimits {
    /// The limit in force.
    pub soft: u64,
    /// How far an unprivileged process may raise it; `None` is unlimited.
    pub hard: Option<u64>,
}

/// The current limits, `None` when the soft limit is unlimited.
pub fn current() -> Option<FdLimits> {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    current.map(|soft| FdLimits { soft, hard: maximum })
}

/// Raises the soft limit to the hard one (or to the kernel's `nr_open` when the hard limit is
/// unlimited). Returns the limits before and after; failures leave the limit as it was.
pub fn raise() -> (Option<FdLimits>, Option<FdLimits>) {
    let before = current();
    if let Some(FdLimits { soft, hard }) = before {
        let target = hard.or_else(nr_open).unwrap_or(soft);
        if target > soft {
            // Keep the hard limit as it is; only the soft one moves.
            let _ = setrlimit(Resource::Nofile, Rlimit { current: Some(target), maximum: hard });
        }
    }
    (before, current())
}

fn nr_open() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/nr_open").ok()?.trim().parse().ok()
}

/// Number of descriptors open now (Linux: entries of `/proc/self/fd`).
pub fn open_fds() -> Option<u64> {
    std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as u64)
}

/// The connections the apps may hold together; `None` when any app is unlimited.
pub fn max_connections(apps: &[herald_core::AppConfig]) -> Option<u64> {
    apps.iter().try_fold(0u64, |sum, a| (a.max_connections > 0).then(|| sum + a.max_connections as u64))
}

/// Raises the limit and logs what happened; warns when `max_connections` (the sum of the
/// apps' limits, `None` when any app is unlimited) cannot fit.
pub fn raise_and_report(max_connections: Option<u64>) {
    let (before, after) = raise();
    match (before, after) {
        (Some(b), Some(a)) => {
            let hard = a.hard.map_or_else(|| "unlimited".to_owned(), |h| h.to_string());
            if a.soft > b.soft {
                tracing::info!(from = b.soft, soft = a.soft, %hard, "raised the open-file limit");
            } else {
                tracing::info!(soft = a.soft, %hard, "open-file limit");
            }
            let usable = a.soft.saturating_sub(RESERVED_FDS);
            match max_connections {
                Some(n) if n > usable => tracing::warn!(
                    max_connections = n,
                    open_file_limit = a.soft,
                    "the apps' max_connections add up to more than the open-file limit allows; \
                     raise LimitNOFILE (systemd) or minfds (supervisor)"
                ),
                None if a.soft <= 4096 => tracing::warn!(
                    open_file_limit = a.soft,
                    "connections are unlimited but the open-file limit caps them near {usable}; \
                     raise LimitNOFILE (systemd) or minfds (supervisor)"
                ),
                _ => {}
            }
        }
        _ => tracing::info!("open-file limit: unlimited"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_never_lowers_the_limit() {
        let (before, after) = raise();
        if let (Some(b), Some(a)) = (before, after) {
            assert!(a.soft >= b.soft);
            if let Some(h) = a.hard {
                assert!(a.soft <= h);
            }
        }
        assert!(open_fds().is_some_and(|n| n > 0));
    }
}
