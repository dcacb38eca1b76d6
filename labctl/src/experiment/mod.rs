//! Experiments: the functions a lab script declares with `experiment(...)`,
//! run against the live lab. They produce snapshots (compared later by the
//! snapshot stage) and expectation failures, each with its script line.

mod chart;
mod command;
mod ipsec;
mod observe;
mod render;
mod runtime;
mod stamps;
mod tolerance;
mod trace;
mod xdp;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mlua::{HookTriggers, VmState};
use serde::Serialize;

use crate::apply::netns;
use crate::diag::{Diagnostic, Origin};
use crate::model::Experiment;
use crate::script::Script;
use runtime::{Runtime, Shared};

/// A snapshot an experiment took: `x:snapshot(name, value)`.
#[derive(Debug, Clone, Serialize)]
pub struct Taken {
    pub name: String,
    pub origin: Origin,
    pub contents: String,
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
    let shared =
        Arc::new(Mutex::new(Shared { lab: script.lab.clone(), netns, artifacts, taken: vec![], failed: vec![] }));
    let runtime = Runtime(shared.clone());
    let lua = &script.lua;

    // Ctrl-C stops the experiment at the next Lua instruction batch.
    let _ = lua.set_hook(HookTriggers::new().every_nth_instruction(10_000), |_, _| {
        if crate::apply::interrupted() {
            return Err(mlua::Error::runtime("interrupted"));
        }
        Ok(VmState::Continue)
    });
    let error = match function {
        None => Some(Diagnostic::new(experiment.origin.clone(), "experiment function is missing")),
        Some(function) => function.call::<()>(runtime).err().map(|e| script.diagnostic(&e, experiment.origin.clone())),
    };
    lua.remove_hook();
    let shared = shared.lock().expect("runtime lock");
    ExperimentResult {
        name: experiment.name.clone(),
        origin: experiment.origin.clone(),
        taken: shared.taken.clone(),
        failed: shared.failed.clone(),
        error,
        duration: started.elapsed(),
    }
}
