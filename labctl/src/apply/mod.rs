//! Apply stage: the only code that talks to the kernel.
//!
//! `up` journals each plan step before running it and rolls everything back
//! if any step fails (or on Ctrl-C); `down` removes whatever the journal
//! names, so it also cleans up after a `kill -9` at any moment of `up`.

mod capacity;
pub mod cgroup;
mod executor;
mod faults;
pub mod floor;
pub mod host_sysctl;
pub mod impair;
mod interrupt;
pub mod ipsec;
pub mod l2;
mod netlink;
mod nexthop;
pub mod nic;
pub mod privileges;
mod routing;
mod schedule;
mod settle;
pub mod spawned;
pub mod state;
mod sysctl;
mod teardown;
mod tune;
pub mod xdp;

use std::path::Path;

use crate::sys::netns::{self, NetnsError};
pub use executor::{PhaseTiming, Progress, StepError};
pub use faults::Faults;
pub use interrupt::{catch as catch_interrupts, interrupted};
use state::{LabState, Recorded, StateError};
pub use teardown::Removed;

use crate::model::Lab;
use crate::plan::{Plan, Step};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("building a lab needs root (or the capabilities {})", .0.join(" and "))]
    Privileges(Vec<&'static str>),
    #[error("lab {0:?} is already running")]
    AlreadyRunning(String),
    #[error("network namespace {0:?} already exists (not created by this lab)")]
    NamespaceTaken(String),
    #[error("step {number} ({step}) failed: {source}")]
    Step { number: usize, step: String, source: Box<StepError> },
    #[error("interrupted")]
    Interrupted,
    #[error("the lab was built, but {0}")]
    Links(settle::SettleError),
    #[error(transparent)]
    State(StateError),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("cannot start the netlink runtime: {0}")]
    Runtime(std::io::Error),
    #[error("kernel floor measurement failed: {0}")]
    Floor(String),
    /// An XDP program could not be compiled or verified (apply/xdp.rs prepare): nothing was created.
    #[error(transparent)]
    Xdp(xdp::XdpError),
    #[error(transparent)]
    HostSysctl(#[from] host_sysctl::HostSysctlError),
    /// Host devices the lab may not take (apply/nic/preflight.rs): nothing was created.
    #[error("{0}")]
    Preflight(crate::diag::Diagnostics),
    /// A loss program or an impairment change (apply/impair/).
    #[error(transparent)]
    Impair(#[from] impair::ImpairError),
    /// Reading or restoring host devices (apply/nic/).
    #[error(transparent)]
    Nic(#[from] nic::NicError),
    /// CPU limits the machine cannot give (apply/cgroup.rs), or a cgroup that could not be made.
    #[error(transparent)]
    Cgroup(#[from] cgroup::CgroupError),
}

impl From<StateError> for ApplyError {
    fn from(e: StateError) -> Self {
        match e {
            StateError::AlreadyRunning(name) => ApplyError::AlreadyRunning(name),
            other => ApplyError::State(other),
        }
    }
}

impl ApplyError {
    /// Did it fail before anything was created, because of what the user asked?
    pub fn is_user_error(&self) -> bool {
        matches!(self, ApplyError::AlreadyRunning(_) | ApplyError::NamespaceTaken(_) | ApplyError::Preflight(_))
            || matches!(self, ApplyError::Xdp(e) if e.is_user_error())
            || matches!(
                self,
                ApplyError::Cgroup(cgroup::CgroupError::NoCgroup2 { .. } | cgroup::CgroupError::NoCpuController { .. })
            )
    }
}

pub fn check_privileges() -> Result<(), ApplyError> {
    let missing = privileges::missing();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApplyError::Privileges(missing))
    }
}

/// Builds a lab from its plan. On any failure everything created so far is
/// removed before the error is returned.
/// Returns how long each phase took.
pub fn up(lab: &Lab, script: &Path, plan: &Plan, progress: Progress<'_>) -> Result<Vec<PhaseTiming>, ApplyError> {
    check_privileges()?;
    if LabState::open(&lab.name).is_some() {
        return Err(ApplyError::AlreadyRunning(lab.name.clone()));
    }
    if let Some(taken) = plan.steps.iter().find_map(|s| match s {
        Step::CreateNamespace { netns, .. } if netns::exists(netns) => Some(netns),
        _ => None,
    }) {
        return Err(ApplyError::NamespaceTaken(taken.clone()));
    }
    // Compile and verify XDP programs before anything exists.
    xdp::prepare(plan).map_err(ApplyError::Xdp)?;
    // Host devices exist and may be taken, before anything changes.
    let mut problems = nic::preflight::check(lab)?;
    // Impairments this kernel cannot do (netem), and the loss program compiled.
    problems.extend(impair::probe::check(lab));
    // VRFs and VLANs this kernel has (apply/l2.rs).
    problems.extend(l2::preflight(lab));
    if !problems.is_empty() {
        return Err(ApplyError::Preflight(crate::diag::Diagnostics(problems)));
    }
    // CPU limits need cgroup v2's cpu controller: refused here, before anything exists.
    cgroup::preflight(lab)?;
    // Namespaces and mounts this machine has room for.
    let over = capacity::check(lab, &capacity::Machine::read());
    if !over.is_empty() {
        return Err(ApplyError::Preflight(crate::diag::Diagnostics(over)));
    }
    let recorded = Recorded { lab: lab.clone(), script: script.to_path_buf(), pid: std::process::id() };
    let state = LabState::create(&recorded)?;
    interrupt::catch();
    let built = cgroup::create(lab).map_err(ApplyError::from).and_then(|()| build(plan, &state, progress));
    match built {
        Ok(timings) => {
            state.mark_ready()?;
            Ok(timings)
        }
        Err(e) => {
            // Roll back; the build error is the one worth reporting.
            if let Err(cleanup) = remove(state) {
                eprintln!("labctl: rollback incomplete: {cleanup}; run `labctl down {}`", lab.name);
            }
            Err(e)
        }
    }
}

fn build(plan: &Plan, state: &LabState, progress: Progress<'_>) -> Result<Vec<PhaseTiming>, ApplyError> {
    netns::prepare_run_dir()?;
    raise_open_files_limit(plan);
    executor::execute(plan, state, Faults::from_env(), progress)
}

/// Each node holds a namespace fd and a netlink socket open while the lab is built.
fn raise_open_files_limit(plan: &Plan) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let want = 64 + 2 * plan.steps.len() as u64;
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        // Past the hard limit only with CAP_SYS_RESOURCE; else up to it
        // (capacity.rs refused a lab that cannot fit).
        if soft < want && setrlimit(Resource::RLIMIT_NOFILE, want.max(hard), want.max(hard)).is_err() {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

/// What `down` did.
#[derive(Debug)]
pub enum Down {
    NotRunning,
    Removed(Removed),
}

/// Removes a lab, running, half built or left by a killed `labctl up`.
pub fn down(name: &str) -> Result<Down, ApplyError> {
    check_privileges()?;
    match LabState::open(name) {
        None => Ok(Down::NotRunning),
        Some(state) => Ok(Down::Removed(remove(state)?)),
    }
}

fn remove(state: LabState) -> Result<Removed, ApplyError> {
    let journal = state.journaled()?;
    // Machine-wide values an experiment changed and labctl died before restoring.
    host_sysctl::restore_journaled(state.dir())?;
    // Host devices go home before their namespaces go (a veth stand-in
    // would die with its namespace; a NIC would land in the initial one).
    let namespaces: Vec<&str> = journal
        .iter()
        .filter_map(|s| match s {
            Step::CreateNamespace { netns, .. } => Some(netns.as_str()),
            _ => None,
        })
        .collect();
    let restored = nic::restore(state.dir(), state.name(), &namespaces);
    // An experiment's background processes (x.h1:spawn), by pid and start time.
    let spawned = spawned::stop_journaled(state.dir());
    let mut removed = teardown::remove_journaled(&journal)?;
    removed.processes += spawned;
    cgroup::remove_journaled(state.dir());
    restored?;
    state.remove()?;
    Ok(removed)
}
