//! Host devices in a lab: SR-IOV on a PF, whole NICs and VF netdevs moved
//! into nodes, macvlans on host NICs; and putting all of it back.
//!
//! Claiming saves what the device is and carries (saved.rs) before the
//! first change, and locks it host-wide (claims.rs). Restoring finds each
//! device by identity wherever it is now (in its node, back in labctl's
//! namespace, or in the initial namespace under another name after its
//! node's namespace was deleted), puts the VF's PF-side settings back
//! first, moves it home, then its name, MTU, MAC, alias, altnames and
//! addresses, and last the PFs' VF counts and VF settings.

mod claims;
pub mod inventory;
pub mod link;
pub mod preflight;
pub mod saved;
pub mod sysfs;

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use super::netns::{self, NetnsError};
use crate::model::{NicSource, VfSettings};
use crate::plan::Step;
use link::{in_netns, Live};
use saved::{Identity, SavedNic, SavedSriov, SavedVf, VfState};

/// How long a VF netdev may take to appear after sriov_numvfs is written.
const VF_PROBE_LIMIT: Duration = Duration::from_secs(20);
/// How long `up` waits for a claimed device's carrier.
const CARRIER_LIMIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum NicError {
    #[error("cannot {what}: {source}")]
    Netlink { what: &'static str, source: rtnetlink::Error },
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{path} is corrupt: {source}")]
    Corrupt { path: PathBuf, source: serde_json::Error },
    #[error("cannot start a netlink connection: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("host device {0:?} is not there")]
    Missing(String),
    #[error("{0} has no PCI address: SR-IOV needs a PCI device")]
    NotPci(String),
    #[error("VF {index} of {pf} did not appear within {limit:?} (is its VF driver loaded?)")]
    NoVf { pf: String, index: u32, limit: Duration },
    #[error("{device} is claimed by lab {lab:?}")]
    Taken { device: String, lab: String },
    #[error("could not restore: {}", .0.join("; "))]
    Restore(Vec<String>),
}

/// Where the lab's host devices live: labctl's own namespace, the lab's
/// state folder, the lab's name.
pub struct Host<'a> {
    pub home: &'a File,
    pub state: &'a Path,
    pub lab: &'a str,
}

/// (device, inode) of a namespace file: its identity.
fn netns_id(file: &File) -> (u64, u64) {
    file.metadata().map(|m| (m.dev(), m.ino())).unwrap_or_default()
}

/// The network namespace of the calling thread.
pub fn current_netns() -> Result<File, NicError> {
    let path = "/proc/thread-self/ns/net";
    File::open(path).map_err(|source| NicError::Io { what: "cannot open", path: path.into(), source })
}

fn pci_of(live: &Live) -> Result<String, NicError> {
    match (&live.parent_bus, &live.parent_dev) {
        (Some(bus), Some(dev)) if bus == "pci" => Ok(dev.clone()),
        _ => Err(NicError::NotPci(live.name.clone())),
    }
}

async fn find_by_name(handle: &rtnetlink::Handle, name: &str) -> Result<Live, NicError> {
    link::by_name(handle, name).await?.ok_or_else(|| NicError::Missing(name.to_string()))
}

/// Runs one Nics-phase step: `nodes` holds each node's namespace, `n` numbers the claim.
pub fn apply(host: &Host, nodes: &HashMap<&str, &File>, n: usize, step: &Step) -> Result<(), NicError> {
    match step {
        Step::ConfigureSriov { pf, vfs, settings } => configure_sriov(host, pf, *vfs, settings),
        Step::ClaimNic { node, ifname, source, mtu, addresses } => {
            let netns = nodes[node.as_str()];
            match source {
                NicSource::Macvlan { host: parent, mode } => in_netns(host.home, |h| async move {
                    let parent = find_by_name(&h, parent).await?;
                    link::create_macvlan(&h, parent.ifindex, *mode, netns, ifname).await
                })?,
                NicSource::Whole { host: name } => {
                    let live = in_netns(host.home, |h| async move { find_by_name(&h, name).await })?;
                    take(host, n, node, ifname, netns, live, None)?;
                }
                NicSource::Vf { pf, index } => {
                    let (live, vf) = find_vf(host, pf, *index)?;
                    take(host, n, node, ifname, netns, live, Some(vf))?;
                }
            }
            configure_in_node(netns, ifname, *mtu, addresses)
        }
        other => unreachable!("{other:?} is not a host device step"),
    }
}

/// The VF count, then the PF-side settings of each VF the lab names.
fn configure_sriov(host: &Host, pf: &str, vfs: u32, settings: &[VfSettings]) -> Result<(), NicError> {
    let live = in_netns(host.home, |h| async move { find_by_name(&h, pf).await })?;
    let pci = pci_of(&live)?;
    let identity = Identity::of(&live);
    let already = saved::saved_sriov(host.state)?.into_iter().any(|(_, s)| s.pci == pci);
    if !already {
        let numvfs = sysfs::num_vfs(&pci).unwrap_or(0);
        saved::save_sriov(
            host.state,
            &SavedSriov { pf: pf.into(), identity, pci: pci.clone(), numvfs, vfs: live.vfs },
        )?;
    }
    claims::acquire(&format!("sriov-{pci}"), host.lab)?;
    sysfs::set_num_vfs(&pci, vfs)?;
    if settings.is_empty() {
        return Ok(());
    }
    let pf_index = live.ifindex;
    in_netns(host.home, |h| async move {
        let now = link::by_index(&h, pf_index).await?.ok_or_else(|| NicError::Missing(pf.to_string()))?;
        let targets: Vec<VfState> =
            settings.iter().map(|wanted| merged(&current_vf(&now, wanted.index), wanted)).collect();
        set_vfs(&h, &now, &targets).await
    })
}

/// What the PF reports for VF `index` now.
fn current_vf(pf: &Live, index: u32) -> VfState {
    pf.vfs.iter().find(|v| v.index == index).cloned().unwrap_or(VfState { index, ..VfState::default() })
}

/// Sets on the PF whatever differs between its VFs now and `wanted`.
async fn set_vfs(h: &rtnetlink::Handle, pf: &Live, wanted: &[VfState]) -> Result<(), NicError> {
    for vf in wanted {
        for change in link::vf_changes(&current_vf(pf, vf.index), vf) {
            link::set_vf(h, pf.ifindex, change).await?;
        }
    }
    Ok(())
}

/// The device with `identity` in the handle's namespace.
async fn find_by_identity(h: &rtnetlink::Handle, identity: &Identity, name: &str) -> Result<Live, NicError> {
    link::dump(h).await?.into_iter().find(|l| identity.matches(l)).ok_or_else(|| NicError::Missing(name.to_string()))
}

/// `current` with what the lab sets on top.
fn merged(current: &VfState, wanted: &VfSettings) -> VfState {
    let mut target = current.clone();
    target.index = wanted.index;
    if let Some(mac) = wanted.mac {
        target.mac = mac;
    }
    if let Some(vlan) = wanted.vlan {
        target.vlan = vlan;
        target.qos = wanted.qos.unwrap_or(0);
    }
    if wanted.spoofchk.is_some() {
        target.spoofchk = wanted.spoofchk;
    }
    if wanted.trust.is_some() {
        target.trust = wanted.trust;
    }
    if let Some(state) = wanted.link_state {
        target.link_state = state.to_kernel();
    }
    if let Some(rate) = wanted.min_tx_rate {
        target.min_tx_rate = rate;
    }
    if let Some(rate) = wanted.max_tx_rate {
        target.max_tx_rate = rate;
    }
    target
}

/// The netdev of VF `index` of `pf`, in labctl's namespace, and what to save about it.
fn find_vf(host: &Host, pf: &str, index: u32) -> Result<(Live, SavedVf), NicError> {
    let pf_live = in_netns(host.home, |h| async move { find_by_name(&h, pf).await })?;
    let pf_pci = pci_of(&pf_live)?;
    let missing = || NicError::NoVf { pf: pf.to_string(), index, limit: VF_PROBE_LIMIT };
    let pci = sysfs::wait_for(VF_PROBE_LIMIT, || Ok(sysfs::vf_pci(&pf_pci, index)))?.ok_or_else(missing)?;
    let live = sysfs::wait_for(VF_PROBE_LIMIT, || {
        let pci = pci.clone();
        in_netns(host.home, |h| async move {
            Ok(link::dump(&h).await?.into_iter().find(|l| l.parent_dev.as_deref() == Some(pci.as_str())))
        })
    })?
    .ok_or_else(missing)?;
    // What the VF was before the lab: from the PF's saved state if the lab set it up.
    let before = saved::saved_sriov(host.state)?
        .into_iter()
        .find(|(_, s)| s.pci == pf_pci)
        .map(|(_, s)| s.vfs.into_iter().find(|v| v.index == index));
    let info = match before {
        Some(Some(info)) => info,
        // The lab created it: it had the driver's defaults, as now... unless the lab set them.
        Some(None) => VfState { index, ..VfState::default() },
        None => {
            pf_live.vfs.iter().find(|v| v.index == index).cloned().unwrap_or(VfState { index, ..VfState::default() })
        }
    };
    let vf = SavedVf { pf: pf.to_string(), pf_identity: Identity::of(&pf_live), index, pci, info };
    Ok((live, vf))
}

/// Saves, locks and moves one device into its node under its lab name.
fn take(
    host: &Host,
    n: usize,
    node: &str,
    ifname: &str,
    netns: &File,
    live: Live,
    vf: Option<SavedVf>,
) -> Result<(), NicError> {
    let ifindex = live.ifindex;
    let addresses = in_netns(host.home, |h| async move { link::addresses(&h, ifindex).await })?;
    let identity = Identity::of(&live);
    let lock = vf.as_ref().map_or_else(|| identity.lock_key(), |vf| format!("pci-{}", vf.pci));
    let record = SavedNic {
        node: node.to_string(),
        lab_ifname: ifname.to_string(),
        identity,
        name: live.name.clone(),
        mtu: live.mtu,
        mac: live.mac,
        alias: live.alias.clone(),
        altnames: live.altnames.clone(),
        up: live.up,
        addresses,
        origin_netns: netns_id(host.home),
        vf,
    };
    // Saved first: a kill -9 right after leaves a record that `down` restores and unlocks.
    saved::save_nic(host.state, n, &record)?;
    claims::acquire(&lock, host.lab)?;
    // Its own altname equal to its lab name would block the rename.
    let clash = live.altnames.iter().find(|a| *a == ifname).cloned();
    in_netns(host.home, |h| async move {
        if let Some(name) = clash {
            link::del_altname(&h, ifindex, &name).await?;
        }
        link::move_to(&h, ifindex, netns, ifname, None).await
    })
}

/// MTU, addresses, up: inside the node, by the device's lab name.
fn configure_in_node(netns: &File, ifname: &str, mtu: Option<u32>, addresses: &[IpNet]) -> Result<(), NicError> {
    in_netns(netns, |h| async move {
        let live = find_by_name(&h, ifname).await?;
        if let Some(mtu) = mtu {
            link::set_mtu(&h, live.ifindex, mtu).await?;
        }
        for address in addresses {
            link::add_address(&h, live.ifindex, *address).await?;
        }
        link::set_up(&h, live.ifindex).await
    })
}

/// Waits a while for every claimed device's carrier (autonegotiation, a VF
/// asking its PF), all at once, so the lab's first packets are not lost; a
/// device without one after [`CARRIER_LIMIT`] only gets a warning.
pub fn await_carriers(nodes: &HashMap<&str, &File>, steps: &[&Step]) -> Result<(), NicError> {
    let mut waiting: Vec<(&str, &str)> = steps
        .iter()
        .filter_map(|s| match s {
            Step::ClaimNic { node, ifname, .. } => Some((node.as_str(), ifname.as_str())),
            _ => None,
        })
        .collect();
    sysfs::wait_for(CARRIER_LIMIT, || {
        let mut still = Vec::new();
        for &(node, ifname) in &waiting {
            let up =
                in_netns(
                    nodes[node],
                    |h| async move { Ok(link::by_name(&h, ifname).await?.is_some_and(|l| l.carrier)) },
                )?;
            if !up {
                still.push((node, ifname));
            }
        }
        waiting = still;
        Ok(waiting.is_empty().then_some(()))
    })?;
    for (node, ifname) in waiting {
        eprintln!("labctl: {node}:{ifname} has no carrier after {CARRIER_LIMIT:?} (no cable? its PF down?)");
    }
    Ok(())
}

/// The lock key a saved device holds.
fn lock_of(saved: &SavedNic) -> String {
    saved.vf.as_ref().map_or_else(|| saved.identity.lock_key(), |vf| format!("pci-{}", vf.pci))
}

/// Restores everything the state folder says the lab took, in reverse:
/// devices (VF settings on the PF first), then the PFs. `nodes` are the
/// lab's namespace names, where claimed devices may still be. Keeps going
/// past a failure and reports them all; the records of what failed stay
/// for the next `down`.
pub fn restore(state: &Path, lab: &str, nodes: &[&str]) -> Result<usize, NicError> {
    let home = current_netns()?;
    let host = Host { home: &home, state, lab };
    let mut problems = Vec::new();
    let mut restored = 0;
    let mut records = saved::saved_nics(state)?;
    records.reverse();
    for (path, saved) in records {
        match restore_nic(&host, nodes, &saved) {
            Ok(found) => {
                restored += usize::from(found);
                if !found {
                    eprintln!(
                        "labctl: host device {} is gone (a virtual device is deleted with its namespace)",
                        saved.name
                    );
                }
                saved::forget(&path)?;
                claims::release(&lock_of(&saved), lab);
            }
            Err(e) => problems.push(format!("{} ({}:{}): {e}", saved.name, saved.node, saved.lab_ifname)),
        }
    }
    for (path, saved) in saved::saved_sriov(state)? {
        match restore_sriov(&host, &saved) {
            Ok(()) => {
                saved::forget(&path)?;
                claims::release(&format!("sriov-{}", saved.pci), lab);
            }
            Err(e) => problems.push(format!("SR-IOV of {}: {e}", saved.pf)),
        }
    }
    if problems.is_empty() {
        Ok(restored)
    } else {
        Err(NicError::Restore(problems))
    }
}

/// The namespaces a claimed device may be in now, its node's first.
fn places(host: &Host, node_netns: &[&str], saved: &SavedNic) -> Vec<File> {
    let node_first = node_netns.iter().filter(|n| n.ends_with(&format!("-{}", saved.node)));
    let others = node_netns.iter().filter(|n| !n.ends_with(&format!("-{}", saved.node)));
    let mut places: Vec<File> = node_first.chain(others).filter_map(|n| netns::open(n).ok()).collect();
    places.extend(host.home.try_clone().ok());
    // A physical device whose namespace was destroyed is in the initial one.
    if let Ok(init) = File::open("/proc/1/ns/net") {
        if netns_id(&init) != netns_id(host.home) {
            places.push(init);
        }
    }
    places
}

/// Puts one device back; false if it is nowhere (a veth stand-in dies with its namespace).
fn restore_nic(host: &Host, nodes: &[&str], saved: &SavedNic) -> Result<bool, NicError> {
    if netns_id(host.home) != saved.origin_netns {
        eprintln!("labctl: {} came from another network namespace; restoring it into this one", saved.name);
    }
    let mut found = None;
    for place in places(host, nodes, saved) {
        let identity = saved.identity.clone();
        let hit =
            in_netns(&place, |h| async move { Ok(link::dump(&h).await?.into_iter().find(|l| identity.matches(l))) })?;
        if let Some(live) = hit {
            found = Some((place, live));
            break;
        }
    }
    let Some((place, live)) = found else { return Ok(false) };
    if let Some(vf) = &saved.vf {
        restore_vf_settings(host, vf)?;
    }
    let ifindex =
        if netns_id(&place) == netns_id(host.home) { live.ifindex } else { move_home(host, &place, &live, saved)? };
    put_back(host.home, ifindex, saved)?;
    Ok(true)
}

/// The VF's PF-side settings as they were, before the VF moves back.
fn restore_vf_settings(host: &Host, vf: &SavedVf) -> Result<(), NicError> {
    in_netns(host.home, |h| async move {
        let pf = find_by_identity(&h, &vf.pf_identity, &vf.pf).await?;
        set_vfs(&h, &pf, std::slice::from_ref(&vf.info)).await
    })
}

/// Moves a device from `place` into labctl's namespace as `name`; returns its ifindex there.
fn move_home(host: &Host, place: &File, live: &Live, saved: &SavedNic) -> Result<u32, NicError> {
    let (ifindex, home, name) = (live.ifindex, host.home, saved.name.as_str());
    // Its old ifindex too, if free at home.
    let old_index = saved.identity.ifindex;
    let free = in_netns(home, |h| async move { Ok(link::by_index(&h, old_index).await?.is_none()) })?;
    let wanted = (free && old_index != ifindex).then_some(old_index);
    in_netns(place, |h| async move { link::move_to(&h, ifindex, home, name, wanted).await })?;
    let identity = Identity::of(live);
    in_netns(host.home, |h| async move {
        let back = link::dump(&h).await?.into_iter().find(|l| identity.matches(l) || l.name == name);
        back.map(|l| l.ifindex).ok_or_else(|| NicError::Missing(name.to_string()))
    })
}

/// Name, MTU, MAC, alias, altnames, addresses, then up or down, as saved.
fn put_back(home: &File, ifindex: u32, saved: &SavedNic) -> Result<(), NicError> {
    in_netns(home, |h| async move {
        let live = link::by_index(&h, ifindex).await?.ok_or_else(|| NicError::Missing(saved.name.clone()))?;
        link::set_down(&h, ifindex).await?;
        if live.name != saved.name {
            if live.altnames.contains(&saved.name) {
                link::del_altname(&h, ifindex, &saved.name).await?;
            }
            link::rename(&h, ifindex, &saved.name).await?;
        }
        if live.mtu != saved.mtu {
            link::set_mtu(&h, ifindex, saved.mtu).await?;
        }
        if let Some(mac) = saved.mac.filter(|m| live.mac != Some(*m)) {
            link::set_mac(&h, ifindex, mac).await?;
        }
        if live.alias != saved.alias {
            link::set_alias(&h, ifindex, saved.alias.as_deref().unwrap_or("")).await?;
        }
        let live = link::by_index(&h, ifindex).await?.ok_or_else(|| NicError::Missing(saved.name.clone()))?;
        for extra in live.altnames.iter().filter(|a| !saved.altnames.contains(a)) {
            link::del_altname(&h, ifindex, extra).await?;
        }
        for missing in saved.altnames.iter().filter(|a| !live.altnames.contains(a)) {
            link::add_altname(&h, ifindex, missing).await?;
        }
        for address in &saved.addresses {
            link::restore_address(&h, ifindex, address).await?;
        }
        if saved.up {
            link::set_up(&h, ifindex).await?;
        }
        Ok(())
    })
}

/// The PF's VF count, then every VF's settings, as saved.
fn restore_sriov(host: &Host, saved: &SavedSriov) -> Result<(), NicError> {
    sysfs::set_num_vfs(&saved.pci, saved.numvfs)?;
    in_netns(host.home, |h| async move {
        let pf = find_by_identity(&h, &saved.identity, &saved.pf).await?;
        set_vfs(&h, &pf, &saved.vfs).await
    })
}
