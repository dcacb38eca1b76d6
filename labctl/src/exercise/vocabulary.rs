//! The globals an exercise file adds to the lab vocabulary:
//! `exercise { title, task, hints, edit, solution }`, `check(name, fn, opts)`
//! and `edited(file)`, plus the `grade` helpers (grade.lua) checks use to
//! phrase evidence. Mistakes are reported at the caller's line and the file
//! keeps running, like the lab vocabulary.

use std::path::{Path, PathBuf};

use mlua::{Lua, Table, Value};

use super::{diagnostic, CheckSpec, Files, SolutionCommand, Spec, SOLVED, STARTER};
use crate::diag::{Diagnostic, Diagnostics, Origin};
use crate::model::Lab;
use crate::script::{report, ScriptError};

/// Named registry table of check functions by name.
const CHECKS: &str = "labctl.exercise.checks";
const GRADE_LUA: &str = include_str!("grade.lua");

const EXERCISE_KEYS: &[&str] = &["title", "task", "hints", "edit", "setup", "solution"];
const COMMANDS_KEYS: &[&str] = &["commands"];
const CHECK_KEYS: &[&str] = &["hint"];
const EXERCISE_EXAMPLE: &str = r#"write exercise { title = "...", task = "...", hints = { "a nudge", "nearly the answer" }, solution = { commands = { { "h3", { "ip", "route", "add", "default", "via", "198.18.1.254" } } } } }"#;
const CHECK_EXAMPLE: &str = r#"write check("h3 reaches h1", function(x) ... end, { hint = "look at h3's routes" })"#;

/// The declaration while the file is read (Lua app data).
struct Declared {
    spec: Spec,
    called: bool,
    dir: PathBuf,
    files: Files,
}

pub(super) fn register(lua: &Lua, dir: &Path, files: &Files) -> mlua::Result<()> {
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    lua.set_app_data(Declared { spec: Spec::default(), called: false, dir, files: files.clone() });
    lua.set_named_registry_value(CHECKS, lua.create_table()?)?;
    let globals = lua.globals();
    globals.set("exercise", lua.create_function(exercise)?)?;
    globals.set("check", lua.create_function(check)?)?;
    globals.set("edited", lua.create_function(edited)?)?;
    let grade: Value = lua.load(GRADE_LUA).set_name("=exercise/grade.lua").call(())?;
    globals.set("grade", grade)
}

/// The declaration, once the file has been read.
pub(super) fn take(lua: &Lua, file: &Path) -> Result<Spec, ScriptError> {
    let declared = lua.remove_app_data::<Declared>().expect("registered before the file ran");
    let at_top = Origin::new(file, 1);
    let mut problems = Vec::new();
    if !declared.called {
        problems.push(diagnostic(&at_top, "this file declares no exercise", EXERCISE_EXAMPLE));
    }
    if declared.spec.checks.is_empty() {
        problems.push(diagnostic(&at_top, "the exercise has no check", CHECK_EXAMPLE));
    }
    if problems.is_empty() {
        Ok(declared.spec)
    } else {
        Err(ScriptError::Invalid(Diagnostics(problems)))
    }
}

/// The function of check `name`.
pub fn function(lua: &Lua, name: &str) -> Option<mlua::Function> {
    let checks: Table = lua.named_registry_value(CHECKS).ok()?;
    checks.get::<Option<mlua::Function>>(name).ok().flatten()
}

/// What only the whole file can tell: solution commands name nodes of the
/// lab, every edited file has a starter copy, there is a solution at all.
pub(super) fn check_against_lab(spec: &Spec, lab: &Lab, dir: &Path) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    for command in spec.setup.iter().chain(&spec.commands) {
        if lab.node(&command.node).is_none() {
            let nodes: Vec<&str> = lab.nodes.iter().map(|n| n.name.as_str()).collect();
            problems.push(diagnostic(
                &command.origin,
                format!("command for node {:?}: the lab has no such node", command.node),
                format!("its nodes: {}", nodes.join(", ")),
            ));
        }
    }
    for name in &spec.edit {
        if !dir.join(STARTER).join(name).is_file() {
            problems.push(diagnostic(
                &spec.origin,
                format!("edit = {{ {name:?} }}: there is no starter copy {}/{STARTER}/{name}", dir.display()),
                "put the file the learner starts from under starter/",
            ));
        }
    }
    let solved_files = spec.edit.iter().any(|name| dir.join(SOLVED).join(name).is_file());
    if spec.commands.is_empty() && !solved_files {
        problems.push(diagnostic(
            &spec.origin,
            "the exercise has no reference solution",
            format!("give solution = {{ commands = {{ {{ node, argv }}, ... }} }} or solved copies of edited files under {SOLVED}/"),
        ));
    }
    problems
}

fn with<R>(lua: &Lua, f: impl FnOnce(&mut Declared) -> R) -> mlua::Result<R> {
    match lua.app_data_mut::<Declared>() {
        Some(mut declared) => Ok(f(&mut declared)),
        None => Err(mlua::Error::runtime("exercise(), check() and edited() work only while the file is read")),
    }
}

fn origin(lua: &Lua) -> Origin {
    crate::script::caller_origin(lua).unwrap_or_default()
}

/// `exercise { title = ..., task = ..., hints = {...}, edit = {...}, solution = { commands = {...} } }`
fn exercise(lua: &Lua, spec: Value) -> mlua::Result<()> {
    let Value::Table(spec) = spec else {
        return report(lua, format!("exercise(): expected a table, got {}", spec.type_name()), EXERCISE_EXAMPLE);
    };
    if with(lua, |d| std::mem::replace(&mut d.called, true))? {
        return report(lua, "exercise() is called twice", "keep a single exercise { ... } per file");
    }
    with(lua, |d| d.spec.origin = origin(lua))?;
    unknown_keys(lua, "exercise()", &spec, EXERCISE_KEYS)?;
    let title = required_text(lua, &spec, "title")?;
    let task = required_text(lua, &spec, "task")?;
    let hints = texts(lua, "exercise(): hints", spec.get("hints")?)?;
    let edit = texts(lua, "exercise(): edit", spec.get("edit")?)?;
    for name in &edit {
        if !plain_file_name(name) {
            report(
                lua,
                format!("exercise(): edit: {name:?} is not a file name"),
                "name files of the exercise's folder, like \"xdp_drop_port.c\" (no / or ..)",
            )?;
        }
    }
    let setup = commands(lua, "setup", spec.get("setup")?)?;
    let commands = commands(lua, "solution", spec.get("solution")?)?;
    with(lua, |d| {
        d.spec.setup = setup;
        d.spec.title = title;
        d.spec.task = task;
        d.spec.hints = hints;
        d.spec.edit = edit;
        d.spec.commands = commands;
    })
}

fn plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/')
}

fn unknown_keys(lua: &Lua, call: &str, table: &Table, valid: &[&str]) -> mlua::Result<()> {
    for pair in table.pairs::<Value, Value>() {
        let (key, _) = pair?;
        let known = matches!(&key, Value::String(s) if valid.contains(&s.to_string_lossy().as_str()));
        if !known {
            let key = match &key {
                Value::String(s) => format!("{:?}", s.to_string_lossy()),
                other => other.to_string().unwrap_or_else(|_| other.type_name().to_string()),
            };
            report(lua, format!("{call}: unknown option {key}"), format!("valid options: {}", valid.join(", ")))?;
        }
    }
    Ok(())
}

fn required_text(lua: &Lua, spec: &Table, key: &str) -> mlua::Result<String> {
    match spec.get::<Value>(key)? {
        Value::String(s) if !s.to_string_lossy().trim().is_empty() => Ok(s.to_string_lossy()),
        Value::Nil => {
            report(lua, format!("exercise(): {key} is missing"), format!("give the exercise a {key} = \"...\""))?;
            Ok(String::new())
        }
        other => {
            report(lua, format!("exercise(): {key} must be text, got {}", other.type_name()), EXERCISE_EXAMPLE)?;
            Ok(String::new())
        }
    }
}

/// A list of strings (or one string, or nothing).
fn texts(lua: &Lua, what: &str, value: Value) -> mlua::Result<Vec<String>> {
    match value {
        Value::Nil => Ok(vec![]),
        Value::String(s) => Ok(vec![s.to_string_lossy()]),
        Value::Table(t) => {
            let mut out = Vec::new();
            for item in t.sequence_values::<Value>() {
                match item? {
                    Value::String(s) => out.push(s.to_string_lossy()),
                    other => report(
                        lua,
                        format!("{what}: expected text, got {}", other.type_name()),
                        "write { \"first\", \"second\" }",
                    )?,
                }
            }
            Ok(out)
        }
        other => {
            report(
                lua,
                format!("{what}: expected a list of text, got {}", other.type_name()),
                "write { \"first\", \"second\" }",
            )?;
            Ok(vec![])
        }
    }
}

/// `solution = { commands = { { "h3", { "ip", "route", ... } }, { "r1", "sysctl -w ..." } } }`
/// (and `setup = { commands = ... }`, what breaks the lab after it is up);
/// a command given as one string is split on spaces.
fn commands(lua: &Lua, key: &str, value: Value) -> mlua::Result<Vec<SolutionCommand>> {
    let help = format!(
        r#"write {key} = {{ commands = {{ {{ "h3", {{ "ip", "route", "add", "default", "via", "198.18.1.254" }} }} }} }}"#
    );
    let help = help.as_str();
    let spec = match value {
        Value::Nil => return Ok(vec![]),
        Value::Table(t) => t,
        other => {
            report(lua, format!("exercise(): {key} must be a table, got {}", other.type_name()), help)?;
            return Ok(vec![]);
        }
    };
    unknown_keys(lua, &format!("exercise(): {key}"), &spec, COMMANDS_KEYS)?;
    let Value::Table(list) = spec.get::<Value>("commands")? else { return Ok(vec![]) };
    let mut commands = Vec::new();
    for (i, item) in list.sequence_values::<Value>().enumerate() {
        let parsed = match item? {
            Value::Table(t) => match (t.get::<Value>(1)?, t.get::<Value>(2)?) {
                (Value::String(node), Value::String(line)) => Some((
                    node.to_string_lossy(),
                    line.to_string_lossy().split_whitespace().map(String::from).collect(),
                )),
                (Value::String(node), Value::Table(argv)) => {
                    let argv: Result<Vec<String>, _> = argv.sequence_values::<String>().collect();
                    argv.ok().map(|argv| (node.to_string_lossy(), argv))
                }
                _ => None,
            },
            _ => None,
        };
        match parsed {
            Some((node, argv)) if !argv.is_empty() => {
                commands.push(SolutionCommand { node, argv, origin: origin(lua) })
            }
            _ => report(lua, format!("exercise(): {key} command {} is not {{ node, argv }}", i + 1), help)?,
        }
    }
    Ok(commands)
}

/// `check("h3 reaches h1", function(x) ... end, { hint = "..." })`
fn check(lua: &Lua, (name, func, opts): (Value, Value, Value)) -> mlua::Result<()> {
    let Value::String(name) = name else {
        return report(lua, format!("check(): the name must be text, got {}", name.type_name()), CHECK_EXAMPLE);
    };
    let name = name.to_string_lossy();
    let Value::Function(func) = func else {
        return report(
            lua,
            format!("check({name:?}): the second argument must be a function, got {}", func.type_name()),
            CHECK_EXAMPLE,
        );
    };
    let hints = match opts {
        Value::Nil => vec![],
        Value::Table(opts) => {
            unknown_keys(lua, &format!("check({name:?})"), &opts, CHECK_KEYS)?;
            texts(lua, &format!("check({name:?}): hint"), opts.get("hint")?)?
        }
        other => {
            report(lua, format!("check({name:?}): options must be a table, got {}", other.type_name()), CHECK_EXAMPLE)?;
            vec![]
        }
    };
    let checks: Table = lua.named_registry_value(CHECKS)?;
    if checks.contains_key(name.as_str())? {
        return report(lua, format!("check({name:?}) is declared twice"), "give every check its own name");
    }
    checks.set(name.as_str(), func)?;
    let spec = CheckSpec { name, hints, origin: origin(lua) };
    with(lua, |d| d.spec.checks.push(spec))
}

/// `edited("xdp_drop_port.c")`: the path of the learner's copy of an edited
/// file (for `xdp { src = ... }`); for a `.lua` piece, what evaluating it
/// into the lab returns.
fn edited(lua: &Lua, name: String) -> mlua::Result<Value> {
    let (listed, path) = with(lua, |d| (d.spec.edit.contains(&name), resolve(d, &name)))?;
    if !listed {
        report(
            lua,
            format!("edited({name:?}): the exercise does not list {name:?} in edit"),
            format!("declare it first: exercise {{ ..., edit = {{ {name:?} }} }}"),
        )?;
        return Ok(Value::Nil);
    }
    if name.ends_with(".lua") {
        return crate::script::include(lua, &path);
    }
    Ok(Value::String(lua.create_string(path.display().to_string())?))
}

fn resolve(declared: &Declared, name: &str) -> PathBuf {
    let starter = declared.dir.join(STARTER).join(name);
    let preferred = match &declared.files {
        Files::Starter => return starter,
        Files::Solved => declared.dir.join(SOLVED).join(name),
        Files::Learner(dir) => std::path::absolute(dir.join(name)).unwrap_or_else(|_| dir.join(name)),
    };
    if preferred.is_file() {
        preferred
    } else {
        starter
    }
}
