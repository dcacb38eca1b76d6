//! Fault injection for the tests of rollback and recovery.
//!
//! - `LABCTL_FAULT_ABORT_AFTER=N`: abort the process (no cleanup, like
//!   `kill -9`) right after plan step N (1-based) was applied;
//! - `LABCTL_FAULT_FAIL_AT=N`: step N fails instead of running, so `up`
//!   rolls back.

#[derive(Debug, Default, Clone, Copy)]
pub struct Faults {
    abort_after: Option<usize>,
    fail_at: Option<usize>,
}

impl Faults {
    pub fn from_env() -> Self {
        let read = |name| std::env::var(name).ok().and_then(|v| v.parse().ok());
        Self { abort_after: read("LABCTL_FAULT_ABORT_AFTER"), fail_at: read("LABCTL_FAULT_FAIL_AT") }
    }

    /// Is step `number` (1-based) set to fail?
    pub fn fails(&self, number: usize) -> bool {
        self.fail_at == Some(number)
    }

    /// Called once step `number` (1-based) was applied.
    pub fn applied(&self, number: usize) {
        if self.abort_after == Some(number) {
            eprintln!("labctl: LABCTL_FAULT_ABORT_AFTER={number}: aborting");
            std::process::abort();
        }
    }
}
