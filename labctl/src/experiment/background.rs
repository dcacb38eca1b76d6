//! A process an experiment runs in the background in a node (`x.h2:spawn`):
//! started like `run`'s commands (the node's namespace, its own process
//! group, the node's cgroup if it has a CPU limit), its output gathered
//! while it runs, journaled in the lab's state folder (apply/spawned.rs)
//! so `down` stops it if labctl dies, and stopped (SIGTERM, then SIGKILL)
//! and reaped when asked or when the experiment ends.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::apply::spawned;

/// What a background process wrote so far, and how it ended.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub stdout: String,
    pub stderr: String,
    /// Exit status, 128 + signal if killed; None while it runs.
    pub status: Option<i32>,
}

pub struct Background {
    pub pid: u32,
    lab: String,
    child: Mutex<Child>,
    status: Mutex<Option<i32>>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Mutex<Vec<JoinHandle<()>>>,
}

/// Where a command goes when it starts: the node's namespace, a CPU to
/// pin it to, the `cgroup.procs` of the node's cgroup.
pub struct Placement<'a> {
    pub netns: &'a File,
    pub cpu: Option<usize>,
    pub cgroup_procs: Option<&'a File>,
}

/// Prepares `command` to start inside `place`. Everything the child needs
/// is built here, before fork: between fork and exec only setns(2),
/// write(2) and sched_setaffinity(2) run, no allocation, no locks.
pub fn place(command: &mut Command, place: &Placement) {
    let netns = place.netns.as_raw_fd();
    let procs = place.cgroup_procs.map(|f| f.as_raw_fd());
    // SAFETY: cpu_set_t is plain data; CPU_SET only writes into it.
    let cpus = place.cpu.map(|cpu| unsafe {
        let mut set: nix::libc::cpu_set_t = std::mem::zeroed();
        nix::libc::CPU_SET(cpu, &mut set);
        set
    });
    // Its own process group, so stopping it stops what it started too.
    command.process_group(0);
    // SAFETY: see above; the fds outlive the spawn call.
    unsafe {
        command.pre_exec(move || {
            if let Some(fd) = procs {
                // "0" moves the writing process (the child) into the cgroup.
                if nix::libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if nix::libc::setns(netns, nix::libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(set) = &cpus {
                if nix::libc::sched_setaffinity(0, std::mem::size_of::<nix::libc::cpu_set_t>(), set) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Reads `pipe` into `into` until the process closes it.
fn gather(mut pipe: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = pipe.read(&mut buf) {
            into.lock().expect("output lock").extend_from_slice(&buf[..n]);
        }
    })
}

fn text(bytes: &Mutex<Vec<u8>>) -> String {
    String::from_utf8_lossy(&bytes.lock().expect("output lock")).into_owned()
}

fn code(status: std::process::ExitStatus) -> i32 {
    status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

impl Background {
    /// Starts `argv` in `placement` for an experiment of `lab`, and journals it.
    pub fn start(lab: &str, argv: &[String], placement: &Placement) -> Result<Background, String> {
        let mut command = Command::new(&argv[0]);
        command.args(&argv[1..]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        place(&mut command, placement);
        let mut child = command.spawn().map_err(|e| format!("cannot start {:?}: {e}", argv[0]))?;
        let pid = child.id();
        if let Err(e) = spawned::record(lab, pid) {
            // Already gone (a bad argument, say) is fine: nothing to stop later.
            if !matches!(e, spawned::SpawnedError::Gone(_)) {
                spawned::stop_group(pid, Duration::ZERO, || true);
                let _ = child.wait();
                return Err(e.to_string());
            }
        }
        let (stdout, stderr) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
        let readers = vec![
            gather(child.stdout.take().expect("piped"), stdout.clone()),
            gather(child.stderr.take().expect("piped"), stderr.clone()),
        ];
        Ok(Background {
            pid,
            lab: lab.to_string(),
            child: Mutex::new(child),
            status: Mutex::new(None),
            stdout,
            stderr,
            readers: Mutex::new(readers),
        })
    }

    /// Reaps the process if it ended; its status then.
    fn poll(&self) -> Option<i32> {
        let mut status = self.status.lock().expect("status lock");
        if status.is_none() {
            if let Ok(Some(s)) = self.child.lock().expect("child lock").try_wait() {
                *status = Some(code(s));
                spawned::forget(&self.lab, self.pid);
            }
        }
        *status
    }

    pub fn running(&self) -> bool {
        self.poll().is_none()
    }

    /// Its output so far, and its status if it ended.
    pub fn outcome(&self) -> Outcome {
        let status = self.poll();
        if status.is_some() {
            // Ended: let the readers take the last of the pipes first.
            for reader in self.readers.lock().expect("readers lock").drain(..) {
                let _ = reader.join();
            }
        }
        Outcome { stdout: text(&self.stdout), stderr: text(&self.stderr), status }
    }

    /// Waits up to `timeout` (or until `stop_waiting` says so) for it to end.
    pub fn wait(&self, timeout: Duration, stop_waiting: impl Fn() -> bool) -> Outcome {
        let deadline = Instant::now() + timeout;
        while self.running() && Instant::now() < deadline && !stop_waiting() {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.outcome()
    }

    /// SIGTERM to its group, SIGKILL after the grace period, reaped.
    pub fn stop(&self) -> Outcome {
        if self.running() {
            spawned::stop_group(self.pid, spawned::GRACE, || self.running());
            let status = self.child.lock().expect("child lock").wait().map(code).ok();
            *self.status.lock().expect("status lock") = status;
            spawned::forget(&self.lab, self.pid);
        }
        self.outcome()
    }
}
