//! Values that are not exact (a throughput, a latency) made snapshot-stable:
//! `x.range(v, lo, hi)` renders as `in [lo, hi]` while v is inside, and as the
//! value itself otherwise, so the snapshot diff shows what went wrong.

use std::fmt;

use mlua::UserData;

#[derive(Debug, Clone, PartialEq)]
pub enum Tolerance {
    Range { value: f64, lo: f64, hi: f64 },
    Positive { value: f64 },
}

impl Tolerance {
    pub fn holds(&self) -> bool {
        match *self {
            Tolerance::Range { value, lo, hi } => value >= lo && value <= hi,
            Tolerance::Positive { value } => value > 0.0,
        }
    }
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

impl Tolerance {
    /// `in [0.95, 1] (measured 0.98)`: the snapshot's text and the value.
    pub fn with_value(&self) -> String {
        let value = match *self {
            Tolerance::Range { value, .. } | Tolerance::Positive { value } => value,
        };
        if self.holds() {
            let shown =
                if value.fract() == 0.0 { num(value) } else { format!("{value:.6}").trim_end_matches('0').to_string() };
            format!("{self} (measured {shown})")
        } else {
            self.to_string()
        }
    }
}

impl fmt::Display for Tolerance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self, self.holds()) {
            (Tolerance::Range { lo, hi, .. }, true) => write!(f, "in [{}, {}]", num(*lo), num(*hi)),
            (Tolerance::Range { value, lo, hi }, false) => {
                write!(f, "{} (outside [{}, {}])", num(*value), num(*lo), num(*hi))
            }
            (Tolerance::Positive { .. }, true) => write!(f, "> 0"),
            (Tolerance::Positive { value }, false) => write!(f, "{} (not > 0)", num(*value)),
        }
    }
}

impl UserData for Tolerance {
    fn add_methods<M: mlua::UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method(mlua::MetaMethod::ToString, |_, this, ()| Ok(this.to_string()));
        methods.add_method("holds", |_, this, ()| Ok(this.holds()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_stably_inside_and_plainly_outside() {
        assert_eq!(Tolerance::Range { value: 5.5, lo: 1.0, hi: 10.0 }.to_string(), "in [1, 10]");
        assert_eq!(Tolerance::Range { value: 12.0, lo: 1.0, hi: 10.0 }.to_string(), "12 (outside [1, 10])");
        assert_eq!(Tolerance::Positive { value: 0.0 }.to_string(), "0 (not > 0)");
        assert_eq!(Tolerance::Range { value: 0.98, lo: 0.95, hi: 1.0 }.with_value(), "in [0.95, 1] (measured 0.98)");
    }
}
