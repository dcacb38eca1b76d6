//! labctl: reproducible Linux network labs from Lua scripts.
//!
//! The modules follow the pipeline, each talking only to the next:
//! script -> model -> validate -> plan -> apply -> observe -> snapshot.

pub mod apply;
pub mod bpf;
pub mod diag;
pub mod experiment;
pub mod model;
pub mod observe;
pub mod plan;
pub mod script;
pub mod snapshot;
pub mod traffic;
pub mod validate;

/// Reads, validates and plans a lab script: everything `up` does before it
/// touches the kernel. Needs no privileges.
pub fn load_and_plan(path: &std::path::Path) -> Result<(script::Script, plan::Plan), script::ScriptError> {
    let script = script::load(path)?;
    validate::validate(&script.lab).map_err(script::ScriptError::Invalid)?;
    let plan = plan::plan(&script.lab);
    Ok((script, plan))
}
