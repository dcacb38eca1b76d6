//! The bounds of the Lua sandbox a lab file is read in (sandbox.rs), also
//! named in the messages that report them (errors.rs).

/// Enough for labs with tens of thousands of nodes; an endless loop hits it
/// within a second or so.
pub(super) const MAX_INSTRUCTIONS: u64 = 100_000_000;

/// Instructions between two checks of the budget.
pub(super) const HOOK_EVERY: u32 = 1_000;

pub(super) const MAX_MEMORY: usize = 256 << 20;
