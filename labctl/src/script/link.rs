//! `link(a, b, { "198.18.1.1/24", "198.18.1.2/24", names = {...}, mtu = ..., queues = ..., mac = {...} })`

use ipnet::IpNet;
use mlua::{Lua, Table, Value};

use super::args::{self, show};
use super::builder;
use super::vocabulary::NodeHandle;
use crate::model::{Endpoint, Link, MacAddr};

const VALID: &[&str] = &["names", "mtu", "queues", "mac", "impair"];
const EXAMPLE: &str = r#"write link(h1, r1, { "198.18.1.1/24", "198.18.1.2/24" })"#;

pub(super) fn link(lua: &Lua, (a, b, opts): (Value, Value, Value)) -> mlua::Result<()> {
    let mut problems = Problems::default();
    let a = node_name(&a, "first", &mut problems);
    let b = node_name(&b, "second", &mut problems);
    let opts = args::options(opts).unwrap_or_else(|message| {
        problems.add(message, args::valid_keys_help(VALID));
        None
    });
    let spec = match &opts {
        Some(opts) => read_options(opts, &mut problems)?,
        None => LinkSpec::default(),
    };

    let origin = builder::origin(lua)?;
    let impair = opts.as_ref().map(|o| o.raw_get::<Value>("impair")).transpose()?.filter(|v| !v.is_nil());
    let ends = builder::with(lua, |builder| {
        for (message, help) in problems.0 {
            builder.report(origin.clone(), format!("link(): {message}"), help);
        }
        let (Some(a), Some(b)) = (a, b) else { return None };
        let [a_addresses, b_addresses] = spec.addresses;
        let [a_name, b_name] = spec.names;
        let [a_mac, b_mac] = spec.macs;
        let a_ifname = a_name.unwrap_or_else(|| builder.next_ifname(&a, None));
        let b_ifname = b_name.unwrap_or_else(|| builder.next_ifname(&b, (a == b).then_some(a_ifname.as_str())));
        builder.lab.links.push(Link {
            ends: [
                Endpoint { node: a, ifname: a_ifname, addresses: a_addresses, mac: a_mac },
                Endpoint { node: b, ifname: b_ifname, addresses: b_addresses, mac: b_mac },
            ],
            mtu: spec.mtu,
            queues: spec.queues,
            origin,
        });
        let ends = &builder.lab.links.last().expect("just pushed").ends;
        Some(ends.clone().map(|e| (e.node, e.ifname)))
    })?;
    // `impair = {...}`: the same impairment on both ends, each for what it sends.
    if let (Some(impair), Some(ends)) = (impair, ends) {
        for (i, (node, ifname)) in ends.into_iter().enumerate() {
            super::impair::declare(lua, "link(): impair", &node, &ifname, &impair, i == 0)?;
        }
    }
    Ok(())
}

/// Messages and help lines, reported together at the call's line.
#[derive(Default)]
struct Problems(Vec<(String, String)>);

impl Problems {
    fn add(&mut self, message: impl Into<String>, help: impl Into<String>) {
        self.0.push((message.into(), help.into()));
    }
}

#[derive(Default)]
struct LinkSpec {
    addresses: [Vec<IpNet>; 2],
    names: [Option<String>; 2],
    macs: [Option<MacAddr>; 2],
    mtu: Option<u32>,
    queues: Option<u32>,
}

/// A link end: a node handle, or a node's name.
fn node_name(value: &Value, which: &str, problems: &mut Problems) -> Option<String> {
    match value {
        Value::UserData(ud) => {
            if let Ok(handle) = ud.borrow::<NodeHandle>() {
                return Some(handle.name.clone());
            }
        }
        Value::String(s) => return Some(s.to_string_lossy()),
        _ => {}
    }
    problems.add(
        format!("the {which} node is {} (expected a node like h1, or its name \"h1\")", show(value)),
        "pass what node() or bridge() returned, or the node's name as a string",
    );
    None
}

fn read_options(opts: &Table, problems: &mut Problems) -> mlua::Result<LinkSpec> {
    for key in args::unknown_keys(opts, VALID, i64::MAX) {
        problems.add(format!("unknown option {key}"), args::valid_keys_help(VALID));
    }
    if opts.raw_len() > 2 {
        problems.add(
            format!("{} address entries given; a link has two ends", opts.raw_len()),
            "give one entry per end, each a CIDR string or a list of them: { {\"198.18.1.1/24\", \"2001:db8::1/64\"}, \"198.18.1.2/24\" }",
        );
    }
    let mut spec = LinkSpec::default();
    for (i, addresses) in spec.addresses.iter_mut().enumerate() {
        *addresses = read_addresses(&opts.raw_get(i + 1)?, problems)?;
    }
    spec.names = pair(opts, "names", problems, |name| Ok(name.to_string()))?;
    spec.macs = pair(opts, "mac", problems, |mac| mac.parse::<MacAddr>().map_err(|e| e.to_string()))?;
    spec.mtu = count(opts, "mtu", "between 68 and 65535", problems)?;
    spec.queues = count(opts, "queues", "between 1 and 64", problems)?;
    Ok(spec)
}

/// One end's addresses: `false`/nil, a CIDR, or a list of CIDRs.
fn read_addresses(value: &Value, problems: &mut Problems) -> mlua::Result<Vec<IpNet>> {
    let texts = match value {
        Value::Nil | Value::Boolean(false) => return Ok(Vec::new()),
        Value::String(s) => vec![s.to_string_lossy()],
        Value::Table(list) => {
            let mut texts = Vec::new();
            for item in list.sequence_values::<Value>() {
                match item? {
                    Value::String(s) => texts.push(s.to_string_lossy()),
                    other => problems.add(format!("{} is not an address", show(&other)), EXAMPLE),
                }
            }
            texts
        }
        other => {
            problems.add(
                format!("an address entry must be a CIDR string, a list of them, or false; got {}", show(other)),
                EXAMPLE,
            );
            return Ok(Vec::new());
        }
    };
    Ok(texts
        .iter()
        .filter_map(|text| args::cidr(text).map_err(|message| problems.add(message, EXAMPLE)).ok())
        .collect())
}

/// `key = { a_value, b_value }`, each end `false`/nil or a string.
fn pair<T>(
    opts: &Table,
    key: &str,
    problems: &mut Problems,
    parse: impl Fn(&str) -> Result<T, String>,
) -> mlua::Result<[Option<T>; 2]> {
    let help = format!("write {key} = {{ <first end>, <second end> }}, each a string, or false to leave it out");
    let list = match opts.raw_get::<Value>(key)? {
        Value::Nil => return Ok([None, None]),
        Value::Table(list) => list,
        other => {
            problems.add(format!("{key} must be a table of two strings, got {}", show(&other)), help);
            return Ok([None, None]);
        }
    };
    let mut ends = [None, None];
    for (i, end) in ends.iter_mut().enumerate() {
        match list.raw_get::<Value>(i + 1)? {
            Value::Nil | Value::Boolean(false) => {}
            Value::String(s) => match parse(&s.to_string_lossy()) {
                Ok(v) => *end = Some(v),
                Err(message) => problems.add(format!("{key}: {message}"), help.clone()),
            },
            other => problems.add(format!("{key}: {} is not a string", show(&other)), help.clone()),
        }
    }
    Ok(ends)
}

/// A whole-number option such as `mtu`; its range is checked in validation.
fn count(opts: &Table, key: &str, range: &str, problems: &mut Problems) -> mlua::Result<Option<u32>> {
    let value = opts.raw_get::<Value>(key)?;
    if value.is_nil() {
        return Ok(None);
    }
    let number = args::whole_number(&value).and_then(|n| u32::try_from(n).ok());
    if number.is_none() {
        problems.add(
            format!("{key} must be a whole number {range}, got {}", show(&value)),
            format!("write {key} = <number>"),
        );
    }
    Ok(number)
}
