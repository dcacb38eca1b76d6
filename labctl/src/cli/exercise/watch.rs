//! `labctl exercise watch`: re-grades whenever an edited file is saved and
//! every few seconds (for fixes made live in the lab), redrawing a short
//! status, until every check passes or Ctrl-C.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use labctl::exercise::grading;
use notify::{RecursiveMode, Watcher};

use super::learner::{grade_live, outcome_lines, summary};
use super::read_progress;
use crate::cli::Failure;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The exercise [default: the one started last]
    id: Option<String>,
    /// How often to re-grade without a save
    #[arg(long, default_value = "3s")]
    every: humantime::Duration,
}

pub fn run(root: &Path, args: Args) -> Result<(), Failure> {
    labctl::apply::catch_interrupts();
    let (saved, events) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| e.kind.is_modify() || e.kind.is_create()) {
            let _ = saved.send(());
        }
    })
    .map_err(|e| Failure::new(crate::cli::EXIT_FAILURE, anyhow!("cannot watch files: {e}")))?;
    let work = read_progress()?.active.and_then(|a| a.work);
    if let Some(work) = &work {
        watcher
            .watch(work, RecursiveMode::NonRecursive)
            .map_err(|e| Failure::new(crate::cli::EXIT_FAILURE, anyhow!("cannot watch {}: {e}", work.display())))?;
    }
    let tty = std::io::stdout().is_terminal();
    let mut round = 0u32;
    loop {
        round += 1;
        let status = match grade_live(root, args.id.clone()) {
            Ok((loaded, outcomes, progress)) => {
                let mut lines = outcome_lines(&outcomes, tty);
                lines.push(summary(&loaded.exercise.id, &outcomes, &progress));
                (lines, grading::all_passed(&outcomes))
            }
            Err(failure) if failure.status == crate::cli::EXIT_BAD_INPUT => return Err(failure),
            Err(failure) => (vec![format!("  FAIL the lab could not be built: {}", failure.error)], false),
        };
        draw(&status.0, round, work.as_deref(), tty);
        if status.1 {
            return Ok(());
        }
        wait(&events, args.every.into())?;
    }
}

fn draw(lines: &[String], round: u32, work: Option<&Path>, tty: bool) {
    if tty {
        // Clear the screen and go home, like rustlings' watch.
        print!("\x1b[2J\x1b[H");
    }
    println!("labctl exercise watch (round {round}; Ctrl-C to stop)");
    for line in lines {
        println!("{line}");
    }
    if let Some(work) = work {
        println!("watching {} for saves", work.display());
    }
}

/// Until a save, `every` elapsed, or Ctrl-C.
fn wait(events: &mpsc::Receiver<()>, every: Duration) -> Result<(), Failure> {
    let until = Instant::now() + every;
    while Instant::now() < until {
        if labctl::apply::interrupted() {
            return Err(Failure::new(130, anyhow!("interrupted; the exercise's lab stays up")));
        }
        if events.recv_timeout(Duration::from_millis(100)).is_ok() {
            // An editor saves in several writes: let it finish, then take them all as one.
            std::thread::sleep(Duration::from_millis(150));
            while events.try_recv().is_ok() {}
            return Ok(());
        }
    }
    Ok(())
}
