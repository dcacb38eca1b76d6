//! `labctl test PATHS...`: build each lab, run its experiments, compare every
//! snapshot with the committed one, tear the lab down; exit 1 on any
//! difference. In GitHub Actions failures also become annotations and a job
//! summary. Labs run `-j N` at a time, each in a sandbox (cli/parallel.rs).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::anyhow;
use labctl::diag::Origin;
use labctl::experiment::ExperimentResult;
use labctl::script::Script;
use labctl::snapshot::{diff, Outcome, SnapshotFile, Store};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::out::{self, say};
use super::session::{self, LabOutcome};
use super::shard::{self, Durations, Shard};
use super::{parallel, summary, Failure, EXIT_BAD_INPUT, EXIT_FAILURE};

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
    /// Labs to run at the same time, each in its own throwaway network and
    /// mount namespace; labs declared `lab { exclusive = true }` still run
    /// alone, and `x:host_sysctl`'s window waits until no other lab sends or
    /// measures [default: the number of CPUs]
    #[arg(short = 'j', long, value_name = "N")]
    jobs: Option<usize>,
    /// Run only share K of N of the labs (e.g. 2/3): N jobs with the same
    /// paths together run every lab exactly once
    #[arg(long, value_name = "K/N")]
    shard: Option<Shard>,
    /// Record how long each lab took in FILE (JSON), balance --shard by it
    /// and start the longest labs first with -j; every job of a matrix must
    /// see the same file
    #[arg(long, value_name = "FILE")]
    durations: Option<PathBuf>,
    /// Print the labs and their experiments (after --shard) and run nothing (no root)
    #[arg(long)]
    list: bool,
    /// Keep each experiment's artefacts (pcapng captures, SVG charts,
    /// snapshots as text) under DIR/<lab>/<experiment>/
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Write the records of this run as JSON to FILE (used by the parent of
    /// a parallel run; no totals are printed)
    #[arg(long, hide = true)]
    records: Option<PathBuf>,
}

/// One thing that went wrong, located in the lab script.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Problem {
    origin: Origin,
    title: String,
    detail: String,
    /// The plain diff of a changed snapshot, for the job summary.
    diff: Option<String>,
}

/// One experiment of one lab (or `setup`, a lab that could not be built):
/// what JUnit, the job summary and the totals are made from.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Record {
    lab: String,
    experiment: String,
    seconds: f64,
    assertions: usize,
    problems: Vec<Problem>,
}

impl Record {
    fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One lab's run: its records in the order they ran, and how it ended.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct LabRun {
    file: PathBuf,
    records: Vec<Record>,
    interrupted: bool,
    seconds: f64,
    /// The exit status its setup failure means (2: a mistake in the lab).
    status: u8,
    /// Refused as bad input before anything was built: the error and help.
    refused: Option<String>,
    /// Snapshot folders holding new or changed snapshots of this lab.
    pending_roots: Vec<PathBuf>,
}

impl LabRun {
    /// What a child of a parallel run reported, or a failure saying it reported nothing.
    fn from_child(child: parallel::ChildRun) -> LabRun {
        let mut run = child
            .records
            .and_then(|json| serde_json::from_str::<Vec<LabRun>>(&json).ok())
            .and_then(|mut runs| runs.pop())
            .unwrap_or_else(|| {
                let why = format!("labctl ended without results ({}); its output is above", child.status);
                LabRun::broken(&child.file, why)
            });
        run.seconds = child.seconds;
        run
    }

    /// A lab whose run ended without records of its own (a crashed child).
    fn broken(file: &Path, why: String) -> LabRun {
        let problem = Problem { origin: Origin::new(file, 1), title: why, detail: String::new(), diff: None };
        let record = Record {
            lab: file.display().to_string(),
            experiment: "setup".into(),
            seconds: 0.0,
            assertions: 0,
            problems: vec![problem],
        };
        LabRun { file: file.to_path_buf(), records: vec![record], status: EXIT_FAILURE, ..LabRun::default() }
    }
}

pub fn run(args: Args) -> Result<(), Failure> {
    let mut files = session::lab_files(&args.paths)?;
    let durations_file = args.durations.clone().unwrap_or_default();
    let durations = Durations::load(&durations_file).map_err(Failure::bad_input)?;
    if let Some(shard) = args.shard {
        files = shard::select(&files, shard, &durations, &durations_file);
    }
    if args.list {
        return list(&files);
    }
    labctl::apply::check_privileges()?;
    if let Some(wanted) = &args.experiment {
        check_some_lab_has(wanted, &files)?;
    }
    out::survive_closed_pipe();
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if jobs == 0 {
        return Err(Failure::bad_input(anyhow!("-j 0 runs nothing")).help("give -j 1 or more (labs at the same time)"));
    }
    let runs = if jobs > 1 && files.len() > 1 && args.records.is_none() {
        let start_order = shard::longest_first(&files, &durations, &durations_file);
        let children = parallel::run_all(&files, &start_order, &child_args(&args), jobs)?;
        children.into_iter().map(LabRun::from_child).collect()
    } else {
        sequential(&files, &args)
    };
    finish(&args, &runs)
}

/// The options every child of a parallel run gets (cli/parallel.rs adds the lab).
fn child_args(args: &Args) -> Vec<std::ffi::OsString> {
    let mut out: Vec<std::ffi::OsString> = Vec::new();
    if let Some(e) = &args.experiment {
        out.extend(["--experiment".into(), e.into()]);
    }
    if args.accept {
        out.push("--accept".into());
    }
    if let Some(s) = &args.snapshots {
        out.extend(["--snapshots".into(), s.into()]);
    }
    if let Some(o) = &args.out {
        out.extend(["--out".into(), o.into()]);
    }
    out.extend(args.set.to_args().into_iter().map(Into::into));
    out
}

/// The labs one after another in this process, each printed as it runs.
fn sequential(files: &[PathBuf], args: &Args) -> Vec<LabRun> {
    let mut runs = Vec::new();
    for file in files {
        // A lab that must run alone holds the machine for its whole run; the
        // others take turns as they send and measure (sys/machine_turn.rs).
        let _turn = parallel::must_run_alone(file).then(labctl::sys::machine_turn::exclusive);
        let run = run_lab(file, args);
        let stop = run.interrupted;
        runs.push(run);
        if stop {
            break;
        }
    }
    runs
}

/// `--list`: each lab and its experiments; loading needs no root.
fn list(files: &[PathBuf]) -> Result<(), Failure> {
    for file in files {
        let script = labctl::script::load(file)?;
        println!("{} ({})", file.display(), script.lab.name);
        for exp in &script.lab.experiments {
            println!("  {}", exp.name);
        }
    }
    Ok(())
}

/// One lab: build it, run its experiments, judge each result, tear it down.
fn run_lab(file: &Path, args: &Args) -> LabRun {
    let started = std::time::Instant::now();
    let color = std::io::stdout().is_terminal();
    let github = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
    let root = args.snapshots.clone().unwrap_or_else(|| snapshot_root(file.parent().unwrap_or(Path::new("."))));
    let store = Store::new(&root);
    let source = relative_to(file, root.parent().unwrap_or(Path::new(".")));
    let mut records = Vec::new();
    let mut pending = 0usize;
    let mut bad_input = false;
    let mut report = |script: &Script, result: &ExperimentResult| {
        let (problems, new_or_changed) = judge(&store, script, result, &source, args.accept);
        pending += new_or_changed;
        bad_input |= result.bad_input;
        let mark = if problems.is_empty() { paint("ok", "32", color) } else { paint("FAILED", "31", color) };
        say!("  {:<28} {mark} ({} snapshots, {:.1?})", result.name, result.taken.len(), result.duration);
        print_problems(&problems, github);
        records.push(Record {
            lab: script.lab.name.clone(),
            experiment: result.name.clone(),
            seconds: result.duration.as_secs_f64(),
            assertions: result.taken.len(),
            problems,
        });
    };
    say!("{}", paint(&format!("lab {}", file.display()), "1", color));
    let artifacts = args.out.as_ref().map(|out| out.join(file.file_stem().unwrap_or_default()));
    let mut refused = None;
    let outcome: LabOutcome = match session::prepare(file, None, &args.set.params()) {
        Ok(prepared) => prepared.only(args.experiment.as_deref()).run(artifacts.as_deref(), &mut report),
        Err(failure) => {
            let text = failure.text();
            if failure.status == EXIT_BAD_INPUT {
                refused = Some(text.clone());
            }
            LabOutcome::refused(text)
        }
    };
    let lab = outcome.script.as_ref().map_or_else(|| file.display().to_string(), |s| s.lab.name.clone());
    // A bad option of an `x:` method is a mistake in the lab file: exit 2.
    let mut status = if bad_input { EXIT_BAD_INPUT } else { EXIT_FAILURE };
    if let Some(error) = &outcome.setup_error {
        status = outcome.setup_status;
        say!("  {}", paint("FAILED", "31", color));
        for line in error.lines() {
            say!("    {line}");
        }
        let origin = first_location(error).unwrap_or_else(|| Origin::new(file, 1));
        let problem = Problem { origin, title: "lab could not be built".into(), detail: error.clone(), diff: None };
        if github {
            annotate(&problem);
        }
        records.push(Record { lab, experiment: "setup".into(), seconds: 0.0, assertions: 0, problems: vec![problem] });
    } else if outcome.results.is_empty() {
        say!("  (no experiments; the lab came up and went down in {:.1?})", outcome.up_time);
    }
    LabRun {
        file: file.to_path_buf(),
        records,
        interrupted: outcome.interrupted,
        seconds: started.elapsed().as_secs_f64(),
        status,
        refused,
        pending_roots: if pending > 0 { vec![root] } else { vec![] },
    }
}

fn print_problems(problems: &[Problem], github: bool) {
    for p in problems {
        say!("    {}: {}", p.origin, p.title);
        for line in p.detail.lines() {
            say!("      {line}");
        }
        if github {
            annotate(p);
        }
    }
}

/// What every run ends with, sequential or parallel: JUnit, the job
/// summary, recorded durations, the totals and the exit status.
fn finish(args: &Args, runs: &[LabRun]) -> Result<(), Failure> {
    if let Some(path) = &args.records {
        let json = serde_json::to_string(runs).expect("records serialize");
        std::fs::write(path, json)
            .map_err(|e| Failure::new(EXIT_FAILURE, anyhow!("cannot write {}: {e}", path.display())))?;
    } else {
        write_reports(args, runs)?;
    }
    let records = runs.iter().flat_map(|r| &r.records);
    let failed = records.clone().filter(|r| !r.passed()).count();
    let passed = records.count() - failed;
    if args.records.is_none() {
        say!("test: {passed} passed, {failed} failed");
    }
    if runs.iter().any(|r| r.interrupted) {
        return Err(Failure::new(super::EXIT_INTERRUPTED, anyhow!("interrupted; the lab was torn down")));
    }
    if let Some(text) = runs.iter().find_map(|r| r.refused.clone()) {
        return Err(Failure::bad_input(anyhow!(text)));
    }
    if failed > 0 {
        let roots: Vec<PathBuf> = runs.iter().flat_map(|r| r.pending_roots.clone()).collect();
        let review = if args.accept { String::new() } else { review_hint(&roots) };
        let status = runs.iter().filter(|r| r.records.iter().any(|c| !c.passed())).map(|r| r.status).max();
        return Err(Failure::new(status.unwrap_or(EXIT_FAILURE), anyhow!("{failed} failed{review}")));
    }
    Ok(())
}

/// JUnit (`--junit`), the GitHub job summary (`$GITHUB_STEP_SUMMARY`) and
/// the durations file (`--durations`).
fn write_reports(args: &Args, runs: &[LabRun]) -> Result<(), Failure> {
    let cannot = |path: &Path, e: &dyn std::fmt::Display| {
        Failure::new(EXIT_FAILURE, anyhow!("cannot write {}: {e}", path.display()))
    };
    if let Some(path) = &args.junit {
        let xml = junit(runs).to_string().map_err(|e| cannot(path, &e))?;
        std::fs::write(path, xml).map_err(|e| cannot(path, &e))?;
    }
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        summary::append(&path, &summary_rows(runs)).map_err(|e| cannot(&path, &e))?;
    }
    if let Some(path) = &args.durations {
        let took: Vec<(PathBuf, Duration)> = runs
            .iter()
            .filter(|r| !r.interrupted)
            .map(|r| (r.file.clone(), Duration::from_secs_f64(r.seconds)))
            .collect();
        let old = Durations::load(path).unwrap_or_default();
        old.save(path, &took).map_err(|e| cannot(path, &e))?;
    }
    Ok(())
}

fn junit(runs: &[LabRun]) -> Report {
    let mut report = Report::new("labctl");
    for run in runs {
        let name = run.records.first().map_or_else(|| run.file.display().to_string(), |r| r.lab.clone());
        let mut suite = TestSuite::new(name);
        suite.add_test_cases(run.records.iter().map(junit_case));
        report.add_test_suite(suite);
    }
    report
}

fn summary_rows(runs: &[LabRun]) -> Vec<summary::Row> {
    let rows = runs.iter().flat_map(|run| &run.records);
    rows.map(|r| summary::Row {
        lab: r.lab.clone(),
        experiment: r.experiment.clone(),
        passed: r.passed(),
        time: Duration::from_secs_f64(r.seconds),
        problems: r
            .problems
            .iter()
            .map(|p| summary::Entry { location: p.origin.to_string(), title: p.title.clone(), diff: p.diff.clone() })
            .collect(),
    })
    .collect()
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
            diff: None,
        });
    }
    for e in &result.failed {
        problems.push(Problem {
            origin: e.origin.clone(),
            title: e.message.clone(),
            detail: String::new(),
            diff: None,
        });
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
                        diff: None,
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
                    diff: Some(indent_all(&file.normalized())),
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
                    diff: Some(diff::render(&old, &new, false)),
                })
            }
            Err(e) => problems.push(Problem {
                origin: taken.origin.clone(),
                title: e.to_string(),
                detail: String::new(),
                diff: None,
            }),
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

fn junit_case(record: &Record) -> TestCase {
    let problems = &record.problems;
    let status = if record.passed() {
        TestCaseStatus::success()
    } else if record.experiment == "setup" {
        failure_status(&problems[0].title, &problems[0].detail)
    } else {
        let text: Vec<String> = problems.iter().map(|p| format!("{}: {}\n{}", p.origin, p.title, p.detail)).collect();
        failure_status(&problems[0].title, &text.join("\n"))
    };
    let mut case = TestCase::new(record.experiment.clone(), status);
    if record.experiment != "setup" {
        case.set_time(Duration::from_secs_f64(record.seconds)).set_assertions(record.assertions);
    }
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
