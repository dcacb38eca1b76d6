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
