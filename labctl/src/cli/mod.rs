//! Commands of the CLI. Each file is one subcommand; this module holds the
//! argument types and the mapping from errors to exit statuses.

mod bench;
mod bench_traffic;
mod blast;
mod doctor;
mod down;
mod exec;
mod graph;
mod ls;
mod overlays;
mod parallel;
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
  2  bad input: an error in the lab script or the command line, or a lab or
     namespace name already in use; nothing was created
  3  missing privileges: run as root (or with CAP_NET_ADMIN and CAP_SYS_ADMIN)
  130 interrupted (Ctrl-C); the lab was torn down
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
    /// Show a running lab: nodes, interfaces, addresses, routes, XDP programs, IPsec tunnels and state
    Show(show::Args),
    /// Run a command inside a node of a running lab (needs root)
    Exec(exec::ExecArgs),
    /// Open an interactive shell inside a node (needs root)
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
    /// Probe what this machine offers labs: IPsec backend (kernel ESP or strongSwan), BTF, tracefs, tools
    Doctor(doctor::Args),
}

pub fn run(cli: Cli) -> Result<ExitCode, Failure> {
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
    }
    .map(|()| ExitCode::SUCCESS)
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

    pub fn report(self) -> ExitCode {
        let Failure { status, error, help } = self;
        match error.downcast_ref::<ScriptError>() {
            // Diagnostics already read `file:line: error: ...`.
            Some(ScriptError::Invalid(diags)) => {
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

/// The error and its causes, skipping a cause its parent already quoted
/// (library errors say "step 3 failed: <cause>" themselves).
fn chain(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
    }
    text
}

impl From<ScriptError> for Failure {
    fn from(e: ScriptError) -> Self {
        Failure::bad_input(e)
    }
}

impl From<ApplyError> for Failure {
    fn from(e: ApplyError) -> Self {
        let status = match &e {
            ApplyError::Privileges(_) => EXIT_PRIVILEGES,
            e if e.is_user_error() => EXIT_BAD_INPUT,
            _ => EXIT_FAILURE,
        };
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
