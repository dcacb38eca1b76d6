//! Script stage: evaluates a lab file with Lua (sandboxed) into a [`Lab`].
//! The Lua side only declares; nothing here touches the kernel.

use std::path::{Path, PathBuf};

use crate::diag::Diagnostics;
use crate::model::Lab;

/// A loaded lab script: the declared lab, and the Lua state that still holds
/// its experiment functions.
pub struct Script {
    pub lab: Lab,
    pub lua: mlua::Lua,
}

#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// Problems in the script, each with file:line.
    #[error("{0}")]
    Invalid(Diagnostics),
}

pub fn load(path: &Path) -> Result<Script, ScriptError> {
    let _ = path;
    todo!("script stage")
}
