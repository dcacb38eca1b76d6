//! `xdp("r1:eth0", { src = "../fixtures/xdp/xdp_count.c", prog = "xdp_count", mode = "native" })`:
//! an XDP program attached to an interface at `up` (or `obj = "prog.o"`
//! for an object compiled elsewhere). Paths are relative to the folder of
//! the lab file. Whether the node, the interface and the file exist is left
//! to validation, which sees the whole lab.

use std::path::{Path, PathBuf};

use mlua::{Lua, Value};

use super::args::{self, show};
use super::builder;
use crate::model::xdp::CompileOptions;
use crate::model::{Xdp, XdpMode, XdpObject};

const HELP: &str =
    r#"write xdp("r1:eth0", { src = "../fixtures/xdp/xdp_count.c", prog = "xdp_count", mode = "native" })"#;
const VALID: &[&str] = &["src", "obj", "prog", "mode", "include", "defines", "share_maps"];

fn report(lua: &Lua, message: String, help: &str) -> mlua::Result<()> {
    let origin = builder::origin(lua)?;
    builder::with(lua, |b| b.report(origin, message, help))
}

pub(super) fn xdp(lua: &Lua, (target, opts): (Value, Value)) -> mlua::Result<()> {
    let Some(target) = args::string(&target) else {
        return report(
            lua,
            format!("xdp(): the interface must be a string like \"r1:eth0\", got {}", show(&target)),
            HELP,
        );
    };
    let Some((node, ifname)) = target.split_once(':').filter(|(n, i)| !n.is_empty() && !i.is_empty()) else {
        return report(lua, format!("xdp({target:?}): name the interface as \"node:ifname\""), HELP);
    };
    let Value::Table(opts) = opts else {
        return report(lua, format!("xdp({target:?}): expected a table of options, got {}", show(&opts)), HELP);
    };
    let mut ok = true;
    for key in args::unknown_keys(&opts, VALID, 0) {
        report(lua, format!("xdp(): unknown option {key}"), &args::valid_keys_help(VALID))?;
        ok = false;
    }
    let path_of = |key: &str| -> mlua::Result<Result<Option<String>, String>> {
        Ok(match opts.get::<Value>(key)? {
            Value::Nil => Ok(None),
            Value::String(s) if !s.to_string_lossy().is_empty() => Ok(Some(s.to_string_lossy())),
            other => Err(format!("xdp({target:?}): {key} must be a file name, got {}", show(&other))),
        })
    };
    let (src, obj) = (path_of("src")?, path_of("obj")?);
    let folder = builder::with(lua, |b| b.lab.file.parent().map(Path::to_path_buf).unwrap_or_default())?;
    let object = match (src, obj) {
        (Err(message), _) | (_, Err(message)) => {
            report(lua, message, HELP)?;
            None
        }
        (Ok(Some(src)), Ok(None)) => Some(XdpObject::Source(resolve(&folder, &src))),
        (Ok(None), Ok(Some(obj))) => Some(XdpObject::Object(resolve(&folder, &obj))),
        (Ok(Some(_)), Ok(Some(_))) => {
            report(
                lua,
                format!("xdp({target:?}): give either src (C source) or obj (compiled object), not both"),
                HELP,
            )?;
            None
        }
        (Ok(None), Ok(None)) => {
            report(
                lua,
                format!("xdp({target:?}): the program is missing: give src = \"prog.c\" or obj = \"prog.o\""),
                HELP,
            )?;
            None
        }
    };
    let program = match opts.get::<Value>("prog")? {
        Value::Nil => None,
        Value::String(s) if !s.to_string_lossy().is_empty() => Some(s.to_string_lossy()),
        other => {
            report(
                lua,
                format!("xdp({target:?}): prog must be the program's function name, got {}", show(&other)),
                HELP,
            )?;
            ok = false;
            None
        }
    };
    let mode = match opts.get::<Value>("mode")? {
        Value::Nil => Some(XdpMode::default()),
        Value::String(s) => {
            let text = s.to_string_lossy();
            let mode = XdpMode::parse(&text);
            if mode.is_none() {
                report(
                    lua,
                    format!("xdp({target:?}): unknown mode {text:?}"),
                    "mode is \"native\" (in the driver), \"generic\" (on an skb, any device) or \"auto\" (native where supported)",
                )?;
            }
            mode
        }
        other => {
            report(lua, format!("xdp({target:?}): mode must be a string, got {}", show(&other)), HELP)?;
            None
        }
    };
    let compile = compile_options(&opts, &folder)?;
    let share_maps = names_list(&opts.get::<Value>("share_maps")?);
    let mut problems: Vec<(String, &str)> = Vec::new();
    if let Err(message) = &compile {
        problems.push((format!("xdp({target:?}): {message}"), COMPILE_HELP));
    }
    if let Err(message) = &share_maps {
        problems.push((format!("xdp({target:?}): share_maps {message}"), SHARE_HELP));
    }
    if matches!((&object, &compile), (Some(XdpObject::Object(_)), Ok(c)) if !c.is_empty()) {
        problems.push((
            format!("xdp({target:?}): include and defines are for src = \"prog.c\"; obj is compiled already"),
            HELP,
        ));
    }
    for (message, help) in &problems {
        report(lua, message.clone(), help)?;
    }
    let (Some(object), Some(mode), true, Ok(compile), Ok(share_maps)) =
        (object, mode, ok && problems.is_empty(), compile, share_maps)
    else {
        return Ok(());
    };
    let origin = builder::origin(lua)?;
    builder::with(lua, |b| {
        b.lab.xdp.push(Xdp {
            node: node.to_string(),
            ifname: ifname.to_string(),
            object,
            program,
            mode,
            compile,
            share_maps,
            origin,
        })
    })
}

const COMPILE_HELP: &str = r#"write include = { "headers" } (folders, relative to the lab file) and defines = { DEBUG = 1, PORT = "9000", VERBOSE = true }"#;
const SHARE_HELP: &str =
    r#"write share_maps = { "tx_port" }: the names of maps that every xdp() naming them opens as one"#;

/// `include = { ... }` and `defines = { ... }`.
pub(crate) fn compile_options(opts: &mlua::Table, folder: &Path) -> mlua::Result<Result<CompileOptions, String>> {
    let include = match names_list(&opts.get::<Value>("include")?) {
        Ok(list) => list.iter().map(|dir| resolve(folder, dir)).collect(),
        Err(message) => return Ok(Err(format!("include {message}"))),
    };
    let mut defines = std::collections::BTreeMap::new();
    match opts.get::<Value>("defines")? {
        Value::Nil => {}
        Value::Table(t) => {
            for pair in t.pairs::<Value, Value>() {
                let (name, value) = pair?;
                let Some(name) = args::string(&name).filter(|n| is_c_identifier(n)) else {
                    return Ok(Err(format!("defines: {} is not a C macro name", show(&name))));
                };
                let value = match &value {
                    Value::Boolean(true) => "1".to_string(),
                    Value::String(s) => s.to_string_lossy(),
                    v => match args::whole_number(v) {
                        Some(n) => n.to_string(),
                        None => {
                            return Ok(Err(format!("defines: {name} = {} is not a string, number or true", show(v))))
                        }
                    },
                };
                defines.insert(name, value);
            }
        }
        other => return Ok(Err(format!("defines must be a table like {{ DEBUG = 1 }}, got {}", show(&other)))),
    }
    Ok(Ok(CompileOptions { include, defines }))
}

/// A list of non-empty strings (nil: empty), or what is wrong with it.
pub(crate) fn names_list(value: &Value) -> Result<Vec<String>, String> {
    let table = match value {
        Value::Nil => return Ok(Vec::new()),
        Value::Table(t) => t,
        other => return Err(format!("must be a list of names like {{ \"name\" }}, got {}", show(other))),
    };
    let mut names = Vec::new();
    for item in table.clone().sequence_values::<Value>() {
        match item.ok().as_ref().and_then(args::string) {
            Some(name) if !name.is_empty() => names.push(name),
            _ => return Err("must be a list of names like { \"name\" }".to_string()),
        }
    }
    if table.raw_len() != names.len() || table.pairs::<Value, Value>().count() != names.len() {
        return Err("must be a list of names like { \"name\" }".to_string());
    }
    Ok(names)
}

fn is_c_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A path from the script, relative to the lab file's folder unless absolute.
fn resolve(folder: &Path, written: &str) -> PathBuf {
    let path = Path::new(written);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        folder.join(path)
    }
}
