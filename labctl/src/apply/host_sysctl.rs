//! Machine-wide sysctls: the few `net.core` settings the kernel keeps once
//! for the whole machine rather than per namespace (the backlog queue, the
//! NET_RX budget, busy polling). They exist only in the host's initial
//! network namespace, so they are read and written from a thread that
//! enters it: the namespace of kthreadd (process 2), since kernel threads
//! always live there (process 1 may be hidden, and may be in a container's).
//!
//! A lab never changes them while it is up. An experiment may, for the
//! length of one Lua function (`x:host_sysctl{...}`): the values it replaces
//! are journaled in the lab's state folder first and put back when the
//! function returns, or by `down` if labctl died in between.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use super::state::LabState;
use super::sysctl;
use crate::sys::netns;

/// The machine-wide sysctls an experiment may change, with what each does.
pub const MACHINE_WIDE: &[(&str, &str)] = &[
    ("net.core.netdev_max_backlog", "packets each CPU's backlog queue holds before it drops"),
    ("net.core.netdev_budget", "packets one NET_RX softirq run may take, from all devices"),
    ("net.core.netdev_budget_usecs", "microseconds one NET_RX softirq run may last"),
    ("net.core.dev_weight", "packets NET_RX takes from one backlog queue per turn"),
    ("net.core.busy_poll", "microseconds poll() and select() busy-poll a device queue"),
    ("net.core.busy_read", "microseconds a blocking read busy-polls a device queue"),
];

/// The journal file in a lab's state folder.
const JOURNAL: &str = "host-sysctl.json";

/// Where the machine-wide sysctls live: the namespace of kthreadd.
const HOST_NETNS: &str = "/proc/2/ns/net";

#[derive(Debug, thiserror::Error)]
pub enum HostSysctlError {
    #[error(
        "{0} is not a machine-wide sysctl labctl may change; these are: {list} \
         (a node's own sysctls go in node:sysctl())",
        list = names()
    )]
    NotAllowed(String),
    #[error("{key} = {value:?}: expected a whole number")]
    NotANumber { key: String, value: String },
    #[error("x:host_sysctl() calls cannot be nested: lab {0:?} already has changed machine-wide sysctls")]
    Nested(String),
    #[error("lab {0:?} is not running")]
    NotRunning(String),
    #[error(
        "cannot reach the host's network namespace ({HOST_NETNS}): {0}; \
         machine-wide sysctls need labctl to see the host's processes (not inside a container)"
    )]
    HostNetns(String),
    #[error("{key}: {source} (is labctl inside a container? machine-wide sysctls exist only in the host's namespace)")]
    Io { key: String, source: io::Error },
    #[error("{path}: {source}")]
    Journal { path: PathBuf, source: io::Error },
    #[error("{path} is corrupt: {source}")]
    Corrupt { path: PathBuf, source: serde_json::Error },
}

fn names() -> String {
    MACHINE_WIDE.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
}

fn known(key: &str) -> Result<(), HostSysctlError> {
    match MACHINE_WIDE.iter().any(|(k, _)| *k == key) {
        true => Ok(()),
        false => Err(HostSysctlError::NotAllowed(key.to_string())),
    }
}

/// Checks a change before anything is written: a known key, a whole number.
pub fn check(key: &str, value: &str) -> Result<(), HostSysctlError> {
    known(key)?;
    if value.trim().parse::<i64>().is_err() {
        return Err(HostSysctlError::NotANumber { key: key.to_string(), value: value.to_string() });
    }
    Ok(())
}

/// The current value of a machine-wide sysctl.
pub fn read(key: &str) -> Result<String, HostSysctlError> {
    known(key)?;
    in_host(key, || fs::read_to_string(sysctl::proc_path(key)).map(|v| v.trim().to_string()))
}

/// The host's initial network namespace, checked to be kthreadd's.
fn host_netns() -> Result<File, HostSysctlError> {
    let comm = fs::read_to_string("/proc/2/comm").unwrap_or_default();
    if comm.trim() != "kthreadd" {
        return Err(HostSysctlError::HostNetns("process 2 is not kthreadd".into()));
    }
    File::open(HOST_NETNS).map_err(|e| HostSysctlError::HostNetns(e.to_string()))
}

fn in_host<T: Send>(key: &str, f: impl FnOnce() -> io::Result<T> + Send) -> Result<T, HostSysctlError> {
    let host = host_netns()?;
    let io = |source| HostSysctlError::Io { key: key.to_string(), source };
    netns::run_in(&host, f).map_err(|e| io(io::Error::other(e)))?.map_err(io)
}

/// Machine-wide sysctls changed for a while; [`Changed::restore`] (or
/// dropping it) puts the old values back.
#[must_use = "the old values come back when this is restored or dropped"]
pub struct Changed {
    journal: PathBuf,
    old: BTreeMap<String, String>,
}

/// Changes machine-wide sysctls for lab `lab`, journaling the old values first.
pub fn change(lab: &str, changes: &[(String, String)]) -> Result<Changed, HostSysctlError> {
    for (key, value) in changes {
        check(key, value)?;
    }
    let state = LabState::open(lab).ok_or_else(|| HostSysctlError::NotRunning(lab.to_string()))?;
    let journal = state.dir().join(JOURNAL);
    if journal.exists() {
        return Err(HostSysctlError::Nested(lab.to_string()));
    }
    // Reading the old values also fails early if the host is out of reach.
    let old = changes.iter().map(|(key, _)| Ok((key.clone(), read(key)?))).collect::<Result<_, HostSysctlError>>()?;
    let changed = Changed { journal, old };
    let json = serde_json::to_vec_pretty(&changed.old).expect("a map of strings serializes");
    fs::write(&changed.journal, json)
        .map_err(|source| HostSysctlError::Journal { path: changed.journal.clone(), source })?;
    // From here on, dropping `changed` restores whatever was written.
    write_all(changes)?;
    Ok(changed)
}

fn write_all(values: &[(String, String)]) -> Result<(), HostSysctlError> {
    for (key, value) in values {
        in_host(key, || sysctl::write(key, value))?;
    }
    Ok(())
}

impl Changed {
    /// Puts the old values back and removes the journal.
    pub fn restore(mut self) -> Result<(), HostSysctlError> {
        self.restore_now()
    }

    fn restore_now(&mut self) -> Result<(), HostSysctlError> {
        if self.old.is_empty() {
            return Ok(());
        }
        let old: Vec<(String, String)> = std::mem::take(&mut self.old).into_iter().collect();
        write_all(&old)?;
        fs::remove_file(&self.journal).map_err(|source| HostSysctlError::Journal { path: self.journal.clone(), source })
    }
}

impl Drop for Changed {
    fn drop(&mut self) {
        if let Err(e) = self.restore_now() {
            eprintln!("labctl: could not restore machine-wide sysctls: {e}");
        }
    }
}

/// Restores what a lab's journal says was changed and not put back (labctl
/// died inside `x:host_sysctl`); returns how many values were restored.
pub fn restore_journaled(state_dir: &Path) -> Result<usize, HostSysctlError> {
    let path = state_dir.join(JOURNAL);
    let text = match fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(source) => return Err(HostSysctlError::Journal { path, source }),
    };
    let old: BTreeMap<String, String> =
        serde_json::from_slice(&text).map_err(|source| HostSysctlError::Corrupt { path: path.clone(), source })?;
    let old: Vec<(String, String)> = old.into_iter().collect();
    write_all(&old)?;
    fs::remove_file(&path).map_err(|source| HostSysctlError::Journal { path, source })?;
    Ok(old.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_keys_and_whole_numbers_pass() {
        assert!(check("net.core.netdev_max_backlog", "32").is_ok());
        assert!(check("net.core.busy_read", " 50\n").is_ok());
        let unknown = check("net.ipv4.ip_forward", "1").unwrap_err().to_string();
        assert!(unknown.contains("net.core.netdev_budget"), "{unknown}");
        assert!(unknown.contains("node:sysctl()"), "{unknown}");
        assert!(matches!(check("net.core.netdev_budget", "lots"), Err(HostSysctlError::NotANumber { .. })));
    }
}
