//! Per-thread CPU accounting and pinning, so a generator's cost is measured
//! on the thread that pays it (`getrusage(RUSAGE_THREAD)`).

use nix::sched::{sched_setaffinity, CpuSet};
use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::time::TimeVal;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::TrafficError;

/// CPU seconds spent in user space and in the kernel (including softirq
/// work the kernel charged to this thread, such as a veth peer's receive path).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuTime {
    pub user_s: f64,
    pub sys_s: f64,
}

impl CpuTime {
    /// The calling thread's CPU time so far.
    pub fn thread_now() -> CpuTime {
        let secs = |t: TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
        match getrusage(UsageWho::RUSAGE_THREAD) {
            Ok(u) => CpuTime { user_s: secs(u.user_time()), sys_s: secs(u.system_time()) },
            Err(_) => CpuTime::default(),
        }
    }

    pub fn since(self, start: CpuTime) -> CpuTime {
        CpuTime { user_s: self.user_s - start.user_s, sys_s: self.sys_s - start.sys_s }
    }
}

/// Pins the calling thread to one CPU.
pub fn pin_current_thread(cpu: usize) -> Result<(), TrafficError> {
    let mut set = CpuSet::new();
    set.set(cpu).map_err(|e| TrafficError::Options(format!("cpu {cpu}: {e}")))?;
    // Pid 0 is the calling thread, not the whole process.
    sched_setaffinity(Pid::from_raw(0), &set)
        .map_err(|e| TrafficError::Io { what: format!("pin thread to cpu {cpu}"), source: e.into() })
}
