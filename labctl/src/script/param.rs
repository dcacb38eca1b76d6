//! `param("nic", "veth")`: a value the command line may set (`--set nic=enp3s0`),
//! so one lab file serves a laptop (veth stand-ins) and a test box (real ports).
//! The value takes the type of the default: a number default reads a number.

use mlua::{Lua, Value};

use super::args::{self, show};
use super::builder;
use crate::model::Param;

const EXAMPLE: &str = r#"write local nic = param("nic", "veth")"#;

pub(super) fn param(lua: &Lua, (name, default): (Value, Value)) -> mlua::Result<Value> {
    let origin = builder::origin(lua)?;
    let Some(name) = args::string(&name).filter(|n| valid_name(n)) else {
        builder::with(lua, |b| {
            b.report(origin, format!("param(): the name must be a word like \"nic\", got {}", show(&name)), EXAMPLE)
        })?;
        return Ok(default);
    };
    let default_text = match &default {
        Value::String(s) => s.to_string_lossy(),
        Value::Boolean(_) | Value::Integer(_) | Value::Number(_) => show(&default),
        other => {
            let message =
                format!("param({name:?}): the default must be a string, number or boolean, got {}", show(other));
            builder::with(lua, |b| b.report(origin, message, EXAMPLE))?;
            return Ok(Value::Nil);
        }
    };
    let given = builder::with(lua, |b| b.params_given.get(&name).cloned())?;
    let value = match &given {
        None => default.clone(),
        Some(text) => match typed_like(lua, &default, text)? {
            Some(value) => value,
            None => {
                let kind = kind_of(&default);
                let message =
                    format!("--set {name}={text}: param {name:?} takes {kind} (its default is {default_text})");
                let help = format!("give --set {name}=<{kind}>");
                builder::with(lua, |b| b.report(origin.clone(), message, help))?;
                default.clone()
            }
        },
    };
    let value_text = given.clone().unwrap_or_else(|| default_text.clone());
    builder::with(lua, |b| {
        if !b.lab.params.iter().any(|p| p.name == name) {
            b.lab.params.push(Param { name, default: default_text, value: value_text, set: given.is_some(), origin });
        }
    })?;
    Ok(value)
}

fn kind_of(default: &Value) -> &'static str {
    match default {
        Value::Integer(_) => "a whole number",
        Value::Number(_) => "a number",
        Value::Boolean(_) => "true or false",
        _ => "a string",
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `text` read as the same Lua type as `default`; None if it is not one.
fn typed_like(lua: &Lua, default: &Value, text: &str) -> mlua::Result<Option<Value>> {
    Ok(match default {
        Value::Integer(_) => text.parse::<i64>().ok().map(Value::Integer),
        Value::Number(_) => text.parse::<f64>().ok().map(Value::Number),
        Value::Boolean(_) => match text {
            "true" => Some(Value::Boolean(true)),
            "false" => Some(Value::Boolean(false)),
            _ => None,
        },
        _ => Some(Value::String(lua.create_string(text)?)),
    })
}
