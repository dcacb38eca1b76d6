//! `labctl bench`: bring-up and teardown of an N-host star (every host a
//! namespace with one veth to a bridge), side by side in one run with the
//! kernel's floor, the same star built with iproute2 (`bench/ip-star.sh`)
//! and, where installed, Mininet (`bench/mininet-star.sh`). The reference
//! scripts are built into the binary, so they are found from any clone or
//! install. Runs in its own throwaway network and mount namespace.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use labctl::apply::{self, floor};
use labctl::sys::netns;
use serde::Serialize;

use super::{Failure, EXIT_FAILURE};

mod scale;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Hosts in the star compared with the references
    #[arg(long, default_value_t = 250)]
    hosts: usize,
    /// Hosts in the labctl-only large run (0 skips it)
    #[arg(long, default_value_t = 1000)]
    large: usize,
    /// Runs of each measurement; the median is reported
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Folder with your own ip-star.sh and mininet-star.sh [default: the
    /// copies built into labctl, from labctl/src/cli/bench/]
    #[arg(long)]
    reference_dir: Option<PathBuf>,
    /// Instead of the comparison: a fabric (a core router, bridges of 500
    /// hosts) at each of these sizes, beside the kernel's floor at each, e.g.
    /// --scale 1000,2000,5000,10000
    #[arg(long, value_delimiter = ',', value_parser = scale::parse_size, value_name = "HOSTS,...")]
    scale: Vec<usize>,
    /// Print the figures as JSON (for scripts) instead of the table
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Default, Serialize)]
struct Report {
    hosts: usize,
    runs: usize,
    floor_up_s: f64,
    labctl_up_s: f64,
    labctl_down_s: f64,
    ip_star_up_s: Option<f64>,
    ip_star_down_s: Option<f64>,
    /// Build and stop together, as Mininet reports it.
    mininet_s: Option<f64>,
    large_hosts: usize,
    large_up_s: Option<f64>,
    large_down_s: Option<f64>,
    large_max_rss_mb: Option<f64>,
    notes: Vec<String>,
}

pub fn run(args: Args) -> Result<(), Failure> {
    apply::check_privileges()?;
    let failed = |e: anyhow::Error| Failure::new(EXIT_FAILURE, e);
    netns::isolate_process().map_err(|e| failed(e.into()))?;
    let work = Path::new("/run/labctl-bench");
    std::fs::create_dir_all(work).map_err(|e| failed(e.into()))?;
    let labctl = std::env::current_exe().map_err(|e| failed(e.into()))?;
    if !args.scale.is_empty() {
        let report = scale::run(&labctl, work, &args.scale, &|what| progress(&args, what)).map_err(failed)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report).expect("serializes"));
        } else {
            scale::print(&report);
        }
        return Ok(());
    }
    let mut report = Report { hosts: args.hosts, runs: args.runs, large_hosts: args.large, ..Report::default() };

    // The large run first: max RSS of children is then labctl's own.
    if args.large > 0 {
        let script = write_star(work, args.large).map_err(failed)?;
        report.large_up_s = Some(timed(Command::new(&labctl).arg("up").arg(&script)).map_err(failed)?.as_secs_f64());
        report.large_max_rss_mb = Some(children_max_rss_mb());
        report.large_down_s = Some(timed(Command::new(&labctl).args(["down", "star"])).map_err(failed)?.as_secs_f64());
        settle();
    }

    let script = write_star(work, args.hosts).map_err(failed)?;
    let references = match &args.reference_dir {
        Some(dir) => dir.clone(),
        None => write_references(work).map_err(failed)?,
    };
    let ip_star = references.join("ip-star.sh");
    if !ip_star.exists() {
        report.notes.push(format!("{} not found: no ip-star.sh comparison", ip_star.display()));
    }
    let (mut floor_up, mut up, mut down, mut ip_up, mut ip_down) = (vec![], vec![], vec![], vec![], vec![]);
    for run in 1..=args.runs {
        progress(&args, &format!("run {run}/{}: kernel floor", args.runs));
        floor_up.push(floor::star("floor", args.hosts).map_err(|e| failed(e.into()))?);
        settle();
        progress(&args, &format!("run {run}/{}: labctl", args.runs));
        up.push(timed(Command::new(&labctl).arg("up").arg(&script)).map_err(failed)?);
        down.push(timed(Command::new(&labctl).args(["down", "star"])).map_err(failed)?);
        settle();
        if ip_star.exists() {
            progress(&args, &format!("run {run}/{}: ip-star.sh", args.runs));
            let n = args.hosts.to_string();
            ip_up.push(timed(Command::new("bash").arg(&ip_star).args(["up", &n, "ipstar"])).map_err(failed)?);
            ip_down.push(timed(Command::new("bash").arg(&ip_star).args(["down", &n, "ipstar"])).map_err(failed)?);
            settle();
        }
    }
    report.floor_up_s = median(&floor_up);
    report.labctl_up_s = median(&up);
    report.labctl_down_s = median(&down);
    if !ip_up.is_empty() {
        report.ip_star_up_s = Some(median(&ip_up));
        report.ip_star_down_s = Some(median(&ip_down));
    }
    progress(&args, "mininet");
    match mininet(&references.join("mininet-star.sh"), args.hosts) {
        Ok(secs) => report.mininet_s = Some(secs),
        Err(why) => report.notes.push(format!("no Mininet comparison: {why:#}")),
    }

    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("serializes"));
    } else {
        print_report(&report);
    }
    Ok(())
}

fn progress(args: &Args, what: &str) {
    if !args.json {
        eprintln!("bench: {what}");
    }
}

/// The kernel frees namespaces asynchronously; let it finish before the next
/// measurement so one run's cleanup does not slow the next.
fn settle() {
    std::thread::sleep(Duration::from_millis(1500));
}

fn write_star(dir: &Path, hosts: usize) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("star{hosts}.lua"));
    let lua = format!("lab {{ name = \"star\" }}\nrequire(\"topo\").star({hosts})\n");
    std::fs::write(&path, lua).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// The reference scripts built into labctl, written to `dir/references`.
fn write_references(dir: &Path) -> anyhow::Result<PathBuf> {
    let folder = dir.join("references");
    std::fs::create_dir_all(&folder).with_context(|| format!("cannot create {}", folder.display()))?;
    for (name, text) in REFERENCES {
        let path = folder.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(folder)
}

const REFERENCES: &[(&str, &str)] =
    &[("ip-star.sh", include_str!("bench/ip-star.sh")), ("mininet-star.sh", include_str!("bench/mininet-star.sh"))];

fn timed(command: &mut Command) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let output = command.stdout(Stdio::null()).stderr(Stdio::piped()).output().context("cannot start")?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        return Err(anyhow!("{:?} failed ({}): {}", command, output.status, String::from_utf8_lossy(&output.stderr)));
    }
    Ok(elapsed)
}

fn median(samples: &[Duration]) -> f64 {
    let mut secs: Vec<f64> = samples.iter().map(Duration::as_secs_f64).collect();
    secs.sort_by(f64::total_cmp);
    secs.get(secs.len() / 2).copied().unwrap_or(f64::NAN)
}

fn children_max_rss_mb() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_CHILDREN).map_or(f64::NAN, |u| u.max_rss() as f64 / 1024.0)
}

fn mininet(script: &Path, hosts: usize) -> anyhow::Result<f64> {
    if !script.exists() {
        return Err(anyhow!("{} not found", script.display()));
    }
    let output = Command::new("bash").arg(script).arg(hosts.to_string()).output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let why = String::from_utf8_lossy(&output.stderr);
        return Err(match why.trim() {
            "" => anyhow!("{} exited with {} and gave no reason", script.display(), output.status),
            why => anyhow!("{why}"),
        });
    }
    // "*** completed in 17.123 seconds"
    text.split_whitespace()
        .skip_while(|w| *w != "in")
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("unexpected Mininet output: {text}"))
}

fn print_report(r: &Report) {
    let ratio = |a: f64, b: f64| format!("{:.1}x", a / b);
    println!("labctl bench: {}-host star (hosts on one bridge), median of {} runs", r.hosts, r.runs);
    println!("  {:<24} {:>9} {:>9}", "", "up", "down");
    println!("  {:<24} {:>8.3}s {:>9}", "kernel floor (ns+veth)", r.floor_up_s, "-");
    println!("  {:<24} {:>8.3}s {:>8.3}s", "labctl", r.labctl_up_s, r.labctl_down_s);
    if let (Some(up), Some(down)) = (r.ip_star_up_s, r.ip_star_down_s) {
        println!("  {:<24} {:>8.3}s {:>8.3}s", "ip-star.sh", up, down);
    }
    if let Some(m) = r.mininet_s {
        println!("  {:<24} {:>8.3}s (build+stop)", "mininet", m);
    }
    println!("ratios:");
    println!("  labctl up / kernel floor: {}", ratio(r.labctl_up_s, r.floor_up_s));
    if let (Some(up), Some(down)) = (r.ip_star_up_s, r.ip_star_down_s) {
        println!("  ip-star.sh / labctl: up {}, down {}", ratio(up, r.labctl_up_s), ratio(down, r.labctl_down_s));
    }
    if let Some(m) = r.mininet_s {
        println!("  mininet (build+stop) / labctl (up+down): {}", ratio(m, r.labctl_up_s + r.labctl_down_s));
    }
    if let (Some(up), Some(down)) = (r.large_up_s, r.large_down_s) {
        println!(
            "{}-host star, labctl alone: up {up:.3}s, down {down:.3}s, max RSS {:.1} MB",
            r.large_hosts,
            r.large_max_rss_mb.unwrap_or(f64::NAN)
        );
    }
    for note in &r.notes {
        println!("note: {note}");
    }
}
