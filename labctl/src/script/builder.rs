//! The lab under construction while the script runs, and the problems found
//! so far. Kept as the Lua state's app data so every vocabulary function can
//! reach it.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use mlua::Lua;

use crate::diag::{Diagnostic, Origin};
use crate::model::{Lab, Link, Node, NodeKind};

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
    /// Link ends per node, kept up with `lab.links` by [`Builder::next_ifname`]
    /// so naming a link end does not walk every link (10,000-node labs).
    ends: EndIndex,
}

/// Per node: how many link ends it has and their interface names.
#[derive(Default)]
struct EndIndex {
    /// `lab.links[..indexed]` are counted.
    indexed: usize,
    nodes: HashMap<String, (usize, HashSet<String>)>,
}

impl EndIndex {
    fn catch_up(&mut self, links: &[Link]) {
        for link in &links[self.indexed.min(links.len())..] {
            for end in &link.ends {
                let (count, names) = self.nodes.entry(end.node.clone()).or_default();
                *count += 1;
                names.insert(end.ifname.clone());
            }
        }
        self.indexed = links.len();
    }
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
            ends: EndIndex::default(),
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
    pub fn next_ifname(&mut self, node: &str, also_taken: Option<&str>) -> String {
        self.ends.catch_up(&self.lab.links);
        let (first, ends) = self.ends.nodes.get(node).map_or((0, None), |(count, names)| (*count, Some(names)));
        let nics: Vec<&str> = self.lab.nics_of(node).map(|n| n.ifname.as_str()).collect();
        let taken = |name: &str| {
            ends.is_some_and(|names| names.contains(name)) || also_taken == Some(name) || nics.contains(&name)
        };
        (first..).map(|n| format!("eth{n}")).find(|name| !taken(name)).expect("unbounded range")
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
