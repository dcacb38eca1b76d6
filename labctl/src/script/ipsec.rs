//! `ipsec { left = gw1, right = gw2, left_subnet = "198.19.10.0/24", right_subnet = "198.19.20.0/24",
//!          mode = "tunnel", cipher = "aes-gcm-128", backend = "auto", key = "...",
//!          left_address = "198.18.1.1", right_address = "198.18.2.1" }`
//!
//! Only what the model cannot hold is rejected here (an unknown cipher, a
//! malformed subnet); which nodes exist, the endpoints and overlapping
//! subnets are checked in validate/ipsec.rs.

use std::net::IpAddr;

use ipnet::IpNet;
use mlua::{Lua, Table, Value};

use super::args::{self, show};
use super::builder;
use super::vocabulary::NodeHandle;
use crate::model::ipsec::{BACKENDS, CIPHERS, MODES};
use crate::model::{Backend, Cipher, Ipsec, IpsecMode};

const VALID: &[&str] = &[
    "left",
    "right",
    "left_subnet",
    "right_subnet",
    "left_address",
    "right_address",
    "mode",
    "cipher",
    "backend",
    "key",
];
const EXAMPLE: &str =
    r#"write ipsec { left = gw1, right = gw2, left_subnet = "198.19.10.0/24", right_subnet = "198.19.20.0/24" }"#;

pub(super) fn ipsec(lua: &Lua, spec: Value) -> mlua::Result<()> {
    let origin = builder::origin(lua)?;
    let mut problems: Vec<(String, String)> = Vec::new();
    let mut problem = |message: String, help: String| problems.push((format!("ipsec(): {message}"), help));
    let Value::Table(spec) = spec else {
        problem(format!("expected a table, got {}", show(&spec)), EXAMPLE.into());
        return report_all(lua, origin, problems);
    };
    for key in args::unknown_keys(&spec, VALID, 0) {
        problem(format!("unknown option {key}"), args::valid_keys_help(VALID));
    }
    let left = node(&spec, "left", &mut problem)?;
    let right = node(&spec, "right", &mut problem)?;
    let left_subnet = subnet(&spec, "left_subnet", &mut problem)?;
    let right_subnet = subnet(&spec, "right_subnet", &mut problem)?;
    let left_address = address(&spec, "left_address", &mut problem)?;
    let right_address = address(&spec, "right_address", &mut problem)?;
    let mode = choice::<IpsecMode>(&spec, "mode", MODES, &mut problem)?.unwrap_or(IpsecMode::Tunnel);
    let cipher = choice::<Cipher>(&spec, "cipher", CIPHERS, &mut problem)?.unwrap_or(Cipher::AesGcm128);
    let backend = choice::<Backend>(&spec, "backend", BACKENDS, &mut problem)?.unwrap_or(Backend::Auto);
    let key = match spec.raw_get::<Value>("key")? {
        Value::Nil => None,
        Value::String(s) if !s.to_string_lossy().is_empty() => Some(s.to_string_lossy()),
        other => {
            problem(
                format!("key must be a non-empty string, got {}", show(&other)),
                "leave it out to derive one from the lab and node names, or write key = \"a long secret\"".into(),
            );
            None
        }
    };
    if let (Some(left), Some(right)) = (left, right) {
        if problems.is_empty() {
            let ipsec = Ipsec {
                left,
                right,
                left_address,
                right_address,
                left_subnet,
                right_subnet,
                mode,
                cipher,
                backend,
                key,
                origin,
            };
            return builder::with(lua, |b| b.lab.ipsec.push(ipsec));
        }
    }
    report_all(lua, origin, problems)
}

fn report_all(lua: &Lua, origin: crate::diag::Origin, problems: Vec<(String, String)>) -> mlua::Result<()> {
    builder::with(lua, |b| {
        for (message, help) in problems {
            b.report(origin.clone(), message, help);
        }
    })
}

/// `left = gw1` (a node handle) or `left = "gw1"`.
fn node(spec: &Table, key: &str, problem: &mut impl FnMut(String, String)) -> mlua::Result<Option<String>> {
    Ok(match spec.raw_get::<Value>(key)? {
        Value::UserData(ud) if ud.borrow::<NodeHandle>().is_ok() => Some(ud.borrow::<NodeHandle>()?.name.clone()),
        Value::String(s) => Some(s.to_string_lossy()),
        Value::Nil => {
            problem(format!("{key} is missing"), EXAMPLE.into());
            None
        }
        other => {
            problem(
                format!("{key} is {} (expected a node like gw1, or its name \"gw1\")", show(&other)),
                "pass what node() returned, or the node's name as a string".into(),
            );
            None
        }
    })
}

fn subnet(spec: &Table, key: &str, problem: &mut impl FnMut(String, String)) -> mlua::Result<Option<IpNet>> {
    Ok(match spec.raw_get::<Value>(key)? {
        Value::Nil => None,
        Value::String(s) => {
            let text = s.to_string_lossy();
            match args::cidr(&text) {
                Ok(net) if net.trunc() == net => Some(net),
                Ok(net) => {
                    problem(
                        format!("{key} {text:?} has host bits set"),
                        format!("write the network address: {key} = \"{}\"", net.trunc()),
                    );
                    None
                }
                Err(message) => {
                    problem(format!("{key} {message}"), EXAMPLE.into());
                    None
                }
            }
        }
        other => {
            problem(format!("{key} must be a CIDR string, got {}", show(&other)), EXAMPLE.into());
            None
        }
    })
}

fn address(spec: &Table, key: &str, problem: &mut impl FnMut(String, String)) -> mlua::Result<Option<IpAddr>> {
    Ok(match spec.raw_get::<Value>(key)? {
        Value::Nil => None,
        Value::String(s) => {
            let text = s.to_string_lossy();
            // A CIDR is fine too: its address is what counts.
            let parsed = text.parse::<IpAddr>().ok().or_else(|| text.parse::<IpNet>().ok().map(|n| n.addr()));
            if parsed.is_none() {
                problem(
                    format!("{key} {text:?} is not an IP address"),
                    format!("write {key} = \"198.18.1.1\", an address of that node"),
                );
            }
            parsed
        }
        other => {
            problem(format!("{key} must be an address string, got {}", show(&other)), EXAMPLE.into());
            None
        }
    })
}

/// One of a fixed set of names; unknown ones are listed with the valid ones.
fn choice<T: std::str::FromStr>(
    spec: &Table,
    key: &str,
    valid: &[&str],
    problem: &mut impl FnMut(String, String),
) -> mlua::Result<Option<T>> {
    let value = spec.raw_get::<Value>(key)?;
    if value.is_nil() {
        return Ok(None);
    }
    let parsed = args::string(&value).and_then(|s| s.parse::<T>().ok());
    if parsed.is_none() {
        problem(
            format!("unknown {key} {}", show(&value)),
            format!("{key} is one of: {}", valid.iter().map(|v| format!("\"{v}\"")).collect::<Vec<_>>().join(", ")),
        );
    }
    Ok(parsed)
}
