//! Waits at the end of `up` for work the kernel finishes after it answered.
//!
//! [`links`]: every device that is up and has its carrier carries packets.
//! A veth's carrier comes on at once, but the end that was up before its
//! peer keeps its transmit queues on the `noop` discipline, which drops
//! everything (drop reason QDISC_DROP in `__dev_queue_xmit`), until
//! `dev_activate` runs with the carrier on, which is the kernel's
//! link-watch work: on a loaded machine up to seconds later, and a lab's
//! first ARP was lost to it. A link dump does not tell: IFLA_QDISC names
//! the device's discipline (`noqueue` once it is up), not its queues', and
//! a veth that link-watch has not reached says operstate UNKNOWN. A link's
//! own RTM_GETLINK, unlike a dump, runs that link's pending link-watch work
//! before answering (`rtnl_getlink` calls `linkwatch_sync_dev`), so each up
//! link is asked for by its index, and must then say operstate UP (or
//! UNKNOWN, for devices without carrier events). [`ipv6_links`] also waits
//! until IPv6 has seen each such link ready (IF_READY in the link's IPv6
//! flags): IPv6 starts a link's addresses, DAD and MLD only then, so
//! [`ipv6`] before it would find nothing pending and return early.
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
use rtnetlink::packet_route::link::{
    AfSpecInet6, AfSpecUnspec, Inet6IfaceFlags, LinkAttribute, LinkFlags, LinkMessage, State,
};

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
    #[error("links were not ready within {LIMIT:?}: {0}")]
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

/// Waits until every device in the namespace behind `netns` that is up,
/// with its carrier, has been handled by link-watch (operational state UP).
pub fn links(netns: &File) -> Result<(), SettleError> {
    wait_for_links(netns, not_carrying)
}

/// [`links`], and until IPv6 has seen each of those links ready: what
/// [`ipv6`] then waits for has all started.
pub fn ipv6_links(netns: &File) -> Result<(), SettleError> {
    wait_for_links(netns, |msg| not_carrying(msg).or_else(|| ipv6_not_started(msg)))
}

/// Polls the namespace's links until `waiting` names none of them.
fn wait_for_links(netns: &File, waiting: fn(&LinkMessage) -> Option<String>) -> Result<(), SettleError> {
    // observe's query: a handle opened inside the namespace, on its own thread.
    let left = crate::observe::netlink::query(netns, |handle| async move {
        let started = Instant::now();
        loop {
            let mut left = Vec::new();
            for index in up_links(&handle).await? {
                // The link's own get, not the dump: it runs the link's pending link-watch work.
                let mut one = handle.link().get().match_index(index).execute();
                while let Some(msg) = one.try_next().await.map_err(ObserveError::netlink("get link"))? {
                    left.extend(waiting(&msg));
                }
            }
            if left.is_empty() || started.elapsed() > LIMIT {
                return Ok(left);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .map_err(|e| SettleError::Netlink(e.to_string()))?;
    if left.is_empty() {
        Ok(())
    } else {
        Err(SettleError::Links(left.join(", ")))
    }
}

/// The indexes of the namespace's links that are up, loopback aside.
async fn up_links(handle: &rtnetlink::Handle) -> Result<Vec<u32>, ObserveError> {
    let mut dump = handle.link().get().execute();
    let mut up = Vec::new();
    while let Some(msg) = dump.try_next().await.map_err(ObserveError::netlink("dump links"))? {
        let flags = msg.header.flags;
        if flags.contains(LinkFlags::Up) && !flags.contains(LinkFlags::Loopback) {
            up.push(msg.header.index);
        }
    }
    Ok(up)
}

/// The link's name if it is up with a carrier yet link-watch has not
/// handled it: its operational state is neither UP nor UNKNOWN (devices
/// that do not report one, as `lo`), so its queues may still be `noop`.
fn not_carrying(msg: &LinkMessage) -> Option<String> {
    let waiting = up_with_carrier(msg)
        && !msg.attributes.iter().any(|a| matches!(a, LinkAttribute::OperState(State::Up | State::Unknown)));
    waiting.then(|| format!("{} not yet operationally up", link_name(msg)))
}

/// The link's name if it is up with a carrier, IPv6 is on and has not yet
/// seen the link ready (IF_READY): its addresses, DAD and MLD reports are
/// still to start.
fn ipv6_not_started(msg: &LinkMessage) -> Option<String> {
    let waiting = up_with_carrier(msg)
        && msg.attributes.iter().any(|a| match a {
            LinkAttribute::AfSpecUnspec(families) => ipv6_not_ready(families),
            _ => false,
        });
    waiting.then(|| format!("{} not yet ready for IPv6", link_name(msg)))
}

fn up_with_carrier(msg: &LinkMessage) -> bool {
    let flags = msg.header.flags;
    flags.contains(LinkFlags::Up)
        && !flags.contains(LinkFlags::Loopback)
        && msg.attributes.iter().any(|a| matches!(a, LinkAttribute::Carrier(c) if *c != 0))
}

fn link_name(msg: &LinkMessage) -> String {
    msg.attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        })
        .unwrap_or_else(|| format!("if{}", msg.header.index))
}

/// IPv6 is enabled on the link and has not marked it ready.
fn ipv6_not_ready(families: &[AfSpecUnspec]) -> bool {
    families.iter().any(|family| match family {
        AfSpecUnspec::Inet6(ipv6) => {
            let enabled = ipv6.iter().any(|a| matches!(a, AfSpecInet6::DevConf(conf) if conf.disable_ipv6 == 0));
            let ready = ipv6.iter().any(|a| matches!(a, AfSpecInet6::Flags(f) if f.contains(Inet6IfaceFlags::Ready)));
            enabled && !ready
        }
        _ => false,
    })
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

    fn link(name: &str, flags: LinkFlags, carrier: u8, state: State) -> LinkMessage {
        let mut msg = LinkMessage::default();
        msg.header.flags = flags;
        msg.attributes = vec![
            LinkAttribute::IfName(name.into()),
            LinkAttribute::Carrier(carrier),
            LinkAttribute::OperState(state),
            // What the kernel shows while the queues are still noop.
            LinkAttribute::Qdisc("noqueue".into()),
        ];
        msg
    }

    #[test]
    fn a_link_with_carrier_waits_for_link_watch() {
        let up = LinkFlags::Up | LinkFlags::LowerUp;
        let waiting = Some("eth0 not yet operationally up");
        assert_eq!(not_carrying(&link("eth0", up, 1, State::Down)).as_deref(), waiting);
        assert_eq!(not_carrying(&link("eth0", up, 1, State::LowerLayerDown)).as_deref(), waiting);
        assert_eq!(not_carrying(&link("eth0", up | LinkFlags::Running, 1, State::Up)), None);
        assert_eq!(not_carrying(&link("sw", up, 1, State::Unknown)), None, "no operational state to wait for");
        assert_eq!(
            not_carrying(&link("eth1", LinkFlags::Up, 0, State::LowerLayerDown)),
            None,
            "no carrier: nothing to carry"
        );
        assert_eq!(not_carrying(&link("eth2", LinkFlags::empty(), 1, State::Down)), None, "down on purpose");
        assert_eq!(not_carrying(&link("lo", LinkFlags::Up | LinkFlags::Loopback, 1, State::Down)), None);
    }

    fn with_ipv6(mut msg: LinkMessage, disabled: bool, ready: bool) -> LinkMessage {
        let mut conf = rtnetlink::packet_route::link::Inet6DevConf::default();
        conf.disable_ipv6 = i32::from(disabled);
        let flags = if ready { Inet6IfaceFlags::Ready } else { Inet6IfaceFlags::empty() };
        msg.attributes.push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(vec![
            AfSpecInet6::Flags(flags),
            AfSpecInet6::DevConf(conf),
        ])]));
        msg
    }

    #[test]
    fn an_ipv6_link_waits_until_ipv6_saw_it_ready() {
        let up = LinkFlags::Up | LinkFlags::LowerUp | LinkFlags::Running;
        let eth0 = || link("eth0", up, 1, State::Up);
        let waiting = Some("eth0 not yet ready for IPv6");
        assert_eq!(ipv6_not_started(&with_ipv6(eth0(), false, false)).as_deref(), waiting);
        assert_eq!(not_carrying(&with_ipv6(eth0(), false, false)), None, "carrying already");
        assert_eq!(ipv6_not_started(&with_ipv6(eth0(), false, true)), None);
        assert_eq!(ipv6_not_started(&with_ipv6(eth0(), true, false)), None, "IPv6 off: nothing to start");
    }
}
