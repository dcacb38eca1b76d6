//! `labctl up FILE`: script -> validate -> plan -> apply, then the table.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use super::{absolute, table, Failure};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lab script, e.g. labs/part1.lua
    file: PathBuf,
    /// Print the interface table as JSON
    #[arg(long)]
    json: bool,
    /// Print how long each phase of the build took (to stderr)
    #[arg(long)]
    timings: bool,
    /// Bring the lab up under this name instead of its own (its namespaces
    /// are `<name>-<node>`), e.g. to run the same file twice
    #[arg(long)]
    name: Option<String>,
}

pub fn run(args: Args) -> Result<(), Failure> {
    if let Some(name) = &args.name {
        labctl::validate::check_lab_name(name).map_err(|(message, _)| {
            Failure::bad_input(anyhow::anyhow!("--name: {message}"))
                .help("lowercase letters, digits, - and _, starting with a letter or digit, e.g. --name part1-b")
        })?;
    }
    let (script, plan) = labctl::load_and_plan_as(&args.file, args.name.as_deref())?;
    let lab = &script.lab;
    labctl::apply::check_privileges()?;

    // A bar on a terminal only; a pipe or CI log gets nothing.
    let bar =
        if std::io::stderr().is_terminal() { ProgressBar::new(plan.steps.len() as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} steps")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(format!("building {}", lab.name));
    let progress = |done: usize, _total: usize| bar.set_position(done as u64);

    let started = Instant::now();
    let result = labctl::apply::up(lab, &absolute(&args.file), &plan, &progress);
    bar.finish_and_clear();
    let timings = result?;
    if args.timings {
        for t in &timings {
            eprintln!("{:<18} {:>6} steps {:>10.1?}", format!("{:?}", t.phase), t.steps, t.elapsed);
        }
    }

    let rows = table::interface_rows(lab);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows).expect("rows serialize"));
    } else {
        println!("{}", table::render(&rows));
        eprintln!(
            "lab {} is up: {} nodes, {} links, {} steps in {:.0?}. Try `labctl exec {} <node> -- ip addr`; remove it with `labctl down {}`.",
            lab.name,
            lab.nodes.len(),
            lab.links.len(),
            plan.steps.len(),
            started.elapsed(),
            lab.name,
            lab.name
        );
    }
    Ok(())
}
