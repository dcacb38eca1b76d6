//! IPsec links between two nodes, as declared with `ipsec { ... }`.
//!
//! Plain data like the rest of the model: which nodes, which traffic
//! (subnets in tunnel mode, the two hosts in transport mode), which cipher
//! and which implementation. The keys are not stored: they derive from the
//! lab (see [`Ipsec::psk`]) unless the script gave one.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::diag::Origin;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ipsec {
    /// The initiating gateway (or host, in transport mode).
    pub left: String,
    pub right: String,
    /// Outer addresses; `None` = the addresses on the link between the two.
    pub left_address: Option<IpAddr>,
    pub right_address: Option<IpAddr>,
    /// Protected subnets (tunnel mode only).
    pub left_subnet: Option<IpNet>,
    pub right_subnet: Option<IpNet>,
    pub mode: IpsecMode,
    pub cipher: Cipher,
    pub backend: Backend,
    /// A pre-shared key given in the script; otherwise derived.
    pub key: Option<String>,
    pub origin: Origin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpsecMode {
    /// Gateways protect the traffic between two subnets behind them.
    Tunnel,
    /// Two hosts protect the traffic between themselves.
    Transport,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cipher {
    #[serde(rename = "aes-gcm-128")]
    AesGcm128,
    #[serde(rename = "aes-gcm-256")]
    AesGcm256,
    #[serde(rename = "aes-cbc-128-sha256")]
    AesCbc128Sha256,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The kernel's ESP where it has it, strongSwan otherwise (probed at `up`).
    Auto,
    /// strongSwan's charon with kernel-libipsec: ESP in user space, over UDP 4500.
    Strongswan,
    /// XFRM states and policies over netlink: the kernel's ESP, raw protocol 50.
    Kernel,
}

pub const MODES: &[&str] = &["tunnel", "transport"];
pub const CIPHERS: &[&str] = &["aes-gcm-128", "aes-gcm-256", "aes-cbc-128-sha256"];
pub const BACKENDS: &[&str] = &["auto", "strongswan", "kernel"];

impl FromStr for IpsecMode {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "tunnel" => Ok(IpsecMode::Tunnel),
            "transport" => Ok(IpsecMode::Transport),
            _ => Err(()),
        }
    }
}

impl FromStr for Cipher {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "aes-gcm-128" => Ok(Cipher::AesGcm128),
            "aes-gcm-256" => Ok(Cipher::AesGcm256),
            "aes-cbc-128-sha256" => Ok(Cipher::AesCbc128Sha256),
            _ => Err(()),
        }
    }
}

impl FromStr for Backend {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "auto" => Ok(Backend::Auto),
            "strongswan" => Ok(Backend::Strongswan),
            "kernel" => Ok(Backend::Kernel),
            _ => Err(()),
        }
    }
}

impl fmt::Display for IpsecMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpsecMode::Tunnel => "tunnel",
            IpsecMode::Transport => "transport",
        })
    }
}

impl fmt::Display for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cipher::AesGcm128 => "aes-gcm-128",
            Cipher::AesGcm256 => "aes-gcm-256",
            Cipher::AesCbc128Sha256 => "aes-cbc-128-sha256",
        })
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Auto => "auto",
            Backend::Strongswan => "strongswan",
            Backend::Kernel => "kernel",
        })
    }
}

impl Ipsec {
    /// The pre-shared key: the script's, or the hex SHA-256 of the lab name
    /// and the two node names, so that every run of a lab uses the same one.
    pub fn psk(&self, lab: &str) -> String {
        match &self.key {
            Some(key) => key.clone(),
            None => hex(&derive(&[lab, &self.left, &self.right])),
        }
    }
}

impl Ipsec {
    /// The outer (tunnel endpoint) addresses: the ones the script gave, else
    /// the first pair of same-family addresses on a link between the two
    /// nodes. `None` if there is no such pair.
    pub fn outer_addresses(&self, lab: &super::Lab) -> Option<(IpAddr, IpAddr)> {
        let on_link = || {
            lab.links.iter().find_map(|link| {
                let [a, b] = &link.ends;
                let (l, r) = if a.node == self.left && b.node == self.right {
                    (a, b)
                } else if b.node == self.left && a.node == self.right {
                    (b, a)
                } else {
                    return None;
                };
                l.addresses.iter().find_map(|la| {
                    let wanted = self.left_address.is_none_or(|x| x == la.addr());
                    let ra = r.addresses.iter().find(|ra| ra.addr().is_ipv4() == la.addr().is_ipv4())?;
                    wanted.then_some((la.addr(), ra.addr()))
                })
            })
        };
        match (self.left_address, self.right_address) {
            (Some(l), Some(r)) => Some((l, r)),
            _ => on_link().map(|(l, r)| (self.left_address.unwrap_or(l), self.right_address.unwrap_or(r))),
        }
    }
}

/// SHA-256 over the parts, each followed by a NUL (so ("ab","c") != ("a","bc")).
pub fn derive(parts: &[&str]) -> [u8; 32] {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hash.finalize().into()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(key: Option<&str>) -> Ipsec {
        Ipsec {
            left: "gw1".into(),
            right: "gw2".into(),
            left_address: None,
            right_address: None,
            left_subnet: None,
            right_subnet: None,
            mode: IpsecMode::Transport,
            cipher: Cipher::AesGcm128,
            backend: Backend::Auto,
            key: key.map(String::from),
            origin: Origin::new("x.lua", 1),
        }
    }

    #[test]
    fn derived_keys_repeat_and_depend_on_lab_and_nodes() {
        let a = sample(None);
        assert_eq!(a.psk("lab"), a.psk("lab"));
        assert_ne!(a.psk("lab"), a.psk("lab2"));
        assert_eq!(a.psk("lab").len(), 64);
        assert_eq!(sample(Some("s3cret")).psk("lab"), "s3cret");
    }

    #[test]
    fn names_round_trip() {
        for name in CIPHERS {
            assert_eq!(name.parse::<Cipher>().unwrap().to_string(), *name);
        }
        for name in BACKENDS {
            assert_eq!(name.parse::<Backend>().unwrap().to_string(), *name);
        }
        for name in MODES {
            assert_eq!(name.parse::<IpsecMode>().unwrap().to_string(), *name);
        }
    }
}
