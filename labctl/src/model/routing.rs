//! Routes with options and policy rules: `h1:route(dest, via, { ... })`,
//! `h1:route(dest, { dev = "eth0" })`, `h1:rule { from = ..., table = 100 }`.
//! The plain `h1:route(dest, via)` stays a [`super::Route`].

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::diag::Origin;

/// What the kernel does with a packet that matches the route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteType {
    /// Forwarded through its next hops.
    #[default]
    Unicast,
    /// Dropped silently.
    Blackhole,
    /// Dropped with ICMP "host unreachable" (EHOSTUNREACH locally).
    Unreachable,
    /// Dropped with ICMP "administratively prohibited" (EACCES locally).
    Prohibit,
}

impl RouteType {
    pub const NAMES: &'static [&'static str] = &["unicast", "blackhole", "unreachable", "prohibit"];

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "unicast" => Some(Self::Unicast),
            "blackhole" => Some(Self::Blackhole),
            "unreachable" => Some(Self::Unreachable),
            "prohibit" => Some(Self::Prohibit),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// One next hop: a gateway, a device, or both; a weight only in a multipath route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hop {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// 1..=256, the kernel's default 1; only in a multipath route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u16>,
}

/// A route with options. `hops` is empty for blackhole/unreachable/prohibit,
/// one hop for a gateway or device route, several for ECMP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteSpec {
    pub destination: IpNet,
    #[serde(default)]
    pub kind: RouteType,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hops: Vec<Hop>,
    /// `multipath = { ... }` was written (even with one hop): weights allowed.
    #[serde(default)]
    pub multipath: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
    /// Preferred source address (RTA_PREFSRC); must be the node's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<IpAddr>,
    /// Routing table; `None` is main (254).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    /// A weight written outside `multipath` (validation reports it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stray_weight: Option<u16>,
    /// A nexthop object (`h1:nexthop(id, ...)`) instead of hops: RTA_NH_ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nexthop: Option<u32>,
    pub origin: Origin,
}

impl RouteSpec {
    /// A unicast route to `destination` with no hop and no option yet.
    pub fn unicast(destination: IpNet, origin: Origin) -> RouteSpec {
        RouteSpec {
            destination,
            kind: RouteType::Unicast,
            hops: vec![],
            multipath: false,
            metric: None,
            src: None,
            table: None,
            stray_weight: None,
            nexthop: None,
            origin,
        }
    }

    pub fn is_ipv4(&self) -> bool {
        self.destination.addr().is_ipv4()
    }
}

/// A policy rule: packets matching every selector given are looked up in `table`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iif: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    pub table: u32,
    /// IPv6 rather than IPv4: from the addresses, or `family = 6`.
    #[serde(default)]
    pub ipv6: bool,
    pub origin: Origin,
}

/// `h1:nexthop(1, { via = "198.18.1.2" })`: a nexthop object (RTM_NEWNEXTHOP)
/// routes name by id. One of: a gateway and/or device, a blackhole, a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Nexthop {
    pub id: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub blackhole: bool,
    /// Members of a multipath group: (nexthop id, weight 1..=256).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group: Vec<(u32, u16)>,
    pub origin: Origin,
}

/// The kernel's fixed tables a rule or route may not take by number.
pub const RESERVED_TABLES: &[(u32, &str)] = &[(0, "unspec"), (253, "default"), (254, "main"), (255, "local")];

/// The routes with options and the rules of one node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Routing {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RouteSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nexthops: Vec<Nexthop>,
}

impl Routing {
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty() && self.rules.is_empty() && self.nexthops.is_empty()
    }
}
