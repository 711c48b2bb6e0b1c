//! `webSocketDebugMode` output: timestamped lines on standard output, in the spirit of
//! EspoCRM's daemon (`[2026-07-02 10:00:00] 12: open`). Off, it costs one branch per event.

use std::fmt::Arguments;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// Prints debug lines when enabled.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DebugLog {
    on: bool,
}

impl DebugLog {
    /// A log that prints only when `on`.
    pub(crate) fn new(on: bool) -> Self {
        Self { on }
    }

    /// Prints `[<UTC date time>] <line>`.
    pub(crate) fn line(self, args: Arguments<'_>) {
        if !self.on {
            return;
        }
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut out = std::io::stdout().lock();
        // A closed stdout must not take the server down; the line is simply lost.
        let _ = writeln!(out, "[{}] {args}", timestamp(secs));
        let _ = out.flush();
    }
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of a Unix time.
pub(crate) fn timestamp(unix_secs: u64) -> String {
    let days = i64::try_from(unix_secs / 86_400).unwrap_or(0);
    let rem = unix_secs % 86_400;
    let (y, m, d) = crate::civil_date::from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::timestamp;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00");
        assert_eq!(timestamp(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(timestamp(1_782_993_661), "2026-07-02 12:01:01");
    }
}
