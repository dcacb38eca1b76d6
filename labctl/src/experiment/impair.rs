//! `x:impair`: a link end's impairments changed during an experiment (a
//! link that degrades), put back as the lab declared them afterwards.
//!
//! ```lua
//! x:impair("h4:eth0", { loss = "10%", seed = 7 })               -- until the experiment ends
//! x:impair("h1:eth0", { rate = "5mbit" }, function() ... end)    -- while the function runs
//! x:impair("h4:eth0")    -- { rate = 10000000, loss = 10, seed = 7, seen = 1000, dropped = 96 }
//! ```
//!
//! The settings given replace those keys of the declared ones (a rate
//! change keeps the declared loss). Changing loss restarts the loss
//! program's packet count, so what follows drops the same packets on
//! every run. Loss can change only on an end the lab declared loss on
//! (`loss = "0%"` attaches the program and drops nothing).

use std::path::PathBuf;

use mlua::{Function, Lua, MultiValue, Table, UserDataMethods, Value};

use super::options::Options;
use super::runtime::{fail, Runtime};
use crate::apply::impair::{self, End};
use crate::model::layout::loss_pin_dir;
use crate::model::ImpairSettings;
use crate::script::error_at;

const USAGE: &str = r#"x:impair("h1:eth0") reads an end's impairments; x:impair("h1:eth0", { rate = "5mbit" }) changes them until the experiment ends, x:impair("h1:eth0", { ... }, function() ... end) while the function runs"#;

pub(super) fn register<M: UserDataMethods<Runtime>>(methods: &mut M) {
    methods.add_method("impair", |lua, this, (end, settings, body): (Value, Option<Table>, Option<Function>)| {
        let Value::String(end) = end else { return Err(fail(USAGE)) };
        let target = Target::of(this, &end.to_string_lossy())?;
        match (settings, body) {
            (None, None) => read(lua, this, &target),
            (Some(settings), body) => {
                let wanted = parse(lua, settings)?;
                let settings = target.declared.overlay(wanted);
                set(this, &target, &settings)?;
                let Some(body) = body else {
                    this.at_end(Box::new(move |runtime: &Runtime| set(runtime, &target, &target.declared)));
                    return Ok(MultiValue::new());
                };
                let result = body.call::<MultiValue>(());
                let restored = set(this, &target, &target.declared);
                let values = result?;
                restored?;
                Ok(values)
            }
            (None, Some(_)) => Err(fail(USAGE)),
        }
    });
}

/// One end of a running lab's link.
struct Target {
    node: String,
    ifname: String,
    declared: ImpairSettings,
    mtu: u32,
    loss_pins: Option<PathBuf>,
}

impl Target {
    fn of(runtime: &Runtime, spec: &str) -> mlua::Result<Target> {
        let Some((node, ifname)) = spec.split_once(':') else {
            return Err(fail(format!("x:impair({spec:?}): name an end as \"node:interface\", like \"h1:eth0\"")));
        };
        runtime.with_lab(|lab| {
            let Some(peer) = lab.peer_of(node, ifname) else {
                let ends: Vec<String> =
                    lab.links.iter().flat_map(|l| l.ends.iter()).map(|e| format!("{}:{}", e.node, e.ifname)).collect();
                return Err(fail(format!(
                    "x:impair({spec:?}): no link end {spec} in the lab (its ends: {})",
                    ends.join(", ")
                )));
            };
            let declared = lab.impairment_of(node, ifname).map(|i| i.settings).unwrap_or_default();
            let mtu = lab
                .links
                .iter()
                .find(|l| l.ends.iter().any(|e| e.node == node && e.ifname == ifname))
                .and_then(|l| l.mtu)
                .unwrap_or(1500);
            let loss_pins = declared.loss.map(|_| loss_pin_dir(&lab.name, &peer.node, &peer.ifname));
            Ok(Target { node: node.into(), ifname: ifname.into(), declared, mtu, loss_pins })
        })
    }
}

fn parse(lua: &Lua, table: Table) -> mlua::Result<ImpairSettings> {
    let table = Options::check(lua, "x:impair()", Some(table.clone()), crate::script::impair::KEYS).map(|_| table)?;
    let (settings, problems) = crate::script::impair::read(&table)?;
    if let Some(problem) = problems.into_iter().next() {
        return Err(error_at(lua, format!("x:impair(): {problem}"), crate::script::impair::EXAMPLE));
    }
    if let Some((message, help)) = crate::validate::impair::check_settings(&settings).into_iter().next() {
        return Err(error_at(lua, format!("x:impair(): {message}"), &help));
    }
    Ok(settings)
}

fn set(runtime: &Runtime, target: &Target, settings: &ImpairSettings) -> mlua::Result<()> {
    let netns = runtime.netns(&target.node)?;
    let ifname = target.ifname.clone();
    let ifindex = crate::sys::netns::run_in(&netns, move || nix::net::if_::if_nametoindex(ifname.as_str()))
        .map_err(|e| fail(e.to_string()))?
        .map_err(|e| fail(format!("x:impair(): {}:{}: {e}", target.node, target.ifname)))?;
    let end = End {
        name: format!("{}:{}", target.node, target.ifname),
        netns: &netns,
        ifindex,
        mtu: target.mtu,
        loss_pins: target.loss_pins.as_deref(),
    };
    impair::change(&end, settings).map_err(|e| fail(format!("x:impair(): {e}")))
}

/// The end's settings now (as last set) and its loss program's counts.
fn read(lua: &Lua, runtime: &Runtime, target: &Target) -> mlua::Result<MultiValue> {
    let _ = runtime;
    let table = lua.create_table()?;
    let s = &target.declared;
    if let Some(rate) = s.rate {
        table.set("rate", rate)?;
    }
    if let Some(limit) = s.limit {
        table.set("limit", limit)?;
    }
    if let Some(pins) = &target.loss_pins {
        let state = impair::loss::read(pins).map_err(|e| fail(format!("x:impair(): {e}")))?;
        table.set("loss", f64::from(state.ppm) / 10_000.0)?;
        table.set("seed", state.seed)?;
        table.set("seen", state.seen)?;
        table.set("dropped", state.dropped)?;
    }
    Ok(MultiValue::from_vec(vec![Value::Table(table)]))
}
