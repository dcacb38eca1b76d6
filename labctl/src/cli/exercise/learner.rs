//! The learner's commands: list, start, check, hint, reset, stop, solution.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use labctl::exercise::grading::{self, CheckOutcome};
use labctl::exercise::progress::{Active, Progress, Status};
use labctl::exercise::{catalog, workdir, Exercise, Files, Loaded};
use serde::Serialize;

use super::{exercise_dir, load, read_progress, save_progress};
use crate::cli::{Failure, EXIT_FAILURE};

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Print the list as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// The exercise, e.g. part2/rp-filter
    id: String,
    /// Where to put the files you edit [default: ~/labctl-exercises/<part>/<name>]
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The exercise [default: the one started last]
    id: Option<String>,
    /// Print the results as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct IdArgs {
    /// The exercise [default: the one started last]
    id: Option<String>,
}

#[derive(Serialize)]
struct ListRow {
    id: String,
    title: String,
    status: &'static str,
}

fn status_text(status: Option<Status>) -> &'static str {
    match status {
        Some(Status::Done) => "done",
        Some(Status::Started) => "started",
        None => "not started",
    }
}

pub fn list(root: &Path, args: ListArgs) -> Result<(), Failure> {
    let progress = read_progress()?;
    let folders = catalog::folders(root)
        .map_err(|e| Failure::bad_input(anyhow!("cannot read exercises in {}: {e}", root.display())))?;
    let mut rows = Vec::new();
    for dir in &folders {
        let loaded = super::load(dir, &Files::Starter)?;
        let id = loaded.exercise.id.clone();
        rows.push(ListRow { status: status_text(progress.status(&id)), title: loaded.exercise.spec.title, id });
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows).expect("rows serialize"));
        return Ok(());
    }
    let mut part = String::new();
    for row in &rows {
        let this_part = row.id.split('/').next().unwrap_or_default().to_string();
        if this_part != part {
            println!("{this_part}");
            part = this_part;
        }
        let mark = match row.status {
            "done" => "[x]",
            "started" => "[~]",
            _ => "[ ]",
        };
        println!("  {mark} {:<26} {}", row.id, row.title);
    }
    let done = rows.iter().filter(|r| r.status == "done").count();
    println!("{} {done}/{} done", bar(done, rows.len()), rows.len());
    Ok(())
}

fn bar(done: usize, total: usize) -> String {
    const WIDTH: usize = 20;
    let filled = (done * WIDTH).checked_div(total).unwrap_or(0);
    format!("[{}{}]", "#".repeat(filled), "-".repeat(WIDTH - filled))
}

/// The id given, else the active exercise's.
fn chosen(id: Option<String>, progress: &Progress) -> Result<String, Failure> {
    id.or_else(|| progress.active.as_ref().map(|a| a.id.clone())).ok_or_else(|| {
        Failure::bad_input(anyhow!("no exercise is started"))
            .help("start one with `labctl exercise start <id>` (see `labctl exercise list`)")
    })
}

/// Brings the exercise up with the learner's files and records it active.
fn bring_up(loaded: &Loaded, work: Option<PathBuf>, progress: &mut Progress) -> Result<(), Failure> {
    if let Some(previous) = progress.active.take() {
        let lab = labctl::exercise::load(&previous.dir, &Files::Starter).map(|l| l.exercise.lab).ok();
        if let Some(lab) = lab.filter(|lab| grading::is_up(lab) && *lab != loaded.exercise.lab) {
            grading::take_down(&lab)?;
        }
    }
    grading::take_down(&loaded.exercise.lab)?;
    grading::bring_up(loaded).map_err(|e| match e {
        grading::BringUpError::Apply(e) => Failure::from(e),
        setup => Failure::new(EXIT_FAILURE, setup),
    })?;
    let built_from = work.as_deref().map(|w| workdir::fingerprint(&loaded.exercise, w)).unwrap_or_default();
    progress.active = Some(Active {
        id: loaded.exercise.id.clone(),
        dir: crate::cli::absolute(&loaded.exercise.dir),
        work,
        built_from,
    });
    progress.start(&loaded.exercise.id);
    save_progress(progress)
}

/// The working folder of an exercise with edited files, with the starters in it.
fn prepare_work(exercise: &Exercise, dir: Option<PathBuf>, overwrite: bool) -> Result<Option<PathBuf>, Failure> {
    if exercise.spec.edit.is_empty() {
        return Ok(None);
    }
    let dir = dir.unwrap_or_else(|| workdir::default_dir(&exercise.id));
    workdir::copy_starters(exercise, &dir, overwrite).map_err(|e| {
        Failure::new(EXIT_FAILURE, anyhow!("cannot copy the starter files into {}: {e}", dir.display()))
    })?;
    Ok(Some(dir))
}

fn files_of(work: &Option<PathBuf>) -> Files {
    work.clone().map_or(Files::Starter, Files::Learner)
}

pub fn start(root: &Path, args: StartArgs) -> Result<(), Failure> {
    let dir = exercise_dir(root, &args.id)?;
    let exercise = load(&dir, &Files::Starter)?.exercise;
    labctl::apply::check_privileges()?;
    let work = prepare_work(&exercise, args.dir.clone(), false)?;
    let loaded = load(&dir, &files_of(&work))?;
    let mut progress = read_progress()?;
    let built = bring_up(&loaded, work.clone(), &mut progress);
    print_task(&loaded.exercise, work.as_deref());
    match built {
        // A starter that does not build is part of some exercises: say why, and go on.
        Err(failure) if work.is_some() && failure.status != crate::cli::EXIT_BAD_INPUT => {
            progress.active = Some(Active { id: loaded.exercise.id.clone(), dir, work, built_from: String::new() });
            progress.start(&loaded.exercise.id);
            save_progress(&progress)?;
            println!(
                "\nThe lab does not come up with the starter files yet: {}",
                grading::not_built(&failure.error).evidence.join("; ")
            );
            Ok(())
        }
        other => other,
    }
}

fn print_task(exercise: &Exercise, work: Option<&Path>) {
    println!("{}: {}\n", exercise.id, exercise.spec.title);
    for line in exercise.spec.task.trim().lines() {
        println!("  {}", line.trim());
    }
    println!();
    if let Some(work) = work {
        for name in &exercise.spec.edit {
            println!("Edit {}", work.join(name).display());
        }
    }
    println!(
        "The lab {} is up: look around with `labctl exec {} <node> -- ...` or `labctl shell {} <node>`.",
        exercise.lab, exercise.lab, exercise.lab
    );
    println!("Grade it with `labctl exercise check` (or `labctl exercise watch`); stuck? `labctl exercise hint`.");
}

/// The active exercise `id`, graded on its live lab, rebuilt first when its
/// edited files changed (or the lab is down).
pub(super) fn grade_live(root: &Path, id: Option<String>) -> Result<(Loaded, Vec<CheckOutcome>, Progress), Failure> {
    let mut progress = read_progress()?;
    let id = chosen(id, &progress)?;
    let active = progress.active.clone().filter(|a| a.id == id).ok_or_else(|| {
        Failure::bad_input(anyhow!("{id} is not started")).help(format!("run `labctl exercise start {id}` first"))
    })?;
    let dir = if active.dir.is_dir() { active.dir.clone() } else { exercise_dir(root, &id)? };
    labctl::apply::check_privileges()?;
    let loaded = load(&dir, &files_of(&active.work))?;
    let stale = active.work.as_deref().is_some_and(|w| workdir::fingerprint(&loaded.exercise, w) != active.built_from);
    if stale || !grading::is_up(&loaded.exercise.lab) {
        if let Err(failure) = bring_up(&loaded, active.work.clone(), &mut progress) {
            // The learner's files do not build yet: that is the first thing to fix.
            if active.work.is_none() || failure.status == crate::cli::EXIT_BAD_INPUT {
                return Err(failure);
            }
            return Ok((loaded, vec![grading::not_built(&failure.error)], progress));
        }
    }
    let outcomes = grading::grade(&loaded).map_err(|e| Failure::new(EXIT_FAILURE, e))?;
    if grading::all_passed(&outcomes) {
        progress.finish(&id);
        save_progress(&progress)?;
    }
    Ok((loaded, outcomes, progress))
}

/// One line per check; evidence indented under a failing one.
pub(super) fn outcome_lines(outcomes: &[CheckOutcome], color: bool) -> Vec<String> {
    let paint = |text: &str, code: &str| if color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() };
    let mut lines = Vec::new();
    for o in outcomes {
        let mark = if o.passed { paint("PASS", "32") } else { paint("FAIL", "31") };
        let evidence = if o.evidence.is_empty() { String::new() } else { format!(": {}", o.evidence.join("; ")) };
        lines.push(format!("  {mark} {}{evidence}", o.name));
    }
    lines
}

pub(super) fn summary(id: &str, outcomes: &[CheckOutcome], progress: &Progress) -> String {
    let passed = outcomes.iter().filter(|o| o.passed).count();
    if grading::all_passed(outcomes) {
        let done = progress.exercises.values().filter(|r| r.status == Status::Done).count();
        format!("{id}: all {passed} checks pass. Done! ({done} exercises done; see `labctl exercise list`)")
    } else {
        format!("{id}: {passed}/{} checks pass; `labctl exercise hint` for a hint", outcomes.len())
    }
}

pub fn check(root: &Path, args: CheckArgs) -> Result<(), Failure> {
    let (loaded, outcomes, progress) = grade_live(root, args.id)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcomes).expect("outcomes serialize"));
    } else {
        for line in outcome_lines(&outcomes, std::io::stdout().is_terminal()) {
            println!("{line}");
        }
        println!("{}", summary(&loaded.exercise.id, &outcomes, &progress));
    }
    if grading::all_passed(&outcomes) {
        Ok(())
    } else {
        Err(Failure::new(
            EXIT_FAILURE,
            anyhow!("{} of {} checks fail", grading::failing(&outcomes).len(), outcomes.len()),
        ))
    }
}

/// The checks failing now, when the exercise's lab is up and we may look.
fn failing_now(loaded: &Loaded) -> Vec<String> {
    let may_look = labctl::apply::check_privileges().is_ok() && grading::is_up(&loaded.exercise.lab);
    match may_look.then(|| grading::grade(loaded)) {
        Some(Ok(outcomes)) => grading::failing(&outcomes),
        _ => vec![],
    }
}

pub fn hint(root: &Path, args: IdArgs) -> Result<(), Failure> {
    let mut progress = read_progress()?;
    let id = chosen(args.id, &progress)?;
    let dir = exercise_dir(root, &id)?;
    let work = progress.active.as_ref().filter(|a| a.id == id).and_then(|a| a.work.clone());
    let loaded = load(&dir, &files_of(&work))?;
    let hints = loaded.exercise.hints_for(&failing_now(&loaded));
    let seen = progress.hints_seen(&id);
    if seen >= hints.len() {
        println!(
            "No more hints for {id} ({} seen). `labctl exercise solution {id}` shows the reference solution.",
            hints.len()
        );
        return Ok(());
    }
    println!("hint {}/{} for {id}:\n  {}", seen + 1, hints.len(), hints[seen]);
    progress.saw_hint(&id, seen + 1);
    save_progress(&progress)
}

pub fn reset(root: &Path, args: IdArgs) -> Result<(), Failure> {
    let mut progress = read_progress()?;
    let id = chosen(args.id, &progress)?;
    let dir = exercise_dir(root, &id)?;
    let exercise = load(&dir, &Files::Starter)?.exercise;
    labctl::apply::check_privileges()?;
    let previous = progress.active.as_ref().filter(|a| a.id == id).and_then(|a| a.work.clone());
    let work = prepare_work(&exercise, previous, true)?;
    let loaded = load(&dir, &files_of(&work))?;
    bring_up(&loaded, work.clone(), &mut progress)?;
    println!(
        "{id} is back in its broken state{}.",
        work.map(|w| format!("; starter files restored in {}", w.display())).unwrap_or_default()
    );
    Ok(())
}

pub fn stop() -> Result<(), Failure> {
    let mut progress = read_progress()?;
    let Some(active) = progress.active.take() else {
        println!("no exercise is started");
        return Ok(());
    };
    labctl::apply::check_privileges()?;
    let lab = load(&active.dir, &Files::Starter)?.exercise.lab;
    grading::take_down(&lab)?;
    save_progress(&progress)?;
    println!("{}: lab {lab} is down (your progress and files are kept)", active.id);
    Ok(())
}

pub fn solution(root: &Path, args: IdArgs) -> Result<(), Failure> {
    let progress = read_progress()?;
    let id = chosen(args.id, &progress)?;
    let dir = exercise_dir(root, &id)?;
    let exercise = load(&dir, &Files::Starter)?.exercise;
    let hints = exercise.hints_for(&[]).len();
    let seen = progress.hints_seen(&id);
    if progress.status(&id) != Some(Status::Done) && seen < hints {
        return Err(Failure::bad_input(anyhow!("the solution of {id} opens once it is done or every hint was seen"))
            .help(format!("{} hints left: `labctl exercise hint {id}`", hints - seen)));
    }
    println!("Reference solution of {id}:");
    for c in &exercise.spec.commands {
        println!("  in {}: {}", c.node, c.argv.join(" "));
    }
    for name in &exercise.spec.edit {
        if let Some(path) = exercise.solved(name) {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            println!("\n--- {} (solved)\n{text}", name);
        }
    }
    Ok(())
}
