//! Sysctls of the calling thread's network namespace (`/proc/sys/net` is
//! per namespace, resolved when the file is opened).
//!
//! Not through the machine's `/proc`: there, every namespace that ever
//! opened a `net.*` sysctl leaves a dentry named `net` under `/proc/sys`,
//! all in one hash chain, and each lookup of `net` walks it (proc_sys_compare
//! rejects the other namespaces' entries one by one). With 10,000
//! namespaces that made each write cost as much as creating a namespace.
//! So each thread writes through a procfs instance of its own, a detached
//! mount (fsopen/fsmount: in no mount namespace, gone when its fd closes),
//! replaced every [`WRITES_PER_INSTANCE`] writes so its chain stays short.

use std::cell::RefCell;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

/// Writes (hence at most as many namespaces) per procfs instance.
const WRITES_PER_INSTANCE: usize = 128;

pub fn proc_path(key: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(key.replace('.', "/"))
}

pub fn write(key: &str, value: &str) -> io::Result<()> {
    let relative = format!("sys/{}", key.replace('.', "/"));
    match INSTANCE.with(|instance| instance.borrow_mut().open(&relative)) {
        Some(file) => file?.write_all(value.as_bytes()),
        // No fsopen (an old kernel, or a sandbox that forbids mounting procfs).
        None => std::fs::write(proc_path(key), value),
    }
}

thread_local! {
    static INSTANCE: RefCell<Instance> = const { RefCell::new(Instance { mount: None, writes: 0, unavailable: false }) };
}

struct Instance {
    mount: Option<OwnedFd>,
    writes: usize,
    unavailable: bool,
}

impl Instance {
    /// Opens `relative` (under the procfs root) for writing; None when no
    /// private procfs can be had.
    fn open(&mut self, relative: &str) -> Option<io::Result<File>> {
        if self.unavailable {
            return None;
        }
        if self.mount.is_none() || self.writes >= WRITES_PER_INSTANCE {
            self.mount = None; // the old instance (and its dentries) goes first
            match new_procfs() {
                Ok(fd) => (self.mount, self.writes) = (Some(fd), 0),
                Err(_) => {
                    self.unavailable = true;
                    return None;
                }
            }
        }
        self.writes += 1;
        let root = self.mount.as_ref().expect("set above").as_raw_fd();
        let path = CString::new(relative).expect("sysctl keys have no NUL");
        // SAFETY: a valid directory fd and a NUL-terminated path.
        let fd = unsafe { libc::openat(root, path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
        Some(if fd < 0 {
            Err(io::Error::last_os_error())
        } else {
            // SAFETY: openat returned a fresh fd we own.
            Ok(unsafe { File::from_raw_fd(fd) })
        })
    }
}

/// A new procfs superblock, mounted nowhere: the fd is its root.
fn new_procfs() -> io::Result<OwnedFd> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    let check = |ret: libc::c_long| if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret as libc::c_int) };
    // SAFETY: plain syscalls with a NUL-terminated name and null optional arguments.
    let context = check(unsafe { libc::syscall(libc::SYS_fsopen, c"proc".as_ptr(), FSOPEN_CLOEXEC) })?;
    // SAFETY: fsopen returned a fresh fd we own.
    let context = unsafe { OwnedFd::from_raw_fd(context) };
    let null = std::ptr::null::<libc::c_char>();
    // SAFETY: FSCONFIG_CMD_CREATE takes no key, value or aux.
    check(unsafe { libc::syscall(libc::SYS_fsconfig, context.as_raw_fd(), FSCONFIG_CMD_CREATE, null, null, 0) })?;
    // SAFETY: a configured fs context fd.
    let mount = check(unsafe { libc::syscall(libc::SYS_fsmount, context.as_raw_fd(), FSMOUNT_CLOEXEC, 0) })?;
    // SAFETY: fsmount returned a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(mount) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_procfs_reads_like_the_machines() {
        let Ok(root) = new_procfs() else {
            println!("SKIP: cannot mount a procfs instance here (needs CAP_SYS_ADMIN)");
            return;
        };
        let path = CString::new("sys/kernel/ostype").unwrap();
        // SAFETY: a valid directory fd and path.
        let fd = unsafe { libc::openat(root.as_raw_fd(), path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        assert!(fd >= 0, "{}", io::Error::last_os_error());
        // SAFETY: a fresh fd.
        let text = io::read_to_string(unsafe { File::from_raw_fd(fd) }).unwrap();
        assert_eq!(text, std::fs::read_to_string("/proc/sys/kernel/ostype").unwrap());
    }
}
