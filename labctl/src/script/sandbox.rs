//! The Lua state a lab script runs in: only the pure standard libraries, no
//! way to reach files, processes or C code, and bounds on instructions and
//! memory so a runaway script stops with an error instead of hanging.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use mlua::{HookTriggers, Lua, LuaOptions, StdLib, VmState};

use super::limits::{HOOK_EVERY, MAX_INSTRUCTIONS, MAX_MEMORY};
use super::origin::caller_origin;
use crate::diag::Origin;

/// Watches the running script: counts instructions and remembers where it was.
#[derive(Default)]
pub(super) struct Watchdog {
    hooks: AtomicU64,
    stopped: AtomicBool,
    /// The user line running at the last check: the best place to blame
    /// for an out-of-memory error, which carries no location.
    last: Mutex<Option<Origin>>,
}

impl Watchdog {
    /// While set, `pcall` and `xpcall` rethrow every error, so a script
    /// stopped by a limit cannot catch the stop and go on.
    pub fn set_stopped(&self, stopped: bool) {
        self.stopped.store(stopped, Ordering::Relaxed);
    }

    pub fn last_origin(&self) -> Option<Origin> {
        self.last.lock().expect("watchdog lock").clone()
    }
}

/// Lua code run once at setup. `stopped` is passed in as the chunk's argument.
const PRELUDE: &str = r#"
local stopped = ...
local rawpcall, rawxpcall, rawload, error, setmetatable = pcall, xpcall, load, error, setmetatable

-- pcall must not swallow the watchdog's stop or an out-of-memory error,
-- or a loop around pcall would run forever.
local function rethrow_fatal(ok, ...)
  if not ok and (stopped() or (...) == "not enough memory") then error((...), 0) end
  return ok, ...
end
function pcall(...) return rethrow_fatal(rawpcall(...)) end
function xpcall(...) return rethrow_fatal(rawxpcall(...)) end

-- Text chunks only: binary chunks can crash the interpreter. The env
-- argument is passed only if given: an explicit nil would mean "no globals".
function load(chunk, name, _, ...) return rawload(chunk, name, "t", ...) end
dofile, loadfile = nil, nil

-- Reading an undefined global is almost always a typo: fail at that line.
local unavailable = { os = true, io = true, debug = true, package = true, dofile = true, loadfile = true }
setmetatable(_G, { __index = function(_, name)
  if unavailable[name] then
    error(("%s is not available in lab scripts\nhelp: a lab script only declares the lab; labctl does all the system work"):format(name), 2)
  end
  error(("unknown name '%s'\nhelp: a typo, or a variable used before it is defined? Lab scripts have lab, node, bridge, link, experiment and require"):format(tostring(name)), 2)
end })
"#;

pub(super) fn new() -> mlua::Result<(Lua, Arc<Watchdog>)> {
    let lua = Lua::new_with(StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::UTF8, LuaOptions::default())?;
    let watchdog = Arc::new(Watchdog::default());

    // print goes to stderr: stdout belongs to labctl's own output (e.g. --json).
    lua.globals().set(
        "print",
        lua.create_function(|_, values: mlua::Variadic<mlua::Value>| {
            let texts: Vec<String> = values.iter().map(|v| v.to_string()).collect::<mlua::Result<_>>()?;
            eprintln!("{}", texts.join("\t"));
            Ok(())
        })?,
    )?;
    let w = watchdog.clone();
    let stopped = lua.create_function(move |_, ()| Ok(w.stopped.load(Ordering::Relaxed)))?;
    lua.load(PRELUDE).set_name("=labctl prelude").call::<()>(stopped)?;

    let w = watchdog.clone();
    lua.set_hook(HookTriggers::new().every_nth_instruction(HOOK_EVERY), move |lua, _| {
        *w.last.lock().expect("watchdog lock") = caller_origin(lua);
        if w.hooks.fetch_add(1, Ordering::Relaxed) < MAX_INSTRUCTIONS / u64::from(HOOK_EVERY) {
            return Ok(VmState::Continue);
        }
        w.stopped.store(true, Ordering::Relaxed);
        Err(super::errors::error_at(
            lua,
            "script ran too long (infinite loop?)".into(),
            "a lab script only declares the lab and should finish in well under a second; look for a loop that never ends",
        ))
    })?;
    lua.set_memory_limit(MAX_MEMORY)?;
    Ok((lua, watchdog))
}
