//! Script stage: evaluates a lab file with Lua (sandboxed) into a [`Lab`].
//! The Lua side only declares; nothing here touches the kernel.
//!
//! Mistakes in vocabulary calls (a bad address, an unknown option) are
//! recorded and the script keeps running, so the user sees them all at once;
//! only Lua errors (syntax, runtime, limits) stop it. Everything the model
//! can hold (duplicate names, unreachable gateways, ...) is left to
//! [`crate::validate`].

pub mod args;
mod builder;
mod cpu;
mod errors;
mod extend;
pub mod impair;
mod ipsec;
mod l2;
mod limits;
mod link;
mod neighbour;
mod nic;
mod origin;
mod param;
mod require;
mod routing;
mod sandbox;
mod tune;
mod vocabulary;
pub(crate) mod xdp;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mlua::chunk::ChunkMode;
use mlua::Table;

use crate::diag::{Diagnostic, Diagnostics, Origin};
use crate::model::Lab;
use builder::Builder;
pub use errors::error_at;
pub use errors::Methods;
pub use extend::{include, report, Extension};
pub use origin::caller_origin;

/// The user files a script was read from (the lab file, then required
/// modules), kept in the Lua state to locate later errors.
pub(super) struct UserFiles(Vec<PathBuf>);

/// A loaded lab script: the declared lab, and the Lua state that still holds
/// its experiment functions.
pub struct Script {
    pub lab: Lab,
    pub lua: mlua::Lua,
    /// Did the file declare anything (`lab { ... }`, a node, a bridge)? A
    /// helper module next to labs declares nothing when read on its own.
    pub declares_a_lab: bool,
}

/// `--set key=value` pairs, read by `param()` in the script.
pub type Params = BTreeMap<String, String>;

#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// Problems in the script, each with file:line.
    #[error("{0}")]
    Invalid(Diagnostics),
    /// `--set` named a parameter the script never reads.
    #[error("--set {key}: {file} has no parameter {key:?} ({})", known_params(.known))]
    UnknownParam { key: String, file: PathBuf, known: Vec<String> },
}

fn known_params(known: &[String]) -> String {
    if known.is_empty() {
        "it reads none with param()".to_string()
    } else {
        format!("its parameters: {}", known.join(", "))
    }
}

/// Reads and evaluates the lab file at `path`. Diagnostics name the file as
/// `path` is written, so pass the path the user gave.
pub fn load(path: &Path) -> Result<Script, ScriptError> {
    load_with(path, &Params::new(), |_| Vec::new())
}

/// [`load`] with `--set` parameters (a key the script never reads is an
/// error), and `later_checks` (validation) run on the lab as the script
/// declared it even when some calls were wrong, so the user gets every
/// mistake in one round. Only a script that stopped half way (a Lua error)
/// skips them, and its error says that more checks follow.
pub fn load_with(
    path: &Path,
    params: &Params,
    later_checks: impl FnOnce(&Lab) -> Vec<Diagnostic>,
) -> Result<Script, ScriptError> {
    let source = std::fs::read_to_string(path).map_err(|source| ScriptError::Read { path: path.into(), source })?;
    evaluate_with(path, &source, params, &|_| Ok(()), later_checks)
}

/// [`load`] with more vocabulary than a lab's (an exercise's `exercise {}`
/// and `check()`), registered before the file runs.
pub fn load_extended(path: &Path, extend: Extension<'_>) -> Result<Script, ScriptError> {
    let source = std::fs::read_to_string(path).map_err(|source| ScriptError::Read { path: path.into(), source })?;
    evaluate_with(path, &source, &Params::new(), extend, |_| Vec::new())
}

/// Said on the error that stopped a script: what it kept from running.
const STOPPED: &str =
    "the script stopped here: fix this first; more checks follow (the rest of the file, then the lab as a whole)";

/// Evaluates `source` as if read from `path` (which `require` looks next to).
#[cfg(test)]
fn evaluate(
    path: &Path,
    source: &str,
    later_checks: impl FnOnce(&Lab) -> Vec<Diagnostic>,
) -> Result<Script, ScriptError> {
    evaluate_with(path, source, &Params::new(), &|_| Ok(()), later_checks)
}

fn evaluate_with(
    path: &Path,
    source: &str,
    params: &Params,
    extend: Extension<'_>,
    later_checks: impl FnOnce(&Lab) -> Vec<Diagnostic>,
) -> Result<Script, ScriptError> {
    let lua_setup = |e: mlua::Error| {
        // Setting up the sandbox does not depend on the script; failing here is a bug.
        ScriptError::Invalid(Diagnostics(vec![Diagnostic::new(
            Origin::new(path, 0),
            format!("cannot set up Lua: {e}"),
        )]))
    };
    let (lua, watchdog) = sandbox::new().map_err(lua_setup)?;
    lua.set_app_data(Builder::new(path, params.clone()));
    register_vocabulary(&lua).map_err(lua_setup)?;
    require::register(&lua, path).map_err(lua_setup)?;
    extend(&lua).map_err(lua_setup)?;

    let result = lua.load(source).set_name(format!("@{}", path.display())).set_mode(ChunkMode::Text).exec();
    // The instruction budget is for reading the file; experiments run later under their own rules.
    lua.remove_hook();
    let mut builder = lua.remove_app_data::<Builder>().expect("installed above");
    match result {
        Err(error) => {
            let fallback = watchdog.last_origin().unwrap_or_else(|| Origin::new(path, 0));
            let stopped = errors::to_diagnostic(&error, &builder.files, fallback, errors::LAB_SCRIPT_METHODS);
            let help = stopped.help.clone().map_or_else(|| STOPPED.to_string(), |h| format!("{h}\n  note: {STOPPED}"));
            builder.diagnostics.push(stopped.help(help));
        }
        Ok(()) => {
            for later in later_checks(&builder.lab) {
                if !builder.diagnostics.contains(&later) {
                    builder.diagnostics.push(later);
                }
            }
        }
    }
    if !builder.diagnostics.is_empty() {
        return Err(ScriptError::Invalid(Diagnostics(builder.sorted_diagnostics())));
    }
    if let Some(key) = params.keys().find(|k| !builder.lab.params.iter().any(|p| &p.name == *k)) {
        let known = builder.lab.params.iter().map(|p| p.name.clone()).collect();
        return Err(ScriptError::UnknownParam { key: key.clone(), file: path.into(), known });
    }
    lua.set_app_data(UserFiles(builder.files));
    lua.set_app_data(watchdog);
    let declares_a_lab = builder.lab_call.is_some() || !builder.lab.nodes.is_empty();
    Ok(Script { lab: builder.lab, lua, declares_a_lab })
}

/// Makes `pcall` rethrow every error while `stopped` (an experiment past
/// its time limit or interrupted), so a loop around `pcall` cannot swallow
/// the stop.
pub fn set_stopped(lua: &mlua::Lua, stopped: bool) {
    if let Some(watchdog) = lua.app_data_ref::<std::sync::Arc<sandbox::Watchdog>>() {
        watchdog.set_stopped(stopped);
    }
}

/// The globals a lab file declares its lab with.
fn register_vocabulary(lua: &mlua::Lua) -> mlua::Result<()> {
    use crate::model::NodeKind;
    use mlua::Value;
    let globals = lua.globals();
    globals.set("lab", lua.create_function(vocabulary::lab)?)?;
    let declare = |kind: NodeKind| {
        lua.create_function(move |lua, (name, opts): (Value, Value)| vocabulary::declare(lua, kind, name, opts))
    };
    globals.set("node", declare(NodeKind::Host)?)?;
    globals.set("bridge", declare(NodeKind::Bridge)?)?;
    globals.set("link", lua.create_function(link::link)?)?;
    globals.set("ipsec", lua.create_function(ipsec::ipsec)?)?;
    globals.set("xdp", lua.create_function(xdp::xdp)?)?;
    globals.set("experiment", lua.create_function(vocabulary::experiment)?)?;
    globals.set("param", lua.create_function(param::param)?)?;
    globals.set("sriov", lua.create_function(nic::sriov)?)?;
    lua.set_named_registry_value(vocabulary::EXPERIMENTS, lua.create_table()?)
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
    /// like errors met while reading the file; `fallback` when it has no
    /// place; `methods` what the experiment's objects offer, for "did you mean".
    pub fn diagnostic(&self, error: &mlua::Error, fallback: Origin, methods: Methods) -> Diagnostic {
        let files = self.lua.app_data_ref::<UserFiles>();
        errors::to_diagnostic(error, files.as_ref().map_or(&[][..], |f| &f.0[..]), fallback, methods)
    }
}

#[cfg(test)]
mod tests;
