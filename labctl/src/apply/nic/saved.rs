//! What a lab took from the host, written to its state folder before the
//! change, so `down` (and rollback, and `down` after a `kill -9`) can put
//! it back exactly: `nics/<n>.json` per claimed device, `sriov/<pf>.json`
//! per PF whose VFs the lab set.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::NicError;
use crate::model::MacAddr;

/// What identifies a device whatever its name and namespace (taken from
/// and matched against a live device in link.rs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub perm_mac: Option<MacAddr>,
    pub parent_bus: Option<String>,
    pub parent_dev: Option<String>,
    /// Its ifindex when claimed (it may change when it moves).
    pub ifindex: u32,
    /// Its MAC when claimed: what tells a virtual device (a veth stand-in) apart.
    pub mac: Option<MacAddr>,
}

impl Identity {
    /// The key of the host-wide claim lock: the bus address where there is one.
    pub fn lock_key(&self) -> String {
        match (&self.parent_bus, &self.parent_dev, self.perm_mac, self.mac) {
            (Some(bus), Some(dev), _, _) => format!("{bus}-{dev}"),
            (_, _, Some(perm), _) => format!("perm-{perm}").replace(':', ""),
            (_, _, _, Some(mac)) => format!("mac-{mac}").replace(':', ""),
            _ => format!("ifindex-{}", self.ifindex),
        }
    }
}

/// One VF's PF-side settings as the kernel reports them (IFLA_VF_*).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VfState {
    pub index: u32,
    pub mac: MacAddr,
    pub vlan: u32,
    pub qos: u32,
    /// None where the driver does not report it.
    pub spoofchk: Option<bool>,
    pub trust: Option<bool>,
    /// IFLA_VF_LINK_STATE_*: 0 auto, 1 enable, 2 disable.
    pub link_state: u32,
    pub min_tx_rate: u32,
    pub max_tx_rate: u32,
}

/// An address as the device had it: with its IPv4 broadcast, or none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedAddress {
    pub address: IpNet,
    pub broadcast: Option<std::net::Ipv4Addr>,
}

/// A device moved into a node, as it was before.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedNic {
    pub node: String,
    /// Its name in the node.
    pub lab_ifname: String,
    pub identity: Identity,
    pub name: String,
    pub mtu: u32,
    pub mac: Option<MacAddr>,
    pub alias: Option<String>,
    pub altnames: Vec<String>,
    pub up: bool,
    pub addresses: Vec<SavedAddress>,
    /// (device, inode) of the namespace it came from.
    pub origin_netns: (u64, u64),
    pub vf: Option<SavedVf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedVf {
    pub pf: String,
    pub pf_identity: Identity,
    pub index: u32,
    /// The VF's own PCI address.
    pub pci: String,
    /// Its PF-side settings before the lab changed anything.
    pub info: VfState,
}

/// A PF whose VF count or VF settings the lab changed, as it was before.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedSriov {
    pub pf: String,
    pub identity: Identity,
    /// PCI address of the PF (`/sys/bus/pci/devices/<pci>/sriov_numvfs`).
    pub pci: String,
    pub numvfs: u32,
    pub vfs: Vec<VfState>,
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> NicError + 'a {
    move |source| NicError::Io { what, path: path.to_path_buf(), source }
}

/// Writes a record durably (a `kill -9` right after must still find it).
fn write_record(path: &Path, record: &impl Serialize) -> Result<(), NicError> {
    let dir = path.parent().expect("records live in a folder");
    fs::create_dir_all(dir).map_err(io("cannot create", dir))?;
    let tmp = path.with_extension("tmp");
    let mut file = fs::File::create(&tmp).map_err(io("cannot write", &tmp))?;
    file.write_all(&serde_json::to_vec_pretty(record).expect("records serialize")).map_err(io("cannot write", &tmp))?;
    file.sync_all().map_err(io("cannot sync", &tmp))?;
    fs::rename(&tmp, path).map_err(io("cannot rename", &tmp))
}

fn read_records<T: DeserializeOwned>(dir: &Path) -> Result<Vec<(PathBuf, T)>, NicError> {
    let mut paths: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(entries) => {
            entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "json")).collect()
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("cannot read", dir)(e)),
    };
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let bytes = fs::read(&path).map_err(io("cannot read", &path))?;
            let record =
                serde_json::from_slice(&bytes).map_err(|source| NicError::Corrupt { path: path.clone(), source })?;
            Ok((path, record))
        })
        .collect()
}

pub fn nics_dir(state: &Path) -> PathBuf {
    state.join("nics")
}

pub fn sriov_dir(state: &Path) -> PathBuf {
    state.join("sriov")
}

/// Saves a claimed device as record number `n` (claims restore in reverse).
pub fn save_nic(state: &Path, n: usize, saved: &SavedNic) -> Result<(), NicError> {
    write_record(&nics_dir(state).join(format!("{n:04}.json")), saved)
}

pub fn save_sriov(state: &Path, saved: &SavedSriov) -> Result<(), NicError> {
    write_record(&sriov_dir(state).join(format!("{}.json", saved.pci)), saved)
}

pub fn saved_nics(state: &Path) -> Result<Vec<(PathBuf, SavedNic)>, NicError> {
    read_records(&nics_dir(state))
}

pub fn saved_sriov(state: &Path) -> Result<Vec<(PathBuf, SavedSriov)>, NicError> {
    read_records(&sriov_dir(state))
}

/// A record whose device is back: forget it.
pub fn forget(path: &Path) -> Result<(), NicError> {
    fs::remove_file(path).map_err(io("cannot remove", path))
}
