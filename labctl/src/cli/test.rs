//! `labctl test PATHS...`: build each lab, run its experiments, compare every
//! snapshot with the committed one, tear the lab down; exit 1 on any
//! difference. In GitHub Actions failures also become annotations.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use labctl::diag::Origin;
use labctl::experiment::ExperimentResult;
use labctl::script::Script;
use labctl::snapshot::{diff, Outcome, SnapshotFile, Store};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::out::{self, say};
use super::session::{self, LabOutcome};
use super::{Failure, EXIT_FAILURE};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Lab scripts, or folders of them (searched for *.lua; helper modules, which declare no lab or node, are skipped)
    #[arg(default_value = "labs")]
    paths: Vec<PathBuf>,
    /// Run only the experiment with this name (exit 2 if no lab declares it)
    #[arg(short, long)]
    experiment: Option<String>,
    /// Accept new and changed snapshots instead of failing on them
    #[arg(long)]
    accept: bool,
    /// Where snapshots live [default: the nearest `snapshots/` folder in the lab's folder or above,
    /// or at the top of its git repository]
    #[arg(long)]
    snapshots: Option<PathBuf>,
    /// Also write the results as JUnit XML to this file
    #[arg(long)]
    junit: Option<PathBuf>,
    #[command(flatten)]
    set: super::params::SetArgs,
}

/// One thing that went wrong, located in the lab script.
struct Problem {
    origin: Origin,
    title: String,
    detail: String,
}

pub fn run(args: Args) -> Result<(), Failure> {
    labctl::apply::check_privileges()?;
    let files = session::lab_files(&args.paths)?;
    if let Some(wanted) = &args.experiment {
        check_some_lab_has(wanted, &files)?;
    }
    out::survive_closed_pipe();
    let color = std::io::stdout().is_terminal();
    let github = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
    let (mut passed, mut failed) = (0usize, 0usize);
    let mut junit = Report::new("labctl");
    let mut interrupted = false;
    // A lab refused as bad input (already up, script errors): exit 2, with its help.
    let mut refused: Option<Failure> = None;
    let mut pending_roots: Vec<PathBuf> = Vec::new();
    // A lab that could not be built for a mistake in it makes the run exit 2, as `up` would.
    let mut status = EXIT_FAILURE;

    for file in &files {
        let root = args.snapshots.clone().unwrap_or_else(|| snapshot_root(file.parent().unwrap_or(Path::new("."))));
        let store = Store::new(&root);
        let source = relative_to(file, root.parent().unwrap_or(Path::new(".")));
        let mut suite_cases = Vec::new();
        let mut pending = 0usize;
        let mut report = |script: &Script, result: &ExperimentResult| {
            let (problems, new_or_changed) = judge(&store, script, result, &source, args.accept);
            pending += new_or_changed;
            let mark = if problems.is_empty() { paint("ok", "32", color) } else { paint("FAILED", "31", color) };
            say!("  {:<28} {mark} ({} snapshots, {:.1?})", result.name, result.taken.len(), result.duration);
            for p in &problems {
                say!("    {}: {}", p.origin, p.title);
                for line in p.detail.lines() {
                    say!("      {line}");
                }
                if github {
                    annotate(p);
                }
            }
            if problems.is_empty() {
                passed += 1;
            } else {
                failed += 1;
            }
            suite_cases.push(junit_case(result, &problems));
        };
        say!("{}", paint(&format!("lab {}", file.display()), "1", color));
        let outcome: LabOutcome = match session::prepare(file, None, &args.set.params()) {
            Ok(prepared) => prepared.only(args.experiment.as_deref()).run(None, &mut report),
            Err(failure) => {
                let text = failure.text();
                if failure.status == super::EXIT_BAD_INPUT {
                    refused.get_or_insert(failure);
                }
                LabOutcome::refused(text)
            }
        };
        if pending > 0 {
            pending_roots.push(root.clone());
        }
        if let Some(error) = &outcome.setup_error {
            failed += 1;
            status = status.max(outcome.setup_status);
            say!("  {}", paint("FAILED", "31", color));
            for line in error.lines() {
                say!("    {line}");
            }
            if github {
                let origin = first_location(error).unwrap_or_else(|| Origin::new(file, 1));
                annotate(&Problem { origin, title: "lab could not be built".into(), detail: error.clone() });
            }
            suite_cases.push(TestCase::new("setup", failure_status("lab could not be built", error)));
        } else if outcome.results.is_empty() {
            say!("  (no experiments; the lab came up and went down in {:.1?})", outcome.up_time);
        }
        let name = outcome.script.as_ref().map_or_else(|| file.display().to_string(), |s| s.lab.name.clone());
        let mut suite = TestSuite::new(name);
        suite.add_test_cases(suite_cases);
        junit.add_test_suite(suite);
        if outcome.interrupted {
            interrupted = true;
            break;
        }
    }

    if let Some(path) = &args.junit {
        let xml = junit.to_string().map_err(|e| Failure::new(EXIT_FAILURE, anyhow!("cannot write JUnit XML: {e}")))?;
        std::fs::write(path, xml)
            .map_err(|e| Failure::new(EXIT_FAILURE, anyhow!("cannot write {}: {e}", path.display())))?;
    }
    say!("test: {passed} passed, {failed} failed");
    if interrupted {
        return Err(Failure::new(super::EXIT_INTERRUPTED, anyhow!("interrupted; the lab was torn down")));
    }
    if let Some(failure) = refused {
        return Err(failure);
    }
    if failed > 0 {
        let review = review_hint(&pending_roots);
        return Err(Failure::new(status, anyhow!("{failed} failed{review}")));
    }
    Ok(())
}

/// `test -e NAME` with a name no lab declares is bad input: nothing runs.
fn check_some_lab_has(wanted: &str, files: &[PathBuf]) -> Result<(), Failure> {
    // Scripts that fail to load are reported by the run itself.
    let loaded: Vec<(PathBuf, Script)> =
        files.iter().filter_map(|f| labctl::script::load(f).ok().map(|s| (f.clone(), s))).collect();
    let declared = |s: &Script| s.lab.experiments.iter().any(|e| e.name == wanted);
    if loaded.is_empty() || loaded.iter().any(|(_, s)| declared(s)) {
        return Ok(());
    }
    let labs: Vec<(&Path, &Script)> = loaded.iter().map(|(f, s)| (f.as_path(), s)).collect();
    Err(session::unknown_experiment(wanted, &labs))
}

/// `; review new and changed snapshots with `labctl review --snapshots X``,
/// naming the folder so that the command works from the current folder;
/// nothing when no snapshot is pending.
fn review_hint(pending_roots: &[PathBuf]) -> String {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let default = super::absolute(&snapshot_root(&cwd));
    let mut commands: Vec<String> = pending_roots
        .iter()
        .map(|root| {
            let root = super::absolute(root);
            if root == default {
                "`labctl review`".to_string()
            } else {
                let shown = root.strip_prefix(&cwd).map_or_else(|_| root.clone(), Path::to_path_buf);
                format!("`labctl review --snapshots {}`", shown.display())
            }
        })
        .collect();
    commands.dedup();
    if commands.is_empty() {
        String::new()
    } else {
        format!("; review new and changed snapshots with {}", commands.join(" and "))
    }
}

/// Every problem of one experiment: its error, failed expectations, and
/// snapshots that are new or differ from the committed ones.
/// Also says how many snapshots are left pending (new or changed, not accepted).
fn judge(
    store: &Store,
    script: &Script,
    result: &ExperimentResult,
    source: &str,
    accept: bool,
) -> (Vec<Problem>, usize) {
    let mut problems = Vec::new();
    let mut pending = 0;
    if let Some(error) = &result.error {
        problems.push(Problem {
            origin: error.origin.clone(),
            title: format!("experiment {:?} stopped: {}", result.name, error.message),
            detail: error.help.clone().map(|h| format!("help: {h}")).unwrap_or_default(),
        });
    }
    for e in &result.failed {
        problems.push(Problem { origin: e.origin.clone(), title: e.message.clone(), detail: String::new() });
    }
    for taken in &result.taken {
        let file = SnapshotFile {
            source: source.to_string(),
            assertion_line: Some(taken.origin.line),
            expression: Some(format!("{}: x:snapshot({:?}, ...)", result.name, taken.name)),
            contents: taken.contents.clone(),
        };
        let lab = &script.lab.name;
        let path = store.path(lab, &result.name, &taken.name);
        match store.check(lab, &result.name, &taken.name, &file) {
            Ok(Outcome::Matches) => {}
            Ok(outcome) if accept => {
                let pending = PathBuf::from(format!("{}.new", path.display()));
                if let Err(e) = Store::accept(&pending) {
                    problems.push(Problem {
                        origin: taken.origin.clone(),
                        title: format!("cannot accept snapshot: {e}"),
                        detail: String::new(),
                    });
                } else if outcome == Outcome::New {
                    say!("    accepted new snapshot {}", path.display());
                } else {
                    say!("    accepted changed snapshot {}", path.display());
                }
            }
            Ok(Outcome::New) => {
                pending += 1;
                problems.push(Problem {
                    origin: taken.origin.clone(),
                    title: format!("new snapshot {:?}: nothing committed at {}", taken.name, path.display()),
                    detail: format!(
                        "{}\n(accept it with `labctl test --accept`, or review it with the command named at the end)",
                        indent_all(&file.normalized())
                    ),
                })
            }
            Ok(Outcome::Changed { old }) => {
                pending += 1;
                let new = file.normalized();
                problems.push(Problem {
                    origin: taken.origin.clone(),
                    title: format!(
                        "snapshot {:?} changed: {}",
                        taken.name,
                        diff::first_change(&old, &new).unwrap_or_default()
                    ),
                    detail: format!(
                        "--- {}\n+++ this run\n{}",
                        path.display(),
                        diff::render(&old, &new, std::io::stdout().is_terminal())
                    ),
                })
            }
            Err(e) => {
                problems.push(Problem { origin: taken.origin.clone(), title: e.to_string(), detail: String::new() })
            }
        }
    }
    (problems, pending)
}

fn indent_all(text: &str) -> String {
    text.lines().map(|l| format!("+  {l}")).collect::<Vec<_>>().join("\n")
}

fn paint(text: &str, code: &str, color: bool) -> String {
    if color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// A GitHub Actions workflow command: an error annotation on the lab line.
fn annotate(p: &Problem) {
    let escape = |s: &str| s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A");
    let message = if p.detail.is_empty() { p.title.clone() } else { format!("{}\n{}", p.title, p.detail) };
    say!("::error file={},line={}::{}", p.origin.file.display(), p.origin.line.max(1), escape(&message));
}

fn junit_case(result: &ExperimentResult, problems: &[Problem]) -> TestCase {
    let status = if problems.is_empty() {
        TestCaseStatus::success()
    } else {
        let text: Vec<String> = problems.iter().map(|p| format!("{}: {}\n{}", p.origin, p.title, p.detail)).collect();
        failure_status(&problems[0].title, &text.join("\n"))
    };
    let mut case = TestCase::new(result.name.clone(), status);
    case.set_time(result.duration).set_assertions(result.taken.len());
    case
}

fn failure_status(message: &str, description: &str) -> TestCaseStatus {
    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
    status.set_message(message.to_string()).set_description(description.to_string());
    status
}

/// `labs/part1.lua:12: error: ...` -> the location, for annotations.
fn first_location(text: &str) -> Option<Origin> {
    let (head, _) = text.split_once(": ")?;
    let (file, line) = head.rsplit_once(':')?;
    Some(Origin::new(file, line.parse().ok()?))
}

/// Where snapshots live, one rule for `test` (from the lab's folder) and
/// `review` (from the current folder): the nearest `snapshots/` folder in
/// `start` or above it, or the one at the top of the git repository `start`
/// is in; else `start/snapshots`.
pub(super) fn snapshot_root(start: &Path) -> PathBuf {
    let start = super::absolute(start);
    let mut dir = Some(start.as_path());
    while let Some(d) = dir {
        if d.join("snapshots").is_dir() || d.join(".git").exists() {
            return d.join("snapshots");
        }
        dir = d.parent();
    }
    start.join("snapshots")
}

fn relative_to(file: &Path, base: &Path) -> String {
    let file = super::absolute(file);
    file.strip_prefix(super::absolute(base)).unwrap_or(&file).display().to_string()
}
