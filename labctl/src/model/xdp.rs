//! XDP programs attached at `up`: `xdp("r1:eth0", { src = "prog.c", prog = "xdp_count", mode = "native" })`.
//!
//! Paths in a script are relative to the folder of the lab file (like
//! `require`); the model holds them joined to that folder, so they work
//! from wherever labctl was started.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::diag::Origin;

/// Where a program comes from: C compiled by labctl (cached by content), or
/// an object file compiled elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum XdpObject {
    Source(PathBuf),
    Object(PathBuf),
}

impl XdpObject {
    pub fn path(&self) -> &std::path::Path {
        match self {
            XdpObject::Source(p) | XdpObject::Object(p) => p,
        }
    }
}

/// How the program runs on the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    /// In the driver, before an skb exists (`xdpdrv`); fails where the
    /// driver has no XDP support.
    #[default]
    Native,
    /// In the core stack, on an skb (`xdpgeneric`): works on any device.
    Generic,
    /// The kernel's choice: native where the driver supports it.
    Auto,
}

impl XdpMode {
    pub const NAMES: &'static [&'static str] = &["native", "generic", "auto"];

    pub fn parse(text: &str) -> Option<XdpMode> {
        match text {
            "native" | "drv" | "driver" => Some(XdpMode::Native),
            "generic" | "skb" => Some(XdpMode::Generic),
            "auto" => Some(XdpMode::Auto),
            _ => None,
        }
    }
}

impl fmt::Display for XdpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
            XdpMode::Auto => "auto",
        })
    }
}

/// One XDP program on one interface of a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Xdp {
    pub node: String,
    pub ifname: String,
    pub object: XdpObject,
    /// The program's function name in the object; `None`: its only XDP program.
    pub program: Option<String>,
    pub mode: XdpMode,
    /// Include folders and defines for clang (C sources only).
    #[serde(default)]
    pub compile: CompileOptions,
    /// Maps pinned once for the whole lab, opened by every attachment
    /// that names them; other by-name maps are per attachment.
    #[serde(default)]
    pub share_maps: Vec<String>,
    pub origin: Origin,
}

/// What `xdp(..., { include = { "headers" }, defines = { DEBUG = 1 } })`
/// adds to clang's command line: `-I<folder>` (relative to the lab file)
/// and `-D<NAME>=<value>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CompileOptions {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<PathBuf>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub defines: BTreeMap<String, String>,
}

impl CompileOptions {
    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.defines.is_empty()
    }
}
