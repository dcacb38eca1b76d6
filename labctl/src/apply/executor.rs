//! Runs a plan's steps against the kernel, phase by phase: namespaces and
//! sysctls one after another on this thread (they need `setns`), netlink
//! steps of a phase all at once over the per-namespace connections.

use std::collections::HashMap;
use std::fs::File;

use futures::stream::{FuturesUnordered, StreamExt};

use super::faults::Faults;
use super::netlink::{self, Netlink, NewLink, VethOptions};
use super::netns::{self, NetnsError, ThreadNetns};
use super::state::LabState;
use super::{interrupt, sysctl, ApplyError};
use crate::plan::{Phase, Plan, Step, QUIET_IPV6};

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
    #[error("failed on purpose (LABCTL_FAULT_FAIL_AT)")]
    Injected,
}

/// Called after each applied step with (steps done, steps in all).
pub type Progress<'a> = &'a dyn Fn(usize, usize);

struct Node {
    netns: File,
    netlink: Netlink,
}

pub struct Executor<'a> {
    home: ThreadNetns,
    nodes: HashMap<String, Node>,
    tracker: Tracker<'a>,
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

impl<'a> Executor<'a> {
    pub fn new(total: usize, faults: Faults, progress: Progress<'a>) -> Result<Self, NetnsError> {
        let tracker = Tracker { faults, progress, done: 0, total };
        Ok(Self { home: ThreadNetns::current()?, nodes: HashMap::new(), tracker })
    }

    pub async fn run(&mut self, plan: &Plan, state: &LabState) -> Result<(), ApplyError> {
        let result = self.run_phases(plan, state).await;
        // Back to where labctl started, whatever happened.
        self.home.restore()?;
        result
    }

    async fn run_phases(&mut self, plan: &Plan, state: &LabState) -> Result<(), ApplyError> {
        for (phase, steps) in plan.phases() {
            state.journal(steps.iter().map(|(_, s)| *s))?;
            match phase {
                Phase::Namespaces | Phase::NamespaceSysctls | Phase::DeviceSysctls => {
                    for (index, step) in steps {
                        self.check_interrupt()?;
                        self.run_here(index, step).map_err(|e| step_error(index, step, e))?;
                        self.tracker.applied(index);
                    }
                    self.home.restore()?;
                }
                _ => self.run_concurrently(&steps).await?,
            }
        }
        Ok(())
    }

    fn check_interrupt(&self) -> Result<(), ApplyError> {
        if interrupt::interrupted() {
            return Err(ApplyError::Interrupted);
        }
        Ok(())
    }

    /// Steps that move this thread between namespaces.
    fn run_here(&mut self, index: usize, step: &Step) -> Result<(), StepError> {
        if self.tracker.faults.fails(index + 1) {
            return Err(StepError::Injected);
        }
        match step {
            Step::CreateNamespace { node, netns } => {
                let file = netns::create_and_enter(netns)?;
                // The socket belongs to the namespace this thread is in now.
                let netlink = Netlink::open().map_err(StepError::Socket)?;
                self.nodes.insert(node.clone(), Node { netns: file, netlink });
            }
            Step::QuietIpv6 { node } => {
                netns::enter(&self.nodes[node].netns)?;
                for (key, value) in QUIET_IPV6 {
                    write_sysctl(key, value)?;
                }
            }
            Step::Sysctl { node, key, value } => {
                netns::enter(&self.nodes[node].netns)?;
                write_sysctl(key, value)?;
            }
            other => unreachable!("{other:?} is a netlink step"),
        }
        Ok(())
    }

    async fn run_concurrently(&mut self, steps: &[(usize, &Step)]) -> Result<(), ApplyError> {
        let mut pending = FuturesUnordered::new();
        for &(index, step) in steps {
            let nodes = &self.nodes;
            let injected = self.tracker.faults.fails(index + 1);
            pending.push(async move {
                let result = if injected { Err(StepError::Injected) } else { run_netlink(nodes, step).await };
                (index, step, result)
            });
        }
        let mut failure = None;
        while let Some((index, step, result)) = pending.next().await {
            match result {
                Ok(()) => self.tracker.applied(index),
                Err(e) => {
                    failure = Some(step_error(index, step, e));
                    break;
                }
            }
            if interrupt::interrupted() {
                failure = Some(ApplyError::Interrupted);
                break;
            }
        }
        drop(pending);
        self.home.restore()?;
        failure.map_or(Ok(()), Err)
    }
}

fn write_sysctl(key: &str, value: &str) -> Result<(), StepError> {
    sysctl::write(key, value)
        .map_err(|source| StepError::Sysctl { path: sysctl::proc_path(key).display().to_string(), source })
}

async fn run_netlink(nodes: &HashMap<String, Node>, step: &Step) -> Result<(), StepError> {
    let node = &nodes[step.node()];
    match step {
        Step::CreateBridge { device, mac } => {
            node.netlink.create_bridge(NewLink { ifname: &device.ifname, ifindex: device.ifindex, mac: *mac }).await?
        }
        Step::CreateVeth { device, mac, master, peer, peer_mac, mtu, queues } => {
            let main = NewLink { ifname: &device.ifname, ifindex: device.ifindex, mac: *mac };
            let other = NewLink { ifname: &peer.ifname, ifindex: peer.ifindex, mac: *peer_mac };
            let options = VethOptions { mtu: *mtu, queues: *queues, master: *master };
            node.netlink.create_veth(main, other, &nodes[&peer.node].netns, &options).await?
        }
        Step::SetUp { device } => node.netlink.set_up(device.ifindex).await?,
        Step::AddAddress { device, address } => node.netlink.add_address(device.ifindex, *address).await?,
        Step::AddRoute { destination, via, .. } => node.netlink.add_route(*destination, *via).await?,
        other => unreachable!("{other:?} is not a netlink step"),
    }
    Ok(())
}

fn step_error(index: usize, step: &Step, source: StepError) -> ApplyError {
    ApplyError::Step { number: index + 1, step: step.to_string(), source }
}
