//! Plan steps of real devices: SR-IOV on each PF, then each claim.

use std::fmt;

use ipnet::IpNet;

use super::Step;
use crate::model::{Lab, NicSource, VfSettings};

pub(super) fn steps(lab: &Lab) -> Vec<Step> {
    let sriov =
        lab.sriov.iter().map(|s| Step::ConfigureSriov { pf: s.pf.clone(), vfs: s.vfs, settings: s.settings.clone() });
    let claims = lab.nics.iter().map(|n| Step::ClaimNic {
        node: n.node.clone(),
        ifname: n.ifname.clone(),
        source: n.source.clone(),
        mtu: n.mtu,
        addresses: n.addresses.clone(),
    });
    sriov.chain(claims).collect()
}

pub(super) fn describe_sriov(f: &mut fmt::Formatter<'_>, pf: &str, vfs: u32, settings: &[VfSettings]) -> fmt::Result {
    write!(f, "host {pf}: sriov_numvfs {vfs} (saved first, restored by down)")?;
    for vf in settings {
        write!(f, "; vf {}: {}", vf.index, vf_settings(vf).join(" "))?;
    }
    Ok(())
}

/// `ip link set PF vf N ...` words for one VF's settings.
pub fn vf_settings(vf: &VfSettings) -> Vec<String> {
    let mut words = Vec::new();
    if let Some(mac) = vf.mac {
        words.push(format!("mac {mac}"));
    }
    if let Some(vlan) = vf.vlan {
        words.push(format!("vlan {vlan}"));
    }
    if let Some(qos) = vf.qos {
        words.push(format!("qos {qos}"));
    }
    let on = |b: bool| if b { "on" } else { "off" };
    if let Some(b) = vf.spoofchk {
        words.push(format!("spoofchk {}", on(b)));
    }
    if let Some(b) = vf.trust {
        words.push(format!("trust {}", on(b)));
    }
    if let Some(state) = vf.link_state {
        words.push(format!("state {}", format!("{state:?}").to_lowercase()));
    }
    if let Some(rate) = vf.min_tx_rate {
        words.push(format!("min_tx_rate {rate}"));
    }
    if let Some(rate) = vf.max_tx_rate {
        words.push(format!("max_tx_rate {rate}"));
    }
    words
}

pub(super) fn describe_claim(
    f: &mut fmt::Formatter<'_>,
    node: &str,
    ifname: &str,
    source: &NicSource,
    mtu: Option<u32>,
    addresses: &[IpNet],
) -> fmt::Result {
    match source {
        NicSource::Whole { host } => {
            write!(f, "{node}:{ifname}: claim host NIC {host} (saved first, restored by down)")?
        }
        NicSource::Macvlan { host, mode } => write!(f, "{node}:{ifname}: macvlan on host NIC {host} (mode {mode})")?,
        NicSource::Vf { pf, index } => {
            write!(f, "{node}:{ifname}: claim VF {index} of {pf} (saved first, restored by down)")?
        }
    }
    if let Some(mtu) = mtu {
        write!(f, ", mtu {mtu}")?;
    }
    for address in addresses {
        write!(f, ", addr {address}")?;
    }
    write!(f, ", up")
}
