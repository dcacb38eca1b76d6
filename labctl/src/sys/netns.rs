//! Named network namespaces, the way iproute2 keeps them: a bind mount of
//! the namespace file at `/run/netns/<name>`, so `ip netns exec` works too.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::model::layout;

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: io::Error },
    #[error("{what}: {source}")]
    Sys { what: String, source: Errno },
}

fn sys(what: impl Into<String>) -> impl FnOnce(Errno) -> NetnsError {
    let what = what.into();
    move |source| NetnsError::Sys { what, source }
}

pub fn path(name: &str) -> PathBuf {
    layout::netns_path(name)
}

pub fn exists(name: &str) -> bool {
    path(name).exists()
}

/// Makes `/run/netns` a shared mount point, as `ip netns add` does, so that
/// unmounting a namespace here also unmounts its copies in other mount
/// namespaces and the namespace is freed at once.
pub fn prepare_run_dir() -> Result<(), NetnsError> {
    let dir = Path::new(layout::NETNS_RUN_DIR);
    fs::create_dir_all(dir).map_err(|source| NetnsError::Io { what: "cannot create", path: dir.into(), source })?;
    let shared = || mount(Some("none"), dir, None::<&str>, MsFlags::MS_SHARED | MsFlags::MS_REC, None::<&str>);
    match shared() {
        Ok(()) => Ok(()),
        Err(Errno::EINVAL) => {
            // Not a mount point yet: bind it onto itself, then share it.
            mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
                .map_err(sys("bind-mount /run/netns onto itself"))?;
            shared().map_err(sys("make /run/netns a shared mount"))
        }
        Err(e) => Err(sys("make /run/netns a shared mount")(e)),
    }
}

/// Moves the calling thread into a new network namespace and binds it at
/// `/run/netns/<name>`. The thread stays in the new namespace; return with
/// [`ThreadNetns::restore`].
pub fn create_and_enter(name: &str) -> Result<File, NetnsError> {
    let target = path(name);
    OpenOptions::new().write(true).create_new(true).open(&target).map_err(|source| NetnsError::Io {
        what: "cannot create",
        path: target.clone(),
        source,
    })?;
    let bind = || -> Result<File, NetnsError> {
        unshare(CloneFlags::CLONE_NEWNET).map_err(sys("unshare(CLONE_NEWNET)"))?;
        mount(Some("/proc/thread-self/ns/net"), &target, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(sys(format!("bind-mount the new namespace at {}", target.display())))?;
        open(name)
    };
    bind().inspect_err(|_| {
        let _ = fs::remove_file(&target);
    })
}

pub fn open(name: &str) -> Result<File, NetnsError> {
    let p = path(name);
    File::open(&p).map_err(|source| NetnsError::Io { what: "cannot open", path: p, source })
}

/// Unmounts and removes `/run/netns/<name>`; a namespace that is already gone is fine.
pub fn remove(name: &str) -> Result<(), NetnsError> {
    let p = path(name);
    match umount2(&p, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(sys(format!("unmount {}", p.display()))(e)),
    }
    match fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(NetnsError::Io { what: "cannot remove", path: p, source }),
    }
}

/// Moves the calling thread into the namespace behind `fd`.
pub fn enter(fd: &impl AsFd) -> Result<(), NetnsError> {
    setns(fd, CloneFlags::CLONE_NEWNET).map_err(sys("setns(CLONE_NEWNET)"))
}

/// The network namespace the calling thread started in, to come back to.
pub struct ThreadNetns(File);

impl ThreadNetns {
    pub fn current() -> Result<Self, NetnsError> {
        let p = "/proc/thread-self/ns/net";
        File::open(p).map(ThreadNetns).map_err(|source| NetnsError::Io { what: "cannot open", path: p.into(), source })
    }

    pub fn restore(&self) -> Result<(), NetnsError> {
        enter(&self.0)
    }
}

/// Prepares the calling process to run a user's command in a node, as
/// `ip netns exec` does: enter the namespace, then a private mount namespace
/// with a fresh /sys, so /sys/class/net shows the node's own interfaces.
/// Call it single-threaded, right before exec.
pub fn enter_for_command(netns: &impl AsFd) -> Result<(), NetnsError> {
    enter(netns)?;
    unshare(CloneFlags::CLONE_NEWNS).map_err(sys("unshare(CLONE_NEWNS)"))?;
    // Keep the host's mounts from seeing ours; still receive theirs.
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_SLAVE | MsFlags::MS_REC, None::<&str>)
        .map_err(sys("make / a slave mount"))?;
    umount2("/sys", MntFlags::MNT_DETACH).map_err(sys("unmount /sys"))?;
    mount(Some("sysfs"), "/sys", Some("sysfs"), MsFlags::empty(), None::<&str>).map_err(sys("mount sysfs"))
}

/// Moves this whole process into a fresh network and mount namespace with a
/// private, empty /run: whatever it (or its children) create there vanishes
/// with it and is never seen by the host. Call it single-threaded.
pub fn isolate_process() -> Result<(), NetnsError> {
    unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWNS).map_err(sys("unshare(CLONE_NEWNET|CLONE_NEWNS)"))?;
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_PRIVATE | MsFlags::MS_REC, None::<&str>)
        .map_err(sys("make / private"))?;
    mount(Some("tmpfs"), "/run", Some("tmpfs"), MsFlags::empty(), None::<&str>).map_err(sys("mount a tmpfs on /run"))
}

/// Runs `f` on a short-lived thread inside the namespace behind `netns`, so
/// the caller's thread never moves. Sockets `f` opens belong to that namespace.
pub fn run_in<T: Send>(netns: &File, f: impl FnOnce() -> T + Send) -> Result<T, NetnsError> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                enter(netns)?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Runs `f` on a short-lived thread in a namespace of its own, with only
/// `lo`, up: for probes whose packets must show in no node's counters and
/// whose objects must vanish with the thread.
pub fn in_scratch<T: Send>(f: impl FnOnce() -> T + Send) -> Result<T, NetnsError> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                unshare(CloneFlags::CLONE_NEWNET).map_err(sys("unshare(CLONE_NEWNET) for a scratch namespace"))?;
                loopback_up().map_err(|source| NetnsError::Io {
                    what: "cannot bring up",
                    path: "lo".into(),
                    source,
                })?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Brings `lo` up in the calling thread's namespace (SIOCSIFFLAGS).
fn loopback_up() -> io::Result<()> {
    let sock = std::net::UdpSocket::bind("0.0.0.0:0")?;
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_LOOPBACK | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads an ifreq we own.
    if unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&sock), libc::SIOCSIFFLAGS, &req) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
