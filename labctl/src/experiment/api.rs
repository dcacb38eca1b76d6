//! What Lua sees: `x` and `x.h1` as userdata, their methods registered
//! domain by domain (see runtime.rs for the table of files). The only file
//! that knows every domain; the domains know only the runtime.

use std::time::Duration;

use mlua::{MetaMethod, UserData, UserDataMethods, Value};

use super::options::bad_argument;
use super::runtime::{fail, NodeRef, Runtime};
use super::{chart, counters, host_sysctl, impair, ipsec, results, send, spawn, traces, traffic, xdp};

/// `x:sleep` is for letting the kernel settle, not for waiting out a test.
const MAX_SLEEP: Duration = Duration::from_secs(60);

impl UserData for Runtime {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method(MetaMethod::Index, |lua, this, key: String| {
            if this.has_node(&key) {
                return lua.create_userdata(NodeRef { runtime: this.clone(), name: key });
            }
            Err(fail(format!("x.{key}: the lab has no node {key:?}")))
        });
        // x:sleep(0.5) or x:sleep("500ms"); wakes early on Ctrl-C and at the time limit.
        methods.add_method("sleep", |lua, this, value: Value| {
            let duration = crate::script::args::duration(&value)
                .map_err(|m| bad_argument(lua, format!("x:sleep(): {m}"), crate::script::args::DURATION_HELP))?;
            this.limit().sleep(duration.min(MAX_SLEEP))
        });
        results::register(methods);
        counters::register(methods);
        traces::register(methods);
        host_sysctl::register(methods);
        ipsec::register(methods);
        xdp::register(methods);
        chart::register(methods);
        impair::register(methods);
    }
}

impl UserData for NodeRef {
    fn add_fields<F: mlua::UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("name", |_, this| Ok(this.name.clone()));
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        traffic::register(methods);
        spawn::register(methods);
        send::register(methods);
    }
}
