//! `x`, the object an experiment function receives: the lab's nodes
//! (`x.h1`), observation (`x:counters`, `x:delta`, `x:capture`), and the
//! results (`x:snapshot`, `x:expect`). Every result records the script line
//! that produced it, so failures point at the lab file.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mlua::{Lua, MetaMethod, UserData, UserDataMethods, Value};

use super::command;
use super::render::render;
use super::tolerance::Tolerance;
use super::{Expectation, Taken};
use crate::diag::Origin;
use crate::model::Lab;

/// What the runtime shares between `x` and its node handles.
pub struct Shared {
    pub lab: Lab,
    pub netns: BTreeMap<String, File>,
    /// Where captures and other artefacts of this experiment go, if anywhere.
    pub artifacts: Option<PathBuf>,
    pub taken: Vec<Taken>,
    pub failed: Vec<Expectation>,
}

#[derive(Clone)]
pub struct Runtime(pub Arc<Mutex<Shared>>);

/// `x.h1`: a node of the running lab.
#[derive(Clone)]
pub struct NodeRef {
    runtime: Runtime,
    name: String,
}

/// The innermost line of a user's script on the Lua stack.
pub fn caller(lua: &Lua) -> Origin {
    crate::script::caller_origin(lua).unwrap_or_else(|| Origin::new("?", 0))
}

impl Runtime {
    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.0.lock().expect("runtime lock")
    }

    fn netns(&self, node: &str) -> mlua::Result<File> {
        let shared = self.lock();
        let file = shared.netns.get(node).ok_or_else(|| {
            let nodes: Vec<&String> = shared.netns.keys().collect();
            mlua::Error::runtime(format!("the lab has no node {node:?} (its nodes: {nodes:?})"))
        })?;
        file.try_clone().map_err(mlua::Error::external)
    }
}

impl UserData for Runtime {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method(MetaMethod::Index, |lua, this, key: String| {
            if this.lock().netns.contains_key(&key) {
                return lua.create_userdata(NodeRef { runtime: this.clone(), name: key });
            }
            Err(mlua::Error::runtime(format!("x.{key}: the lab has no node {key:?}")))
        });
        methods.add_method("snapshot", |lua, this, (name, value): (String, Value)| {
            let contents = render(&value)?;
            let origin = caller(lua);
            let mut shared = this.lock();
            if shared.taken.iter().any(|t| t.name == name) {
                return Err(mlua::Error::runtime(format!("x:snapshot({name:?}) is taken twice in this experiment")));
            }
            shared.taken.push(Taken { name, origin, contents });
            Ok(())
        });
        methods.add_method("expect", |lua, this, (ok, message): (Value, Option<String>)| {
            let holds = match &ok {
                Value::Nil | Value::Boolean(false) => false,
                Value::UserData(ud) => ud.borrow::<Tolerance>().map_or(true, |t| t.holds()),
                _ => true,
            };
            if !holds {
                let message = message.unwrap_or_else(|| "expectation failed".into());
                this.lock().failed.push(Expectation { origin: caller(lua), message });
            }
            Ok(holds)
        });
        methods.add_method("expect_eq", |lua, this, (actual, expected, what): (Value, Value, Option<String>)| {
            let (a, e) = (render(&actual)?, render(&expected)?);
            if a != e {
                let what = what.unwrap_or_else(|| "value".into());
                this.lock()
                    .failed
                    .push(Expectation { origin: caller(lua), message: format!("{what}: expected {e}, got {a}") });
            }
            Ok(a == e)
        });
        methods.add_method("sleep", |_, _, seconds: f64| {
            std::thread::sleep(Duration::from_secs_f64(seconds.clamp(0.0, 60.0)));
            Ok(())
        });
        methods.add_function("range", |_, (_, value, lo, hi): (Value, f64, f64, f64)| {
            Ok(Tolerance::Range { value, lo, hi })
        });
        methods.add_function("positive", |_, (_, value): (Value, f64)| Ok(Tolerance::Positive { value }));
    }
}

impl UserData for NodeRef {
    fn add_fields<F: mlua::UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("name", |_, this| Ok(this.name.clone()));
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // x.h1:run{"ip", "route"} or x.h1:run("ip route") (split on spaces), with { timeout = seconds }.
        methods.add_method("run", |lua, this, (cmd, opts): (Value, Option<mlua::Table>)| {
            let argv: Vec<String> = match cmd {
                Value::String(s) => s.to_string_lossy().split_whitespace().map(String::from).collect(),
                Value::Table(t) => t.sequence_values::<String>().collect::<mlua::Result<_>>()?,
                other => {
                    return Err(mlua::Error::runtime(format!(
                        "run(): expected a string or a list, got {}",
                        other.type_name()
                    )))
                }
            };
            if argv.is_empty() {
                return Err(mlua::Error::runtime("run(): empty command"));
            }
            let timeout = opts.as_ref().and_then(|o| o.get::<Option<f64>>("timeout").ok().flatten()).unwrap_or(30.0);
            let netns = this.runtime.netns(&this.name)?;
            let result = command::run(&netns, &argv, Duration::from_secs_f64(timeout)).map_err(|e| {
                mlua::Error::runtime(format!("run(): cannot start {:?} in {}: {e}", argv[0], this.name))
            })?;
            let t = lua.create_table()?;
            t.set("status", result.status)?;
            t.set("stdout", result.stdout)?;
            t.set("stderr", result.stderr)?;
            t.set("timed_out", result.timed_out)?;
            Ok(t)
        });
    }
}
