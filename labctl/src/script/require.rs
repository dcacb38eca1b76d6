//! `require(name)`: labctl's own Lua modules (`script/lua/`, built into the
//! binary) and `<name>.lua` files next to the lab file. Nothing else: no
//! search path, no C modules, no way out of the lab's folder. The same
//! inside an experiment, where a module may define functions and values
//! but not declare more of the lab.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use mlua::chunk::ChunkMode;
use mlua::{Lua, Table, Value};

use super::builder;
use super::errors::error_at;

/// Modules built into labctl. Their chunk names start with `=`, which is how
/// origins and error locations tell them from user files.
const EMBEDDED: &[(&str, &str)] = &[
    ("topo", include_str!("lua/topo.lua")),
    ("commands", include_str!("lua/commands.lua")),
    ("stats", include_str!("lua/stats.lua")),
];

/// Named registry table caching loaded modules by name.
const LOADED: &str = "labctl.modules";

/// Standard modules a lab script does not get.
const FORBIDDEN: &[&str] = &["os", "io", "debug", "package", "ffi"];

/// Where modules are looked for, and which are being loaded right now (to
/// catch require cycles): kept for as long as the Lua state, so experiments
/// can require too.
struct Modules {
    folder: PathBuf,
    loading: HashSet<String>,
}

pub(super) fn register(lua: &Lua, lab_file: &Path) -> mlua::Result<()> {
    let folder = lab_file.parent().unwrap_or(lab_file).to_path_buf();
    lua.set_app_data(Modules { folder, loading: HashSet::new() });
    lua.set_named_registry_value(LOADED, lua.create_table()?)?;
    lua.globals().set("require", lua.create_function(require)?)
}

fn with_modules<R>(lua: &Lua, f: impl FnOnce(&mut Modules) -> R) -> R {
    f(&mut lua.app_data_mut::<Modules>().expect("registered with require"))
}

fn require(lua: &Lua, name: Value) -> mlua::Result<Value> {
    let Value::String(name) = &name else {
        return Err(error_at(
            lua,
            format!("require(): the module name must be a string, got {}", name.type_name()),
            "write require(\"topo\")",
        ));
    };
    let name = name.to_string_lossy();
    if !valid_module_name(&name) {
        return Err(error_at(
            lua,
            format!("require({name:?}): not a module name"),
            "name a module like \"topo\" or \"lib.helpers\" (that is lib/helpers.lua next to the lab file)",
        ));
    }
    let loaded: Table = lua.named_registry_value(LOADED)?;
    if let Some(module) = loaded.raw_get::<Option<Value>>(name.as_str())? {
        return Ok(module);
    }
    if FORBIDDEN.contains(&name.as_str()) {
        return Err(error_at(
            lua,
            format!("require({name:?}): {name} is not available in lab scripts"),
            "a lab script only declares the lab; labctl does all the system work",
        ));
    }
    let (source, chunk_name) = find(lua, &name)?;
    if !with_modules(lua, |m| m.loading.insert(name.clone())) {
        return Err(error_at(
            lua,
            format!("require({name:?}): the module requires itself (a require cycle)"),
            "break the cycle",
        ));
    }
    let result = lua.load(source).set_name(chunk_name).set_mode(ChunkMode::Text).call::<Value>(name.as_str());
    with_modules(lua, |m| m.loading.remove(&name));
    let module = match result? {
        Value::Nil => Value::Boolean(true),
        module => module,
    };
    loaded.raw_set(name.as_str(), &module)?;
    Ok(module)
}

/// Dotted identifiers: `topo`, `lib.helpers`.
fn valid_module_name(name: &str) -> bool {
    name.split('.').all(|part| {
        part.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// The module's source and chunk name: built in first, then the lab's folder.
fn find(lua: &Lua, name: &str) -> mlua::Result<(String, String)> {
    if let Some((_, source)) = EMBEDDED.iter().find(|(n, _)| *n == name) {
        return Ok((source.to_string(), format!("=lua/{name}.lua")));
    }
    let path: PathBuf = with_modules(lua, |m| m.folder.join(format!("{}.lua", name.replace('.', "/"))));
    match std::fs::read_to_string(&path) {
        Ok(source) => {
            // Listed for locating errors: in the lab being read, or once it is (in an experiment).
            if lua.app_data_ref::<builder::Builder>().is_some() {
                builder::with(lua, |b| b.files.push(path.clone()))?;
            } else if let Some(mut files) = lua.app_data_mut::<super::UserFiles>() {
                files.0.push(path.clone());
            }
            Ok((source, format!("@{}", path.display())))
        }
        Err(e) => {
            let builtin: Vec<&str> = EMBEDDED.iter().map(|(n, _)| *n).collect();
            let tried = match e.kind() {
                std::io::ErrorKind::NotFound => format!("looked for {}", path.display()),
                _ => format!("{}: {e}", path.display()),
            };
            Err(error_at(
                lua,
                format!("require({name:?}): no such module ({tried})"),
                &format!("built-in modules: {}; others are .lua files next to the lab file", builtin.join(", ")),
            ))
        }
    }
}
