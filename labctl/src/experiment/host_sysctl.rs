//! `x:host_sysctl`: a machine-wide sysctl, read now, or changed while a
//! function runs and put back after (apply/host_sysctl.rs journals it).
//!
//! ```lua
//! x:host_sysctl("net.core.netdev_max_backlog")                          -- 1000
//! x:host_sysctl({ ["net.core.netdev_max_backlog"] = 32 }, function() ... end)
//! ```

use mlua::{Function, Lua, LuaSerdeExt, MultiValue, Table, UserDataMethods, Value};

use super::runtime::{fail, Runtime};
use crate::apply::host_sysctl::{self, HostSysctlError};

const USAGE: &str = "x:host_sysctl(key) reads a machine-wide sysctl; \
                     x:host_sysctl({ [key] = value }, function() ... end) changes it while the function runs";

fn error(e: HostSysctlError) -> mlua::Error {
    fail(format!("x:host_sysctl(): {e}"))
}

pub(super) fn register<M: UserDataMethods<Runtime>>(methods: &mut M) {
    methods.add_method("host_sysctl", |lua, this, (what, body): (Value, Option<Function>)| match (what, body) {
        (Value::String(key), None) => read(lua, &key.to_string_lossy()),
        (Value::Table(changes), Some(body)) => change_while(this, &changes, &body),
        _ => Err(fail(USAGE)),
    });
}

/// The value now: a number if it reads as one.
fn read(lua: &Lua, key: &str) -> mlua::Result<MultiValue> {
    let value = host_sysctl::read(key).map_err(error)?;
    Ok(MultiValue::from_vec(vec![match value.parse::<i64>() {
        Ok(n) => Value::Integer(n),
        Err(_) => lua.to_value(&value)?,
    }]))
}

/// Applies `changes`, runs `body`, puts the old values back, whatever `body` did.
fn change_while(this: &Runtime, changes: &Table, body: &Function) -> mlua::Result<MultiValue> {
    let mut wanted = Vec::new();
    for pair in changes.pairs::<String, Value>() {
        let (key, value) = pair?;
        let value = match value {
            Value::Integer(n) => n.to_string(),
            Value::Number(n) if n.fract() == 0.0 => (n as i64).to_string(),
            Value::String(s) => s.to_string_lossy(),
            other => other.to_string()?,
        };
        wanted.push((key, value));
    }
    wanted.sort();
    let lab = this.with_lab(|lab| lab.name.clone());
    // Every lab sees the change: none may send or measure while it holds.
    let _turn = crate::sys::machine_turn::exclusive();
    let changed = host_sysctl::change(&lab, &wanted).map_err(error)?;
    let result = body.call::<MultiValue>(());
    let restored = changed.restore();
    let values = result?;
    restored.map_err(error)?;
    Ok(values)
}
