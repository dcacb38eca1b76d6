//! Applying a fix to a running exercise lab: the reference solution's
//! commands, run inside their nodes, or a submission's `commands.sh`, run
//! on the (sandboxed) host with `LAB` set and labctl on `PATH`, so it can
//! say `labctl exec "$LAB" r1 -- ...` or `ip netns exec "$LAB-r1" ...`.

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use super::{Loaded, SolutionCommand};
use crate::sys::netns;

#[derive(Debug, thiserror::Error)]
pub enum SolutionError {
    #[error("{origin}: cannot open node {node}: {source}")]
    Node { origin: crate::diag::Origin, node: String, source: netns::NetnsError },
    #[error("{origin}: `{command}` in {node} could not run: {source}")]
    Spawn { origin: crate::diag::Origin, node: String, command: String, source: std::io::Error },
    #[error("{origin}: `{command}` in {node} exited {status}: {stderr}")]
    Failed { origin: crate::diag::Origin, node: String, command: String, status: i32, stderr: String },
    #[error("commands.sh could not run: {0}")]
    Script(std::io::Error),
}

/// Runs the reference solution's commands in order; the first failure stops.
pub fn apply(loaded: &Loaded) -> Result<(), SolutionError> {
    loaded.exercise.spec.commands.iter().try_for_each(|c| run(&loaded.script.lab.name, c))
}

/// Runs the exercise's setup commands (what breaks the lab once it is up).
pub fn set_up(loaded: &Loaded) -> Result<(), SolutionError> {
    loaded.exercise.spec.setup.iter().try_for_each(|c| run(&loaded.script.lab.name, c))
}

fn run(lab: &str, command: &SolutionCommand) -> Result<(), SolutionError> {
    let SolutionCommand { node, argv, origin } = command;
    let ns = netns::open(&format!("{lab}-{node}")).map_err(|source| SolutionError::Node {
        origin: origin.clone(),
        node: node.clone(),
        source,
    })?;
    let text = argv.join(" ");
    let spawn =
        |source| SolutionError::Spawn { origin: origin.clone(), node: node.clone(), command: text.clone(), source };
    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]).stdin(std::process::Stdio::null());
    let fd = ns.as_raw_fd();
    // SAFETY: between fork and exec only setns, unshare and mount (as
    // `labctl exec` does), so /sys shows the node's own interfaces.
    unsafe {
        command.pre_exec(move || {
            let ns = std::os::fd::BorrowedFd::borrow_raw(fd);
            netns::enter_for_command(&ns).map_err(std::io::Error::other)
        });
    }
    let out = command.output().map_err(spawn)?;
    if !out.status.success() {
        return Err(SolutionError::Failed {
            origin: origin.clone(),
            node: node.clone(),
            command: text,
            status: out.status.code().unwrap_or(128),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// What a submission's `commands.sh` did: its status and output.
pub struct ScriptRun {
    pub status: i32,
    pub output: String,
}

/// Runs `script` with `sh` on the host of the lab (`LAB` set, labctl first
/// on `PATH`), in `dir`.
pub fn run_script(script: &Path, lab: &str, dir: &Path) -> Result<ScriptRun, SolutionError> {
    let me = std::env::current_exe().map_err(SolutionError::Script)?;
    let bin = me.parent().unwrap_or(Path::new("/")).to_path_buf();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![bin];
    paths.extend(std::env::split_paths(&path));
    let path = std::env::join_paths(paths).map_err(|e| SolutionError::Script(std::io::Error::other(e)))?;
    let out = Command::new("sh")
        .arg(script)
        .current_dir(dir)
        .env("LAB", lab)
        .env("PATH", path)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(SolutionError::Script)?;
    let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&out.stderr));
    Ok(ScriptRun { status: out.status.code().unwrap_or(128), output })
}
