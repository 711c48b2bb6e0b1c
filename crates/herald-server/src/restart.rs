//! Restarts: the pid file, `herald restart`, and the zero-downtime takeover.
//!
//! `herald restart` reads the running herald's pid from `[server] pid_file` and sends it
//! SIGTERM, which starts the usual graceful drain (Pusher 4200 "reconnect now", WAMP goodbyes);
//! the supervisor (systemd `Restart=always`, supervisor `autorestart=true`) starts it again.
//!
//! `herald serve --takeover` is the zero-downtime variant: the new process binds the same ports
//! with SO_REUSEPORT while the old one still listens, then tells the old one to drain, so a
//! reconnecting client always finds a listening socket. Both processes need
//! `[server] reuse_port = true`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process, test_kill_process};

pub mod history;

/// Why a restart or takeover cannot proceed.
#[derive(Debug, thiserror::Error)]
pub enum RestartError {
    /// No pid file is configured.
    #[error("no pid file: set [server] pid_file (or HERALD__SERVER__PID_FILE)")]
    NoPidFile,
    /// The pid file cannot be read.
    #[error("cannot read the pid file {path}: {source}")]
    Read {
        /// The pid file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The pid file does not hold a process id.
    #[error("the pid file {path} does not hold a process id")]
    Garbled {
        /// The pid file.
        path: PathBuf,
    },
    /// The process named by the pid file is not a running herald.
    #[error("no herald is running with pid {pid} (stale pid file {path})")]
    NotRunning {
        /// The pid read.
        pid: i32,
        /// The pid file.
        path: PathBuf,
    },
    /// Another herald already runs, and this one was not asked to take over.
    #[error("herald is already running (pid {pid}); use `herald serve --takeover` or `herald restart`")]
    AlreadyRunning {
        /// The running herald.
        pid: i32,
    },
    /// The signal could not be sent (permissions).
    #[error("cannot signal pid {pid}: {source}")]
    Signal {
        /// The target.
        pid: i32,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The pid file cannot be written.
    #[error("cannot write the pid file {path}: {source}")]
    Write {
        /// The pid file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl RestartError {
    /// The process exit code for this error (sysexits: 64 config, 69 unavailable, 77 no permission).
    pub fn exit_code(&self) -> u8 {
        match self {
            RestartError::NoPidFile | RestartError::Garbled { .. } => 64,
            RestartError::Signal { .. } | RestartError::Write { .. } => 77,
            RestartError::Read { .. } | RestartError::NotRunning { .. } | RestartError::AlreadyRunning { .. } => 69,
        }
    }
}

/// The pid of the herald recorded in `path`, if it is running.
///
/// # Errors
/// [`RestartError`] when the file is unreadable, garbled or stale.
pub fn running_pid(path: &Path) -> Result<i32, RestartError> {
    let text = std::fs::read_to_string(path).map_err(|source| RestartError::Read { path: path.to_owned(), source })?;
    let pid: i32 = text.trim().parse().map_err(|_| RestartError::Garbled { path: path.to_owned() })?;
    if is_herald(pid) { Ok(pid) } else { Err(RestartError::NotRunning { pid, path: path.to_owned() }) }
}

/// Whether `pid` is a live process running herald (a recycled pid of another program is not).
fn is_herald(pid: i32) -> bool {
    let Some(p) = Pid::from_raw(pid) else { return false };
    if test_kill_process(p).is_err() {
        return false;
    }
    // An exited process its parent has not reaped yet (a zombie) no longer runs.
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')));
    !zombie && std::fs::read_to_string(format!("/proc/{pid}/comm")).map_or(true, |comm| comm.contains("herald"))
}

/// Sends SIGTERM (graceful drain) to `pid`.
///
/// # Errors
/// [`RestartError::Signal`] when the signal cannot be delivered.
pub fn signal_drain(pid: i32) -> Result<(), RestartError> {
    let p = Pid::from_raw(pid).ok_or(RestartError::NotRunning { pid, path: PathBuf::new() })?;
    kill_process(p, Signal::TERM).map_err(|e| RestartError::Signal { pid, source: e.into() })
}

/// `herald restart`: drains the running herald; with `wait`, returns once it has exited.
///
/// Returns the pid that was signalled and whether it exited within `wait`.
///
/// # Errors
/// [`RestartError`] when no herald is recorded as running or it cannot be signalled.
pub fn restart(pid_file: Option<&Path>, wait: Option<Duration>) -> Result<(i32, bool), RestartError> {
    let path = pid_file.ok_or(RestartError::NoPidFile)?;
    let pid = running_pid(path)?;
    signal_drain(pid)?;
    let Some(wait) = wait else { return Ok((pid, false)) };
    let deadline = tokio::time::Instant::now() + wait;
    while tokio::time::Instant::now() < deadline {
        if !is_herald(pid) {
            return Ok((pid, true));
        }
        // A CLI polling a foreign process: there is nothing to await but its disappearance.
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((pid, false))
}

/// `herald restart [--pid-file F] [--no-wait]`: prints what happened; returns the exit code.
pub fn command(args: &crate::cli::RestartArgs, settings: &crate::config::Settings) -> std::process::ExitCode {
    let pid_file = args.pid_file.as_deref().or(settings.ops.pid_file.as_deref());
    // The old process drains within its grace period; allow a little more to exit.
    let wait = (!args.no_wait).then(|| settings.shutdown_grace + Duration::from_secs(5));
    match restart(pid_file, wait) {
        Ok((pid, true)) => println!("herald (pid {pid}) drained and exited; its supervisor starts it again"),
        Ok((pid, false)) if wait.is_none() => println!("herald (pid {pid}) is draining"),
        Ok((pid, false)) => {
            eprintln!("herald (pid {pid}) was asked to drain but is still running");
            return std::process::ExitCode::from(75);
        }
        Err(e) => {
            eprintln!("herald: {e}");
            return std::process::ExitCode::from(e.exit_code());
        }
    }
    std::process::ExitCode::SUCCESS
}

/// Start-up bookkeeping: checked before binding, committed after.
#[derive(Debug)]
pub struct Claim {
    path: Option<PathBuf>,
    /// The herald to drain once our listeners are bound (takeover only).
    predecessor: Option<i32>,
}

impl Claim {
    /// Checks the pid file before any port is bound: another live herald is an error unless
    /// `takeover` is set, in which case it is the one to replace.
    ///
    /// # Errors
    /// [`RestartError::AlreadyRunning`] without `takeover`; [`RestartError::NoPidFile`] for a
    /// takeover without a pid file.
    pub fn prepare(pid_file: Option<&Path>, takeover: bool) -> Result<Self, RestartError> {
        let Some(path) = pid_file else {
            return if takeover { Err(RestartError::NoPidFile) } else { Ok(Self { path: None, predecessor: None }) };
        };
        let running = running_pid(path).ok().filter(|pid| *pid != own_pid());
        match running {
            Some(pid) if !takeover => Err(RestartError::AlreadyRunning { pid }),
            predecessor => Ok(Self { path: Some(path.to_owned()), predecessor }),
        }
    }

    /// The herald this one takes over from, if any.
    pub fn predecessor(&self) -> Option<i32> {
        self.predecessor
    }

    /// After binding: records our pid, then tells the predecessor to drain.
    ///
    /// # Errors
    /// [`RestartError`] when the pid file cannot be written or the predecessor signalled.
    pub fn commit(self) -> Result<Option<PidFile>, RestartError> {
        let Some(path) = self.path else { return Ok(None) };
        let file = PidFile::write(&path)?;
        if let Some(pid) = self.predecessor {
            tracing::info!(pid, "taking over: asking the previous herald to drain");
            signal_drain(pid)?;
        }
        Ok(Some(file))
    }
}

fn own_pid() -> i32 {
    i32::try_from(std::process::id()).unwrap_or(i32::MAX)
}

/// The pid file of this process; removed on drop unless a successor has replaced it.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Writes our pid atomically (temporary file, then rename).
    ///
    /// # Errors
    /// [`RestartError::Write`].
    pub fn write(path: &Path) -> Result<Self, RestartError> {
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let write =
            std::fs::write(&tmp, format!("{}\n", std::process::id())).and_then(|()| std::fs::rename(&tmp, path));
        if let Err(source) = write {
            // On a full file system the temporary file may exist, empty: leave nothing behind.
            let _ = std::fs::remove_file(&tmp);
            return Err(RestartError::Write { path: path.to_owned(), source });
        }
        Ok(Self { path: path.to_owned() })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let ours = std::fs::read_to_string(&self.path).is_ok_and(|t| t.trim() == std::process::id().to_string());
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("herald-restart-{}-{name}", std::process::id()))
    }

    #[test]
    fn a_pid_file_of_a_dead_process_is_stale() {
        let path = temp("stale");
        // Pids are at most 2^22 on Linux; this one cannot exist.
        std::fs::write(&path, "99999999\n").unwrap();
        assert!(matches!(running_pid(&path), Err(RestartError::NotRunning { .. })));
        let claim = Claim::prepare(Some(&path), false).unwrap();
        assert!(claim.predecessor.is_none(), "a stale file does not block a start");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn the_pid_file_is_removed_only_while_it_is_ours() {
        let path = temp("ours");
        let file = PidFile::write(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), std::process::id().to_string());
        drop(file);
        assert!(!path.exists());
        let file = PidFile::write(&path).unwrap();
        std::fs::write(&path, "1\n").unwrap();
        drop(file);
        assert!(path.exists(), "a successor's pid file stays");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn takeover_needs_a_pid_file() {
        assert!(matches!(Claim::prepare(None, true), Err(RestartError::NoPidFile)));
        assert_eq!(RestartError::NoPidFile.exit_code(), 64);
    }
}
