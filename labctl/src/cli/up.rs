//! `labctl up FILE`: script -> validate -> plan -> apply, then the table.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use labctl::apply::PhaseTiming;
use labctl::plan::Phase;

use super::{absolute, table, Failure};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lab script, e.g. labs/part1.lua
    file: PathBuf,
    /// Print the interface table as JSON
    #[arg(long)]
    json: bool,
    /// Print when each phase of the build was done (to stderr)
    #[arg(long)]
    timings: bool,
    #[command(flatten)]
    set: super::params::SetArgs,
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
    let (script, plan) = labctl::load_and_plan_named(&args.file, &args.set.params(), args.name.as_deref())?;
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
        eprint!("{}", timings_table(&timings, started.elapsed()));
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

/// What a phase does, in the words of the lab script.
fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Namespaces => "namespaces",
        Phase::NamespaceSysctls => "node sysctls",
        Phase::Bridges => "bridges",
        Phase::Veths => "veth links",
        Phase::Configure => "addresses, links up",
        Phase::DeviceSysctls => "interface sysctls, tune",
        Phase::Nics => "host NICs and VFs",
        Phase::Nexthops => "nexthop objects",
        Phase::Routes => "routes, neighbours, qdiscs",
        Phase::Settle => "ipv6 settling (DAD, MLD)",
        Phase::Xdp => "xdp programs",
        Phase::Ipsec => "ipsec tunnels",
        Phase::Impair => "loss programs",
    }
}

/// When each phase was done, since the build began: the first phases run
/// side by side, so their times overlap and are not added up.
fn timings_table(timings: &[PhaseTiming], total: std::time::Duration) -> String {
    let mut text = format!("{:<24} {:>6} {:>10}\n", "PHASE", "STEPS", "DONE AT");
    let streamed = timings.iter().filter(|t| t.overlaps).map(|t| t.elapsed).max().unwrap_or_default();
    let mut clock = streamed;
    for t in timings {
        let done_at = if t.overlaps {
            t.elapsed
        } else {
            clock += t.elapsed;
            clock
        };
        text.push_str(&format!("{:<24} {:>6} {:>10.1?}\n", phase_name(t.phase), t.steps, done_at));
    }
    text.push_str(&format!(
        "{:<24} {:>6} {:>10.1?}\n",
        "total (with checks)",
        timings.iter().map(|t| t.steps).sum::<usize>(),
        total
    ));
    text.push_str("(the phases down to \"addresses, links up\" run side by side, so their times overlap)\n");
    text
}
