//! Steps of impairments and static neighbours (model/impair.rs,
//! model/neighbour.rs): a [`Step::ShapeEgress`] for each end with a rate,
//! limit or netem setting; a [`Step::AttachLoss`] at the *peer* of each
//! end with a loss (the receiver drops, so the sender cannot retry it
//! away); an [`Step::AddNeighbour`] per permanent entry.

use std::collections::HashMap;
use std::fmt;

use super::{Device, Step};
use crate::model::impair::DEFAULT_SEED;
use crate::model::layout::loss_pin_dir;
use crate::model::{ImpairSettings, Lab, Tuning};

/// The MTU of a link whose script sets none.
pub const DEFAULT_MTU: u32 = 1500;

pub(super) fn steps(lab: &Lab, ifindex_of: &HashMap<(String, String), u32>) -> Vec<Step> {
    let device = |node: &str, ifname: &str| {
        let ifindex = ifindex_of.get(&(node.to_string(), ifname.to_string())).copied().unwrap_or(0);
        Device { node: node.into(), ifname: ifname.into(), ifindex }
    };
    let mut steps = Vec::new();
    for i in &lab.impairments {
        let Some(peer) = lab.peer_of(&i.node, &i.ifname) else { continue };
        let mtu = lab
            .links
            .iter()
            .find(|l| l.ends.iter().any(|e| e.node == i.node && e.ifname == i.ifname))
            .and_then(|l| l.mtu)
            .unwrap_or(DEFAULT_MTU);
        if i.settings.needs_qdisc() {
            steps.push(Step::ShapeEgress { device: device(&i.node, &i.ifname), settings: i.settings, mtu });
        }
        if i.settings.rate.is_some() {
            if let Some(tuning) = wire_sized(lab, i) {
                steps.push(Step::Tune { device: device(&i.node, &i.ifname), tuning });
            }
        }
        if let Some(ppm) = i.settings.loss_ppm() {
            steps.push(Step::AttachLoss {
                device: device(&peer.node, &peer.ifname),
                from: device(&i.node, &i.ifname),
                ppm,
                seed: i.settings.seed.unwrap_or(DEFAULT_SEED),
                pins: loss_pin_dir(&lab.name, &peer.node, &peer.ifname),
            });
        }
    }
    for entry in lab.neighbour_entries() {
        steps.push(Step::AddNeighbour {
            device: device(&entry.node, &entry.ifname),
            address: entry.address,
            mac: entry.mac,
        });
    }
    steps
}

/// A shaped end sends wire-sized packets: GSO and TSO off, unless the
/// script tunes them itself. With them on, tbf cuts each 64 KB
/// super-packet into dozens of segments at its queue's edge and drops the
/// tail of it at once; TCP then spends its time recovering (measured on a
/// 10 Mbit/s link: 8.3 Mbit/s on the wire over 3 s, against 10.0 without).
fn wire_sized(lab: &Lab, i: &crate::model::Impairment) -> Option<Tuning> {
    let node = lab.node(&i.node)?;
    let tuned = node.tunings.iter().filter(|t| t.ifname == i.ifname);
    if tuned.clone().any(|t| t.offloads.contains_key("gso") || t.offloads.contains_key("tso")) {
        return None;
    }
    let offloads = [("gso".to_string(), false), ("tso".to_string(), false)].into_iter().collect();
    Some(Tuning { ifname: i.ifname.clone(), offloads, origin: i.origin.clone(), ..Tuning::default() })
}

pub(super) fn describe_shape(f: &mut fmt::Formatter<'_>, device: &Device, s: &ImpairSettings, mtu: u32) -> fmt::Result {
    let qdiscs = match (s.rate.is_some(), s.needs_netem()) {
        (true, true) => "tbf root, netem under it",
        (true, false) => "tbf root",
        (false, true) => "netem root",
        (false, false) => "pfifo root",
    };
    let shown = ImpairSettings { loss: None, seed: None, ..*s };
    write!(f, "{device}: qdisc {qdiscs}: {} (mtu {mtu})", shown.describe())
}
