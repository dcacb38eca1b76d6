//! labctl: reproducible Linux network labs from Lua scripts.
//!
//! The modules follow the pipeline, each talking only to the next:
//!
//! ```text
//! script -> model -> validate -> plan -> apply -> experiment -> snapshot
//!                                                 (traffic, observe)
//! ```
//!
//! - `script`: the sandboxed Lua that declares a lab; `model`: the lab as
//!   plain data; `validate`: every user mistake, before the kernel;
//!   `plan`: the ordered kernel steps, pure.
//! - `apply`: the only code that configures the kernel (netlink, syscalls),
//!   journaled so `down` and rollback remove everything.
//! - `experiment`: the runtime of `experiment(...)` functions, built on
//!   `traffic` (ping, flows, the load generator) and `observe` (counters,
//!   captures, drop reasons, XDP maps).
//! - `snapshot`: results compared with committed insta-format snapshots.
//! - `bpf`: compiling and loading BPF programs, for apply (XDP) and observe
//!   (drop tracing). `diag`: errors with file:line, shared by the first stages.

pub mod apply;
pub mod bpf;
pub mod diag;
pub mod experiment;
pub mod model;
pub mod observe;
pub mod plan;
pub mod sandbox;
pub mod script;
pub mod snapshot;
pub mod traffic;
pub mod validate;

/// Reads, validates and plans a lab script: everything `up` does before it
/// touches the kernel. Needs no privileges.
pub fn load_and_plan(path: &std::path::Path) -> Result<(script::Script, plan::Plan), script::ScriptError> {
    load_and_plan_as(path, None)
}

/// `load_and_plan` with the lab renamed to `name` when given (`up --name`):
/// namespaces, MACs and state follow the name, so one file can be up twice.
/// The caller checks the name (`validate::check_lab_name`).
pub fn load_and_plan_as(
    path: &std::path::Path,
    name: Option<&str>,
) -> Result<(script::Script, plan::Plan), script::ScriptError> {
    let mut script = script::load(path)?;
    if let Some(name) = name {
        script.lab.name = name.to_string();
    }
    validate::validate(&script.lab).map_err(script::ScriptError::Invalid)?;
    let plan = plan::plan(&script.lab);
    Ok((script, plan))
}
