//! Exercises: a lab brought up in a broken state, a task for the learner,
//! tiered hints, and checks that grade the live lab with the same `x` API as
//! experiments, so they can tell *how* it was fixed (drop reasons, per-CPU
//! counters, XDP maps, captures), not only whether traffic flows.
//!
//! An exercise is a folder `labs/exercises/<part>/<name>/` holding
//! `exercise.lua` (a lab script plus `exercise {}` and `check()`), the
//! starter copies of the files a learner edits under `starter/`, and the
//! solved copies under `solution/`.

pub mod catalog;
pub mod grading;
pub mod progress;
pub mod proof;
pub mod solution;
mod vocabulary;
pub mod workdir;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::diag::{Diagnostic, Diagnostics, Origin};
use crate::script::{Script, ScriptError};

/// The file of an exercise inside its folder.
pub const FILE: &str = "exercise.lua";
/// The folders of the starter and solved copies of edited files.
pub const STARTER: &str = "starter";
pub const SOLVED: &str = "solution";

/// What `exercise { ... }` and the `check()` calls declared.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Spec {
    pub title: String,
    pub task: String,
    /// General hints, nudge first; each check may add its own.
    pub hints: Vec<String>,
    /// Files the learner edits (names inside the working folder).
    pub edit: Vec<String>,
    /// Commands run in nodes once the lab is up, to break it further than
    /// the lab vocabulary can (firewall rules, ...).
    pub setup: Vec<SolutionCommand>,
    /// The reference solution's commands, run in nodes in order.
    pub commands: Vec<SolutionCommand>,
    pub checks: Vec<CheckSpec>,
    pub origin: Origin,
}

#[derive(Debug, Clone, Serialize)]
pub struct SolutionCommand {
    pub node: String,
    pub argv: Vec<String>,
    pub origin: Origin,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckSpec {
    pub name: String,
    pub hints: Vec<String>,
    pub origin: Origin,
}

/// Where `edited("file")` points while the exercise file is read.
#[derive(Debug, Clone)]
pub enum Files {
    /// The starter copies: the broken state.
    Starter,
    /// The solved copies (starter where a file has none).
    Solved,
    /// A learner's folder (starter where a file is missing).
    Learner(PathBuf),
}

/// One exercise, found on disk.
#[derive(Debug, Clone, Serialize)]
pub struct Exercise {
    /// `part2/rp-filter`.
    pub id: String,
    pub dir: PathBuf,
    pub spec: Spec,
    pub lab: String,
}

/// An exercise read with its lab script, ready to be brought up and graded.
pub struct Loaded {
    pub exercise: Exercise,
    pub script: Script,
}

impl Exercise {
    pub fn file(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    pub fn starter(&self, name: &str) -> PathBuf {
        self.dir.join(STARTER).join(name)
    }

    /// The solved copy of `name`, if the exercise has one.
    pub fn solved(&self, name: &str) -> Option<PathBuf> {
        Some(self.dir.join(SOLVED).join(name)).filter(|p| p.is_file())
    }

    /// Every hint in the order `hint` gives them: the hints of `failing`
    /// checks first (in check order), then the general ones.
    pub fn hints_for(&self, failing: &[String]) -> Vec<String> {
        let checks = self.spec.checks.iter().filter(|c| failing.contains(&c.name));
        let mut hints: Vec<String> = checks.flat_map(|c| c.hints.iter().cloned()).collect();
        let rest = self.spec.checks.iter().filter(|c| !failing.contains(&c.name)).flat_map(|c| c.hints.iter());
        for hint in self.spec.hints.iter().chain(rest) {
            if !hints.contains(hint) {
                hints.push(hint.clone());
            }
        }
        hints
    }
}

/// The exercise id of a folder `.../<part>/<name>/`.
pub fn id_of(dir: &Path) -> String {
    let name = |p: Option<&Path>| p.and_then(Path::file_name).map(|n| n.to_string_lossy().into_owned());
    match (name(dir.parent()), name(Some(dir))) {
        (Some(part), Some(name)) => format!("{part}/{name}"),
        (_, name) => name.unwrap_or_default(),
    }
}

/// Reads the exercise in `dir` with `edited()` pointing into `files`.
/// Mistakes come back as diagnostics with file:line, before anything exists.
pub fn load(dir: &Path, files: &Files) -> Result<Loaded, ScriptError> {
    let file = dir.join(FILE);
    let script = crate::script::load_extended(&file, &|lua| vocabulary::register(lua, dir, files))?;
    let spec = vocabulary::take(&script.lua, &file)?;
    crate::validate::validate(&script.lab).map_err(ScriptError::Invalid)?;
    let problems = vocabulary::check_against_lab(&spec, &script.lab, dir);
    if !problems.is_empty() {
        return Err(ScriptError::Invalid(Diagnostics(problems)));
    }
    let exercise = Exercise { id: id_of(dir), dir: dir.to_path_buf(), lab: script.lab.name.clone(), spec };
    Ok(Loaded { exercise, script })
}

fn diagnostic(origin: &Origin, message: impl Into<String>, help: impl Into<String>) -> Diagnostic {
    Diagnostic::new(origin.clone(), message).help(help)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise() -> Exercise {
        let check = |name: &str, hint: &str| CheckSpec {
            name: name.into(),
            hints: vec![hint.into()],
            origin: Origin::default(),
        };
        let spec = Spec {
            hints: vec!["general".into()],
            checks: vec![check("first", "about first"), check("second", "about second")],
            ..Spec::default()
        };
        Exercise { id: "part2/rp-filter".into(), dir: PathBuf::from("x"), spec, lab: "ex".into() }
    }

    #[test]
    fn the_failing_checks_hints_come_first() {
        let hints = exercise().hints_for(&["second".to_string()]);
        assert_eq!(hints, ["about second", "general", "about first"]);
    }

    #[test]
    fn with_nothing_failing_general_hints_come_first() {
        assert_eq!(exercise().hints_for(&[]), ["general", "about first", "about second"]);
    }

    #[test]
    fn an_exercise_is_named_by_its_last_two_folders() {
        assert_eq!(id_of(Path::new("labs/exercises/part2/rp-filter")), "part2/rp-filter");
    }
}
