//! labctl: reproducible Linux network labs from Lua scripts.
//!
//! The pipeline, one direction:
//!
//! ```text
//! script -> model -> validate -> plan -> apply -> experiment -> snapshot
//! ```
//!
//! and the layers the files sit in, lowest first. A file uses its own layer
//! and those below, never one above, and no files use each other around a
//! loop (tests/layers.rs checks both; ARCHITECTURE.md has the walk-through
//! of one call and which files each kind of extension touches):
//!
//! | layer | modules | rule |
//! |---|---|---|
//! | foundation | [`diag`] | errors with file:line; imports nothing of labctl |
//! | data | [`model`], [`plan`] | plain data, pure functions; [`model::layout`] owns every runtime path |
//! | front end | [`script`], [`validate`] | Lua in, model out; every user mistake is a diagnostic, before the kernel |
//! | kernel access | [`sys`], [`bpf`] | namespaces, sandboxes, socket options, bpffs, turns on the machine between labs, BPF loading: names and fds, no lab vocabulary |
//! | actions | [`apply`], [`observe`], [`traffic`] | configure (journaled), read, send |
//! | orchestration | [`experiment`], [`exercise`], [`snapshot`], this file, the CLI | run the stages in order; anyhow only in the CLI |
//!
//! Product C and Lua sit beside the Rust that embeds them (`bpf/*.bpf.c`,
//! `script/lua/*.lua`); `fixtures/` holds samples and test inputs only.

pub mod apply;
pub mod bpf;
pub mod diag;
pub mod exercise;
pub mod experiment;
pub mod model;
pub mod observe;
pub mod plan;
pub mod script;
pub mod snapshot;
pub mod sys;
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
    load_and_plan_named(path, params, None)
}

/// [`load_and_plan_with`], the lab renamed to `name` when given (`up
/// --name`): namespaces, MACs and state follow the name, so one file can be
/// up twice. The caller checks the name (`validate::check_lab_name`).
pub fn load_and_plan_named(
    path: &std::path::Path,
    params: &script::Params,
    name: Option<&str>,
) -> Result<(script::Script, plan::Plan), script::ScriptError> {
    // Validation runs even when some script calls were wrong (every mistake
    // at once), on the lab as it will be named: namespace names follow it.
    let named = |lab: &model::Lab| model::Lab { name: name.unwrap_or(&lab.name).to_string(), ..lab.clone() };
    let mut script = script::load_with(path, params, |lab| match name {
        Some(_) => validate::validate(&named(lab)).err().map_or_else(Vec::new, |d| d.0),
        None => validate::validate(lab).err().map_or_else(Vec::new, |d| d.0),
    })?;
    if let Some(name) = name {
        script.lab.name = name.to_string();
    }
    let plan = plan::plan(&script.lab);
    Ok((script, plan))
}
