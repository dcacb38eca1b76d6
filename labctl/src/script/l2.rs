//! `h1:vrf(...)`, `h1:vlan(...)`, `bridge("sw", { ... })` options and
//! `sw:port(...)` (model/l2.rs). Checks what one call shows; names that
//! must exist on the node are validate/l2.rs.

use mlua::{Lua, Table, Value};

use super::args::{self, show};
use super::builder;
use crate::diag::Origin;
use crate::model::{BridgeOptions, PortOptions, Vlan, VlanProtocol, Vrf};

pub(super) const BRIDGE_KEYS: &[&str] = &["vlan_filtering", "default_pvid", "ageing", "multicast_snooping", "stp"];
const VRF_KEYS: &[&str] = &["table", "interfaces"];
const VLAN_KEYS: &[&str] = &["name", "protocol", "addresses"];
const PORT_KEYS: &[&str] = &["vlans", "pvid", "untagged", "learning", "flood"];
const VRF_HELP: &str = r#"write h1:vrf("blue", { table = 10, interfaces = { "eth0" } })"#;
const VLAN_HELP: &str = r#"write h1:vlan("eth0", 10, { addresses = { "198.18.10.1/24" } })"#;
const PORT_HELP: &str = r#"write sw:port("eth0", { vlans = { 10, 20 }, pvid = 10, untagged = { 10 } })"#;

type Problem = String;

fn report(lua: &Lua, origin: &Origin, message: String, help: impl Into<String>) -> mlua::Result<()> {
    builder::with(lua, |b| b.report(origin.clone(), message, help))
}

fn unknown(lua: &Lua, origin: &Origin, call: &str, opts: &Table, valid: &[&str]) -> mlua::Result<()> {
    for key in args::unknown_keys(opts, valid, 0) {
        report(lua, origin, format!("{call}(): unknown option {key}"), args::valid_keys_help(valid))?;
    }
    Ok(())
}

/// The options of `bridge("sw", { ... })`; unknown keys were reported by the caller.
pub(super) fn bridge_options(opts: &Table) -> Result<BridgeOptions, Problem> {
    Ok(BridgeOptions {
        vlan_filtering: flag(opts, "vlan_filtering")?.unwrap_or(false),
        default_pvid: match opts.get::<Value>("default_pvid").unwrap_or(Value::Nil) {
            Value::Nil => None,
            value => Some(vid(&value, "default_pvid", 0)?),
        },
        ageing: match opts.get::<Value>("ageing").unwrap_or(Value::Nil) {
            Value::Nil => None,
            value => Some(args::duration(&value).map_err(|m| format!("ageing: {m}"))?),
        },
        multicast_snooping: flag(opts, "multicast_snooping")?,
        stp: flag(opts, "stp")?.unwrap_or(false),
    })
}

/// `h1:vrf("blue", { table = 10, interfaces = { "eth0" } })`
pub(super) fn vrf(lua: &Lua, index: usize, name: &Value, opts: Value) -> mlua::Result<()> {
    let origin = builder::origin(lua)?;
    let Some(name) = args::string(name) else {
        return report(lua, &origin, format!("vrf(): the name must be a string, got {}", show(name)), VRF_HELP);
    };
    let opts = match args::options(opts) {
        Ok(Some(opts)) => opts,
        Ok(None) => return report(lua, &origin, format!("vrf({name:?}): needs its table: {{ table = 10 }}"), VRF_HELP),
        Err(m) => return report(lua, &origin, format!("vrf({name:?}): {m}"), VRF_HELP),
    };
    unknown(lua, &origin, "vrf", &opts, VRF_KEYS)?;
    let parsed = (|| -> Result<Vrf, Problem> {
        let table = match opts.get::<Value>("table").unwrap_or(Value::Nil) {
            Value::Nil => return Err("needs its table: { table = 10 }".into()),
            value => args::whole_number(&value)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| format!("table must be a whole number, got {}", show(&value)))?,
        };
        Ok(Vrf { name: name.clone(), table, interfaces: strings(&opts, "interfaces")?, origin: origin.clone() })
    })();
    match parsed {
        Ok(vrf) => builder::with(lua, |b| b.lab.nodes[index].devices.vrfs.push(vrf)),
        Err(m) => report(lua, &origin, format!("vrf({name:?}): {m}"), VRF_HELP),
    }
}

/// `h1:vlan("eth0", 10, { name = "eth0.10", protocol = "802.1ad", addresses = { ... } })`
pub(super) fn vlan(lua: &Lua, index: usize, parent: &Value, id: &Value, opts: Value) -> mlua::Result<()> {
    let origin = builder::origin(lua)?;
    let Some(parent) = args::string(parent) else {
        let message = format!("vlan(): the parent interface must be a string, got {}", show(parent));
        return report(lua, &origin, message, VLAN_HELP);
    };
    let opts = match args::options(opts) {
        Ok(opts) => opts,
        Err(m) => return report(lua, &origin, format!("vlan({parent:?}): {m}"), VLAN_HELP),
    };
    if let Some(opts) = &opts {
        unknown(lua, &origin, "vlan", opts, VLAN_KEYS)?;
    }
    let parsed = (|| -> Result<Vlan, Problem> {
        let id = vid(id, "the id", 1)?;
        let mut vlan = Vlan {
            name: format!("{parent}.{id}"),
            parent: parent.clone(),
            id,
            protocol: VlanProtocol::Dot1Q,
            addresses: vec![],
            origin: origin.clone(),
        };
        let Some(opts) = &opts else { return Ok(vlan) };
        if let Some(name) = optional_string(opts, "name")? {
            vlan.name = name;
        }
        vlan.protocol = match optional_string(opts, "protocol")?.as_deref() {
            None | Some("802.1q") | Some("802.1Q") => VlanProtocol::Dot1Q,
            Some("802.1ad") => VlanProtocol::Dot1Ad,
            Some(other) => return Err(format!("protocol must be \"802.1q\" or \"802.1ad\", got {other:?}")),
        };
        for text in strings(opts, "addresses")? {
            vlan.addresses.push(args::cidr(&text).map_err(|m| format!("address {m}"))?);
        }
        Ok(vlan)
    })();
    match parsed {
        Ok(vlan) => builder::with(lua, |b| b.lab.nodes[index].devices.vlans.push(vlan)),
        Err(m) => report(lua, &origin, format!("vlan({parent:?}): {m}"), VLAN_HELP),
    }
}

/// `sw:port("eth0", { vlans = { 10, 20 }, pvid = 10, untagged = { 10 }, learning = false, flood = false })`
pub(super) fn port(lua: &Lua, index: usize, ifname: &Value, opts: Value) -> mlua::Result<()> {
    let origin = builder::origin(lua)?;
    let Some(ifname) = args::string(ifname) else {
        let message = format!("port(): the port must be an interface name, got {}", show(ifname));
        return report(lua, &origin, message, PORT_HELP);
    };
    let opts = match args::options(opts) {
        Ok(Some(opts)) => opts,
        Ok(None) => return report(lua, &origin, format!("port({ifname:?}): gives no options"), PORT_HELP),
        Err(m) => return report(lua, &origin, format!("port({ifname:?}): {m}"), PORT_HELP),
    };
    unknown(lua, &origin, "port", &opts, PORT_KEYS)?;
    let parsed = (|| -> Result<PortOptions, Problem> {
        Ok(PortOptions {
            ifname: ifname.clone(),
            vlans: vids(&opts, "vlans")?,
            pvid: match opts.get::<Value>("pvid").unwrap_or(Value::Nil) {
                Value::Nil => None,
                value => Some(vid(&value, "pvid", 1)?),
            },
            untagged: vids(&opts, "untagged")?,
            learning: flag(&opts, "learning")?,
            flood: flag(&opts, "flood")?,
            origin: origin.clone(),
        })
    })();
    match parsed {
        Ok(port) => builder::with(lua, |b| b.lab.nodes[index].devices.ports.push(port)),
        Err(m) => report(lua, &origin, format!("port({ifname:?}): {m}"), PORT_HELP),
    }
}

/// A VLAN id, `min..=4094`.
fn vid(value: &Value, what: &str, min: i64) -> Result<u16, Problem> {
    args::whole_number(value)
        .filter(|n| (min..=4094).contains(n))
        .map(|n| n as u16)
        .ok_or_else(|| format!("{what} must be a VLAN id from {min} to 4094, got {}", show(value)))
}

fn vids(t: &Table, key: &str) -> Result<Vec<u16>, Problem> {
    match t.get::<Value>(key).unwrap_or(Value::Nil) {
        Value::Nil => Ok(vec![]),
        Value::Table(list) => list
            .sequence_values::<Value>()
            .map(|v| vid(&v.unwrap_or(Value::Nil), &format!("every item of {key}"), 1))
            .collect(),
        one => Ok(vec![vid(&one, key, 1)?]),
    }
}

fn flag(t: &Table, key: &str) -> Result<Option<bool>, Problem> {
    match t.get::<Value>(key).unwrap_or(Value::Nil) {
        Value::Nil => Ok(None),
        Value::Boolean(b) => Ok(Some(b)),
        other => Err(format!("{key} must be true or false, got {}", show(&other))),
    }
}

fn optional_string(t: &Table, key: &str) -> Result<Option<String>, Problem> {
    match t.get::<Value>(key).unwrap_or(Value::Nil) {
        Value::Nil => Ok(None),
        Value::String(s) => Ok(Some(s.to_string_lossy())),
        other => Err(format!("{key} must be a string, got {}", show(&other))),
    }
}

fn strings(t: &Table, key: &str) -> Result<Vec<String>, Problem> {
    match t.get::<Value>(key).unwrap_or(Value::Nil) {
        Value::Nil => Ok(vec![]),
        Value::String(s) => Ok(vec![s.to_string_lossy()]),
        Value::Table(list) => list
            .sequence_values::<Value>()
            .map(|v| match v.unwrap_or(Value::Nil) {
                Value::String(s) => Ok(s.to_string_lossy()),
                other => Err(format!("every item of {key} must be a string, got {}", show(&other))),
            })
            .collect(),
        other => Err(format!("{key} must be a list of strings, got {}", show(&other))),
    }
}
