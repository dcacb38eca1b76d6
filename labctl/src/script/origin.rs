//! Where in the user's script we are: the file:line every model object,
//! diagnostic and experiment result records.

use mlua::Lua;

use crate::diag::Origin;

/// The line of a lab script that is calling into Rust right now: the
/// innermost frame from a user file. Frames of labctl's own Lua modules
/// (chunk names starting with `=`) are skipped, so a node made by
/// `topo.star` points at the `topo.star(...)` line.
pub fn caller_origin(lua: &Lua) -> Option<Origin> {
    (0..)
        .map_while(|level| {
            lua.inspect_stack(level, |debug| {
                let source = debug.source().source.map(|s| s.into_owned());
                (source, debug.current_line())
            })
        })
        .find_map(|(source, line)| Some(Origin::new(source?.strip_prefix('@')?, line? as u32)))
}
