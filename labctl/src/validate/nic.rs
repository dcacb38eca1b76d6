//! Checks of claimed NICs, macvlans, VFs and `sriov()` that need only the
//! lab: names, numbers, one claim per device, VF indexes within the VFs
//! the lab creates. What needs the machine (the device exists, carries no
//! address, is not another lab's) is apply's preflight (apply/nic/preflight.rs).

use std::collections::HashMap;

use ipnet::IpNet;

use super::{check_ifname, error, place, IPV6_MIN_MTU, MTU_RANGE};
use crate::diag::{Diagnostic, Origin};
use crate::model::{Lab, NicClaim, NicSource, NodeKind, Sriov};

const MAX_VLAN: u32 = 4095;
const MAX_QOS: u32 = 7;
/// The most VFs a PCIe function can have (the SR-IOV capability's TotalVFs is 16 bits).
const MAX_VFS: u32 = 65535;

pub(super) fn check(lab: &Lab, found: &mut Vec<Diagnostic>) {
    let mut devices: HashMap<String, &Origin> = HashMap::new();
    for claim in &lab.nics {
        check_claim(lab, claim, found);
        let device = match &claim.source {
            NicSource::Whole { host } | NicSource::Macvlan { host, .. } => host.clone(),
            NicSource::Vf { pf, index } => format!("VF {index} of {pf}"),
        };
        // A macvlan leaves its parent in place: several may share one.
        if matches!(claim.source, NicSource::Macvlan { .. }) {
            continue;
        }
        if let Some(first) = devices.insert(device.clone(), &claim.origin) {
            found.push(error(
                &claim.origin,
                format!("{device} is claimed twice (first at {})", place(first, &claim.origin)),
                "a device can be in one node only; share a NIC with macvlan() instead",
            ));
        }
    }
    let mut pfs: HashMap<&str, &Origin> = HashMap::new();
    for sriov in &lab.sriov {
        if let Some(first) = pfs.insert(&sriov.pf, &sriov.origin) {
            found.push(error(
                &sriov.origin,
                format!("sriov({:?}) is declared twice (first at {})", sriov.pf, place(first, &sriov.origin)),
                "give each PF one sriov() with all its VFs",
            ));
        }
        check_sriov(sriov, found);
    }
}

fn check_claim(lab: &Lab, claim: &NicClaim, found: &mut Vec<Diagnostic>) {
    let origin = &claim.origin;
    let call = call_of(claim);
    if lab.node(&claim.node).is_some_and(|n| n.kind == NodeKind::Bridge) {
        found.push(error(origin, format!("{call}: {} is a bridge", claim.node), "claim devices into a node()"));
    }
    let kind = lab.node(&claim.node).map_or(NodeKind::Host, |n| n.kind);
    if let Err(problem) = check_ifname(&claim.ifname, kind) {
        found.push(error(
            origin,
            format!("{call}: interface name {:?}: {problem}", claim.ifname),
            "pick another name = \"...\"",
        ));
    }
    let link_end = lab.endpoints_of(&claim.node).any(|e| e.ifname == claim.ifname);
    let earlier = lab.nics_of(&claim.node).take_while(|n| !std::ptr::eq(*n, claim)).any(|n| n.ifname == claim.ifname);
    if link_end || earlier {
        found.push(error(
            origin,
            format!("{call}: {} already has an interface named {}", claim.node, claim.ifname),
            "give it another name = \"...\"",
        ));
    }
    if let Some(mtu) = claim.mtu {
        if !MTU_RANGE.contains(&mtu) {
            found.push(error(
                origin,
                format!("{call}: mtu {mtu} is out of range"),
                format!("use an mtu between {} and {}", MTU_RANGE.start(), MTU_RANGE.end()),
            ));
        } else if mtu < IPV6_MIN_MTU && claim.addresses.iter().any(|a| matches!(a, IpNet::V6(_))) {
            found.push(error(
                origin,
                format!("{call}: mtu {mtu} is too small for IPv6"),
                format!("IPv6 needs an mtu of at least {IPV6_MIN_MTU}"),
            ));
        }
    }
    match &claim.source {
        NicSource::Whole { host } => {
            if let Some(sriov) = lab.sriov.iter().find(|s| s.pf == *host) {
                found.push(error(
                    origin,
                    format!("{call}: {host} is the PF of sriov() at {}", place(&sriov.origin, origin)),
                    "a PF whose VFs the lab uses stays in the host; claim its VFs with vf() instead",
                ));
            }
        }
        NicSource::Vf { pf, index } => {
            if let Some(sriov) = lab.sriov.iter().find(|s| s.pf == *pf) {
                if *index >= sriov.vfs {
                    found.push(error(
                        origin,
                        format!(
                            "{call}: VF {index} is beyond the {} VFs of {pf} (sriov() at {})",
                            sriov.vfs,
                            place(&sriov.origin, origin)
                        ),
                        format!("use an index from 0 to {}, or raise vfs", sriov.vfs.saturating_sub(1)),
                    ));
                }
            }
        }
        NicSource::Macvlan { .. } => {}
    }
}

fn call_of(claim: &NicClaim) -> String {
    match &claim.source {
        NicSource::Whole { host } => format!("nic({host:?})"),
        NicSource::Macvlan { host, .. } => format!("macvlan({host:?})"),
        NicSource::Vf { pf, index } => format!("vf({pf:?}, {index})"),
    }
}

fn check_sriov(sriov: &Sriov, found: &mut Vec<Diagnostic>) {
    let origin = &sriov.origin;
    let pf = &sriov.pf;
    if sriov.vfs > MAX_VFS {
        found.push(error(
            origin,
            format!("sriov({pf:?}): {} VFs is out of range", sriov.vfs),
            "a PF has at most 65535 VFs; see sriov_totalvfs",
        ));
    }
    for vf in &sriov.settings {
        let at = format!("sriov({pf:?}) vf[{}]", vf.index);
        if vf.index >= sriov.vfs {
            found.push(error(
                origin,
                format!("{at}: VF {} is beyond the {} VFs the PF gets", vf.index, sriov.vfs),
                format!("use an index from 0 to {}, or raise vfs", sriov.vfs.saturating_sub(1)),
            ));
        }
        if vf.vlan.is_some_and(|v| v > MAX_VLAN) {
            found.push(error(
                origin,
                format!("{at}: vlan {} is out of range", vf.vlan.unwrap_or(0)),
                "use a VLAN id from 0 (none) to 4095",
            ));
        }
        match vf.qos {
            Some(qos) if qos > MAX_QOS => found.push(error(
                origin,
                format!("{at}: qos {qos} is out of range"),
                "qos is an 802.1p priority from 0 to 7",
            )),
            Some(_) if vf.vlan.is_none() => found.push(error(
                origin,
                format!("{at}: qos without vlan"),
                "qos is the priority of the VLAN tag: give vlan = <id> too",
            )),
            _ => {}
        }
        if let (Some(min), Some(max)) = (vf.min_tx_rate, vf.max_tx_rate) {
            if max != 0 && min > max {
                found.push(error(
                    origin,
                    format!("{at}: min_tx_rate {min} is above max_tx_rate {max}"),
                    "rates are in Mbit/s; min must not exceed max (0 means no limit)",
                ));
            }
        }
        if let Some(mac) = vf.mac {
            if !mac.is_unicast() {
                found.push(error(
                    origin,
                    format!("{at}: mac {mac} is not a unicast address"),
                    "the first byte must be even, e.g. 02:00:00:00:00:01",
                ));
            }
        }
    }
}
