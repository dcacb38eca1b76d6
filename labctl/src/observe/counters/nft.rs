//! nftables rule counters of a namespace, read over nfnetlink
//! (NFNL_SUBSYS_NFTABLES, an NFT_MSG_GETRULE dump): every rule with a
//! `counter` expression, named `family/table/chain/<comment or handle>`.
//!
//! Parsed by hand: no crate in Cargo.lock speaks nf_tables, and the ones
//! that do (nftnl, rustables, mnl) wrap libnftnl/libmnl, C libraries the
//! machines would then need. A rule dump is a flat message of nested
//! attributes; the few this reads (table, chain, handle, the counter's
//! bytes and packets, the comment in the rule's user data) are ~100 lines.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use crate::observe::error::{ObserveError, Result};
use crate::sys::netns;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_GETRULE: u16 = 7;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLA_TYPE_MASK: u16 = 0x3fff;

const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_COUNTER_BYTES: u16 = 1;
const NFTA_COUNTER_PACKETS: u16 = 2;
/// libnftnl's user-data type of a rule's comment.
const NFTNL_UDATA_RULE_COMMENT: u8 = 0;

/// One counted rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftRule {
    pub family: &'static str,
    pub table: String,
    pub chain: String,
    pub handle: u64,
    pub comment: Option<String>,
    pub packets: u64,
    pub bytes: u64,
}

impl NftRule {
    /// `inet/filter/input/<comment>`, or `.../<handle>` without a comment.
    pub fn name(&self) -> String {
        let last = self.comment.clone().unwrap_or_else(|| self.handle.to_string());
        format!("{}/{}/{}/{last}", self.family, self.table, self.chain)
    }

    /// Does `rule` (`"drop-udp"` or `"5"`) name this one?
    pub fn is(&self, rule: &str) -> bool {
        self.comment.as_deref() == Some(rule) || rule.parse() == Ok(self.handle)
    }
}

/// nftables' family names, as `nft` writes them.
pub const FAMILIES: &[(&str, u8)] = &[("inet", 1), ("ip", 2), ("arp", 3), ("netdev", 5), ("bridge", 7), ("ip6", 10)];

fn family_name(number: u8) -> &'static str {
    FAMILIES.iter().find(|(_, n)| *n == number).map(|(name, _)| *name).unwrap_or("unknown")
}

/// Every rule with a counter in the namespace behind `netns`, in dump order.
pub fn nft_rules(netns: &File) -> Result<Vec<NftRule>> {
    netns::run_in(netns, dump_here)?.map_err(ObserveError::socket("dump nftables rules (nfnetlink)"))
}

fn dump_here() -> io::Result<Vec<NftRule>> {
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    socket.send_to(&request(1), &SocketAddr::new(0, 0), 0)?;
    let mut rules = Vec::new();
    loop {
        let (data, _) = socket.recv_from_full()?;
        for (kind, body) in messages(&data) {
            match kind {
                NLMSG_DONE => return Ok(rules),
                NLMSG_ERROR => {
                    let code = body.get(..4).map(|b| i32::from_ne_bytes(b.try_into().unwrap())).unwrap_or(0);
                    if code != 0 {
                        return Err(io::Error::from_raw_os_error(-code));
                    }
                }
                _ => rules.extend(parse_rule(body)),
            }
        }
    }
}

/// NFT_MSG_GETRULE, a dump of every family.
fn request(seq: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(20);
    m.extend_from_slice(&20u32.to_ne_bytes());
    m.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETRULE).to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    // nfgenmsg: family NFPROTO_UNSPEC (all), version 0, resource id 0.
    m.extend_from_slice(&[0, 0, 0, 0]);
    m
}

/// (type, body) of each netlink message in a datagram.
fn messages(mut data: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while data.len() >= 16 {
        let len = u32::from_ne_bytes(data[0..4].try_into().unwrap()) as usize;
        if len < 16 || len > data.len() {
            break;
        }
        out.push((u16::from_ne_bytes([data[4], data[5]]), &data[16..len]));
        data = &data[align(len).min(data.len())..];
    }
    out
}

fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// (type, payload) of each attribute in `data`.
fn attributes(mut data: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while data.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([data[0], data[1]]));
        if len < 4 || len > data.len() {
            break;
        }
        out.push((u16::from_ne_bytes([data[2], data[3]]) & NLA_TYPE_MASK, &data[4..len]));
        data = &data[align(len).min(data.len())..];
    }
    out
}

fn string(payload: &[u8]) -> String {
    String::from_utf8_lossy(payload.split(|&b| b == 0).next().unwrap_or_default()).into_owned()
}

fn be64(payload: &[u8]) -> u64 {
    payload.get(..8).map(|b| u64::from_be_bytes(b.try_into().unwrap())).unwrap_or(0)
}

/// A rule message (nfgenmsg, then attributes), if it holds a counter.
fn parse_rule(body: &[u8]) -> Option<NftRule> {
    let family = family_name(*body.first()?);
    let (mut table, mut chain, mut handle, mut comment, mut counter) = (None, None, 0, None, None);
    for (kind, payload) in attributes(body.get(4..)?) {
        match kind {
            NFTA_RULE_TABLE => table = Some(string(payload)),
            NFTA_RULE_CHAIN => chain = Some(string(payload)),
            NFTA_RULE_HANDLE => handle = be64(payload),
            NFTA_RULE_EXPRESSIONS => counter = counter.or_else(|| first_counter(payload)),
            NFTA_RULE_USERDATA => comment = rule_comment(payload),
            _ => {}
        }
    }
    let (packets, bytes) = counter?;
    Some(NftRule { family, table: table?, chain: chain?, handle, comment, packets, bytes })
}

/// (packets, bytes) of the first `counter` expression of a rule.
fn first_counter(expressions: &[u8]) -> Option<(u64, u64)> {
    attributes(expressions).into_iter().filter(|(kind, _)| *kind == NFTA_LIST_ELEM).find_map(|(_, elem)| {
        let attrs = attributes(elem);
        let name = attrs.iter().find(|(k, _)| *k == NFTA_EXPR_NAME).map(|(_, p)| string(p))?;
        let data = attrs.iter().find(|(k, _)| *k == NFTA_EXPR_DATA).map(|(_, p)| *p)?;
        (name == "counter").then(|| {
            let mut values = (0, 0);
            for (kind, payload) in attributes(data) {
                match kind {
                    NFTA_COUNTER_PACKETS => values.0 = be64(payload),
                    NFTA_COUNTER_BYTES => values.1 = be64(payload),
                    _ => {}
                }
            }
            values
        })
    })
}

/// The comment in a rule's user data (libnftnl's TLVs: type, length, value).
fn rule_comment(mut udata: &[u8]) -> Option<String> {
    while udata.len() >= 2 {
        let (kind, len) = (udata[0], usize::from(udata[1]));
        let value = udata.get(2..2 + len)?;
        if kind == NFTNL_UDATA_RULE_COMMENT {
            return Some(string(value));
        }
        udata = &udata[2 + len..];
    }
    None
}

/// Every counted rule as `"<name>.packets"` and `"<name>.bytes"`.
pub fn nft_counters(netns: &File) -> Result<BTreeMap<String, u64>> {
    let mut flat = BTreeMap::new();
    for rule in nft_rules(netns)? {
        flat.insert(format!("{}.packets", rule.name()), rule.packets);
        flat.insert(format!("{}.bytes", rule.name()), rule.bytes);
    }
    Ok(flat)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(payload);
        a.resize(align(a.len()), 0);
        a
    }

    fn nested(kind: u16, parts: &[Vec<u8>]) -> Vec<u8> {
        attr(kind | 0x8000, &parts.concat())
    }

    /// A rule as the kernel dumps it: `inet filter forward`, handle 4,
    /// `ip saddr 240.0.0.0/4 counter comment "class-e"` (a payload and a cmp
    /// expression before the counter).
    fn rule_message(comment: Option<&str>) -> Vec<u8> {
        let expr = |name: &str, data: Vec<Vec<u8>>| {
            nested(
                NFTA_LIST_ELEM,
                &[attr(NFTA_EXPR_NAME, format!("{name}\0").as_bytes()), nested(NFTA_EXPR_DATA, &data)],
            )
        };
        let counter = expr(
            "counter",
            vec![attr(NFTA_COUNTER_BYTES, &420u64.to_be_bytes()), attr(NFTA_COUNTER_PACKETS, &10u64.to_be_bytes())],
        );
        let mut body = vec![1, 0, 0, 0];
        body.extend(attr(NFTA_RULE_TABLE, b"filter\0"));
        body.extend(attr(NFTA_RULE_CHAIN, b"forward\0"));
        body.extend(attr(NFTA_RULE_HANDLE, &4u64.to_be_bytes()));
        body.extend(nested(
            NFTA_RULE_EXPRESSIONS,
            &[expr("payload", vec![attr(1, &1u32.to_be_bytes())]), expr("cmp", vec![]), counter],
        ));
        if let Some(c) = comment {
            let mut udata = vec![NFTNL_UDATA_RULE_COMMENT, (c.len() + 1) as u8];
            udata.extend_from_slice(c.as_bytes());
            udata.push(0);
            body.extend(attr(NFTA_RULE_USERDATA, &udata));
        }
        body
    }

    #[test]
    fn a_counted_rule_is_named_by_its_comment() {
        let rule = parse_rule(&rule_message(Some("class-e"))).expect("has a counter");
        assert_eq!((rule.packets, rule.bytes), (10, 420));
        assert_eq!(rule.name(), "inet/filter/forward/class-e");
        assert!(rule.is("class-e") && rule.is("4") && !rule.is("5"));
    }

    #[test]
    fn without_a_comment_it_is_named_by_its_handle() {
        assert_eq!(parse_rule(&rule_message(None)).unwrap().name(), "inet/filter/forward/4");
    }

    #[test]
    fn a_rule_without_a_counter_is_left_out() {
        let mut body = vec![2, 0, 0, 0];
        body.extend(attr(NFTA_RULE_TABLE, b"t\0"));
        body.extend(attr(NFTA_RULE_CHAIN, b"c\0"));
        assert_eq!(parse_rule(&body), None);
    }

    #[test]
    fn the_request_is_a_rule_dump_of_every_family() {
        let r = request(7);
        assert_eq!(r.len(), 20);
        assert_eq!(u16::from_ne_bytes([r[4], r[5]]), 0x0a07);
        assert_eq!(u16::from_ne_bytes([r[6], r[7]]), 0x301);
        let msgs = messages(&r);
        assert_eq!(msgs, vec![(0x0a07, &[0u8, 0, 0, 0][..])]);
    }
}
