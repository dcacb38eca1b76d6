//! The egress qdiscs of an impaired end, as RTM_NEWQDISC messages built
//! here byte by byte (netlink-packet-route knows no tbf or netem options):
//!
//! - rate (and limit): `tbf` at the root, handle 1:.
//! - delay, jitter, corruption: `netem`, under tbf (parent 1:1, handle 10:)
//!   when there is a rate, else at the root. Only where the kernel has
//!   sch_netem (apply/impair/probe.rs refuses it before `up` otherwise).
//! - a limit alone: `pfifo` at the root.
//!
//! Sizing, so bandwidth never collapses (mininet#1129, iproute2#56):
//!
//! ```text
//! frame   = mtu + 14                                    (Ethernet header)
//! burst   = max(2 * frame, rate/8 * 4ms)                tbf bucket, bytes
//! tbf limit (no netem) = limit * frame if given, else
//!           burst + rate/8 * 100ms                      100 ms of queue at the rate
//! netem limit = limit if given, else
//!           max(1000, 2 * ceil(rate/8 * (delay + jitter + 100ms) / frame))  packets
//! ```
//!
//! A bucket of at least two frames lets a full-sized packet through at any
//! rate; 4 ms of bytes keeps the shaper's timer from idling the link at
//! high rates while adding under 0.5% to a measurement of a second. The
//! queue holds 100 ms at the rate (tc's `latency`), so a TCP sender fills
//! the link instead of losing its window at each burst; with netem, the
//! delayed packets sit in netem's queue, which therefore holds the
//! rate-delay product twice over (netem's default of 1000 packets is what
//! collapses Mininet's links at high rate x delay).

use std::time::Duration;

use netlink_packet_core::DefaultNla;
use rtnetlink::packet_route::tc::{TcAttribute, TcHandle, TcMessage};

use crate::model::ImpairSettings;

const TCA_OPTIONS: u16 = 2;
const TCA_TBF_PARMS: u16 = 1;
const TCA_TBF_RATE64: u16 = 4;
const TCA_TBF_BURST: u16 = 6;
const TCA_NETEM_CORRUPT: u16 = 4;
const TCA_NETEM_LATENCY64: u16 = 10;
const TCA_NETEM_JITTER64: u16 = 11;
/// `TC_LINKLAYER_ETHERNET`: the kernel then needs no rate table.
const LINKLAYER_ETHERNET: u8 = 1;
const ETH_HLEN: u64 = 14;
/// The queue at the rate, as tc's `latency 100ms`.
const QUEUE_TIME: Duration = Duration::from_millis(100);
/// The bucket in time at the rate.
const BURST_TIME: Duration = Duration::from_millis(4);
const NETEM_MIN_LIMIT: u64 = 1000;
/// `PSCHED_SHIFT`: the kernel's scheduler ticks are 64 ns.
const PSCHED_SHIFT: u32 = 6;

/// tbf's numbers for one end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TbfSizes {
    pub bytes_per_second: u64,
    pub burst: u32,
    pub limit: u32,
}

fn frame(mtu: u32) -> u64 {
    u64::from(mtu) + ETH_HLEN
}

fn bytes_in(bytes_per_second: u64, time: Duration) -> u64 {
    (bytes_per_second as u128 * time.as_nanos() / 1_000_000_000) as u64
}

/// The formula of this file's comment, for tbf.
pub fn tbf_sizes(rate_bits: u64, s: &ImpairSettings, mtu: u32) -> TbfSizes {
    let bytes_per_second = (rate_bits / 8).max(1);
    let burst = (2 * frame(mtu)).max(bytes_in(bytes_per_second, BURST_TIME));
    let limit = match s.limit {
        Some(packets) if !s.needs_netem() => u64::from(packets) * frame(mtu),
        _ => burst + bytes_in(bytes_per_second, QUEUE_TIME),
    };
    let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    TbfSizes { bytes_per_second, burst: clamp(burst), limit: clamp(limit) }
}

/// netem's queue in packets: the formula of this file's comment.
pub fn netem_limit(s: &ImpairSettings, mtu: u32) -> u32 {
    if let Some(limit) = s.limit {
        return limit;
    }
    let Some(rate) = s.rate else { return NETEM_MIN_LIMIT as u32 };
    let held = s.delay.unwrap_or_default() + s.jitter.unwrap_or_default() + QUEUE_TIME;
    let packets = bytes_in(rate / 8, held).div_ceil(frame(mtu));
    u32::try_from((2 * packets).max(NETEM_MIN_LIMIT)).unwrap_or(u32::MAX)
}

/// One attribute, padded to 4 bytes.
fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
    let len = 4 + value.len();
    let mut out = Vec::with_capacity(len.div_ceil(4) * 4);
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    out.resize(len.div_ceil(4) * 4, 0);
    out
}

/// `struct tc_ratespec`: cell_log, linklayer, overhead, cell_align, mpu, rate.
fn ratespec(bytes_per_second: u64) -> Vec<u8> {
    let mut out = vec![0u8, LINKLAYER_ETHERNET];
    out.extend_from_slice(&0u16.to_ne_bytes()); // overhead
    out.extend_from_slice(&0i16.to_ne_bytes()); // cell_align
    out.extend_from_slice(&0u16.to_ne_bytes()); // mpu
    out.extend_from_slice(&u32::try_from(bytes_per_second).unwrap_or(u32::MAX).to_ne_bytes());
    out
}

/// tbf's TCA_OPTIONS: TCA_TBF_PARMS (`struct tc_tbf_qopt`: rate, peakrate,
/// limit, buffer, mtu), TCA_TBF_BURST (the kernel derives `buffer` from it),
/// and TCA_TBF_RATE64 when the rate does not fit 32 bits.
pub fn tbf_options(sizes: &TbfSizes) -> Vec<u8> {
    let mut parms = ratespec(sizes.bytes_per_second);
    parms.extend_from_slice(&[0u8; 12]); // no peak rate
    parms.extend_from_slice(&sizes.limit.to_ne_bytes());
    parms.extend_from_slice(&0u32.to_ne_bytes()); // buffer: from TCA_TBF_BURST
    parms.extend_from_slice(&0u32.to_ne_bytes()); // mtu: only with a peak rate
    let mut out = nla(TCA_TBF_PARMS, &parms);
    out.extend(nla(TCA_TBF_BURST, &sizes.burst.to_ne_bytes()));
    if sizes.bytes_per_second > u64::from(u32::MAX) {
        out.extend(nla(TCA_TBF_RATE64, &sizes.bytes_per_second.to_ne_bytes()));
    }
    out
}

/// A probability as netem takes it: 0 to u32::MAX for 0 to 100%.
fn probability(percent: f64) -> u32 {
    ((percent / 100.0).clamp(0.0, 1.0) * f64::from(u32::MAX)).round() as u32
}

fn ticks(d: Duration) -> u32 {
    u32::try_from(d.as_nanos() >> PSCHED_SHIFT).unwrap_or(u32::MAX)
}

/// netem's TCA_OPTIONS: `struct tc_netem_qopt` (latency, limit, loss, gap,
/// duplicate, jitter; times in scheduler ticks) followed by attributes:
/// TCA_NETEM_LATENCY64 and TCA_NETEM_JITTER64 in ns, TCA_NETEM_CORRUPT.
/// Loss is never netem's: it would drop on the sender's side.
pub fn netem_options(s: &ImpairSettings, limit: u32) -> Vec<u8> {
    let delay = s.delay.unwrap_or_default();
    let jitter = s.jitter.unwrap_or_default();
    let mut out = Vec::new();
    for field in [ticks(delay), limit, 0, 0, 0, ticks(jitter)] {
        out.extend_from_slice(&field.to_ne_bytes());
    }
    out.extend(nla(TCA_NETEM_LATENCY64, &(delay.as_nanos() as i64).to_ne_bytes()));
    out.extend(nla(TCA_NETEM_JITTER64, &(jitter.as_nanos() as i64).to_ne_bytes()));
    if let Some(c) = s.corrupt {
        let mut corrupt = probability(c).to_ne_bytes().to_vec();
        corrupt.extend_from_slice(&0u32.to_ne_bytes()); // correlation
        out.extend(nla(TCA_NETEM_CORRUPT, &corrupt));
    }
    out
}

fn message(ifindex: u32, parent: TcHandle, handle: TcHandle, kind: &str, options: Vec<u8>) -> TcMessage {
    let mut msg = TcMessage::with_index(ifindex as i32);
    msg.header.parent = parent;
    msg.header.handle = handle;
    msg.attributes.push(TcAttribute::Kind(kind.into()));
    msg.attributes.push(TcAttribute::Other(DefaultNla::new(TCA_OPTIONS, options)));
    msg
}

/// The RTM_NEWQDISC messages of one end, root first.
pub fn messages(ifindex: u32, s: &ImpairSettings, mtu: u32) -> Vec<TcMessage> {
    let root = TcHandle::ROOT;
    let one = TcHandle { major: 1, minor: 0 };
    let mut out = Vec::new();
    if let Some(rate) = s.rate {
        out.push(message(ifindex, root, one, "tbf", tbf_options(&tbf_sizes(rate, s, mtu))));
    }
    if s.needs_netem() {
        let parent = if s.rate.is_some() { TcHandle { major: 1, minor: 1 } } else { root };
        let handle = if s.rate.is_some() { TcHandle { major: 10, minor: 0 } } else { one };
        out.push(message(ifindex, parent, handle, "netem", netem_options(s, netem_limit(s, mtu))));
    }
    if out.is_empty() {
        if let Some(limit) = s.limit {
            out.push(message(ifindex, root, one, "pfifo", limit.to_ne_bytes().to_vec()));
        }
    }
    out
}

/// netem in a message (the probe's question).
pub fn netem_probe(ifindex: u32) -> TcMessage {
    let s = ImpairSettings { delay: Some(Duration::from_millis(1)), ..Default::default() };
    message(ifindex, TcHandle::ROOT, TcHandle { major: 1, minor: 0 }, "netem", netem_options(&s, 1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(bytes: &[u8], at: usize) -> u32 {
        u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap())
    }

    fn options(msg: &TcMessage) -> Vec<u8> {
        use netlink_packet_core::Nla;
        msg.attributes
            .iter()
            .find_map(|a| match a {
                TcAttribute::Other(nla) if nla.kind() == TCA_OPTIONS => {
                    let mut buf = vec![0; nla.value_len()];
                    nla.emit_value(&mut buf);
                    Some(buf)
                }
                _ => None,
            })
            .expect("TCA_OPTIONS")
    }

    #[test]
    fn tbf_is_sized_from_the_rate() {
        let s = ImpairSettings { rate: Some(10_000_000), ..Default::default() };
        let sizes = tbf_sizes(10_000_000, &s, 1500);
        // 1.25 MB/s: 4 ms is 5000 bytes (more than two frames), 100 ms of queue is 125000 bytes.
        assert_eq!(sizes, TbfSizes { bytes_per_second: 1_250_000, burst: 5000, limit: 130_000 });
        // A slow link still passes whole frames.
        assert_eq!(tbf_sizes(64_000, &s, 1500).burst, 2 * 1514);
        // A limit in packets becomes bytes of frames.
        let limited = ImpairSettings { limit: Some(10), ..s };
        assert_eq!(tbf_sizes(10_000_000, &limited, 1500).limit, 15_140);
    }

    #[test]
    fn tbf_message_carries_parms_and_burst() {
        let s = ImpairSettings { rate: Some(20_000_000), ..Default::default() };
        let msgs = messages(3, &s, 1500);
        assert_eq!(msgs.len(), 1);
        let msg = &msgs[0];
        assert_eq!(msg.header.index, 3);
        assert_eq!(msg.header.parent, TcHandle::ROOT);
        assert_eq!(msg.header.handle, TcHandle { major: 1, minor: 0 });
        assert!(msg.attributes.contains(&TcAttribute::Kind("tbf".into())));
        let opts = options(msg);
        // TCA_TBF_PARMS: 4 header + 36 struct.
        assert_eq!(&opts[0..4], &[40, 0, 1, 0]);
        assert_eq!(opts[5], LINKLAYER_ETHERNET);
        assert_eq!(u32_at(&opts, 4 + 8), 2_500_000, "rate in bytes/s");
        assert_eq!(u32_at(&opts, 4 + 24), 10_000 + 250_000, "limit");
        // TCA_TBF_BURST follows.
        assert_eq!(&opts[40..44], &[8, 0, 6, 0]);
        assert_eq!(u32_at(&opts, 44), 10_000);
        assert_eq!(opts.len(), 48, "no RATE64 below 4 GB/s");
        let fast = ImpairSettings { rate: Some(40_000_000_000), ..Default::default() };
        assert_eq!(options(&messages(3, &fast, 1500)[0]).len(), 48 + 12, "RATE64 above");
    }

    #[test]
    fn netem_goes_under_tbf_with_its_queue_sized_from_rate_and_delay() {
        let s = ImpairSettings {
            rate: Some(100_000_000),
            delay: Some(Duration::from_millis(50)),
            jitter: Some(Duration::from_millis(10)),
            corrupt: Some(1.0),
            ..Default::default()
        };
        let msgs = messages(2, &s, 1500);
        assert_eq!(msgs.len(), 2);
        let netem = &msgs[1];
        assert!(netem.attributes.contains(&TcAttribute::Kind("netem".into())));
        assert_eq!(netem.header.parent, TcHandle { major: 1, minor: 1 });
        assert_eq!(netem.header.handle, TcHandle { major: 10, minor: 0 });
        let opts = options(netem);
        assert_eq!(u32_at(&opts, 0), 50_000_000 >> 6, "latency in ticks");
        // 12.5 MB/s for 160 ms = 2 MB = 1322 frames (rounded up), twice over.
        assert_eq!(u32_at(&opts, 4), 2644, "limit");
        assert_eq!(u32_at(&opts, 20), 10_000_000 >> 6, "jitter in ticks");
        assert_eq!(&opts[24..28], &[12, 0, 10, 0], "LATENCY64");
        assert_eq!(i64::from_ne_bytes(opts[28..36].try_into().unwrap()), 50_000_000);
        assert_eq!(&opts[36..40], &[12, 0, 11, 0], "JITTER64");
        assert_eq!(&opts[48..52], &[12, 0, 4, 0], "CORRUPT");
        assert_eq!(u32_at(&opts, 52), probability(1.0));
        assert_eq!(opts.len(), 60);
    }

    #[test]
    fn netem_alone_is_the_root_and_a_bare_limit_is_a_pfifo() {
        let s = ImpairSettings { delay: Some(Duration::from_millis(5)), ..Default::default() };
        let msgs = messages(2, &s, 1500);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].header.parent, TcHandle::ROOT);
        assert_eq!(u32_at(&options(&msgs[0]), 4), 1000, "netem's own default queue");
        let s = ImpairSettings { limit: Some(50), ..Default::default() };
        let msgs = messages(2, &s, 1500);
        assert!(msgs[0].attributes.contains(&TcAttribute::Kind("pfifo".into())));
        assert_eq!(options(&msgs[0]), 50u32.to_ne_bytes());
    }
}
