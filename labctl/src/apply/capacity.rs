//! Limits of this machine that a big lab can exceed, checked by `up` before
//! anything exists (validation cannot: they are the machine's, not the
//! script's). Each node is one network namespace, counted against
//! `user.max_net_namespaces`, and one bind mount under /run/netns, counted
//! against `fs.mount-max` for the mount namespace.

use crate::diag::{Diagnostic, Origin};
use crate::model::Lab;

/// What the machine allows and already holds; `None` where it cannot be read.
#[derive(Debug, Clone, Copy, Default)]
pub struct Machine {
    pub max_net_namespaces: Option<usize>,
    /// Network namespaces alive now (the slab allocator's count, machine-wide).
    pub net_namespaces: Option<usize>,
    pub mount_max: Option<usize>,
    /// Mounts in this mount namespace now.
    pub mounts: Option<usize>,
    /// The hard limit of open files (labctl raises its soft limit to it).
    pub open_files: Option<usize>,
}

/// Files `up` holds besides one per node (its namespace fd): the journal,
/// the runtime, netlink connections in flight.
const FILES_BESIDES_NODES: usize = 256;

impl Machine {
    pub fn read() -> Self {
        let number = |path: &str| std::fs::read_to_string(path).ok()?.trim().parse().ok();
        let slab = || {
            let text = std::fs::read_to_string("/proc/slabinfo").ok()?;
            text.lines().find(|l| l.starts_with("net_namespace "))?.split_whitespace().nth(1)?.parse().ok()
        };
        Machine {
            max_net_namespaces: number("/proc/sys/user/max_net_namespaces"),
            net_namespaces: slab(),
            mount_max: number("/proc/sys/fs/mount-max"),
            mounts: std::fs::read_to_string("/proc/self/mountinfo").ok().map(|t| t.lines().count()),
            open_files: open_files_limit(),
        }
    }
}

/// The hard RLIMIT_NOFILE, or None when it is unlimited or unreadable.
fn open_files_limit() -> Option<usize> {
    use nix::sys::resource::{getrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    (hard != nix::sys::resource::RLIM_INFINITY).then_some(hard as usize)
}

/// One diagnostic per limit the lab's nodes would cross, at the first node past it.
pub fn check(lab: &Lab, machine: &Machine) -> Vec<Diagnostic> {
    let mut found = Vec::new();
    let limits = [
        (machine.max_net_namespaces, machine.net_namespaces, "network namespaces", "user.max_net_namespaces"),
        (machine.mount_max, machine.mounts, "mounts (one per namespace under /run/netns)", "fs.mount-max"),
    ];
    for (limit, used, what, sysctl) in limits {
        let Some(limit) = limit else { continue };
        let used = used.unwrap_or(0);
        let room = limit.saturating_sub(used);
        if lab.nodes.len() <= room {
            continue;
        }
        let first_over = &lab.nodes[room];
        let origin = if first_over.origin.line > 0 { first_over.origin.clone() } else { Origin::new(&lab.file, 1) };
        found.push(
            Diagnostic::new(
                origin,
                format!(
                    "the lab has {} nodes, but this machine allows {limit} {what} and {used} are in use: node {:?} would be one too many",
                    lab.nodes.len(),
                    first_over.name
                ),
            )
            .help(format!(
                "raise the limit (sysctl -w {sysctl}={}), or build a smaller lab",
                (used + lab.nodes.len()).next_multiple_of(1000)
            )),
        );
    }
    if let Some(limit) = machine.open_files {
        let room = limit.saturating_sub(FILES_BESIDES_NODES);
        if lab.nodes.len() > room {
            let first_over = &lab.nodes[room];
            found.push(
                Diagnostic::new(
                    first_over.origin.clone(),
                    format!(
                        "the lab has {} nodes, but labctl may open only {limit} files (the hard limit of open files) and holds one per node while it builds: node {:?} would be one too many",
                        lab.nodes.len(),
                        first_over.name
                    ),
                )
                .help(format!(
                    "raise the hard limit (ulimit -Hn {}, or LimitNOFILE= for a service; raising it needs CAP_SYS_RESOURCE), or build a smaller lab",
                    (lab.nodes.len() + FILES_BESIDES_NODES).next_multiple_of(1000)
                )),
            );
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab(nodes: usize) -> Lab {
        let nodes: Vec<_> = (1..=nodes)
            .map(|i| {
                serde_json::json!({
                    "name": format!("h{i}"), "kind": "host", "forwarding": false, "routes": [], "sysctls": [],
                    "origin": Origin::new("big.lua", i as u32 + 1),
                })
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "name": "big", "description": null, "file": "big.lua", "nodes": nodes, "links": [], "experiments": [],
        }))
        .expect("a lab")
    }

    #[test]
    fn a_lab_past_the_namespace_limit_is_refused_at_the_first_node_too_many() {
        let machine = Machine { max_net_namespaces: Some(10), net_namespaces: Some(7), ..Machine::default() };
        let found = check(&lab(4), &machine);
        assert_eq!(found.len(), 1);
        let text = found[0].to_string();
        assert!(text.starts_with("big.lua:5: error: the lab has 4 nodes"), "{text}");
        assert!(text.contains("allows 10 network namespaces and 7 are in use: node \"h4\""), "{text}");
        assert!(text.contains("sysctl -w user.max_net_namespaces=1000"), "{text}");
        assert!(check(&lab(3), &machine).is_empty());
    }

    #[test]
    fn mounts_count_too_and_unknown_limits_pass() {
        let machine = Machine { mount_max: Some(100), mounts: Some(99), ..Machine::default() };
        let found = check(&lab(2), &machine);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].to_string().contains("fs.mount-max"));
        assert!(check(&lab(50), &Machine::default()).is_empty());
    }

    #[test]
    fn open_files_count_one_per_node() {
        let machine = Machine { open_files: Some(FILES_BESIDES_NODES + 3), ..Machine::default() };
        assert!(check(&lab(3), &machine).is_empty());
        let found = check(&lab(4), &machine);
        assert_eq!(found.len(), 1, "{found:?}");
        let text = found[0].to_string();
        assert!(text.contains("holds one per node while it builds: node \"h4\""), "{text}");
        assert!(text.contains("ulimit -Hn"), "{text}");
    }
}
