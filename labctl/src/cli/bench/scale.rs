//! `labctl bench --scale 1000,2000,5000,10000`: the same fabric at several
//! sizes (a core router, bridges of [`PER_BRIDGE`] hosts each, every host one
//! veth with one address), each beside the kernel's floor for it (the same
//! namespaces and veths, nothing else: `apply::floor::fabric`), in one run.
//!
//! Between measurements the kernel must have finished freeing the previous
//! namespaces: `down` returns once they are unmounted, while the kernel's
//! cleanup work goes on in the background, holding the rtnl lock the next
//! measurement needs. [`settle`] waits until the count of live `struct net`
//! (`net_namespace` in /proc/slabinfo) is back where it was.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use labctl::apply::floor;
use serde::Serialize;

/// Hosts on one bridge: well under a Linux bridge's 1023 ports.
pub const PER_BRIDGE: usize = 500;
const LAB: &str = "scale";

#[derive(Debug, Serialize)]
pub struct Row {
    pub hosts: usize,
    /// Namespaces: hosts, bridges and the core router.
    pub nodes: usize,
    pub floor_up_s: f64,
    pub floor_down_s: f64,
    pub up_s: f64,
    pub down_s: f64,
    pub max_rss_mb: f64,
    pub floor_ms_per_node: f64,
    pub up_ms_per_node: f64,
    /// labctl up / floor up.
    pub ratio_to_floor: f64,
    pub ls_s: f64,
    pub show_s: f64,
    /// How long the kernel went on freeing namespaces after `down`.
    pub kernel_cleanup_s: f64,
    /// Namespaces under /run/netns and lab state left after `down` (0 is right).
    pub left_behind: usize,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub shape: String,
    pub per_bridge: usize,
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

/// `--scale`'s sizes: whole numbers of hosts, at least 1 each.
pub fn parse_size(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{text:?} is not a number of hosts (write --scale 1000,2000,5000)")),
    }
}

pub fn run(labctl: &Path, work: &Path, sizes: &[usize], progress: &dyn Fn(&str)) -> anyhow::Result<Report> {
    let baseline = live_namespaces().context("cannot read net_namespace from /proc/slabinfo")?;
    let mut report = Report {
        shape: format!("a core router, bridges of {PER_BRIDGE} hosts, one veth and one address per host"),
        per_bridge: PER_BRIDGE,
        rows: vec![],
        notes: vec![],
    };
    for &hosts in sizes {
        let nodes = hosts + hosts.div_ceil(PER_BRIDGE) + 1;
        progress(&format!("{hosts} hosts: kernel floor"));
        let (floor_up, floor_down) = floor::fabric("floor", hosts, PER_BRIDGE)?;
        settle(baseline, nodes);
        progress(&format!("{hosts} hosts: labctl up"));
        let script = write_fabric(work, hosts)?;
        let (up, rss) = run_measured(Command::new(labctl).arg("up").arg(&script), work)?;
        let ls = run_measured(Command::new(labctl).arg("ls"), work)?.0;
        let show = run_measured(Command::new(labctl).args(["show", LAB]), work)?.0;
        progress(&format!("{hosts} hosts: labctl down"));
        let down = run_measured(Command::new(labctl).args(["down", LAB]), work)?.0;
        let left_behind = left_behind();
        let cleanup = settle(baseline, nodes);
        let per_node = |d: Duration| d.as_secs_f64() * 1000.0 / nodes as f64;
        report.rows.push(Row {
            hosts,
            nodes,
            floor_up_s: floor_up.as_secs_f64(),
            floor_down_s: floor_down.as_secs_f64(),
            up_s: up.as_secs_f64(),
            down_s: down.as_secs_f64(),
            max_rss_mb: rss,
            floor_ms_per_node: per_node(floor_up),
            up_ms_per_node: per_node(up),
            ratio_to_floor: up.as_secs_f64() / floor_up.as_secs_f64(),
            ls_s: ls.as_secs_f64(),
            show_s: show.as_secs_f64(),
            kernel_cleanup_s: cleanup.as_secs_f64(),
            left_behind,
        });
    }
    if let (Some(first), Some(last)) = (report.rows.first(), report.rows.last()) {
        if report.rows.len() > 1 {
            report.notes.push(format!(
                "up per node at {} hosts is {:.2}x up per node at {} hosts (the floor's: {:.2}x)",
                last.hosts,
                last.up_ms_per_node / first.up_ms_per_node,
                first.hosts,
                last.floor_ms_per_node / first.floor_ms_per_node
            ));
        }
    }
    Ok(report)
}

/// The fabric as a lab script: bridge b holds hosts b*500+1.., on 198.18.2b.0/23
/// with the core at .1.
fn write_fabric(dir: &Path, hosts: usize) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join(format!("fabric{hosts}.lua"));
    std::fs::write(&path, fabric_script(hosts)).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

pub fn fabric_script(hosts: usize) -> String {
    format!(
        r#"lab {{ name = "{LAB}" }}
local core = node("core", {{ forwarding = true }})
local hosts, per = {hosts}, {PER_BRIDGE}
local b = 0
for first = 1, hosts, per do
  local sw = bridge("sw" .. b)
  link(core, sw, {{ ("198.18.%d.1/23"):format(2 * b) }})
  for j = 0, math.min(per, hosts - first + 1) - 1 do
    local k = j + 2
    link(node("h" .. (first + j)), sw, {{ ("198.18.%d.%d/23"):format(2 * b + k // 256, k % 256) }})
  end
  b = b + 1
end
"#
    )
}

/// Runs `command` to its end; returns how long it took and its max RSS in MB
/// (from wait4, so it is this child's alone).
fn run_measured(command: &mut Command, work: &Path) -> anyhow::Result<(Duration, f64)> {
    let errors = work.join("stderr");
    let stderr = std::fs::File::create(&errors).context("cannot create a file for stderr")?;
    let started = Instant::now();
    let child = command.stdout(Stdio::null()).stderr(stderr).spawn().context("cannot start")?;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid, and wait4 only writes into it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; status and usage are valid for writing.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let elapsed = started.elapsed();
    if pid < 0 {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        let why = std::fs::read_to_string(&errors).unwrap_or_default();
        return Err(anyhow!("{command:?} failed (wait status {status}): {}", why.trim()));
    }
    Ok((elapsed, usage.ru_maxrss as f64 / 1024.0))
}

/// Live network namespaces in the whole machine, as the slab allocator counts them.
fn live_namespaces() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/slabinfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("net_namespace "))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Waits (at most two minutes) until the kernel has freed the `nodes`
/// namespaces of the last measurement; returns how long that took. Other
/// work on the machine may hold a few namespaces of its own, hence the
/// slack; a lab smaller than it is not waited for.
fn settle(baseline: usize, nodes: usize) -> Duration {
    const SLACK: usize = 64;
    let started = Instant::now();
    while nodes > SLACK && started.elapsed() < Duration::from_secs(120) {
        match live_namespaces() {
            Some(n) if n > baseline + SLACK => std::thread::sleep(Duration::from_millis(100)),
            _ => break,
        }
    }
    let waited = started.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    waited
}

/// Namespaces in this bench's /run/netns and lab state folders still there.
fn left_behind() -> usize {
    let count = |dir: &str| std::fs::read_dir(dir).map_or(0, |d| d.flatten().count());
    count("/run/netns") + count(labctl::model::layout::STATE_DIR)
}

pub fn print(report: &Report) {
    println!("labctl bench --scale: {}", report.shape);
    println!(
        "  {:>6} {:>6} | {:>9} {:>9} | {:>9} {:>9} {:>6} {:>8} {:>8} | {:>7} {:>7} {:>5}",
        "hosts", "nodes", "floor up", "per node", "up", "per node", "ratio", "down", "max RSS", "ls", "show", "left"
    );
    for r in &report.rows {
        println!(
            "  {:>6} {:>6} | {:>8.2}s {:>7.3}ms | {:>8.2}s {:>7.3}ms {:>5.1}x {:>7.2}s {:>6.1}MB | {:>6.2}s {:>6.2}s {:>5}",
            r.hosts,
            r.nodes,
            r.floor_up_s,
            r.floor_ms_per_node,
            r.up_s,
            r.up_ms_per_node,
            r.ratio_to_floor,
            r.down_s,
            r.max_rss_mb,
            r.ls_s,
            r.show_s,
            r.left_behind
        );
    }
    let cleanup: Vec<String> = report.rows.iter().map(|r| format!("{:.1}s", r.kernel_cleanup_s)).collect();
    println!("kernel cleanup after each down (waited for before the next): {}", cleanup.join(", "));
    for note in &report.notes {
        println!("note: {note}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_whole_numbers_of_hosts() {
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size(" 20"), Ok(20));
        assert!(parse_size("0").is_err());
        assert!(parse_size("1k").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn the_fabric_puts_500_hosts_on_each_bridge() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = write_fabric(dir.path(), 1200).expect("written");
        let (script, plan) = labctl::load_and_plan(&path).expect("a valid lab");
        let lab = &script.lab;
        assert_eq!(lab.nodes.len(), 1200 + 3 + 1);
        let ports = |bridge: &str| lab.endpoints_of(bridge).count();
        assert_eq!([ports("sw0"), ports("sw1"), ports("sw2")], [501, 501, 201]);
        assert_eq!(lab.endpoints_of("core").count(), 3);
        assert!(plan.steps.len() > 1200 * 3);
    }
}
