//! Checks of link impairments: the end exists, is impaired once, and every
//! value is in range. Whether the kernel can do it (netem) is apply's
//! preflight (apply/impair/), still before anything is created.

use std::collections::HashMap;

use super::error;
use crate::diag::{Diagnostic, Origin};
use crate::model::{ImpairSettings, Lab};

/// 1 kbit/s to 100 Gbit/s.
const RATE_RANGE: std::ops::RangeInclusive<u64> = 1_000..=100_000_000_000;
/// Queue limit in packets.
const LIMIT_RANGE: std::ops::RangeInclusive<u32> = 1..=1_000_000;

pub(super) fn check(lab: &Lab, found: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<(&str, &str), &Origin> = HashMap::new();
    for i in &lab.impairments {
        let here = format!("{}:{}", i.node, i.ifname);
        if lab.node(&i.node).is_some() && !lab.endpoints_of(&i.node).any(|e| e.ifname == i.ifname) {
            let names = lab.interface_names(&i.node);
            found.push(error(
                &i.origin,
                format!("impair(): node {} has no link end {:?}", i.node, i.ifname),
                if names.is_empty() {
                    "the node has no links yet; impair an end of a link(...)".to_string()
                } else {
                    format!("its interfaces: {}", names.join(", "))
                },
            ));
        }
        if let Some(first) = seen.insert((&i.node, &i.ifname), &i.origin) {
            found.push(error(
                &i.origin,
                format!("impair(): {here} is impaired twice (first at line {})", first.line),
                "put all impairments of an end in one table",
            ));
        }
        for (message, help) in check_settings(&i.settings) {
            found.push(error(&i.origin, format!("impair({here:?}): {message}"), help));
        }
    }
}

/// The range checks of one end's settings; shared with `x:impair`.
pub fn check_settings(s: &ImpairSettings) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    if let Some(rate) = s.rate.filter(|r| !RATE_RANGE.contains(r)) {
        problems.push((
            format!("rate {rate} bit/s is out of range"),
            "give a rate from 1kbit to 100gbit, like rate = \"20mbit\"".to_string(),
        ));
    }
    for (key, value) in [("loss", s.loss), ("corrupt", s.corrupt)] {
        if let Some(p) = value.filter(|p| !(0.0..=100.0).contains(p) || !p.is_finite()) {
            problems.push((format!("{key} {p}% is out of range"), format!("give {key} from \"0%\" to \"100%\"")));
        }
    }
    if s.jitter.is_some() && s.delay.is_none() {
        problems
            .push(("jitter without delay".to_string(), "jitter varies a delay: give delay = \"10ms\" too".to_string()));
    }
    if s.seed.is_some() && s.loss.is_none() {
        problems.push((
            "seed without loss".to_string(),
            "the seed drives the loss generator: give loss = \"10%\" too, or drop the seed".to_string(),
        ));
    }
    if let Some(limit) = s.limit.filter(|l| !LIMIT_RANGE.contains(l)) {
        problems.push((
            format!("limit {limit} is out of range"),
            "give the queue length in packets, from 1 to 1000000".to_string(),
        ));
    }
    problems
}
