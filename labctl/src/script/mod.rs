//! Script stage: evaluates a lab file with Lua (sandboxed) into a [`Lab`].
//! The Lua side only declares; nothing here touches the kernel.
//!
//! Mistakes in vocabulary calls (a bad address, an unknown option) are
//! recorded and the script keeps running, so the user sees them all at once;
//! only Lua errors (syntax, runtime, limits) stop it. Everything the model
//! can hold (duplicate names, unreachable gateways, ...) is left to
//! [`crate::validate`].

mod args;
mod builder;
mod errors;
mod ipsec;
mod link;
mod require;
mod sandbox;
mod tune;
mod vocabulary;
mod xdp;

use std::path::{Path, PathBuf};

use mlua::chunk::ChunkMode;
use mlua::Table;

use crate::diag::{Diagnostic, Diagnostics, Origin};
use crate::model::Lab;
pub use builder::caller_origin;
use builder::Builder;

/// The user files a script was read from (the lab file, then required
/// modules), kept in the Lua state to locate later errors.
struct UserFiles(Vec<PathBuf>);

/// A loaded lab script: the declared lab, and the Lua state that still holds
/// its experiment functions.
pub struct Script {
    pub lab: Lab,
    pub lua: mlua::Lua,
}

#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// Problems in the script, each with file:line.
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// Reads and evaluates the lab file at `path`. Diagnostics name the file as
/// `path` is written, so pass the path the user gave.
pub fn load(path: &Path) -> Result<Script, ScriptError> {
    let source = std::fs::read_to_string(path).map_err(|source| ScriptError::Read { path: path.into(), source })?;
    evaluate(path, &source)
}

/// Evaluates `source` as if read from `path` (which `require` looks next to).
fn evaluate(path: &Path, source: &str) -> Result<Script, ScriptError> {
    let lua_setup = |e: mlua::Error| {
        // Setting up the sandbox does not depend on the script; failing here is a bug.
        ScriptError::Invalid(Diagnostics(vec![Diagnostic::new(
            Origin::new(path, 0),
            format!("cannot set up Lua: {e}"),
        )]))
    };
    let (lua, watchdog) = sandbox::new().map_err(lua_setup)?;
    lua.set_app_data(Builder::new(path));
    vocabulary::register(&lua).map_err(lua_setup)?;
    require::register(&lua).map_err(lua_setup)?;

    let result = lua.load(source).set_name(format!("@{}", path.display())).set_mode(ChunkMode::Text).exec();
    // The instruction budget is for reading the file; experiments run later under their own rules.
    lua.remove_hook();
    let mut builder = lua.remove_app_data::<Builder>().expect("installed above");
    if let Err(error) = result {
        let fallback = watchdog.last_origin().unwrap_or_else(|| Origin::new(path, 0));
        builder.diagnostics.push(errors::to_diagnostic(&error, &builder.files, fallback));
    }
    if !builder.diagnostics.is_empty() {
        return Err(ScriptError::Invalid(Diagnostics(builder.sorted_diagnostics())));
    }
    lua.set_app_data(UserFiles(builder.files));
    Ok(Script { lab: builder.lab, lua })
}

impl Script {
    /// The function of the experiment declared as `name`.
    pub fn experiment(&self, name: &str) -> Option<mlua::Function> {
        let experiments: Table = self.lua.named_registry_value(vocabulary::EXPERIMENTS).ok()?;
        experiments.get::<Option<mlua::Function>>(name).ok().flatten()
    }

    /// The user files the lab was read from: the lab file, then the modules it required.
    pub fn files(&self) -> Vec<PathBuf> {
        self.lua.app_data_ref::<UserFiles>().map(|f| f.0.clone()).unwrap_or_default()
    }

    /// A Lua error raised later (in an experiment) as a diagnostic, located
    /// like errors met while reading the file; `fallback` when it has no place.
    pub fn diagnostic(&self, error: &mlua::Error, fallback: Origin) -> Diagnostic {
        let files = self.lua.app_data_ref::<UserFiles>();
        errors::to_diagnostic(error, files.as_ref().map_or(&[][..], |f| &f.0[..]), fallback)
    }
}

#[cfg(test)]
mod tests;
