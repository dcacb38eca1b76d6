//! `x`, the object an experiment function receives, and `x.h1`, a node of
//! the running lab. This file is the runtime's core and its public surface:
//! the lab, the nodes' namespaces, the results taken so far and the time
//! limit. Each domain of the API registers its own methods (api.rs lists
//! them) and uses only this surface:
//!
//! | file | methods |
//! |---|---|
//! | results.rs | `x:snapshot`, `x:expect`, `x:expect_eq`, `x.range`, `x.positive` |
//! | counters.rs | `x:counters`, `x:delta`, `x:neighbours`, `x:routes`, `x:rules`, `x:fdb` |
//! | traces.rs | `x:capture`, `x:drops`, `x:path` |
//! | host_sysctl.rs | `x:host_sysctl` |
//! | ipsec.rs | `x:ipsec`, `x:ipsec_stop`, `x:ipsec_start` |
//! | xdp.rs | `x:map`, `x:map_set`, `x:map_delete`, `x:xdp*`, `x:ifindex`, `x:mac` |
//! | chart.rs | `x:chart` |
//! | impair.rs | `x:impair` |
//! | traffic.rs | `x.h1:ping`, `udp`, `tcp`, `blast`, `run` |
//! | spawn.rs | `x.h1:spawn` and its handle (`output`, `wait`, `stop`) |
//! | send.rs | `x.h1:send` (crafted packets) |
//!
//! Every result records the script line that produced it, so failures
//! point at the lab file.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use mlua::Lua;

use super::background::Background;
use super::limit::Limit;
use super::{Expectation, Taken};
use crate::diag::Origin;
use crate::model::Lab;

/// What the runtime shares between `x` and its node handles.
struct Shared {
    lab: Lab,
    netns: BTreeMap<String, File>,
    /// Where captures and other artefacts of this experiment go, if anywhere.
    artifacts: Option<PathBuf>,
    taken: Vec<Taken>,
    failed: Vec<Expectation>,
    /// Background processes (`x.h1:spawn`), stopped when the experiment ends.
    spawned: Vec<Arc<Background>>,
    /// What to undo when the experiment ends, pass or fail, newest first ([`Runtime::at_end`]).
    at_end: Vec<Undo>,
}

/// A change to take back at the end of the experiment.
pub type Undo = Box<dyn FnOnce(&Runtime) -> mlua::Result<()> + Send>;

#[derive(Clone)]
pub struct Runtime {
    shared: Arc<Mutex<Shared>>,
    limit: Arc<Limit>,
}

/// `x.h1`: a node of the running lab.
#[derive(Clone)]
pub struct NodeRef {
    pub runtime: Runtime,
    pub name: String,
}

/// The innermost line of a user's script on the Lua stack.
pub fn caller(lua: &Lua) -> Origin {
    crate::script::caller_origin(lua).unwrap_or_else(|| Origin::new("?", 0))
}

/// A Lua error with `message`, located by the script stage.
pub fn fail(message: impl Into<String>) -> mlua::Error {
    mlua::Error::runtime(message.into())
}

/// A library error as a Lua error, located like [`fail`].
pub fn lua_error(error: impl std::fmt::Display) -> mlua::Error {
    fail(error.to_string())
}

impl Runtime {
    pub fn new(lab: Lab, netns: BTreeMap<String, File>, artifacts: Option<PathBuf>, limit: Arc<Limit>) -> Runtime {
        let shared = Shared { lab, netns, artifacts, taken: vec![], failed: vec![], spawned: vec![], at_end: vec![] };
        Runtime { shared: Arc::new(Mutex::new(shared)), limit }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().expect("runtime lock")
    }

    /// Reads the lab's model; `f` must not call back into Lua.
    pub fn with_lab<T>(&self, f: impl FnOnce(&Lab) -> T) -> T {
        f(&self.lock().lab)
    }

    pub fn has_node(&self, node: &str) -> bool {
        self.lock().netns.contains_key(node)
    }

    /// The namespace of `node`.
    pub fn netns(&self, node: &str) -> mlua::Result<File> {
        let shared = self.lock();
        let file = shared.netns.get(node).ok_or_else(|| {
            let nodes: Vec<&String> = shared.netns.keys().collect();
            fail(format!("the lab has no node {node:?} (its nodes: {nodes:?})"))
        })?;
        file.try_clone().map_err(mlua::Error::external)
    }

    /// Copies of every node's namespace handle, so no lock is held while
    /// Lua code (which may call back into `x`) runs.
    pub fn all_netns(&self) -> mlua::Result<BTreeMap<String, File>> {
        let shared = self.lock();
        shared.netns.iter().map(|(k, f)| Ok((k.clone(), f.try_clone().map_err(mlua::Error::external)?))).collect()
    }

    /// `cgroup.procs` of the node's cgroup, if it has a CPU limit
    /// (apply/cgroup.rs): commands started in the node enter it.
    pub fn cgroup_procs(&self, node: &str) -> mlua::Result<Option<File>> {
        let dir = self.with_lab(|lab| crate::apply::cgroup::of_node(lab, node)).map_err(lua_error)?;
        dir.map(|dir| crate::apply::cgroup::open_procs(&dir).map_err(lua_error)).transpose()
    }

    /// The node that owns `address` in the lab model.
    pub fn owner_of(&self, address: IpAddr) -> mlua::Result<String> {
        self.with_lab(|lab| {
            lab.links
                .iter()
                .flat_map(|l| l.ends.iter())
                .find(|e| e.addresses.iter().any(|a| a.addr() == address))
                .map(|e| e.node.clone())
        })
        .ok_or_else(|| fail(format!("{address} is not an address of any node of the lab")))
    }

    /// Where this experiment's artefacts go (`labctl run`), if anywhere.
    pub fn artifacts(&self) -> Option<PathBuf> {
        self.lock().artifacts.clone()
    }

    pub fn has_taken(&self, name: &str) -> bool {
        self.lock().taken.iter().any(|t| t.name == name)
    }

    /// Records a snapshot; each name once per experiment.
    pub fn take(&self, taken: Taken) -> mlua::Result<()> {
        let mut shared = self.lock();
        if shared.taken.iter().any(|t| t.name == taken.name) {
            return Err(fail(format!("x:snapshot({:?}) is taken twice in this experiment", taken.name)));
        }
        shared.taken.push(taken);
        Ok(())
    }

    /// Records an expectation that did not hold.
    pub fn record_failure(&self, failed: Expectation) {
        self.lock().failed.push(failed);
    }

    /// Ctrl-C and the experiment's time limit.
    pub fn limit(&self) -> &Limit {
        &self.limit
    }

    /// Keeps a background process to stop when the experiment ends.
    pub fn adopt(&self, process: Arc<Background>) {
        self.lock().spawned.push(process);
    }

    /// Stops and reaps every background process still running (the
    /// experiment ended, failed or ran out of time).
    pub fn stop_spawned(&self) {
        let spawned = std::mem::take(&mut self.lock().spawned);
        for process in spawned {
            process.stop();
        }
    }

    /// Runs `undo` when the experiment ends, pass or fail (after later ones).
    pub fn at_end(&self, undo: Undo) {
        self.lock().at_end.push(undo);
    }

    /// Runs what [`Runtime::at_end`] collected, newest first; the first error.
    pub fn finish(&self) -> mlua::Result<()> {
        let undo = std::mem::take(&mut self.lock().at_end);
        let mut first = Ok(());
        for undo in undo.into_iter().rev() {
            if let Err(e) = undo(self) {
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }

    /// What the experiment took and which expectations failed.
    pub fn results(&self) -> (Vec<Taken>, Vec<Expectation>) {
        let shared = self.lock();
        (shared.taken.clone(), shared.failed.clone())
    }
}
