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

use super::session::{self, LabOutcome};
use super::{Failure, EXIT_FAILURE};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Lab scripts, or folders of them
    #[arg(default_value = "labs")]
    paths: Vec<PathBuf>,
    /// Run only the experiment with this name
    #[arg(short, long)]
    experiment: Option<String>,
    /// Accept new and changed snapshots instead of failing on them
    #[arg(long)]
    accept: bool,
    /// Where snapshots live [default: the nearest `snapshots/` folder above the lab]
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
    let color = std::io::stdout().is_terminal();
    let github = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
    let (mut passed, mut failed) = (0usize, 0usize);
    let mut junit = Report::new("labctl");
    let mut interrupted = false;

    for file in &files {
        let root = args.snapshots.clone().unwrap_or_else(|| snapshot_root(file));
        let store = Store::new(&root);
        let source = relative_to(file, root.parent().unwrap_or(Path::new(".")));
        let mut suite_cases = Vec::new();
        let mut report = |script: &Script, result: &ExperimentResult| {
            let problems = judge(&store, script, result, &source, args.accept);
            let mark = if problems.is_empty() { paint("ok", "32", color) } else { paint("FAILED", "31", color) };
            println!("  {:<28} {mark} ({} snapshots, {:.1?})", result.name, result.taken.len(), result.duration);
            for p in &problems {
                println!("    {}: {}", p.origin, p.title);
                for line in p.detail.lines() {
                    println!("      {line}");
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
        println!("{}", paint(&format!("lab {}", file.display()), "1", color));
        let outcome: LabOutcome =
            session::run_lab(file, args.experiment.as_deref(), None, &args.set.params(), &mut report);
        if let Some(error) = &outcome.setup_error {
            failed += 1;
            println!("  {}", paint("FAILED", "31", color));
            for line in error.lines() {
                println!("    {line}");
            }
            if github {
                let origin = first_location(error).unwrap_or_else(|| Origin::new(file, 1));
                annotate(&Problem { origin, title: "lab could not be built".into(), detail: error.clone() });
            }
            suite_cases.push(TestCase::new("setup", failure_status("lab could not be built", error)));
        } else if outcome.results.is_empty() {
            println!("  (no experiments; the lab came up and went down in {:.1?})", outcome.up_time);
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
    println!("test: {passed} passed, {failed} failed");
    if interrupted {
        return Err(Failure::new(130, anyhow!("interrupted; the lab was torn down")));
    }
    if failed > 0 {
        let pending =
            if args.accept { String::new() } else { "; review new and changed snapshots with `labctl review`".into() };
        return Err(Failure::new(EXIT_FAILURE, anyhow!("{failed} failed{pending}")));
    }
    Ok(())
}

/// Every problem of one experiment: its error, failed expectations, and
/// snapshots that are new or differ from the committed ones.
fn judge(store: &Store, script: &Script, result: &ExperimentResult, source: &str, accept: bool) -> Vec<Problem> {
    let mut problems = Vec::new();
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
                    println!("    accepted new snapshot {}", path.display());
                } else {
                    println!("    accepted changed snapshot {}", path.display());
                }
            }
            Ok(Outcome::New) => problems.push(Problem {
                origin: taken.origin.clone(),
                title: format!("new snapshot {:?}: nothing committed at {}", taken.name, path.display()),
                detail: format!(
                    "{}\n(accept with `labctl test --accept` or `labctl review --accept`)",
                    indent_all(&file.normalized())
                ),
            }),
            Ok(Outcome::Changed { old }) => {
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
    problems
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
    println!("::error file={},line={}::{}", p.origin.file.display(), p.origin.line.max(1), escape(&message));
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

/// The nearest `snapshots/` folder in the lab's folder or above it; else
/// `snapshots/` beside the lab's folder.
fn snapshot_root(file: &Path) -> PathBuf {
    let start = super::absolute(file);
    let mut dir = start.parent();
    while let Some(d) = dir {
        if d.join("snapshots").is_dir() || d.join(".git").exists() {
            return d.join("snapshots");
        }
        dir = d.parent();
    }
    start.parent().unwrap_or(Path::new(".")).join("snapshots")
}

fn relative_to(file: &Path, base: &Path) -> String {
    let file = super::absolute(file);
    file.strip_prefix(super::absolute(base)).unwrap_or(&file).display().to_string()
}
