//! `node("h1", { cpu = "50%" })`: how much CPU a node's commands may use,
//! in percent of one CPU (Mininet's `CPULimitedHost`). "150%" is one and a
//! half CPUs; more than the machine has is refused.

use mlua::Value;

use super::args::show;

pub const HELP: &str =
    r#"write node("h1", { cpu = "50%" }): a percentage of one CPU, from 1% to 100% times the number of CPUs"#;

/// The machine's CPUs, the upper end of the range.
fn cpus() -> u32 {
    std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1)
}

/// The percentage `value` gives (`"50%"`), None when not given.
pub fn percent(value: &Value) -> Result<Option<u32>, String> {
    let text = match value {
        Value::Nil => return Ok(None),
        Value::String(s) => s.to_string_lossy(),
        other => return Err(format!("expected a percentage like \"50%\", got {}", show(other))),
    };
    let number = text
        .trim()
        .strip_suffix('%')
        .and_then(|n| n.trim().parse::<u32>().ok())
        .ok_or_else(|| format!("{text:?} is not a percentage like \"50%\""))?;
    in_range(number, cpus()).map(Some)
}

fn in_range(percent: u32, cpus: u32) -> Result<u32, String> {
    let max = 100 * cpus;
    if percent == 0 {
        return Err("0% would never let the node run".into());
    }
    if percent <= max {
        Ok(percent)
    } else {
        Err(format!("{percent}% is out of range: this machine has {cpus} CPUs, so 1% to {max}%"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_follows_the_machine() {
        assert_eq!(in_range(50, 2), Ok(50));
        assert_eq!(in_range(200, 2), Ok(200));
        assert!(in_range(0, 2).is_err());
        assert!(in_range(201, 2).is_err());
    }

    #[test]
    fn percentages_parse() {
        let lua = mlua::Lua::new();
        let s = |t: &str| Value::String(lua.create_string(t).unwrap());
        assert_eq!(percent(&Value::Nil), Ok(None));
        assert_eq!(percent(&s("50%")), Ok(Some(50)));
        assert_eq!(percent(&s(" 25 %")), Ok(Some(25)));
        assert!(percent(&s("50")).is_err(), "the % sign is part of it");
        assert!(percent(&s("half")).is_err());
        assert!(percent(&Value::Integer(50)).is_err());
    }
}
