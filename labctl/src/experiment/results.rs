//! The results of an experiment: `x:snapshot`, `x:expect`, `x:expect_eq`,
//! and the tolerances `x.range` and `x.positive` that `x:expect` takes.

use mlua::{MultiValue, UserDataMethods, Value};

use super::render::render;
use super::runtime::{caller, Runtime};
use super::tolerance::Tolerance;
use super::{Expectation, Taken};

pub(super) fn register<M: UserDataMethods<Runtime>>(methods: &mut M) {
    methods.add_method("snapshot", |lua, this, (name, value): (String, Value)| {
        let contents = render(&value)?;
        let measured = Some(super::render::render_measured(&value)?).filter(|m| *m != contents);
        this.take(Taken { name, origin: caller(lua), contents, measured })
    });
    methods.add_method("expect", |lua, this, (ok, message): (Value, Option<String>)| {
        let holds = match &ok {
            Value::Nil | Value::Boolean(false) => false,
            Value::UserData(ud) => ud.borrow::<Tolerance>().map_or(true, |t| t.holds()),
            _ => true,
        };
        if !holds {
            let message = message.unwrap_or_else(|| "expectation failed".into());
            this.record_failure(Expectation { origin: caller(lua), message });
        }
        Ok(holds)
    });
    methods.add_method("expect_eq", |lua, this, (actual, expected, what): (Value, Value, Option<String>)| {
        let (a, e) = (render(&actual)?, render(&expected)?);
        if a != e {
            let what = what.unwrap_or_else(|| "value".into());
            let message = format!("{what}: expected {e}, got {a}");
            this.record_failure(Expectation { origin: caller(lua), message });
        }
        Ok(a == e)
    });
    // `x.range(v, lo, hi)` as documented; `x:range(v, lo, hi)` works too.
    methods.add_function("range", |lua, args: MultiValue| {
        let (value, lo, hi): (f64, f64, f64) = lua.unpack_multi(tolerance_args(args))?;
        Ok(Tolerance::Range { value, lo, hi })
    });
    methods.add_function("positive", |lua, args: MultiValue| {
        let value: f64 = lua.unpack_multi(tolerance_args(args))?;
        Ok(Tolerance::Positive { value })
    });
}

/// The arguments of `x.range(...)`/`x.positive(...)` without `x` itself,
/// which a method call (`x:range(...)`) passes first.
fn tolerance_args(mut args: MultiValue) -> MultiValue {
    if matches!(args.front(), Some(Value::UserData(ud)) if ud.is::<Runtime>()) {
        args.pop_front();
    }
    args
}
