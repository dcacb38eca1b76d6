//! `h1:route(dest, via, { ... })`, `h1:route(dest, { ... })` and
//! `h1:rule { ... }`: routes with options and policy rules (model/routing.rs).
//! Only what one call shows is checked here; the rest (gateways on a subnet,
//! tables and rules that match up) is validate/routing.rs.

use std::net::IpAddr;

use ipnet::IpNet;
use mlua::{Lua, Table, Value};

use super::args::{self, show};
use super::builder;
use crate::diag::Origin;
use crate::model::{Hop, Nexthop, RouteSpec, RouteType, Rule};

const ROUTE_KEYS: &[&str] = &["via", "dev", "type", "multipath", "metric", "src", "table", "weight", "nexthop"];
const NEXTHOP_KEYS: &[&str] = &["via", "dev", "blackhole", "group"];
const NEXTHOP_HELP: &str = r#"write h1:nexthop(1, { via = "198.18.0.254" }), h1:nexthop(3, { group = { 1, { id = 2, weight = 3 } } }) or h1:nexthop(4, { blackhole = true })"#;
const HOP_KEYS: &[&str] = &["via", "dev", "weight"];
const RULE_KEYS: &[&str] = &["from", "to", "iif", "fwmark", "priority", "table", "family"];
const ROUTE_HELP: &str = r#"write h1:route("198.19.0.0/16", "198.18.0.254", { metric = 10 }), h1:route("198.19.0.0/16", { dev = "eth0" }) or h1:route("198.19.9.0/24", { type = "blackhole" })"#;
const RULE_HELP: &str = r#"write h1:rule { from = "198.18.1.0/24", table = 100 }"#;

/// A message for a diagnostic at the call.
type Problem = String;

fn report(lua: &Lua, origin: &Origin, message: String, help: impl Into<String>) -> mlua::Result<()> {
    builder::with(lua, |b| b.report(origin.clone(), message, help))
}

/// `h1:route(dest, second, third)` where `second` is a table, or `third` is
/// given: a route with options. Returns false when it is the plain form,
/// which vocabulary.rs keeps handling.
pub(super) fn route_with_options(
    lua: &Lua,
    index: usize,
    dest: &Value,
    second: &Value,
    third: Value,
) -> mlua::Result<bool> {
    let (via, opts) = match (second, third) {
        (Value::Table(opts), Value::Nil) => (None, opts.clone()),
        (_, Value::Nil) => return Ok(false),
        (via, Value::Table(opts)) => (Some(via.clone()), opts),
        (_, other) => {
            let origin = builder::origin(lua)?;
            let message = format!("route(): the options must be a table like {{ metric = 10 }}, got {}", show(&other));
            report(lua, &origin, message, ROUTE_HELP)?;
            return Ok(true);
        }
    };
    let origin = builder::origin(lua)?;
    for key in args::unknown_keys(&opts, ROUTE_KEYS, 0) {
        report(lua, &origin, format!("route(): unknown option {key}"), args::valid_keys_help(ROUTE_KEYS))?;
    }
    match spec(&opts, dest, via.as_ref(), &origin) {
        Ok(route) => builder::with(lua, |b| b.lab.nodes[index].routing.routes.push(route))?,
        Err(message) => report(lua, &origin, format!("route(): {message}"), ROUTE_HELP)?,
    }
    Ok(true)
}

fn spec(opts: &Table, dest: &Value, via: Option<&Value>, origin: &Origin) -> Result<RouteSpec, Problem> {
    let kind = match opts.get::<Value>("type").unwrap_or(Value::Nil) {
        Value::Nil => RouteType::Unicast,
        value => args::string(&value)
            .as_deref()
            .and_then(RouteType::parse)
            .ok_or_else(|| format!("type must be one of {}, got {}", RouteType::NAMES.join(", "), show(&value)))?,
    };
    let via = match via {
        Some(value) => Some(address(value, "the gateway")?),
        None => optional_address(opts, "via")?,
    };
    let dev = optional_string(opts, "dev")?;
    let mut hops = Vec::new();
    let multipath = match opts.get::<Value>("multipath").unwrap_or(Value::Nil) {
        Value::Nil => false,
        Value::Table(list) => {
            if via.is_some() || dev.is_some() {
                return Err("give either a gateway and dev, or multipath, not both".into());
            }
            for (i, item) in list.sequence_values::<Value>().enumerate() {
                hops.push(hop(&item.unwrap_or(Value::Nil), i + 1)?);
            }
            if hops.is_empty() {
                return Err("multipath is empty".into());
            }
            true
        }
        other => return Err(format!("multipath must be a list of next hops, got {}", show(&other))),
    };
    if !multipath && (via.is_some() || dev.is_some()) {
        hops.push(Hop { via, dev, weight: None });
    }
    let src = optional_address(opts, "src")?;
    let destination = destination(dest, hops.iter().filter_map(|h| h.via).chain(src).next())?;
    Ok(RouteSpec {
        destination,
        kind,
        hops,
        multipath,
        metric: optional_u32(opts, "metric")?,
        src,
        table: optional_u32(opts, "table")?,
        stray_weight: optional_weight(opts)?,
        nexthop: optional_u32(opts, "nexthop")?,
        origin: origin.clone(),
    })
}

/// `h1:nexthop(id, { via = ..., dev = ..., blackhole = true, group = { 1, { id = 2, weight = 3 } } })`
pub(super) fn nexthop(lua: &Lua, index: usize, id: &Value, opts: Value) -> mlua::Result<()> {
    let origin = builder::origin(lua)?;
    let Some(id) = args::whole_number(id).and_then(|n| u32::try_from(n).ok()) else {
        let message = format!("nexthop(): the id must be a whole number, got {}", show(id));
        return report(lua, &origin, message, NEXTHOP_HELP);
    };
    let opts = match args::options(opts) {
        Ok(Some(opts)) => opts,
        Ok(None) => return report(lua, &origin, format!("nexthop({id}): says nothing of where to go"), NEXTHOP_HELP),
        Err(m) => return report(lua, &origin, format!("nexthop({id}): {m}"), NEXTHOP_HELP),
    };
    for key in args::unknown_keys(&opts, NEXTHOP_KEYS, 0) {
        report(lua, &origin, format!("nexthop(): unknown option {key}"), args::valid_keys_help(NEXTHOP_KEYS))?;
    }
    let parsed = (|| -> Result<Nexthop, Problem> {
        let blackhole = match opts.get::<Value>("blackhole").unwrap_or(Value::Nil) {
            Value::Nil => false,
            Value::Boolean(b) => b,
            other => return Err(format!("blackhole must be true or false, got {}", show(&other))),
        };
        let mut group = Vec::new();
        match opts.get::<Value>("group").unwrap_or(Value::Nil) {
            Value::Nil => {}
            Value::Table(list) => {
                for (i, item) in list.sequence_values::<Value>().enumerate() {
                    group.push(member(&item.unwrap_or(Value::Nil), i + 1)?);
                }
            }
            other => return Err(format!("group must be a list of nexthop ids, got {}", show(&other))),
        }
        Ok(Nexthop {
            id,
            via: optional_address(&opts, "via")?,
            dev: optional_string(&opts, "dev")?,
            blackhole,
            group,
            origin: origin.clone(),
        })
    })();
    match parsed {
        Ok(nh) => builder::with(lua, |b| b.lab.nodes[index].routing.nexthops.push(nh)),
        Err(m) => report(lua, &origin, format!("nexthop({id}): {m}"), NEXTHOP_HELP),
    }
}

/// A group member: `2` or `{ id = 2, weight = 3 }`.
fn member(item: &Value, n: usize) -> Result<(u32, u16), Problem> {
    let id_of = |v: &Value| args::whole_number(v).and_then(|n| u32::try_from(n).ok());
    match item {
        Value::Table(t) => {
            if let Some(key) = args::unknown_keys(t, &["id", "weight"], 0).into_iter().next() {
                return Err(format!("group member {n}: unknown option {key} (valid options: id, weight)"));
            }
            let id = id_of(&t.get::<Value>("id").unwrap_or(Value::Nil))
                .ok_or_else(|| format!("group member {n} needs its id: {{ id = 2, weight = 3 }}"))?;
            Ok((id, optional_weight(t).map_err(|m| format!("group member {n}: {m}"))?.unwrap_or(1)))
        }
        other => id_of(other)
            .map(|id| (id, 1))
            .ok_or_else(|| format!("group member {n} must be a nexthop id, got {}", show(other))),
    }
}

/// `{ via = "198.18.1.2", dev = "eth0", weight = 2 }`, the `n`th of a multipath list.
fn hop(item: &Value, n: usize) -> Result<Hop, Problem> {
    let Value::Table(t) = item else {
        return Err(format!(
            "multipath item {n} must be a table like {{ via = \"198.18.1.2\", weight = 1 }}, got {}",
            show(item)
        ));
    };
    if let Some(key) = args::unknown_keys(t, HOP_KEYS, 0).into_iter().next() {
        return Err(format!("multipath item {n}: unknown option {key} ({})", args::valid_keys_help(HOP_KEYS)));
    }
    let hop = Hop {
        via: optional_address(t, "via").map_err(|m| format!("multipath item {n}: {m}"))?,
        dev: optional_string(t, "dev").map_err(|m| format!("multipath item {n}: {m}"))?,
        weight: optional_weight(t).map_err(|m| format!("multipath item {n}: {m}"))?,
    };
    if hop.via.is_none() && hop.dev.is_none() {
        return Err(format!("multipath item {n} has neither via nor dev"));
    }
    Ok(hop)
}

/// "default" (family from `hint`, else IPv4) or a CIDR.
fn destination(dest: &Value, hint: Option<IpAddr>) -> Result<IpNet, Problem> {
    match args::string(dest).as_deref() {
        Some("default") => Ok(match hint {
            Some(IpAddr::V6(_)) => IpNet::V6(Default::default()),
            _ => IpNet::V4(Default::default()),
        }),
        Some(text) => args::cidr(text).map_err(|m| format!("destination {m}")),
        None => Err(format!("the destination must be \"default\" or a CIDR, got {}", show(dest))),
    }
}

fn address(value: &Value, what: &str) -> Result<IpAddr, Problem> {
    args::string(value)
        .and_then(|v| v.parse::<IpAddr>().ok())
        .ok_or_else(|| format!("{what} {} is not an IP address", show(value)))
}

fn optional_address(t: &Table, key: &str) -> Result<Option<IpAddr>, Problem> {
    match t.get::<Value>(key).unwrap_or(Value::Nil) {
        Value::Nil => Ok(None),
        value => address(&value, key).map(Some),
    }
}

fn optional_string(t: &Table, key: &str) -> Result<Option<String>, Problem> {
    match t.get::<Value>(key).unwrap_or(Value::Nil) {
        Value::Nil => Ok(None),
        Value::String(s) => Ok(Some(s.to_string_lossy())),
        other => Err(format!("{key} must be a string, got {}", show(&other))),
    }
}

fn optional_u32(t: &Table, key: &str) -> Result<Option<u32>, Problem> {
    match t.get::<Value>(key).unwrap_or(Value::Nil) {
        Value::Nil => Ok(None),
        value => args::whole_number(&value)
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| format!("{key} must be a whole number from 0 to {}, got {}", u32::MAX, show(&value))),
    }
}

fn optional_weight(t: &Table) -> Result<Option<u16>, Problem> {
    match t.get::<Value>("weight").unwrap_or(Value::Nil) {
        Value::Nil => Ok(None),
        value => args::whole_number(&value)
            .filter(|n| (1..=256).contains(n))
            .map(|n| Some(n as u16))
            .ok_or_else(|| format!("weight must be a whole number from 1 to 256, got {}", show(&value))),
    }
}

/// `h1:rule { from = "198.18.1.0/24", to = ..., iif = "eth0", fwmark = 7, priority = 100, table = 100 }`
pub(super) fn rule(lua: &Lua, index: usize, spec: &Value) -> mlua::Result<()> {
    let origin = builder::origin(lua)?;
    let Value::Table(spec) = spec else {
        return report(lua, &origin, format!("rule(): expected a table, got {}", show(spec)), RULE_HELP);
    };
    for key in args::unknown_keys(spec, RULE_KEYS, 0) {
        report(lua, &origin, format!("rule(): unknown option {key}"), args::valid_keys_help(RULE_KEYS))?;
    }
    match rule_from(spec, &origin) {
        Ok(rule) => builder::with(lua, |b| b.lab.nodes[index].routing.rules.push(rule)),
        Err(message) => report(lua, &origin, format!("rule(): {message}"), RULE_HELP),
    }
}

fn rule_from(spec: &Table, origin: &Origin) -> Result<Rule, Problem> {
    let net = |key: &str| -> Result<Option<IpNet>, Problem> {
        match spec.get::<Value>(key).unwrap_or(Value::Nil) {
            Value::Nil => Ok(None),
            value => match args::string(&value) {
                // A bare address selects that one host.
                Some(text) => match text.parse::<IpAddr>() {
                    Ok(addr) => Ok(Some(IpNet::from(addr))),
                    Err(_) => args::cidr(&text).map(Some).map_err(|m| format!("{key}: {m}")),
                },
                None => Err(format!("{key} must be an address or CIDR, got {}", show(&value))),
            },
        }
    };
    let (from, to) = (net("from")?, net("to")?);
    let Some(table) = optional_u32(spec, "table")? else {
        return Err("a rule needs the table it selects: table = 100".into());
    };
    let ipv6 = match spec.get::<Value>("family").unwrap_or(Value::Nil) {
        Value::Nil => from.or(to).is_some_and(|n| n.addr().is_ipv6()),
        value => match args::whole_number(&value) {
            Some(4) => false,
            Some(6) => true,
            _ => return Err(format!("family must be 4 or 6, got {}", show(&value))),
        },
    };
    Ok(Rule {
        from,
        to,
        iif: optional_string(spec, "iif")?,
        fwmark: optional_u32(spec, "fwmark")?,
        priority: optional_u32(spec, "priority")?,
        table,
        ipv6,
        origin: origin.clone(),
    })
}
