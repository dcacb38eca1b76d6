//! SR-IOV through sysfs, by PCI address so it works from any namespace:
//! `/sys/bus/pci/devices/<pci>/sriov_{totalvfs,numvfs}` and `virtfn<N>`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::NicError;

fn device_dir(pci: &str) -> PathBuf {
    Path::new("/sys/bus/pci/devices").join(pci)
}

fn read_u32(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// How many VFs the device can have; None if it has no SR-IOV.
pub fn total_vfs(pci: &str) -> Option<u32> {
    read_u32(&device_dir(pci).join("sriov_totalvfs"))
}

pub fn num_vfs(pci: &str) -> Option<u32> {
    read_u32(&device_dir(pci).join("sriov_numvfs"))
}

/// Sets the VF count; the kernel takes a new nonzero count only from 0.
pub fn set_num_vfs(pci: &str, vfs: u32) -> Result<(), NicError> {
    let path = device_dir(pci).join("sriov_numvfs");
    let write = |n: u32| {
        std::fs::write(&path, n.to_string()).map_err(|source| NicError::Io {
            what: "cannot write",
            path: path.clone(),
            source,
        })
    };
    match num_vfs(pci) {
        Some(current) if current == vfs => Ok(()),
        Some(0) | None => write(vfs),
        Some(_) => {
            write(0)?;
            if vfs == 0 {
                return Ok(());
            }
            write(vfs)
        }
    }
}

/// The PCI address of VF `index` of the PF at `pf_pci`.
pub fn vf_pci(pf_pci: &str, index: u32) -> Option<String> {
    let link = std::fs::read_link(device_dir(pf_pci).join(format!("virtfn{index}"))).ok()?;
    Some(link.file_name()?.to_string_lossy().into_owned())
}

/// The kernel driver bound to a device on `bus` (`igb`, `igbvf`, `virtio_net`...).
pub fn driver(bus: &str, dev: &str) -> Option<String> {
    let link = std::fs::read_link(Path::new("/sys/bus").join(bus).join("devices").join(dev).join("driver")).ok()?;
    Some(link.file_name()?.to_string_lossy().into_owned())
}

/// Polls `found` until it gives a value or `limit` passes: VF netdevs
/// appear once their driver has probed them, after sriov_numvfs returns.
pub fn wait_for<T>(
    limit: Duration,
    mut found: impl FnMut() -> Result<Option<T>, NicError>,
) -> Result<Option<T>, NicError> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = found()? {
            return Ok(Some(value));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
