//! The machine's NICs for `labctl doctor`: driver, bus address, link,
//! queues, SR-IOV VFs, and whether a lab could claim each (and why not),
//! by the same rules as the preflight.

use super::link::{self, in_netns, Live};
use super::saved::{Identity, SavedAddress};
use super::{claims, current_netns, sysfs, NicError};

/// One hardware network device of labctl's namespace.
#[derive(Debug, Clone)]
pub struct NicInfo {
    pub name: String,
    pub driver: Option<String>,
    pub bus: String,
    pub up: bool,
    pub carrier: bool,
    pub rx_queues: u32,
    pub tx_queues: u32,
    /// (current, total) VFs, for a PF with SR-IOV.
    pub sriov: Option<(u32, u32)>,
    /// None: a lab can claim it whole; else why not.
    pub unclaimable: Option<String>,
}

/// Every device with a parent bus device (hardware, VFs), by name.
pub fn inventory() -> Result<Vec<NicInfo>, NicError> {
    let home = current_netns()?;
    let (links, routes, addresses) = in_netns(&home, |h| async move {
        let links = link::dump(&h).await?;
        let routes = link::default_route_devices(&h).await?;
        let mut addresses = Vec::new();
        for l in &links {
            addresses.push(link::addresses(&h, l.ifindex).await?);
        }
        Ok((links, routes, addresses))
    })?;
    let mut nics: Vec<NicInfo> = links
        .iter()
        .zip(&addresses)
        .filter(|(l, _)| l.parent_dev.is_some())
        .map(|(l, a)| describe(l, a, &routes))
        .collect();
    nics.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(nics)
}

fn describe(live: &Live, addresses: &[SavedAddress], default_routes: &[u32]) -> NicInfo {
    let dev = live.parent_dev.clone().unwrap_or_default();
    let pci = live.parent_bus.as_deref() == Some("pci");
    let sriov = pci
        .then(|| sysfs::total_vfs(&dev))
        .flatten()
        .filter(|t| *t > 0)
        .map(|t| (sysfs::num_vfs(&dev).unwrap_or(0), t));
    let configured: Vec<String> = addresses
        .iter()
        .filter(|a| !matches!(a.address, ipnet::IpNet::V6(v6) if (v6.addr().segments()[0] & 0xffc0) == 0xfe80))
        .map(|a| a.address.to_string())
        .collect();
    let unclaimable = if default_routes.contains(&live.ifindex) {
        Some("the host's default route uses it".to_string())
    } else if !configured.is_empty() {
        Some(format!("it has addresses ({})", configured.join(", ")))
    } else {
        claims::owner(&Identity::of(live).lock_key()).map(|lab| format!("lab {lab:?} holds it"))
    };
    NicInfo {
        name: live.name.clone(),
        driver: live.parent_bus.as_deref().and_then(|bus| sysfs::driver(bus, &dev)),
        bus: format!("{} {dev}", live.parent_bus.as_deref().unwrap_or("?")),
        up: live.up,
        carrier: live.carrier,
        rx_queues: live.rx_queues,
        tx_queues: live.tx_queues,
        sriov,
        unclaimable,
    }
}
