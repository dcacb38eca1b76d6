//! CPU limits of nodes (`node("h1", { cpu = "50%" })`) through cgroup v2:
//! one cgroup per limited node, `<cgroup2>/labctl/<lab>-<node>`, with
//! `cpu.max` set; the commands labctl runs in the node (`x.h1:run`,
//! `x.h1:spawn`) start inside it. The cgroups are journaled in the lab's
//! state folder before they are made, and `down` removes them.
//!
//! Only cgroup v2 with its `cpu` controller will do. A machine whose `cpu`
//! controller is bound to a v1 hierarchy (a hybrid layout) is refused
//! before anything is created, with the reason.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::model::{layout, Lab};

/// The scheduler period `cpu.max` is given in.
const PERIOD_US: u64 = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error(
        "node {node}: cpu limits need cgroup v2, and this machine has no cgroup2 mount \
         (see /proc/self/mountinfo); mount one (mount -t cgroup2 none /sys/fs/cgroup) or drop `cpu`"
    )]
    NoCgroup2 { node: String },
    #[error(
        "node {node}: cpu limits need the cgroup v2 `cpu` controller, and the cgroup2 mount at {} offers only \
         [{controllers}] (the cpu controller is bound to a cgroup v1 hierarchy: a hybrid layout); \
         boot with systemd.unified_cgroup_hierarchy=1 or run on a machine with cgroup v2 only, or drop `cpu`",
        mount.display()
    )]
    NoCpuController { node: String, mount: PathBuf, controllers: String },
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: io::Error },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io { what, path: path.to_path_buf(), source }
}

/// `cpu.max` for a limit of `percent` of one CPU: "<quota> <period>".
pub fn cpu_max(percent: u32) -> String {
    format!("{} {PERIOD_US}", u64::from(percent) * PERIOD_US / 100)
}

/// Where cgroup2 is mounted, from `/proc/self/mountinfo` text.
fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        // "... mount-point options - fstype source super-options"
        let (left, right) = line.split_once(" - ")?;
        let point = left.split_whitespace().nth(4)?;
        (right.split_whitespace().next()? == "cgroup2").then(|| PathBuf::from(point))
    })
}

/// The cgroup2 mount, if its `cpu` controller is usable; else why not,
/// named after the first limited `node`.
pub fn root(node: &str) -> Result<PathBuf, CgroupError> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mount = cgroup2_mount(&mountinfo).ok_or_else(|| CgroupError::NoCgroup2 { node: node.into() })?;
    let controllers = fs::read_to_string(mount.join("cgroup.controllers")).unwrap_or_default();
    if controllers.split_whitespace().any(|c| c == "cpu") {
        Ok(mount)
    } else {
        Err(CgroupError::NoCpuController { node: node.into(), mount, controllers: controllers.trim().to_string() })
    }
}

/// Before anything is created: refuses a lab with CPU limits on a machine
/// without a usable cgroup v2 `cpu` controller.
pub fn preflight(lab: &Lab) -> Result<(), CgroupError> {
    match lab.nodes.iter().find(|n| n.cpu_percent.is_some()) {
        Some(node) => root(&node.name).map(|_| ()),
        None => Ok(()),
    }
}

/// Makes the cgroup of every CPU-limited node of `lab`, journaling each first.
pub fn create(lab: &Lab) -> Result<(), CgroupError> {
    let limited: Vec<_> = lab.nodes.iter().filter_map(|n| Some((n, n.cpu_percent?))).collect();
    let Some((first, _)) = limited.first() else { return Ok(()) };
    let root = root(&first.name)?;
    let parent = root.join("labctl");
    fs::create_dir_all(&parent).map_err(io_err("cannot create", &parent))?;
    // A child gets the cpu controller only if every ancestor hands it down.
    enable_cpu(&root)?;
    enable_cpu(&parent)?;
    for (node, percent) in limited {
        let dir = layout::node_cgroup(&root, &lab.name, &node.name);
        journal(&lab.name, &dir)?;
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("cannot create", &dir)(e)),
        }
        let max = dir.join("cpu.max");
        fs::write(&max, cpu_max(percent)).map_err(io_err("cannot write", &max))?;
    }
    Ok(())
}

fn enable_cpu(dir: &Path) -> Result<(), CgroupError> {
    let control = dir.join("cgroup.subtree_control");
    let now = fs::read_to_string(&control).unwrap_or_default();
    if now.split_whitespace().any(|c| c == "cpu") {
        return Ok(());
    }
    fs::write(&control, "+cpu").map_err(io_err("cannot write", &control))
}

fn journal(lab: &str, dir: &Path) -> Result<(), CgroupError> {
    let path = layout::cgroup_journal(lab);
    let mut file = OpenOptions::new().create(true).append(true).open(&path).map_err(io_err("cannot open", &path))?;
    writeln!(file, "{}", dir.display()).map_err(io_err("cannot write", &path))
}

/// The node's cgroup, if the lab made one.
pub fn of_node(lab: &Lab, node: &str) -> Result<Option<PathBuf>, CgroupError> {
    if lab.node(node).and_then(|n| n.cpu_percent).is_none() {
        return Ok(None);
    }
    Ok(Some(layout::node_cgroup(&root(node)?, &lab.name, node)))
}

/// `cgroup.procs` of `dir` opened for writing: a command writes "0" to it
/// between fork and exec to enter the cgroup.
pub fn open_procs(dir: &Path) -> Result<File, CgroupError> {
    let path = dir.join("cgroup.procs");
    OpenOptions::new().write(true).open(&path).map_err(io_err("cannot open", &path))
}

/// Moves the calling process into the cgroup `dir` (`labctl exec` into a
/// CPU-limited node, right before exec).
pub fn enter(dir: &Path) -> Result<(), CgroupError> {
    let path = dir.join("cgroup.procs");
    fs::write(&path, "0").map_err(io_err("cannot write", &path))
}

/// `down`: removes the journaled cgroups (their processes were stopped
/// with the namespaces; any left are killed first), then labctl's parent
/// folder if no other lab uses it.
pub fn remove_journaled(state_dir: &Path) -> usize {
    let Ok(text) = fs::read_to_string(state_dir.join("cgroups")) else { return 0 };
    let mut removed = 0;
    for dir in text.lines().map(Path::new) {
        kill_members(dir);
        if fs::remove_dir(dir).is_ok() {
            removed += 1;
        }
        if let Some(parent) = dir.parent() {
            let _ = fs::remove_dir(parent);
        }
    }
    removed
}

fn kill_members(dir: &Path) {
    for _ in 0..100 {
        let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        let pids: Vec<i32> = procs.lines().filter_map(|l| l.trim().parse().ok()).collect();
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_max_is_a_quota_per_period() {
        assert_eq!(cpu_max(50), "50000 100000");
        assert_eq!(cpu_max(150), "150000 100000");
        assert_eq!(cpu_max(1), "1000 100000");
    }

    #[test]
    fn the_cgroup2_mount_is_found_among_v1_ones() {
        let info = "30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n\
                    31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n\
                    32 30 0:28 / /sys/fs/cgroup/cpu rw,nosuid - cgroup cgroup rw,cpu\n";
        assert_eq!(cgroup2_mount(info), Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert_eq!(cgroup2_mount("32 30 0:28 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"), None);
    }
}
