//! Counters from procfs text: SNMP MIBs per namespace, softnet and softirqs
//! per CPU.
//!
//! `/proc/net` is a link to `/proc/self/net`, which shows the namespace of
//! the process' *main* thread. A [`run_in`] thread reads its own namespace
//! through `/proc/thread-self/net` instead.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::observe::error::{ObserveError, Result};
use crate::sys::netns::run_in;

/// The namespace's IP/ICMP/UDP/TCP counters, one map: `/proc/net/snmp` and
/// `/proc/net/netstat` as `"<Group>.<Name>"` (`Ip.InReceives`,
/// `TcpExt.TCPTimeouts`, `IpExt.InOctets`), and `/proc/net/snmp6` under its
/// own names (`Ip6InReceives`, `Icmp6OutEchos`, `Udp6InDatagrams`).
///
/// Negative values are left out: the only one is the constant `Tcp.MaxConn`
/// (-1, "dynamic"), which is not a counter.
pub fn snmp(netns: &File) -> Result<BTreeMap<String, u64>> {
    run_in(netns, || {
        let mut counters = BTreeMap::new();
        for file in ["snmp", "netstat"] {
            let path = format!("/proc/thread-self/net/{file}");
            counters.extend(parse_netstat(&read(&path)?, &path)?);
        }
        // Absent when IPv6 is disabled in the kernel; then there is nothing to count.
        let path = "/proc/thread-self/net/snmp6";
        match std::fs::read_to_string(path) {
            Ok(text) => counters.extend(parse_snmp6(&text, path)?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(ObserveError::Read { path: path.into(), source }),
        }
        Ok(counters)
    })?
}

fn read(path: &str) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| ObserveError::Read { path: Path::new(path).into(), source })
}

fn parse_error(path: &str, line: usize, msg: impl Into<String>) -> ObserveError {
    ObserveError::Parse { path: path.into(), line, msg: msg.into() }
}

/// Parses the two-line-per-group format of `/proc/net/snmp` and
/// `/proc/net/netstat`: a `Group: Name Name ...` line followed by a
/// `Group: value value ...` line. `path` only names the source in errors.
pub fn parse_netstat(text: &str, path: &str) -> Result<BTreeMap<String, u64>> {
    let mut counters = BTreeMap::new();
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    while let Some((n, names)) = lines.next() {
        let (group, names) =
            names.split_once(':').ok_or_else(|| parse_error(path, n + 1, "expected `Group: names`"))?;
        let (vn, values) =
            lines.next().ok_or_else(|| parse_error(path, n + 1, format!("{group}: names without values")))?;
        let (vgroup, values) =
            values.split_once(':').ok_or_else(|| parse_error(path, vn + 1, "expected `Group: values`"))?;
        if vgroup != group {
            return Err(parse_error(path, vn + 1, format!("values for {vgroup} after names for {group}")));
        }
        let names: Vec<&str> = names.split_whitespace().collect();
        let values: Vec<&str> = values.split_whitespace().collect();
        if names.len() != values.len() {
            return Err(parse_error(
                path,
                vn + 1,
                format!("{group}: {} names but {} values", names.len(), values.len()),
            ));
        }
        for (name, value) in names.iter().zip(values) {
            let value: i64 = value
                .parse()
                .map_err(|_| parse_error(path, vn + 1, format!("{group}.{name}: not a number: {value:?}")))?;
            if let Ok(value) = u64::try_from(value) {
                counters.insert(format!("{group}.{name}"), value);
            }
        }
    }
    Ok(counters)
}

/// Parses `/proc/net/snmp6`: one `Name value` pair per line.
pub fn parse_snmp6(text: &str, path: &str) -> Result<BTreeMap<String, u64>> {
    let mut counters = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let mut fields = line.split_whitespace();
        let (Some(name), Some(value), None) = (fields.next(), fields.next(), fields.next()) else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(parse_error(path, n + 1, "expected `Name value`"));
        };
        let value = value.parse().map_err(|_| parse_error(path, n + 1, format!("{name}: not a number: {value:?}")))?;
        counters.insert(name.to_string(), value);
    }
    Ok(counters)
}

/// One CPU's line of `/proc/net/softnet_stat`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SoftnetRow {
    /// The CPU id: the kernel's own column where it has one (5.10+), else the
    /// row number (which differs from the id when CPUs are offline).
    pub cpu: u32,
    /// Packets taken off this CPU's backlog and the NIC rings by NAPI.
    pub processed: u64,
    /// Packets dropped because the backlog queue was full (netdev_max_backlog).
    pub dropped: u64,
    /// NET_RX runs that stopped with work left (budget or time used up).
    pub time_squeeze: u64,
    /// Times this CPU was woken by RPS to process packets.
    pub received_rps: u64,
    pub flow_limit_count: u64,
    /// Packets waiting in the backlog when read (5.10+).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backlog_len: Option<u64>,
    /// The two halves of `backlog_len` (6.x kernels with 15 columns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_qlen: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_qlen: Option<u64>,
}

/// Per-CPU packet processing counters (global, the same in every namespace).
pub fn softnet() -> Result<Vec<SoftnetRow>> {
    let path = "/proc/net/softnet_stat";
    parse_softnet(&read(path)?, path)
}

/// Parses `/proc/net/softnet_stat`: hex columns, 11 on old kernels, 13 since
/// 5.10 (backlog length, CPU id), 15 on recent 6.x (input/process queue
/// lengths). Columns 4-9 are retired and always 0.
pub fn parse_softnet(text: &str, path: &str) -> Result<Vec<SoftnetRow>> {
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let cols = line
            .split_whitespace()
            .map(|c| u64::from_str_radix(c, 16))
            .collect::<Result<Vec<u64>, _>>()
            .map_err(|e| parse_error(path, n + 1, format!("not a hex column: {e}")))?;
        if cols.len() < 11 {
            return Err(parse_error(path, n + 1, format!("{} columns, expected at least 11", cols.len())));
        }
        let col = |i: usize| cols.get(i).copied();
        rows.push(SoftnetRow {
            cpu: col(12).map_or(rows.len() as u32, |c| c as u32),
            processed: cols[0],
            dropped: cols[1],
            time_squeeze: cols[2],
            received_rps: cols[9],
            flow_limit_count: cols[10],
            backlog_len: col(11),
            input_qlen: col(13),
            process_qlen: col(14),
        });
    }
    Ok(rows)
}

/// NET_RX and NET_TX softirq counts per CPU (global).
pub fn softirqs() -> Result<BTreeMap<String, Vec<u64>>> {
    let path = "/proc/softirqs";
    let mut all = parse_softirqs(&read(path)?, path)?;
    all.retain(|name, _| name.starts_with("NET_"));
    Ok(all)
}

/// Parses `/proc/softirqs`: a `CPU0 CPU1 ...` header, then `NAME: n n ...`.
pub fn parse_softirqs(text: &str, path: &str) -> Result<BTreeMap<String, Vec<u64>>> {
    let mut lines = text.lines().enumerate();
    let cpus = lines.next().map_or(0, |(_, header)| header.split_whitespace().count());
    let mut counts = BTreeMap::new();
    for (n, line) in lines.filter(|(_, l)| !l.trim().is_empty()) {
        let (name, values) = line.split_once(':').ok_or_else(|| parse_error(path, n + 1, "expected `NAME: counts`"))?;
        let values = values
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<Vec<u64>, _>>()
            .map_err(|e| parse_error(path, n + 1, format!("{}: {e}", name.trim())))?;
        if values.len() != cpus {
            return Err(parse_error(path, n + 1, format!("{} counts for {cpus} CPUs", values.len())));
        }
        counts.insert(name.trim().to_string(), values);
    }
    Ok(counts)
}

/// Where one CPU's time went, from its `cpuN` line of `/proc/stat`, in
/// microseconds (the kernel counts in USER_HZ ticks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuTimes {
    pub cpu: u32,
    pub user_us: u64,
    pub system_us: u64,
    pub irq_us: u64,
    /// Softirq work, in whatever context it ran (a task's syscall or
    /// ksoftirqd): for a veth, the receive path. Other programs' load does
    /// not add to it, which makes it the cost measure of choice on a busy machine.
    pub softirq_us: u64,
}

/// Per-CPU time accounting (global).
pub fn cpu_times() -> Result<Vec<CpuTimes>> {
    let path = "/proc/stat";
    // SAFETY: sysconf has no preconditions.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    parse_cpu_times(&read(path)?, path, ticks_per_second)
}

/// Parses the `cpuN user nice system idle iowait irq softirq ...` lines of
/// `/proc/stat` (the `cpu` total line is skipped).
pub fn parse_cpu_times(text: &str, path: &str, ticks_per_second: u64) -> Result<Vec<CpuTimes>> {
    let us = |ticks: u64| ticks * 1_000_000 / ticks_per_second;
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut fields = line.split_whitespace();
        let Some(cpu) = fields.next().and_then(|f| f.strip_prefix("cpu")).and_then(|c| c.parse::<u32>().ok()) else {
            continue;
        };
        let ticks = fields
            .map(str::parse::<u64>)
            .collect::<std::result::Result<Vec<u64>, _>>()
            .map_err(|e| parse_error(path, n + 1, format!("cpu{cpu}: {e}")))?;
        if ticks.len() < 7 {
            return Err(parse_error(path, n + 1, format!("cpu{cpu}: {} columns, expected at least 7", ticks.len())));
        }
        rows.push(CpuTimes {
            cpu,
            user_us: us(ticks[0] + ticks[1]),
            system_us: us(ticks[2]),
            irq_us: us(ticks[5]),
            softirq_us: us(ticks[6]),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_per_cpu_times_in_microseconds() {
        let text = "cpu  10 0 20 300 0 1 5 0 0 0\ncpu0 4 1 10 150 0 1 3 0 0 0\ncpu1 5 0 10 150 0 0 2 0 0 0\nintr 1 2\n";
        let rows = parse_cpu_times(text, "/proc/stat", 100).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0],
            CpuTimes { cpu: 0, user_us: 50_000, system_us: 100_000, irq_us: 10_000, softirq_us: 30_000 }
        );
        assert_eq!(rows[1].softirq_us, 20_000);
    }

    const SNMP: &str = "\
Ip: Forwarding DefaultTTL InReceives InHdrErrors
Ip: 2 64 3519 0
Icmp: InMsgs OutMsgs OutEchos
Icmp: 1 3 3
Tcp: RtoAlgorithm MaxConn ActiveOpens
Tcp: 1 -1 7
";

    const NETSTAT: &str = "\
TcpExt: SyncookiesSent TCPTimeouts
TcpExt: 0 4
IpExt: InNoRoutes InOctets
IpExt: 0 123456789012
";

    #[test]
    fn snmp_groups_become_dotted_keys() {
        let c = parse_netstat(SNMP, "snmp").unwrap();
        assert_eq!(c["Ip.InReceives"], 3519);
        assert_eq!(c["Icmp.OutEchos"], 3);
        assert_eq!(c["Tcp.ActiveOpens"], 7);
        assert!(!c.contains_key("Tcp.MaxConn"), "negative constant left out");
        assert_eq!(c.len(), 9);
    }

    #[test]
    fn netstat_has_the_same_format() {
        let c = parse_netstat(NETSTAT, "netstat").unwrap();
        assert_eq!(c["TcpExt.TCPTimeouts"], 4);
        assert_eq!(c["IpExt.InOctets"], 123_456_789_012);
    }

    #[test]
    fn snmp_rejects_mismatched_lines() {
        let err = parse_netstat("Ip: A B\nIp: 1\n", "snmp").unwrap_err().to_string();
        assert_eq!(err, "snmp:2: Ip: 2 names but 1 values");
        let err = parse_netstat("Ip: A\nIcmp: 1\n", "snmp").unwrap_err().to_string();
        assert!(err.contains("values for Icmp after names for Ip"), "{err}");
        assert!(parse_netstat("Ip: A\n", "snmp").is_err());
    }

    #[test]
    fn snmp6_pairs() {
        let c = parse_snmp6("Ip6InReceives                   \t1\nIcmp6OutEchos 3\n\n", "snmp6").unwrap();
        assert_eq!(c["Ip6InReceives"], 1);
        assert_eq!(c["Icmp6OutEchos"], 3);
        assert!(parse_snmp6("Ip6InReceives x\n", "snmp6").is_err());
    }

    #[test]
    fn softnet_15_columns() {
        let text = "\
00017c96 00000002 00000003 00000000 00000000 00000000 00000000 00000000 00000000 00000004 00000005 00000006 00000000 00000001 00000005
000166ae 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000001 00000000 00000000
";
        let rows = parse_softnet(text, "softnet_stat").unwrap();
        assert_eq!(rows.len(), 2);
        let r = &rows[0];
        assert_eq!((r.cpu, r.processed, r.dropped, r.time_squeeze), (0, 0x17c96, 2, 3));
        assert_eq!((r.received_rps, r.flow_limit_count, r.backlog_len), (4, 5, Some(6)));
        assert_eq!((r.input_qlen, r.process_qlen), (Some(1), Some(5)));
        assert_eq!((rows[1].cpu, rows[1].processed), (1, 0x166ae));
    }

    #[test]
    fn softnet_old_kernels() {
        // 11 columns (before 5.10): no CPU id, rows are numbered.
        let eleven = "0000000a 00000000 00000001 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000\n\
                      0000000b 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000\n";
        let rows = parse_softnet(eleven, "softnet_stat").unwrap();
        assert_eq!((rows[1].cpu, rows[1].processed, rows[1].backlog_len), (1, 11, None));
        // 13 columns (5.10+): the CPU id is the kernel's (CPU 1 offline here).
        let thirteen = "0000000a 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000\n\
                        0000000c 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000002 00000002\n";
        let rows = parse_softnet(thirteen, "softnet_stat").unwrap();
        assert_eq!((rows[1].cpu, rows[1].backlog_len, rows[1].input_qlen), (2, Some(2), None));
        assert!(parse_softnet("0000000a 00000000\n", "softnet_stat").is_err());
        assert!(parse_softnet("zz 0 0 0 0 0 0 0 0 0 0\n", "softnet_stat").is_err());
    }

    #[test]
    fn softirqs_per_cpu() {
        let text = "                    CPU0       CPU1       \n          HI:          0          0\n      NET_TX:          5          6\n      NET_RX:       1000       2000\n";
        let all = parse_softirqs(text, "softirqs").unwrap();
        assert_eq!(all["NET_RX"], vec![1000, 2000]);
        assert_eq!(all["NET_TX"], vec![5, 6]);
        assert_eq!(all.len(), 3);
        assert!(parse_softirqs("CPU0 CPU1\nNET_RX: 1\n", "softirqs").is_err());
    }

    #[test]
    fn reads_this_machine() {
        // Global files exist everywhere; the format check is the point.
        assert!(!softnet().unwrap().is_empty());
        let irqs = softirqs().unwrap();
        assert!(irqs.contains_key("NET_RX") && irqs.contains_key("NET_TX"), "{irqs:?}");
    }
}
