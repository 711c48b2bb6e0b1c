//! Reads what the kernel says about the server under test and about the generator itself:
//! resident memory and CPU time from `/proc/<pid>/{status,stat}`, kernel TCP memory from
//! `/proc/net/sockstat`.
//!
//! The server is measured as a process tree (the pid given and all its descendants), because
//! some peers do their work in children: Crossbar's router is a worker process under its
//! controller. A tree's RSS is the sum of its processes' VmRSS.

use std::collections::HashMap;
use std::fs;
use std::io;

/// Clock ticks per second of `utime`/`stime` in `/proc/<pid>/stat`. Linux on x86-64 and arm64
/// reports USER_HZ = 100 whatever the kernel's internal HZ is.
pub const TICKS_PER_S: f64 = 100.0;

/// One reading of a process tree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeSample {
    /// Sum of VmRSS over the tree, in KiB.
    pub rss_kb: u64,
    /// Sum of user + system CPU time over the tree, in clock ticks.
    pub cpu_ticks: u64,
    /// How many processes the tree had.
    pub processes: usize,
}

/// `(ppid, utime + stime)` from the text of `/proc/<pid>/stat`.
fn parse_stat(text: &str) -> Option<(u32, u64)> {
    // The command name (field 2) may contain spaces and parentheses; the fields after it start
    // after its last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: [0] state, [1] ppid, ..., [11] utime, [12] stime.
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// VmRSS in KiB from the text of `/proc/<pid>/status`.
fn parse_rss(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Reads the tree rooted at `root`. Processes that exit while it is read are skipped.
///
/// # Errors
/// Fails when `/proc` cannot be listed or `root` itself is gone.
pub fn sample_tree(root: u32) -> io::Result<TreeSample> {
    let mut stats: HashMap<u32, (u32, u64)> = HashMap::new();
    for entry in fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(st) = fs::read_to_string(format!("/proc/{pid}/stat")).ok().as_deref().and_then(parse_stat) {
            stats.insert(pid, st);
        }
    }
    if !stats.contains_key(&root) {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("process {root} is gone")));
    }
    let mut tree = vec![root];
    let mut i = 0;
    while let Some(&pid) = tree.get(i) {
        tree.extend(stats.iter().filter(|(_, (ppid, _))| *ppid == pid).map(|(child, _)| *child));
        i += 1;
    }
    let mut sample = TreeSample::default();
    for pid in tree {
        let Some(rss) = fs::read_to_string(format!("/proc/{pid}/status")).ok().as_deref().and_then(parse_rss) else {
            continue;
        };
        sample.rss_kb += rss;
        sample.cpu_ticks += stats.get(&pid).map_or(0, |s| s.1);
        sample.processes += 1;
    }
    Ok(sample)
}

/// CPU ticks the generator process has used so far (0 if `/proc/self/stat` is unreadable).
pub fn self_cpu_ticks() -> u64 {
    fs::read_to_string("/proc/self/stat").ok().as_deref().and_then(parse_stat).map_or(0, |s| s.1)
}

/// The generator's own VmRSS in KiB (0 if unreadable).
pub fn self_rss_kb() -> u64 {
    fs::read_to_string("/proc/self/status").ok().as_deref().and_then(parse_rss).unwrap_or(0)
}

/// Kernel memory held by TCP sockets, in KiB (`mem` of the `TCP:` line of
/// `/proc/net/sockstat`, which counts pages). Not part of any process's RSS.
pub fn tcp_mem_kb() -> Option<u64> {
    let text = fs::read_to_string("/proc/net/sockstat").ok()?;
    let line = text.lines().find(|l| l.starts_with("TCP:"))?;
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == "mem" {
            return words.next()?.parse::<u64>().ok().map(|pages| pages * 4);
        }
    }
    None
}

/// CPU use in percent of one core between two tick counts taken `seconds` apart.
pub fn cpu_pct(ticks_before: u64, ticks_after: u64, seconds: f64) -> f64 {
    if seconds <= 0.0 {
        return 0.0;
    }
    ticks_after.saturating_sub(ticks_before) as f64 / TICKS_PER_S / seconds * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_name_with_spaces() {
        let text = "42 (tokio (rt) w) S 7 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1 2 3";
        assert_eq!(parse_stat(text), Some((7, 300)));
    }

    #[test]
    fn rss_line() {
        assert_eq!(parse_rss("Name:\tx\nVmRSS:\t  12345 kB\nThreads: 1\n"), Some(12345));
    }

    #[test]
    fn own_process_is_a_tree_of_at_least_one() {
        let me = std::process::id();
        let s = sample_tree(me).unwrap();
        assert!(s.processes >= 1 && s.rss_kb > 0);
    }
}
