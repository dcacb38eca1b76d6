//! Applying [`Step::StartIpsec`]: IPsec on the nodes of a lab, with one of
//! two implementations (`backend`):
//!
//! - `kernel` (xfrm.rs): XFRM states and policies over netlink, the kernel's
//!   own ESP, raw protocol 50 on the wire;
//! - `strongswan` (strongswan.rs): one charon per node, ESP in user space
//!   (kernel-libipsec, TUN `ipsec0`), ESP-in-UDP 4500 on the wire;
//! - `auto`: `kernel` if the kernel accepts an ESP SA (probed in a scratch
//!   namespace), `strongswan` otherwise.
//!
//! Teardown: XFRM objects, TUN devices and routes live in the node's
//! namespace and go with it. Daemons are stopped first through the pid each
//! wrote to its pidfile before it exec'd (see [`stop_journaled`]); the
//! namespace sweep of teardown.rs catches any that never got that far.

pub mod nl;
pub mod strongswan;
pub mod vici;
pub mod xfrm;

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::model::{Backend, IpsecMode};
use crate::plan::{IpsecTunnel, Step};
use crate::sys::netns;
pub use strongswan::StrongswanError;
pub use xfrm::{NoEsp, XfrmError};

/// How long `up` waits for every tunnel to be established.
pub const UP_DEADLINE: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum IpsecError {
    #[error(transparent)]
    Strongswan(#[from] StrongswanError),
    #[error(transparent)]
    Xfrm(#[from] XfrmError),
    #[error("backend kernel: this kernel has no ESP ({0}); use backend = \"strongswan\" or \"auto\"")]
    NoEsp(NoEsp),
    #[error("transport mode needs the kernel's ESP, which this kernel lacks ({0}); strongSwan's kernel-libipsec does tunnel mode only")]
    TransportWithoutEsp(NoEsp),
    #[error("cannot {what} {path}: {source}")]
    Io { what: &'static str, path: std::path::PathBuf, source: std::io::Error },
    #[error("cannot add the fail-closed rule `to {0} unreachable`: {1}")]
    Route(IpNet, nl::NlError),
    #[error(transparent)]
    Netns(#[from] netns::NetnsError),
    #[error("interrupted")]
    Interrupted,
}

/// What `auto` picks on this machine, and why.
#[derive(Debug, Clone)]
pub struct AutoChoice {
    pub backend: Backend,
    /// `Ok` if the kernel accepted an ESP SA, else what it said.
    pub esp: Result<(), NoEsp>,
}

impl AutoChoice {
    pub fn reason(&self) -> String {
        match &self.esp {
            Ok(()) => format!("the kernel accepts ESP SAs with {}", xfrm::GCM),
            Err(why) => format!("the kernel has no ESP: {why}"),
        }
    }
}

/// Probes ESP once per process: on a thread moved into a fresh network
/// namespace, which vanishes with the thread (and the SA with it).
pub fn probe_esp() -> Result<(), NoEsp> {
    static PROBE: OnceLock<Result<(), NoEsp>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            crate::sys::netns::in_scratch(xfrm::probe_esp)
                .unwrap_or_else(|e| Err(NoEsp::NoScratch(std::sync::Arc::new(e))))
        })
        .clone()
}

pub fn auto_choice() -> AutoChoice {
    let esp = probe_esp();
    AutoChoice { backend: if esp.is_ok() { Backend::Kernel } else { Backend::Strongswan }, esp }
}

/// The backend `backend` means here: `auto` resolved by the probe.
pub fn resolve(backend: Backend) -> Backend {
    match backend {
        Backend::Auto => auto_choice().backend,
        other => other,
    }
}

/// The backend a node's IPsec was started with (written at start).
pub fn started_backend(dir: &Path) -> Option<Backend> {
    std::fs::read_to_string(dir.join("backend")).ok()?.trim().parse().ok()
}

/// Runs the IPsec steps of a plan. `netns` maps node names to their
/// namespaces. On failure, the index and step that failed.
pub fn start<'a>(
    steps: &[(usize, &'a Step)],
    netns: &HashMap<&str, &File>,
) -> Result<(), (usize, &'a Step, IpsecError)> {
    let mut started: Vec<(usize, &Step, &str, &Path, &[IpsecTunnel])> = Vec::new();
    for &(index, step) in steps {
        let Step::StartIpsec { node, backend, dir, tunnels } = step else { continue };
        let fail = |e: IpsecError| (index, step, e);
        let backend = check_backend(*backend, tunnels).map_err(fail)?;
        std::fs::create_dir_all(dir)
            .map_err(|source| fail(IpsecError::Io { what: "create", path: dir.clone(), source }))?;
        let marker = dir.join("backend");
        std::fs::write(&marker, backend.to_string())
            .map_err(|source| fail(IpsecError::Io { what: "write", path: marker, source }))?;
        let ns = netns[node.as_str()];
        match backend {
            Backend::Kernel => {
                netns::run_in(ns, || xfrm::install(tunnels))
                    .map_err(|e| fail(e.into()))?
                    .map_err(|e| fail(e.into()))?;
            }
            _ => {
                strongswan::write_config(dir, tunnels).map_err(|e| fail(e.into()))?;
                fail_closed_rules(ns, tunnels).map_err(fail)?;
                strongswan::start(ns, dir).map_err(|e| fail(e.into()))?;
                strongswan::load(dir).map_err(|e| fail(e.into()))?;
                started.push((index, step, node, dir, tunnels));
            }
        }
        if crate::apply::interrupted() {
            return Err(fail(IpsecError::Interrupted));
        }
    }
    // Every daemon is listening with its config: now the initiators start.
    let deadline = Instant::now() + UP_DEADLINE;
    for &(index, step, _, dir, tunnels) in &started {
        for t in tunnels.iter().filter(|t| t.initiator) {
            strongswan::initiate(dir, &t.name, UP_DEADLINE).map_err(|e| (index, step, e.into()))?;
        }
    }
    for &(index, step, node, dir, tunnels) in &started {
        strongswan::wait_installed(node, dir, tunnels, deadline).map_err(|e| (index, step, e.into()))?;
    }
    Ok(())
}

fn check_backend(backend: Backend, tunnels: &[IpsecTunnel]) -> Result<Backend, IpsecError> {
    let transport = tunnels.iter().any(|t| t.mode == IpsecMode::Transport);
    match backend {
        Backend::Kernel => probe_esp().map(|()| Backend::Kernel).map_err(IpsecError::NoEsp),
        Backend::Strongswan => Ok(Backend::Strongswan),
        Backend::Auto => {
            let choice = auto_choice();
            match (&choice.esp, transport) {
                (Err(why), true) => Err(IpsecError::TransportWithoutEsp(why.clone())),
                _ => Ok(choice.backend),
            }
        }
    }
}

/// Priority of the fail-closed rules: right after charon's own rule 220
/// (which looks up its table 220, where the routes into `ipsec0` are), and
/// before the main table (32766).
pub const FAIL_CLOSED_PRIORITY: u32 = 221;

/// With user-space ESP, the route into the tunnel (via `ipsec0`, in
/// charon's table 220) exists only while charon runs. A routing rule
/// `to <remote subnet> unreachable` after charon's makes the node fail
/// closed: with the tunnel down its traffic for the far subnet is dropped
/// (and the sender told "net unreachable"), never sent in clear along the
/// default route or any route of the main table.
fn fail_closed_rules(ns: &File, tunnels: &[IpsecTunnel]) -> Result<(), IpsecError> {
    let subnets: Vec<IpNet> = tunnels.iter().filter_map(|t| t.remote_subnet).collect();
    if subnets.is_empty() {
        return Ok(());
    }
    netns::run_in(ns, || -> Result<(), IpsecError> {
        let mut nl =
            nl::Nl::open(netlink_sys::protocols::NETLINK_ROUTE).map_err(|e| IpsecError::Route(subnets[0], e))?;
        for subnet in &subnets {
            let mut rule = RuleMessage::default();
            rule.header.family = if subnet.addr().is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
            rule.header.dst_len = subnet.prefix_len();
            rule.header.action = RuleAction::Unreachable;
            rule.attributes =
                vec![RuleAttribute::Destination(subnet.network()), RuleAttribute::Priority(FAIL_CLOSED_PRIORITY)];
            nl.request_with(
                RouteNetlinkMessage::NewRule(rule),
                netlink_packet_core::NLM_F_CREATE | netlink_packet_core::NLM_F_EXCL,
            )
            .map_err(|e| IpsecError::Route(*subnet, e))?;
        }
        Ok(())
    })?
}

/// Stops the daemons of every journaled IPsec step (SIGTERM, then SIGKILL
/// after 2 s). Returns how many were running.
pub fn stop_journaled(journal: &[Step]) -> usize {
    journal
        .iter()
        .filter_map(|s| match s {
            Step::StartIpsec { node, dir, .. } => Some((node, dir)),
            _ => None,
        })
        .filter(|(_, dir)| stop_daemon(dir))
        .count()
}

/// Stops the charon whose pid is in `dir`/charon.pid, if it still runs.
/// The pid is trusted only while it names charon (or a child still on its
/// way to exec'ing it), so a recycled pid is never killed.
pub fn stop_daemon(dir: &Path) -> bool {
    let Some(pid) = std::fs::read_to_string(strongswan::pidfile(dir)).ok().and_then(|t| t.trim().parse::<i32>().ok())
    else {
        return false;
    };
    if !is_our_daemon(pid, dir) {
        return false;
    }
    let pid = Pid::from_raw(pid);
    let _ = kill(pid, Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(2);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    if alive(pid) {
        let _ = kill(pid, Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(2);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    true
}

/// Is `pid` the daemon started for `dir`: charon with our config, or a
/// child of labctl that has not exec'd it yet (its log is open)?
fn is_our_daemon(pid: i32, dir: &Path) -> bool {
    let proc = format!("/proc/{pid}");
    if let Ok(environ) = std::fs::read(format!("{proc}/environ")) {
        let conf = format!("STRONGSWAN_CONF={}", dir.join("strongswan.conf").display());
        if environ.split(|b| *b == 0).any(|var| var == conf.as_bytes()) {
            return true;
        }
    }
    // Before exec the environment is labctl's; its stderr is already the log.
    let log = std::fs::metadata(strongswan::log(dir)).ok();
    let stderr = std::fs::metadata(format!("{proc}/fd/2")).ok();
    matches!((log, stderr), (Some(a), Some(b)) if a.dev() == b.dev() && a.ino() == b.ino())
}

/// Alive and not a zombie; reaps it if it is our child.
fn alive(pid: Pid) -> bool {
    let _ = waitpid(pid, Some(WaitPidFlag::WNOHANG));
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X"))
        }
    }
}

/// Starts a node's charon again (after `x:ipsec_stop`) with the config it
/// was started with, and brings its tunnels back up.
pub fn restart(ns: &File, dir: &Path, tunnels: &[IpsecTunnel], node: &str) -> Result<(), IpsecError> {
    stop_daemon(dir);
    strongswan::start(ns, dir)?;
    strongswan::load(dir)?;
    let deadline = Instant::now() + UP_DEADLINE;
    // From this side, initiator or not: the peer may have nothing left to start from.
    for t in tunnels {
        strongswan::initiate(dir, &t.name, UP_DEADLINE)?;
    }
    strongswan::wait_installed(node, dir, tunnels, deadline)?;
    Ok(())
}
