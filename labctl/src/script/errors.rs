//! Lua errors as diagnostics. Lua reports "file:line: message"; the file is
//! the chunk name we gave (the path as the user wrote it), so the location
//! can be read back. Errors inside labctl's own modules are blamed on the
//! user line that called into them, found in the traceback.

use std::path::{Path, PathBuf};

use mlua::Lua;

use super::limits::MAX_MEMORY;
use super::origin::caller_origin;
use crate::diag::{Diagnostic, Origin};

/// Separates a message from its help line in Lua error strings, so Lua code
/// (ours and labctl's modules) can raise errors with help too.
const HELP_MARKER: &str = "\nhelp: ";

/// A Lua error located at the calling line, in the form Lua itself uses.
pub fn error_at(lua: &Lua, message: String, help: &str) -> mlua::Error {
    let at = caller_origin(lua).map(|origin| format!("{origin}: ")).unwrap_or_default();
    mlua::Error::runtime(format!("{at}{message}{HELP_MARKER}{help}"))
}

/// Who has which methods where the error happened, for "did you mean":
/// `("a node", &["route", "sysctl", "tune"])`.
pub type Methods<'a> = &'a [(&'a str, &'a [&'a str])];

/// The methods of a lab script's node handles.
pub const LAB_SCRIPT_METHODS: Methods =
    &[("a node", &["route", "sysctl", "tune", "rule", "nexthop", "vrf", "vlan", "port"])];

/// `fallback` is used when the error carries no location at all.
pub(super) fn to_diagnostic(error: &mlua::Error, files: &[PathBuf], fallback: Origin, methods: Methods) -> Diagnostic {
    let (text, outer_traceback) = unwrap(error);
    let (text, traceback) = match text.split_once("\nstack traceback:") {
        Some((text, traceback)) => (text.to_string(), traceback.to_string()),
        None => (text, outer_traceback),
    };
    let (text, help) = match text.split_once(HELP_MARKER) {
        Some((text, help)) => (text.to_string(), Some(help.to_string())),
        None => {
            let help = default_help(error, &text, methods);
            (text, help)
        }
    };
    let blame = || first_user_frame(&traceback, files).unwrap_or_else(|| fallback.clone());
    let (origin, message) = match split_location(&text) {
        Some((file, line, message)) => match user_file(file, files) {
            Some(file) => (Origin::new(file, line), message.to_string()),
            None => (blame(), format!("{message} (in {file}:{line})")),
        },
        None => (blame(), text.clone()),
    };
    let diagnostic = Diagnostic::new(origin, message);
    match help {
        Some(help) => diagnostic.help(help),
        None => diagnostic,
    }
}

/// The innermost error's text, and the outermost traceback seen on the way.
fn unwrap(error: &mlua::Error) -> (String, String) {
    let mut traceback = String::new();
    let mut error = error;
    loop {
        match error {
            mlua::Error::CallbackError { traceback: t, cause } => {
                if traceback.is_empty() {
                    traceback = t.clone();
                }
                error = cause;
            }
            mlua::Error::WithContext { cause, .. } => error = cause,
            mlua::Error::SyntaxError { message, .. } => return (message.clone(), traceback),
            mlua::Error::RuntimeError(message) => return (message.clone(), traceback),
            mlua::Error::MemoryError(_) => {
                return (format!("the script used more than {} MiB of memory", MAX_MEMORY >> 20), traceback)
            }
            other => return (other.to_string(), traceback),
        }
    }
}

fn default_help(error: &mlua::Error, text: &str, methods: Methods) -> Option<String> {
    let root = std::iter::successors(Some(error), |e| match e {
        mlua::Error::CallbackError { cause, .. } | mlua::Error::WithContext { cause, .. } => Some(cause),
        _ => None,
    })
    .last()?;
    let help = match root {
        mlua::Error::SyntaxError { .. } => "fix the Lua syntax here (a missing `end`, quote, comma or bracket?)",
        mlua::Error::MemoryError(_) => "look for a loop that keeps growing a table or a string",
        _ if text.contains("binary chunk") => "lab scripts load Lua source only",
        _ if text.contains("(method '") => return Some(method_help(text, methods)),
        _ if text.contains("attempt to index a nil value") || text.contains("attempt to call a nil value") => {
            "a variable is nil here: misspelled, or used before it is assigned?"
        }
        _ => return None,
    };
    Some(help.to_string())
}

/// `did you mean "ping"? a node (x.h1) has the methods run, ping, ...` for
/// "attempt to call a nil value (method 'pign')".
fn method_help(text: &str, methods: Methods) -> String {
    let wanted = text.split("(method '").nth(1).and_then(|rest| rest.split('\'').next()).unwrap_or_default();
    let has = |owner: &str, names: &[&str]| format!("{owner} has the methods {}", names.join(", "));
    let nearest = crate::diag::closest(wanted, methods.iter().flat_map(|(_, names)| names.iter().copied()));
    match nearest.and_then(|name| methods.iter().find(|(_, names)| names.contains(&name)).map(|m| (name, m))) {
        Some((name, (owner, names))) => format!("did you mean {name:?}? {}", has(owner, names)),
        None => methods.iter().map(|(o, n)| has(o, n)).collect::<Vec<_>>().join("; "),
    }
}

/// Splits "file:line: message" (Lua's own error form).
fn split_location(text: &str) -> Option<(&str, u32, &str)> {
    let first_line = text.lines().next()?;
    first_line.match_indices(':').find_map(|(i, _)| {
        let rest = &text[i + 1..];
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let line = rest[..digits].parse().ok()?;
        let message = rest[digits..].strip_prefix(':')?;
        Some((&text[..i], line, message.trim_start()))
    })
}

/// The user file a location names. Lua shortens long chunk names to
/// "...<tail>", so a tail match counts.
fn user_file(shown: &str, files: &[PathBuf]) -> Option<PathBuf> {
    let display = |f: &Path| f.display().to_string();
    match shown.strip_prefix("...") {
        Some(tail) => files.iter().find(|f| display(f).ends_with(tail)),
        None => files.iter().find(|f| display(f) == shown),
    }
    .cloned()
}

/// The innermost traceback frame in a user file.
fn first_user_frame(traceback: &str, files: &[PathBuf]) -> Option<Origin> {
    traceback.lines().find_map(|frame| {
        let (file, line, _) = split_location(frame.trim())?;
        Some(Origin::new(user_file(file, files)?, line))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_method_gets_the_nearest_one_of_its_context() {
        let experiment: Methods = &[("a node (x.h1)", &["run", "ping", "udp"]), ("x", &["snapshot", "expect"])];
        let text = "attempt to call a nil value (method 'pign')";
        assert_eq!(
            method_help(text, experiment),
            "did you mean \"ping\"? a node (x.h1) has the methods run, ping, udp"
        );
        assert_eq!(
            method_help("attempt to call a nil value (method 'zzzzzz')", LAB_SCRIPT_METHODS),
            "a node has the methods route, sysctl, tune, rule, nexthop, vrf, vlan, port"
        );
    }

    #[test]
    fn splits_lua_locations() {
        assert_eq!(split_location("labs/a.lua:12: oops: 3"), Some(("labs/a.lua", 12, "oops: 3")));
        assert_eq!(split_location("lua/topo.lua:3: bad"), Some(("lua/topo.lua", 3, "bad")));
        assert_eq!(split_location("no location: here"), None);
    }

    #[test]
    fn matches_shortened_chunk_names() {
        let files = [PathBuf::from("/a/very/long/path/labs/part1.lua")];
        assert_eq!(user_file("...long/path/labs/part1.lua", &files), Some(files[0].clone()));
        assert_eq!(user_file("lua/topo.lua", &files), None);
    }
}
