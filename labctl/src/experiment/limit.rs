//! When an experiment must stop: Ctrl-C, or its time limit
//! (`experiment(name, fn, { timeout = "10m" })`, 120 s unless set). Checked
//! by the Lua hook between instruction batches, so a `while true do end`
//! stops, and by the runtime's blocking calls (`x:sleep`, `run`), so a hung
//! command does too.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long an experiment may run unless it says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// The Lua error text of a stop; the experiment's result replaces it with
/// a diagnostic at the experiment's line.
const TIME_LIMIT: &str = "time limit reached";

pub struct Limit {
    pub timeout: Duration,
    deadline: Instant,
    reached: AtomicBool,
}

impl Limit {
    pub fn new(timeout: Duration) -> Limit {
        Limit { timeout, deadline: Instant::now() + timeout, reached: AtomicBool::new(false) }
    }

    /// An error once the experiment was interrupted or ran out of time.
    pub fn check(&self) -> mlua::Result<()> {
        if crate::apply::interrupted() {
            return Err(mlua::Error::runtime("interrupted"));
        }
        if Instant::now() >= self.deadline {
            self.reached.store(true, Ordering::Relaxed);
            return Err(mlua::Error::runtime(TIME_LIMIT));
        }
        Ok(())
    }

    /// What is left of the experiment's time.
    pub fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Whether the experiment was stopped by its time limit.
    pub fn reached(&self) -> bool {
        self.reached.load(Ordering::Relaxed)
    }

    /// Sleeps for `duration`, waking early to stop on Ctrl-C or the time limit.
    pub fn sleep(&self, duration: Duration) -> mlua::Result<()> {
        let until = Instant::now() + duration;
        loop {
            self.check()?;
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            std::thread::sleep(left.min(self.left()).min(Duration::from_millis(20)));
        }
    }
}
