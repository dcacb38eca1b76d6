//! The job summary of `labctl test` in GitHub Actions: one row per lab and
//! experiment with its result and time, then each problem with its lab line
//! and, for a differing snapshot, the diff, as Markdown for the file named by
//! `$GITHUB_STEP_SUMMARY` (GitHub renders it on the run's page).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// One experiment (or a lab that could not be built) as the summary shows it.
pub struct Row {
    pub lab: String,
    pub experiment: String,
    pub passed: bool,
    pub time: Duration,
    pub problems: Vec<Entry>,
}

/// One problem: where, what, and the plain diff of a changed snapshot.
pub struct Entry {
    pub location: String,
    pub title: String,
    pub diff: Option<String>,
}

/// The Markdown for `rows`, headed by the counts.
pub fn render(rows: &[Row]) -> String {
    let failed = rows.iter().filter(|r| !r.passed).count();
    let mut md = format!("## labctl test: {} passed, {failed} failed\n\n", rows.len() - failed);
    md.push_str("| lab | experiment | result | time |\n|---|---|---|---|\n");
    for row in rows {
        let result = if row.passed { "✅ passed" } else { "❌ failed" };
        md.push_str(&format!(
            "| {} | {} | {result} | {:.1} s |\n",
            cell(&row.lab),
            cell(&row.experiment),
            row.time.as_secs_f64()
        ));
    }
    for row in rows.iter().filter(|r| !r.problems.is_empty()) {
        md.push_str(&format!("\n### ❌ {} / {}\n", row.lab, row.experiment));
        for p in &row.problems {
            md.push_str(&format!("\n`{}`: {}\n", p.location, p.title));
            if let Some(diff) = &p.diff {
                md.push_str(&format!("\n```diff\n{}\n```\n", diff.trim_end()));
            }
        }
    }
    md
}

/// Appends the summary to `path` (GitHub concatenates every step's part).
pub fn append(path: &Path, rows: &[Row]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(render(rows).as_bytes())
}

/// A table cell: a `|` would end it early.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_rows_and_shows_each_diff_under_its_experiment() {
        let rows = vec![
            Row {
                lab: "a".into(),
                experiment: "ping".into(),
                passed: true,
                time: Duration::from_millis(1250),
                problems: vec![],
            },
            Row {
                lab: "a".into(),
                experiment: "x|y".into(),
                passed: false,
                time: Duration::from_secs(2),
                problems: vec![Entry {
                    location: "labs/a.lua:7".into(),
                    title: "snapshot \"hops\" changed: +n: 2".into(),
                    diff: Some("-  n: 1\n+  n: 2\n".into()),
                }],
            },
        ];
        let md = render(&rows);
        assert!(md.starts_with("## labctl test: 1 passed, 1 failed\n"), "{md}");
        assert!(md.contains("| a | ping | ✅ passed | 1.2 s |"), "{md}");
        assert!(md.contains("| a | x\\|y | ❌ failed | 2.0 s |"), "{md}");
        assert!(md.contains("### ❌ a / x|y\n\n`labs/a.lua:7`: snapshot \"hops\" changed: +n: 2\n\n```diff\n-  n: 1\n+  n: 2\n```\n"), "{md}");
    }
}
