//! `x:ipsec("gw1")`, `x:ipsec_stop("gw1")`, `x:ipsec_start("gw1")`: the
//! IPsec state of a node of the running lab, and its tunnel taken down and
//! brought back, for experiments.
//!
//! `x:ipsec(node)` returns
//!
//! ```text
//! { backend = "strongswan" | "kernel",
//!   ike = { { name, state, local, remote, local_port, remote_port, initiator, encryption, dh_group, children } },
//!   sas = { { name, state, mode, encap, spi_in, spi_out, packets_in, bytes_in, packets_out, bytes_out, local_ts, remote_ts } },
//!   xfrm_stat = { XfrmInNoStates = 3, ... } }   -- the node's /proc/net/xfrm_stat, nonzero fields only
//! ```
//!
//! For strongswan, `ike` and `sas` come from the node's charon
//! (`swanctl --list-sas --raw`); for the kernel backend `ike` is empty and
//! `sas` has one entry per XFRM state, from an XFRM_MSG_GETSA dump.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;

use mlua::{LuaSerdeExt, UserDataMethods};
use serde::Serialize;

use super::runtime::{fail, Runtime};
use crate::apply::ipsec::nl::NlError;
use crate::apply::ipsec::{self, strongswan, vici, xfrm};
use crate::model::{Backend, Lab};
use crate::plan::{IpsecTunnel, Step};
use crate::sys::netns;

pub(super) fn register<M: UserDataMethods<Runtime>>(methods: &mut M) {
    methods.add_method("ipsec", |lua, this, node: String| {
        let ns = this.netns(&node)?;
        let status = this.with_lab(|lab| status(lab, &node, &ns));
        lua.to_value(&status.map_err(|e| fail(format!("ipsec({node:?}): {e}")))?)
    });
    // The node's tunnels down, and back up (waits for them).
    methods.add_method("ipsec_stop", |_, this, node: String| {
        let ns = this.netns(&node)?;
        this.with_lab(|lab| stop(lab, &node, &ns)).map_err(|e| fail(format!("ipsec_stop({node:?}): {e}")))
    });
    methods.add_method("ipsec_start", |_, this, node: String| {
        let ns = this.netns(&node)?;
        this.with_lab(|lab| start(lab, &node, &ns)).map_err(|e| fail(format!("ipsec_start({node:?}): {e}")))
    });
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeIpsec {
    pub backend: String,
    /// The daemon is running (strongswan); the SAs are installed (kernel).
    pub running: bool,
    pub ike: Vec<vici::IkeSa>,
    pub sas: Vec<Sa>,
    pub xfrm_stat: BTreeMap<String, u64>,
}

/// One child SA (strongswan) or one pair of XFRM states (kernel), flat.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sa {
    pub name: String,
    pub state: String,
    pub mode: String,
    pub encap: bool,
    /// ESP's algorithm, e.g. `AES_GCM_16-128`.
    pub encryption: String,
    pub spi_in: String,
    pub spi_out: String,
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub local_ts: String,
    pub remote_ts: String,
}

#[derive(Debug, thiserror::Error)]
pub enum IpsecStateError {
    #[error("{node} is on no IPsec link of the lab (see ipsec {{ ... }} in the lab file)")]
    NoTunnel { node: String },
    #[error("IPsec was not started on {node} ({} is missing)", dir.display())]
    NotStarted { node: String, dir: PathBuf },
    #[error(transparent)]
    Netns(#[from] crate::sys::netns::NetnsError),
    #[error("XFRM: {0}")]
    Netlink(#[from] NlError),
    #[error(transparent)]
    Xfrm(#[from] xfrm::XfrmError),
    #[error(transparent)]
    Daemon(#[from] ipsec::IpsecError),
    #[error("{path}: {source}")]
    Read { path: &'static str, source: std::io::Error },
}

type Result<T> = std::result::Result<T, IpsecStateError>;

/// The node's IPsec step in the lab's plan: its state directory and tunnels.
fn step_of(lab: &Lab, node: &str) -> Result<(PathBuf, Vec<IpsecTunnel>)> {
    crate::plan::plan(lab)
        .steps
        .into_iter()
        .find_map(|s| match s {
            Step::StartIpsec { node: n, dir, tunnels, .. } if n == node => Some((dir, tunnels)),
            _ => None,
        })
        .ok_or_else(|| IpsecStateError::NoTunnel { node: node.into() })
}

fn backend_of(dir: &std::path::Path, node: &str) -> Result<Backend> {
    ipsec::started_backend(dir).ok_or_else(|| IpsecStateError::NotStarted { node: node.into(), dir: dir.into() })
}

pub fn status(lab: &Lab, node: &str, ns: &File) -> Result<NodeIpsec> {
    let (dir, tunnels) = step_of(lab, node)?;
    let backend = backend_of(&dir, node)?;
    let xfrm_stat = netns::run_in(ns, xfrm_stat)??;
    let mut out = NodeIpsec { backend: backend.to_string(), running: false, ike: vec![], sas: vec![], xfrm_stat };
    match backend {
        Backend::Kernel => {
            let states = netns::run_in(ns, xfrm::dump_sas)??;
            out.running = !states.is_empty();
            for t in &tunnels {
                let find = |src: std::net::IpAddr, dst: std::net::IpAddr| {
                    states.iter().find(|s| s.src == src.to_string() && s.dst == dst.to_string())
                };
                let (sa_out, sa_in) = (find(t.local, t.remote), find(t.remote, t.local));
                let (local_ts, remote_ts) = t.selectors();
                out.sas.push(Sa {
                    name: t.name.clone(),
                    state: if sa_out.is_some() && sa_in.is_some() { "INSTALLED" } else { "MISSING" }.into(),
                    mode: t.mode.to_string().to_uppercase(),
                    encap: false,
                    encryption: t.cipher.to_string(),
                    spi_in: sa_in.map(|s| s.spi.clone()).unwrap_or_default(),
                    spi_out: sa_out.map(|s| s.spi.clone()).unwrap_or_default(),
                    packets_in: sa_in.map_or(0, |s| s.packets),
                    bytes_in: sa_in.map_or(0, |s| s.bytes),
                    packets_out: sa_out.map_or(0, |s| s.packets),
                    bytes_out: sa_out.map_or(0, |s| s.bytes),
                    local_ts: local_ts.to_string(),
                    remote_ts: remote_ts.to_string(),
                });
            }
        }
        _ => {
            // A stopped daemon has no SAs: report that, not an error.
            if let Ok(raw) = strongswan::swanctl(&dir, &["--list-sas", "--raw"]) {
                out.running = true;
                out.ike = vici::parse_list_sas(&raw);
            }
            for ike in &out.ike {
                for c in &ike.children {
                    out.sas.push(Sa {
                        name: format!("{}/{}", ike.name, c.name),
                        state: c.state.clone(),
                        mode: c.mode.clone(),
                        encap: c.encap,
                        encryption: c.encryption.clone(),
                        spi_in: c.spi_in.clone(),
                        spi_out: c.spi_out.clone(),
                        packets_in: c.packets_in,
                        bytes_in: c.bytes_in,
                        packets_out: c.packets_out,
                        bytes_out: c.bytes_out,
                        local_ts: c.local_ts.clone(),
                        remote_ts: c.remote_ts.clone(),
                    });
                }
            }
        }
    }
    Ok(out)
}

/// The nonzero fields of the calling thread's `/proc/net/xfrm_stat`.
fn xfrm_stat() -> Result<BTreeMap<String, u64>> {
    let path = "/proc/thread-self/net/xfrm_stat";
    let text = std::fs::read_to_string(path).map_err(|source| IpsecStateError::Read { path, source })?;
    Ok(parse_xfrm_stat(&text))
}

pub fn parse_xfrm_stat(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let (name, value) = (words.next()?, words.next()?.parse::<u64>().ok()?);
            (value > 0).then(|| (name.to_string(), value))
        })
        .collect()
}

/// Takes the node's IPsec down: its charon is stopped (it tells the peer,
/// which deletes its side too), or its kernel SAs are flushed (the policies
/// stay and drop the traffic).
pub fn stop(lab: &Lab, node: &str, ns: &File) -> Result<()> {
    let (dir, _) = step_of(lab, node)?;
    match backend_of(&dir, node)? {
        Backend::Kernel => Ok(netns::run_in(ns, xfrm::flush_sas)??),
        _ => {
            ipsec::stop_daemon(&dir);
            Ok(())
        }
    }
}

/// Brings the node's IPsec back as `up` made it, and waits for its tunnels.
pub fn start(lab: &Lab, node: &str, ns: &File) -> Result<()> {
    let (dir, tunnels) = step_of(lab, node)?;
    match backend_of(&dir, node)? {
        Backend::Kernel => netns::run_in(ns, || -> Result<()> {
            xfrm::flush_all()?;
            Ok(xfrm::install(&tunnels)?)
        })?,
        _ => Ok(ipsec::restart(ns, &dir, &tunnels, node)?),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn xfrm_stat_keeps_nonzero_fields() {
        let text = "XfrmInError                     0\nXfrmInNoStates                  3\nXfrmOutNoStates                 0\nXfrmOutPolBlock                 2\n";
        let stat = super::parse_xfrm_stat(text);
        assert_eq!(stat.len(), 2);
        assert_eq!(stat["XfrmInNoStates"], 3);
        assert_eq!(stat["XfrmOutPolBlock"], 2);
    }
}
