//! Where a running lab lives on the machine: every runtime path labctl
//! creates or reads, in one place, so the plan (which records them in its
//! steps), apply (which creates them) and teardown (which removes them)
//! cannot disagree. Pure: these only build paths.
//!
//! ```text
//! /run/netns/<lab>-<node>                 the node's namespace (iproute2's layout)
//! /run/labctl/<lab>/                      lab.json, journal, ready (apply/state.rs)
//! /run/labctl/<lab>/ipsec/<node>/         strongSwan config, socket, pidfile, log
//! /sys/fs/bpf/labctl/<lab>/<node>-<if>/   an XDP attachment's pins: link, prog, maps/
//! /run/labctl/<lab>/spawned/<pid>         a background process of an experiment (its start time)
//! /run/labctl/<lab>/cgroups               the cgroups of CPU-limited nodes
//! <cgroup2>/labctl/<lab>-<node>/          a CPU-limited node's cgroup (cpu.max)
//! /run/lock/labctl-test.{lock,gate}       turns on the machine between labs (sys/machine_turn.rs)
//! /sys/fs/bpf/labctl/<lab>/loss/<node>-<if>/  a loss program's pins: link, prog, maps/loss
//! ```

use std::path::{Path, PathBuf};

/// Where named network namespaces are bound, as `ip netns` keeps them.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// The state directories of running labs.
pub const STATE_DIR: &str = "/run/labctl";

/// The lock of turns on the machine between labs (sys/machine_turn.rs):
/// under /run/lock, which sandboxes share with the machine.
pub const MACHINE_TURN: &str = "/run/lock/labctl-test.lock";

/// The gate in front of [`MACHINE_TURN`] that a lab waiting for an exclusive turn holds.
pub const MACHINE_GATE: &str = "/run/lock/labctl-test.gate";

/// Where labctl mounts (or finds) the BPF filesystem.
pub const BPFFS: &str = "/sys/fs/bpf";

/// `/run/netns/<name>`: the bind mount of a named namespace.
pub fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

/// `/run/labctl/<lab>`: the lab's model, journal and ready marker.
pub fn lab_state_dir(lab: &str) -> PathBuf {
    Path::new(STATE_DIR).join(lab)
}

/// `/run/labctl/<lab>/ipsec/<node>`: a node's IPsec files.
pub fn ipsec_state_dir(lab: &str, node: &str) -> PathBuf {
    lab_state_dir(lab).join("ipsec").join(node)
}

/// `/sys/fs/bpf/labctl/<lab>`: every pin of a lab.
pub fn lab_pin_dir(lab: &str) -> PathBuf {
    Path::new(BPFFS).join("labctl").join(lab)
}

/// `/sys/fs/bpf/labctl/<lab>/<node>-<ifname>`: the pins of the XDP program
/// on `node:ifname` (`link`, `prog`, `maps/<name>`).
pub fn pin_dir(lab: &str, node: &str, ifname: &str) -> PathBuf {
    lab_pin_dir(lab).join(pin_dir_name(node, ifname))
}

/// `/sys/fs/bpf/labctl/<lab>/loss/<node>-<ifname>`: the pins of the loss
/// program at the ingress of `node:ifname` (`link`, `prog`, `maps/loss`).
pub fn loss_pin_dir(lab: &str, node: &str, ifname: &str) -> PathBuf {
    lab_pin_dir(lab).join("loss").join(pin_dir_name(node, ifname))
}

/// `<node>-<ifname>`, the folder of one attachment's pins.
pub fn pin_dir_name(node: &str, ifname: &str) -> String {
    format!("{node}-{ifname}")
}

/// `/run/labctl/<lab>/spawned/`: one file per process an experiment
/// started in the background (`x.h1:spawn`), named by its pid and holding
/// its start time, so `down` stops it after labctl died.
pub fn spawned_dir(lab: &str) -> PathBuf {
    lab_state_dir(lab).join("spawned")
}

/// `/run/labctl/<lab>/cgroups`: the cgroups labctl made for the lab's
/// CPU-limited nodes, one path a line, removed by `down`.
pub fn cgroup_journal(lab: &str) -> PathBuf {
    lab_state_dir(lab).join("cgroups")
}

/// The cgroup v2 folder of a CPU-limited node, under the cgroup2 mount `root`.
pub fn node_cgroup(root: &Path, lab: &str, node: &str) -> PathBuf {
    root.join("labctl").join(format!("{lab}-{node}"))
}
