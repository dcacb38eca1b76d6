//! Counters: `x:counters` (absolute values now), `x:delta` (what moved while
//! a function ran; nftables rule counters such as
//! `"r1:nft:inet/filter/forward/class-e"` among them, see observe.rs), and a
//! node's tables, `x:neighbours` and `x:routes`.

use mlua::{Function, Lua, LuaSerdeExt, UserDataMethods, Value};

use super::observe as look;
use super::options::{bad_argument, names};
use super::runtime::{fail, lua_error, Runtime};

/// The counter names of `specs`, the nftables ones checked for their
/// shape at the calling line (a rule that does not exist is found on reading).
fn checked(lua: &Lua, what: &str, specs: Value) -> mlua::Result<Vec<String>> {
    let specs = names(lua, what, specs)?;
    for spec in &specs {
        if spec.split(':').nth(1) == Some("nft") && look::nft_spec(spec).is_err() {
            return Err(bad_argument(
                lua,
                format!("{what}: {spec:?} does not name an nftables counter"),
                look::NFT_SPEC_HELP,
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
}
