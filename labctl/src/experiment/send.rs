//! `x.h1:send{...}`: crafted packets from a node (traffic/craft.rs), e.g.
//!
//! ```lua
//! x.h1:send{ to = "198.18.1.2", src = "240.0.0.1", ttl = 64, dscp = 46,
//!            proto = "udp", dport = 9, payload = "hi", count = 10 }
//! ```
//!
//! The destination must be an address of a node of the lab; the source,
//! the MACs and every header field are the caller's.

use std::net::IpAddr;
use std::time::Duration;

use mlua::{LuaSerdeExt, Table, UserDataMethods};

use super::options::Options;
use super::runtime::{fail, NodeRef};
use crate::model::MacAddr;
use crate::traffic::{self, Crafted, Proto};

const VALID: &[&str] = &[
    "to", "src", "src_mac", "dst_mac", "ttl", "dscp", "ecn", "df", "proto", "sport", "dport", "flags", "payload",
    "size", "count", "interval",
];

pub(super) fn register<M: UserDataMethods<NodeRef>>(methods: &mut M) {
    methods.add_method("send", |lua, this, opts: Table| {
        let opts = Options::check(lua, &format!("x.{}:send()", this.name), Some(opts), VALID)?;
        let packet = crafted(&opts)?;
        if !traffic::is_lab_address(packet.to) {
            return Err(opts.bad(
                "to",
                &format!("{} is not a lab address", packet.to),
                "crafted packets go only to an address of a lab node (198.18.0.0/15 or 2001:db8::/32)",
            ));
        }
        if this.runtime.owner_of(packet.to).is_err() {
            let message = format!("{} is not an address of any node of the lab", packet.to);
            return Err(opts.bad("to", &message, "crafted packets go only to an address of a lab node"));
        }
        let netns = this.runtime.netns(&this.name)?;
        let report = crate::sys::machine_turn::sharing(|| traffic::send(&netns, &packet))
            .map_err(|e| fail(format!("send from {}: {e}", this.name)))?;
        lua.to_value(&report)
    });
}

/// A whole-number option within `range`, with a message naming the range.
fn ranged(opts: &Options, key: &str, range: std::ops::RangeInclusive<i64>, default: i64) -> mlua::Result<i64> {
    let value = opts.get::<i64>(key)?.unwrap_or(default);
    if range.contains(&value) {
        Ok(value)
    } else {
        let (lo, hi) = (range.start(), range.end());
        Err(opts.bad(key, &format!("{value} is out of range"), &format!("give {key} from {lo} to {hi}")))
    }
}

fn address(opts: &Options, key: &str) -> mlua::Result<Option<IpAddr>> {
    opts.get::<String>(key)?
        .map(|s| {
            s.parse().map_err(|_| {
                opts.bad(key, &format!("{s:?} is not an IP address"), &format!(r#"write {key} = "198.18.0.1""#))
            })
        })
        .transpose()
}

fn mac(opts: &Options, key: &str) -> mlua::Result<Option<[u8; 6]>> {
    opts.get::<String>(key)?
        .map(|s| {
            s.parse::<MacAddr>().map(|m| m.0).map_err(|_| {
                opts.bad(key, &format!("{s:?} is not a MAC address"), &format!(r#"write {key} = "02:00:00:00:00:01""#))
            })
        })
        .transpose()
}

fn crafted(opts: &Options) -> mlua::Result<Crafted> {
    let to = address(opts, "to")?.ok_or_else(|| {
        opts.bad("to", "missing", r#"give the destination as to = "198.18.x.y" (an address of a lab node)"#)
    })?;
    let src = address(opts, "src")?;
    if src.is_some_and(|s| s.is_ipv4() != to.is_ipv4()) {
        return Err(opts.bad("src", "its address family differs from to's", "give src and to of the same family"));
    }
    let sport = ranged(opts, "sport", 0..=65535, 54321)? as u16;
    let dport = ranged(opts, "dport", 0..=65535, 9)? as u16;
    let proto_name = opts.get::<String>("proto")?.unwrap_or_else(|| "udp".into());
    let flags = opts.get::<String>("flags")?;
    let proto = match proto_name.as_str() {
        "udp" => Proto::Udp { sport, dport },
        "tcp" => {
            let letters = flags.as_deref().unwrap_or("S");
            let flags = traffic::tcp_flags(letters).map_err(|m| opts.bad("flags", &m, r#"write flags = "SA""#))?;
            Proto::Tcp { sport, dport, flags }
        }
        "icmp" => Proto::Echo { id: sport },
        other => {
            return Err(opts.bad(
                "proto",
                &format!("{other:?} is not a protocol send knows"),
                r#"write proto = "udp", "tcp" or "icmp" (an echo request)"#,
            ))
        }
    };
    if flags.is_some() && !matches!(proto, Proto::Tcp { .. }) {
        return Err(opts.bad("flags", "TCP flags on a packet that is not TCP", r#"add proto = "tcp""#));
    }
    let payload = match (opts.get::<mlua::LuaString>("payload")?, opts.get::<usize>("size")?) {
        (Some(p), None) => p.as_bytes().to_vec(),
        (None, size) => vec![0x5a; size.unwrap_or(0)],
        (Some(_), Some(_)) => {
            return Err(opts.bad("size", "given with payload", "give the payload's bytes or its size, not both"))
        }
    };
    if payload.len() > traffic::CRAFT_MAX_PAYLOAD {
        return Err(opts.bad(
            "payload",
            &format!("{} bytes is too long", payload.len()),
            &format!("give at most {} bytes (one frame within a 1500-byte MTU)", traffic::CRAFT_MAX_PAYLOAD),
        ));
    }
    Ok(Crafted {
        to,
        src,
        src_mac: mac(opts, "src_mac")?,
        dst_mac: mac(opts, "dst_mac")?,
        ttl: ranged(opts, "ttl", 0..=255, 64)? as u8,
        dscp: ranged(opts, "dscp", 0..=63, 0)? as u8,
        ecn: ranged(opts, "ecn", 0..=3, 0)? as u8,
        df: opts.get::<bool>("df")?.unwrap_or(false),
        proto,
        payload,
        count: ranged(opts, "count", 1..=i64::from(traffic::CRAFT_MAX_COUNT), 1)? as u32,
        interval: opts.duration("interval")?.unwrap_or(Duration::ZERO),
    })
}
