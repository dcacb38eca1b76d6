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
    /// The exit status that setup error means, as `up` would exit with it
    /// (2 for a mistake in the lab, its C among it).
    pub setup_status: u8,
    pub results: Vec<ExperimentResult>,
    pub up_time: Duration,
    pub interrupted: bool,
}

impl LabOutcome {
    fn empty() -> Self {
        LabOutcome {
            script: None,
            setup_error: None,
            setup_status: super::EXIT_FAILURE,
            results: vec![],
            up_time: Duration::ZERO,
            interrupted: false,
        }
    }

    /// A lab refused before anything was built.
    pub fn refused(error: String) -> Self {
        LabOutcome { setup_error: Some(error), ..LabOutcome::empty() }
    }
}

/// The lab scripts named by `paths`: files as given, folders searched
/// recursively for `*.lua` (sorted, so runs are in a stable order) but for
/// helper modules, which declare no lab or node when read on their own.
pub fn lab_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Failure> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found = Vec::new();
            collect_lua(path, &mut found)
                .map_err(|e| Failure::bad_input(anyhow!("cannot read {}: {e}", path.display())))?;
            found.sort();
            files.extend(found.into_iter().filter(|f| !is_helper_module(f)));
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            return Err(Failure::bad_input(anyhow!("{}: no such file or folder", path.display())));
        }
    }
    Ok(files)
}

/// A `.lua` file that reads without error and declares nothing: a module
/// labs `require`. (A file with errors is reported as a lab, with them.)
fn is_helper_module(file: &Path) -> bool {
    labctl::script::load(file).is_ok_and(|script| !script.declares_a_lab)
}

fn collect_lua(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    // An exercise's folder is proven by `labctl exercise verify`, not tested as labs.
    if dir.join(labctl::exercise::FILE).is_file() {
        return Ok(());
    }
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

/// A lab that loaded, planned and passed every check that needs no kernel:
/// what `run` and `test` verify before they create anything (a run folder,
/// a namespace).
pub struct Prepared {
    file: PathBuf,
    script: Script,
    plan: labctl::plan::Plan,
    filter: Option<String>,
}

/// Loads and plans `file`, and refuses (exit 2, with a help line) a lab that
/// is already up or an experiment name it does not declare.
pub fn prepare(file: &Path, filter: Option<&str>, params: &labctl::script::Params) -> Result<Prepared, Failure> {
    let (script, plan) = labctl::load_and_plan_with(file, params)?;
    let name = &script.lab.name;
    if apply::state::LabState::open(name).is_some() {
        return Err(apply::ApplyError::AlreadyRunning(name.clone()).into());
    }
    if let Some(wanted) = filter {
        if !script.lab.experiments.iter().any(|e| e.name == wanted) {
            return Err(unknown_experiment(wanted, &[(file, &script)]));
        }
    }
    Ok(Prepared { file: file.to_path_buf(), script, plan, filter: filter.map(str::to_string) })
}

/// `no experiment "nosuch" in labs/part1.lua`, with the closest name and the list.
pub fn unknown_experiment(wanted: &str, labs: &[(&Path, &Script)]) -> Failure {
    let names: Vec<&str> = labs.iter().flat_map(|(_, s)| s.lab.experiments.iter().map(|e| e.name.as_str())).collect();
    let files: Vec<String> = labs.iter().map(|(f, _)| f.display().to_string()).collect();
    let error = anyhow!("no experiment named {wanted:?} in {}", files.join(", "));
    let help = match (labctl::diag::closest(wanted, names.iter().copied()), names.is_empty()) {
        (_, true) => "the lab declares no experiments".to_string(),
        (Some(near), _) => format!("did you mean {near:?}? experiments: {}", names.join(", ")),
        (None, _) => format!("experiments: {}", names.join(", ")),
    };
    Failure::bad_input(error).help(help)
}

impl Prepared {
    /// Runs only the experiment `filter` names (all if None); unlike
    /// [`prepare`]'s filter, a lab without it simply runs nothing.
    pub fn only(mut self, filter: Option<&str>) -> Self {
        self.filter = filter.map(str::to_string);
        self
    }

    /// Builds the lab, runs the selected experiments and tears the lab down
    /// again, also when an experiment panics or the run is interrupted.
    /// `on_result` sees each result as it comes.
    pub fn run(self, artifacts: Option<&Path>, on_result: &mut dyn FnMut(&Script, &ExperimentResult)) -> LabOutcome {
        let Prepared { file, script, plan, filter } = self;
        let mut outcome = LabOutcome::empty();
        apply::catch_interrupts();
        let started = Instant::now();
        if let Err(e) = apply::up(&script.lab, &absolute(&file), &plan, &|_, _| {}) {
            outcome.setup_error = Some(format!("cannot build lab {}: {e}", script.lab.name));
            outcome.setup_status = super::apply_status(&e);
            // Ctrl-C during `up`: rolled back, and the run ends as interrupted (130).
            outcome.interrupted = apply::interrupted();
            outcome.script = Some(script);
            return outcome;
        }
        let built = Built(script.lab.name.clone());
        outcome.up_time = started.elapsed();
        match experiment::open_nodes(&script) {
            Err(e) => outcome.setup_error = Some(e.to_string()),
            Ok(nodes) => {
                for exp in script.lab.experiments.iter().filter(|e| filter.as_deref().is_none_or(|f| f == e.name)) {
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
        drop(built);
        outcome.interrupted |= apply::interrupted();
        outcome.script = Some(script);
        outcome
    }
}

/// A lab this session built: dropping it (at the end of the run, or while a
/// panic unwinds) tears the lab down.
struct Built(String);

impl Drop for Built {
    fn drop(&mut self) {
        if let Err(e) = apply::down(&self.0) {
            eprintln!("labctl: could not remove lab {}: {e}; run `labctl down {}`", self.0, self.0);
        }
    }
}
