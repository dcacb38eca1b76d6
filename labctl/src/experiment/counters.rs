//! Counters: `x:counters` (absolute values now), `x:delta` (what moved while
//! a function ran; nftables rule counters such as
//! `"r1:nft:inet/filter/forward/class-e"` and tc filters such as `"r1:eth0:tc:ingress/10"` among them, see observe.rs), and a node's tables, `x:neighbours`, `x:routes`,
//! `x:rules` and a bridge's `x:fdb`.

use mlua::{Function, Lua, LuaSerdeExt, Table, UserDataMethods, Value};

use super::observe as look;
use super::options::{bad_argument, names, Options};
use super::runtime::{fail, lua_error, Runtime};

/// The counter names of `specs`, the nftables and tc ones checked for their
/// shape at the calling line (a rule that does not exist is found on reading).
fn checked(lua: &Lua, what: &str, specs: Value) -> mlua::Result<Vec<String>> {
    let specs = names(lua, what, specs)?;
    for spec in &specs {
        if look::is_nft(spec) && look::nft_spec(spec).is_err() {
            return Err(bad_argument(
                lua,
                format!("{what}: {spec:?} does not name an nftables counter"),
                look::NFT_SPEC_HELP,
            ));
        }
        if look::is_tc(spec) && look::tc_spec(spec).is_err() {
            return Err(bad_argument(
                lua,
                format!("{what}: {spec:?} does not name a tc filter's counters"),
                look::TC_SPEC_HELP,
            ));
        }
    }
    Ok(specs)
}

pub(super) fn register<M: UserDataMethods<Runtime>>(methods: &mut M) {
    // x:counters{"h1:eth0", "r1", "softnet"}
    methods.add_method("counters", |lua, this, specs: Value| {
        let counters = look::read(&checked(lua, "x:counters()", specs)?, &this.all_netns()?).map_err(lua_error)?;
        lua.to_value(&counters)
    });
    // x:delta({"h1:eth0", "r1"}, function() ... end)
    methods.add_method("delta", |lua, this, (specs, step): (Value, Function)| {
        let specs = checked(lua, "x:delta()", specs)?;
        let netns = this.all_netns()?;
        // The whole window is one turn: no lab changes the machine between the two reads.
        let _turn = crate::sys::machine_turn::shared();
        let before = look::read(&specs, &netns).map_err(lua_error)?;
        step.call::<()>(())?;
        let after = look::read(&specs, &netns).map_err(lua_error)?;
        lua.to_value(&look::delta(&before, &after))
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
    // x:rules("r1"): the policy rules, IPv4 then IPv6, by priority.
    methods.add_method("rules", |lua, this, node: String| {
        let netns = this.netns(&node)?;
        let table = crate::observe::counters::rules(&netns).map_err(|e| fail(format!("rules of {node}: {e}")))?;
        lua.to_value(&table)
    });
    // x:fdb("sw", { learned = true, vlan = 10 }): the bridge's forwarding entries.
    methods.add_method("fdb", |lua, this, (node, opts): (String, Option<Table>)| {
        let opts = Options::check(lua, "x:fdb()", opts, &["learned", "vlan", "port"])?;
        let is_bridge = this.with_lab(|lab| lab.node(&node).map(|n| n.kind == crate::model::NodeKind::Bridge));
        if is_bridge == Some(false) {
            return Err(fail(format!("x:fdb(): {node} is not a bridge; give the name of a bridge(...) node")));
        }
        let netns = this.netns(&node)?;
        let learned = opts.get::<bool>("learned")?.unwrap_or(false);
        let vlan = opts.get::<u16>("vlan")?;
        let port = opts.get::<String>("port")?;
        let table = crate::observe::counters::fdb(&netns, crate::model::BRIDGE_DEVICE)
            .map_err(|e| fail(format!("fdb of {node}: {e}")))?;
        let kept: Vec<_> = table
            .into_iter()
            .filter(|e| !learned || e.flags.first().is_some_and(|f| f == "learned"))
            .filter(|e| vlan.is_none() || e.vlan == vlan)
            .filter(|e| port.as_ref().is_none_or(|p| &e.port == p))
            .collect();
        lua.to_value(&kept)
    });
}
