//! One exercise or submission in its own sandbox: labctl runs itself in a
//! [`labctl::sandbox`] with a hidden flag, and reads back what the child
//! printed as JSON.

use std::process::{Command, Stdio};

use anyhow::anyhow;
use serde::de::DeserializeOwned;

use crate::cli::{Failure, EXIT_FAILURE};

/// The hidden flag: this process is the sandboxed child; do the work here
/// and print JSON.
pub const FLAG: &str = "--in-sandbox";

/// Runs `labctl exercise <args> --in-sandbox` in a fresh sandbox.
pub fn run<T: DeserializeOwned>(args: &[std::ffi::OsString]) -> Result<T, Failure> {
    let me = std::env::current_exe().map_err(|e| Failure::new(EXIT_FAILURE, anyhow!("cannot find labctl: {e}")))?;
    let mut command = Command::new(me);
    command.arg("exercise").args(args).arg(FLAG).stdin(Stdio::null()).stderr(Stdio::inherit());
    labctl::sys::sandbox::isolate(&mut command)
        .map_err(|e| Failure::new(EXIT_FAILURE, anyhow!("cannot prepare a sandbox: {e}")))?;
    let out = command.output().map_err(|e| Failure::new(EXIT_FAILURE, anyhow!("cannot start a sandbox: {e}")))?;
    serde_json::from_slice(&out.stdout).map_err(|e| {
        Failure::new(
            EXIT_FAILURE,
            anyhow!(
                "the sandboxed run exited {} without a result ({e}): {}",
                out.status,
                String::from_utf8_lossy(&out.stdout)
            ),
        )
    })
}
