//! The lab under construction while the script runs, and the problems found
//! so far. Kept as the Lua state's app data so every vocabulary function can
//! reach it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use mlua::Lua;

use crate::diag::{Diagnostic, Origin};
use crate::model::{Lab, Node, NodeKind};

pub(super) struct Builder {
    pub lab: Lab,
    /// Where `lab { ... }` was called, once it has been.
    pub lab_call: Option<Origin>,
    pub diagnostics: Vec<Diagnostic>,
    /// User files evaluated so far (the lab file first, then required
    /// modules), in load order: the order diagnostics are sorted in.
    pub files: Vec<PathBuf>,
    /// `--set key=value` from the command line, read by `param()`.
    pub params_given: super::Params,
}

impl Builder {
    pub fn new(path: &Path, params_given: super::Params) -> Self {
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        Builder {
            lab: Lab {
                name: stem,
                description: None,
                file: path.to_path_buf(),
                nodes: Vec::new(),
                links: Vec::new(),
                experiments: Vec::new(),
                ipsec: Vec::new(),
                xdp: Vec::new(),
                params: Vec::new(),
                nics: Vec::new(),
                sriov: Vec::new(),
                exclusive: false,
                impairments: Vec::new(),
                static_neighbours: false,
            },
            lab_call: None,
            diagnostics: Vec::new(),
            files: vec![path.to_path_buf()],
            params_given,
        }
    }

    pub fn report(&mut self, origin: Origin, message: impl Into<String>, help: impl Into<String>) {
        self.diagnostics.push(Diagnostic::new(origin, message).help(help));
    }

    /// Adds a node and returns its index in `lab.nodes`.
    pub fn add_node(&mut self, name: String, kind: NodeKind, forwarding: bool, origin: Origin) -> usize {
        self.lab.nodes.push(Node {
            name,
            kind,
            forwarding,
            routes: Vec::new(),
            sysctls: Vec::new(),
            tunings: Vec::new(),
            cpu_percent: None,
            neighbours: Vec::new(),
            routing: Default::default(),
            devices: Default::default(),
            origin,
        });
        self.lab.nodes.len() - 1
    }

    /// The next `ethN` free on `node`: N starts at the number of link ends
    /// the node already has and skips names already taken.
    pub fn next_ifname(&self, node: &str, also_taken: Option<&str>) -> String {
        let taken: HashSet<&str> = self
            .lab
            .endpoints_of(node)
            .map(|e| e.ifname.as_str())
            .chain(self.lab.nics_of(node).map(|n| n.ifname.as_str()))
            .chain(also_taken)
            .collect();
        let first = self.lab.endpoints_of(node).count();
        (first..).map(|n| format!("eth{n}")).find(|name| !taken.contains(name.as_str())).expect("unbounded range")
    }

    /// Sorts diagnostics into file order: by file in load order, then line.
    pub fn sorted_diagnostics(mut self) -> Vec<Diagnostic> {
        let files = self.files;
        self.diagnostics.sort_by_key(|d| {
            let rank = files.iter().position(|f| *f == d.origin.file).unwrap_or(files.len());
            (rank, d.origin.file.clone(), d.origin.line)
        });
        self.diagnostics
    }
}

/// Runs `f` on the builder. Never call Lua from inside `f`. Fails once the
/// file has been read: experiments cannot declare more of the lab.
pub(super) fn with<R>(lua: &Lua, f: impl FnOnce(&mut Builder) -> R) -> mlua::Result<R> {
    if let Some(mut builder) = lua.app_data_mut::<Builder>() {
        return Ok(f(&mut builder));
    }
    Err(super::errors::error_at(
        lua,
        "the lab can only be declared while its file is read".into(),
        "declare the lab (lab, node, bridge, link, xdp, ipsec, experiment) at the top level of the lab file or of a module it requires there; inside an experiment, require only modules that define functions and values",
    ))
}

/// [`caller_origin`](super::origin::caller_origin) while the lab file is read, where there is always one.
pub(super) fn origin(lua: &Lua) -> mlua::Result<Origin> {
    match super::origin::caller_origin(lua) {
        Some(origin) => Ok(origin),
        None => with(lua, |b| Origin::new(&b.lab.file, 0)),
    }
}
