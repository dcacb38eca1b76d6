//! `labctl bench-traffic`: packets per second of labctl's load generator
//! (`blast`, every mode) against trafgen (netsniff-ng) and iperf3 UDP, on
//! one veth pair, in one run, counted the same way for every tool.
//!
//! The setup, inside a throwaway network and mount namespace:
//!
//! - a lab of two nodes, tx and rx, one veth between them, no RPS: the
//!   sender and the kernel's receive work for its packets share one core
//!   (CPU 0; receivers, where a tool has one, on CPU 1);
//! - rx drops the measured datagrams at its interface's ingress hook (an
//!   nftables netdev rule on their UDP length), before IP: every tool's
//!   packets cost the receiving side the same, and little, so the figure
//!   is the sender's. (Left to the IP stack, a datagram to a listening
//!   socket costs more than one to a closed port, on the same core, and
//!   that, not the generator, would decide the ranking.) iperf3's control
//!   connection and its small UDP "connect" datagram are not dropped;
//! - every tool sends 64-byte UDP payloads (106-byte frames) from tx to rx
//!   for a warm-up, then `--duration` is measured as the change of rx:eth0's
//!   rx_packets (what the veth delivered to rx), then the tool is stopped;
//! - `--rounds` rounds, the tools in a different order each round; the
//!   median of each tool is reported, with the ratios between them.
//!
//! Every helper process runs in its own process group and is stopped
//! (SIGINT, then SIGKILL) and waited for before the next one starts; the
//! lab is torn down at the end, also on error.

use std::fs::File;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use labctl::apply;
use labctl::observe::counters::link_stats;
use labctl::sys::netns;
use labctl::traffic::{self, BlastMode, BlastOptions};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::Serialize;

use super::{Failure, EXIT_FAILURE};

const LAB: &str = "traffic";
const SRC: &str = "198.18.0.1";
const DST: &str = "198.18.0.2";
const PORT: u16 = 9000;
const IPERF_PORT: u16 = 5201;
/// The sending core, and the core of receivers (iperf3's server). trafgen
/// pins its single worker to CPU 0 itself.
const SENDER_CPU: usize = 0;
const RECEIVER_CPU: usize = 1;
const WARM_UP: Duration = Duration::from_millis(700);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// How long each tool is measured in each round, e.g. 3s
    #[arg(long, value_parser = humantime::parse_duration, default_value = "3s")]
    duration: Duration,
    /// Rounds; each tool's median is reported
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// UDP payload bytes
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Print the results as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Tool {
    BlastRing,
    BlastMmsg,
    BlastGso,
    BlastXdp,
    Trafgen,
    Iperf3,
}

/// labctl's own generator, every mode.
const BLASTS: [Tool; 4] = [Tool::BlastRing, Tool::BlastMmsg, Tool::BlastGso, Tool::BlastXdp];

impl Tool {
    fn label(self) -> &'static str {
        match self {
            Tool::BlastRing => "labctl blast --mode ring",
            Tool::BlastMmsg => "labctl blast --mode mmsg",
            Tool::BlastGso => "labctl blast --mode gso",
            Tool::BlastXdp => "labctl blast --mode xdp",
            Tool::Trafgen => "trafgen (netsniff-ng)",
            Tool::Iperf3 => "iperf3 -u -b 0",
        }
    }
}

#[derive(Debug, Serialize)]
struct Measured {
    tool: Tool,
    /// Median of the rounds, received packets per second at rx:eth0.
    pps: f64,
    /// Median bytes per received packet (rx_bytes / rx_packets).
    bytes_per_packet: f64,
    samples: Vec<f64>,
}

#[derive(Debug, Serialize)]
struct Report {
    size: usize,
    frame_bytes: usize,
    duration_s: f64,
    rounds: usize,
    sender_cpu: usize,
    results: Vec<Measured>,
    notes: Vec<String>,
}

pub fn run(args: Args) -> Result<(), Failure> {
    apply::check_privileges()?;
    let failed = |e: anyhow::Error| Failure::new(EXIT_FAILURE, e);
    if args.rounds == 0 || args.duration.is_zero() {
        return Err(Failure::bad_input(anyhow!("--rounds and --duration must be more than 0")));
    }
    if !(18..=1400).contains(&args.size) {
        return Err(Failure::bad_input(anyhow!("--size must be 18..=1400 bytes")));
    }
    netns::isolate_process().map_err(|e| failed(e.into()))?;
    apply::catch_interrupts();
    let work = Path::new("/run/labctl-bench-traffic");
    std::fs::create_dir_all(work).map_err(|e| failed(e.into()))?;
    let lab = Lab::up(work).map_err(failed)?;
    let result = measure(&args, &lab, work);
    lab.down();
    let report = result.map_err(failed)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("serializes"));
    } else {
        print_report(&report);
    }
    if apply::interrupted() {
        return Err(Failure::new(super::EXIT_INTERRUPTED, anyhow!("interrupted; the lab was torn down")));
    }
    Ok(())
}

/// The running two-node lab.
struct Lab {
    tx: File,
    rx: File,
    tx_mac: String,
    rx_mac: String,
}

impl Lab {
    fn up(work: &Path) -> anyhow::Result<Lab> {
        let script = work.join("traffic.lua");
        std::fs::write(
            &script,
            format!(
                "lab {{ name = \"{LAB}\", description = \"labctl bench-traffic: one veth pair\" }}\n\
                 local tx = node(\"tx\")\nlocal rx = node(\"rx\")\n\
                 link(tx, rx, {{ \"{SRC}/24\", \"{DST}/24\" }})\n\
                 for _, n in ipairs {{ tx, rx }} do\n  n:sysctl(\"net.ipv6.conf.default.disable_ipv6\", 1)\nend\n"
            ),
        )?;
        let (script_data, plan) = labctl::load_and_plan(&script)?;
        apply::up(&script_data.lab, &script, &plan, &|_, _| {}).context("cannot build the bench lab")?;
        let open = |node: &str| netns::open(&script_data.lab.netns_name(node));
        let mac = |node: &str| {
            let end = script_data.lab.endpoints_of(node).next().expect("each node has one link end");
            script_data.lab.mac_of(end).to_string()
        };
        Ok(Lab { tx: open("tx")?, rx: open("rx")?, tx_mac: mac("tx"), rx_mac: mac("rx") })
    }

    fn down(&self) {
        if let Err(e) = apply::down(LAB) {
            eprintln!("labctl: could not remove the bench lab: {e}");
        }
    }

    /// rx:eth0's rx_packets and rx_bytes.
    fn received(&self) -> anyhow::Result<(u64, u64)> {
        let stats = link_stats(&self.rx, "eth0")?;
        let get = |name: &str| stats.get(name).copied().unwrap_or(0);
        Ok((get("rx_packets"), get("rx_bytes")))
    }
}

fn measure(args: &Args, lab: &Lab, work: &Path) -> anyhow::Result<Report> {
    let mut notes = Vec::new();
    let udp_len = 8 + args.size;
    let rule = format!(
        "add table netdev bench; \
         add chain netdev bench ingress {{ type filter hook ingress device eth0 priority 0; policy accept; }}; \
         add rule netdev bench ingress udp length {udp_len} counter drop"
    );
    run_to_end(in_node(&mut Command::new("nft"), &lab.rx, None).arg(&rule))
        .context("cannot add the ingress drop rule in rx (is nftables installed?)")?;

    // GSO mode: cut datagrams in software before the veth, so that each is
    // a packet of its own on it (by default a veth carries the uncut
    // message whole, as one packet).
    netns::run_in(&lab.tx, || feature_off("eth0", "tx-udp-segmentation"))?
        .context("cannot turn off tx-udp-segmentation on tx:eth0")?;
    let mut tools = BLASTS.to_vec();
    if found("trafgen") {
        tools.push(Tool::Trafgen);
    } else {
        notes.push("trafgen not found (apt-get install netsniff-ng): no trafgen comparison".into());
    }
    if found("iperf3") {
        tools.push(Tool::Iperf3);
    } else {
        notes.push("iperf3 not found (apt-get install iperf3): no iperf3 comparison".into());
    }
    let trafgen_conf = write_trafgen_conf(work, lab, args.size)?;
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); tools.len()];
    for round in 0..args.rounds {
        for k in 0..tools.len() {
            // A different order each round, so slow drifts of the machine hit every tool alike.
            let i = (k + round) % tools.len();
            if apply::interrupted() {
                break;
            }
            if !args.json {
                eprintln!("bench-traffic: round {}/{}: {}", round + 1, args.rounds, tools[i].label());
            }
            let sample = match tools[i] {
                Tool::BlastRing => blast(args, lab, BlastMode::PacketRing)?,
                Tool::BlastMmsg => blast(args, lab, BlastMode::Sendmmsg)?,
                Tool::BlastGso => blast(args, lab, BlastMode::Gso)?,
                Tool::BlastXdp => blast(args, lab, BlastMode::AfXdp)?,
                Tool::Trafgen => trafgen(args, lab, &trafgen_conf)?,
                Tool::Iperf3 => iperf3(args, lab)?,
            };
            samples[i].push(sample);
            settle();
        }
    }
    let results = tools
        .iter()
        .zip(samples)
        .map(|(&tool, samples)| {
            let pps: Vec<f64> = samples.iter().map(|s| s.pps).collect();
            let sizes: Vec<f64> = samples.iter().map(|s| s.bytes_per_packet).collect();
            Measured { tool, pps: median(&pps), bytes_per_packet: median(&sizes), samples: pps }
        })
        .collect();
    Ok(Report {
        size: args.size,
        frame_bytes: 14 + 20 + 8 + args.size,
        duration_s: args.duration.as_secs_f64(),
        rounds: args.rounds,
        sender_cpu: SENDER_CPU,
        results,
        notes,
    })
}

/// What rx:eth0 received over `duration`, after the warm-up.
#[derive(Debug, Clone, Copy)]
struct Sample {
    pps: f64,
    /// Bytes per packet: the frame size when every datagram was a packet of
    /// its own, a multiple of it if super-packets got through whole.
    bytes_per_packet: f64,
}

fn window(args: &Args, lab: &Lab) -> anyhow::Result<Sample> {
    sleep_unless_interrupted(WARM_UP);
    let (before, start) = (lab.received()?, Instant::now());
    sleep_unless_interrupted(args.duration);
    let (after, elapsed) = (lab.received()?, start.elapsed());
    let packets = after.0.saturating_sub(before.0);
    let bytes = after.1.saturating_sub(before.1);
    Ok(Sample {
        pps: packets as f64 / elapsed.as_secs_f64(),
        bytes_per_packet: if packets > 0 { bytes as f64 / packets as f64 } else { 0.0 },
    })
}

fn blast(args: &Args, lab: &Lab, mode: BlastMode) -> anyhow::Result<Sample> {
    let mut options = BlastOptions::new(SocketAddr::new(DST.parse()?, PORT), mode);
    options.size = args.size;
    options.flows = 1;
    options.cpu = Some(SENDER_CPU);
    // Nothing listens: the datagrams never get past rx's ingress anyway.
    options.listen = false;
    options.duration = Some(WARM_UP + args.duration + Duration::from_millis(300));
    std::thread::scope(|scope| {
        let sender = scope.spawn(|| traffic::blast(&lab.tx, &lab.rx, &options));
        let sample = window(args, lab);
        let report = sender.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        report.with_context(|| format!("blast in {mode:?} mode"))?;
        sample
    })
}

fn trafgen(args: &Args, lab: &Lab, conf: &Path) -> anyhow::Result<Sample> {
    let mut command = Command::new("trafgen");
    // One worker (-P 1), which trafgen pins to CPU 0; no changes to the
    // machine's socket memory defaults or IRQ affinities.
    command.args(["-o", "eth0", "-P", "1", "--no-sock-mem", "--notouch-irq", "-C", "-i"]).arg(conf);
    let helper = Helper::start("trafgen", in_node(&mut command, &lab.tx, Some(SENDER_CPU)))?;
    let sample = window(args, lab);
    helper.stop();
    sample
}

fn iperf3(args: &Args, lab: &Lab) -> anyhow::Result<Sample> {
    let port = IPERF_PORT.to_string();
    let mut server = Command::new("iperf3");
    server.args(["-s", "-1", "-p", &port, "-A", &RECEIVER_CPU.to_string()]);
    let server = Helper::start("iperf3 server", in_node(&mut server, &lab.rx, Some(RECEIVER_CPU)))?;
    sleep_unless_interrupted(Duration::from_millis(300));
    let seconds = (WARM_UP + args.duration).as_secs_f64().ceil() as u64 + 1;
    let mut client = Command::new("iperf3");
    client.args(["-u", "-b", "0", "-l", &args.size.to_string(), "-c", DST, "-p", &port]);
    client.args(["-t", &seconds.to_string(), "-A", &SENDER_CPU.to_string()]);
    let client = Helper::start("iperf3 client", in_node(&mut client, &lab.tx, Some(SENDER_CPU)))?;
    let sample = window(args, lab);
    client.stop();
    server.stop();
    sample
}

/// A helper process in its own process group, stopped with all its
/// children (trafgen forks its worker) by `stop` or on drop.
struct Helper {
    name: &'static str,
    child: Option<Child>,
}

impl Helper {
    fn start(name: &'static str, command: &mut Command) -> anyhow::Result<Helper> {
        let child = command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        Ok(Helper { name, child: Some(child) })
    }

    /// SIGINT to the group (tools print their summary and exit), SIGKILL
    /// after 3 s; waits for the leader, then makes sure the group is gone.
    fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let group = Pid::from_raw(child.id() as i32);
        let _ = killpg(group, Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    eprintln!("bench-traffic: {} did not stop on SIGINT; killing it", self.name);
                    let _ = killpg(group, Signal::SIGKILL);
                    let _ = child.wait();
                    break;
                }
            }
        }
        // Children of the leader (trafgen's worker) that outlived it.
        let _ = killpg(group, Signal::SIGKILL);
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Runs the command inside the node behind `netns`, pinned to `cpu` if given.
fn in_node<'a>(command: &'a mut Command, netns: &File, cpu: Option<usize>) -> &'a mut Command {
    let fd = netns.as_raw_fd();
    // Built before fork: the child may not allocate.
    // SAFETY: cpu_set_t is plain data; CPU_SET only writes into it.
    let cpus = cpu.map(|cpu| unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        set
    });
    // SAFETY: between fork and exec only setns(2) and sched_setaffinity(2)
    // run: no allocation, no locks. `fd` stays open in the parent until the
    // command is spawned.
    unsafe {
        command.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(set) = &cpus {
                if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    command
}

fn run_to_end(command: &mut Command) -> anyhow::Result<()> {
    let out = command.stdin(Stdio::null()).output()?;
    if !out.status.success() {
        return Err(anyhow!("{:?} failed ({}): {}", command, out.status, String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(())
}

/// The same frame as blast's: Ethernet, IPv4 (TTL 64), UDP to PORT, `size` bytes of 0x5a.
fn write_trafgen_conf(work: &Path, lab: &Lab, size: usize) -> anyhow::Result<PathBuf> {
    let path = work.join("udp.trafgen");
    let mut file = File::create(&path)?;
    writeln!(
        file,
        "{{\n  eth(da={}, sa={}),\n  ipv4(saddr={SRC}, daddr={DST}, ttl=64),\n  udp(sp=49152, dp={PORT}),\n  fill(0x5a, {size})\n}}",
        lab.rx_mac, lab.tx_mac
    )?;
    Ok(path)
}

fn found(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn sleep_unless_interrupted(d: Duration) {
    let until = Instant::now() + d;
    while !apply::interrupted() {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(20)));
    }
}

/// Lets queues drain and the previous tool's exit settle before the next.
fn settle() {
    sleep_unless_interrupted(Duration::from_millis(500));
}

fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn print_report(r: &Report) {
    println!(
        "labctl bench-traffic: {}-byte UDP payloads ({}-byte frames) on one veth pair, senders on CPU {}, \
         received packets per second at rx:eth0, median of {} x {:.1}s",
        r.size, r.frame_bytes, r.sender_cpu, r.rounds, r.duration_s
    );
    for m in &r.results {
        let samples: Vec<String> = m.samples.iter().map(|s| format!("{:.0}", s / 1e3)).collect();
        println!(
            "  {:<26} {:>10.0} pps  {:>6.0} bytes/packet  (rounds, kpps: {})",
            m.tool.label(),
            m.pps,
            m.bytes_per_packet,
            samples.join(" ")
        );
    }
    let pps = |tool: Tool| r.results.iter().find(|m| m.tool == tool).map(|m| m.pps);
    println!("ratios:");
    for blast in BLASTS {
        for other in [Tool::Trafgen, Tool::Iperf3] {
            if let (Some(a), Some(b)) = (pps(blast), pps(other)) {
                println!("  {} / {}: {:.2}x", blast.label(), other.label(), a / b);
            }
        }
    }
    if let (Some(t), Some(i)) = (pps(Tool::Trafgen), pps(Tool::Iperf3)) {
        println!("  {} / {}: {:.2}x", Tool::Trafgen.label(), Tool::Iperf3.label(), t / i);
    }
    let best = BLASTS.into_iter().filter_map(|tool| pps(tool).map(|p| (tool, p))).max_by(|a, b| a.1.total_cmp(&b.1));
    if let (Some((tool, b)), Some(t)) = (best, pps(Tool::Trafgen)) {
        let verdict = if b >= 1.5 * t { "met" } else { "not met" };
        println!("aim (blast at least 1.5x trafgen on one core): {verdict} by {}: {:.2}x", tool.label(), b / t);
    }
    for note in &r.notes {
        println!("note: {note}");
    }
}

/// Turns one netdev feature off by its ethtool name ("tx-udp-segmentation")
/// on `ifname` in the calling thread's namespace, through the ethtool
/// ioctl: the feature's bit is found by name (bit numbers differ between
/// kernels), then ETHTOOL_SFEATURES clears it. By hand, as in apply/tune.rs:
/// no crate sets features yet.
fn feature_off(ifname: &str, feature: &str) -> std::io::Result<()> {
    const ETHTOOL_GSTRINGS: u32 = 0x1b;
    const ETHTOOL_GSSET_INFO: u32 = 0x37;
    const ETHTOOL_SFEATURES: u32 = 0x3b;
    const ETH_SS_FEATURES: u32 = 4;
    const ETH_GSTRING_LEN: usize = 32;

    #[repr(C)]
    struct IfReq {
        name: [u8; libc::IFNAMSIZ],
        data: *mut libc::c_void,
        _rest: [u8; 16],
    }
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    let ioctl = |data: *mut libc::c_void| -> std::io::Result<()> {
        let mut request = IfReq { name: [0; libc::IFNAMSIZ], data, _rest: [0; 16] };
        let name = ifname.as_bytes();
        request.name[..name.len().min(libc::IFNAMSIZ - 1)].copy_from_slice(&name[..name.len().min(libc::IFNAMSIZ - 1)]);
        // SAFETY: SIOCETHTOOL reads the ifreq and the command buffer it points to, both alive here
        // and sized for the command (see each caller).
        let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCETHTOOL, &mut request) };
        if rc < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    // struct ethtool_sset_info: cmd, reserved, sset_mask (u64), then one u32 per set asked.
    let mut info = [0u32; 5];
    info[0] = ETHTOOL_GSSET_INFO;
    info[2] = 1 << ETH_SS_FEATURES; // low half of the little-endian u64 mask
    ioctl(info.as_mut_ptr().cast())?;
    let count = info[4] as usize;
    // struct ethtool_gstrings: cmd, string_set, len, then len names of 32 bytes.
    let mut strings = vec![0u32; 3 + count * ETH_GSTRING_LEN / 4];
    strings[..3].copy_from_slice(&[ETHTOOL_GSTRINGS, ETH_SS_FEATURES, count as u32]);
    ioctl(strings.as_mut_ptr().cast())?;
    // SAFETY: the u32 buffer viewed as its bytes.
    let bytes = unsafe { std::slice::from_raw_parts(strings[3..].as_ptr().cast::<u8>(), count * ETH_GSTRING_LEN) };
    let bit = bytes
        .chunks_exact(ETH_GSTRING_LEN)
        .position(|name| name.split(|&b| b == 0).next() == Some(feature.as_bytes()))
        .ok_or_else(|| std::io::Error::other(format!("the kernel has no feature {feature:?}")))?;
    // struct ethtool_sfeatures: cmd, size (blocks), then { valid, requested } per block of 32.
    let blocks = count.div_ceil(32);
    let mut set = vec![0u32; 2 + 2 * blocks];
    set[0] = ETHTOOL_SFEATURES;
    set[1] = blocks as u32;
    set[2 + 2 * (bit / 32)] = 1 << (bit % 32); // valid: change this one; requested: 0 (off)
    ioctl(set.as_mut_ptr().cast())
}
