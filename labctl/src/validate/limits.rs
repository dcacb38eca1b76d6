//! Limits of the kernel a script can reach, caught before anything exists.
//! Without this a 4,000-host star got as far as step 9027, where the
//! bridge's 1024th port failed with EXFULL, and rolled everything back.
//! (Interface names and queue counts are checked with the links, in
//! validate.rs; limits of the machine, such as how many namespaces it
//! allows, are checked by `up` before it creates anything.)

use std::collections::HashSet;

use super::error;
use crate::diag::Diagnostic;
use crate::model::index::LabIndex;
use crate::model::{Lab, NodeKind};

/// Ports of one Linux bridge: port numbers are 10 bits (BR_MAX_PORTS = 1024)
/// and 0 is reserved, so the 1024th port fails with EXFULL (br_if.c, find_portno).
pub const BRIDGE_MAX_PORTS: usize = 1023;

pub(super) fn check(lab: &Lab, index: &LabIndex, found: &mut Vec<Diagnostic>) {
    check_bridge_ports(lab, index, found);
}

fn check_bridge_ports(lab: &Lab, index: &LabIndex, found: &mut Vec<Diagnostic>) {
    let mut seen = HashSet::new();
    for bridge in lab.nodes.iter().filter(|n| n.kind == NodeKind::Bridge) {
        // A bridge declared twice is reported as such; count its ports once.
        if !seen.insert(bridge.name.as_str()) {
            continue;
        }
        let ports = index.endpoints_of(&bridge.name).count();
        if ports > BRIDGE_MAX_PORTS {
            found.push(error(
                &bridge.origin,
                format!("bridge {:?} has {ports} ports; a Linux bridge takes at most {BRIDGE_MAX_PORTS}", bridge.name),
                help(ports),
            ));
        }
    }
}

/// Several bridges, or a tree of them: `topo.tree(2, f)` puts f bridges of
/// f hosts under one, the smallest f with f * f >= ports.
fn help(ports: usize) -> String {
    let fanout = (1..).find(|f| f * f >= ports).expect("unbounded");
    format!(
        "spread the hosts over {} bridges joined by a router or by a bridge above them, or use require(\"topo\").tree(2, {fanout}) ({fanout} bridges of {fanout} hosts under one: {} hosts)",
        ports.div_ceil(BRIDGE_MAX_PORTS - 1),
        fanout * fanout
    )
}
