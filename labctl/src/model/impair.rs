//! Link impairments: what one link end does to the packets it sends
//! (`link(a, b, { ..., impair = { rate = "20mbit", loss = "10%", seed = 7 } })`
//! for both ends, `h1:impair("eth0", { ... })` for one). Built by
//! apply/impair/: a tbf qdisc for `rate`, netem for `delay`, `jitter` and
//! `corrupt` (where the kernel has it), and for `loss` a seeded BPF program
//! at the peer's ingress, so the sender's stack cannot retry it away.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::diag::Origin;

/// The seed a lossy end uses when the script gives none.
pub const DEFAULT_SEED: u64 = 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Impairment {
    /// The node and interface whose egress is impaired.
    pub node: String,
    pub ifname: String,
    #[serde(flatten)]
    pub settings: ImpairSettings,
    pub origin: Origin,
}

/// The settings of one end; every field unset means "as the kernel does".
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ImpairSettings {
    /// Bits per second (Mininet's `bw`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<Duration>,
    /// Percent of packets dropped, 0 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    /// Seed of the loss generator: the same seed drops the same packets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Percent of packets with a flipped bit (netem).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrupt: Option<f64>,
    /// Queue length in packets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

impl ImpairSettings {
    /// Needs sch_netem: delay, jitter, corruption.
    pub fn needs_netem(&self) -> bool {
        self.delay.is_some() || self.jitter.is_some() || self.corrupt.is_some()
    }

    /// A qdisc on the end's egress (tbf and/or netem).
    pub fn needs_qdisc(&self) -> bool {
        self.rate.is_some() || self.limit.is_some() || self.needs_netem()
    }

    /// `loss` as parts per million, what the BPF program compares with.
    pub fn loss_ppm(&self) -> Option<u32> {
        self.loss.map(|p| (p * 10_000.0).round().clamp(0.0, 1_000_000.0) as u32)
    }

    /// `a` with the fields `b` sets replaced.
    pub fn overlay(self, b: ImpairSettings) -> ImpairSettings {
        ImpairSettings {
            rate: b.rate.or(self.rate),
            delay: b.delay.or(self.delay),
            jitter: b.jitter.or(self.jitter),
            loss: b.loss.or(self.loss),
            seed: b.seed.or(self.seed),
            corrupt: b.corrupt.or(self.corrupt),
            limit: b.limit.or(self.limit),
        }
    }

    /// `rate 20mbit, loss 10% (seed 7)`: for plan, graph and show.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(rate) = self.rate {
            parts.push(format!("rate {}", format_rate(rate)));
        }
        if let Some(d) = self.delay {
            parts.push(format!("delay {}", humantime::format_duration(d)));
        }
        if let Some(j) = self.jitter {
            parts.push(format!("jitter {}", humantime::format_duration(j)));
        }
        if let Some(loss) = self.loss {
            parts.push(format!("loss {loss}% (seed {})", self.seed.unwrap_or(DEFAULT_SEED)));
        }
        if let Some(c) = self.corrupt {
            parts.push(format!("corrupt {c}%"));
        }
        if let Some(l) = self.limit {
            parts.push(format!("limit {l}"));
        }
        parts.join(", ")
    }
}

/// `20mbit`, `1.5gbit`, `800kbit`, `64bit`: the largest unit that divides evenly.
pub fn format_rate(bits: u64) -> String {
    for (unit, size) in [("gbit", 1_000_000_000), ("mbit", 1_000_000), ("kbit", 1_000)] {
        if bits >= size && bits.is_multiple_of(size) {
            return format!("{}{unit}", bits / size);
        }
    }
    format!("{bits}bit")
}

/// Parses `"20mbit"`, `"1.5gbit"`, `"100kbit"`, `"64bit"`, `"2mbps"` (bytes:
/// tc's spelling) to bits per second.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let t = text.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let factor: f64 = match unit {
        "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        "bps" => 8.0,
        "kbps" => 8e3,
        "mbps" => 8e6,
        "gbps" => 8e9,
        _ => {
            return Err(format!(
                "rate {text:?} has no unit labctl knows (bit, kbit, mbit, gbit, or bps, kbps, mbps, gbps for bytes)"
            ))
        }
    };
    let value: f64 = number.parse().map_err(|_| format!("rate {text:?} does not start with a number"))?;
    let bits = (value * factor).round();
    if !(1.0..=1e12).contains(&bits) {
        return Err(format!("rate {text:?} is out of range (1bit to 1000gbit)"));
    }
    Ok(bits as u64)
}

/// `"10%"`, `"0.5%"` or a number of percent.
pub fn parse_percent(text: &str) -> Result<f64, String> {
    let number = text.trim().strip_suffix('%').unwrap_or(text.trim());
    number.trim().parse::<f64>().map_err(|_| format!("{text:?} is not a percentage like \"10%\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_in_bits_and_bytes() {
        assert_eq!(parse_rate("20mbit"), Ok(20_000_000));
        assert_eq!(parse_rate("1.5Gbit"), Ok(1_500_000_000));
        assert_eq!(parse_rate("100kbit"), Ok(100_000));
        assert_eq!(parse_rate("2mbps"), Ok(16_000_000));
        assert!(parse_rate("20 furlongs").unwrap_err().contains("no unit"));
        assert!(parse_rate("mbit").unwrap_err().contains("number"));
        assert_eq!(format_rate(20_000_000), "20mbit");
        assert_eq!(format_rate(1_500_000), "1500kbit");
    }

    #[test]
    fn loss_in_parts_per_million() {
        let s = ImpairSettings { loss: Some(10.0), ..Default::default() };
        assert_eq!(s.loss_ppm(), Some(100_000));
        assert_eq!(parse_percent("0.5%"), Ok(0.5));
    }
}
