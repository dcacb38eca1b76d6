//! What a vocabulary outside this module (the exercise module's
//! `exercise {}` and `check()`) needs from the script stage: to report a
//! mistake at the caller's line like the lab vocabulary does, and to
//! evaluate another user file into the lab being declared.

use std::path::Path;

use mlua::chunk::ChunkMode;
use mlua::{Lua, Value};

use super::builder;

/// Registers extra globals in a fresh script state, before the file runs.
pub type Extension<'a> = &'a dyn Fn(&Lua) -> mlua::Result<()>;

/// Records a mistake at the calling line of the user's file; the file keeps
/// running, so every mistake is reported at once.
pub fn report(lua: &Lua, message: impl Into<String>, help: impl Into<String>) -> mlua::Result<()> {
    let origin = builder::origin(lua)?;
    builder::with(lua, |b| b.report(origin, message, help))
}

/// Evaluates the Lua file at `path` as part of the lab being declared (a
/// piece of a lab script a learner edits), returning what it returns.
/// Its errors name `path` and its lines.
pub fn include(lua: &Lua, path: &Path) -> mlua::Result<Value> {
    let source = std::fs::read_to_string(path).map_err(|e| {
        super::errors::error_at(
            lua,
            format!("cannot read {}: {e}", path.display()),
            "create the file, or reset the exercise",
        )
    })?;
    builder::with(lua, |b| b.files.push(path.to_path_buf()))?;
    lua.load(source).set_name(format!("@{}", path.display())).set_mode(ChunkMode::Text).call::<Value>(())
}
