//! A throwaway sandbox for one run of labctl itself: a child process in a
//! private network and mount namespace with its own tmpfs `/run/netns` and
//! `/run/labctl`, a sysfs of its network namespace and a private bpffs, so
//! labs built inside cannot collide with anything on the machine (lab
//! names, namespaces, pins) and vanish with the child. `labctl exercise
//! verify` and `grade` run each exercise or submission in one.

use std::ffi::CStr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::stat::{stat, Mode};

const RUN_DIRS: &[&str] = &["/run/netns", "/run/labctl"];
/// Where the machine's sysfs is held while the fresh one goes on top.
const OLD_SYS: &CStr = c"/run/labctl/.sandbox-sys";
/// Mounts under the machine's /sys to carry into the fresh one (tracing for
/// the drop tracer, cgroups for the daemons).
const KEEP: &[(&CStr, &CStr)] = &[
    (c"/run/labctl/.sandbox-sys/fs/cgroup", c"/sys/fs/cgroup"),
    (c"/run/labctl/.sandbox-sys/kernel/tracing", c"/sys/kernel/tracing"),
    (c"/run/labctl/.sandbox-sys/kernel/debug", c"/sys/kernel/debug"),
];

/// `command`, made to start inside a fresh sandbox (see the module docs).
/// Its lab state folders exist on the machine afterwards only as the empty
/// mount points they were before (created if missing).
pub fn isolate(command: &mut Command) -> std::io::Result<()> {
    for dir in RUN_DIRS {
        if !Path::new(dir).is_dir() {
            std::fs::create_dir_all(dir)?;
        }
    }
    // SAFETY: between fork and exec only syscalls (unshare, mount, mkdir,
    // stat, ioctl) on static C strings; no allocation, no locks.
    unsafe {
        command.pre_exec(|| {
            unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWNS)?;
            mount(None::<&CStr>, c"/", None::<&CStr>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&CStr>)?;
            for dir in [c"/run/netns", c"/run/labctl"] {
                mount(Some(c"tmpfs"), dir, Some(c"tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some(c"mode=0755"))?;
            }
            fresh_sys()?;
            loopback_up()
        });
    }
    Ok(())
}

/// A sysfs of the sandbox's network namespace (so `/sys/class/net` shows its
/// devices), the machine's tracing and cgroup mounts carried over, and an
/// empty bpffs for pins.
fn fresh_sys() -> std::io::Result<()> {
    nix::unistd::mkdir(OLD_SYS, Mode::from_bits_truncate(0o700))?;
    mount(Some(c"/sys"), OLD_SYS, None::<&CStr>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&CStr>)?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some(c"sysfs"), c"/sys", Some(c"sysfs"), flags, None::<&CStr>)?;
    let old_dev = stat(OLD_SYS)?.st_dev;
    for (from, to) in KEEP {
        // Only what is a mount of its own on the machine.
        if stat(*from).is_ok_and(|st| st.st_dev != old_dev) {
            let _ = mount(Some(*from), *to, None::<&CStr>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&CStr>);
        }
    }
    let _ = mount(Some(c"bpf"), c"/sys/fs/bpf", Some(c"bpf"), MsFlags::empty(), Some(c"mode=0700"));
    umount2(OLD_SYS, MntFlags::MNT_DETACH)?;
    nix::unistd::unlinkat(nix::fcntl::AT_FDCWD, OLD_SYS, nix::unistd::UnlinkatFlags::RemoveDir)?;
    Ok(())
}

/// `lo` up in the new namespace (SIOCSIFFLAGS; netlink would allocate).
fn loopback_up() -> std::io::Result<()> {
    use nix::libc;
    // SAFETY: plain ioctls on a socket this function owns, on a zeroed ifreq.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        req.ifr_name[0] = b'l' as libc::c_char;
        req.ifr_name[1] = b'o' as libc::c_char;
        let mut status = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req);
        if status == 0 {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            status = libc::ioctl(fd, libc::SIOCSIFFLAGS, &req);
        }
        let error = std::io::Error::last_os_error();
        libc::close(fd);
        if status == 0 {
            Ok(())
        } else {
            Err(error)
        }
    }
}
