//! Tuning one interface of the calling thread's namespace: offloads through
//! the ethtool ioctl, RPS/XPS/RFS masks and NAPI threading through a sysfs
//! mounted from inside the namespace (sysfs shows the devices of the
//! namespace that mounted it).
//!
//! The ioctl is written by hand: the ethtool crate of rust-netlink reads
//! features but cannot set them yet, and the legacy ETHTOOL_S* commands are
//! two integers.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::model::Tuning;

#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    #[error("{ifname}: cannot switch {offload} {state}: {source}")]
    Offload { ifname: String, offload: String, state: &'static str, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Sysfs { path: String, source: io::Error },
    #[error("{ifname}: cannot switch threaded NAPI: the device has no NAPI instance (on veth, NAPI exists only with GRO on or an XDP program: add gro = true)")]
    NoNapi { ifname: String },
    #[error("cannot mount sysfs at {path}: {source}")]
    Mount { path: String, source: nix::errno::Errno },
}

/// `ETHTOOL_S*` command of each offload `tune` knows.
fn ethtool_set_command(offload: &str) -> Option<u32> {
    Some(match offload {
        "rx_checksum" => 0x15, // ETHTOOL_SRXCSUM
        "tx_checksum" => 0x17, // ETHTOOL_STXCSUM
        "tso" => 0x1f,         // ETHTOOL_STSO
        "gso" => 0x24,         // ETHTOOL_SGSO
        "gro" => 0x2c,         // ETHTOOL_SGRO
        _ => return None,
    })
}

#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

/// `struct ifreq` with the `ifr_data` member of its union.
#[repr(C)]
struct IfReqData {
    name: [u8; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _rest: [u8; 16],
}

fn set_offload(ifname: &str, offload: &str, on: bool) -> io::Result<()> {
    let cmd = ethtool_set_command(offload).ok_or_else(|| io::Error::other("unknown offload"))?;
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    let mut value = EthtoolValue { cmd, data: u32::from(on) };
    let mut request =
        IfReqData { name: [0; libc::IFNAMSIZ], data: (&mut value as *mut EthtoolValue).cast(), _rest: [0; 16] };
    request.name[..ifname.len()].copy_from_slice(ifname.as_bytes());
    // SAFETY: SIOCETHTOOL reads the ifreq and the ethtool_value it points to, both alive here.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCETHTOOL, &mut request) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Applies `tuning` to its interface. The calling thread must be in the
/// interface's namespace; `scratch` is an empty folder for a sysfs mount.
pub fn apply(tuning: &Tuning, scratch: &Path) -> Result<(), TuneError> {
    let ifname = &tuning.ifname;
    for (offload, on) in &tuning.offloads {
        let state = if *on { "on" } else { "off" };
        set_offload(ifname, offload, *on).map_err(|source| TuneError::Offload {
            ifname: ifname.clone(),
            offload: offload.clone(),
            state,
            source,
        })?;
    }
    let queue_settings = tuning.rps_cpus.is_some() || tuning.xps_cpus.is_some() || tuning.rps_flow_cnt.is_some();
    if !queue_settings && tuning.threaded.is_none() {
        return Ok(());
    }
    let shown = scratch.display().to_string();
    fs::create_dir_all(scratch).map_err(|source| TuneError::Sysfs { path: shown.clone(), source })?;
    mount(
        Some("sysfs"),
        scratch,
        Some("sysfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|source| TuneError::Mount { path: shown.clone(), source })?;
    let result = write_sysfs(&scratch.join("class/net").join(ifname), tuning);
    let _ = umount2(scratch, MntFlags::MNT_DETACH);
    let _ = fs::remove_dir(scratch);
    result
}

fn write_sysfs(dev: &Path, tuning: &Tuning) -> Result<(), TuneError> {
    let write = |path: &Path, value: &str| {
        fs::write(path, value).map_err(|source| TuneError::Sysfs { path: path.display().to_string(), source })
    };
    let queues = dev.join("queues");
    let entries =
        fs::read_dir(&queues).map_err(|source| TuneError::Sysfs { path: queues.display().to_string(), source })?;
    let mut names: Vec<String> = entries.flatten().filter_map(|e| e.file_name().into_string().ok()).collect();
    names.sort();
    for queue in &names {
        let dir = queues.join(queue);
        if queue.starts_with("rx-") {
            if let Some(mask) = &tuning.rps_cpus {
                write(&dir.join("rps_cpus"), mask)?;
            }
            if let Some(n) = tuning.rps_flow_cnt {
                write(&dir.join("rps_flow_cnt"), &n.to_string())?;
            }
        } else if let (true, Some(mask)) = (queue.starts_with("tx-"), &tuning.xps_cpus) {
            write(&dir.join("xps_cpus"), mask)?;
        }
    }
    if let Some(on) = tuning.threaded {
        match write(&dev.join("threaded"), if on { "1" } else { "0" }) {
            Err(TuneError::Sysfs { source, .. }) if source.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                return Err(TuneError::NoNapi { ifname: tuning.ifname.clone() })
            }
            other => other?,
        }
    }
    Ok(())
}
