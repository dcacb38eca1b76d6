//! What packets did while a function ran: `x:capture` (the packets seen at
//! capture points, as trace lines), `x:drops` (what the kernel dropped, by
//! place and reason) and `x:path` (what each interface received and sent).

use std::collections::BTreeMap;
use std::fs::File;
use std::time::Duration;

use mlua::{Function, LuaSerdeExt, Table, UserDataMethods, Value};

use super::observe::{self as look, Captures};
use super::options::{names, Options};
use super::runtime::{fail, lua_error, Runtime};
use super::trace::Trace;
use crate::bpf::drops::{self, KernelPath, PathColumns};
use crate::bpf::{BpfError, DropTracer};

/// How long the last packets of a step get to reach an observer.
const SETTLE: Duration = Duration::from_millis(50);

/// Runs `step` while an observer the caller started watches, lets the
/// step's last packets land, then `stop`s the observer. The observer is
/// stopped whatever the step did; the step's error wins.
pub(super) fn observed<T>(step: &Function, stop: impl FnOnce() -> T) -> mlua::Result<T> {
    let _turn = crate::sys::machine_turn::shared();
    let result = step.call::<()>(());
    std::thread::sleep(SETTLE);
    let stopped = stop();
    result.map(|()| stopped)
}

/// Runs `step` with the kernel path tracer (bpf/drops.rs) on the lab's
/// namespaces; what it counted, and the namespaces to name it by.
/// With `time_rx`, the tracer also times each interface's receive path.
fn trace_kernel(
    this: &Runtime,
    what: &str,
    step: &Function,
    time_rx: bool,
) -> mlua::Result<(KernelPath, BTreeMap<String, File>)> {
    let bpf = |e: BpfError| fail(format!("{what}: {e}"));
    let netns = this.all_netns()?;
    let inodes = drops::inodes(&netns).map_err(bpf)?;
    let tracer = if time_rx { DropTracer::start_timing_rx(&inodes) } else { DropTracer::start_in(&inodes) };
    let tracer = tracer.map_err(bpf)?;
    let traced = observed(step, || tracer.stop_with_path())?.map_err(bpf)?;
    if traced.lost > 0 {
        return Err(fail(format!("{what}: {} events were not counted (a full map)", traced.lost)));
    }
    Ok((traced, netns))
}

pub(super) fn register<M: UserDataMethods<Runtime>>(methods: &mut M) {
    // x:capture({"r1:eth0", "r1:eth1"}, function() ... end): the packets seen, as trace lines.
    methods.add_method("capture", |lua, this, (points, step): (Value, Function)| {
        let points = names(lua, "x:capture()", points)?;
        let captures = Captures::start(&points, &this.all_netns()?).map_err(lua_error)?;
        let dir = this.artifacts();
        let packets = observed(&step, || captures.stop(dir.as_deref()))?.map_err(lua_error)?;
        Ok(Trace { lines: this.with_lab(|lab| look::trace_lines(&packets, lab, points.len())) })
    });
    // x:drops(function() ... end, { locations = true }): the packets the kernel dropped in
    // the lab's nodes while fn ran, by place and reason: { ["r1:eth0"] = { IP_INNOROUTES = 1 } }.
    methods.add_method("drops", |lua, this, (step, opts): (Function, Option<Table>)| {
        let opts = Options::check(lua, "x:drops()", opts, &["locations"])?;
        let locations = opts.get::<bool>("locations")?.unwrap_or(false);
        let (traced, netns) = trace_kernel(this, "x:drops()", &step, false)?;
        let table = drops::by_node(&traced.drops, &netns, locations);
        lua.to_value(&table.map_err(|e| fail(format!("x:drops(): {e}")))?)
    });
    // x:path(function() ... end, { per_cpu = true, rx_time = true }): the packets each
    // interface of the lab received and transmitted while fn ran, by the kernel's
    // tracepoints: { ["r1:eth0"] = { rx = 3, tx = 3 } }; per_cpu adds ["rx.cpu0"] = 2,
    // ["rx.cpu1"] = 1, ...; rx_time adds rx_ns, the nanoseconds the receive path spent.
    methods.add_method("path", |lua, this, (step, opts): (Function, Option<Table>)| {
        let opts = Options::check(lua, "x:path()", opts, &["per_cpu", "rx_time"])?;
        let columns = PathColumns {
            per_cpu: opts.get::<bool>("per_cpu")?.unwrap_or(false),
            rx_ns: opts.get::<bool>("rx_time")?.unwrap_or(false),
        };
        let (traced, netns) = trace_kernel(this, "x:path()", &step, columns.rx_ns)?;
        let table = drops::path_by_interface(&traced.path, &netns, columns);
        lua.to_value(&table.map_err(|e| fail(format!("x:path(): {e}")))?)
    });
}
