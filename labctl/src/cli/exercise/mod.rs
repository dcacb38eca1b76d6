//! `labctl exercise ...`: self-paced exercises graded by the kernel's own
//! evidence. The learner's commands are in learner.rs and watch.rs, the
//! author's `verify` and the teacher's `grade` in verify.rs and grade.rs;
//! both run each exercise in its own sandbox (isolated.rs).

mod grade;
mod isolated;
mod learner;
mod verify;
mod watch;

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use labctl::exercise::progress::{self, Progress};
use labctl::exercise::{catalog, Files, Loaded};

use super::Failure;

#[derive(Debug, clap::Args)]
#[command(after_help = "Progress is kept in $XDG_STATE_HOME/labctl/exercises.json (~/.local/state/labctl/).")]
pub struct Args {
    /// The folder of exercises [default: labs/exercises, or $LABCTL_EXERCISES]
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Every exercise by part, with your progress
    List(learner::ListArgs),
    /// Bring an exercise's lab up in its broken state and print the task (needs root)
    Start(learner::StartArgs),
    /// Grade the exercise's live lab: one PASS/FAIL line per check; exit 0 when all pass (needs root)
    Check(learner::CheckArgs),
    /// The next hint, those of the check failing now first
    Hint(learner::IdArgs),
    /// Re-grade on every save of an edited file and every few seconds, until all pass or Ctrl-C (needs root)
    Watch(watch::Args),
    /// Rebuild the broken lab and restore the starter files (needs root)
    Reset(learner::IdArgs),
    /// Take the exercise's lab down (needs root)
    Stop,
    /// The reference solution, once the exercise is done or every hint was seen
    Solution(learner::IdArgs),
    /// Prove exercises: unsolved a check fails, solved every check passes, nothing left; each in a sandbox (needs root)
    Verify(verify::Args),
    /// Grade a folder of submissions (one sub-folder each), each in its own sandbox (needs root)
    Grade(grade::Args),
}

pub fn run(args: Args) -> Result<(), Failure> {
    let root = args.root.unwrap_or_else(catalog::default_root);
    match args.command {
        Command::List(a) => learner::list(&root, a),
        Command::Start(a) => learner::start(&root, a),
        Command::Check(a) => learner::check(&root, a),
        Command::Hint(a) => learner::hint(&root, a),
        Command::Watch(a) => watch::run(&root, a),
        Command::Reset(a) => learner::reset(&root, a),
        Command::Stop => learner::stop(),
        Command::Solution(a) => learner::solution(&root, a),
        Command::Verify(a) => verify::run(&root, a),
        Command::Grade(a) => grade::run(&root, a),
    }
}

/// The folder of exercise `id`, or a bad-input failure listing the ids.
fn exercise_dir(root: &Path, id: &str) -> Result<PathBuf, Failure> {
    catalog::find(root, id).ok_or_else(|| {
        let known = catalog::ids(root);
        Failure::bad_input(anyhow!("no exercise {id:?} under {}", root.display()))
            .help(format!("exercises: {}", if known.is_empty() { "none".into() } else { known.join(", ") }))
    })
}

fn load(dir: &Path, files: &Files) -> Result<Loaded, Failure> {
    labctl::exercise::load(dir, files).map_err(Failure::from)
}

fn progress_path() -> PathBuf {
    progress::default_path()
}

fn read_progress() -> Result<Progress, Failure> {
    Progress::load(&progress_path()).map_err(|e| Failure::new(super::EXIT_FAILURE, e))
}

fn save_progress(progress: &Progress) -> Result<(), Failure> {
    progress.save(&progress_path()).map_err(|e| Failure::new(super::EXIT_FAILURE, e))
}
