//! A lab session for `test` and `run`: build the lab, run its experiments,
//! and always tear it down again (also on failure and Ctrl-C).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use labctl::apply;
use labctl::experiment::{self, ExperimentResult};
use labctl::script::Script;

use super::{absolute, Failure};

/// What one lab file gave.
pub struct LabOutcome {
    pub script: Option<Script>,
    /// The lab could not be loaded or built: nothing ran.
    pub setup_error: Option<String>,
    pub results: Vec<ExperimentResult>,
    pub up_time: Duration,
    pub interrupted: bool,
}

/// The lab scripts named by `paths`: files as given, folders searched
/// recursively for `*.lua` (sorted, so runs are in a stable order).
pub fn lab_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Failure> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found = Vec::new();
            collect_lua(path, &mut found)
                .map_err(|e| Failure::bad_input(anyhow!("cannot read {}: {e}", path.display())))?;
            found.sort();
            files.extend(found);
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            return Err(Failure::bad_input(anyhow!("{}: no such file or folder", path.display())));
        }
    }
    Ok(files)
}

fn collect_lua(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_lua(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "lua") {
            out.push(path);
        }
    }
    Ok(())
}

/// Builds the lab of `file`, runs the experiments `filter` selects (all if
/// None), and tears the lab down. `on_result` sees each result as it comes.
pub fn run_lab(
    file: &Path,
    filter: Option<&str>,
    artifacts: Option<&Path>,
    params: &labctl::script::Params,
    on_result: &mut dyn FnMut(&Script, &ExperimentResult),
) -> LabOutcome {
    let mut outcome =
        LabOutcome { script: None, setup_error: None, results: vec![], up_time: Duration::ZERO, interrupted: false };
    let (script, plan) = match labctl::load_and_plan_with(file, params) {
        Ok(loaded) => loaded,
        Err(e) => {
            outcome.setup_error = Some(e.to_string());
            return outcome;
        }
    };
    apply::catch_interrupts();
    let started = Instant::now();
    if let Err(e) = apply::up(&script.lab, &absolute(file), &plan, &|_, _| {}) {
        outcome.setup_error = Some(format!("cannot build lab {}: {e}", script.lab.name));
        // Ctrl-C during `up`: rolled back, and the run ends as interrupted (130).
        outcome.interrupted = apply::interrupted();
        outcome.script = Some(script);
        return outcome;
    }
    outcome.up_time = started.elapsed();
    match experiment::open_nodes(&script) {
        Err(e) => outcome.setup_error = Some(e.to_string()),
        Ok(nodes) => {
            for exp in script.lab.experiments.iter().filter(|e| filter.is_none_or(|f| f == e.name)) {
                let dir = artifacts.map(|a| a.join(&exp.name));
                let result = experiment::run(&script, exp, &nodes, dir);
                on_result(&script, &result);
                outcome.results.push(result);
                if apply::interrupted() {
                    outcome.interrupted = true;
                    break;
                }
            }
        }
    }
    if let Err(e) = apply::down(&script.lab.name) {
        eprintln!("labctl: could not remove lab {}: {e}; run `labctl down {}`", script.lab.name, script.lab.name);
    }
    outcome.interrupted |= apply::interrupted();
    outcome.script = Some(script);
    outcome
}
