//! Removing what the journal says a lab may have created. Every object of a
//! lab lives inside one of its namespaces, so removing the namespaces (after
//! stopping the processes still in them) removes everything.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::plan::Step;
use crate::sys::in_parts::in_parts;
use crate::sys::netns::{self, NetnsError};

#[derive(Debug, Default)]
pub struct Removed {
    pub namespaces: usize,
    pub processes: usize,
}

/// Removes every namespace the journal names: stops processes left inside
/// (SIGTERM, then SIGKILL after a grace period), then unbinds the namespace.
pub fn remove_journaled(journal: &[Step]) -> Result<Removed, NetnsError> {
    let names: Vec<&str> = journal
        .iter()
        .filter_map(|s| match s {
            Step::CreateNamespace { netns, .. } => Some(netns.as_str()),
            _ => None,
        })
        .collect();
    // XDP programs first: detach their links and remove their pins (bpffs
    // is not in any namespace: removing the namespaces would leave them).
    super::xdp::unpin_journaled(journal)?;
    // Loss programs likewise (apply/impair/loss.rs).
    super::impair::unpin_journaled(journal)?;
    // IPsec daemons by their pidfiles first, then anything else left inside.
    let daemons = super::ipsec::stop_journaled(journal);
    let mut removed = Removed { processes: daemons + stop_processes_in(&names), ..Removed::default() };
    removed.namespaces = unbind_all(&names)?;
    Ok(removed)
}

/// Threads that unbind namespaces at once.
const UNBINDERS: usize = 8;

/// Unbinds the namespaces, [`UNBINDERS`] at a time; how many existed. Each
/// unmount ends in an RCU grace period the calling thread waits for
/// (`namespace_unlock`); waits from several threads share grace periods,
/// so most of `down`'s time on a large lab goes, not the CPU's.
fn unbind_all(names: &[&str]) -> Result<usize, NetnsError> {
    let unbind = |name: &&str| {
        let existed = usize::from(netns::exists(name));
        netns::remove(name).map(|()| existed)
    };
    in_parts(names, UNBINDERS, |part| part.iter().map(unbind).sum::<Result<usize, _>>()).into_iter().sum()
}

/// (device, inode) of each namespace that still exists.
fn namespace_ids(names: &[&str]) -> HashSet<(u64, u64)> {
    names.iter().filter_map(|n| std::fs::metadata(netns::path(n)).ok()).map(|m| (m.dev(), m.ino())).collect()
}

fn pids_in(ids: &HashSet<(u64, u64)>) -> Vec<Pid> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| std::fs::metadata(format!("/proc/{pid}/ns/net")).is_ok_and(|m| ids.contains(&(m.dev(), m.ino()))))
        .map(|pid| Pid::from_raw(pid as i32))
        .collect()
}

fn stop_processes_in(names: &[&str]) -> usize {
    let ids = namespace_ids(names);
    if ids.is_empty() {
        return 0;
    }
    let pids = pids_in(&ids);
    for &pid in &pids {
        let _ = kill(pid, Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while !pids_in(&ids).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for pid in pids_in(&ids) {
        let _ = kill(pid, Signal::SIGKILL);
    }
    pids.len()
}
