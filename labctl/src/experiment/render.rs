//! Lua values as snapshot text: deterministic, sorted, YAML-like, so a
//! snapshot diff reads line by line.

use mlua::{Table, Value};

use super::tolerance::Tolerance;
use super::trace::Trace;

pub fn render(value: &Value) -> mlua::Result<String> {
    render_as(value, Style::Snapshot)
}

/// Like [`render`], with each tolerance's measured value beside it: what
/// `labctl run` shows.
pub fn render_measured(value: &Value) -> mlua::Result<String> {
    render_as(value, Style::Measured)
}

#[derive(Clone, Copy, PartialEq)]
enum Style {
    Snapshot,
    Measured,
}

fn render_as(value: &Value, style: Style) -> mlua::Result<String> {
    let mut out = String::new();
    match value {
        Value::Table(t) => render_table(t, 0, style, &mut out)?,
        other => out.push_str(&scalar(other, style)?),
    }
    Ok(out.trim_end().to_string())
}

fn scalar(value: &Value, style: Style) -> mlua::Result<String> {
    Ok(match value {
        Value::Nil => "nil".into(),
        Value::Boolean(b) => b.to_string(),
        Value::Integer(i) => i.to_string(),
        Value::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => format!("{}", *n as i64),
        Value::Number(n) => format!("{n:.6}").trim_end_matches('0').to_string(),
        Value::String(s) => s.to_string_lossy(),
        Value::UserData(ud) => {
            if let Ok(t) = ud.borrow::<Tolerance>() {
                match style {
                    Style::Snapshot => t.to_string(),
                    Style::Measured => t.with_value(),
                }
            } else if let Ok(trace) = ud.borrow::<Trace>() {
                trace.text()
            } else {
                "<userdata>".into()
            }
        }
        // A JSON null (a measurement that had no value, e.g. a ping without replies).
        Value::LightUserData(p) if p.0.is_null() => "null".into(),
        other => format!("<{}>", other.type_name()),
    })
}

/// Is `t` a non-empty sequence 1..n with nothing else?
fn is_sequence(t: &Table) -> bool {
    let n = t.raw_len();
    n > 0 && t.pairs::<Value, Value>().count() == n
}

fn render_table(t: &Table, indent: usize, style: Style, out: &mut String) -> mlua::Result<()> {
    let pad = "  ".repeat(indent);
    if t.raw_len() == 0 && t.pairs::<Value, Value>().next().is_none() {
        out.push_str(&format!("{pad}{{}}\n"));
        return Ok(());
    }
    if is_sequence(t) {
        for item in t.sequence_values::<Value>() {
            let item = item?;
            match &item {
                Value::Table(inner) => {
                    out.push_str(&format!("{pad}-\n"));
                    render_table(inner, indent + 1, style, out)?;
                }
                other => push_lines(out, &format!("{pad}- "), &scalar(other, style)?),
            }
        }
        return Ok(());
    }
    let mut entries: Vec<(String, Value)> = Vec::new();
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair?;
        entries.push((scalar(&k, style)?, v));
    }
    entries.sort_by_cached_key(|(key, _)| natural_key(key));
    for (key, value) in entries {
        match &value {
            Value::Table(inner) => {
                out.push_str(&format!("{pad}{key}:\n"));
                render_table(inner, indent + 1, style, out)?;
            }
            other => push_lines(out, &format!("{pad}{key}: "), &scalar(other, style)?),
        }
    }
    Ok(())
}

/// A multi-line value goes below its key, indented.
fn push_lines(out: &mut String, head: &str, text: &str) {
    if text.contains('\n') {
        out.push_str(head.trim_end());
        out.push_str(" |\n");
        let pad = " ".repeat(head.len() - head.trim_start().len() + 2);
        for line in text.lines() {
            out.push_str(&format!("{pad}{line}\n"));
        }
    } else {
        out.push_str(&format!("{head}{text}\n"));
    }
}

/// Sorts "h2" before "h10": digits compare as numbers.
fn natural_key(s: &str) -> Vec<(bool, u64, String)> {
    let mut parts = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits > 0 {
            parts.push((true, rest[..digits].parse().unwrap_or(u64::MAX), String::new()));
            rest = &rest[digits..];
        } else {
            let text = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
            parts.push((false, 0, rest[..text].to_string()));
            rest = &rest[text..];
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(lua_expr: &str) -> String {
        let lua = mlua::Lua::new();
        render(&lua.load(lua_expr).eval::<Value>().unwrap()).unwrap()
    }

    #[test]
    fn tables_render_sorted_and_nested() {
        assert_eq!(
            show(r#"{ b = 2, a = { y = 1.5, x = "s" }, h10 = 1, h2 = 0 }"#),
            "a:\n  x: s\n  y: 1.5\nb: 2\nh2: 0\nh10: 1"
        );
        assert_eq!(show(r#"{ "one", "two" }"#), "- one\n- two");
        assert_eq!(show(r#"{ text = "a\nb" }"#), "text: |\n  a\n  b");
        assert_eq!(show("3.0"), "3");
        assert_eq!(show("{}"), "{}");
    }

    #[test]
    fn a_null_renders_as_null() {
        let lua = mlua::Lua::new();
        let value = mlua::LuaSerdeExt::to_value(&lua, &serde_json::json!({ "rtt_avg_us": null })).unwrap();
        assert_eq!(render(&value).unwrap(), "rtt_avg_us: null");
    }
}
