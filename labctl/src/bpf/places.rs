//! The lab's names for what a BPF program counted by namespace inode and
//! ifindex: `"r1:eth0"`, or `"r1"` without an interface.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::unix::fs::MetadataExt;

use nix::net::if_::if_indextoname;

use super::{BpfError, Result};
use crate::sys::netns;

/// The namespace inode behind an open namespace file (`/run/netns/<name>`).
pub fn inode(netns: &File) -> Result<u64> {
    netns.metadata().map(|m| m.ino()).map_err(BpfError::io("cannot stat a network namespace"))
}

/// The inodes of a lab's node namespaces, for `DropTracer::start_in`.
pub fn inodes(nodes: &BTreeMap<String, File>) -> Result<Vec<u64>> {
    nodes.values().map(inode).collect()
}

/// Names of the lab's nodes by namespace inode, and of their interfaces.
pub struct Places<'a> {
    nodes: BTreeMap<u64, &'a str>,
    ifnames: BTreeMap<(u64, u32), String>,
}

impl<'a> Places<'a> {
    /// Looks up the name of every (namespace, ifindex) of the lab's nodes in `seen`.
    pub fn of(seen: impl Iterator<Item = (u64, u32)>, nodes: &'a BTreeMap<String, File>) -> Result<Places<'a>> {
        let mut by_inode = BTreeMap::new();
        for (node, file) in nodes {
            by_inode.insert(inode(file)?, (node.as_str(), file));
        }
        let wanted: BTreeSet<(u64, u32)> =
            seen.filter(|(netns, ifindex)| *ifindex != 0 && by_inode.contains_key(netns)).collect();
        let mut ifnames = BTreeMap::new();
        for (netns, ifindex) in wanted {
            let (node, file) = by_inode[&netns];
            let name = netns::run_in(file, || if_indextoname(ifindex).ok()).map_err(|e| BpfError::Io {
                what: format!("cannot enter node {node}"),
                source: std::io::Error::other(e),
            })?;
            let name = name.map(|n| n.to_string_lossy().into_owned());
            ifnames.insert((netns, ifindex), name.unwrap_or_else(|| format!("if{ifindex}")));
        }
        Ok(Places { nodes: by_inode.into_iter().map(|(ino, (node, _))| (ino, node)).collect(), ifnames })
    }

    /// `"r1:eth0"`, `"r1"` without a known interface, `None` outside the lab.
    pub fn name(&self, netns: u64, ifindex: u32) -> Option<String> {
        let node = self.nodes.get(&netns)?;
        Some(match self.ifnames.get(&(netns, ifindex)) {
            Some(ifname) => format!("{node}:{ifname}"),
            None => node.to_string(),
        })
    }
}
