//! `labctl exec LAB NODE -- CMD...` and `labctl shell LAB NODE`: replace
//! labctl with a command running inside a node's namespace.

use std::os::unix::process::CommandExt;
use std::process::Command;

use anyhow::anyhow;
use labctl::apply;
use labctl::sys::netns;

use super::{running_lab, Failure, EXIT_FAILURE};

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// The running lab
    lab: String,
    /// The node to run in
    node: String,
    /// The command and its arguments, after `--`
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct ShellArgs {
    /// The running lab
    lab: String,
    /// The node to open a shell in
    node: String,
}

pub fn run_exec(args: ExecArgs) -> Result<(), Failure> {
    let mut command = Command::new(&args.command[0]);
    command.args(&args.command[1..]);
    exec_in(&args.lab, &args.node, command)
}

pub fn run_shell(args: ShellArgs) -> Result<(), Failure> {
    let shell = std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into());
    eprintln!("labctl: shell in {} of lab {} (exit to leave)", args.node, args.lab);
    let command = shell_with_prompt(&shell, &args.lab, &args.node);
    exec_in(&args.lab, &args.node, command)
}

/// The shell, its prompt starting with `(lab:node)` so every line says
/// where it runs. bash sets its prompt in ~/.bashrc, after the environment:
/// it gets an rc file (in the lab's state folder) that reads ~/.bashrc and
/// then prefixes the prompt; other shells take PS1 from the environment.
fn shell_with_prompt(shell: &str, lab: &str, node: &str) -> Command {
    let tag = format!("({lab}:{node})");
    let mut command = Command::new(shell);
    let is_bash = std::path::Path::new(shell).file_name().is_some_and(|n| n == "bash");
    let state = labctl::apply::state::LabState::open(lab);
    if let (true, Some(state)) = (is_bash, state) {
        let rc = state.dir().join(format!("shell-{node}.bashrc"));
        let text = format!("[ -f ~/.bashrc ] && . ~/.bashrc\nPS1='{tag} '\"$PS1\"\n");
        if std::fs::write(&rc, text).is_ok() {
            command.arg("--rcfile").arg(rc).arg("-i");
            return command;
        }
    }
    command.env("PS1", format!("{tag} # "));
    command
}

fn exec_in(lab: &str, node: &str, mut command: Command) -> Result<(), Failure> {
    apply::check_privileges()?;
    let recorded = running_lab(lab)?;
    if recorded.lab.node(node).is_none() {
        let nodes: Vec<&str> = recorded.lab.nodes.iter().map(|n| n.name.as_str()).collect();
        return Err(Failure::bad_input(anyhow!("lab {lab} has no node {node:?}"))
            .help(format!("its nodes are: {}", nodes.join(", "))));
    }
    let name = recorded.lab.netns_name(node);
    let fd = netns::open(&name).map_err(|e| Failure::new(EXIT_FAILURE, e))?;
    // A CPU-limited node's commands run in its cgroup, this one too.
    if let Some(dir) = apply::cgroup::of_node(&recorded.lab, node).map_err(|e| Failure::new(EXIT_FAILURE, e))? {
        apply::cgroup::enter(&dir).map_err(|e| Failure::new(EXIT_FAILURE, e))?;
    }
    netns::enter_for_command(&fd).map_err(|e| Failure::new(EXIT_FAILURE, e))?;
    command.env("LABCTL_LAB", lab).env("LABCTL_NODE", node);
    // exec only returns on failure.
    let error = command.exec();
    let program = command.get_program().to_string_lossy().into_owned();
    let status = if error.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 };
    Err(Failure::new(status, anyhow!("cannot run {program:?} in {node}: {error}")))
}
