//! Sysctls of the calling thread's network namespace (`/proc/sys/net` is
//! per namespace, resolved when the file is opened).

use std::io;
use std::path::PathBuf;

pub fn proc_path(key: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(key.replace('.', "/"))
}

pub fn write(key: &str, value: &str) -> io::Result<()> {
    std::fs::write(proc_path(key), value)
}
