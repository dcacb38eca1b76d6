//! `x`, the object an experiment function receives: the lab's nodes
//! (`x.h1`), observation (`x:counters`, `x:delta`, `x:capture`), and the
//! results (`x:snapshot`, `x:expect`). Every result records the script line
//! that produced it, so failures point at the lab file.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::net::{IpAddr, SocketAddr};

use mlua::{Function, Lua, LuaSerdeExt, MetaMethod, MultiValue, Table, UserData, UserDataMethods, Value};

use super::command;
use super::observe::{self as look, Captures, Counters};
use super::render::render;
use super::tolerance::Tolerance;
use super::trace::Trace;
use super::{Expectation, Taken};
use crate::diag::Origin;
use crate::model::Lab;
use crate::traffic::{self, BlastMode, BlastOptions, PingOptions, TcpFlow, UdpFlow};

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

fn fail(message: impl Into<String>) -> mlua::Error {
    mlua::Error::runtime(message.into())
}

/// `"h1:eth0"` or `{ "h1:eth0", "r1" }`.
fn names(value: Value) -> mlua::Result<Vec<String>> {
    match value {
        Value::String(s) => Ok(vec![s.to_string_lossy()]),
        Value::Table(t) => t.sequence_values::<String>().collect(),
        other => Err(fail(format!("expected a name or a list of names, got {}", other.type_name()))),
    }
}

/// A duration option: seconds as a number, or text like "3s" or "250ms".
fn duration(opts: &Table, key: &str) -> mlua::Result<Option<Duration>> {
    match opts.get::<Value>(key)? {
        Value::Nil => Ok(None),
        Value::Integer(i) => Ok(Some(Duration::from_secs(i.max(0) as u64))),
        Value::Number(n) => Ok(Some(Duration::from_secs_f64(n.max(0.0)))),
        Value::String(s) => {
            let text = s.to_string_lossy();
            humantime::parse_duration(&text)
                .map(Some)
                .map_err(|e| fail(format!("{key} = {text:?}: {e} (write 3, \"3s\" or \"250ms\")")))
        }
        other => Err(fail(format!("{key}: expected seconds or text like \"3s\", got {}", other.type_name()))),
    }
}

/// The arguments of `x.range(...)`/`x.positive(...)` without `x` itself,
/// which a method call (`x:range(...)`) passes first.
fn tolerance_args(mut args: MultiValue) -> MultiValue {
    if matches!(args.front(), Some(Value::UserData(ud)) if ud.is::<Runtime>()) {
        args.pop_front();
    }
    args
}

fn counters_to_lua(lua: &Lua, counters: &Counters) -> mlua::Result<Value> {
    lua.to_value(counters)
}

impl Runtime {
    /// Copies of every node's namespace handle, so no lock is held while
    /// Lua code (which may call back into `x`) runs.
    fn all_netns(&self) -> mlua::Result<BTreeMap<String, File>> {
        let shared = self.lock();
        shared.netns.iter().map(|(k, f)| Ok((k.clone(), f.try_clone().map_err(mlua::Error::external)?))).collect()
    }

    /// The node that owns `address` in the lab model.
    fn owner_of(&self, address: IpAddr) -> mlua::Result<String> {
        let shared = self.lock();
        shared
            .lab
            .links
            .iter()
            .flat_map(|l| l.ends.iter())
            .find(|e| e.addresses.iter().any(|a| a.addr() == address))
            .map(|e| e.node.clone())
            .ok_or_else(|| fail(format!("{address} is not an address of any node of the lab")))
    }

    /// Runs `step` with the kernel path tracer (bpf/drops.rs) on the lab's
    /// namespaces; what it counted, and the namespaces to name it by.
    fn trace_kernel(
        &self,
        what: &str,
        step: Function,
    ) -> mlua::Result<(crate::bpf::drops::KernelPath, BTreeMap<String, File>)> {
        use crate::bpf::{drops, DropTracer};
        let bpf = |e: crate::bpf::BpfError| fail(format!("{what}: {e}"));
        let netns = self.all_netns()?;
        let tracer = DropTracer::start_in(&drops::inodes(&netns).map_err(bpf)?).map_err(bpf)?;
        let result = step.call::<()>(());
        // Let the step's last packets meet their fate.
        std::thread::sleep(Duration::from_millis(50));
        let traced = tracer.stop_with_path();
        result?;
        let traced = traced.map_err(bpf)?;
        if traced.lost > 0 {
            return Err(fail(format!("{what}: {} events were not counted (a full map)", traced.lost)));
        }
        Ok((traced, netns))
    }

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
            let measured = Some(super::render::render_measured(&value)?).filter(|m| *m != contents);
            let origin = caller(lua);
            let mut shared = this.lock();
            if shared.taken.iter().any(|t| t.name == name) {
                return Err(mlua::Error::runtime(format!("x:snapshot({name:?}) is taken twice in this experiment")));
            }
            shared.taken.push(Taken { name, origin, contents, measured });
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
        // Wakes up early on Ctrl-C, so an interrupted experiment stops at once.
        methods.add_method("sleep", |_, _, seconds: f64| {
            let until = std::time::Instant::now() + Duration::from_secs_f64(seconds.clamp(0.0, 60.0));
            loop {
                if crate::apply::interrupted() {
                    return Err(fail("interrupted"));
                }
                let left = until.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    return Ok(());
                }
                std::thread::sleep(left.min(Duration::from_millis(20)));
            }
        });
        // x:counters{"h1:eth0", "r1", "softnet"}: absolute values now.
        methods.add_method("counters", |lua, this, specs: Value| {
            let counters = look::read(&names(specs)?, &this.all_netns()?).map_err(fail)?;
            counters_to_lua(lua, &counters)
        });
        // x:neighbours("r1") and x:routes("r1"): the node's tables, sorted, as lists.
        methods.add_method("neighbours", |lua, this, node: String| {
            let netns = this.netns(&node)?;
            let table =
                crate::observe::counters::neighbours(&netns).map_err(|e| fail(format!("neighbours of {node}: {e}")))?;
            lua.to_value(&table)
        });
        methods.add_method("routes", |lua, this, node: String| {
            let netns = this.netns(&node)?;
            let table = crate::observe::counters::routes(&netns).map_err(|e| fail(format!("routes of {node}: {e}")))?;
            lua.to_value(&table)
        });
        // x:delta({"h1:eth0", "r1"}, function() ... end): what moved while fn ran.
        methods.add_method("delta", |lua, this, (specs, step): (Value, Function)| {
            let specs = names(specs)?;
            let netns = this.all_netns()?;
            let before = look::read(&specs, &netns).map_err(fail)?;
            step.call::<()>(())?;
            let after = look::read(&specs, &netns).map_err(fail)?;
            counters_to_lua(lua, &look::delta(&before, &after))
        });
        // x:capture({"r1:eth0", "r1:eth1"}, function() ... end): the packets seen, as trace lines.
        methods.add_method("capture", |_, this, (points, step): (Value, Function)| {
            let points = names(points)?;
            let netns = this.all_netns()?;
            let captures = Captures::start(&points, &netns).map_err(fail)?;
            let result = step.call::<()>(());
            // Let the last packets of the step reach the capture sockets.
            std::thread::sleep(Duration::from_millis(50));
            let dir = this.lock().artifacts.clone();
            let packets = captures.stop(dir.as_deref()).map_err(fail)?;
            result?;
            let lab = this.lock().lab.clone();
            Ok(Trace { lines: look::trace_lines(&packets, &lab, points.len()) })
        });
        // x:drops(function() ... end, { locations = true }): the packets the kernel dropped in
        // the lab's nodes while fn ran, by place and reason: { ["r1:eth0"] = { IP_INNOROUTES = 1 } }.
        methods.add_method("drops", |lua, this, (step, opts): (Function, Option<Table>)| {
            let locations = opts.map(|o| o.get::<Option<bool>>("locations")).transpose()?.flatten().unwrap_or(false);
            let (traced, netns) = this.trace_kernel("x:drops()", step)?;
            let table = crate::bpf::drops::by_node(&traced.drops, &netns, locations);
            lua.to_value(&table.map_err(|e| fail(format!("x:drops(): {e}")))?)
        });
        // x:path(function() ... end): the packets each interface of the lab received and
        // transmitted while fn ran, by the kernel's tracepoints: { ["r1:eth0"] = { rx = 3, tx = 3 } }.
        methods.add_method("path", |lua, this, step: Function| {
            let (traced, netns) = this.trace_kernel("x:path()", step)?;
            let table = crate::bpf::drops::path_by_interface(&traced.path, &netns);
            lua.to_value(&table.map_err(|e| fail(format!("x:path(): {e}")))?)
        });
        // x:host_sysctl("net.core.netdev_max_backlog"): a machine-wide value now.
        // x:host_sysctl({ ["net.core.netdev_max_backlog"] = 32 }, function() ... end): changed
        // for the whole machine while fn runs, then put back (apply/host_sysctl.rs).
        methods.add_method("host_sysctl", |lua, this, (what, body): (Value, Option<Function>)| {
            use crate::apply::host_sysctl;
            let err = |e: host_sysctl::HostSysctlError| fail(format!("x:host_sysctl(): {e}"));
            match (what, body) {
                (Value::String(key), None) => {
                    let value = host_sysctl::read(&key.to_string_lossy()).map_err(err)?;
                    Ok(MultiValue::from_vec(vec![match value.parse::<i64>() {
                        Ok(n) => Value::Integer(n),
                        Err(_) => lua.to_value(&value)?,
                    }]))
                }
                (Value::Table(table), Some(body)) => {
                    let mut changes = Vec::new();
                    for pair in table.pairs::<String, Value>() {
                        let (key, value) = pair?;
                        let value = match value {
                            Value::Integer(n) => n.to_string(),
                            Value::Number(n) if n.fract() == 0.0 => (n as i64).to_string(),
                            Value::String(s) => s.to_string_lossy(),
                            other => other.to_string()?,
                        };
                        changes.push((key, value));
                    }
                    changes.sort();
                    let lab = this.lock().lab.name.clone();
                    let changed = host_sysctl::change(&lab, &changes).map_err(err)?;
                    let result = body.call::<MultiValue>(());
                    let restored = changed.restore();
                    let values = result?;
                    restored.map_err(err)?;
                    Ok(values)
                }
                _ => Err(fail(
                    "x:host_sysctl(key) reads a machine-wide sysctl; \
                     x:host_sysctl({ [key] = value }, function() ... end) changes it while the function runs",
                )),
            }
        });
        // x:ipsec("gw1"): backend, IKE and child SAs with packet/byte counters, nonzero xfrm_stat (experiment/ipsec.rs).
        methods.add_method("ipsec", |lua, this, node: String| {
            let lab = this.lock().lab.clone();
            let ns = this.netns(&node)?;
            let status = super::ipsec::status(&lab, &node, &ns).map_err(|e| fail(format!("ipsec({node:?}): {e}")))?;
            lua.to_value(&status)
        });
        // x:ipsec_stop("gw1") / x:ipsec_start("gw1"): the node's tunnels down, and back up (waits for them).
        methods.add_method("ipsec_stop", |_, this, node: String| {
            let lab = this.lock().lab.clone();
            let ns = this.netns(&node)?;
            super::ipsec::stop(&lab, &node, &ns).map_err(|e| fail(format!("ipsec_stop({node:?}): {e}")))
        });
        methods.add_method("ipsec_start", |_, this, node: String| {
            let lab = this.lock().lab.clone();
            let ns = this.netns(&node)?;
            super::ipsec::start(&lab, &node, &ns).map_err(|e| fail(format!("ipsec_start({node:?}): {e}")))
        });
        // x:chart("cpu-work", { title = "...", unit = "pps", bars = { { "1 queue", 123 }, ... } }):
        // <name>.svg and <name>.txt in the run folder (`labctl run`); checked only under `labctl test`.
        methods.add_method("chart", |_, this, (name, opts): (String, Table)| {
            super::chart::check_name(&name)?;
            let chart = super::chart::Chart::from_lua(&opts)?;
            if this.lock().taken.iter().any(|t| t.name == name) {
                return Err(fail(format!(
                    "x:chart({name:?}): a snapshot has that name; its text would overwrite {name}.txt"
                )));
            }
            if let Some(dir) = this.lock().artifacts.clone() {
                chart.write(&dir, &name).map_err(|e| fail(format!("x:chart({name:?}): {e}")))?;
            }
            Ok(chart.table())
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
        // x:map, x:map_set, x:map_delete, x:xdp, x:xdp_attach, x:xdp_detach, x:ifindex, x:mac (experiment/xdp.rs).
        super::xdp::add_methods(methods);
    }
}

impl NodeRef {
    /// `to` and `port` of a flow, and the node that owns `to` (its sink runs there).
    fn destination(&self, opts: &Table, default_port: u16) -> mlua::Result<(SocketAddr, String)> {
        let to: String =
            opts.get::<Option<String>>("to")?.ok_or_else(|| fail("give the destination as to = \"198.18.x.y\""))?;
        let ip: IpAddr = to.parse().map_err(|_| fail(format!("{to:?} is not an IP address")))?;
        let port = opts.get::<Option<u16>>("port")?.unwrap_or(default_port);
        Ok((SocketAddr::new(ip, port), self.runtime.owner_of(ip)?))
    }
}

impl UserData for NodeRef {
    fn add_fields<F: mlua::UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("name", |_, this| Ok(this.name.clone()));
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // x.h1:ping("198.18.1.1", { count = 3, size = 56, interval = 0.1, timeout = 1, ttl = 64, source = "..." })
        methods.add_method("ping", |lua, this, (to, opts): (String, Option<Table>)| {
            let to: IpAddr = to.parse().map_err(|_| fail(format!("ping(): {to:?} is not an IP address")))?;
            let mut o = PingOptions::new(to);
            if let Some(t) = &opts {
                o.count = t.get::<Option<u32>>("count")?.unwrap_or(o.count);
                o.size = t.get::<Option<usize>>("size")?.unwrap_or(o.size);
                o.interval = t.get::<Option<f64>>("interval")?.map_or(o.interval, Duration::from_secs_f64);
                o.timeout = t.get::<Option<f64>>("timeout")?.map_or(o.timeout, Duration::from_secs_f64);
                o.ttl = t.get::<Option<u8>>("ttl")?;
                o.source = t
                    .get::<Option<String>>("source")?
                    .map(|s| s.parse())
                    .transpose()
                    .map_err(|_| fail("ping(): source is not an IP address"))?;
            }
            let netns = this.runtime.netns(&this.name)?;
            let report = traffic::ping(&netns, &o).map_err(|e| fail(format!("ping from {}: {e}", this.name)))?;
            lua.to_value(&report)
        });
        // x.h1:udp{ to = "198.18.1.1", port = 5201, size = 64, count = 1000, rate = 10000, duration = 1 }
        methods.add_method("udp", |lua, this, opts: Table| {
            let (to, dst) = this.destination(&opts, 5201)?;
            let flow = UdpFlow {
                to,
                size: opts.get::<Option<usize>>("size")?.unwrap_or(64),
                count: opts.get::<Option<u64>>("count")?,
                duration: duration(&opts, "duration")?,
                rate_pps: opts.get::<Option<u64>>("rate")?,
            };
            let (src_ns, dst_ns) = (this.runtime.netns(&this.name)?, this.runtime.netns(&dst)?);
            let report =
                traffic::udp_flow(&src_ns, &dst_ns, &flow).map_err(|e| fail(format!("udp from {}: {e}", this.name)))?;
            lua.to_value(&report)
        });
        // x.h1:tcp{ to = "198.18.1.1", port = 5201, bytes = 1e6 } (or duration = seconds)
        methods.add_method("tcp", |lua, this, opts: Table| {
            let (to, dst) = this.destination(&opts, 5201)?;
            let flow = TcpFlow { to, bytes: opts.get::<Option<u64>>("bytes")?, duration: duration(&opts, "duration")? };
            let (src_ns, dst_ns) = (this.runtime.netns(&this.name)?, this.runtime.netns(&dst)?);
            let report =
                traffic::tcp_flow(&src_ns, &dst_ns, &flow).map_err(|e| fail(format!("tcp from {}: {e}", this.name)))?;
            lua.to_value(&report)
        });
        // x.h1:blast{ to = "198.18.1.1", size = 64, duration = "3s", flows = 64, mode = "ring" (or "mmsg", "gso",
        //             "xdp"), rate = 1e5, burst = 100, cpu = 0 }
        methods.add_method("blast", |lua, this, opts: Table| {
            let (to, dst) = this.destination(&opts, 9000)?;
            let mode = match opts.get::<Option<String>>("mode")?.as_deref() {
                None | Some("mmsg") | Some("sendmmsg") => BlastMode::Sendmmsg,
                Some("ring") | Some("packet") => BlastMode::PacketRing,
                Some("gso") => BlastMode::Gso,
                Some("xdp") | Some("af_xdp") => BlastMode::AfXdp,
                Some(other) => {
                    return Err(fail(format!(
                        "blast(): mode {other:?}: use \"mmsg\" (UDP sockets), \"ring\" (AF_PACKET TX ring), \"gso\" (UDP GSO) or \"xdp\" (AF_XDP socket)"
                    )))
                }
            };
            let mut o = BlastOptions::new(to, mode);
            o.size = opts.get::<Option<usize>>("size")?.unwrap_or(o.size);
            o.flows = opts.get::<Option<u16>>("flows")?.unwrap_or(o.flows);
            o.rate_pps = opts.get::<Option<u64>>("rate")?;
            o.burst = opts.get::<Option<u64>>("burst")?;
            o.count = opts.get::<Option<u64>>("count")?;
            o.duration = duration(&opts, "duration")?.or(o.duration);
            o.batch = opts.get::<Option<usize>>("batch")?.unwrap_or(o.batch);
            o.cpu = opts.get::<Option<usize>>("cpu")?;
            o.sink_cpu = opts.get::<Option<usize>>("sink_cpu")?;
            // listen = false: no sink, the receiver drops them all as "no socket".
            o.listen = opts.get::<Option<bool>>("listen")?.unwrap_or(true);
            let (src_ns, dst_ns) = (this.runtime.netns(&this.name)?, this.runtime.netns(&dst)?);
            let report =
                traffic::blast(&src_ns, &dst_ns, &o).map_err(|e| fail(format!("blast from {}: {e}", this.name)))?;
            lua.to_value(&report)
        });
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
            let cpu = opts.as_ref().map(|o| o.get::<Option<usize>>("cpu")).transpose()?.flatten();
            let netns = this.runtime.netns(&this.name)?;
            let result = command::run(&netns, &argv, cpu, Duration::from_secs_f64(timeout)).map_err(|e| {
                mlua::Error::runtime(format!("run(): cannot start {:?} in {}: {e}", argv[0], this.name))
            })?;
            if result.interrupted {
                return Err(fail("interrupted"));
            }
            let t = lua.create_table()?;
            t.set("status", result.status)?;
            t.set("stdout", result.stdout)?;
            t.set("stderr", result.stderr)?;
            t.set("timed_out", result.timed_out)?;
            Ok(t)
        });
    }
}
