//! Grading a live exercise lab: each check runs as an experiment of the
//! exercise's script, and passes when it raised no error and every
//! `x:expect` held; the failed expectations are its evidence.

use std::collections::BTreeMap;
use std::fs::File;

use serde::Serialize;

use super::{vocabulary, Loaded};
use crate::apply::{self, ApplyError};
use crate::experiment::{self, ExperimentError};
use crate::model::Experiment;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckOutcome {
    pub name: String,
    pub passed: bool,
    /// Why it failed, in the learner's terms; empty when it passed.
    pub evidence: Vec<String>,
}

/// Runs every check of `loaded` against its running lab, in order.
pub fn grade(loaded: &Loaded) -> Result<Vec<CheckOutcome>, ExperimentError> {
    let nodes = experiment::open_nodes(&loaded.script)?;
    Ok(loaded.exercise.spec.checks.iter().map(|check| run_check(loaded, &nodes, &check.name, &check.origin)).collect())
}

fn run_check(
    loaded: &Loaded,
    nodes: &BTreeMap<String, File>,
    name: &str,
    origin: &crate::diag::Origin,
) -> CheckOutcome {
    let as_experiment = Experiment { name: name.to_string(), origin: origin.clone(), timeout: None };
    let function = vocabulary::function(&loaded.script.lua, name);
    let result = experiment::run_function(&loaded.script, &as_experiment, function, nodes, None);
    let mut evidence: Vec<String> = result.failed.iter().map(|e| e.message.clone()).collect();
    if let Some(error) = &result.error {
        evidence.push(format!("the check stopped: {} ({})", error.message, error.origin));
    }
    CheckOutcome { name: name.to_string(), passed: evidence.is_empty(), evidence }
}

/// The outcome that stands for every check when the lab does not even come
/// up with the learner's files (an XDP program the verifier refuses, a
/// tunnel that does not negotiate): the error's gist as evidence.
pub fn not_built(error: &dyn std::fmt::Display) -> CheckOutcome {
    let text = error.to_string();
    let mut lines = text.lines();
    let mut evidence: Vec<String> = lines.next().map(|l| l.chars().take(160).collect()).into_iter().collect();
    let telling =
        |l: &&str| ["error:", "failed", "UNACCEPTABLE", "NO_PROPOSAL", "refused"].iter().any(|w| l.contains(w));
    evidence.extend(lines.filter(telling).map(|l| l.trim().to_string()));
    CheckOutcome { name: NOT_BUILT.to_string(), passed: false, evidence }
}

/// The name of [`not_built`]'s outcome.
pub const NOT_BUILT: &str = "the lab comes up with your files";

/// Whether every check passed.
pub fn all_passed(outcomes: &[CheckOutcome]) -> bool {
    outcomes.iter().all(|o| o.passed)
}

/// The names of the checks that failed.
pub fn failing(outcomes: &[CheckOutcome]) -> Vec<String> {
    outcomes.iter().filter(|o| !o.passed).map(|o| o.name.clone()).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum BringUpError {
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("the exercise's setup failed (the lab was taken down): {0}")]
    Setup(super::solution::SolutionError),
}

/// Builds the exercise's lab as `loaded` declares it (broken, or with the
/// edited files it was read with), then runs its setup commands.
pub fn bring_up(loaded: &Loaded) -> Result<(), BringUpError> {
    let plan = crate::plan::plan(&loaded.script.lab);
    let file = std::path::absolute(loaded.exercise.file()).unwrap_or_else(|_| loaded.exercise.file());
    apply::up(&loaded.script.lab, &file, &plan, &|_, _| {})?;
    super::solution::set_up(loaded).map_err(|e| {
        let _ = take_down(&loaded.script.lab.name);
        BringUpError::Setup(e)
    })
}

/// Takes the exercise's lab down if it is up.
pub fn take_down(lab: &str) -> Result<(), ApplyError> {
    apply::down(lab).map(|_| ())
}

/// Whether the exercise's lab is up.
pub fn is_up(lab: &str) -> bool {
    apply::state::LabState::open(lab).is_some_and(|s| s.is_ready())
}
