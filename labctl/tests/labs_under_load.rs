//! The labs' claims about cost hold on a busy machine (issue 12, point 7):
//! part4's drop-cost and part3's packet-size pass against their committed
//! snapshots while a neighbour's job fights them for CPU 0 (the CPU their
//! senders are pinned to), in bursts of random length, so that rounds meet
//! different loads. One binary of its own, like labs_all, so no other test
//! of this crate measures meanwhile.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

/// A CPU hog on CPU 0, on and off in bursts of 0.2-1.5 s, until dropped.
struct Neighbour {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Neighbour {
    fn start() -> Neighbour {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut cpus = nix::sched::CpuSet::new();
            cpus.set(0).unwrap();
            nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &cpus).unwrap();
            let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
            let mut burst = || {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                Duration::from_millis(200 + (seed >> 33) % 1300)
            };
            while !flag.load(Ordering::Relaxed) {
                let until = Instant::now() + burst();
                while Instant::now() < until && !flag.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
                std::thread::sleep(burst());
            }
        });
        Neighbour { stop, thread: Some(thread) }
    }
}

impl Drop for Neighbour {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[track_caller]
fn passes_under_load(lab: &str, experiment: &str) {
    let sb = Sandbox::new();
    let before = sb.host_state();
    let neighbour = Neighbour::start();
    let mut command = sb.labctl_cmd();
    command.arg("test").arg(lab_path(lab)).args(["-e", experiment]).env_remove("GITHUB_ACTIONS");
    let out = output(&mut command);
    drop(neighbour);
    let stdout = assert_code(&out, 0, &format!("labctl test {lab} -e {experiment} with a CPU hog on CPU 0"));
    assert!(stdout.contains("1 passed, 0 failed"), "{stdout}");
    sb.assert_clean(&before, "after the lab under load");
}

/// One test, so the two labs never measure at the same time.
#[test]
fn cost_claims_hold_while_a_neighbour_loads_cpu_0() {
    passes_under_load("part4.lua", "drop-cost");
    passes_under_load("part3.lua", "packet-size");
}
