//! Waits at the end of `up` for work the kernel finishes after it answered.
//!
//! [`links`]: every device that is up and has its carrier carries packets.
//! A veth's carrier comes on at once, but its queueing discipline stays
//! `noop`, which drops everything (drop reason QDISC_DROP), until the
//! kernel's link-watch work runs; on a loaded machine that can be a second
//! later, and a lab's first ping was lost to it. The kernel shows the
//! discipline in each link's IFLA_QDISC.
//!
//! [`Step::SettleIpv6`](crate::plan::Step::SettleIpv6): waits, inside a
//! node, until its IPv6 will send nothing more by itself: no address is
//! tentative (the start of DAD is queued work, after which a forwarding
//! node joins more groups) and no MLD group has its report timer running
//! (MLDv1 repeats a report once, below a millisecond after the join). The
//! kernel shows both in the node's procfs: `if_inet6` (address flags) and
//! `igmp6` (group flags). Polled, as the kernel tells no one when its work
//! is done; bounded, so a kernel that never settles fails the step.

use std::fs::File;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};

use crate::observe::ObserveError;

use super::netns::{self, NetnsError};

/// `IFA_F_TENTATIVE` in `/proc/net/if_inet6`'s flags column.
const IFA_F_TENTATIVE: u32 = 0x40;
/// `MAF_TIMER_RUNNING` in `/proc/net/igmp6`'s flags column (include/net/if_inet6.h).
const MAF_TIMER_RUNNING: u32 = 0x01;
/// Far more than the few milliseconds it takes on a loaded machine.
const LIMIT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    #[error("IPv6 did not settle within {LIMIT:?}: {0}")]
    Timeout(String),
    #[error("links did not start carrying packets within {LIMIT:?}: {0}")]
    Links(String),
    #[error("cannot list links: {0}")]
    Netlink(String),
    #[error("cannot read {path}: {source}")]
    Read { path: &'static str, source: std::io::Error },
    #[error(transparent)]
    Netns(#[from] NetnsError),
}

/// Waits until the namespace behind `netns` has no tentative address and no MLD report due.
pub fn ipv6(netns: &File) -> Result<(), SettleError> {
    netns::run_in(netns, || {
        let started = Instant::now();
        loop {
            let busy = busy()?;
            if busy.is_empty() {
                return Ok(());
            }
            if started.elapsed() > LIMIT {
                return Err(SettleError::Timeout(busy.join(", ")));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    })?
}

/// Waits until no device in the namespace behind `netns` is up, with its
/// carrier, and still on the `noop` discipline.
pub fn links(netns: &File) -> Result<(), SettleError> {
    // observe's query: a handle opened inside the namespace, on its own thread.
    let waiting = crate::observe::netlink::query(netns, |handle| async move {
        let started = Instant::now();
        loop {
            let mut dump = handle.link().get().execute();
            let mut waiting = Vec::new();
            while let Some(msg) = dump.try_next().await.map_err(ObserveError::netlink("dump links"))? {
                waiting.extend(not_carrying(&msg));
            }
            if waiting.is_empty() || started.elapsed() > LIMIT {
                return Ok(waiting);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .map_err(|e| SettleError::Netlink(e.to_string()))?;
    if waiting.is_empty() {
        Ok(())
    } else {
        Err(SettleError::Links(format!("{} still on the noop qdisc", waiting.join(", "))))
    }
}

/// The link's name if it is up with a carrier yet still drops everything (`noop`).
fn not_carrying(msg: &LinkMessage) -> Option<String> {
    let up = msg.header.flags.contains(LinkFlags::Up) && !msg.header.flags.contains(LinkFlags::Loopback);
    let mut carrier = false;
    let mut noop = false;
    let mut name = None;
    for attribute in &msg.attributes {
        match attribute {
            LinkAttribute::Carrier(c) => carrier = *c != 0,
            LinkAttribute::Qdisc(q) => noop = q == "noop",
            LinkAttribute::IfName(n) => name = Some(n.clone()),
            _ => {}
        }
    }
    (up && carrier && noop).then(|| name.unwrap_or_else(|| format!("if{}", msg.header.index)))
}

/// What still has work pending, as `eth0 2001:db8::1 tentative` / `eth0 ff02::1:ff00:1 report due`.
fn busy() -> Result<Vec<String>, SettleError> {
    // thread-self: this thread's namespace, not the process's.
    let read = |path: &'static str| std::fs::read_to_string(path).map_err(|source| SettleError::Read { path, source });
    let mut busy = tentative(&read("/proc/thread-self/net/if_inet6")?);
    busy.extend(reports_due(&read("/proc/thread-self/net/igmp6")?));
    Ok(busy)
}

/// `if_inet6` rows: address, ifindex, prefix length, scope, flags, ifname.
fn tentative(if_inet6: &str) -> Vec<String> {
    rows_with_flag(if_inet6, 4, IFA_F_TENTATIVE).map(|c| format!("{} {} tentative", c[5], c[0])).collect()
}

/// `igmp6` rows: ifindex, ifname, group, users, flags, timer.
fn reports_due(igmp6: &str) -> Vec<String> {
    rows_with_flag(igmp6, 4, MAF_TIMER_RUNNING).map(|c| format!("{} {} report due", c[1], c[2])).collect()
}

/// The rows (as columns, six or more) of a procfs table whose hex `column` has `flag`.
fn rows_with_flag(table: &str, column: usize, flag: u32) -> impl Iterator<Item = Vec<&str>> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<&str>>())
        .filter(move |c| c.len() >= 6 && u32::from_str_radix(c[column], 16).is_ok_and(|flags| flags & flag != 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tentative_addresses_and_running_timers_are_pending() {
        let if_inet6 = "20010db8000000000000000000000001 02 40 00 c0     eth0\n\
                        fe800000000000000000000000000001 02 40 20 80     eth0\n";
        assert_eq!(tentative(if_inet6), ["eth0 20010db8000000000000000000000001 tentative"]);
        let igmp6 = "2    eth0            ff0200000000000000000001ff000001     1 00000005       1\n\
                     2    eth0            ff020000000000000000000000000001     1 0000000C       0\n";
        assert_eq!(reports_due(igmp6), ["eth0 ff0200000000000000000001ff000001 report due"]);
    }
}
