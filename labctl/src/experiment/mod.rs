//! Experiments: the functions a lab script declares with `experiment(...)`,
//! run against the live lab. They produce snapshots (compared later by the
//! snapshot stage) and expectation failures, each with its script line.

mod api;
mod background;
mod chart;
mod command;
mod counters;
mod host_sysctl;
mod impair;
mod ipsec;
mod limit;
mod methods;
mod observe;
mod options;
mod render;
mod results;
mod runtime;
mod send;
mod spawn;
mod tolerance;
mod trace;
mod traces;
mod traffic;
mod xdp;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mlua::{HookTriggers, VmState};
use serde::Serialize;

use crate::diag::{Diagnostic, Origin};
use crate::model::Experiment;
use crate::script::Script;
use crate::sys::netns;
use limit::{Limit, DEFAULT_TIMEOUT};
use runtime::Runtime;

/// A snapshot an experiment took: `x:snapshot(name, value)`.
#[derive(Debug, Clone, Serialize)]
pub struct Taken {
    pub name: String,
    pub origin: Origin,
    /// What the snapshot compares: tolerances as `in [lo, hi]`.
    pub contents: String,
    /// The same with each tolerance's measured value beside it
    /// (`in [0.95, 1] (measured 0.98)`), for `labctl run`; None when there
    /// is no tolerance in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured: Option<String>,
}

/// An `x:expect(...)` that did not hold.
#[derive(Debug, Clone, Serialize)]
pub struct Expectation {
    pub origin: Origin,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExperimentResult {
    pub name: String,
    pub origin: Origin,
    pub taken: Vec<Taken>,
    pub failed: Vec<Expectation>,
    /// The experiment stopped with a Lua error (or was interrupted).
    pub error: Option<Diagnostic>,
    /// That error is bad input (an unknown option or a wrong option value
    /// of an `x:` method): exit 2, like a mistake in the lab.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub bad_input: bool,
    pub duration: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error("cannot open the namespace of node {node}: {source}")]
    Netns { node: String, source: netns::NetnsError },
}

/// The namespaces of a running lab's nodes, by node name.
pub fn open_nodes(script: &Script) -> Result<BTreeMap<String, File>, ExperimentError> {
    let lab = &script.lab;
    lab.nodes
        .iter()
        .map(|n| {
            netns::open(&lab.netns_name(&n.name))
                .map(|f| (n.name.clone(), f))
                .map_err(|source| ExperimentError::Netns { node: n.name.clone(), source })
        })
        .collect()
}

/// Runs one experiment of `script` against the running lab. Never panics on
/// a script error: the error is part of the result.
pub fn run(
    script: &Script,
    experiment: &Experiment,
    nodes: &BTreeMap<String, File>,
    artifacts: Option<PathBuf>,
) -> ExperimentResult {
    let function = script.experiment(&experiment.name);
    run_function(script, experiment, function, nodes, artifacts)
}

/// Runs `function` (an experiment's, or any function of the script taking
/// `x`, like an exercise's check) as the experiment `experiment`.
pub fn run_function(
    script: &Script,
    experiment: &Experiment,
    function: Option<mlua::Function>,
    nodes: &BTreeMap<String, File>,
    artifacts: Option<PathBuf>,
) -> ExperimentResult {
    let started = Instant::now();
    let netns = nodes.iter().filter_map(|(k, f)| f.try_clone().ok().map(|f| (k.clone(), f))).collect();
    let limit = Arc::new(Limit::new(experiment.timeout.unwrap_or(DEFAULT_TIMEOUT)));
    let runtime = Runtime::new(script.lab.clone(), netns, artifacts, limit.clone());
    let stopped = call_under_limit(script, experiment, function, runtime.clone(), &limit);
    runtime.stop_spawned();
    let bad_input = stopped.as_ref().is_some_and(|(_, bad)| *bad);
    let mut error = stopped.map(|(diagnostic, _)| diagnostic);
    // Changes made for the experiment's length (x:impair) go back, pass or fail.
    if let Err(e) = runtime.finish() {
        let undo = script.diagnostic(&e, experiment.origin.clone(), methods::methods());
        error.get_or_insert(undo);
    }
    let (taken, failed) = runtime.results();
    ExperimentResult {
        name: experiment.name.clone(),
        origin: experiment.origin.clone(),
        taken,
        failed,
        error,
        bad_input,
        duration: started.elapsed(),
    }
}

/// Calls the experiment's function with `x`, stopping it on Ctrl-C or at
/// its time limit (a hook every 10,000 Lua instructions); its error, if any,
/// and whether that error is bad input.
fn call_under_limit(
    script: &Script,
    experiment: &Experiment,
    function: Option<mlua::Function>,
    x: Runtime,
    limit: &Arc<Limit>,
) -> Option<(Diagnostic, bool)> {
    let lua = &script.lua;
    let hook_limit = limit.clone();
    let _ = lua.set_hook(HookTriggers::new().every_nth_instruction(10_000), move |lua, _| {
        hook_limit.check().map(|()| VmState::Continue).inspect_err(|_| crate::script::set_stopped(lua, true))
    });
    let result = match function {
        None => Err((Diagnostic::new(experiment.origin.clone(), "experiment function is missing"), false)),
        Some(function) => function.call::<()>(x).map_err(|e| {
            (script.diagnostic(&e, experiment.origin.clone(), methods::methods()), options::is_bad_argument(&e))
        }),
    };
    lua.remove_hook();
    crate::script::set_stopped(lua, false);
    match result {
        Ok(()) => None,
        Err(_) if limit.reached() => Some((time_limit(experiment, limit.timeout), false)),
        Err(stopped) => Some(stopped),
    }
}

/// The error of an experiment stopped by its time limit, at its own line.
fn time_limit(experiment: &Experiment, timeout: Duration) -> Diagnostic {
    let name = &experiment.name;
    Diagnostic::new(
        experiment.origin.clone(),
        format!("experiment {name:?} ran past its time limit of {} and was stopped", humantime::format_duration(timeout)),
    )
    .help(format!(
        "give it more time with experiment({name:?}, function(x) ... end, {{ timeout = \"10m\" }}), or look for a loop or command that does not end"
    ))
}
