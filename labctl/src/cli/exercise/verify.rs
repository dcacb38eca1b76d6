//! `labctl exercise verify [PATHS]`: every exercise proven in its own
//! sandbox: brought up unsolved, at least one check fails; with the
//! reference solution, every check passes; then nothing is left.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::anyhow;
use labctl::exercise::catalog;
use labctl::exercise::proof::{self, Proof};

use super::isolated;
use crate::cli::{Failure, EXIT_FAILURE};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Exercise folders, or folders of them [default: the exercises folder]
    paths: Vec<PathBuf>,
    /// Print the results as JSON
    #[arg(long)]
    json: bool,
    #[arg(long = "in-sandbox", hide = true)]
    in_sandbox: bool,
}

pub fn run(root: &Path, args: Args) -> Result<(), Failure> {
    labctl::apply::check_privileges()?;
    let paths = if args.paths.is_empty() { vec![root.to_path_buf()] } else { args.paths.clone() };
    if args.in_sandbox {
        let proof = proof::verify(&paths[0]);
        println!("{}", serde_json::to_string(&proof).expect("proof serializes"));
        return Ok(());
    }
    let mut folders = Vec::new();
    for path in &paths {
        let found = catalog::folders(path)
            .map_err(|e| Failure::bad_input(anyhow!("cannot read exercises in {}: {e}", path.display())))?;
        if found.is_empty() {
            return Err(Failure::bad_input(anyhow!("no exercise under {}", path.display()))
                .help("an exercise is a folder holding exercise.lua"));
        }
        folders.extend(found);
    }
    let mut proofs = Vec::new();
    for dir in &folders {
        let started = Instant::now();
        let proof: Proof = isolated::run(&[OsString::from("verify"), dir.clone().into_os_string()])?;
        if !args.json {
            print_proof(&proof, started.elapsed().as_secs_f64());
        }
        proofs.push(proof);
    }
    let failed = proofs.iter().filter(|p| !p.ok()).count();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&proofs).expect("proofs serialize"));
    } else {
        println!("verify: {} proven, {failed} failed", proofs.len() - failed);
    }
    if failed > 0 {
        return Err(Failure::new(EXIT_FAILURE, anyhow!("{failed} exercises failed verification")));
    }
    Ok(())
}

fn print_proof(proof: &Proof, seconds: f64) {
    let mark = if proof.ok() { "ok" } else { "FAILED" };
    println!("  {:<26} {mark} ({seconds:.1}s)", proof.id);
    if let Some(error) = &proof.error {
        println!("    {error}");
    }
    if proof.error.is_none() && proof.failing_unsolved.is_empty() {
        println!("    unsolved, every check passes: the exercise proves nothing");
    } else if proof.error.is_none() {
        println!(
            "    unsolved: {}/{} checks fail ({})",
            proof.failing_unsolved.len(),
            proof.checks,
            proof.failing_unsolved.join(", ")
        );
    }
    for (name, evidence) in &proof.failing_solved {
        println!("    solved, still fails: {name}: {}", evidence.join("; "));
    }
    for left in &proof.leftovers {
        println!("    left behind: {left}");
    }
}
