//! The small runner of the root test binaries that isolate themselves
//! (`harness = false`): they must unshare their network and mount namespaces
//! before any thread exists, which libtest's harness does not allow.

#![allow(dead_code)] // each binary uses the part it needs

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;
use std::time::Instant;

use labctl::sys::netns;

/// Checks root and moves this (still single-threaded) process into a fresh
/// network and mount namespace with a private /run: nothing the tests make
/// is visible outside, and it all vanishes with the process. On failure the
/// closing line is printed and the exit code returned.
pub fn enter(binary: &str, needs: &str) -> Result<(), ExitCode> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("{binary} needs root ({needs})");
        return Err(Tally::default().failed_before_tests());
    }
    netns::isolate_process().map_err(|e| {
        eprintln!("cannot isolate the test process: {e}");
        Tally::default().failed_before_tests()
    })
}

/// Runs one test, a panic counting as a failure with its message.
pub fn run(test: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(test)).unwrap_or_else(|panic| Err(format!("panicked: {}", panic_message(&panic))))
}

pub fn panic_message(panic: &Box<dyn Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "?".into())
}

/// Counts outcomes and prints them the way test runners do.
#[derive(Default)]
pub struct Tally {
    passed: usize,
    failed: usize,
}

impl Tally {
    pub fn record(&mut self, name: &str, started: Instant, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => {
                self.passed += 1;
                println!("test {name} ... ok ({:.2?})", started.elapsed());
            }
            Err(why) => {
                self.failed += 1;
                println!("test {name} ... FAILED: {why}");
            }
        }
    }

    /// Setup failed: one failure, nothing ran.
    pub fn failed_before_tests(mut self) -> ExitCode {
        self.failed += 1;
        self.finish()
    }

    /// The closing line `N passed, M failed`, and the exit code.
    pub fn finish(self) -> ExitCode {
        println!("{} passed, {} failed", self.passed, self.failed);
        if self.failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}
