//! Runs a plan's steps against the kernel.
//!
//! Two streams overlap, one per core. A worker thread creates the
//! namespaces, writing each one's sysctls while it is still inside it, and
//! hands every finished node over. Meanwhile this thread sends netlink
//! requests: a bridge or veth as soon as the namespaces it needs exist. The
//! phases after that (device sysctls, addresses, routes) run as before, each
//! phase's netlink requests all at once over the per-namespace connections.

use std::collections::HashMap;
use std::fs::File;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;

use super::faults::Faults;
use super::netlink::{self, Netlink, NewLink, VethOptions};
use super::netns::{self, NetnsError, ThreadNetns};
use super::schedule::{self, Scheduler};
use super::state::LabState;
use super::{interrupt, sysctl, ApplyError};
use crate::plan::{Phase, Plan, Step};

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error(transparent)]
    Netlink(#[from] netlink::Error),
    #[error("cannot open a netlink socket: {0}")]
    Socket(std::io::Error),
    #[error("cannot write {path}: {source}")]
    Sysctl { path: String, source: std::io::Error },
    #[error(transparent)]
    Tune(#[from] super::tune::TuneError),
    #[error("failed on purpose (LABCTL_FAULT_FAIL_AT)")]
    Injected,
    #[error(transparent)]
    Ipsec(#[from] super::ipsec::IpsecError),
    #[error(transparent)]
    Xdp(#[from] super::xdp::XdpError),
    #[error(transparent)]
    Nic(#[from] super::nic::NicError),
}

/// How long one phase of the plan took. Namespaces and links overlap, so
/// their phases report the time until each was complete.
#[derive(Debug, Clone)]
pub struct PhaseTiming {
    pub phase: Phase,
    pub steps: usize,
    pub elapsed: Duration,
}

/// Called after each applied step with (steps done, steps in all).
pub type Progress<'a> = &'a dyn Fn(usize, usize);

/// A node whose namespace exists, with a netlink connection inside it.
struct Node {
    netns: File,
    netlink: Netlink,
}

/// What the namespace worker reports, in order.
enum Report {
    Applied(usize),
    Ready(String, Node),
    Failed(usize, StepError),
}

/// Counts applied steps: progress, and the fault hook after each one.
struct Tracker<'a> {
    faults: Faults,
    progress: Progress<'a>,
    done: usize,
    total: usize,
}

impl Tracker<'_> {
    fn applied(&mut self, index: usize) {
        self.faults.applied(index + 1);
        self.done += 1;
        (self.progress)(self.done, self.total);
    }
}

/// Builds everything in `plan`; returns the time of each phase.
pub fn execute(
    plan: &Plan,
    state: &LabState,
    faults: Faults,
    progress: Progress<'_>,
) -> Result<Vec<PhaseTiming>, ApplyError> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(ApplyError::Runtime)?;
    let home = ThreadNetns::current()?;
    let phases = plan.phases();
    // Everything up to addresses streams as dependencies allow; device
    // sysctls and routes (which need every address in place) come after.
    let (early, late): (Vec<_>, Vec<_>) = phases.into_iter().partition(|(p, _)| {
        !matches!(p, Phase::Nics | Phase::DeviceSysctls | Phase::Routes | Phase::Xdp | Phase::Ipsec)
    });
    let per_node: Vec<(usize, &Step)> =
        early.iter().filter(|(p, _)| *p <= Phase::NamespaceSysctls).flat_map(|(_, s)| s.clone()).collect();
    let links: Vec<(usize, &Step)> =
        early.iter().filter(|(p, _)| *p > Phase::NamespaceSysctls).flat_map(|(_, s)| s.clone()).collect();
    // Journal all of it before the first namespace exists.
    state.journal(per_node.iter().chain(&links).map(|(_, s)| *s))?;

    let mut tracker = Tracker { faults, progress, done: 0, total: plan.steps.len() };
    let stop = &AtomicBool::new(false);
    let (tx, rx) = mpsc::unbounded_channel();
    let per_node = &per_node;
    let started = Instant::now();
    let result = std::thread::scope(|scope| {
        let handle = runtime.handle().clone();
        let worker = scope.spawn(move || {
            let _runtime = handle.enter();
            create_nodes(per_node, faults, stop, &tx)
        });
        let result = runtime.block_on(async {
            let mut nodes = HashMap::new();
            let mut timings = build_nodes_and_links(per_node, &links, rx, &mut nodes, &mut tracker, started).await?;
            for (phase, steps) in &late {
                let started = Instant::now();
                state.journal(steps.iter().map(|(_, s)| *s))?;
                if *phase == Phase::DeviceSysctls {
                    let done = write_device_sysctls(&nodes, steps, &state.dir().join("sysfs"), &mut tracker);
                    home.restore()?;
                    done?;
                } else if *phase == Phase::Ipsec {
                    start_ipsec(&nodes, steps, &mut tracker)?;
                } else if *phase == Phase::Xdp {
                    attach_xdp(&nodes, steps, &mut tracker)?;
                } else if *phase == Phase::Nics {
                    claim_nics(&nodes, steps, state, &mut tracker)?;
                } else {
                    run_concurrently(&nodes, steps, &mut tracker).await?;
                }
                timings.push(PhaseTiming { phase: *phase, steps: steps.len(), elapsed: started.elapsed() });
            }
            Ok(timings)
        });
        // No namespace may appear after this returns: rollback starts then.
        stop.store(true, Ordering::SeqCst);
        let _ = worker.join();
        result
    });
    home.restore()?;
    result
}

/// The worker: each node's namespace, then its namespace sysctls written
/// from inside it, then a netlink connection opened there.
fn create_nodes(steps: &[(usize, &Step)], faults: Faults, stop: &AtomicBool, tx: &mpsc::UnboundedSender<Report>) {
    let mut current: Option<(String, File)> = None;
    let send_ready = |current: &mut Option<(String, File)>| -> Result<(), StepError> {
        if let Some((node, netns)) = current.take() {
            let netlink = Netlink::open().map_err(StepError::Socket)?;
            let _ = tx.send(Report::Ready(node, Node { netns, netlink }));
        }
        Ok(())
    };
    // Steps come namespace by namespace: a node's sysctls follow its creation.
    let mut ordered = steps.to_vec();
    let position: HashMap<&str, usize> =
        steps.iter().filter_map(|(i, s)| matches!(s, Step::CreateNamespace { .. }).then_some((s.node(), *i))).collect();
    ordered.sort_by_key(|(i, s)| (position.get(s.node()).copied().unwrap_or(*i), *i));
    for (index, step) in ordered {
        if stop.load(Ordering::SeqCst) || interrupt::interrupted() {
            return;
        }
        let result = (|| {
            if faults.fails(index + 1) {
                return Err(StepError::Injected);
            }
            match step {
                Step::CreateNamespace { node, netns } => {
                    send_ready(&mut current)?;
                    let file = netns::create_and_enter(netns)?;
                    current = Some((node.clone(), file));
                }
                _ => {
                    for (key, value) in step.sysctls() {
                        write_sysctl(key, value)?;
                    }
                }
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                let _ = tx.send(Report::Applied(index));
            }
            Err(e) => {
                let _ = tx.send(Report::Failed(index, e));
                return;
            }
        }
    }
    if let Err(e) = send_ready(&mut current) {
        let _ = tx.send(Report::Failed(usize::MAX, e));
    }
}

/// Takes nodes from the worker as they are ready and sends each netlink
/// step (bridges, veths, link up, addresses) as soon as what it needs exists.
async fn build_nodes_and_links(
    per_node: &[(usize, &Step)],
    links: &[(usize, &Step)],
    mut reports: mpsc::UnboundedReceiver<Report>,
    nodes: &mut HashMap<String, Node>,
    tracker: &mut Tracker<'_>,
    started: Instant,
) -> Result<Vec<PhaseTiming>, ApplyError> {
    // When the last step of each phase was done: the phases overlap.
    let mut finished: std::collections::BTreeMap<Phase, Duration> = Default::default();
    let phase_of: HashMap<usize, Phase> = per_node.iter().map(|(i, s)| (*i, s.phase())).collect();
    let mut done = |index: usize, phase: Phase, tracker: &mut Tracker<'_>| {
        finished.insert(phase, started.elapsed());
        tracker.applied(index);
    };
    let expected_nodes = per_node.iter().filter(|(_, s)| matches!(s, Step::CreateNamespace { .. })).count();
    let steps: Vec<&Step> = links.iter().map(|(_, s)| *s).collect();
    let mut scheduler = Scheduler::new(&steps);
    let mut started = 0;
    let mut pending = FuturesUnordered::new();
    let mut worker_open = true;
    let mut ready = 0;
    while ready < expected_nodes || started < links.len() || !pending.is_empty() {
        if interrupt::interrupted() {
            return Err(ApplyError::Interrupted);
        }
        for position in scheduler.take_ready() {
            let (index, step) = links[position];
            started += 1;
            let injected = tracker.faults.fails(index + 1);
            let peer = match step {
                Step::CreateVeth { peer, .. } => nodes[&peer.node].netns.try_clone().ok(),
                _ => None,
            };
            let netlink = nodes[step.node()].netlink.clone();
            pending.push(async move {
                let result = if injected {
                    Err(StepError::Injected)
                } else {
                    run_stream_step(&netlink, peer.as_ref(), step).await
                };
                (index, step, result)
            });
        }
        tokio::select! {
            report = reports.recv(), if worker_open => match report {
                Some(Report::Applied(index)) => done(index, phase_of[&index], tracker),
                Some(Report::Ready(name, node)) => {
                    scheduler.node_ready(&name);
                    nodes.insert(name, node);
                    ready += 1;
                }
                Some(Report::Failed(index, error)) => {
                    return Err(match per_node.iter().find(|(i, _)| *i == index) {
                        Some((i, step)) => step_error(*i, step, error),
                        None => ApplyError::Step { number: 0, step: "open a netlink connection".into(), source: Box::new(error) },
                    });
                }
                None => {
                    worker_open = false;
                    if ready < expected_nodes {
                        return Err(ApplyError::Interrupted);
                    }
                }
            },
            Some((index, step, result)) = pending.next(), if !pending.is_empty() => {
                result.map_err(|e| step_error(index, step, e))?;
                for (node, ifindex) in schedule::provides(step) {
                    scheduler.provide(node, ifindex);
                }
                done(index, step.phase(), tracker);
            }
        }
    }
    // The worker's last reports (its final steps' Applied) may still be queued.
    while let Ok(report) = reports.try_recv() {
        if let Report::Applied(index) = report {
            done(index, phase_of[&index], tracker);
        }
    }
    let count = |p: Phase| per_node.iter().chain(links).filter(|(_, s)| s.phase() == p).count();
    Ok([Phase::Namespaces, Phase::NamespaceSysctls, Phase::Bridges, Phase::Veths, Phase::Configure]
        .into_iter()
        .map(|phase| PhaseTiming {
            phase,
            steps: count(phase),
            elapsed: finished.get(&phase).copied().unwrap_or_default(),
        })
        .filter(|t| t.steps > 0)
        .collect())
}

/// Device sysctls and tuning: this thread enters each node's namespace.
fn write_device_sysctls(
    nodes: &HashMap<String, Node>,
    steps: &[(usize, &Step)],
    scratch: &std::path::Path,
    tracker: &mut Tracker<'_>,
) -> Result<(), ApplyError> {
    for &(index, step) in steps {
        if interrupt::interrupted() {
            return Err(ApplyError::Interrupted);
        }
        let run = || {
            if tracker.faults.fails(index + 1) {
                return Err(StepError::Injected);
            }
            netns::enter(&nodes[step.node()].netns)?;
            if let Step::Tune { tuning, .. } = step {
                return Ok(super::tune::apply(tuning, scratch)?);
            }
            step.sysctls().into_iter().try_for_each(|(k, v)| write_sysctl(k, v))
        };
        run().map_err(|e| step_error(index, step, e))?;
        tracker.applied(index);
    }
    Ok(())
}

/// One phase's netlink steps, all sent at once.
async fn run_concurrently(
    nodes: &HashMap<String, Node>,
    steps: &[(usize, &Step)],
    tracker: &mut Tracker<'_>,
) -> Result<(), ApplyError> {
    let mut pending = FuturesUnordered::new();
    for &(index, step) in steps {
        let injected = tracker.faults.fails(index + 1);
        pending.push(async move {
            let result = if injected { Err(StepError::Injected) } else { run_netlink(nodes, step).await };
            (index, step, result)
        });
    }
    while let Some((index, step, result)) = pending.next().await {
        result.map_err(|e| step_error(index, step, e))?;
        tracker.applied(index);
        if interrupt::interrupted() {
            return Err(ApplyError::Interrupted);
        }
    }
    Ok(())
}

fn write_sysctl(key: &str, value: &str) -> Result<(), StepError> {
    sysctl::write(key, value)
        .map_err(|source| StepError::Sysctl { path: sysctl::proc_path(key).display().to_string(), source })
}

async fn run_stream_step(netlink: &Netlink, peer_netns: Option<&File>, step: &Step) -> Result<(), StepError> {
    match step {
        Step::CreateBridge { device, mac } => {
            netlink.create_bridge(NewLink { ifname: &device.ifname, ifindex: device.ifindex, mac: *mac }).await?
        }
        Step::CreateVeth { device, mac, master, peer, peer_mac, mtu, queues } => {
            let main = NewLink { ifname: &device.ifname, ifindex: device.ifindex, mac: *mac };
            let other = NewLink { ifname: &peer.ifname, ifindex: peer.ifindex, mac: *peer_mac };
            let options = VethOptions { mtu: *mtu, queues: *queues, master: *master };
            let peer_netns = peer_netns.expect("a veth step comes with its peer's namespace");
            netlink.create_veth(main, other, peer_netns, &options).await?
        }
        Step::SetUp { device } => netlink.set_up(device.ifindex).await?,
        Step::AddAddress { device, address } => netlink.add_address(device.ifindex, *address).await?,
        other => unreachable!("{other:?} is not streamed"),
    }
    Ok(())
}

async fn run_netlink(nodes: &HashMap<String, Node>, step: &Step) -> Result<(), StepError> {
    let netlink = &nodes[step.node()].netlink;
    match step {
        Step::AddRoute { destination, via, .. } => netlink.add_route(*destination, *via).await?,
        other => unreachable!("{other:?} is not a route"),
    }
    Ok(())
}

/// IPsec daemons or XFRM objects (apply/ipsec/), after routes.
fn start_ipsec(
    nodes: &HashMap<String, Node>,
    steps: &[(usize, &Step)],
    tracker: &mut Tracker<'_>,
) -> Result<(), ApplyError> {
    if let Some(&(index, step)) = steps.iter().find(|(i, _)| tracker.faults.fails(i + 1)) {
        return Err(step_error(index, step, StepError::Injected));
    }
    let netns: HashMap<&str, &File> = nodes.iter().map(|(name, node)| (name.as_str(), &node.netns)).collect();
    super::ipsec::start(steps, &netns).map_err(|(index, step, e)| match e {
        super::ipsec::IpsecError::Interrupted => ApplyError::Interrupted,
        e => step_error(index, step, e.into()),
    })?;
    steps.iter().for_each(|&(index, _)| tracker.applied(index));
    Ok(())
}

/// XDP programs (apply/xdp.rs), one by one: each loads, pins and attaches
/// from a thread inside its node.
fn attach_xdp(
    nodes: &HashMap<String, Node>,
    steps: &[(usize, &Step)],
    tracker: &mut Tracker<'_>,
) -> Result<(), ApplyError> {
    for &(index, step) in steps {
        if interrupt::interrupted() {
            return Err(ApplyError::Interrupted);
        }
        if tracker.faults.fails(index + 1) {
            return Err(step_error(index, step, StepError::Injected));
        }
        let attachment = super::xdp::Attachment::of(step).expect("an XDP phase step");
        super::xdp::attach(attachment, &nodes[step.node()].netns).map_err(|e| step_error(index, step, e.into()))?;
        tracker.applied(index);
    }
    Ok(())
}

/// Host devices (apply/nic/), one by one, from labctl's own namespace.
fn claim_nics(
    nodes: &HashMap<String, Node>,
    steps: &[(usize, &Step)],
    state: &LabState,
    tracker: &mut Tracker<'_>,
) -> Result<(), ApplyError> {
    let home = super::nic::current_netns().map_err(ApplyError::Nic)?;
    let host = super::nic::Host { home: &home, state: state.dir(), lab: state.name() };
    let netns: HashMap<&str, &File> = nodes.iter().map(|(name, node)| (name.as_str(), &node.netns)).collect();
    for (n, &(index, step)) in steps.iter().enumerate() {
        if interrupt::interrupted() {
            return Err(ApplyError::Interrupted);
        }
        if tracker.faults.fails(index + 1) {
            return Err(step_error(index, step, StepError::Injected));
        }
        super::nic::apply(&host, &netns, n, step).map_err(|e| step_error(index, step, e.into()))?;
        tracker.applied(index);
    }
    let claimed: Vec<&Step> = steps.iter().map(|(_, s)| *s).collect();
    super::nic::await_carriers(&netns, &claimed).map_err(ApplyError::Nic)
}

fn step_error(index: usize, step: &Step, source: StepError) -> ApplyError {
    ApplyError::Step { number: index + 1, step: step.to_string(), source: Box::new(source) }
}
