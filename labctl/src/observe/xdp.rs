//! XDP as the kernel sees it: which program runs on which interface of a
//! node, in which mode (rtnetlink `IFLA_XDP`, like `ip -d link`), and the
//! contents of that program's maps (found through the program's map ids,
//! so it works for programs attached at `up`, from an experiment, or by
//! hand with `ip link set dev eth0 xdp ...`).
//!
//! Values decode by the map's BTF where it has one (struct fields by name,
//! `xdp_stats_map.2.rx_packets`), else as little-endian integers when they
//! are 1, 2, 4 or 8 bytes wide (counters, ifindexes), else as hex. Per-CPU
//! values are summed, field by field, unless asked for per CPU. Keys whose
//! BTF type is an enum read by name (`XDP_PASS` for `enum xdp_action`); so
//! do those of maps named `actions` (or ending in `actions`) with 4-byte
//! keys, taken for XDP action counters.

use std::collections::BTreeMap;
use std::fs::File;

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{LinkAttribute, LinkXdp, XdpAttached};
use serde::Serialize;

use super::error::{ObserveError, Result};
use super::netlink::{self, query};
use crate::bpf::btf::{Type, Types};
use crate::bpf::maps::{as_integer, RawMap};
use crate::bpf::BpfError;

/// Why an XDP program's maps cannot be read; each says which interface,
/// program or map.
#[derive(Debug, thiserror::Error)]
pub enum XdpMapError {
    #[error(transparent)]
    Observe(Box<ObserveError>),
    #[error("{ifname} has no XDP program attached")]
    NotAttached { ifname: String },
    #[error("{ifname}: no XDP program id")]
    NoProgramId { ifname: String },
    #[error("{ifname}: XDP program {id} is gone")]
    ProgramGone { ifname: String, id: u32 },
    #[error("the XDP program {program} on {ifname} has no map {name:?} (its maps: {})", maps.join(", "))]
    NoSuchMap { program: String, ifname: String, name: String, maps: Vec<String> },
    #[error("map {map} is a {kind} map, whose values cannot be read")]
    Unreadable { map: String, kind: String },
    #[error(transparent)]
    Bpf(Box<BpfError>),
}

// Boxed: both are large, and these errors travel up through the experiment.
impl From<ObserveError> for XdpMapError {
    fn from(e: ObserveError) -> Self {
        XdpMapError::Observe(Box::new(e))
    }
}

impl From<BpfError> for XdpMapError {
    fn from(e: BpfError) -> Self {
        XdpMapError::Bpf(Box::new(e))
    }
}

/// XDP actions by value, as `enum xdp_action` numbers them.
pub const ACTIONS: [&str; 5] = ["XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT"];

/// The XDP program(s) on one interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    pub ifname: String,
    pub ifindex: u32,
    /// `native`, `generic`, `offload`, or `multi` (several at once).
    pub mode: String,
    /// Program ids by mode (`native` -> 42); one entry unless `multi`.
    pub programs: BTreeMap<String, u32>,
}

impl Attachment {
    /// The program that runs first on received frames: the native one when
    /// several are attached.
    pub fn program_id(&self) -> Option<u32> {
        ["offload", "native", "generic"].iter().find_map(|m| self.programs.get(*m).copied())
    }
}

/// Every interface of the namespace behind `netns` with an XDP program.
pub fn attachments(netns: &File) -> Result<Vec<Attachment>> {
    query(netns, |handle| async move {
        let mut links = handle.link().get().execute();
        let mut found = Vec::new();
        while let Some(msg) = links.try_next().await.map_err(ObserveError::netlink("dump links"))? {
            let ifname = msg
                .attributes
                .iter()
                .find_map(|a| match a {
                    LinkAttribute::IfName(n) => Some(n.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| format!("if{}", msg.header.index));
            if let Some(a) = from_attributes(ifname, msg.header.index, &msg.attributes) {
                found.push(a);
            }
        }
        Ok(found)
    })
}

/// The XDP program(s) on `ifname` in the namespace behind `netns`, if any.
pub fn attachment(netns: &File, ifname: &str) -> Result<Option<Attachment>> {
    let name = ifname.to_string();
    query(netns, |handle| async move {
        let mut links = handle.link().get().match_name(name.clone()).execute();
        match links.try_next().await {
            Ok(Some(msg)) => Ok(from_attributes(name, msg.header.index, &msg.attributes)),
            Ok(None) => Err(ObserveError::NoSuchInterface { ifname: name }),
            Err(e) if netlink::is_no_such_device(&e) => Err(ObserveError::NoSuchInterface { ifname: name }),
            Err(e) => Err(ObserveError::netlink(format!("get link {name}"))(e)),
        }
    })
}

fn from_attributes(ifname: String, ifindex: u32, attributes: &[LinkAttribute]) -> Option<Attachment> {
    let xdp = attributes.iter().find_map(|a| match a {
        LinkAttribute::Xdp(x) => Some(x),
        _ => None,
    })?;
    let mut mode = None;
    let mut programs = BTreeMap::new();
    let mut single = None;
    for attribute in xdp {
        match attribute {
            LinkXdp::Attached(XdpAttached::None) => return None,
            LinkXdp::Attached(a) => {
                mode = Some(match a {
                    XdpAttached::Driver => "native",
                    XdpAttached::SocketBuffer => "generic",
                    XdpAttached::Hardware => "offload",
                    XdpAttached::Multiple => "multi",
                    _ => "unknown",
                })
            }
            LinkXdp::ProgId(id) => single = Some(*id),
            LinkXdp::DrvProgId(id) => {
                programs.insert("native".to_string(), *id);
            }
            LinkXdp::SkbProgId(id) => {
                programs.insert("generic".to_string(), *id);
            }
            LinkXdp::HwProgId(id) => {
                programs.insert("offload".to_string(), *id);
            }
            _ => {}
        }
    }
    let mode = mode?.to_string();
    if let (Some(id), true) = (single, programs.is_empty()) {
        programs.insert(mode.clone(), id);
    }
    Some(Attachment { ifname, ifindex, mode, programs })
}

/// What the kernel says about a loaded program.
#[derive(Debug, Clone, Serialize)]
pub struct Program {
    pub id: u32,
    pub name: String,
    /// bpftool's tag: a hash of the instructions.
    pub tag: String,
    pub map_ids: Vec<u32>,
}

/// The program with this id, if it is loaded.
pub fn program(id: u32) -> Option<Program> {
    aya::programs::loaded_programs().flatten().find(|p| p.id() == id).map(|p| Program {
        id,
        name: p.name_as_str().unwrap_or("").to_string(),
        tag: format!("{:016x}", p.tag()),
        map_ids: p.map_ids().ok().flatten().unwrap_or_default(),
    })
}

/// The maps a program uses, without the ones holding its global variables
/// (`<prog>.bss`, `.data`, `.rodata`).
pub fn maps_of(program: &Program) -> Vec<RawMap> {
    program.map_ids.iter().filter_map(|id| RawMap::from_id(*id).ok()).filter(|m| !m.name.contains('.')).collect()
}

/// The map of the XDP program on `ifname` that is named `name` (the kernel
/// keeps 15 characters of a map's name).
pub fn find_map(netns: &File, ifname: &str, name: &str) -> std::result::Result<RawMap, XdpMapError> {
    let attachment =
        attachment(netns, ifname)?.ok_or_else(|| XdpMapError::NotAttached { ifname: ifname.to_string() })?;
    let id = attachment.program_id().ok_or_else(|| XdpMapError::NoProgramId { ifname: ifname.to_string() })?;
    let program = program(id).ok_or_else(|| XdpMapError::ProgramGone { ifname: ifname.to_string(), id })?;
    let maps = maps_of(&program);
    let wanted = &name[..name.len().min(15)];
    let names: Vec<String> = maps.iter().map(|m| m.name.clone()).collect();
    maps.into_iter().find(|m| m.name == wanted).ok_or_else(|| XdpMapError::NoSuchMap {
        program: program.name.clone(),
        ifname: ifname.to_string(),
        name: name.to_string(),
        maps: names,
    })
}

/// A key as text: its enum name, a counter's index or port, or hex.
pub fn key_text(map: &RawMap, key: &[u8]) -> String {
    match (key_name(map, key), as_integer(key)) {
        (Some(name), _) => name,
        (None, Some(k)) => k.to_string(),
        (None, None) => hex(key),
    }
}

/// The name of a key: from the enum that is its BTF type, or an XDP
/// action's for an action counter map.
pub fn key_name(map: &RawMap, key: &[u8]) -> Option<String> {
    let k = as_integer(key)?;
    if let Some(Type::Enum { names, .. }) = map.types.as_ref().and_then(|t| t.types.resolve(t.key)) {
        return names.get(&k).cloned();
    }
    (is_action_map(map) && (k as usize) < ACTIONS.len()).then(|| ACTIONS[k as usize].to_string())
}

/// The key called `name` (see [`key_name`]), as the map's key bytes.
pub fn key_named(map: &RawMap, name: &str) -> Option<Vec<u8>> {
    let value = match map.types.as_ref().and_then(|t| t.types.resolve(t.key)) {
        Some(Type::Enum { names, .. }) => names.iter().find(|(_, n)| *n == name).map(|(v, _)| *v)?,
        _ if is_action_map(map) => ACTIONS.iter().position(|a| *a == name)? as u64,
        _ => return None,
    };
    Some(value.to_le_bytes()[..map.key_size.min(8)].to_vec())
}

/// Maps of XDP action counters: `actions`, `xdp_actions`, ... with u32 keys.
pub fn is_action_map(map: &RawMap) -> bool {
    map.key_size == 4 && map.name.ends_with("actions")
}

pub fn hex(bytes: &[u8]) -> String {
    let digits: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("0x{digits}")
}

/// A value: an integer, a struct by field name, or bytes as hex; summed
/// over CPUs (integers, and structs field by field) unless per CPU.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Integer(u64),
    Bytes(String),
    Struct(BTreeMap<String, Value>),
    PerCpu(Vec<Value>),
}

impl Value {
    /// `self + other`: integers add (wrapping, as the counters do), structs
    /// field by field; bytes keep the first value.
    fn add(self, other: &Value) -> Value {
        match (self, other) {
            (Value::Integer(a), Value::Integer(b)) => Value::Integer(a.wrapping_add(*b)),
            (Value::Struct(mut a), Value::Struct(b)) => {
                for (field, v) in a.iter_mut() {
                    if let Some(w) = b.get(field) {
                        *v = std::mem::replace(v, Value::Integer(0)).add(w);
                    }
                }
                Value::Struct(a)
            }
            (a, _) => a,
        }
    }

    /// Its integers by name: itself as `prefix`, a struct's fields as
    /// `prefix.field` (nested structs further down).
    pub fn integers(&self, prefix: &str, out: &mut BTreeMap<String, u64>) {
        match self {
            Value::Integer(v) => {
                out.insert(prefix.to_string(), *v);
            }
            Value::Struct(fields) => fields.iter().for_each(|(f, v)| v.integers(&format!("{prefix}.{f}"), out)),
            Value::Bytes(_) | Value::PerCpu(_) => {}
        }
    }
}

/// One CPU's value of type `id` (or untyped: an integer if it is 1, 2, 4 or 8 bytes).
fn decode_one(types: Option<(&Types, u32)>, bytes: &[u8]) -> Value {
    let untyped = || as_integer(bytes).map_or_else(|| Value::Bytes(hex(bytes)), Value::Integer);
    let Some((types, id)) = types else { return untyped() };
    match types.resolve(id) {
        Some(Type::Struct { members, .. }) => Value::Struct(
            members
                .iter()
                .filter(|m| !m.name.is_empty())
                .filter_map(|m| {
                    let start = m.offset? as usize;
                    let field = bytes.get(start..start + types.size_of(m.type_id)? as usize)?;
                    Some((m.name.clone(), decode_one(Some((types, m.type_id)), field)))
                })
                .collect(),
        ),
        Some(Type::Int { .. } | Type::Enum { .. }) => untyped(),
        _ => Value::Bytes(hex(bytes)),
    }
}

fn decode(map: &RawMap, values: &[Vec<u8>], per_cpu: bool) -> Value {
    let types = map.types.as_ref().map(|t| (&t.types, t.value));
    let mut each = values.iter().map(|v| decode_one(types, v));
    if per_cpu && map.per_cpu() {
        return Value::PerCpu(each.collect());
    }
    let first = each.next().unwrap_or(Value::Integer(0));
    each.fold(first, |sum, v| sum.add(&v))
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Integer(0) => true,
        Value::PerCpu(all) => all.iter().all(is_zero),
        Value::Struct(fields) => fields.values().all(is_zero),
        _ => false,
    }
}

fn is_array(map: &RawMap) -> bool {
    matches!(map.map_type, Some(aya::maps::MapType::Array | aya::maps::MapType::PerCpuArray))
}

/// A map's elements as (key bytes, value). Array slots that hold zero are
/// left out, as a hash map would not have them.
pub fn read(map: &RawMap, per_cpu: bool) -> std::result::Result<Vec<(Vec<u8>, Value)>, XdpMapError> {
    if !map.readable() {
        return Err(XdpMapError::Unreadable { map: map.name.clone(), kind: map.type_name().to_string() });
    }
    let elements = map.elements()?;
    Ok(elements
        .into_iter()
        .map(|e| {
            let value = decode(map, &e.values, per_cpu);
            (e.key, value)
        })
        .filter(|(_, v)| !(is_array(map) && is_zero(v)))
        .collect())
}

/// Is it a map of counters (arrays and hashes of integers, or of structs
/// BTF describes)?
fn is_counter_map(map: &RawMap) -> bool {
    use aya::maps::MapType::*;
    let described = map.types.as_ref().is_some_and(|t| matches!(t.types.resolve(t.value), Some(Type::Struct { .. })));
    matches!(map.map_type, Some(Array | PerCpuArray | Hash | PerCpuHash | LruHash | LruPerCpuHash))
        && (matches!(map.value_size, 1 | 2 | 4 | 8) || described)
}

/// The counters of every map of the XDP program on `ifname`, as
/// `<map>.<key>` or, for struct values, `<map>.<key>.<field>` (per-CPU
/// values summed): what `x:counters{"r1:eth0:xdp"}` shows and `x:delta`
/// compares. Empty if nothing is attached.
pub fn counters(netns: &File, ifname: &str) -> std::result::Result<BTreeMap<String, u64>, XdpMapError> {
    let Some(attachment) = attachment(netns, ifname)? else {
        return Ok(BTreeMap::new());
    };
    let Some(program) = attachment.program_id().and_then(program) else { return Ok(BTreeMap::new()) };
    let mut all = BTreeMap::new();
    for map in maps_of(&program).iter().filter(|m| is_counter_map(m)) {
        for (key, value) in read(map, false)? {
            value.integers(&format!("{}.{}", map.name, key_text(map, &key)), &mut all);
        }
    }
    Ok(all)
}

/// [`counters`] of every interface with an XDP program in the namespace,
/// as `<ifname>.<map>.<key>`.
pub fn node_counters(netns: &File) -> std::result::Result<BTreeMap<String, u64>, XdpMapError> {
    let mut all = BTreeMap::new();
    for a in attachments(netns)? {
        for (name, value) in counters(netns, &a.ifname)? {
            all.insert(format!("{}.{name}", a.ifname), value);
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untyped_values_are_integers_or_hex() {
        assert_eq!(decode_one(None, &[1, 0, 0, 0, 0, 0, 0, 0]), Value::Integer(1));
        assert_eq!(decode_one(None, &[0xaa, 0xbb, 0xcc]), Value::Bytes("0xaabbcc".into()));
    }

    #[test]
    fn structs_add_up_field_by_field() {
        let rec = |p, b| {
            Value::Struct(BTreeMap::from([
                ("rx_packets".into(), Value::Integer(p)),
                ("rx_bytes".into(), Value::Integer(b)),
            ]))
        };
        assert_eq!(rec(9, 900).add(&rec(5, 500)), rec(14, 1400));
        let mut flat = BTreeMap::new();
        rec(14, 1400).integers("stats.2", &mut flat);
        assert_eq!(flat, BTreeMap::from([("stats.2.rx_bytes".into(), 1400), ("stats.2.rx_packets".into(), 14)]));
    }

    #[test]
    fn xdp_attributes_give_mode_and_program() {
        let attrs = vec![LinkAttribute::Xdp(vec![LinkXdp::Attached(XdpAttached::Driver), LinkXdp::ProgId(42)])];
        let a = from_attributes("eth0".into(), 2, &attrs).unwrap();
        assert_eq!(a.mode, "native");
        assert_eq!(a.program_id(), Some(42));
        let none = vec![LinkAttribute::Xdp(vec![LinkXdp::Attached(XdpAttached::None)])];
        assert!(from_attributes("eth0".into(), 2, &none).is_none());
    }
}
