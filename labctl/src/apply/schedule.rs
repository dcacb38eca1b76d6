//! Which netlink steps may start now: each step waits for the namespaces
//! and devices it needs, and starts the moment the last of them exists.
//! Events wake only the steps waiting on them, so scheduling stays linear in
//! the size of the lab.

use std::collections::HashMap;

use crate::plan::Step;

/// A node's namespace (ifindex 0) or a device in it.
type Resource = (String, u32);

const NAMESPACE: u32 = 0;
const LOOPBACK: u32 = 1;

pub struct Scheduler {
    /// Per step (by position): resources still missing.
    unmet: Vec<usize>,
    waiters: HashMap<Resource, Vec<usize>>,
    ready: Vec<usize>,
}

fn needs(step: &Step) -> Vec<Resource> {
    match step {
        Step::CreateBridge { device, .. } => vec![(device.node.clone(), NAMESPACE)],
        Step::CreateVeth { device, peer, master, .. } => {
            let mut needs = vec![(device.node.clone(), NAMESPACE), (peer.node.clone(), NAMESPACE)];
            needs.extend(master.map(|m| (device.node.clone(), m)));
            needs
        }
        Step::SetUp { device } | Step::AddAddress { device, .. } => vec![(device.node.clone(), device.ifindex)],
        Step::CreateVrf { device, .. } => vec![(device.node.clone(), NAMESPACE)],
        Step::CreateVlan { device, parent, .. } => vec![(device.node.clone(), *parent)],
        Step::SetMaster { device, master, .. } => {
            vec![(device.node.clone(), device.ifindex), (device.node.clone(), *master)]
        }
        Step::ConfigureBridge { device, .. } | Step::ConfigurePort { device, .. } => {
            vec![(device.node.clone(), device.ifindex)]
        }
        // Not streamed: their phases wait for the whole stream.
        Step::CreateNamespace { .. }
        | Step::NodeDefaults { .. }
        | Step::Sysctl { .. }
        | Step::Tune { .. }
        | Step::AddRoute { .. }
        | Step::SettleIpv6 { .. }
        | Step::ClaimNic { .. }
        | Step::ConfigureSriov { .. }
        | Step::StartIpsec { .. }
        | Step::AttachXdp { .. }
        | Step::AddNeighbour { .. }
        | Step::ShapeEgress { .. }
        | Step::AttachLoss { .. }
        | Step::AddRouteSpec { .. }
        | Step::AddNexthop { .. }
        | Step::AddRule { .. } => vec![],
    }
}

/// The devices a finished step brought into existence.
pub fn provides(step: &Step) -> Vec<(&str, u32)> {
    match step {
        Step::CreateBridge { device, .. } => vec![(&device.node, device.ifindex)],
        Step::CreateVeth { device, peer, .. } => vec![(&device.node, device.ifindex), (&peer.node, peer.ifindex)],
        Step::CreateVrf { device, .. } | Step::CreateVlan { device, .. } => vec![(&device.node, device.ifindex)],
        Step::CreateNamespace { .. }
        | Step::NodeDefaults { .. }
        | Step::Sysctl { .. }
        | Step::Tune { .. }
        | Step::SetUp { .. }
        | Step::AddAddress { .. }
        | Step::AddRoute { .. }
        | Step::SettleIpv6 { .. }
        | Step::ClaimNic { .. }
        | Step::ConfigureSriov { .. }
        | Step::StartIpsec { .. }
        | Step::AttachXdp { .. }
        | Step::AddNeighbour { .. }
        | Step::ShapeEgress { .. }
        | Step::AttachLoss { .. }
        | Step::AddRouteSpec { .. }
        | Step::AddNexthop { .. }
        | Step::AddRule { .. }
        | Step::SetMaster { .. }
        | Step::ConfigureBridge { .. }
        | Step::ConfigurePort { .. } => vec![],
    }
}

impl Scheduler {
    pub fn new(steps: &[&Step]) -> Self {
        let mut scheduler =
            Scheduler { unmet: Vec::with_capacity(steps.len()), waiters: HashMap::new(), ready: vec![] };
        for (position, step) in steps.iter().enumerate() {
            let needs = needs(step);
            scheduler.unmet.push(needs.len());
            if needs.is_empty() {
                scheduler.ready.push(position);
            }
            for resource in needs {
                scheduler.waiters.entry(resource).or_default().push(position);
            }
        }
        scheduler
    }

    /// A node's namespace exists (with its loopback device).
    pub fn node_ready(&mut self, node: &str) {
        self.provide(node, NAMESPACE);
        self.provide(node, LOOPBACK);
    }

    pub fn provide(&mut self, node: &str, ifindex: u32) {
        for position in self.waiters.remove(&(node.to_string(), ifindex)).unwrap_or_default() {
            self.unmet[position] -= 1;
            if self.unmet[position] == 0 {
                self.ready.push(position);
            }
        }
    }

    /// Positions of the steps that can start now, each returned once.
    pub fn take_ready(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MacAddr;
    use crate::plan::Device;

    fn dev(node: &str, ifindex: u32) -> Device {
        Device { node: node.into(), ifname: format!("if{ifindex}"), ifindex }
    }

    #[test]
    fn steps_start_when_their_namespaces_and_devices_exist() {
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let bridge = Step::CreateBridge { device: dev("sw", 2), mac };
        let veth = Step::CreateVeth {
            device: dev("sw", 3),
            mac,
            master: Some(2),
            peer: dev("h1", 2),
            peer_mac: mac,
            mtu: None,
            queues: None,
        };
        let up = Step::SetUp { device: dev("h1", 2) };
        let lo = Step::SetUp { device: dev("h1", 1) };
        let mut s = Scheduler::new(&[&bridge, &veth, &up, &lo]);
        assert!(s.take_ready().is_empty());
        s.node_ready("h1");
        assert_eq!(s.take_ready(), vec![3]); // lo only
        s.node_ready("sw");
        assert_eq!(s.take_ready(), vec![0]); // the bridge; the veth still needs br0
        for (node, ifindex) in provides(&bridge) {
            s.provide(node, ifindex);
        }
        assert_eq!(s.take_ready(), vec![1]);
        for (node, ifindex) in provides(&veth) {
            s.provide(node, ifindex);
        }
        assert_eq!(s.take_ready(), vec![2]);
    }
}
