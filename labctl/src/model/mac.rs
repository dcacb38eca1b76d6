//! MAC addresses, and the deterministic ones labctl gives every interface.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// A locally administered unicast MAC derived from lab, node and
    /// interface names, so the same lab gets the same MACs on every run.
    pub fn derive(lab: &str, node: &str, ifname: &str) -> Self {
        let digest = Sha256::new()
            .chain_update(lab)
            .chain_update([0])
            .chain_update(node)
            .chain_update([0])
            .chain_update(ifname)
            .finalize();
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&digest[..6]);
        mac[0] = (mac[0] & 0xfc) | 0x02; // locally administered, unicast
        MacAddr(mac)
    }

    /// The EUI-64 IPv6 link-local address of this MAC (RFC 4291, appendix A).
    pub fn link_local(&self) -> std::net::Ipv6Addr {
        let m = self.0;
        std::net::Ipv6Addr::from([0xfe, 0x80, 0, 0, 0, 0, 0, 0, m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]])
    }

    pub fn is_unicast(&self) -> bool {
        self.0[0] & 0x01 == 0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid MAC address {0:?} (expected six hex bytes like 02:00:00:00:00:01)")]
pub struct ParseMacError(String);

impl FromStr for MacAddr {
    type Err = ParseMacError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut mac = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in &mut mac {
            let part = parts.next().filter(|p| p.len() == 2).ok_or_else(|| ParseMacError(s.into()))?;
            *byte = u8::from_str_radix(part, 16).map_err(|_| ParseMacError(s.into()))?;
        }
        if parts.next().is_some() {
            return Err(ParseMacError(s.into()));
        }
        Ok(MacAddr(mac))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_macs_are_stable_local_unicast_and_distinct() {
        let a = MacAddr::derive("part1", "h1", "eth0");
        assert_eq!(a, MacAddr::derive("part1", "h1", "eth0"));
        assert_ne!(a, MacAddr::derive("part1", "h1", "eth1"));
        assert_ne!(a, MacAddr::derive("part2", "h1", "eth0"));
        assert_eq!(a.0[0] & 0x03, 0x02);
    }

    #[test]
    fn link_local_is_eui64() {
        let m: MacAddr = "02:aa:bb:00:01:ff".parse().unwrap();
        assert_eq!(m.link_local().to_string(), "fe80::aa:bbff:fe00:1ff");
    }

    #[test]
    fn parses_and_prints() {
        let m: MacAddr = "02:AA:bb:00:01:ff".parse().unwrap();
        assert_eq!(m.to_string(), "02:aa:bb:00:01:ff");
        assert!("02:aa:bb".parse::<MacAddr>().is_err());
        assert!("02:aa:bb:00:01:ff:00".parse::<MacAddr>().is_err());
    }
}
