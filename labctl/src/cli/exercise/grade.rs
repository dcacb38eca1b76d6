//! `labctl exercise grade ID SUBMISSIONS_DIR`: one sub-folder per
//! submission (edited files and/or a `commands.sh` of fixes), each graded in
//! its own sandbox, in name order; a table, and CSV and JUnit on request.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use comfy_table::{presets, ContentArrangement, Table};
use labctl::exercise::proof::{self, Grade};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::{exercise_dir, isolated};
use crate::cli::{Failure, EXIT_FAILURE};

#[derive(Debug, clap::Args)]
#[command(after_help = "\
A submission folder holds the files the exercise has the learner edit (missing ones are the
starters) and/or commands.sh, run with sh on the lab's host after the lab is up: $LAB is the
lab's name and labctl is on PATH, so `labctl exec \"$LAB\" r1 -- ip route ...` or
`ip netns exec \"$LAB-r1\" ...` reach node r1.")]
pub struct Args {
    /// The exercise, e.g. part2/rp-filter
    id: String,
    /// A folder with one sub-folder per submission
    submissions: PathBuf,
    /// Also write the table as CSV to this file
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Also write the results as JUnit XML to this file
    #[arg(long)]
    junit: Option<PathBuf>,
    #[arg(long = "in-sandbox", hide = true)]
    in_sandbox: bool,
}

pub fn run(root: &Path, args: Args) -> Result<(), Failure> {
    labctl::apply::check_privileges()?;
    let dir = exercise_dir(root, &args.id)?;
    if args.in_sandbox {
        let grade = proof::grade_submission(&dir, &args.submissions);
        println!("{}", serde_json::to_string(&grade).expect("grade serializes"));
        return Ok(());
    }
    super::load(&dir, &labctl::exercise::Files::Starter)?;
    let submissions = proof::submissions(&args.submissions)
        .map_err(|e| Failure::bad_input(anyhow!("cannot read {}: {e}", args.submissions.display())))?;
    let mut grades = Vec::new();
    for submission in &submissions {
        let abs = std::path::absolute(submission).unwrap_or_else(|_| submission.clone());
        let call =
            [OsString::from("--root"), root.as_os_str().into(), "grade".into(), args.id.clone().into(), abs.into()];
        grades.push(isolated::run::<Grade>(&call)?);
    }
    println!("{}", table(&args.id, &grades));
    if let Some(path) = &args.csv {
        write(path, csv(&grades)?)?;
    }
    if let Some(path) = &args.junit {
        write(path, junit(&args.id, &grades)?)?;
    }
    Ok(())
}

fn failing_text(grade: &Grade) -> String {
    if let Some(error) = &grade.error {
        return format!("error: {error}");
    }
    let failing: Vec<String> =
        grade.failing.iter().map(|(name, evidence)| format!("{name}: {}", evidence.join("; "))).collect();
    failing.join("\n")
}

fn table(id: &str, grades: &[Grade]) -> String {
    let mut table = Table::new();
    table.load_preset(presets::ASCII_MARKDOWN).set_content_arrangement(ContentArrangement::Disabled);
    table.set_header(vec!["submission", "passed", "failing checks (evidence)"]);
    for grade in grades {
        table.add_row(vec![grade.submission.clone(), format!("{}/{}", grade.passed, grade.total), failing_text(grade)]);
    }
    let full = grades.iter().filter(|g| g.error.is_none() && g.passed == g.total).count();
    format!("grade {id}: {} submissions, {full} pass every check\n{table}", grades.len())
}

fn csv(grades: &[Grade]) -> Result<String, Failure> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let broken = |e: csv::Error| Failure::new(EXIT_FAILURE, anyhow!("cannot write CSV: {e}"));
    out.write_record(["submission", "passed", "total", "failing"]).map_err(broken)?;
    for g in grades {
        out.write_record([g.submission.clone(), g.passed.to_string(), g.total.to_string(), failing_text(g)])
            .map_err(broken)?;
    }
    let bytes = out.into_inner().map_err(|e| Failure::new(EXIT_FAILURE, anyhow!("cannot write CSV: {e}")))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn junit(id: &str, grades: &[Grade]) -> Result<String, Failure> {
    let mut report = Report::new("labctl exercise grade");
    let mut suite = TestSuite::new(id);
    for g in grades {
        let status = if g.error.is_none() && g.passed == g.total {
            TestCaseStatus::success()
        } else {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status.set_message(format!("{}/{} checks pass", g.passed, g.total)).set_description(failing_text(g));
            status
        };
        suite.add_test_case(TestCase::new(g.submission.clone(), status));
    }
    report.add_test_suite(suite);
    report.to_string().map_err(|e| Failure::new(EXIT_FAILURE, anyhow!("cannot write JUnit XML: {e}")))
}

fn write(path: &PathBuf, text: String) -> Result<(), Failure> {
    std::fs::write(path, text).map_err(|e| Failure::new(EXIT_FAILURE, anyhow!("cannot write {}: {e}", path.display())))
}
