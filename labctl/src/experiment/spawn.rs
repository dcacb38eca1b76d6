//! `x.h2:spawn{ "iperf3", "-s" }`: a process in a node for the length of
//! the experiment (a server, a daemon), and the handle it returns:
//!
//! ```lua
//! local s = x.h2:spawn{ "iperf3", "-s", "-1" }   -- or spawn("iperf3 -s -1", { cpu = 1 })
//! s.pid, s:running()
//! s:output()                 -- { stdout = "...", stderr = "..." } so far
//! s:wait{ timeout = "5s" }   -- { status, stdout, stderr, timed_out }
//! s:stop()                   -- SIGTERM, SIGKILL after 2 s: { status, stdout, stderr }
//! ```
//!
//! Whatever is still running when the experiment ends (or fails, or runs
//! out of time) is stopped the same way; `down` stops it after a crash.

use std::sync::Arc;
use std::time::Duration;

use mlua::{Lua, Table, UserData, UserDataFields, UserDataMethods, Value};

use super::background::{Background, Outcome, Placement};
use super::options::Options;
use super::runtime::{fail, NodeRef, Runtime};
use super::traffic::argv;

/// How long `wait` waits unless told.
const WAIT_TIMEOUT: Duration = Duration::from_secs(30);

/// The handle `spawn` returns.
pub(super) struct Spawned {
    process: Arc<Background>,
    runtime: Runtime,
}

pub(super) fn register<M: UserDataMethods<NodeRef>>(methods: &mut M) {
    methods.add_method("spawn", |lua, this, (cmd, opts): (Value, Option<Table>)| {
        let what = format!("x.{}:spawn()", this.name);
        // spawn{ "iperf3", "-s", cpu = 1 }: the list is the command, the keys its options.
        let (argv, opts) = match (&cmd, opts) {
            (Value::Table(t), None) => {
                let positional = t.raw_len() as i64;
                (argv(cmd.clone())?, Options::check_positional(lua, &what, Some(t.clone()), &["cpu"], positional)?)
            }
            (_, opts) => (argv(cmd)?, Options::check(lua, &what, opts, &["cpu"])?),
        };
        let cpu = opts.get::<usize>("cpu")?;
        let netns = this.runtime.netns(&this.name)?;
        let cgroup = this.runtime.cgroup_procs(&this.name)?;
        let lab = this.runtime.with_lab(|lab| lab.name.clone());
        let placement = Placement { netns: &netns, cpu, cgroup_procs: cgroup.as_ref() };
        let process = Background::start(&lab, &argv, &placement).map_err(|e| fail(format!("{what}: {e}")))?;
        let process = Arc::new(process);
        this.runtime.adopt(process.clone());
        Ok(Spawned { process, runtime: this.runtime.clone() })
    });
}

fn outcome_table(lua: &Lua, outcome: Outcome) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("stdout", outcome.stdout)?;
    t.set("stderr", outcome.stderr)?;
    if let Some(status) = outcome.status {
        t.set("status", status)?;
    }
    Ok(t)
}

impl UserData for Spawned {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("pid", |_, this| Ok(this.process.pid));
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("running", |_, this, ()| Ok(this.process.running()));
        methods.add_method("output", |lua, this, ()| outcome_table(lua, this.process.outcome()));
        methods.add_method("stop", |lua, this, ()| outcome_table(lua, this.process.stop()));
        methods.add_method("wait", |lua, this, opts: Option<Table>| {
            let opts = Options::check(lua, "s:wait()", opts, &["timeout"])?;
            let timeout = opts.duration("timeout")?.unwrap_or(WAIT_TIMEOUT);
            let limit = this.runtime.limit();
            let outcome = this.process.wait(timeout.min(limit.left()), || limit.check().is_err());
            if outcome.status.is_none() {
                // Cut short by Ctrl-C or the experiment's time limit rather than its own timeout.
                limit.check()?;
            }
            let timed_out = outcome.status.is_none();
            let t = outcome_table(lua, outcome)?;
            t.set("timed_out", timed_out)?;
            Ok(t)
        });
    }
}
