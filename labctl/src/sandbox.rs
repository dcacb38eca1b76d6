//! A throwaway network and mount namespace for a child process: labs built
//! by the child live in it and vanish with it, never meet another lab of the
//! same name, and never reach the machine's `/run/netns`, `/run/labctl` or
//! `/sys/fs/bpf`. `labctl test -j` runs each lab in one.
//!
//! Inside, the child sees a fresh "host" namespace with only `lo` (up), its
//! own empty `/run/netns` and `/run/labctl` (tmpfs), a sysfs of its own
//! network namespace (with the machine's cgroup and tracing mounts carried
//! over, which drop tracing needs) and a private bpffs. `/run/lock` stays the
//! machine's, so labs that must run alone can still be serialized.

use std::ffi::CStr;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::stat::{stat, Mode};

/// Makes `command` start inside a new sandbox of its own.
pub fn isolate(command: &mut Command) {
    // SAFETY: between fork and exec only async-signal-safe syscalls on
    // static C strings and a stack-allocated ifreq run: no allocation, no lock.
    unsafe {
        command.pre_exec(|| {
            enter()?;
            Ok(())
        });
    }
}

fn enter() -> nix::Result<()> {
    unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWNS)?;
    mount(None::<&CStr>, c"/", None::<&CStr>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&CStr>)?;
    for dir in [c"/run/netns", c"/run/labctl"] {
        mkdir_once(dir)?;
        mount(Some(c"tmpfs"), dir, Some(c"tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some(c"mode=0755"))?;
    }
    own_sysfs()?;
    loopback_up()
}

fn mkdir_once(dir: &CStr) -> nix::Result<()> {
    match nix::unistd::mkdir(dir, Mode::from_bits_truncate(0o755)) {
        Ok(()) | Err(nix::Error::EEXIST) => Ok(()),
        Err(e) => Err(e),
    }
}

/// A sysfs of the new network namespace on /sys (sysfs shows the devices of
/// the namespace that mounted it), keeping the mounts below the old /sys
/// that labs use, and a private bpffs.
fn own_sysfs() -> nix::Result<()> {
    const OLD: &CStr = c"/run/labctl/.oldsys";
    const KEEP: &[(&CStr, &CStr)] = &[
        (c"/run/labctl/.oldsys/fs/cgroup", c"/sys/fs/cgroup"),
        (c"/run/labctl/.oldsys/kernel/tracing", c"/sys/kernel/tracing"),
        (c"/run/labctl/.oldsys/kernel/debug", c"/sys/kernel/debug"),
        (c"/run/labctl/.oldsys/kernel/security", c"/sys/kernel/security"),
    ];
    nix::unistd::mkdir(OLD, Mode::from_bits_truncate(0o700))?;
    mount(Some(c"/sys"), OLD, None::<&CStr>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&CStr>)?;
    mount(
        Some(c"sysfs"),
        c"/sys",
        Some(c"sysfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&CStr>,
    )?;
    let old_dev = stat(OLD)?.st_dev;
    for (from, to) in KEEP {
        // Only what is a mount of its own there (not an empty folder of sysfs).
        if stat(*from).is_ok_and(|st| st.st_dev != old_dev) {
            let _ = mount(Some(*from), *to, None::<&CStr>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&CStr>);
        }
    }
    // Best effort: a kernel without bpffs runs labs without XDP.
    let _ = mount(Some(c"bpf"), c"/sys/fs/bpf", Some(c"bpf"), MsFlags::empty(), Some(c"mode=0700"));
    umount2(OLD, MntFlags::MNT_DETACH)?;
    nix::unistd::unlinkat(nix::fcntl::AT_FDCWD, OLD, nix::unistd::UnlinkatFlags::RemoveDir)
}

/// `lo` up with the ioctl (netlink would allocate).
fn loopback_up() -> nix::Result<()> {
    // SAFETY: a datagram socket and two ioctls on a zeroed ifreq naming "lo".
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(nix::Error::last());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        let mut rc = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req);
        if rc == 0 {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            rc = libc::ioctl(fd, libc::SIOCSIFFLAGS, &req);
        }
        let error = nix::Error::last();
        libc::close(fd);
        if rc < 0 {
            return Err(error);
        }
    }
    Ok(())
}
