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
pub mod script;
pub mod snapshot;
pub mod traffic;
pub mod validate;

/// Reads, validates and plans a lab script: everything `up` does before it
/// touches the kernel. Needs no privileges.
pub fn load_and_plan(path: &std::path::Path) -> Result<(script::Script, plan::Plan), script::ScriptError> {
    load_and_plan_with(path, &script::Params::new())
}

/// [`load_and_plan`] with `--set` parameters for the script's `param()` calls.
pub fn load_and_plan_with(
    path: &std::path::Path,
    params: &script::Params,
) -> Result<(script::Script, plan::Plan), script::ScriptError> {
    let script = script::load_with(path, params)?;
    validate::validate(&script.lab).map_err(script::ScriptError::Invalid)?;
    let plan = plan::plan(&script.lab);
    Ok((script, plan))
}
