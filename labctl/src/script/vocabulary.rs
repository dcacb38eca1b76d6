//! The globals a lab script declares its lab with: `lab`, `node`, `bridge`,
//! `link` (see link.rs) and `experiment`, and the node handle's methods.
//! Each call records model objects with the caller's file:line; mistakes
//! become diagnostics and the script keeps running.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use mlua::{AnyUserData, Lua, MetaMethod, Table, UserData, UserDataFields, UserDataMethods, Value};

use super::args::{self, show};
use super::builder;
use crate::diag::Origin;
use crate::model::{Experiment, NodeKind, Route, Sysctl};

/// Named registry table holding experiment functions by name.
pub(super) const EXPERIMENTS: &str = "labctl.experiments";

/// What `node()` and `bridge()` return. `index` is `None` when the call was
/// wrong: the handle still works, its methods just record nothing.
pub(super) struct NodeHandle {
    pub name: String,
    index: Option<usize>,
}

fn report(lua: &Lua, origin: Origin, message: impl Into<String>, help: impl Into<String>) -> mlua::Result<()> {
    builder::with(lua, |b| b.report(origin, message, help))
}

/// `lab { name = "part1", description = "...", exclusive = true }`
pub(super) fn lab(lua: &Lua, spec: Value) -> mlua::Result<()> {
    const VALID: &[&str] = &["name", "description", "exclusive", "static_neighbours"];
    let origin = builder::origin(lua)?;
    let Value::Table(spec) = spec else {
        return report(
            lua,
            origin,
            format!("lab(): expected a table, got {}", show(&spec)),
            r#"write lab { name = "part1", description = "..." }"#,
        );
    };
    if let Some(first) = builder::with(lua, |b| b.lab_call.replace(origin.clone()))? {
        return report(
            lua,
            origin,
            format!("lab() is called twice (first at line {})", first.line),
            "keep a single lab { ... } per file",
        );
    }
    for key in args::unknown_keys(&spec, VALID, 0) {
        report(lua, origin.clone(), format!("lab(): unknown option {key}"), args::valid_keys_help(VALID))?;
    }
    match spec.get::<Value>("name")? {
        Value::Nil => {}
        Value::String(name) => {
            let name = name.to_string_lossy();
            match crate::validate::check_lab_name(&name) {
                Ok(()) => builder::with(lua, |b| b.lab.name = name)?,
                Err((message, help)) => report(lua, origin.clone(), format!("lab(): {message}"), help)?,
            }
        }
        other => report(
            lua,
            origin.clone(),
            format!("lab(): name must be a string, got {}", show(&other)),
            r#"write lab { name = "part1" }"#,
        )?,
    }
    match spec.get::<Value>("description")? {
        Value::Nil => {}
        Value::String(text) => builder::with(lua, |b| b.lab.description = Some(text.to_string_lossy()))?,
        other => report(
            lua,
            origin.clone(),
            format!("lab(): description must be a string, got {}", show(&other)),
            r#"write lab { description = "two hosts and a router" }"#,
        )?,
    }
    match spec.get::<Value>("static_neighbours")? {
        Value::Nil => {}
        Value::Boolean(on) => builder::with(lua, |b| b.lab.static_neighbours = on)?,
        other => report(
            lua,
            origin.clone(),
            format!("lab(): static_neighbours must be true or false, got {}", show(&other)),
            "write lab { static_neighbours = true } for a permanent neighbour entry of every address on every connected subnet",
        )?,
    }
    match spec.get::<Value>("exclusive")? {
        Value::Nil => {}
        Value::Boolean(alone) => builder::with(lua, |b| b.lab.exclusive = alone)?,
        other => report(
            lua,
            origin,
            format!("lab(): exclusive must be true or false, got {}", show(&other)),
            "write lab { exclusive = true } for a lab `labctl test` must run while no other lab runs",
        )?,
    }
    Ok(())
}

/// `node("h1", { forwarding = true })` and `bridge("sw")`.
pub(super) fn declare(lua: &Lua, kind: NodeKind, name: Value, opts: Value) -> mlua::Result<AnyUserData> {
    let call = if kind == NodeKind::Bridge { "bridge" } else { "node" };
    let valid: &[&str] = if kind == NodeKind::Bridge { super::l2::BRIDGE_KEYS } else { &["forwarding", "cpu"] };
    let origin = builder::origin(lua)?;
    let mut forwarding = false;
    let mut cpu_percent = None;
    let mut bridge_options = None;
    match args::options(opts) {
        Err(message) => report(lua, origin.clone(), format!("{call}(): {message}"), args::valid_keys_help(valid))?,
        Ok(None) => {}
        Ok(Some(opts)) => {
            for key in args::unknown_keys(&opts, valid, 0) {
                report(lua, origin.clone(), format!("{call}(): unknown option {key}"), args::valid_keys_help(valid))?;
            }
            if kind == NodeKind::Bridge {
                match super::l2::bridge_options(&opts) {
                    Ok(options) => bridge_options = Some(options),
                    Err(message) => report(
                        lua,
                        origin.clone(),
                        format!("bridge(): {message}"),
                        r#"write bridge("sw", { vlan_filtering = true, ageing = "30s", stp = false })"#,
                    )?,
                }
            }
            // On a bridge, `forwarding` was just reported as unknown.
            if kind == NodeKind::Host {
                match opts.get::<Value>("forwarding")? {
                    Value::Nil => {}
                    Value::Boolean(on) => forwarding = on,
                    other => report(
                        lua,
                        origin.clone(),
                        format!("node(): forwarding must be true or false, got {}", show(&other)),
                        r#"write node("r1", { forwarding = true })"#,
                    )?,
                }
                match super::cpu::percent(&opts.get::<Value>("cpu")?) {
                    Ok(percent) => cpu_percent = percent,
                    Err(message) => report(lua, origin.clone(), format!("node(): cpu: {message}"), super::cpu::HELP)?,
                }
            }
        }
    }
    let handle = match args::string(&name) {
        Some(name) => {
            let index = builder::with(lua, |b| {
                let index = b.add_node(name.clone(), kind, forwarding, origin);
                b.lab.nodes[index].cpu_percent = cpu_percent;
                b.lab.nodes[index].devices.bridge = bridge_options.unwrap_or_default();
                index
            })?;
            NodeHandle { name, index: Some(index) }
        }
        None => {
            report(
                lua,
                origin,
                format!("{call}(): the name must be a string, got {}", show(&name)),
                format!(r#"write {call}("h1")"#),
            )?;
            NodeHandle { name: show(&name), index: None }
        }
    };
    lua.create_userdata(handle)
}

/// `experiment("ping", function(x) ... end, { timeout = "10m" })`: the
/// function is kept for `labctl test`.
pub(super) fn experiment(lua: &Lua, (name, func, opts): (Value, Value, Value)) -> mlua::Result<()> {
    let origin = builder::origin(lua)?;
    let help = r#"write experiment("ping", function(x) ... end)"#;
    let Some(name) = args::string(&name) else {
        return report(lua, origin, format!("experiment(): the name must be a string, got {}", show(&name)), help);
    };
    let Value::Function(func) = func else {
        return report(
            lua,
            origin,
            format!("experiment({name:?}): the second argument must be a function, got {}", show(&func)),
            help,
        );
    };
    let timeout = match experiment_timeout(&name, opts) {
        Ok(timeout) => timeout,
        Err((message, help)) => return report(lua, origin, message, help),
    };
    // The first declaration wins; validation reports the duplicate.
    let experiments: Table = lua.named_registry_value(EXPERIMENTS)?;
    if !experiments.contains_key(name.as_str())? {
        experiments.set(name.as_str(), func)?;
    }
    builder::with(lua, |b| b.lab.experiments.push(Experiment { name, origin, timeout }))?;
    Ok(())
}

/// The `timeout` of `experiment(name, fn, { timeout = "10m" })`, or a
/// message and its help.
fn experiment_timeout(name: &str, opts: Value) -> Result<Option<Duration>, (String, String)> {
    const VALID: &[&str] = &["timeout"];
    let what = format!("experiment({name:?})");
    let opts = args::options(opts).map_err(|m| (format!("{what}: {m}"), r#"write { timeout = "10m" }"#.into()))?;
    let Some(opts) = opts else { return Ok(None) };
    if let Some(key) = args::unknown_keys(&opts, VALID, 0).into_iter().next() {
        return Err((format!("{what}: unknown option {key}"), args::valid_keys_help(VALID)));
    }
    match opts.get::<Value>("timeout").unwrap_or(Value::Nil) {
        Value::Nil => Ok(None),
        value => {
            args::duration(&value).map(Some).map_err(|m| (format!("{what}: timeout: {m}"), args::DURATION_HELP.into()))
        }
    }
}

impl UserData for NodeHandle {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("name", |_, this| Ok(this.name.clone()));
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_function("route", |lua, (this, dest, via, opts): (Value, Value, Value, Value)| {
            if let Some(index) = method_target(lua, "route", &this, r#"h1:route("default", "198.18.0.254")"#)? {
                // With an options table: script/routing.rs.
                if !super::routing::route_with_options(lua, index, &dest, &via, opts)? {
                    route(lua, index, &dest, &via)?;
                }
            }
            Ok(this)
        });
        methods.add_function("rule", |lua, (this, spec): (Value, Value)| {
            if let Some(index) =
                method_target(lua, "rule", &this, r#"h1:rule { from = "198.18.1.0/24", table = 100 }"#)?
            {
                super::routing::rule(lua, index, &spec)?;
            }
            Ok(this)
        });
        methods.add_function("nexthop", |lua, (this, id, opts): (Value, Value, Value)| {
            if let Some(index) = method_target(lua, "nexthop", &this, r#"h1:nexthop(1, { via = "198.18.0.254" })"#)? {
                super::routing::nexthop(lua, index, &id, opts)?;
            }
            Ok(this)
        });
        methods.add_function("vrf", |lua, (this, name, opts): (Value, Value, Value)| {
            let example = r#"h1:vrf("blue", { table = 10, interfaces = { "eth0" } })"#;
            if let Some(index) = method_target(lua, "vrf", &this, example)? {
                super::l2::vrf(lua, index, &name, opts)?;
            }
            Ok(this)
        });
        methods.add_function("vlan", |lua, (this, parent, id, opts): (Value, Value, Value, Value)| {
            if let Some(index) = method_target(lua, "vlan", &this, r#"h1:vlan("eth0", 10)"#)? {
                super::l2::vlan(lua, index, &parent, &id, opts)?;
            }
            Ok(this)
        });
        methods.add_function("port", |lua, (this, ifname, opts): (Value, Value, Value)| {
            if let Some(index) = method_target(lua, "port", &this, r#"sw:port("eth0", { pvid = 10 })"#)? {
                super::l2::port(lua, index, &ifname, opts)?;
            }
            Ok(this)
        });
        methods.add_function("sysctl", |lua, (this, key, value): (Value, Value, Value)| {
            if let Some(index) = method_target(lua, "sysctl", &this, r#"h1:sysctl("net.ipv4.conf.all.rp_filter", 0)"#)?
            {
                sysctl(lua, index, &key, &value)?;
            }
            Ok(this)
        });
        methods.add_function("tune", |lua, (this, ifname, opts): (Value, Value, Value)| {
            if let Some(index) =
                method_target(lua, "tune", &this, r#"h1:tune("eth0", { rps_cpus = "3", gro = false })"#)?
            {
                super::tune::tune(lua, index, &ifname, &opts)?;
            }
            Ok(this)
        });
        methods.add_function("impair", |lua, (this, ifname, settings): (Value, Value, Value)| {
            if method_target(lua, "impair", &this, r#"h1:impair("eth0", { rate = "20mbit" })"#)?.is_some() {
                let name = node_name(&this);
                super::impair::impair(lua, &name, &ifname, &settings)?;
            }
            Ok(this)
        });
        methods.add_function("neighbour", |lua, (this, ifname, address, mac): (Value, Value, Value, Value)| {
            if let Some(index) = method_target(lua, "neighbour", &this, r#"h1:neighbour("eth0", "198.18.0.2")"#)? {
                super::neighbour::neighbour(lua, index, &ifname, &address, &mac)?;
            }
            Ok(this)
        });
        for method in [super::nic::Method::Nic, super::nic::Method::Macvlan, super::nic::Method::Vf] {
            methods.add_function(
                method.name(),
                move |lua, (this, host, second, third): (Value, Value, Value, Value)| {
                    if let Some(index) = method_target(lua, method.name(), &this, method.example())? {
                        super::nic::claim(lua, index, method, &host, second, third)?;
                    }
                    Ok(this)
                },
            );
        }
        methods.add_meta_method(MetaMethod::ToString, |_, this, ()| Ok(format!("node {:?}", this.name)));
    }
}

/// The name of the node handle a method was called on.
fn node_name(this: &Value) -> String {
    match this {
        Value::UserData(ud) => ud.borrow::<NodeHandle>().map(|h| h.name.clone()).unwrap_or_default(),
        _ => String::new(),
    }
}

/// The node a method was called on. `h1.route(...)` (a dot instead of a
/// colon) passes no handle; say so instead of failing on the arguments.
fn method_target(lua: &Lua, method: &str, this: &Value, example: &str) -> mlua::Result<Option<usize>> {
    let handle = match this {
        Value::UserData(ud) => ud.borrow::<NodeHandle>().ok(),
        _ => None,
    };
    match handle {
        Some(handle) => Ok(handle.index),
        None => {
            report(
                lua,
                builder::origin(lua)?,
                format!("{method}() must be called on a node with a colon"),
                format!("write {example}"),
            )?;
            Ok(None)
        }
    }
}

/// `h1:route("default" | "198.19.0.0/16", "198.18.1.2")`
fn route(lua: &Lua, index: usize, dest: &Value, via: &Value) -> mlua::Result<()> {
    let origin = builder::origin(lua)?;
    let help = r#"write h1:route("default", "198.18.0.254") or h1:route("198.19.0.0/16", "198.18.0.254")"#;
    let Some(via_ip) = args::string(via).and_then(|v| v.parse::<IpAddr>().ok()) else {
        return report(lua, origin, format!("route(): the gateway {} is not an IP address", show(via)), help);
    };
    let destination = match args::string(dest).as_deref() {
        Some("default") => match via_ip {
            IpAddr::V4(_) => IpNet::V4(Default::default()),
            IpAddr::V6(_) => IpNet::V6(Default::default()),
        },
        Some(text) => match args::cidr(text) {
            Ok(net) => net,
            Err(message) => return report(lua, origin, format!("route(): destination {message}"), help),
        },
        None => {
            return report(
                lua,
                origin,
                format!("route(): the destination must be \"default\" or a CIDR, got {}", show(dest)),
                help,
            )
        }
    };
    builder::with(lua, |b| b.lab.nodes[index].routes.push(Route { destination, via: via_ip, origin }))
}

/// `h1:sysctl("net.ipv4.conf.all.rp_filter", 0)`; booleans become "1"/"0".
fn sysctl(lua: &Lua, index: usize, key: &Value, value: &Value) -> mlua::Result<()> {
    let origin = builder::origin(lua)?;
    let help = r#"write h1:sysctl("net.ipv4.conf.all.rp_filter", 0)"#;
    let Some(key) = args::string(key) else {
        return report(lua, origin, format!("sysctl(): the key must be a string, got {}", show(key)), help);
    };
    let value = match value {
        Value::Boolean(on) => if *on { "1" } else { "0" }.to_string(),
        Value::String(s) => s.to_string_lossy(),
        number @ (Value::Integer(_) | Value::Number(_)) => {
            args::whole_number(number).map_or_else(|| show(number), |n| n.to_string())
        }
        other => {
            return report(
                lua,
                origin,
                format!("sysctl({key:?}): the value must be a number, string or boolean, got {}", show(other)),
                help,
            )
        }
    };
    builder::with(lua, |b| b.lab.nodes[index].sysctls.push(Sysctl { key, value, origin }))
}
