//! The layer rule of ARCHITECTURE.md, checked on the source: every file of
//! labctl/src belongs to a layer, and may use its own layer and the layers
//! below it, never one above. And no two files use each other, directly or
//! around a loop. A use is any path through `crate::`, `super::`, `self::`
//! or `labctl::` (in `use` items and in code, `use` groups expanded), and a
//! module's own `child::` paths; comments are skipped.
//!
//! Plain file reading: no rustc, no extra crate. It reads paths, not types,
//! so a glob re-export could hide a use; the code base has none.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first (ARCHITECTURE.md, lib.rs). The first path
/// component of a file under src/ decides its layer.
const LAYERS: &[(&str, &[&str])] = &[
    ("foundation", &["diag"]),
    ("data", &["model", "plan"]),
    ("front end", &["script", "validate"]),
    ("kernel access", &["sys", "bpf"]),
    ("actions", &["apply", "observe", "traffic"]),
    ("orchestration", &["experiment", "exercise", "snapshot", "lib", "main", "cli"]),
];

/// A file's module path, rooted at its crate: `["apply", "xdp"]`; the
/// binary's files (main.rs, cli/) start with `"main"`.
type Module = Vec<String>;

struct Source {
    file: PathBuf,
    module: Module,
    /// `mod child;` declared here: `child::` paths are uses of it.
    children: Vec<String>,
    code: String,
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn module_of(relative: &Path) -> Module {
    let mut parts: Vec<String> = relative.with_extension("").iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    match parts.first().map(String::as_str) {
        Some("lib") => vec![],
        Some("main") => vec!["main".into()],
        Some("cli") => std::iter::once("main".to_string()).chain(parts).collect(),
        _ => parts,
    }
}

/// The file without comments (line comments, doc comments, block comments).
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut in_string = false;
    while let Some(c) = rest.chars().next() {
        if !in_string && rest.starts_with("//") {
            rest = rest.find('\n').map_or("", |i| &rest[i..]);
            continue;
        }
        if !in_string && rest.starts_with("/*") {
            rest = rest.find("*/").map_or("", |i| &rest[i + 2..]);
            continue;
        }
        if c == '"' && !rest.starts_with("\"#") {
            in_string = !in_string;
        } else if c == '\\' && in_string {
            out.push(c);
            rest = &rest[1..];
            if let Some(next) = rest.chars().next() {
                out.push(next);
                rest = &rest[next.len_utf8()..];
            }
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The file up to its unit tests (`#[cfg(test)] mod tests`, last in a file
/// by this code base's convention): a test may build its input with any
/// stage, the rule is about what the product depends on.
fn without_unit_tests(mut code: String) -> String {
    if let Some(at) = code.find("#[cfg(test)]\nmod ") {
        code.truncate(at);
    }
    code
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Expands the path starting at `text` (after a `prefix::`) into full
/// paths: `a::b`, `a::{b, c::d}`, `{self, x}`.
fn expand(text: &str, base: &[String], out: &mut Vec<Vec<String>>) {
    let mut path = base.to_vec();
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' | ',' if depth == 1 => {
                        let item = &group[start..i];
                        if !item.trim().is_empty() {
                            expand(item, &path, out);
                        }
                        start = i + 1;
                        if c == '}' {
                            return;
                        }
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            return;
        }
        let ident: String = rest.chars().take_while(|c| is_ident(*c)).collect();
        if ident.is_empty() {
            break;
        }
        rest = &rest[ident.len()..];
        if ident != "self" {
            path.push(ident);
        }
        match rest.strip_prefix("::") {
            Some(r) => rest = r,
            None => break,
        }
    }
    out.push(path);
}

/// Every module path `source` names.
fn uses(source: &Source) -> Vec<(String, Module)> {
    let code = &source.code;
    let mut found = Vec::new();
    let bin = source.module.first().is_some_and(|m| m == "main");
    let here = &source.module;
    // A file's own module is `here`; `super` is its parent.
    let is_mod_rs =
        source.file.ends_with("mod.rs") || source.file.ends_with("lib.rs") || source.file.ends_with("main.rs");
    let parent: Module = if is_mod_rs || here.is_empty() { here.clone() } else { here[..here.len() - 1].to_vec() };
    for (start, _) in code.match_indices("::") {
        let before = &code[..start];
        let word_start = before.rfind(|c: char| !is_ident(c)).map_or(0, |i| i + 1);
        let word = &before[word_start..];
        if word_start > 0 && before[..word_start].ends_with("::") {
            continue; // the middle of a path, seen from its first word
        }
        let base: Module = match word {
            "crate" if bin => vec!["main".into()],
            "crate" => vec![],
            "labctl" => vec![],
            "self" => here.clone(),
            "super" => {
                // super::super::x
                let mut base = parent.clone();
                let mut after = &code[start + 2..];
                while let Some(r) = after.strip_prefix("super::") {
                    base.pop();
                    after = r;
                }
                let base_len = base.len();
                let mut paths = Vec::new();
                expand(after, &base, &mut paths);
                found.extend(paths.into_iter().map(|p| (format!("super::{}", p[base_len..].join("::")), p)));
                continue;
            }
            child if source.children.iter().any(|c| c == child) => {
                let mut base = here.clone();
                base.push(child.to_string());
                base
            }
            _ => continue,
        };
        let base_len = base.len();
        let mut paths = Vec::new();
        expand(&code[start + 2..], &base, &mut paths);
        found.extend(paths.into_iter().map(|p| (format!("{word}::{}", p[base_len..].join("::")), p)));
    }
    found
}

fn layer_of(module: &Module) -> usize {
    let top = match module.first() {
        None => "lib",
        Some(first) => first.as_str(),
    };
    let top = if top == "main" && module.len() > 1 { "cli" } else { top };
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&top))
        .unwrap_or_else(|| panic!("module {top} is in no layer: add it to LAYERS and ARCHITECTURE.md"))
}

fn load() -> Vec<Source> {
    let mut paths = Vec::new();
    rust_files(&src(), &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|file| {
            let relative = file.strip_prefix(src()).expect("under src").to_path_buf();
            let code = strip_comments(&std::fs::read_to_string(&file).expect("read a source file"));
            let code = without_unit_tests(code);
            let children = code
                .lines()
                .filter_map(|l| {
                    let l = l.trim().strip_prefix("pub ").unwrap_or(l.trim());
                    let l = l.strip_prefix("pub(crate) ").or(l.strip_prefix("pub(super) ")).unwrap_or(l);
                    l.strip_prefix("mod ").and_then(|m| m.strip_suffix(';')).map(str::to_string)
                })
                .collect();
            Source { module: module_of(&relative), file: relative, children, code }
        })
        .collect()
}

/// The file a module path lives in: its longest prefix that is a file.
fn resolve<'a>(path: &Module, files: &'a BTreeMap<Module, PathBuf>) -> Option<&'a PathBuf> {
    (0..=path.len()).rev().find_map(|n| files.get(&path[..n].to_vec()))
}

/// The import graph between files: who uses whom, with the path that does.
fn graph(sources: &[Source]) -> BTreeMap<PathBuf, BTreeMap<PathBuf, String>> {
    let files: BTreeMap<Module, PathBuf> = sources.iter().map(|s| (s.module.clone(), s.file.clone())).collect();
    let mut edges: BTreeMap<PathBuf, BTreeMap<PathBuf, String>> = BTreeMap::new();
    for source in sources {
        let out = edges.entry(source.file.clone()).or_default();
        for (text, path) in uses(source) {
            // The library's root is everyone's entry point, not a dependency.
            let target = match resolve(&path, &files) {
                Some(t) if *t != source.file && !t.ends_with("lib.rs") => t,
                _ => continue,
            };
            out.entry(target.clone()).or_insert(text);
        }
    }
    edges
}

#[test]
fn no_file_uses_a_higher_layer() {
    let sources = load();
    assert!(sources.len() > 100, "found only {} files under src/", sources.len());
    let modules: BTreeMap<PathBuf, Module> = sources.iter().map(|s| (s.file.clone(), s.module.clone())).collect();
    let mut wrong = Vec::new();
    for (file, targets) in graph(&sources) {
        let from = layer_of(&modules[&file]);
        for (target, text) in targets {
            let to = layer_of(&modules[&target]);
            if to > from {
                wrong.push(format!(
                    "src/{} ({}) uses {text} in src/{} ({})",
                    file.display(),
                    LAYERS[from].0,
                    target.display(),
                    LAYERS[to].0
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "uses of a higher layer:\n{}", wrong.join("\n"));
}

/// Whether `file` is the facade of a module folder (mod.rs, lib.rs, or
/// `x.rs` beside `x/`) and `target` lives inside that folder.
fn owns(file: &Path, target: &Path) -> bool {
    let folder = match file.file_name().and_then(|n| n.to_str()) {
        Some("mod.rs") | Some("lib.rs") | Some("main.rs") => file.parent().unwrap_or(Path::new("")).to_path_buf(),
        _ => file.with_extension(""),
    };
    target != file && target.starts_with(&folder)
}

/// A module's facade (its mod.rs) declares, re-exports and calls its own
/// children, and they use the module's shared types from it: that is what
/// a module is, not a loop. Every other loop is one, between siblings or
/// across modules: its files cannot be understood one at a time.
#[test]
fn no_two_files_use_each_other() {
    let sources = load();
    let mut edges = graph(&sources);
    for (file, targets) in edges.iter_mut() {
        targets.retain(|target, _| !owns(file, target));
    }
    let cycles = strongly_connected(&edges);
    let shown: Vec<String> = cycles
        .iter()
        .map(|cycle| {
            let names: Vec<String> = cycle.iter().map(|f| format!("src/{}", f.display())).collect();
            let why: Vec<String> = cycle
                .iter()
                .flat_map(|f| {
                    edges[f]
                        .iter()
                        .filter(|(t, _)| cycle.contains(*t))
                        .map(move |(t, text)| format!("  src/{} -> src/{} ({text})", f.display(), t.display()))
                })
                .collect();
            format!("{}\n{}", names.join(", "), why.join("\n"))
        })
        .collect();
    assert!(cycles.is_empty(), "files that use each other:\n{}", shown.join("\n"));
}

/// Tarjan's algorithm: the groups of more than one file that reach each other.
fn strongly_connected(edges: &BTreeMap<PathBuf, BTreeMap<PathBuf, String>>) -> Vec<BTreeSet<PathBuf>> {
    struct State<'a> {
        edges: &'a BTreeMap<PathBuf, BTreeMap<PathBuf, String>>,
        index: BTreeMap<&'a PathBuf, usize>,
        low: BTreeMap<&'a PathBuf, usize>,
        stack: Vec<&'a PathBuf>,
        on_stack: BTreeSet<&'a PathBuf>,
        groups: Vec<BTreeSet<PathBuf>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a PathBuf) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.edges.get(v).into_iter().flat_map(|t| t.keys()) {
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[w].min(s.low[v]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.index[w].min(s.low[v]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut group = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                group.insert(w.clone());
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                s.groups.push(group);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: vec![],
        on_stack: BTreeSet::new(),
        groups: vec![],
    };
    for v in edges.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.groups
}
