//! `x.h1:run{...}`: a user's command inside a node's namespace, with a
//! deadline, its exit status and output captured.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::background::{self, Placement};

#[derive(Debug, Clone, Serialize)]
pub struct CommandResult {
    /// Exit status; 128 + signal number if killed (as shells report it).
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    /// Killed because labctl was interrupted (Ctrl-C).
    #[serde(skip)]
    pub interrupted: bool,
}

/// Runs `argv` in `placement` (the node's namespace, a CPU, the node's
/// cgroup), killing it after `timeout` or as soon as labctl is interrupted
/// (Ctrl-C, SIGTERM).
pub fn run(placement: &Placement, argv: &[String], timeout: Duration) -> std::io::Result<CommandResult> {
    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // Its own process group, so a timeout stops what it started too.
    background::place(&mut command, placement);
    let mut child = command.spawn()?;
    // Read both pipes on threads so a chatty command cannot fill one and block.
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + timeout;
    let (status, timed_out, interrupted) = loop {
        if let Some(status) = child.try_wait()? {
            break (status, false, false);
        }
        let interrupted = crate::apply::interrupted();
        if interrupted || Instant::now() >= deadline {
            let group = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            let _ = child.kill();
            break (child.wait()?, !interrupted, interrupted);
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let code = status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    Ok(CommandResult {
        status: code,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        timed_out,
        interrupted,
    })
}
