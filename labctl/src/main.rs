//! The labctl command line: parses arguments, runs one command, and turns its
//! outcome into a documented exit status.

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`labctl plan | head`), like other CLI tools.
    // SAFETY: setting a signal to its default disposition at startup.
    let _ =
        unsafe { nix::sys::signal::signal(nix::sys::signal::Signal::SIGPIPE, nix::sys::signal::SigHandler::SigDfl) };
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(failure) => failure.report(),
    }
}
