//! The journal of background processes an experiment started
//! (`x.h1:spawn{...}`): one file per process in the lab's state folder,
//! named by its pid and holding its start time (field 22 of
//! `/proc/<pid>/stat`, clock ticks since boot). The start time tells the
//! process apart from a later one that reuses the pid, so `down` after a
//! `kill -9` of labctl stops exactly what labctl started, and nothing else.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::model::layout;

/// How long a process has between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum SpawnedError {
    #[error("process {0} is gone before it could be journaled")]
    Gone(u32),
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: io::Error },
}

/// The start time of `pid` (clock ticks since boot), if it is alive and not a zombie.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat).filter(|(state, _)| *state != 'Z' && *state != 'X').map(|(_, start)| start)
}

/// (state, start time) from a `/proc/<pid>/stat` line. The command name
/// (field 2) may hold spaces and parentheses: fields are counted after its last `)`.
fn parse_stat(stat: &str) -> Option<(char, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field 3 is the state; the start time is field 22, 19 further on.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// Journals `pid`, which labctl just started for an experiment of `lab`.
pub fn record(lab: &str, pid: u32) -> Result<(), SpawnedError> {
    let dir = layout::spawned_dir(lab);
    fs::create_dir_all(&dir).map_err(|source| SpawnedError::Io { what: "cannot create", path: dir.clone(), source })?;
    let start = start_time(pid).ok_or(SpawnedError::Gone(pid))?;
    let path = dir.join(pid.to_string());
    fs::write(&path, format!("{start}\n")).map_err(|source| SpawnedError::Io { what: "cannot write", path, source })
}

/// Forgets `pid` once it was stopped and reaped.
pub fn forget(lab: &str, pid: u32) {
    let _ = fs::remove_file(layout::spawned_dir(lab).join(pid.to_string()));
}

/// Stops the process group of `pid` (the process was started as its own
/// group leader): SIGTERM, then SIGKILL once `grace` is over while
/// `alive()` still says so.
pub fn stop_group(pid: u32, grace: Duration, alive: impl Fn() -> bool) {
    let group = Pid::from_raw(pid as i32);
    let _ = killpg(group, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    // The whole group, even if the leader left: what it started goes too.
    let _ = killpg(group, Signal::SIGKILL);
}

/// `down`: stops every journaled process that is still the one labctl
/// started (same pid and start time) and clears the journal. Returns how
/// many were still running.
pub fn stop_journaled(state_dir: &Path) -> usize {
    let dir = state_dir.join("spawned");
    let Ok(entries) = fs::read_dir(&dir) else { return 0 };
    let mut stopped = 0;
    for entry in entries.flatten() {
        let pid = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok());
        let recorded = fs::read_to_string(entry.path()).ok().and_then(|s| s.trim().parse::<u64>().ok());
        if let (Some(pid), Some(recorded)) = (pid, recorded) {
            if start_time(pid) == Some(recorded) {
                stop_group(pid, GRACE, || start_time(pid) == Some(recorded));
                stopped += 1;
            }
        }
        let _ = fs::remove_file(entry.path());
    }
    let _ = fs::remove_dir(&dir);
    stopped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let line = "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200";
        assert_eq!(parse_stat(line), Some(('S', 987654)));
        assert_eq!(parse_stat("1 (x) Z 0"), None, "too short");
    }

    #[test]
    fn this_process_has_a_start_time() {
        assert!(start_time(std::process::id()).is_some());
        assert_eq!(start_time(u32::MAX), None);
    }
}
