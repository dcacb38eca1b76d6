//! `h1:tune("eth0", { rps_cpus = "3", xps_cpus = "1", rps_flow_cnt = 4096,
//! gro = false, gso = false, tso = false, threaded = true })`: receive and
//! transmit tuning of one interface. Whether the interface exists is left
//! to validation, which sees every link.

use mlua::{Lua, Table, Value};

use super::args::{self, show};
use super::builder;
use crate::model::{Tuning, OFFLOADS};

const HELP: &str = r#"write h1:tune("eth0", { rps_cpus = "3", gro = false, threaded = true })"#;
const VALID: &[&str] =
    &["rps_cpus", "xps_cpus", "rps_flow_cnt", "threaded", "gro", "gso", "tso", "rx_checksum", "tx_checksum"];

fn report(lua: &Lua, message: String) -> mlua::Result<()> {
    let origin = builder::origin(lua)?;
    builder::with(lua, |b| b.report(origin, message, HELP))
}

pub(super) fn tune(lua: &Lua, index: usize, ifname: &Value, opts: &Value) -> mlua::Result<()> {
    let Some(ifname) = args::string(ifname) else {
        return report(lua, format!("tune(): the interface name must be a string, got {}", show(ifname)));
    };
    let Value::Table(opts) = opts else {
        return report(lua, format!("tune({ifname:?}): expected a table of settings, got {}", show(opts)));
    };
    for key in args::unknown_keys(opts, VALID, 0) {
        let origin = builder::origin(lua)?;
        builder::with(lua, |b| {
            b.report(origin, format!("tune(): unknown option {key}"), args::valid_keys_help(VALID))
        })?;
    }
    let mut tuning = Tuning { ifname: ifname.clone(), origin: builder::origin(lua)?, ..Tuning::default() };
    for (key, slot) in [("rps_cpus", &mut tuning.rps_cpus), ("xps_cpus", &mut tuning.xps_cpus)] {
        match cpu_mask(opts, key)? {
            Ok(mask) => *slot = mask,
            Err(message) => return report(lua, format!("tune({ifname:?}): {message}")),
        }
    }
    match opts.get::<Value>("rps_flow_cnt")? {
        Value::Nil => {}
        v => match args::whole_number(&v).filter(|n| (1..=1 << 20).contains(n)) {
            Some(n) => tuning.rps_flow_cnt = Some(n as u32),
            None => {
                return report(
                    lua,
                    format!(
                        "tune({ifname:?}): rps_flow_cnt must be a whole number from 1 to 1048576, got {}",
                        show(&v)
                    ),
                )
            }
        },
    }
    for key in OFFLOADS.iter().copied().chain(["threaded"]) {
        match opts.get::<Value>(key)? {
            Value::Nil => {}
            Value::Boolean(on) if key == "threaded" => tuning.threaded = Some(on),
            Value::Boolean(on) => {
                tuning.offloads.insert(key.to_string(), on);
            }
            other => {
                return report(lua, format!("tune({ifname:?}): {key} must be true or false, got {}", show(&other)))
            }
        }
    }
    builder::with(lua, |b| b.lab.nodes[index].tunings.push(tuning))
}

/// A CPU mask in hex, as sysfs takes it ("3", "ff", "1,00000000"), or a
/// number of CPUs' bits given as a Lua integer (3 -> "3").
fn cpu_mask(opts: &Table, key: &str) -> mlua::Result<Result<Option<String>, String>> {
    Ok(match opts.get::<Value>(key)? {
        Value::Nil => Ok(None),
        Value::Integer(n) if n >= 0 => Ok(Some(format!("{n:x}"))),
        Value::String(s) => {
            let text = s.to_string_lossy();
            if !text.is_empty() && text.chars().all(|c| c.is_ascii_hexdigit() || c == ',') {
                Ok(Some(text))
            } else {
                Err(format!("{key} must be a hex CPU mask like \"3\" (CPUs 0 and 1), got {text:?}"))
            }
        }
        other => Err(format!("{key} must be a hex CPU mask like \"3\", got {}", show(&other))),
    })
}
