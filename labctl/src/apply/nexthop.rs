//! RTM_NEWNEXTHOP for nexthop objects (model/routing.rs `Nexthop`). The
//! rtnetlink crates in Cargo.lock have no nexthop messages, so this one is
//! built by hand (struct nhmsg and its NHA_* attributes, from
//! linux/nexthop.h) and sent with the small blocking client of
//! apply/ipsec/nl.rs, on a socket opened inside the node.

use std::net::IpAddr;

use netlink_packet_core::{NetlinkDeserializable, NetlinkHeader, NetlinkSerializable, NLM_F_CREATE, NLM_F_EXCL};

use super::ipsec::nl::Nl;
use crate::model::Nexthop;

const RTM_NEWNEXTHOP: u16 = 104;
const NHA_ID: u16 = 1;
const NHA_GROUP: u16 = 2;
const NHA_BLACKHOLE: u16 = 4;
const NHA_OIF: u16 = 5;
const NHA_GATEWAY: u16 = 6;
const RTPROT_STATIC: u8 = 4;
const AF_UNSPEC: u8 = 0;
const AF_INET: u8 = libc::AF_INET as u8;
const AF_INET6: u8 = libc::AF_INET6 as u8;

/// One RTM_NEWNEXTHOP payload: struct nhmsg, then its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NexthopMessage(pub Vec<u8>);

fn attribute(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = 4 + value.len();
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// The message of `nh`; `oif` is its device's ifindex in the node.
pub fn message(nh: &Nexthop, oif: Option<u32>) -> NexthopMessage {
    // Only groups go without a family; a blackhole or device nexthop is
    // IPv4 unless its gateway says otherwise (the kernel wants one).
    let family = match nh.via {
        Some(IpAddr::V6(_)) => AF_INET6,
        _ if !nh.group.is_empty() => AF_UNSPEC,
        _ => AF_INET,
    };
    // struct nhmsg { family, scope, protocol, resvd, flags: u32 }
    let mut out = vec![family, 0, RTPROT_STATIC, 0, 0, 0, 0, 0];
    attribute(&mut out, NHA_ID, &nh.id.to_ne_bytes());
    if nh.blackhole {
        attribute(&mut out, NHA_BLACKHOLE, &[]);
    }
    if let Some(index) = oif {
        attribute(&mut out, NHA_OIF, &index.to_ne_bytes());
    }
    match nh.via {
        Some(IpAddr::V4(a)) => attribute(&mut out, NHA_GATEWAY, &a.octets()),
        Some(IpAddr::V6(a)) => attribute(&mut out, NHA_GATEWAY, &a.octets()),
        None => {}
    }
    if !nh.group.is_empty() {
        // struct nexthop_grp { id: u32, weight: u8 (weight - 1), weight_high: u8, resvd2: u16 }
        let mut members = Vec::new();
        for &(id, weight) in &nh.group {
            let kernel_weight = weight.saturating_sub(1);
            members.extend_from_slice(&id.to_ne_bytes());
            members.push((kernel_weight & 0xff) as u8);
            members.push((kernel_weight >> 8) as u8);
            members.extend_from_slice(&[0, 0]);
        }
        attribute(&mut out, NHA_GROUP, &members);
    }
    NexthopMessage(out)
}

impl NetlinkSerializable for NexthopMessage {
    fn message_type(&self) -> u16 {
        RTM_NEWNEXTHOP
    }

    fn buffer_len(&self) -> usize {
        self.0.len()
    }

    fn serialize(&self, buffer: &mut [u8]) {
        buffer[..self.0.len()].copy_from_slice(&self.0);
    }
}

impl NetlinkDeserializable for NexthopMessage {
    type Error = std::io::Error;

    fn deserialize(_: &NetlinkHeader, payload: &[u8]) -> Result<Self, Self::Error> {
        Ok(NexthopMessage(payload.to_vec()))
    }
}

/// Adds `nh` in the calling thread's namespace.
pub fn add(nh: &Nexthop) -> Result<(), String> {
    let oif = match &nh.dev {
        Some(dev) => Some(nix::net::if_::if_nametoindex(dev.as_str()).map_err(|e| format!("no device {dev}: {e}"))?),
        None => None,
    };
    let mut nl = Nl::open(libc::NETLINK_ROUTE as isize).map_err(|e| format!("a netlink socket: {e}"))?;
    nl.request_with(message(nh, oif), NLM_F_CREATE | NLM_F_EXCL)
        .map_err(|e| format!("RTM_NEWNEXTHOP id {}: {e}", nh.id))
}

/// Does this kernel keep nexthop objects (CONFIG_IP_ROUTE... since 5.3)? Call it
/// in a scratch namespace: the probe's blackhole stays there.
pub fn probe() -> Result<(), String> {
    let probe = Nexthop {
        id: 1,
        via: None,
        dev: None,
        blackhole: true,
        group: vec![],
        origin: crate::diag::Origin::new("probe", 0),
    };
    add(&probe)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Origin;

    fn nh(id: u32) -> Nexthop {
        Nexthop { id, via: None, dev: None, blackhole: false, group: vec![], origin: Origin::new("t.lua", 1) }
    }

    /// (kind, value) of every attribute after the 8-byte nhmsg.
    fn attributes(msg: &NexthopMessage) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = 8;
        while at + 4 <= msg.0.len() {
            let len = u16::from_ne_bytes([msg.0[at], msg.0[at + 1]]) as usize;
            let kind = u16::from_ne_bytes([msg.0[at + 2], msg.0[at + 3]]);
            out.push((kind, msg.0[at + 4..at + len].to_vec()));
            at += len.next_multiple_of(4);
        }
        out
    }

    #[test]
    fn a_gateway_nexthop_has_its_family_id_oif_and_gateway() {
        let msg =
            message(&Nexthop { via: Some("198.18.1.2".parse().unwrap()), dev: Some("eth0".into()), ..nh(7) }, Some(3));
        assert_eq!(msg.0[..4], [AF_INET, 0, RTPROT_STATIC, 0]);
        assert_eq!(
            attributes(&msg),
            vec![
                (NHA_ID, 7u32.to_ne_bytes().to_vec()),
                (NHA_OIF, 3u32.to_ne_bytes().to_vec()),
                (NHA_GATEWAY, vec![198, 18, 1, 2])
            ]
        );
    }

    #[test]
    fn a_group_lists_its_members_with_weights_less_one_and_a_blackhole_is_a_flag() {
        let msg = message(&Nexthop { group: vec![(1, 1), (2, 3)], ..nh(10) }, None);
        assert_eq!(msg.0[0], AF_UNSPEC);
        let group = attributes(&msg).into_iter().find(|(k, _)| *k == NHA_GROUP).expect("NHA_GROUP").1;
        let mut want = 1u32.to_ne_bytes().to_vec();
        want.extend([0, 0, 0, 0]);
        want.extend(2u32.to_ne_bytes());
        want.extend([2, 0, 0, 0]);
        assert_eq!(group, want);
        let black = message(&Nexthop { blackhole: true, ..nh(4) }, None);
        assert!(attributes(&black).contains(&(NHA_BLACKHOLE, vec![])));
    }
}
