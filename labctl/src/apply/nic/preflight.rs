//! The checks of host devices against the live machine, before `up`
//! changes anything: the device exists; a NIC to claim whole carries no
//! address and no default route (unless `force = true`); no other lab holds
//! it; a PF has SR-IOV and enough VFs; a VF index is within the PF's VFs.

use std::collections::HashMap;

use ipnet::IpNet;

use super::link::{self, in_netns, Live};
use super::saved::Identity;
use super::{claims, current_netns, sysfs, NicError};
use crate::diag::{Diagnostic, Origin};
use crate::model::{Lab, NicClaim, NicSource, Sriov};

/// What the machine has, read once.
struct Machine {
    devices: HashMap<String, Live>,
    addresses: HashMap<u32, Vec<super::saved::SavedAddress>>,
    default_routes: Vec<u32>,
}

fn read_machine() -> Result<Machine, NicError> {
    let home = current_netns()?;
    in_netns(&home, |h| async move {
        let all = link::dump(&h).await?;
        let mut addresses = HashMap::new();
        for live in &all {
            addresses.insert(live.ifindex, link::addresses(&h, live.ifindex).await?);
        }
        let default_routes = link::default_route_devices(&h).await?;
        Ok(Machine { devices: all.into_iter().map(|l| (l.name.clone(), l)).collect(), addresses, default_routes })
    })
}

/// Every problem with the lab's host devices; empty if it has none or all is well.
pub fn check(lab: &Lab) -> Result<Vec<Diagnostic>, NicError> {
    if lab.nics.is_empty() && lab.sriov.is_empty() {
        return Ok(Vec::new());
    }
    let machine = read_machine()?;
    let mut found = Vec::new();
    for sriov in &lab.sriov {
        check_sriov(lab, &machine, sriov, &mut found);
    }
    for claim in &lab.nics {
        check_claim(lab, &machine, claim, &mut found);
    }
    Ok(found)
}

fn error(origin: &Origin, message: String, help: impl Into<String>) -> Diagnostic {
    Diagnostic::new(origin.clone(), message).help(help)
}

/// The device named `name`, or a diagnostic listing what there is.
fn device<'a>(machine: &'a Machine, name: &str, origin: &Origin, call: &str) -> Result<&'a Live, Diagnostic> {
    machine.devices.get(name).ok_or_else(|| {
        let mut names: Vec<&str> =
            machine.devices.values().filter(|l| l.name != "lo").map(|l| l.name.as_str()).collect();
        names.sort();
        error(
            origin,
            format!("{call}: there is no network device {name:?} here"),
            format!(
                "the devices here: {} (see `labctl doctor`); or give another with --set",
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            ),
        )
    })
}

fn held_by_other(lab: &Lab, key: &str) -> Option<String> {
    claims::owner(key).filter(|owner| *owner != lab.name)
}

fn check_sriov(lab: &Lab, machine: &Machine, sriov: &Sriov, found: &mut Vec<Diagnostic>) {
    let call = format!("sriov({:?})", sriov.pf);
    let pf = match device(machine, &sriov.pf, &sriov.origin, &call) {
        Ok(pf) => pf,
        Err(d) => return found.push(d),
    };
    let Some(pci) = pf.parent_dev.clone().filter(|_| pf.parent_bus.as_deref() == Some("pci")) else {
        return found.push(error(
            &sriov.origin,
            format!("{call}: {} is not a PCI device, so it has no SR-IOV", sriov.pf),
            "name a PF: a PCI NIC with sriov_totalvfs > 0 (see `labctl doctor`)",
        ));
    };
    let Some(total) = sysfs::total_vfs(&pci).filter(|t| *t > 0) else {
        return found.push(error(
            &sriov.origin,
            format!("{call}: {} ({pci}) has no SR-IOV", sriov.pf),
            "name a PF with sriov_totalvfs > 0 (see `labctl doctor`), or enable SR-IOV in its firmware",
        ));
    };
    if sriov.vfs > total {
        found.push(error(
            &sriov.origin,
            format!("{call}: {} VFs asked, {} has at most {total}", sriov.vfs, sriov.pf),
            format!("use vfs = {total} or fewer"),
        ));
    }
    if let Some(owner) = held_by_other(lab, &format!("sriov-{pci}")) {
        found.push(error(
            &sriov.origin,
            format!("{call}: the VFs of {} are lab {owner:?}'s", sriov.pf),
            format!("run `labctl down {owner}` first"),
        ));
    }
    let current = sysfs::num_vfs(&pci).unwrap_or(0);
    if current != sriov.vfs {
        // Changing the count destroys every VF: none may be another lab's.
        for index in 0..current {
            let taken = sysfs::vf_pci(&pci, index).and_then(|vf| held_by_other(lab, &format!("pci-{vf}")));
            if let Some(owner) = taken {
                found.push(error(
                    &sriov.origin,
                    format!("{call}: changing the VF count would destroy VF {index}, which lab {owner:?} holds"),
                    format!("keep vfs = {current}, or run `labctl down {owner}` first"),
                ));
            }
        }
    }
}

fn check_claim(lab: &Lab, machine: &Machine, claim: &NicClaim, found: &mut Vec<Diagnostic>) {
    let origin = &claim.origin;
    match &claim.source {
        NicSource::Whole { host } => {
            let call = format!("nic({host:?})");
            let live = match device(machine, host, origin, &call) {
                Ok(live) => live,
                Err(d) => return found.push(d),
            };
            check_altnames(lab, claim, live, &call, found);
            if let Some(owner) = held_by_other(lab, &Identity::of(live).lock_key()) {
                found.push(error(
                    origin,
                    format!("{call}: {host} is claimed by lab {owner:?}"),
                    format!("run `labctl down {owner}` first"),
                ));
            }
            if claim.force {
                return;
            }
            if machine.default_routes.contains(&live.ifindex) {
                found.push(error(
                    origin,
                    format!("{call}: the host's default route goes out through {host}"),
                    "claiming it would cut this machine off; pick another NIC, share it with macvlan(), or add force = true",
                ));
            }
            let configured: Vec<String> = machine.addresses[&live.ifindex]
                .iter()
                .map(|a| a.address)
                .filter(|a| !is_link_local(a))
                .map(|a| a.to_string())
                .collect();
            if !configured.is_empty() {
                found.push(error(
                    origin,
                    format!("{call}: {host} has addresses ({}): the host uses it", configured.join(", ")),
                    "pick an unused NIC, share it with macvlan(), or add force = true (they come back on down)",
                ));
            }
        }
        NicSource::Macvlan { host, .. } => {
            if let Err(d) = device(machine, host, origin, &format!("macvlan({host:?})")) {
                found.push(d);
            }
        }
        NicSource::Vf { pf, index } => check_vf(lab, machine, claim, pf, *index, found),
    }
}

/// The kernel refuses to move a device whose altname names another device
/// in the target namespace (and an altname equal to its own lab name is
/// dropped for the stay and put back by `down`).
fn check_altnames(lab: &Lab, claim: &NicClaim, live: &Live, call: &str, found: &mut Vec<Diagnostic>) {
    let names: Vec<&str> = lab
        .endpoints_of(&claim.node)
        .map(|e| e.ifname.as_str())
        .chain(lab.nics_of(&claim.node).filter(|n| !std::ptr::eq(*n, claim)).map(|n| n.ifname.as_str()))
        .collect();
    for altname in live.altnames.iter().filter(|a| names.contains(&a.as_str())) {
        found.push(error(
            &claim.origin,
            format!("{call}: its altname {altname:?} is the name of another interface of {}", claim.node),
            format!(
                "name that interface apart, or remove the altname (ip link property del dev {} altname {altname})",
                live.name
            ),
        ));
    }
}

fn check_vf(lab: &Lab, machine: &Machine, claim: &NicClaim, pf: &str, index: u32, found: &mut Vec<Diagnostic>) {
    let origin = &claim.origin;
    let call = format!("vf({pf:?}, {index})");
    let live = match device(machine, pf, origin, &call) {
        Ok(live) => live,
        Err(d) => return found.push(d),
    };
    let pci = live.parent_dev.clone().filter(|_| live.parent_bus.as_deref() == Some("pci"));
    let Some(total) = pci.as_deref().and_then(sysfs::total_vfs).filter(|t| *t > 0) else {
        return found.push(error(
            origin,
            format!("{call}: {pf} has no SR-IOV"),
            "name a PF with sriov_totalvfs > 0 (see `labctl doctor`)",
        ));
    };
    let pci = pci.expect("checked above");
    // The VFs there will be: the lab's sriov() count, else what the PF has now.
    let declared = lab.sriov.iter().find(|s| s.pf == pf).map(|s| s.vfs);
    let vfs = declared.unwrap_or_else(|| sysfs::num_vfs(&pci).unwrap_or(0));
    if index >= vfs {
        found.push(error(
            origin,
            format!("{call}: {pf} has {vfs} VFs (of at most {total}), so there is no VF {index}"),
            format!("add sriov({pf:?}, {{ vfs = {} }}) to the lab, or use a lower index", index + 1),
        ));
        return;
    }
    if declared.is_none() {
        if let Some(owner) = sysfs::vf_pci(&pci, index).and_then(|vf| held_by_other(lab, &format!("pci-{vf}"))) {
            found.push(error(
                origin,
                format!("{call}: VF {index} of {pf} is claimed by lab {owner:?}"),
                format!("run `labctl down {owner}` first, or take another VF"),
            ));
        }
    }
}

fn is_link_local(net: &IpNet) -> bool {
    match net {
        IpNet::V6(v6) => (v6.addr().segments()[0] & 0xffc0) == 0xfe80,
        IpNet::V4(v4) => v4.addr().is_link_local(),
    }
}
