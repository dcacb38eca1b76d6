//! Impairment settings from Lua: `{ rate = "20mbit", delay = "10ms", jitter =
//! "2ms", loss = "10%", seed = 7, corrupt = "0.1%", limit = 100 }`, read the
//! same way for `link(..., { impair = {...} })`, `h1:impair("eth0", {...})`
//! and the experiment's `x:impair(...)`. Ranges are validation's
//! (validate/impair.rs); here only the shapes and units.

use mlua::{Lua, Table, Value};

use super::args::{self, show};
use super::builder;
use crate::model::impair::{parse_percent, parse_rate};
use crate::model::{ImpairSettings, Impairment};

/// The keys an impairment table takes.
pub const KEYS: &[&str] = &["rate", "delay", "jitter", "loss", "seed", "corrupt", "limit"];

pub const EXAMPLE: &str =
    r#"write { rate = "20mbit", loss = "10%", seed = 7 } (keys: rate, delay, jitter, loss, seed, corrupt, limit)"#;

/// Reads an impairment table; every problem is a message (the help is [`EXAMPLE`]).
pub fn read(table: &Table) -> mlua::Result<(ImpairSettings, Vec<String>)> {
    let mut problems: Vec<String> =
        args::unknown_keys(table, KEYS, 0).into_iter().map(|key| format!("unknown impairment {key}")).collect();
    let mut s = ImpairSettings::default();
    match table.raw_get::<Value>("rate")? {
        Value::Nil => {}
        Value::String(text) => match parse_rate(&text.to_string_lossy()) {
            Ok(bits) => s.rate = Some(bits),
            Err(message) => problems.push(message),
        },
        other => match args::whole_number(&other).filter(|n| *n > 0) {
            Some(bits) => s.rate = Some(bits as u64),
            None => {
                problems.push(format!("rate must be text like \"20mbit\" or bits per second, got {}", show(&other)))
            }
        },
    }
    for (key, slot) in [("delay", &mut s.delay), ("jitter", &mut s.jitter)] {
        let value = table.raw_get::<Value>(key)?;
        if !value.is_nil() {
            match args::duration(&value) {
                Ok(d) => *slot = Some(d),
                Err(message) => problems.push(format!("{key}: {message}")),
            }
        }
    }
    for (key, slot) in [("loss", &mut s.loss), ("corrupt", &mut s.corrupt)] {
        match table.raw_get::<Value>(key)? {
            Value::Nil => {}
            Value::String(text) => match parse_percent(&text.to_string_lossy()) {
                Ok(p) => *slot = Some(p),
                Err(message) => problems.push(format!("{key}: {message}")),
            },
            Value::Integer(n) => *slot = Some(n as f64),
            Value::Number(n) => *slot = Some(n),
            other => problems.push(format!("{key} must be a percentage like \"10%\", got {}", show(&other))),
        }
    }
    for key in ["seed", "limit"] {
        let value = table.raw_get::<Value>(key)?;
        if value.is_nil() {
            continue;
        }
        match (key, args::whole_number(&value)) {
            ("seed", Some(n)) if n >= 0 => s.seed = Some(n as u64),
            ("limit", Some(n)) if n >= 0 => s.limit = Some(u32::try_from(n).unwrap_or(u32::MAX)),
            _ => problems.push(format!("{key} must be a whole number, got {}", show(&value))),
        }
    }
    Ok((s, problems))
}

/// Records an impairment on one end, or reports what was wrong at the caller's line.
/// `report` false: the same table was reported at this line already (the other end of a link).
pub(super) fn declare(
    lua: &Lua,
    what: &str,
    node: &str,
    ifname: &str,
    value: &Value,
    report: bool,
) -> mlua::Result<()> {
    let origin = builder::origin(lua)?;
    let Value::Table(table) = value else {
        if !report {
            return Ok(());
        }
        return builder::with(lua, |b| {
            b.report(origin, format!("{what}: impair must be a table, got {}", show(value)), EXAMPLE)
        });
    };
    let (settings, problems) = read(table)?;
    builder::with(lua, |b| {
        for message in problems.into_iter().filter(|_| report) {
            b.report(origin.clone(), format!("{what}: {message}"), EXAMPLE);
        }
        b.lab.impairments.push(Impairment { node: node.into(), ifname: ifname.into(), settings, origin });
    })
}

/// `h1:impair("eth0", { ... })`.
pub(super) fn impair(lua: &Lua, node: &str, ifname: &Value, settings: &Value) -> mlua::Result<()> {
    let Some(ifname) = args::string(ifname) else {
        let origin = builder::origin(lua)?;
        return builder::with(lua, |b| {
            b.report(
                origin,
                format!("impair(): the interface name must be a string, got {}", show(ifname)),
                r#"write h1:impair("eth0", { rate = "20mbit" })"#,
            )
        });
    };
    declare(lua, &format!("impair(\"{node}:{ifname}\")"), node, &ifname, settings, true)
}
