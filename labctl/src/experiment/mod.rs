//! Experiments: the functions a lab script declares with `experiment(...)`,
//! run against the live lab. They produce snapshots (compared later by the
//! snapshot stage) and expectation failures, each with its script line.

mod api;
mod chart;
mod command;
mod counters;
mod host_sysctl;
mod ipsec;
mod limit;
mod observe;
mod options;
mod render;
mod results;
mod runtime;
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

/// What an experiment's objects offer, for "did you mean" on a misspelt method.
const METHODS: crate::script::Methods = &[
    ("a node (x.h1)", &["run", "ping", "udp", "tcp", "blast"]),
    (
        "x",
        &[
            "snapshot",
            "expect",
            "expect_eq",
            "sleep",
            "counters",
            "delta",
            "neighbours",
            "routes",
            "rules",
            "fdb",
            "capture",
            "drops",
            "path",
            "host_sysctl",
            "chart",
            "ipsec",
            "ipsec_stop",
            "ipsec_start",
            "xdp",
            "xdp_attach",
            "xdp_detach",
            "xdp_events",
            "map",
            "map_set",
            "map_delete",
            "ifindex",
            "mac",
        ],
    ),
];

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
    let error = call_under_limit(script, experiment, function, runtime.clone(), &limit);
    let (taken, failed) = runtime.results();
    ExperimentResult {
        name: experiment.name.clone(),
        origin: experiment.origin.clone(),
        taken,
        failed,
        error,
        duration: started.elapsed(),
    }
}

/// Calls the experiment's function with `x`, stopping it on Ctrl-C or at
/// its time limit (a hook every 10,000 Lua instructions); its error, if any.
fn call_under_limit(
    script: &Script,
    experiment: &Experiment,
    function: Option<mlua::Function>,
    x: Runtime,
    limit: &Arc<Limit>,
) -> Option<Diagnostic> {
    let lua = &script.lua;
    let hook_limit = limit.clone();
    let _ = lua.set_hook(HookTriggers::new().every_nth_instruction(10_000), move |lua, _| {
        hook_limit.check().map(|()| VmState::Continue).inspect_err(|_| crate::script::set_stopped(lua, true))
    });
    let result = match function {
        None => Err(Diagnostic::new(experiment.origin.clone(), "experiment function is missing")),
        Some(function) => function.call::<()>(x).map_err(|e| script.diagnostic(&e, experiment.origin.clone(), METHODS)),
    };
    lua.remove_hook();
    crate::script::set_stopped(lua, false);
    match result {
        Ok(()) => None,
        Err(_) if limit.reached() => Some(time_limit(experiment, limit.timeout)),
        Err(diagnostic) => Some(diagnostic),
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
