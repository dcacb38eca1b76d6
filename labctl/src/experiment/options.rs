//! The option tables of `x:` and node methods, as strict as the lab
//! vocabulary: an unknown key is an error at the calling line with a help
//! line listing the valid ones (the lab stage's check, `script::args`), and
//! durations have one syntax (`script::args::duration`).
//!
//! These errors are bad input, like a mistake in the lab (exit 2), not a
//! failed experiment (exit 1): they are raised as [`BadArgument`], which
//! [`is_bad_argument`] finds again under Lua's wrapping (also after a
//! `pcall` that raises the same error again).

use std::time::Duration;

use mlua::{FromLua, Lua, Table, Value};

use crate::script::args::{self, unknown_keys, valid_keys_help};
use crate::script::error_at;

/// A mistake in the arguments of an `x:` method, as `error_at` words it
/// (`file:line: message` and the help line).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadArgument(String);

/// `message` at the calling line with `help`, as bad input.
pub fn bad_argument(lua: &Lua, message: String, help: &str) -> mlua::Error {
    let text = match error_at(lua, message, help) {
        mlua::Error::RuntimeError(text) => text,
        other => other.to_string(),
    };
    mlua::Error::external(BadArgument(text))
}

/// Did the experiment stop on a [`BadArgument`]?
pub fn is_bad_argument(error: &mlua::Error) -> bool {
    error.downcast_ref::<BadArgument>().is_some()
}

/// A method's checked option table (`None`: the caller gave none).
pub struct Options<'lua> {
    lua: &'lua Lua,
    what: String,
    table: Option<Table>,
}

impl<'lua> Options<'lua> {
    /// Checks `value` (nil or a table) against the keys `valid`, for the method `what` (`"x.h1:ping()"`).
    pub fn check(lua: &'lua Lua, what: &str, value: Option<Table>, valid: &[&str]) -> mlua::Result<Options<'lua>> {
        Self::check_positional(lua, what, value, valid, 0)
    }

    /// Like [`Options::check`] for a table whose array items `1..=positional` are arguments.
    pub fn check_positional(
        lua: &'lua Lua,
        what: &str,
        value: Option<Table>,
        valid: &[&str],
        positional: i64,
    ) -> mlua::Result<Options<'lua>> {
        if let Some(table) = &value {
            let unknown = unknown_keys(table, valid, positional);
            if !unknown.is_empty() {
                let noun = if unknown.len() == 1 { "option" } else { "options" };
                let message = format!("{what}: unknown {noun} {}", unknown.join(", "));
                return Err(bad_argument(lua, message, &valid_keys_help(valid)));
            }
        }
        Ok(Options { lua, what: what.to_string(), table: value })
    }

    /// The value of `key`, if given, converted to `T`.
    pub fn get<T: FromLua>(&self, key: &str) -> mlua::Result<Option<T>> {
        let Some(table) = &self.table else { return Ok(None) };
        table.get::<Option<T>>(key).map_err(|_| {
            let given = table.get::<Value>(key).map(|v| args::show(&v)).unwrap_or_default();
            self.bad(key, &format!("expected {}, got {given}", kind::<T>()), &format!("give {key} {}", kind::<T>()))
        })
    }

    /// A duration option: `3`, `0.25`, `"250ms"`, `"3s"`.
    pub fn duration(&self, key: &str) -> mlua::Result<Option<Duration>> {
        match self.get::<Value>(key)? {
            None | Some(Value::Nil) => Ok(None),
            Some(value) => args::duration(&value).map(Some).map_err(|m| self.bad(key, &m, args::DURATION_HELP)),
        }
    }

    /// An error about the value of `key`, at the calling line.
    pub fn bad(&self, key: &str, message: &str, help: &str) -> mlua::Error {
        bad_argument(self.lua, format!("{}: {key}: {message}", self.what), help)
    }
}

/// What an option of Rust type `T` takes, in a user's words.
fn kind<T>() -> &'static str {
    let name = std::any::type_name::<T>();
    if name.ends_with("String") {
        "text"
    } else if name == "bool" {
        "true or false"
    } else if name.starts_with('u') || name.starts_with('i') {
        "a whole number"
    } else {
        "a value of the right type"
    }
}

/// `"h1:eth0"` or `{ "h1:eth0", "r1" }`: the counter sources or capture
/// points of a method.
pub fn names(lua: &Lua, what: &str, value: Value) -> mlua::Result<Vec<String>> {
    const HELP: &str = r#"write "h1:eth0" or { "h1:eth0", "r1" }"#;
    match value {
        Value::String(s) => Ok(vec![s.to_string_lossy()]),
        Value::Table(t) => {
            if let Some(key) = unknown_keys(&t, &[], i64::MAX).into_iter().next() {
                return Err(bad_argument(lua, format!("{what}: {key} in a list of names"), HELP));
            }
            t.sequence_values::<String>().collect()
        }
        other => Err(bad_argument(
            lua,
            format!("{what}: expected a name or a list of names, got {}", other.type_name()),
            HELP,
        )),
    }
}
