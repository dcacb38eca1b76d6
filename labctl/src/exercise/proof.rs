//! The author's and the teacher's runs, one exercise or submission at a
//! time, meant to run inside a [`crate::sandbox`]: `verify` proves an
//! exercise (unsolved, a check fails; solved, every check passes; nothing
//! left), `grade_submission` grades one learner's files and commands.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::grading::{self, BringUpError, CheckOutcome};
use super::solution::SolutionError;
use super::{solution, Files, Loaded};
use crate::apply::ApplyError;
use crate::experiment::ExperimentError;
use crate::script::ScriptError;

/// Why an exercise could not be proven or a submission graded; the text
/// lands in [`Proof::error`] / [`Grade::error`].
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    #[error(transparent)]
    Load(Box<ScriptError>),
    #[error("cannot build lab {lab}: {source}")]
    Build { lab: String, source: Box<BringUpError> },
    #[error(transparent)]
    Grade(Box<ExperimentError>),
    #[error("cannot take lab {lab} down: {source}")]
    Down { lab: String, source: Box<ApplyError> },
    #[error(transparent)]
    Solution(Box<SolutionError>),
    #[error("{COMMANDS} exited {status}: {output}")]
    Commands { status: i32, output: String },
}

/// What `verify` found for one exercise.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Proof {
    pub id: String,
    /// Names of the checks that failed with the lab unsolved.
    pub failing_unsolved: Vec<String>,
    pub checks: usize,
    /// Checks that failed with the reference solution applied, and why.
    pub failing_solved: Vec<(String, Vec<String>)>,
    /// What was left behind after the lab went down.
    pub leftovers: Vec<String>,
    /// The exercise could not be loaded, built or solved.
    pub error: Option<String>,
}

impl Proof {
    pub fn ok(&self) -> bool {
        self.error.is_none()
            && !self.failing_unsolved.is_empty()
            && self.failing_solved.is_empty()
            && self.leftovers.is_empty()
    }
}

/// One submission's grade.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Grade {
    pub submission: String,
    pub passed: usize,
    pub total: usize,
    /// Failing checks with their evidence.
    pub failing: Vec<(String, Vec<String>)>,
    /// The submission could not be built or its commands failed.
    pub error: Option<String>,
}

fn failures(outcomes: &[CheckOutcome]) -> Vec<(String, Vec<String>)> {
    outcomes.iter().filter(|o| !o.passed).map(|o| (o.name.clone(), o.evidence.clone())).collect()
}

// The sources are boxed: a lab's errors are large, and this one travels far.
macro_rules! boxed_from {
    ($($source:ty => $variant:ident),*) => {$(
        impl From<$source> for ProofError {
            fn from(source: $source) -> Self {
                ProofError::$variant(Box::new(source))
            }
        }
    )*};
}
boxed_from!(ScriptError => Load, ExperimentError => Grade, SolutionError => Solution);

/// Brings the lab of `loaded` up, runs `fix`, grades, takes it down. A lab
/// that does not come up with edited files fails as [`grading::not_built`].
fn up_fix_grade(
    loaded: &Loaded,
    fix: impl FnOnce() -> Result<(), ProofError>,
) -> Result<Vec<CheckOutcome>, ProofError> {
    let lab = loaded.script.lab.name.clone();
    match grading::bring_up(loaded) {
        Err(e) if !loaded.exercise.spec.edit.is_empty() => return Ok(vec![grading::not_built(&e)]),
        Err(source) => return Err(ProofError::Build { lab, source: Box::new(source) }),
        Ok(()) => {}
    }
    let graded = fix().and_then(|()| Ok(grading::grade(loaded)?));
    let down =
        grading::take_down(&lab).map_err(|source| ProofError::Down { lab: lab.clone(), source: Box::new(source) });
    let graded = graded?;
    down?;
    Ok(graded)
}

/// Proves the exercise in `dir`.
pub fn verify(dir: &Path) -> Proof {
    let mut proof = Proof { id: super::id_of(dir), ..Proof::default() };
    let before = leftovers();
    if let Err(error) = verify_into(dir, &mut proof) {
        proof.error = Some(error.to_string());
    }
    proof.leftovers = leftovers().into_iter().filter(|l| !before.contains(l)).collect();
    proof
}

fn verify_into(dir: &Path, proof: &mut Proof) -> Result<(), ProofError> {
    let unsolved = super::load(dir, &Files::Starter)?;
    proof.checks = unsolved.exercise.spec.checks.len();
    let graded = up_fix_grade(&unsolved, || Ok(()))?;
    proof.failing_unsolved = grading::failing(&graded);
    drop(unsolved);
    let solved = super::load(dir, &Files::Solved)?;
    let graded = up_fix_grade(&solved, || Ok(solution::apply(&solved)?))?;
    proof.failing_solved = failures(&graded);
    Ok(())
}

/// Grades `submission` (a folder of edited files and/or `commands.sh`) for
/// the exercise in `dir`.
pub fn grade_submission(dir: &Path, submission: &Path) -> Grade {
    let name = submission.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut grade = Grade { submission: name, ..Grade::default() };
    match super::load(dir, &Files::Learner(submission.to_path_buf())) {
        Err(e) => grade.error = Some(e.to_string()),
        Ok(loaded) => {
            grade.total = loaded.exercise.spec.checks.len();
            let commands = submission.join(COMMANDS);
            let lab = loaded.script.lab.name.clone();
            let fix = || match commands.is_file() {
                false => Ok(()),
                true => match solution::run_script(&commands, &lab, submission)? {
                    run if run.status != 0 => {
                        Err(ProofError::Commands { status: run.status, output: run.output.trim().to_string() })
                    }
                    _ => Ok(()),
                },
            };
            match up_fix_grade(&loaded, fix) {
                Ok(outcomes) if outcomes.iter().any(|o| o.name == grading::NOT_BUILT) => {
                    grade.failing = failures(&outcomes);
                }
                Ok(outcomes) => {
                    grade.passed = outcomes.iter().filter(|o| o.passed).count();
                    grade.failing = failures(&outcomes);
                }
                Err(e) => grade.error = Some(e.to_string()),
            }
        }
    }
    relative_to(&mut grade, submission);
    grade
}

/// Paths inside the submission as the learner knows them (`prog.c:58:4`),
/// so the same submission grades the same wherever it lies.
fn relative_to(grade: &mut Grade, submission: &Path) {
    let prefix = format!("{}/", std::path::absolute(submission).unwrap_or_else(|_| submission.into()).display());
    let strip = |text: &mut String| *text = text.replace(&prefix, "");
    grade.error.iter_mut().for_each(strip);
    grade.failing.iter_mut().flat_map(|(_, evidence)| evidence.iter_mut()).for_each(strip);
}

/// The file of fixes a submission may hold.
pub const COMMANDS: &str = "commands.sh";

/// The sub-folders of `dir`, sorted: one submission each.
pub fn submissions(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> =
        std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
    found.sort();
    Ok(found)
}

/// Namespaces, lab state and pins there now (inside a sandbox, any that
/// were not there at the start were the exercise's).
fn leftovers() -> Vec<String> {
    let mut left = Vec::new();
    for dir in ["/run/netns", "/sys/fs/bpf"] {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            left.push(format!("{dir}/{}", entry.file_name().to_string_lossy()));
        }
    }
    left.extend(crate::apply::state::LabState::list().into_iter().map(|lab| format!("lab state of {lab}")));
    left
}
