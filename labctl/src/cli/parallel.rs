//! `labctl test -j N`: several labs at once, each run by a child labctl in
//! its own sandbox (labctl::sandbox), so labs with the same lab and node
//! names never meet. Each child's output is kept and printed whole, in the
//! order of the lab list; its records come back as JSON and the parent
//! reports them exactly as a sequential run would.
//!
//! Labs that must run alone (`lab { exclusive = true }`) run after the
//! others, one at a time, each holding an exclusive turn on the machine
//! (sys/machine_turn.rs) for its whole run, which holds them off other
//! `labctl test` runs too. Every other lab takes turns only while it sends,
//! measures or changes something machine-wide (`x:host_sysctl`'s window is
//! an exclusive turn), so those labs overlap everywhere else.

use std::collections::{BTreeMap, VecDeque};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{Failure, EXIT_FAILURE};

/// What a child labctl left of one lab: its output, its records file's
/// text (None if it wrote none) and how long it took.
pub struct ChildRun {
    pub file: PathBuf,
    pub output: String,
    pub records: Option<String>,
    pub status: std::process::ExitStatus,
    pub seconds: f64,
}

/// Whether `file`'s lab must run while no other lab runs. A file that does
/// not load runs with the others (and fails there, with its errors).
pub fn must_run_alone(file: &Path) -> bool {
    labctl::script::load(file).is_ok_and(|script| script.lab.exclusive)
}

/// Runs `files` with up to `jobs` at once, each as `labctl test <file> -j 1
/// --records <tmp> <child_args>`, started in `start_order` (indices of
/// `files`, longest first when durations are known), the labs that must run alone last;
/// returns their runs in the order of `files`, printing each lab's output
/// as soon as the labs before it are printed.
pub fn run_all(
    files: &[PathBuf],
    start_order: &[usize],
    child_args: &[std::ffi::OsString],
    jobs: usize,
) -> Result<Vec<ChildRun>, Failure> {
    labctl::apply::catch_interrupts();
    let exe = std::env::current_exe().map_err(|e| Failure::new(EXIT_FAILURE, anyhow!("cannot find labctl: {e}")))?;
    // Removed when dropped, also if a worker panics.
    let folder = tempfile::Builder::new()
        .prefix("labctl-test-")
        .tempdir()
        .map_err(|e| Failure::new(EXIT_FAILURE, anyhow!("cannot create a temporary folder: {e}")))?;
    let scratch = folder.path();
    let (alone, together): (Vec<usize>, Vec<usize>) =
        start_order.iter().copied().partition(|&i| must_run_alone(&files[i]));

    let (done, finished) = mpsc::channel::<(usize, ChildRun)>();
    let runs = std::thread::scope(|scope| {
        scope.spawn(|| {
            let child = |i: usize| run_child(&exe, scratch, &files[i], child_args, i);
            let queue = Mutex::new(VecDeque::from(together));
            std::thread::scope(|workers| {
                for _ in 0..jobs {
                    workers.spawn(|| {
                        while let Some(i) = next(&queue) {
                            let _ = done.send((i, child(i)));
                        }
                    });
                }
            });
            for i in alone {
                if labctl::apply::interrupted() {
                    break;
                }
                let _ = done.send((i, child(i)));
            }
            drop(done);
        });
        print_in_order(finished)
    });
    Ok(runs)
}

fn next(queue: &Mutex<VecDeque<usize>>) -> Option<usize> {
    if labctl::apply::interrupted() {
        return None;
    }
    queue.lock().expect("queue lock").pop_front()
}

/// Prints each lab's output once every lab before it is printed; the runs
/// come back in list order (labs never started after Ctrl-C are left out).
fn print_in_order(finished: mpsc::Receiver<(usize, ChildRun)>) -> Vec<ChildRun> {
    let mut waiting = BTreeMap::new();
    let mut runs = Vec::new();
    let mut next = 0;
    for (i, run) in finished {
        waiting.insert(i, run);
        while let Some(run) = waiting.remove(&next) {
            super::out::say!("{}", run.output.trim_end_matches('\n'));
            runs.push(run);
            next += 1;
        }
    }
    // After an interrupt some labs never ran: print what did, in order.
    for (_, run) in std::mem::take(&mut waiting) {
        super::out::say!("{}", run.output.trim_end_matches('\n'));
        runs.push(run);
    }
    runs
}

/// One lab in a child labctl in a sandbox.
fn run_child(exe: &Path, scratch: &Path, file: &Path, child_args: &[std::ffi::OsString], index: usize) -> ChildRun {
    let records = scratch.join(format!("{index}.json"));
    let mut command = Command::new(exe);
    command.arg("test").arg(file).args(["-j", "1"]).arg("--records").arg(&records).args(child_args);
    let started = Instant::now();
    let done = labctl::sys::sandbox::isolate(&mut command).and_then(|()| capture(command));
    let (output, status) = match done {
        Ok(done) => done,
        Err(e) => (format!("labctl: cannot start labctl for {} in a sandbox: {e}\n", file.display()), failed_status()),
    };
    ChildRun {
        file: file.to_path_buf(),
        output,
        records: std::fs::read_to_string(&records).ok(),
        status,
        seconds: started.elapsed().as_secs_f64(),
    }
}

fn failed_status() -> std::process::ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    std::process::ExitStatus::from_raw(1 << 8)
}

/// Runs `command` to its end with stdout and stderr into one pipe, passing
/// an interrupt on to it (a Ctrl-C at a terminal reaches it by itself).
fn capture(mut command: Command) -> std::io::Result<(String, std::process::ExitStatus)> {
    let (mut reader, writer) = std::io::pipe()?;
    command.stdin(Stdio::null()).stdout(writer.try_clone()?).stderr(writer);
    let mut child = command.spawn()?;
    // Close the parent's copies of the write end, or the reader never ends.
    drop(command);
    let reading = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = reader.read_to_end(&mut text);
        String::from_utf8_lossy(&text).into_owned()
    });
    let mut told = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if labctl::apply::interrupted() && !told {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGINT);
            told = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Ok((reading.join().unwrap_or_default(), status))
}
