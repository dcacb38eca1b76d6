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
//! /sys/fs/bpf/labctl/<lab>/loss/<node>-<if>/  a loss program's pins: link, prog, maps/loss
//! ```

use std::path::{Path, PathBuf};

/// Where named network namespaces are bound, as `ip netns` keeps them.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// The state directories of running labs.
pub const STATE_DIR: &str = "/run/labctl";

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
