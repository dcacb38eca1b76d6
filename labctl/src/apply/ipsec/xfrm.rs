//! The kernel backend: ESP states (SAs) and policies installed over
//! XFRM netlink (netlink-packet-xfrm builds the messages; no `ip xfrm`).
//!
//! Per IPsec link a node gets two SAs (out: local -> remote with `spi_out`,
//! in: remote -> local with `spi_in`) and the policies that send the
//! protected traffic through them: out and in, plus fwd in tunnel mode
//! (decrypted packets a gateway forwards). Keys derive from the link's
//! pre-shared key and direction, so both ends compute the same ones.
//! Everything lives in the node's namespace and goes with it.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_xfrm::policy::ModifyMessage as PolicyModify;
use netlink_packet_xfrm::state::{GetDumpMessage, ModifyMessage as StateModify};
use netlink_packet_xfrm::{
    Address, Alg, AlgAead, AlgAuth, Id, LifetimeConfig, Selector, UserPolicyInfo, UserSaInfo, UserTemplate, XfrmAttrs,
    XfrmMessage, AF_INET, AF_INET6, IPPROTO_ESP, XFRM_MODE_TRANSPORT, XFRM_MODE_TUNNEL, XFRM_POLICY_ALLOW,
    XFRM_POLICY_FWD, XFRM_POLICY_IN, XFRM_POLICY_OUT,
};
use serde::Serialize;

use super::nl::{Nl, NlError};
use crate::model::ipsec::derive;
use crate::model::{Cipher, IpsecMode};
use crate::plan::IpsecTunnel;

/// The AEAD the `auto` probe asks for: AES-GCM as ESP uses it (RFC 4106).
pub const GCM: &str = "rfc4106(gcm(aes))";
const NETLINK_XFRM: isize = netlink_sys::protocols::NETLINK_XFRM;

fn family(a: &IpAddr) -> u16 {
    if a.is_ipv4() {
        AF_INET
    } else {
        AF_INET6
    }
}

fn name<const N: usize>(text: &str) -> [u8; N] {
    let mut out = [0u8; N];
    out[..text.len()].copy_from_slice(text.as_bytes());
    out
}

/// `len` bytes of key material for the direction `from` -> `to`.
pub fn key_material(psk: &str, from: IpAddr, to: IpAddr, len: usize) -> Vec<u8> {
    let (from, to) = (from.to_string(), to.to_string());
    (0u32..).flat_map(|i| derive(&["esp", psk, &from, &to, &i.to_string()])).take(len).collect()
}

/// The algorithm attributes of an SA of `cipher` with key material `key`.
fn algorithms(cipher: Cipher, key: &[u8]) -> Vec<XfrmAttrs> {
    match cipher {
        // The key is the AES key followed by a 4-byte salt (RFC 4106).
        Cipher::AesGcm128 | Cipher::AesGcm256 => vec![XfrmAttrs::EncryptionAlgAead(AlgAead {
            alg_name: name(GCM),
            alg_key_len: key.len() as u32 * 8,
            alg_icv_len: 128,
            alg_key: key.to_vec(),
        })],
        Cipher::AesCbc128Sha256 => vec![
            XfrmAttrs::EncryptionAlg(Alg { alg_name: name("cbc(aes)"), alg_key_len: 128, alg_key: key[..16].to_vec() }),
            XfrmAttrs::AuthenticationAlgTrunc(AlgAuth {
                alg_name: name("hmac(sha256)"),
                alg_key_len: 256,
                alg_trunc_len: 128,
                alg_key: key[16..48].to_vec(),
            }),
        ],
    }
}

/// Bytes of key material `cipher` needs.
fn key_len(cipher: Cipher) -> usize {
    match cipher {
        Cipher::AesGcm128 => 16 + 4,
        Cipher::AesGcm256 => 32 + 4,
        Cipher::AesCbc128Sha256 => 16 + 32,
    }
}

fn mode(mode: IpsecMode) -> u8 {
    match mode {
        IpsecMode::Tunnel => XFRM_MODE_TUNNEL,
        IpsecMode::Transport => XFRM_MODE_TRANSPORT,
    }
}

/// One ESP SA from `src` to `dst`.
#[derive(Debug, Clone)]
pub struct Sa {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub spi: u32,
    pub reqid: u32,
    pub mode: IpsecMode,
    pub cipher: Cipher,
    pub key: Vec<u8>,
}

impl Sa {
    pub fn message(&self) -> XfrmMessage {
        let info = UserSaInfo {
            id: Id { daddr: Address::from_ip(&self.dst), spi: self.spi, proto: IPPROTO_ESP },
            saddr: Address::from_ip(&self.src),
            family: family(&self.src),
            mode: mode(self.mode),
            reqid: self.reqid,
            replay_window: 32,
            lifetime_cfg: LifetimeConfig::default(),
            ..Default::default()
        };
        XfrmMessage::AddSa(StateModify { user_sa_info: info, nlas: algorithms(self.cipher, &self.key) })
    }
}

/// One policy: traffic `src` -> `dst` in direction `dir` goes through the
/// SA from `tmpl_src` to `tmpl_dst`.
#[derive(Debug, Clone)]
pub struct Policy {
    pub src: IpNet,
    pub dst: IpNet,
    pub dir: u8,
    pub tmpl_src: IpAddr,
    pub tmpl_dst: IpAddr,
    pub reqid: u32,
    pub mode: IpsecMode,
}

impl Policy {
    pub fn message(&self) -> XfrmMessage {
        let mut selector = Selector { family: family(&self.src.addr()), ..Default::default() };
        selector.source_prefix(&self.src.network(), self.src.prefix_len());
        selector.destination_prefix(&self.dst.network(), self.dst.prefix_len());
        let info = UserPolicyInfo {
            selector,
            lifetime_cfg: LifetimeConfig::default(),
            priority: 1000,
            direction: self.dir,
            action: XFRM_POLICY_ALLOW,
            ..Default::default()
        };
        let mut template = UserTemplate::default();
        template.source(&self.tmpl_src);
        template.destination(&self.tmpl_dst);
        template.protocol(IPPROTO_ESP);
        template.mode(mode(self.mode));
        template.reqid(self.reqid);
        XfrmMessage::AddPolicy(PolicyModify { user_policy_info: info, nlas: vec![XfrmAttrs::Template(vec![template])] })
    }
}

/// The SAs and policies of one IPsec link on one node.
pub fn messages(t: &IpsecTunnel) -> (Vec<Sa>, Vec<Policy>) {
    let len = key_len(t.cipher);
    let sa = |src, dst, spi| Sa {
        src,
        dst,
        spi,
        reqid: t.reqid,
        mode: t.mode,
        cipher: t.cipher,
        key: key_material(&t.psk, src, dst, len),
    };
    let sas = vec![sa(t.local, t.remote, t.spi_out), sa(t.remote, t.local, t.spi_in)];
    let (local, remote) = t.selectors();
    let policy =
        |src, dst, dir, tmpl_src, tmpl_dst| Policy { src, dst, dir, tmpl_src, tmpl_dst, reqid: t.reqid, mode: t.mode };
    let mut policies = vec![
        policy(local, remote, XFRM_POLICY_OUT, t.local, t.remote),
        policy(remote, local, XFRM_POLICY_IN, t.remote, t.local),
    ];
    if t.mode == IpsecMode::Tunnel {
        policies.push(policy(remote, local, XFRM_POLICY_FWD, t.remote, t.local));
    }
    (sas, policies)
}

#[derive(Debug, thiserror::Error)]
pub enum XfrmError {
    #[error("cannot open an XFRM netlink socket: {0}")]
    Socket(NlError),
    #[error("the kernel refused the ESP SA {spi:#010x} ({src} -> {dst}): {source}")]
    Sa { spi: u32, src: IpAddr, dst: IpAddr, source: NlError },
    #[error("the kernel refused the {dir} policy {src} -> {dst}: {source}")]
    Policy { dir: &'static str, src: IpNet, dst: IpNet, source: NlError },
}

fn dir_name(dir: u8) -> &'static str {
    match dir {
        XFRM_POLICY_IN => "in",
        XFRM_POLICY_OUT => "out",
        _ => "fwd",
    }
}

/// Installs the SAs and policies of `tunnels` in the calling thread's namespace.
pub fn install(tunnels: &[IpsecTunnel]) -> Result<(), XfrmError> {
    let mut nl = Nl::open(NETLINK_XFRM).map_err(XfrmError::Socket)?;
    for t in tunnels {
        let (sas, policies) = messages(t);
        for sa in &sas {
            nl.request(sa.message()).map_err(|source| XfrmError::Sa {
                spi: sa.spi,
                src: sa.src,
                dst: sa.dst,
                source,
            })?;
        }
        for p in &policies {
            nl.request(p.message()).map_err(|source| XfrmError::Policy {
                dir: dir_name(p.dir),
                src: p.src,
                dst: p.dst,
                source,
            })?;
        }
    }
    Ok(())
}

/// Why this kernel has no usable ESP, as the probe found it. Clone: the
/// answer is kept for the process and handed to every caller.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NoEsp {
    #[error("no XFRM netlink (CONFIG_XFRM_USER): {0}")]
    NoXfrm(NlError),
    #[error("XFRM_MSG_NEWSA with ESP {GCM} refused: {0}")]
    Refused(NlError),
    #[error("cannot make a scratch namespace to probe in: {0}")]
    NoScratch(std::sync::Arc<crate::sys::netns::NetnsError>),
}

/// Does the kernel of the calling thread's namespace accept an ESP SA with
/// AES-GCM? `Err` says why not (e.g. "Requested AEAD algorithm not found"
/// without INET_ESP). Call it in a scratch namespace: the SA stays there.
pub fn probe_esp() -> Result<(), NoEsp> {
    let mut nl = Nl::open(NETLINK_XFRM).map_err(NoEsp::NoXfrm)?;
    let a: IpAddr = "198.18.255.1".parse().unwrap();
    let b: IpAddr = "198.18.255.2".parse().unwrap();
    let sa = Sa {
        src: a,
        dst: b,
        spi: 0x1000_0001,
        reqid: 1,
        mode: IpsecMode::Tunnel,
        cipher: Cipher::AesGcm128,
        key: vec![0x42; 20],
    };
    nl.request(sa.message()).map_err(NoEsp::Refused)
}

/// Removes every ESP SA of the calling thread's namespace (the policies
/// stay, so protected traffic is dropped: XfrmOutNoStates).
pub fn flush_sas() -> Result<(), NlError> {
    let mut nl = Nl::open(NETLINK_XFRM)?;
    nl.request(XfrmMessage::FlushSa(netlink_packet_xfrm::state::FlushMessage { protocol: IPPROTO_ESP }))
}

/// Removes every SA and policy of the calling thread's namespace.
pub fn flush_all() -> Result<(), NlError> {
    flush_sas()?;
    let mut nl = Nl::open(NETLINK_XFRM)?;
    nl.request(XfrmMessage::FlushPolicy(netlink_packet_xfrm::policy::FlushMessage::default()))
}

/// Packets and bytes through one SA, from its current lifetime.
#[derive(Debug, Clone, Serialize)]
pub struct SaCounters {
    pub spi: String,
    pub src: String,
    pub dst: String,
    pub mode: String,
    pub packets: u64,
    pub bytes: u64,
    pub replay_window_drops: u32,
    pub integrity_failures: u32,
}

/// Every SA of the calling thread's namespace (XFRM_MSG_GETSA dump).
pub fn dump_sas() -> Result<Vec<SaCounters>, NlError> {
    let mut nl = Nl::open(NETLINK_XFRM)?;
    let replies = nl.dump(XfrmMessage::GetDumpSa(GetDumpMessage::default()))?;
    let mut out: Vec<SaCounters> = replies
        .into_iter()
        .filter_map(|m| match m {
            XfrmMessage::AddSa(sa) => Some(sa.user_sa_info),
            _ => None,
        })
        .map(|info| {
            let ip = |a: &Address| {
                if info.family == AF_INET {
                    a.to_ipv4().to_string()
                } else {
                    a.to_ipv6().to_string()
                }
            };
            SaCounters {
                spi: format!("{:08x}", info.id.spi),
                src: ip(&info.saddr),
                dst: ip(&info.id.daddr),
                mode: if info.mode == XFRM_MODE_TUNNEL { "tunnel" } else { "transport" }.into(),
                packets: info.lifetime_cur.packets,
                bytes: info.lifetime_cur.bytes,
                replay_window_drops: info.stats.replay_window,
                integrity_failures: info.stats.integrity_failed,
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.src, &a.dst).cmp(&(&b.src, &b.dst)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use netlink_packet_core::{Emitable, NetlinkHeader, NetlinkMessage, NetlinkPayload};

    use super::*;

    fn tunnel() -> IpsecTunnel {
        IpsecTunnel {
            name: "gw1-gw2".into(),
            peer: "gw2".into(),
            initiator: true,
            local: "198.18.1.1".parse().unwrap(),
            remote: "198.18.2.1".parse().unwrap(),
            local_subnet: Some("198.19.10.0/24".parse().unwrap()),
            remote_subnet: Some("198.19.20.0/24".parse().unwrap()),
            mode: IpsecMode::Tunnel,
            cipher: Cipher::AesGcm128,
            psk: "secret".into(),
            spi_out: 0x1122_3344,
            spi_in: 0x5566_7788,
            reqid: 7,
        }
    }

    /// The bytes a message goes out as: header (16) + payload.
    fn bytes(msg: XfrmMessage) -> Vec<u8> {
        let mut m = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::InnerMessage(msg));
        m.finalize();
        let mut buf = vec![0; m.buffer_len()];
        m.serialize(&mut buf);
        buf
    }

    #[test]
    fn esp_sa_message_has_the_kernel_layout() {
        let (sas, _) = messages(&tunnel());
        let out = &sas[0];
        let buf = bytes(out.message());
        // nlmsghdr: type XFRM_MSG_NEWSA (0x10).
        assert_eq!(u16::from_ne_bytes([buf[4], buf[5]]), 0x10);
        let info = &buf[16..16 + 224]; // struct xfrm_usersa_info
                                       // id (after the 56-byte selector): daddr, then the SPI in network order, then proto.
        assert_eq!(&info[56..60], &[198, 18, 2, 1]);
        assert_eq!(&info[72..76], &0x1122_3344u32.to_be_bytes());
        assert_eq!(info[76], 50, "proto ESP");
        assert_eq!(&info[80..84], &[198, 18, 1, 1], "saddr");
        // after saddr (16), lifetime cfg (64), cur (32), stats (12): seq, reqid, family, mode, replay window.
        let tail = 80 + 16 + 64 + 32 + 12;
        assert_eq!(u32::from_ne_bytes(info[tail + 4..tail + 8].try_into().unwrap()), 7, "reqid");
        assert_eq!(u16::from_ne_bytes([info[tail + 8], info[tail + 9]]), 2, "AF_INET");
        assert_eq!(info[tail + 10], 1, "tunnel mode");
        assert_eq!(info[tail + 11], 32, "replay window");
        // then XFRMA_ALG_AEAD (type 18): name, key length in bits (128 + 32 salt), ICV 128 bits, key.
        let nla = &buf[16 + 224..];
        assert_eq!(u16::from_ne_bytes([nla[2], nla[3]]), 18);
        assert_eq!(&nla[4..4 + GCM.len()], GCM.as_bytes());
        assert_eq!(u32::from_ne_bytes(nla[68..72].try_into().unwrap()), 160);
        assert_eq!(u32::from_ne_bytes(nla[72..76].try_into().unwrap()), 128);
        assert_eq!(&nla[76..96], &out.key[..]);
    }

    #[test]
    fn both_ends_derive_the_same_keys_and_mirror_spis() {
        let a = tunnel();
        let b = IpsecTunnel {
            local: a.remote,
            remote: a.local,
            spi_out: a.spi_in,
            spi_in: a.spi_out,
            local_subnet: a.remote_subnet,
            remote_subnet: a.local_subnet,
            initiator: false,
            ..a.clone()
        };
        let (sa_a, _) = messages(&a);
        let (sa_b, _) = messages(&b);
        // a's outbound SA is b's inbound one: same SPI, addresses and key.
        assert_eq!((sa_a[0].spi, sa_a[0].src, sa_a[0].dst), (sa_b[1].spi, sa_b[1].src, sa_b[1].dst));
        assert_eq!(sa_a[0].key, sa_b[1].key);
        assert_ne!(sa_a[0].key, sa_a[1].key, "each direction has its own key");
    }

    #[test]
    fn policies_cover_out_in_and_fwd_in_tunnel_mode() {
        let (_, policies) = messages(&tunnel());
        let dirs: Vec<u8> = policies.iter().map(|p| p.dir).collect();
        assert_eq!(dirs, vec![XFRM_POLICY_OUT, XFRM_POLICY_IN, XFRM_POLICY_FWD]);
        let buf = bytes(policies[0].message());
        assert_eq!(u16::from_ne_bytes([buf[4], buf[5]]), 0x13, "XFRM_MSG_NEWPOLICY");
        let info = &buf[16..16 + 168]; // struct xfrm_userpolicy_info
                                       // selector: daddr, saddr, ports, family, prefix lengths d/s.
        assert_eq!(&info[0..4], &[198, 19, 20, 0]);
        assert_eq!(&info[16..20], &[198, 19, 10, 0]);
        assert_eq!(u16::from_ne_bytes([info[40], info[41]]), 2);
        assert_eq!((info[42], info[43]), (24, 24));
        // after the lifetimes: priority, index, dir, action.
        let at = 56 + 64 + 32;
        assert_eq!(u32::from_ne_bytes(info[at..at + 4].try_into().unwrap()), 1000);
        assert_eq!(info[at + 8], XFRM_POLICY_OUT);
        assert_eq!(info[at + 9], XFRM_POLICY_ALLOW);
        // XFRMA_TMPL (type 5): one xfrm_user_tmpl, ESP, tunnel mode, our reqid.
        let nla = &buf[16 + 168..];
        assert_eq!(u16::from_ne_bytes([nla[2], nla[3]]), 5);
        let tmpl = &nla[4..4 + 64];
        assert_eq!(&tmpl[0..4], &[198, 18, 2, 1], "template daddr");
        assert_eq!(tmpl[20], 50, "ESP");
        assert_eq!(&tmpl[28..32], &[198, 18, 1, 1], "template saddr");
        assert_eq!(u32::from_ne_bytes(tmpl[44..48].try_into().unwrap()), 7);
        assert_eq!(tmpl[48], XFRM_MODE_TUNNEL);
    }

    #[test]
    fn transport_mode_selects_the_two_hosts_and_has_no_fwd_policy() {
        let t = IpsecTunnel { local_subnet: None, remote_subnet: None, mode: IpsecMode::Transport, ..tunnel() };
        let (sas, policies) = messages(&t);
        assert!(sas.iter().all(|s| s.mode == IpsecMode::Transport));
        assert_eq!(policies.len(), 2);
        assert_eq!(policies[0].src.to_string(), "198.18.1.1/32");
        assert_eq!(policies[0].dst.to_string(), "198.18.2.1/32");
    }

    #[test]
    fn cbc_sha256_gets_an_encryption_and_a_truncated_auth_algorithm() {
        let t = IpsecTunnel { cipher: Cipher::AesCbc128Sha256, ..tunnel() };
        let (sas, _) = messages(&t);
        let XfrmMessage::AddSa(m) = sas[0].message() else { panic!() };
        assert!(matches!(&m.nlas[0], XfrmAttrs::EncryptionAlg(a) if a.alg_key.len() == 16));
        assert!(
            matches!(&m.nlas[1], XfrmAttrs::AuthenticationAlgTrunc(a) if a.alg_trunc_len == 128 && a.alg_key.len() == 32)
        );
        assert_eq!(m.buffer_len(), 224 + (4 + 68 + 16) + (4 + 72 + 32));
    }
}
