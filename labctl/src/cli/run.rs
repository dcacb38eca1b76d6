//! `labctl run FILE [EXPERIMENT]`: run experiments and show what they saw,
//! without comparing; artefacts (snapshots as text, captures as pcapng,
//! results as JSON) go to a run folder.

use std::path::PathBuf;

use anyhow::anyhow;
use labctl::experiment::ExperimentResult;
use labctl::script::Script;

use super::out::{self, say};
use super::session;
use super::{Failure, EXIT_FAILURE};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lab script
    file: PathBuf,
    /// Run only this experiment (exit 2, with the lab's experiments, if it has none of that name)
    experiment: Option<String>,
    /// The run folder [default: runs/<lab>-<UTC time>]
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    set: super::params::SetArgs,
}

pub fn run(args: Args) -> Result<(), Failure> {
    labctl::apply::check_privileges()?;
    // Everything that can refuse the run does so before the run folder exists.
    let prepared = session::prepare(&args.file, args.experiment.as_deref(), &args.set.params())?;
    out::survive_closed_pipe();
    let stem = args.file.file_stem().map_or_else(|| "lab".into(), |s| s.to_string_lossy().into_owned());
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string().replace(':', "");
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(format!("{stem}-{stamp}")));
    std::fs::create_dir_all(&out)
        .map_err(|e| Failure::new(EXIT_FAILURE, anyhow!("cannot create {}: {e}", out.display())))?;

    let mut show = |_: &Script, result: &ExperimentResult| {
        say!("== experiment {} ({:.1?})", result.name, result.duration);
        let dir = out.join(&result.name);
        let _ = std::fs::create_dir_all(&dir);
        for taken in &result.taken {
            say!("-- snapshot {} ({})", taken.name, taken.origin);
            // Tolerances with the values measured this run.
            let shown = taken.measured.as_ref().unwrap_or(&taken.contents);
            say!("{shown}");
            let _ = std::fs::write(dir.join(format!("{}.txt", taken.name)), format!("{shown}\n"));
        }
        for e in &result.failed {
            say!("!! {}: {}", e.origin, e.message);
        }
        if let Some(error) = &result.error {
            say!("!! {error}");
        }
    };
    let outcome = prepared.run(Some(&out), &mut show);
    if let Some(error) = outcome.setup_error {
        let status = if outcome.interrupted { super::EXIT_INTERRUPTED } else { outcome.setup_status };
        return Err(Failure::new(status, anyhow!(error)));
    }
    let json = serde_json::to_string_pretty(&outcome.results).expect("results serialize");
    let _ = std::fs::write(out.join("results.json"), json);
    eprintln!("run folder: {}", out.display());
    if outcome.interrupted {
        return Err(Failure::new(super::EXIT_INTERRUPTED, anyhow!("interrupted; the lab was torn down")));
    }
    let failed = outcome.results.iter().filter(|r| r.error.is_some() || !r.failed.is_empty()).count();
    if failed > 0 {
        // A bad option of an `x:` method is a mistake in the lab file, as in `up`.
        let bad_input = outcome.results.iter().any(|r| r.bad_input);
        let status = if bad_input { super::EXIT_BAD_INPUT } else { EXIT_FAILURE };
        return Err(Failure::new(status, anyhow!("{failed} experiment(s) failed")));
    }
    Ok(())
}
