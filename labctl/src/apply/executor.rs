//! Runs a plan's steps against the kernel.
//!
//! Two streams overlap, one per core. A worker thread creates the
//! namespaces, writing each one's sysctls while it is still inside it, and
//! hands every finished node over. Meanwhile this thread sends netlink
//! requests: a bridge or veth as soon as the namespaces it needs exist. The
//! phases after that (device sysctls, addresses, routes) run as before, each
//! phase's netlink requests all at once over the per-namespace connections.
//!
//! Which runner takes a phase ([`runner`]) and what a step asks of the
//! kernel ([`request`], [`worker_step`]) are exhaustive matches: a new
//! [`Phase`] or [`Step`] variant does not compile until it is handled here.

use std::collections::HashMap;
use std::fs::File;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;

use super::faults::Faults;
use super::netlink::{self, Netlink, NewLink, VethOptions};
use super::schedule::{self, Scheduler};
use super::state::LabState;
use super::{interrupt, sysctl, ApplyError};
use crate::plan::{Device, Phase, Plan, Step};
use crate::sys::in_parts::in_parts;
use crate::sys::netns::{self, NetnsError, ThreadNetns};

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
    /// A plan step given to a runner of another phase: a bug in labctl.
    #[error("step {0:?} reached the wrong runner (a labctl bug)")]
    Misrouted(String),
    #[error(transparent)]
    Ipsec(#[from] super::ipsec::IpsecError),
    #[error(transparent)]
    Xdp(#[from] super::xdp::XdpError),
    #[error(transparent)]
    Settle(#[from] super::settle::SettleError),
    #[error(transparent)]
    Nic(#[from] super::nic::NicError),
    #[error(transparent)]
    Impair(#[from] super::impair::ImpairError),
    #[error("nexthop: {0}")]
    Nexthop(String),
}

/// How long one phase of the plan took. Namespaces and links overlap, so
/// their phases report the time until each was complete (`overlaps`); the
/// later phases run one after another and report their own duration.
#[derive(Debug, Clone)]
pub struct PhaseTiming {
    pub phase: Phase,
    pub steps: usize,
    pub elapsed: Duration,
    pub overlaps: bool,
}

/// Called after each applied step with (steps done, steps in all).
pub type Progress<'a> = &'a dyn Fn(usize, usize);

/// A node whose namespace exists, with a netlink connection inside it
/// while steps still need it (closed after, so a 10,000-node lab holds one
/// file per node, not two: see [`SocketUse`]).
struct Node {
    netns: File,
    netlink: Option<Netlink>,
}

/// What the namespace worker reports, in order.
enum Report {
    Applied(usize),
    Ready(String, Node),
    Failed(usize, StepError),
}

/// Who carries out a phase.
enum Runner {
    /// The namespace worker thread (namespaces and their own sysctls).
    Worker,
    /// This thread's netlink stream, each step as soon as what it needs exists.
    Stream,
    /// After the stream, one phase at a time.
    Late(Late),
}

/// The phases that need every device (and address) in place.
#[derive(Clone, Copy)]
enum Late {
    Nexthops,
    Nics,
    DeviceSysctls,
    Routes,
    Settle,
    Xdp,
    Ipsec,
    Impair,
}

fn runner(phase: Phase) -> Runner {
    match phase {
        Phase::Namespaces | Phase::NamespaceSysctls => Runner::Worker,
        Phase::Bridges | Phase::Veths | Phase::Configure => Runner::Stream,
        Phase::Nics => Runner::Late(Late::Nics),
        Phase::DeviceSysctls => Runner::Late(Late::DeviceSysctls),
        Phase::Nexthops => Runner::Late(Late::Nexthops),
        Phase::Routes => Runner::Late(Late::Routes),
        Phase::Settle => Runner::Late(Late::Settle),
        Phase::Xdp => Runner::Late(Late::Xdp),
        Phase::Ipsec => Runner::Late(Late::Ipsec),
        Phase::Impair => Runner::Late(Late::Impair),
    }
}

/// What the namespace worker does for one of its steps.
enum WorkerStep<'a> {
    Enter { node: &'a str, netns: &'a str },
    Sysctls,
}

/// The netlink request of a step, if it is one.
enum Request<'a> {
    Bridge(NewLink<'a>),
    Veth {
        main: NewLink<'a>,
        peer: NewLink<'a>,
        peer_node: &'a str,
        options: VethOptions,
    },
    SetUp(u32),
    Address(u32, ipnet::IpNet),
    Route(ipnet::IpNet, std::net::IpAddr),
    Neighbour(u32, std::net::IpAddr, crate::model::MacAddr),
    /// The egress qdiscs of an impaired end (apply/impair/qdisc.rs).
    Qdiscs(Vec<rtnetlink::packet_route::tc::TcMessage>),
    /// Routes with options, rules, VRFs, VLANs, bridge and port options (apply/routing.rs, apply/l2.rs).
    More(&'a Step),
}

fn worker_step(step: &Step) -> Option<WorkerStep<'_>> {
    match step {
        Step::CreateNamespace { node, netns } => Some(WorkerStep::Enter { node, netns }),
        Step::NodeDefaults { .. } | Step::Sysctl { .. } => Some(WorkerStep::Sysctls),
        Step::CreateBridge { .. }
        | Step::CreateVeth { .. }
        | Step::Tune { .. }
        | Step::SetUp { .. }
        | Step::AddAddress { .. }
        | Step::AddRoute { .. }
        | Step::SettleIpv6 { .. }
        | Step::ClaimNic { .. }
        | Step::ConfigureSriov { .. }
        | Step::StartIpsec { .. }
        | Step::AttachXdp { .. }
        | Step::AddNeighbour { .. }
        | Step::ShapeEgress { .. }
        | Step::AttachLoss { .. }
        | Step::AddRouteSpec { .. }
        | Step::AddNexthop { .. }
        | Step::AddRule { .. }
        | Step::CreateVrf { .. }
        | Step::CreateVlan { .. }
        | Step::SetMaster { .. }
        | Step::ConfigureBridge { .. }
        | Step::ConfigurePort { .. } => None,
    }
}

fn link(device: &Device, mac: crate::model::MacAddr) -> NewLink<'_> {
    NewLink { ifname: &device.ifname, ifindex: device.ifindex, mac }
}

fn request(step: &Step) -> Option<Request<'_>> {
    match step {
        Step::CreateBridge { device, mac } => Some(Request::Bridge(link(device, *mac))),
        Step::CreateVeth { device, mac, master, peer, peer_mac, mtu, queues } => Some(Request::Veth {
            main: link(device, *mac),
            peer: link(peer, *peer_mac),
            peer_node: &peer.node,
            options: VethOptions { mtu: *mtu, queues: *queues, master: *master },
        }),
        Step::SetUp { device } => Some(Request::SetUp(device.ifindex)),
        Step::AddAddress { device, address } => Some(Request::Address(device.ifindex, *address)),
        Step::AddRoute { destination, via, .. } => Some(Request::Route(*destination, *via)),
        Step::AddNeighbour { device, address, mac } => Some(Request::Neighbour(device.ifindex, *address, *mac)),
        Step::ShapeEgress { device, settings, mtu } => {
            Some(Request::Qdiscs(super::impair::qdisc::messages(device.ifindex, settings, *mtu)))
        }
        Step::AddRouteSpec { .. }
        | Step::AddRule { .. }
        | Step::CreateVrf { .. }
        | Step::CreateVlan { .. }
        | Step::SetMaster { .. }
        | Step::ConfigureBridge { .. }
        | Step::ConfigurePort { .. } => Some(Request::More(step)),
        // Raw netlink inside the node (apply/nexthop.rs), not a rtnetlink request.
        Step::AddNexthop { .. } => None,
        Step::CreateNamespace { .. }
        | Step::NodeDefaults { .. }
        | Step::Sysctl { .. }
        | Step::Tune { .. }
        | Step::SettleIpv6 { .. }
        | Step::ClaimNic { .. }
        | Step::ConfigureSriov { .. }
        | Step::StartIpsec { .. }
        | Step::AttachXdp { .. }
        | Step::AttachLoss { .. } => None,
    }
}

/// Counts applied steps: progress, and the fault hook after each one.
struct Tracker<'a> {
    faults: Faults,
    progress: Progress<'a>,
    done: usize,
    total: usize,
}

impl Tracker<'_> {
    /// Before step `index` runs: stop on Ctrl-C, or fail it on purpose
    /// (LABCTL_FAULT_FAIL_AT).
    fn may_run(&self, index: usize, step: &Step) -> Result<(), ApplyError> {
        if interrupt::interrupted() {
            return Err(ApplyError::Interrupted);
        }
        if self.faults.fails(index + 1) {
            return Err(step_error(index, step, StepError::Injected));
        }
        Ok(())
    }

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
    let (mut per_node, mut links, mut late) = (Vec::new(), Vec::new(), Vec::new());
    for (phase, steps) in phases {
        match runner(phase) {
            Runner::Worker => per_node.extend(steps),
            Runner::Stream => links.extend(steps),
            Runner::Late(how) => late.push((phase, how, steps)),
        }
    }
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
            let routes = late.iter().filter(|(_, how, _)| matches!(how, Late::Routes));
            let sockets = SocketUse::new(&links, routes.flat_map(|(_, _, steps)| steps));
            let mut timings =
                build_nodes_and_links(per_node, &links, rx, &mut nodes, sockets, &mut tracker, started).await?;
            for (phase, how, steps) in &late {
                let started = Instant::now();
                state.journal(steps.iter().map(|(_, s)| *s))?;
                match how {
                    Late::DeviceSysctls => {
                        let done = write_device_sysctls(&nodes, steps, &state.dir().join("sysfs"), &mut tracker);
                        home.restore()?;
                        done?;
                    }
                    Late::Ipsec => start_ipsec(&nodes, steps, &mut tracker)?,
                    Late::Xdp => attach_xdp(&nodes, steps, &mut tracker)?,
                    Late::Routes => run_concurrently(&nodes, steps, &mut tracker).await?,
                    Late::Nexthops => add_nexthops(&nodes, steps, &mut tracker)?,
                    Late::Settle => settle_ipv6(&nodes, steps, &mut tracker)?,
                    Late::Nics => claim_nics(&nodes, steps, state, &mut tracker)?,
                    Late::Impair => attach_loss(&nodes, steps, &mut tracker)?,
                }
                timings.push(PhaseTiming {
                    phase: *phase,
                    steps: steps.len(),
                    elapsed: started.elapsed(),
                    overlaps: false,
                });
            }
            // `up` returns once every link carries packets (apply/settle.rs).
            settle_links(&nodes)?;
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
            let _ = tx.send(Report::Ready(node, Node { netns, netlink: Some(netlink) }));
        }
        Ok(())
    };
    // Steps come namespace by namespace: a node's sysctls follow its creation.
    let mut ordered = steps.to_vec();
    let position: HashMap<&str, usize> = steps
        .iter()
        .filter_map(|(i, s)| matches!(worker_step(s), Some(WorkerStep::Enter { .. })).then_some((s.node(), *i)))
        .collect();
    ordered.sort_by_key(|(i, s)| (position.get(s.node()).copied().unwrap_or(*i), *i));
    for (index, step) in ordered {
        if stop.load(Ordering::SeqCst) || interrupt::interrupted() {
            return;
        }
        let result = (|| {
            if faults.fails(index + 1) {
                return Err(StepError::Injected);
            }
            match worker_step(step).ok_or_else(|| StepError::Misrouted(step.to_string()))? {
                WorkerStep::Enter { node, netns } => {
                    send_ready(&mut current)?;
                    let file = netns::create_and_enter(netns)?;
                    current = Some((node.to_string(), file));
                }
                WorkerStep::Sysctls => {
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
    mut sockets: SocketUse<'_>,
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
    let expected_nodes =
        per_node.iter().filter(|(_, s)| matches!(worker_step(s), Some(WorkerStep::Enter { .. }))).count();
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
            let mut peer = None;
            if let Some(Request::Veth { peer_node, .. }) = request(step) {
                peer = nodes[peer_node].netns.try_clone().ok();
            }
            let netlink = nodes[step.node()].netlink.clone();
            pending.push(async move {
                let result = match netlink {
                    _ if injected => Err(StepError::Injected),
                    Some(netlink) => send(&netlink, peer.as_ref(), step).await,
                    None => Err(StepError::Misrouted(step.to_string())),
                };
                (index, step, result)
            });
        }
        tokio::select! {
            report = reports.recv(), if worker_open => match report {
                Some(Report::Applied(index)) => done(index, phase_of[&index], tracker),
                Some(Report::Ready(name, mut node)) => {
                    scheduler.node_ready(&name);
                    if sockets.done_with(&name, 0) {
                        node.netlink = None;
                    }
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
                if sockets.done_with(step.node(), 1) {
                    if let Some(node) = nodes.get_mut(step.node()) {
                        node.netlink = None;
                    }
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
            overlaps: true,
        })
        .filter(|t| t.steps > 0)
        .collect())
}

/// Which nodes still need their netlink connection: one per namespace kept
/// open for a whole 10,000-node build, beside its namespace fd, reached
/// the machine's limit of open files (20,000 here, not raisable without
/// CAP_SYS_RESOURCE).
struct SocketUse<'a> {
    /// Streamed steps still to finish, per node.
    remaining: HashMap<&'a str, usize>,
    /// Nodes with netlink steps in a later phase (routes): kept open.
    later: std::collections::HashSet<&'a str>,
}

impl<'a> SocketUse<'a> {
    /// `later`: the steps of the phases after the stream that use netlink.
    fn new<'b>(links: &[(usize, &'a Step)], later: impl IntoIterator<Item = &'b (usize, &'a Step)>) -> Self
    where
        'a: 'b,
    {
        let mut remaining: HashMap<&str, usize> = HashMap::new();
        for (_, step) in links {
            *remaining.entry(step.node()).or_default() += 1;
        }
        let later = later.into_iter().map(|(_, step)| step.node()).collect();
        SocketUse { remaining, later }
    }

    /// `finished` more of `node`'s steps are done: may its connection close now?
    fn done_with(&mut self, node: &str, finished: usize) -> bool {
        let left = self.remaining.get_mut(node).map_or(0, |n| {
            *n = n.saturating_sub(finished);
            *n
        });
        left == 0 && !self.later.contains(node)
    }
}

/// Device sysctls and tuning: this thread enters each node's namespace.
fn write_device_sysctls(
    nodes: &HashMap<String, Node>,
    steps: &[(usize, &Step)],
    scratch: &std::path::Path,
    tracker: &mut Tracker<'_>,
) -> Result<(), ApplyError> {
    for &(index, step) in steps {
        tracker.may_run(index, step)?;
        let run = || {
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
        tracker.may_run(index, step)?;
        pending.push(async move {
            let result = match &nodes[step.node()].netlink {
                Some(netlink) => send(netlink, None, step).await,
                None => Err(StepError::Misrouted(step.to_string())),
            };
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

/// Sends the netlink request of `step` (`peer_netns`: a veth's other end).
async fn send(netlink: &Netlink, peer_netns: Option<&File>, step: &Step) -> Result<(), StepError> {
    match request(step).ok_or_else(|| StepError::Misrouted(step.to_string()))? {
        Request::Bridge(link) => netlink.create_bridge(link).await?,
        Request::Veth { main, peer, options, .. } => {
            let peer_netns = peer_netns.ok_or_else(|| StepError::Misrouted(step.to_string()))?;
            netlink.create_veth(main, peer, peer_netns, &options).await?
        }
        Request::SetUp(ifindex) => netlink.set_up(ifindex).await?,
        Request::Address(ifindex, address) => netlink.add_address(ifindex, address).await?,
        Request::Route(destination, via) => netlink.add_route(destination, via).await?,
        Request::Neighbour(ifindex, address, mac) => netlink.add_neighbour(ifindex, address, mac).await?,
        Request::Qdiscs(messages) => {
            for msg in messages {
                netlink.add_qdisc(msg, false).await?;
            }
        }
        Request::More(step) => send_more(netlink, step).await?,
    }
    Ok(())
}

/// Nexthop objects, one at a time in declaration order (a group names
/// members made before it), each over a netlink socket inside its node.
fn add_nexthops(
    nodes: &HashMap<String, Node>,
    steps: &[(usize, &Step)],
    tracker: &mut Tracker<'_>,
) -> Result<(), ApplyError> {
    for &(index, step) in steps {
        tracker.may_run(index, step)?;
        let Step::AddNexthop { node, nexthop } = step else {
            return Err(step_error(index, step, StepError::Misrouted(step.to_string())));
        };
        let added = netns::run_in(&nodes[node].netns, || super::nexthop::add(nexthop))
            .map_err(|e| step_error(index, step, StepError::Nexthop(e.to_string())))?;
        added.map_err(|e| step_error(index, step, StepError::Nexthop(e)))?;
        tracker.applied(index);
    }
    Ok(())
}

/// The requests of routes with options, rules, VRFs, VLANs, bridge and port options.
async fn send_more(netlink: &Netlink, step: &Step) -> Result<(), super::netlink::Error> {
    let handle = netlink.handle();
    match step {
        Step::AddRouteSpec { route, ifindexes, .. } => super::routing::add_route(handle, route, ifindexes).await,
        Step::AddRule { rule, .. } => super::routing::add_rule(handle, rule).await,
        Step::CreateVrf { device, table } => super::l2::create(handle, super::l2::vrf_message(device, *table)).await,
        Step::CreateVlan { device, parent, id, protocol } => {
            super::l2::create(handle, super::l2::vlan_message(device, *parent, *id, *protocol)).await
        }
        Step::SetMaster { device, master, .. } => super::l2::set_master(handle, device.ifindex, *master).await,
        Step::ConfigureBridge { device, options } => super::l2::configure_bridge(handle, device.ifindex, options).await,
        Step::ConfigurePort { device, options, drop_vlan } => {
            super::l2::configure_port(handle, device.ifindex, options, *drop_vlan).await
        }
        other => Err(super::netlink::Error::Route(format!("not a netlink step here: {other}"))),
    }
}

/// IPsec daemons or XFRM objects (apply/ipsec/), after routes.
fn start_ipsec(
    nodes: &HashMap<String, Node>,
    steps: &[(usize, &Step)],
    tracker: &mut Tracker<'_>,
) -> Result<(), ApplyError> {
    steps.iter().try_for_each(|&(index, step)| tracker.may_run(index, step))?;
    let netns: HashMap<&str, &File> = nodes.iter().map(|(name, node)| (name.as_str(), &node.netns)).collect();
    super::ipsec::start(steps, &netns).map_err(|(index, step, e)| match e {
        super::ipsec::IpsecError::Interrupted => ApplyError::Interrupted,
        e => step_error(index, step, e.into()),
    })?;
    steps.iter().for_each(|&(index, _)| tracker.applied(index));
    Ok(())
}

/// XDP programs (apply/xdp/), one by one: each loads, pins and attaches
/// from a thread inside its node.
fn attach_xdp(
    nodes: &HashMap<String, Node>,
    steps: &[(usize, &Step)],
    tracker: &mut Tracker<'_>,
) -> Result<(), ApplyError> {
    // An XDP program changes its veth's peer (features, MTU limit): only
    // once link-watch has handled every link.
    settle_links(nodes)?;
    one_by_one(steps, tracker, |step| {
        let attachment = super::xdp::Attachment::of(step).expect("an XDP phase step");
        super::xdp::attach(attachment, &nodes[step.node()].netns).map(drop).map_err(StepError::from)
    })
}

/// Threads that wait for the nodes' links at once.
const SETTLERS: usize = 8;

/// Waits until every node's links carry packets (apply/settle.rs), several
/// nodes at a time: each node's wait is a few netlink round trips from a
/// thread inside it, and a 250-node lab would otherwise pay them in turn.
fn settle_links(nodes: &HashMap<String, Node>) -> Result<(), ApplyError> {
    let all: Vec<&File> = nodes.values().map(|node| &node.netns).collect();
    in_parts(&all, SETTLERS, |part| part.iter().try_for_each(|netns| super::settle::links(netns)))
        .into_iter()
        .collect::<Result<(), _>>()
        .map_err(ApplyError::Links)
}

/// Loss programs (apply/impair/loss.rs), one by one, each from a thread in its node.
fn attach_loss(
    nodes: &HashMap<String, Node>,
    steps: &[(usize, &Step)],
    tracker: &mut Tracker<'_>,
) -> Result<(), ApplyError> {
    one_by_one(steps, tracker, |step| match step {
        Step::AttachLoss { device, ppm, seed, pins, .. } => Ok(super::impair::loss::attach(
            &device.to_string(),
            &device.ifname,
            &nodes[step.node()].netns,
            pins,
            *ppm,
            *seed,
        )?),
        other => Err(StepError::Misrouted(other.to_string())),
    })
}

/// Each IPv6 node's addresses and MLD reports settled (apply/settle.rs), in turn.
fn settle_ipv6(
    nodes: &HashMap<String, Node>,
    steps: &[(usize, &Step)],
    tracker: &mut Tracker<'_>,
) -> Result<(), ApplyError> {
    one_by_one(steps, tracker, |step| {
        let netns = &nodes[step.node()].netns;
        // IPv6 starts on a link only once link-watch has made it ready.
        super::settle::ipv6_links(netns)?;
        Ok(super::settle::ipv6(netns)?)
    })
}

/// Runs `run` on each step in turn, stopping at the first failure or at Ctrl-C.
fn one_by_one(
    steps: &[(usize, &Step)],
    tracker: &mut Tracker<'_>,
    run: impl Fn(&Step) -> Result<(), StepError>,
) -> Result<(), ApplyError> {
    for &(index, step) in steps {
        tracker.may_run(index, step)?;
        run(step).map_err(|e| step_error(index, step, e))?;
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
