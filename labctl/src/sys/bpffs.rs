//! The BPF filesystem, where pinned links, programs and maps outlive the
//! process that loaded them.

use std::path::Path;

use nix::errno::Errno;

use crate::model::layout::BPFFS;

/// `statfs` magic of bpffs (`BPF_FS_MAGIC` in linux/magic.h).
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Mounts the BPF filesystem at /sys/fs/bpf unless it is there already.
pub fn ensure_mounted() -> Result<(), Errno> {
    if is_bpffs(Path::new(BPFFS)) {
        return Ok(());
    }
    nix::mount::mount(Some("bpf"), BPFFS, Some("bpf"), nix::mount::MsFlags::empty(), Some("mode=0700"))
}

/// Whether `path` is the root of a BPF filesystem.
pub fn is_bpffs(path: &Path) -> bool {
    // The type of f_type differs between architectures.
    #[allow(clippy::unnecessary_cast)]
    nix::sys::statfs::statfs(path).is_ok_and(|s| s.filesystem_type().0 as i64 == BPF_FS_MAGIC)
}
