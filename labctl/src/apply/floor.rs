//! The kernel's floor for a star of `hosts`: only the namespace and veth
//! creation syscalls, nothing else (no addresses, no sysctls, no journal).
//! `labctl bench` measures it so labctl's own time can be read against it.

use std::time::{Duration, Instant};

use super::netlink::{Netlink, NewLink, VethOptions};
use super::ApplyError;
use crate::model::MacAddr;
use crate::sys::netns::{self, ThreadNetns};

/// Creates `hosts` + 1 namespaces and `hosts` veth pairs (switch <-> host),
/// returns how long that took, then removes them again.
pub fn star(prefix: &str, hosts: usize) -> Result<Duration, ApplyError> {
    netns::prepare_run_dir()?;
    let home = ThreadNetns::current()?;
    let names: Vec<String> = (0..=hosts).map(|i| format!("{prefix}-{i}")).collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(ApplyError::Runtime)?;
    let result = runtime.block_on(async {
        let started = Instant::now();
        let mut fds = Vec::with_capacity(names.len());
        let mut switch = None;
        for name in &names {
            fds.push(netns::create_and_enter(name)?);
            if switch.is_none() {
                switch = Some(Netlink::open().map_err(ApplyError::Runtime)?);
            }
        }
        home.restore()?;
        let switch = switch.expect("at least one namespace");
        let options = VethOptions { mtu: None, queues: None, master: None };
        for (i, fd) in fds.iter().enumerate().skip(1) {
            let port = format!("p{i}");
            let main = NewLink { ifname: &port, ifindex: 0, mac: MacAddr::derive(prefix, "sw", &port) };
            let peer = NewLink { ifname: "eth0", ifindex: 0, mac: MacAddr::derive(prefix, &port, "eth0") };
            switch.create_veth(main, peer, fd, &options).await.map_err(|e| ApplyError::Floor(e.to_string()))?;
        }
        Ok(started.elapsed())
    });
    home.restore()?;
    for name in &names {
        netns::remove(name)?;
    }
    result
}

/// The floor of `labctl bench --scale`'s shape: a core namespace, one
/// namespace per `per_bridge` hosts (where labctl puts a bridge) and one per
/// host, with a veth from each bridge namespace to the core and to each of
/// its hosts. Only namespaces and veths, as [`star`]; returns how long
/// creating them took and how long removing them took.
pub fn fabric(prefix: &str, hosts: usize, per_bridge: usize) -> Result<(Duration, Duration), ApplyError> {
    netns::prepare_run_dir()?;
    let home = ThreadNetns::current()?;
    let bridges = hosts.div_ceil(per_bridge.max(1));
    let core = format!("{prefix}-c");
    let switch = |b: usize| format!("{prefix}-s{b}");
    let host = |h: usize| format!("{prefix}-{h}");
    let names: Vec<String> =
        std::iter::once(core.clone()).chain((0..bridges).map(switch)).chain((0..hosts).map(host)).collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(ApplyError::Runtime)?;
    let result: Result<Duration, ApplyError> = runtime.block_on(async {
        let started = Instant::now();
        let mut fds = Vec::with_capacity(names.len());
        let mut sockets = Vec::with_capacity(bridges);
        for (i, name) in names.iter().enumerate() {
            fds.push(netns::create_and_enter(name)?);
            if (1..=bridges).contains(&i) {
                sockets.push(Netlink::open().map_err(ApplyError::Runtime)?);
            }
        }
        home.restore()?;
        let options = VethOptions { mtu: None, queues: None, master: None };
        let floor = |e: super::netlink::Error| ApplyError::Floor(e.to_string());
        for (b, socket) in sockets.iter().enumerate() {
            let main = NewLink { ifname: "up", ifindex: 0, mac: MacAddr::derive(prefix, &switch(b), "up") };
            let uplink = format!("eth{b}");
            let peer = NewLink { ifname: &uplink, ifindex: 0, mac: MacAddr::derive(prefix, &core, &uplink) };
            socket.create_veth(main, peer, &fds[0], &options).await.map_err(floor)?;
        }
        for h in 0..hosts {
            let b = h / per_bridge.max(1);
            let port = format!("p{h}");
            let main = NewLink { ifname: &port, ifindex: 0, mac: MacAddr::derive(prefix, &switch(b), &port) };
            let peer = NewLink { ifname: "eth0", ifindex: 0, mac: MacAddr::derive(prefix, &host(h), "eth0") };
            sockets[b].create_veth(main, peer, &fds[1 + bridges + h], &options).await.map_err(floor)?;
        }
        Ok(started.elapsed())
    });
    home.restore()?;
    let started = Instant::now();
    for name in &names {
        netns::remove(name)?;
    }
    Ok((result?, started.elapsed()))
}
