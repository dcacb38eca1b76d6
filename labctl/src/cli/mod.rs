//! Commands of the CLI. Each file is one subcommand; this module holds the
//! argument types and the mapping from errors to exit statuses.

mod bench;
mod bench_traffic;
mod blast;
mod doctor;
mod down;
mod drift;
mod exec;
mod exercise;
mod graph;
mod ls;
mod out;
mod overlays;
mod parallel;
mod params;
mod plan;
mod review;
mod run;
mod session;
mod shard;
mod show;
mod summary;
mod table;
mod test;
mod up;
mod xdp;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use labctl::apply::ApplyError;
use labctl::script::ScriptError;

const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  success
  1  the kernel refused a step, an experiment or command failed
     (anything created was rolled back)
  2  bad input: an error in the lab script or the command line (an experiment
     name the lab does not declare, too), or a lab or namespace name already
     in use (also for run and test); nothing was created, no run folder either.
     Also an unknown option or wrong option value of an x: method in run and
     test (found while the experiment runs; the lab is torn down)
  3  missing privileges: run as root (or with CAP_NET_ADMIN and CAP_SYS_ADMIN)
  130 interrupted (Ctrl-C) during up, run or test; the lab was torn down
  `labctl test` exits 1 when any experiment fails or any snapshot differs.
  `labctl exec` and `labctl shell` exit with the status of the command they ran.";

/// Reproducible Linux network labs from Lua scripts.
///
/// A lab script declares nodes (network namespaces), bridges and veth links;
/// labctl builds them through netlink, keeps a journal of everything it
/// created, and removes it all again on `down`.
#[derive(Debug, Parser)]
#[command(name = "labctl", version, after_help = EXIT_STATUS_HELP)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build a lab and leave it running (needs root)
    Up(up::Args),
    /// Remove a lab and everything it created; safe to repeat (needs root)
    Down(down::Args),
    /// List running labs
    Ls(ls::Args),
    /// Show a running lab as the kernel has it (interfaces, addresses, state, routes, rules, neighbours, XDP
    /// programs, IPsec tunnels) and every drift from its script (reading the kernel needs root)
    Show(show::Args),
    /// Run a command inside a node of a running lab (needs root)
    Exec(exec::ExecArgs),
    /// Open an interactive shell inside a node; its prompt starts with (lab:node) (needs root)
    Shell(exec::ShellArgs),
    /// Send a UDP packet load from one node to another of a running lab (needs root)
    Blast(blast::Args),
    /// Build each lab, run its experiments, compare snapshots, tear down (needs root)
    Test(test::Args),
    /// Run a lab's experiments and show the results, without comparing (needs root)
    Run(run::Args),
    /// Show pending (new or changed) snapshots; accept or reject them
    Review(review::Args),
    /// Print the steps `up` would take, without touching the kernel (no root)
    Plan(plan::Args),
    /// Print the topology as a Mermaid (default) or DOT graph (no root)
    Graph(graph::Args),
    /// Time bring-up and teardown of a star against the kernel floor,
    /// ip-star.sh and Mininet, in a throwaway namespace (needs root)
    Bench(bench::Args),
    /// Packets per second of `blast` (every mode) against trafgen and iperf3
    /// UDP on one veth pair, in a throwaway namespace (needs root)
    BenchTraffic(bench_traffic::Args),
    /// Show the XDP programs of a running lab, read from the kernel: where, mode, program ids, maps (needs root)
    Xdp(xdp::Args),
    /// Probe what this machine offers labs: IPsec backend (kernel ESP or strongSwan), BTF, tracepoints, tools, and where the package list is
    Doctor(doctor::Args),
    /// Self-paced exercises graded by the kernel's own evidence: list, start, check, hint, watch, verify, grade
    Exercise(exercise::Args),
}

pub fn run(cli: Cli) -> Result<ExitCode, Failure> {
    let name = cli.command.name();
    match cli.command {
        Command::Up(args) => up::run(args),
        Command::Down(args) => down::run(args),
        Command::Ls(args) => ls::run(args),
        Command::Show(args) => show::run(args),
        Command::Exec(args) => exec::run_exec(args),
        Command::Shell(args) => exec::run_shell(args),
        Command::Blast(args) => blast::run(args),
        Command::Test(args) => test::run(args),
        Command::Run(args) => run::run(args),
        Command::Review(args) => review::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Graph(args) => graph::run(args),
        Command::Bench(args) => bench::run(args),
        Command::BenchTraffic(args) => bench_traffic::run(args),
        Command::Doctor(args) => doctor::run(args),
        Command::Xdp(args) => xdp::run(args),
        Command::Exercise(args) => exercise::run(args),
    }
    .map(|()| ExitCode::SUCCESS)
    .map_err(|failure| failure.in_command(name))
}

impl Command {
    /// The subcommand as typed: `down`, `bench-traffic`, ...
    fn name(&self) -> &'static str {
        match self {
            Command::Up(_) => "up",
            Command::Down(_) => "down",
            Command::Ls(_) => "ls",
            Command::Show(_) => "show",
            Command::Exec(_) => "exec",
            Command::Shell(_) => "shell",
            Command::Blast(_) => "blast",
            Command::Test(_) => "test",
            Command::Run(_) => "run",
            Command::Review(_) => "review",
            Command::Plan(_) => "plan",
            Command::Graph(_) => "graph",
            Command::Bench(_) => "bench",
            Command::BenchTraffic(_) => "bench-traffic",
            Command::Xdp(_) => "xdp",
            Command::Doctor(_) => "doctor",
            Command::Exercise(_) => "exercise",
        }
    }
}

/// An error on its way out, with the exit status it maps to.
#[derive(Debug)]
pub struct Failure {
    status: u8,
    error: anyhow::Error,
    help: Option<String>,
}

pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_BAD_INPUT: u8 = 2;
pub const EXIT_PRIVILEGES: u8 = 3;
pub const EXIT_INTERRUPTED: u8 = 130;

impl Failure {
    pub fn new(status: u8, error: impl Into<anyhow::Error>) -> Self {
        Self { status, error: error.into(), help: None }
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn bad_input(error: impl Into<anyhow::Error>) -> Self {
        Self::new(EXIT_BAD_INPUT, error)
    }

    /// Missing privileges, said for the command that needs them (the
    /// library's error speaks of building a lab).
    fn in_command(self, command: &str) -> Self {
        match self.error.downcast_ref::<ApplyError>() {
            Some(ApplyError::Privileges(caps)) => Failure {
                error: anyhow::anyhow!("`labctl {command}` needs root (or the capabilities {})", caps.join(" and ")),
                help: Some(format!("run it as root, e.g. `sudo labctl {command} ...`")),
                ..self
            },
            _ => self,
        }
    }

    /// The error and its causes (and help line), as one text.
    pub fn text(&self) -> String {
        let text = chain(&self.error);
        match &self.help {
            Some(help) => format!("{text}\n  help: {help}"),
            None => text,
        }
    }

    pub fn report(self) -> ExitCode {
        let Failure { status, error, help } = self;
        let preflight = match error.downcast_ref::<ApplyError>() {
            Some(ApplyError::Preflight(diags)) => Some(diags),
            _ => None,
        };
        let diagnostics = match error.downcast_ref::<ScriptError>() {
            Some(ScriptError::Invalid(diags)) => Some(diags),
            _ => preflight,
        };
        match diagnostics {
            // Diagnostics already read `file:line: error: ...`.
            Some(diags) => {
                eprintln!("{diags}");
                let n = diags.0.len();
                eprintln!("labctl: {n} error{} found; nothing was created", if n == 1 { "" } else { "s" });
            }
            _ => eprintln!("labctl: {}", chain(&error)),
        }
        if let Some(help) = help {
            eprintln!("  help: {help}");
        }
        ExitCode::from(status)
    }
}

/// The error and its causes in one line.
fn chain(error: &anyhow::Error) -> String {
    labctl::diag::error_chain(error.as_ref())
}

impl From<ScriptError> for Failure {
    fn from(e: ScriptError) -> Self {
        let help = match &e {
            ScriptError::UnknownParam { .. } => {
                Some("drop that --set, or read it in the lab with param(\"key\", default)")
            }
            _ => None,
        };
        let failure = Failure::bad_input(e);
        match help {
            Some(help) => failure.help(help),
            None => failure,
        }
    }
}

/// The exit status an `up` that failed this way ends with, whichever command ran it.
pub fn apply_status(e: &ApplyError) -> u8 {
    match e {
        ApplyError::Privileges(_) => EXIT_PRIVILEGES,
        ApplyError::Interrupted => EXIT_INTERRUPTED,
        e if e.is_user_error() => EXIT_BAD_INPUT,
        _ => EXIT_FAILURE,
    }
}

impl From<ApplyError> for Failure {
    fn from(e: ApplyError) -> Self {
        let status = apply_status(&e);
        let help = match &e {
            ApplyError::Privileges(_) => Some("run it as root, e.g. `sudo labctl ...`".to_string()),
            ApplyError::AlreadyRunning(name) => {
                Some(format!("run `labctl down {name}` first, or give the lab another name with lab {{ name = ... }}"))
            }
            ApplyError::NamespaceTaken(name) => Some(format!("remove it (`ip netns del {name}`) or rename the lab")),
            ApplyError::Interrupted | ApplyError::Step { .. } => {
                Some("everything created so far was removed".to_string())
            }
            ApplyError::Xdp(_) => Some("nothing was created: XDP programs are compiled and verified first".to_string()),
            _ => None,
        };
        let failure = Failure::new(status, e);
        match help {
            Some(help) => failure.help(help),
            None => failure,
        }
    }
}

/// `labctl down part1` and `labctl down labs/part1.lua` both work: a name
/// that is a file (or ends in .lua) is read as a script for its lab name.
pub fn lab_name_from(arg: &str) -> Result<String, Failure> {
    let path = Path::new(arg);
    if arg.ends_with(".lua") || path.is_file() {
        let script = labctl::script::load(path)?;
        Ok(script.lab.name)
    } else {
        Ok(arg.to_string())
    }
}

/// The state of a lab that must be running.
pub fn running_lab(name: &str) -> Result<labctl::apply::state::Recorded, Failure> {
    let state = labctl::apply::state::LabState::open(name)
        .ok_or_else(|| Failure::bad_input(anyhow::anyhow!("no lab named {name:?} is running (see `labctl ls`)")))?;
    state.recorded().map_err(|e| Failure::new(EXIT_FAILURE, e))
}

pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
