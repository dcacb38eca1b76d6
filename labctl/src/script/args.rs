//! Reading the arguments of vocabulary calls. Every problem is a message for
//! a [`Diagnostic`](crate::diag::Diagnostic), never a Lua error, so one bad
//! argument does not hide the next. The option-key check, the help line and
//! the duration syntax are shared with the experiment API (`pub`).

use std::time::Duration;

use ipnet::IpNet;
use mlua::{Table, Value};

/// A value as it should appear in a message: strings quoted, others by type.
pub fn show(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{:?}", s.to_string_lossy()),
        Value::Integer(i) => i.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Boolean(b) => b.to_string(),
        other => other.type_name().to_string(),
    }
}

pub(super) fn string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.to_string_lossy()),
        _ => None,
    }
}

/// Lua integers, and floats without a fraction (`9e3`).
pub(super) fn whole_number(value: &Value) -> Option<i64> {
    match *value {
        Value::Integer(i) => Some(i),
        Value::Number(n) if n.fract() == 0.0 && n.abs() < 2f64.powi(53) => Some(n as i64),
        _ => None,
    }
}

/// An optional options table: `nil` or a table.
pub(super) fn options(value: Value) -> Result<Option<Table>, String> {
    match value {
        Value::Nil => Ok(None),
        Value::Table(t) => Ok(Some(t)),
        other => Err(format!("the options must be a table like {{ key = value }}, got {}", show(&other))),
    }
}

/// The named keys of an options table that are not in `valid`. Array items
/// `1..=positional` are allowed (they carry addresses in `link`).
pub fn unknown_keys(table: &Table, valid: &[&str], positional: i64) -> Vec<String> {
    let mut unknown: Vec<String> = table
        .pairs::<Value, Value>()
        .filter_map(Result::ok)
        .filter_map(|(key, _)| match &key {
            Value::Integer(i) if (1..=positional).contains(i) => None,
            Value::String(s) if valid.contains(&s.to_string_lossy().as_str()) => None,
            other => Some(show(other)),
        })
        .collect();
    unknown.sort();
    unknown
}

/// The help line listing an option table's valid keys.
pub fn valid_keys_help(valid: &[&str]) -> String {
    if valid.is_empty() {
        "it takes no options".to_string()
    } else {
        format!("valid options: {}", valid.join(", "))
    }
}

/// The help line of a bad duration.
pub const DURATION_HELP: &str = r#"write a number of seconds (3, 0.25) or text like "250ms", "3s" or "10m""#;

/// A duration, written one way everywhere: a number of seconds (`3`,
/// `0.25`) or text with a unit (`"250ms"`, `"3s"`, `"10m"`).
pub fn duration(value: &Value) -> Result<Duration, String> {
    let seconds = match *value {
        Value::Integer(i) => i as f64,
        Value::Number(n) => n,
        Value::String(ref s) => {
            let text = s.to_string_lossy();
            return humantime::parse_duration(&text).map_err(|e| format!("{text:?} is not a duration ({e})"));
        }
        ref other => return Err(format!("expected a duration, got {}", show(other))),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("{seconds} is not a duration"));
    }
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{seconds}: {e}"))
}

/// A CIDR such as `198.18.1.1/24` or `2001:db8::1/64`.
pub(super) fn cidr(text: &str) -> Result<IpNet, String> {
    text.parse().map_err(|_| {
        let hint = if text.parse::<std::net::IpAddr>().is_ok() { ", add a prefix length" } else { "" };
        format!("{text:?} is not a valid address (expected CIDR like 198.18.1.1/24 or 2001:db8::1/64{hint})")
    })
}
