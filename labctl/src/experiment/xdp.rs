//! The XDP side of `x`: read and write the maps of the program on an
//! interface, attach and detach programs while the lab runs.
//!
//! ```lua
//! x:map("h2:eth0", "packets")                     -- { [17] = 1000, [255] = 1 }: per-CPU values summed
//! x:map("h2:eth0", "actions", { per_cpu = true }) -- { XDP_PASS = { cpu0 = 3, cpu1 = 998 } }
//! x:map_set("r1:eth0", "tx_port", x:ifindex("r1:eth1"), x:ifindex("r1:eth1"))
//! x:map_delete("h2:eth0", "udp_ports", 9000)
//! x:xdp("h2:eth0")                                 -- { mode = "native", program = "xdp_count", id = 42 } or nil
//! x:xdp_attach("h2:eth0", { src = "../fixtures/xdp/xdp_drop.c", mode = "native" })
//! x:xdp_detach("h2:eth0")
//! x:ifindex("r1:eth1"), x:mac("h2:eth0")
//! ```
//!
//! Programs attached here are journaled and pinned like those of `up`
//! (`down` removes them), and detached at once by `x:xdp_detach`. An
//! experiment should detach what it attached, to leave the lab as it found it.

use std::fs::File;
use std::path::Path;

use mlua::{Lua, Table, UserDataMethods, Value};

use super::options::Options;
use super::runtime::{fail, Runtime};
use super::traces::observed;
use crate::apply::state::LabState;
use crate::apply::xdp as apply_xdp;
use crate::bpf::maps::RawMap;
use crate::model::layout::pin_dir;
use crate::model::{XdpMode, XdpObject};
use crate::observe::xdp::{self as look, Value as MapValue};
use crate::plan::{Device, Step};
use crate::sys::netns;

/// `"r1:eth0"` -> (node, ifname, the node's namespace), checked against the lab.
fn target(runtime: &Runtime, what: &str, target: &str) -> mlua::Result<(String, String, File)> {
    let (node, ifname) = target
        .split_once(':')
        .filter(|(n, i)| !n.is_empty() && !i.is_empty())
        .ok_or_else(|| fail(format!("{what}: name the interface as \"node:ifname\", not {target:?}")))?;
    if !runtime.has_node(node) {
        return Err(fail(format!("{what}: the lab has no node {node:?}")));
    }
    let names: Vec<String> = runtime.with_lab(|lab| lab.endpoints_of(node).map(|e| e.ifname.clone()).collect());
    if !names.iter().any(|n| n == ifname) {
        return Err(fail(format!(
            "{what}: node {node} has no interface {ifname:?} (its interfaces: {})",
            names.join(", ")
        )));
    }
    Ok((node.to_string(), ifname.to_string(), runtime.netns(node)?))
}

/// A Lua value as `size` bytes for a map key or value: an integer
/// (little-endian), a MAC address "02:00:00:00:00:01" (then zeros), a hex
/// string "0x0a000001" (bytes as written), a list of byte values, or a boolean.
fn encode(value: &Value, size: usize, what: &str) -> mlua::Result<Vec<u8>> {
    let integer = match value {
        Value::Integer(i) => Some(*i as i128),
        Value::Number(n) if n.fract() == 0.0 => Some(*n as i128),
        Value::Boolean(b) => Some(i128::from(*b)),
        _ => None,
    };
    if let Some(i) = integer {
        if i < 0 || (size < 16 && i >= 1i128 << (8 * size.min(15))) || size > 8 {
            return Err(fail(format!("{what} {i} does not fit the map's {size}-byte {what}s")));
        }
        return Ok((i as u64).to_le_bytes()[..size].to_vec());
    }
    let bytes = match value {
        Value::String(s) => {
            let text = s.to_string_lossy();
            if let Some(digits) = text.strip_prefix("0x") {
                (0..digits.len())
                    .step_by(2)
                    .map(|i| digits.get(i..i + 2).and_then(|d| u8::from_str_radix(d, 16).ok()))
                    .collect::<Option<Vec<u8>>>()
                    .ok_or_else(|| fail(format!("{what} {text:?} is not hex")))?
            } else if let Ok(mac) = text.parse::<crate::model::MacAddr>() {
                let mut b = mac.0.to_vec();
                if size < 6 {
                    return Err(fail(format!("{what} {text:?}: a MAC address does not fit {size} bytes")));
                }
                b.resize(size, 0);
                b
            } else {
                return Err(fail(format!("{what} {text:?}: give a number, a MAC address or 0x... hex")));
            }
        }
        Value::Table(t) => t.sequence_values::<u8>().collect::<mlua::Result<Vec<u8>>>()?,
        other => return Err(fail(format!("{what}: expected a number, got {}", other.type_name()))),
    };
    if bytes.len() != size {
        return Err(fail(format!("{what} is {} bytes, the map's {what}s are {size}", bytes.len())));
    }
    Ok(bytes)
}

fn key_to_lua(lua: &Lua, map: &RawMap, key: &[u8]) -> mlua::Result<Value> {
    match crate::bpf::maps::as_integer(key) {
        Some(k) if look::key_name(map, key).is_none() && k <= i64::MAX as u64 => Ok(Value::Integer(k as i64)),
        _ => Ok(Value::String(lua.create_string(look::key_text(map, key))?)),
    }
}

/// A key for `map`: its name where keys have names ("XDP_PASS"), else as [`encode`] takes it.
fn encode_key(map: &RawMap, key: &Value) -> mlua::Result<Vec<u8>> {
    let name = match key {
        Value::String(s) => Some(s.to_string_lossy()),
        _ => None,
    };
    if let Some(bytes) = name.and_then(|name| look::key_named(map, &name)) {
        return Ok(bytes);
    }
    encode(key, map.key_size, "key")
}

fn value_to_lua(lua: &Lua, value: &MapValue) -> mlua::Result<Value> {
    Ok(match value {
        MapValue::Integer(v) if *v <= i64::MAX as u64 => Value::Integer(*v as i64),
        MapValue::Integer(v) => Value::Number(*v as f64),
        MapValue::Bytes(hex) => Value::String(lua.create_string(hex)?),
        MapValue::Struct(fields) => {
            let t = lua.create_table()?;
            for (field, v) in fields {
                t.set(field.as_str(), value_to_lua(lua, v)?)?;
            }
            Value::Table(t)
        }
        MapValue::PerCpu(all) => {
            let t = lua.create_table()?;
            for (cpu, v) in all.iter().enumerate() {
                t.set(format!("cpu{cpu}"), value_to_lua(lua, v)?)?;
            }
            Value::Table(t)
        }
    })
}

/// The map `name` of the program on `ifname`, for `what` (the method).
fn open_map(netns: &File, ifname: &str, name: &str, what: &str) -> mlua::Result<RawMap> {
    look::find_map(netns, ifname, name).map_err(|e| fail(format!("{what}: {e}")))
}

pub(super) fn register<M: UserDataMethods<Runtime>>(methods: &mut M) {
    // x:map("h2:eth0", "packets", { per_cpu = true })
    methods.add_method("map", |lua, this, (at, name, opts): (String, String, Option<Table>)| {
        let what = format!("x:map({at:?}, {name:?})");
        let per_cpu = Options::check(lua, "x:map()", opts, &["per_cpu"])?.get::<bool>("per_cpu")?.unwrap_or(false);
        let (_, ifname, ns) = target(this, &what, &at)?;
        let map = open_map(&ns, &ifname, &name, &what)?;
        let elements = look::read(&map, per_cpu).map_err(|e| fail(format!("{what}: {e}")))?;
        let table = lua.create_table()?;
        for (key, value) in &elements {
            table.set(key_to_lua(lua, &map, key)?, value_to_lua(lua, value)?)?;
        }
        Ok(table)
    });
    // x:map_set("r1:eth0", "tx_port", 3, 3): from inside the node, so that a
    // device map resolves ifindexes in the node's namespace.
    methods.add_method("map_set", |_, this, (at, name, key, value): (String, String, Value, Value)| {
        let what = format!("x:map_set({at:?}, {name:?})");
        let (_, ifname, ns) = target(this, &what, &at)?;
        let map = open_map(&ns, &ifname, &name, &what)?;
        let key = encode_key(&map, &key)?;
        let value = encode(&value, map.value_size, "value")?;
        netns::run_in(&ns, || map.set(&key, &value))
            .map_err(mlua::Error::external)?
            .map_err(|e| fail(format!("{what}: {e}")))
    });
    // x:map_delete("h2:eth0", "udp_ports", 9000) -> was it there?
    methods.add_method("map_delete", |_, this, (at, name, key): (String, String, Value)| {
        let what = format!("x:map_delete({at:?}, {name:?})");
        let (_, ifname, ns) = target(this, &what, &at)?;
        let map = open_map(&ns, &ifname, &name, &what)?;
        let key = encode_key(&map, &key)?;
        map.delete(&key).map_err(|e| fail(format!("{what}: {e}")))
    });
    // x:xdp("h2:eth0") -> { mode = "native", program = "xdp_count", id = 42, maps = { "actions", ... } } or nil
    methods.add_method("xdp", |lua, this, at: String| attachment(lua, this, &at));
    // x:xdp_attach("h2:eth0", { src = "../fixtures/xdp/xdp_drop.c", prog = "xdp_drop", mode = "native" })
    // (and include, defines, share_maps as in xdp())
    methods.add_method("xdp_attach", |lua, this, (at, opts): (String, Table)| attach(lua, this, &at, opts));
    // x:xdp_detach("h2:eth0") -> true if labctl had a program there
    methods.add_method("xdp_detach", |_, this, at: String| {
        let what = format!("x:xdp_detach({at:?})");
        let (node, ifname, _) = target(this, &what, &at)?;
        let lab_name = this.with_lab(|lab| lab.name.clone());
        apply_xdp::detach(&pin_dir(&lab_name, &node, &ifname)).map_err(|e| fail(format!("{what}: {e}")))
    });
    // x:xdp_events(function() ... end): the kernel's xdp: tracepoints while fn ran, per interface:
    // { ["r1:eth0"] = { xdp_redirect = 1000 }, ["r1:eth1"] = { ["xdp_devmap_xmit.sent"] = 1000 } }.
    methods.add_method("xdp_events", |lua, this, step: mlua::Function| {
        use crate::bpf::xdp_events::XdpEventCounter;
        let bpf = |e: crate::bpf::BpfError| fail(format!("x:xdp_events(): {e}"));
        let netns = this.all_netns()?;
        let inodes = crate::bpf::drops::inodes(&netns).map_err(bpf)?;
        let counter = XdpEventCounter::start_in(&inodes).map_err(bpf)?;
        let table = observed(&step, || counter.stop(&netns))?.map_err(bpf)?;
        mlua::LuaSerdeExt::to_value(lua, &table)
    });
    // x:ifindex("r1:eth1"): the interface's index inside its node.
    methods.add_method("ifindex", |_, this, at: String| {
        let what = format!("x:ifindex({at:?})");
        let (_, ifname, ns) = target(this, &what, &at)?;
        interface_index(&ns, &ifname).map_err(|e| fail(format!("{what}: {e}")))
    });
    // x:mac("h2:eth0"): the interface's MAC address, as the lab gave it.
    methods.add_method("mac", |_, this, at: String| {
        let what = format!("x:mac({at:?})");
        let (node, ifname, _) = target(this, &what, &at)?;
        Ok(this.with_lab(|lab| {
            let end = lab.endpoints_of(&node).find(|e| e.ifname == ifname).expect("checked by target()");
            lab.mac_of(end).to_string()
        }))
    });
}

/// `x:xdp(at)`: the program on an interface, read from the kernel, or nil.
fn attachment(lua: &Lua, this: &Runtime, at: &str) -> mlua::Result<Value> {
    let what = format!("x:xdp({at:?})");
    let (_, ifname, ns) = target(this, &what, at)?;
    let Some(attachment) = look::attachment(&ns, &ifname).map_err(|e| fail(format!("{what}: {e}")))? else {
        return Ok(Value::Nil);
    };
    let t = lua.create_table()?;
    t.set("mode", attachment.mode.clone())?;
    if let Some(program) = attachment.program_id().and_then(look::program) {
        t.set("program", program.name.clone())?;
        t.set("id", program.id)?;
        let maps: Vec<String> = look::maps_of(&program).iter().map(|m| m.name.clone()).collect();
        t.set("maps", maps)?;
    }
    Ok(Value::Table(t))
}

/// `x:xdp_attach(at, opts)`: journaled before anything is pinned or
/// attached, as in `up`, and unpinned again if attaching fails.
fn attach(lua: &Lua, this: &Runtime, at: &str, opts: Table) -> mlua::Result<Table> {
    let what = format!("x:xdp_attach({at:?})");
    const VALID: &[&str] = &["src", "obj", "prog", "mode", "include", "defines", "share_maps"];
    let raw = opts.clone();
    let opts = Options::check(lua, "x:xdp_attach()", Some(opts), VALID)?;
    let (node, ifname, ns) = target(this, &what, at)?;
    let (lab_name, folder) =
        this.with_lab(|lab| (lab.name.clone(), lab.file.parent().map(Path::to_path_buf).unwrap_or_default()));
    let path = |key: &str| -> mlua::Result<Option<std::path::PathBuf>> {
        Ok(opts.get::<String>(key)?.map(|p| if Path::new(&p).is_absolute() { p.into() } else { folder.join(p) }))
    };
    let object = match (path("src")?, path("obj")?) {
        (Some(src), None) => XdpObject::Source(src),
        (None, Some(obj)) => XdpObject::Object(obj),
        _ => return Err(fail(format!("{what}: give src = \"prog.c\" or obj = \"prog.o\" (one of them)"))),
    };
    let mode = match opts.get::<String>("mode")? {
        None => XdpMode::default(),
        Some(m) => {
            XdpMode::parse(&m).ok_or_else(|| fail(format!("{what}: unknown mode {m:?} (native, generic or auto)")))?
        }
    };
    let pins = pin_dir(&lab_name, &node, &ifname);
    if pins.exists() {
        return Err(fail(format!("{what}: labctl already attached a program there; x:xdp_detach({at:?}) first")));
    }
    let ifindex = interface_index(&ns, &ifname).map_err(|e| fail(format!("{what}: {e}")))?;
    let compile = crate::script::xdp::compile_options(&raw, &folder)?.map_err(|e| fail(format!("{what}: {e}")))?;
    let share_maps = crate::script::xdp::names_list(&raw.get::<Value>("share_maps")?)
        .map_err(|e| fail(format!("{what}: share_maps {e}")))?;
    let step = Step::AttachXdp {
        device: Device { node, ifname, ifindex },
        object,
        program: opts.get::<String>("prog")?,
        mode,
        pins,
        compile,
        share_maps,
    };
    // Journaled before anything is pinned or attached, as in `up`.
    let state = LabState::open(&lab_name).ok_or_else(|| fail(format!("{what}: lab {lab_name} is not running")))?;
    state.journal([&step]).map_err(|e| fail(format!("{what}: {e}")))?;
    let attachment = apply_xdp::Attachment::of(&step).expect("an XDP step");
    let attached = apply_xdp::attach(attachment, &ns).map_err(|e| {
        // Nothing may stay half attached: unpin what was pinned.
        let _ = apply_xdp::detach(attachment.pins);
        fail(format!("{what}: {e}"))
    })?;
    let t = lua.create_table()?;
    t.set("program", attached.program)?;
    t.set("id", attached.program_id)?;
    t.set("mode", mode.to_string())?;
    Ok(t)
}

/// Why an interface of a node has no index.
#[derive(Debug, thiserror::Error)]
enum IndexError {
    #[error("interface name {0:?} has a NUL byte")]
    Nul(String),
    #[error(transparent)]
    Netns(#[from] netns::NetnsError),
    #[error("no interface {0}")]
    NoSuchInterface(String),
}

fn interface_index(netns: &File, ifname: &str) -> Result<u32, IndexError> {
    let name = std::ffi::CString::new(ifname).map_err(|_| IndexError::Nul(ifname.to_string()))?;
    // SAFETY: if_nametoindex reads a NUL-terminated name.
    let index = netns::run_in(netns, || unsafe { libc::if_nametoindex(name.as_ptr()) })?;
    if index == 0 {
        return Err(IndexError::NoSuchInterface(ifname.to_string()));
    }
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lua_values_encode_to_map_bytes() {
        let lua = Lua::new();
        assert_eq!(encode(&Value::Integer(9000), 2, "key").unwrap(), vec![0x28, 0x23]);
        assert_eq!(encode(&Value::Integer(3), 4, "value").unwrap(), vec![3, 0, 0, 0]);
        assert!(encode(&Value::Integer(70000), 2, "key").is_err());
        assert!(encode(&Value::Integer(-1), 4, "key").is_err());
        let mac = Value::String(lua.create_string("02:00:00:00:00:01").unwrap());
        assert_eq!(encode(&mac, 8, "value").unwrap(), vec![2, 0, 0, 0, 0, 1, 0, 0]);
        let hex = Value::String(lua.create_string("0x0a000001").unwrap());
        assert_eq!(encode(&hex, 4, "key").unwrap(), vec![10, 0, 0, 1]);
        assert_eq!(encode(&Value::Integer(u32::MAX as i64), 8, "value").unwrap(), vec![255, 255, 255, 255, 0, 0, 0, 0]);
    }
}
