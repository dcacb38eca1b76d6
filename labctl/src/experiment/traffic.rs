//! The node methods, `x.h1:...`: traffic from the node (`ping`, `udp`,
//! `tcp`, `blast`, see traffic/) and commands inside it (`run`).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use mlua::{Lua, LuaSerdeExt, Table, UserDataMethods, Value};

use super::background::Placement;
use super::command;
use super::options::Options;
use super::runtime::{fail, NodeRef};
use crate::sys::machine_turn;
use crate::traffic::{self, BlastMode, BlastOptions, PingOptions, TcpFlow, UdpFlow};

/// A command's time limit unless `run` says otherwise.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) fn register<M: UserDataMethods<NodeRef>>(methods: &mut M) {
    // (run first: "did you mean" lists the methods in this order)
    // x.h1:run{"ip", "route"} or x.h1:run("ip route") (split on spaces), with { timeout = "5s", cpu = 0 }.
    methods.add_method("run", |lua, this, (cmd, opts): (Value, Option<Table>)| {
        let opts = Options::check(lua, &format!("x.{}:run()", this.name), opts, &["timeout", "cpu"])?;
        let argv = argv(cmd)?;
        let timeout = opts.duration("timeout")?.unwrap_or(RUN_TIMEOUT);
        let cpu = opts.get::<usize>("cpu")?;
        machine_turn::sharing(|| this.run(lua, &argv, cpu, timeout))
    });
    // x.h1:ping("198.18.1.1", { count = 3, size = 56, interval = 0.1, timeout = 1, ttl = 64, source = "..." })
    methods.add_method("ping", |lua, this, (to, opts): (String, Option<Table>)| {
        const VALID: &[&str] = &["count", "size", "interval", "timeout", "ttl", "source"];
        let opts = Options::check(lua, &format!("x.{}:ping()", this.name), opts, VALID)?;
        let to: IpAddr = to.parse().map_err(|_| fail(format!("ping(): {to:?} is not an IP address")))?;
        let options = ping_options(to, &opts)?;
        let report = machine_turn::sharing(|| this.ping(&options))?;
        lua.to_value(&report)
    });
    // x.h1:udp{ to = "198.18.1.1", port = 5201, size = 64, count = 1000, rate = 10000, duration = 1 }
    methods.add_method("udp", |lua, this, opts: Table| {
        const VALID: &[&str] = &["to", "port", "size", "count", "rate", "duration"];
        let opts = Options::check(lua, &format!("x.{}:udp()", this.name), Some(opts), VALID)?;
        let (to, dst) = this.destination(&opts, 5201)?;
        let flow = UdpFlow {
            to,
            size: opts.get::<usize>("size")?.unwrap_or(64),
            count: opts.get::<u64>("count")?,
            duration: opts.duration("duration")?,
            rate_pps: opts.get::<u64>("rate")?,
        };
        let (src_ns, dst_ns) = (this.runtime.netns(&this.name)?, this.runtime.netns(&dst)?);
        let report = machine_turn::sharing(|| traffic::udp_flow(&src_ns, &dst_ns, &flow))
            .map_err(|e| fail(format!("udp from {}: {e}", this.name)))?;
        lua.to_value(&report)
    });
    // x.h1:tcp{ to = "198.18.1.1", port = 5201, bytes = 1e6 } (or duration = seconds)
    methods.add_method("tcp", |lua, this, opts: Table| {
        const VALID: &[&str] = &["to", "port", "bytes", "duration"];
        let opts = Options::check(lua, &format!("x.{}:tcp()", this.name), Some(opts), VALID)?;
        let (to, dst) = this.destination(&opts, 5201)?;
        let flow = TcpFlow { to, bytes: opts.get::<u64>("bytes")?, duration: opts.duration("duration")? };
        let (src_ns, dst_ns) = (this.runtime.netns(&this.name)?, this.runtime.netns(&dst)?);
        let report = machine_turn::sharing(|| traffic::tcp_flow(&src_ns, &dst_ns, &flow))
            .map_err(|e| fail(format!("tcp from {}: {e}", this.name)))?;
        lua.to_value(&report)
    });
    // x.h1:blast{ to = "198.18.1.1", size = 64, duration = "3s", flows = 64, mode = "ring" (or "mmsg", "gso",
    //             "xdp"), rate = 1e5, burst = 100, cpu = 0 }
    methods.add_method("blast", |lua, this, opts: Table| {
        let opts = Options::check(lua, &format!("x.{}:blast()", this.name), Some(opts), BLAST_OPTIONS)?;
        let (to, dst) = this.destination(&opts, 9000)?;
        let o = blast_options(to, &opts)?;
        let (src_ns, dst_ns) = (this.runtime.netns(&this.name)?, this.runtime.netns(&dst)?);
        let report = machine_turn::sharing(|| traffic::blast(&src_ns, &dst_ns, &o))
            .map_err(|e| fail(format!("blast from {}: {e}", this.name)))?;
        lua.to_value(&report)
    });
}

const BLAST_OPTIONS: &[&str] = &[
    "to", "port", "size", "duration", "flows", "mode", "rate", "burst", "count", "batch", "cpu", "sink_cpu", "listen",
];

fn ping_options(to: IpAddr, opts: &Options) -> mlua::Result<PingOptions> {
    let mut o = PingOptions::new(to);
    o.count = opts.get::<u32>("count")?.unwrap_or(o.count);
    o.size = opts.get::<usize>("size")?.unwrap_or(o.size);
    o.interval = opts.duration("interval")?.unwrap_or(o.interval);
    o.timeout = opts.duration("timeout")?.unwrap_or(o.timeout);
    o.ttl = opts.get::<u8>("ttl")?;
    o.source = match opts.get::<String>("source")? {
        None => None,
        Some(s) => Some(s.parse().map_err(|_| {
            opts.bad("source", &format!("{s:?} is not an IP address"), r#"write source = "198.18.0.1""#)
        })?),
    };
    Ok(o)
}

fn blast_mode(opts: &Options) -> mlua::Result<BlastMode> {
    Ok(match opts.get::<String>("mode")?.as_deref() {
        None | Some("mmsg") | Some("sendmmsg") => BlastMode::Sendmmsg,
        Some("ring") | Some("packet") => BlastMode::PacketRing,
        Some("gso") => BlastMode::Gso,
        Some("xdp") | Some("af_xdp") => BlastMode::AfXdp,
        Some(other) => {
            return Err(fail(format!(
                "blast(): mode {other:?}: use \"mmsg\" (UDP sockets), \"ring\" (AF_PACKET TX ring), \"gso\" (UDP GSO) or \"xdp\" (AF_XDP socket)"
            )))
        }
    })
}

fn blast_options(to: SocketAddr, opts: &Options) -> mlua::Result<BlastOptions> {
    let mut o = BlastOptions::new(to, blast_mode(opts)?);
    o.size = opts.get::<usize>("size")?.unwrap_or(o.size);
    o.flows = opts.get::<u16>("flows")?.unwrap_or(o.flows);
    o.rate_pps = opts.get::<u64>("rate")?;
    o.burst = opts.get::<u64>("burst")?;
    o.count = opts.get::<u64>("count")?;
    o.duration = opts.duration("duration")?.or(o.duration);
    o.batch = opts.get::<usize>("batch")?.unwrap_or(o.batch);
    o.cpu = opts.get::<usize>("cpu")?;
    o.sink_cpu = opts.get::<usize>("sink_cpu")?;
    // listen = false: no sink, the receiver drops them all as "no socket".
    o.listen = opts.get::<bool>("listen")?.unwrap_or(true);
    Ok(o)
}

/// `{"ip", "route"}`, or `"ip route"` split on spaces.
pub(super) fn argv(cmd: Value) -> mlua::Result<Vec<String>> {
    let argv: Vec<String> = match cmd {
        Value::String(s) => s.to_string_lossy().split_whitespace().map(String::from).collect(),
        Value::Table(t) => t.sequence_values::<String>().collect::<mlua::Result<_>>()?,
        other => return Err(fail(format!("run(): expected a string or a list, got {}", other.type_name()))),
    };
    if argv.is_empty() {
        return Err(fail("run(): empty command"));
    }
    Ok(argv)
}

impl NodeRef {
    /// `to` and `port` of a flow, and the node that owns `to` (its sink runs there).
    fn destination(&self, opts: &Options, default_port: u16) -> mlua::Result<(SocketAddr, String)> {
        let to: String =
            opts.get::<String>("to")?.ok_or_else(|| fail("give the destination as to = \"198.18.x.y\""))?;
        let ip: IpAddr = to.parse().map_err(|_| fail(format!("{to:?} is not an IP address")))?;
        let port = opts.get::<u16>("port")?.unwrap_or(default_port);
        Ok((SocketAddr::new(ip, port), self.runtime.owner_of(ip)?))
    }

    fn ping(&self, o: &PingOptions) -> mlua::Result<traffic::PingReport> {
        let netns = self.runtime.netns(&self.name)?;
        traffic::ping(&netns, o).map_err(|e| fail(format!("ping from {}: {e}", self.name)))
    }

    /// Runs `argv` in the node, stopped at `timeout` or at the experiment's time limit.
    fn run(&self, lua: &Lua, argv: &[String], cpu: Option<usize>, timeout: Duration) -> mlua::Result<Table> {
        let limit = self.runtime.limit();
        let netns = self.runtime.netns(&self.name)?;
        let cgroup = self.runtime.cgroup_procs(&self.name)?;
        let placement = Placement { netns: &netns, cpu, cgroup_procs: cgroup.as_ref() };
        let cut_by_limit = limit.left() < timeout;
        let result = command::run(&placement, argv, timeout.min(limit.left()))
            .map_err(|e| fail(format!("run(): cannot start {:?} in {}: {e}", argv[0], self.name)))?;
        if result.interrupted {
            return Err(fail("interrupted"));
        }
        // Cut short by the experiment's time limit rather than its own timeout.
        if result.timed_out && cut_by_limit {
            limit.check()?;
        }
        let t = lua.create_table()?;
        t.set("status", result.status)?;
        t.set("stdout", result.stdout)?;
        t.set("stderr", result.stderr)?;
        t.set("timed_out", result.timed_out)?;
        Ok(t)
    }
}
