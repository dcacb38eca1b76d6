//! C source -> BPF object file, with clang, cached by content.
//!
//! The object's name is the SHA-256 of everything that shapes it, found
//! the way ccache's direct mode does: the command (clang's version, every
//! flag, include folders and defines among them, the source's path; for
//! CO-RE programs the `vmlinux.h` folder, named after the kernel BTF it was
//! generated from) names a manifest listing every file the last compile
//! read (clang's `-MD` dependency output: the source and each header);
//! the object's name hashes the command with the contents of those files.
//! Editing any header the program includes gives a new name, so a new
//! compile. A new object or manifest is written to a temporary name and
//! renamed, so concurrent compiles never see half a file.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use super::{BpfError, Result};

/// What `apt-get install` needs for compiling and inspecting BPF programs.
pub const PACKAGES: &str = "clang llvm libbpf-dev bpftool";

const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Where compiled objects (and generated `vmlinux.h`) are kept:
/// `$LABCTL_BPF_CACHE`, else `$XDG_CACHE_HOME/labctl/bpf`, else
/// `~/.cache/labctl/bpf`.
pub fn cache_dir() -> PathBuf {
    let env = |name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = env("LABCTL_BPF_CACHE") {
        return dir;
    }
    let base = env("XDG_CACHE_HOME")
        .or_else(|| env("HOME").map(|h| h.join(".cache")))
        .unwrap_or_else(|| std::env::temp_dir().join("labctl-cache"));
    base.join("labctl").join("bpf")
}

/// Compiles `src` to a BPF object file in [`cache_dir`] and returns its path.
/// Errors name the packages to install when a tool is missing, and carry
/// clang's own messages (`file:line:col: error: ...`) when the C is wrong.
pub fn compile(src: &Path) -> Result<PathBuf> {
    compile_with(src, &[], &BTreeMap::new())
}

/// [`compile`] with more include folders (`-I`) and defines (`-DNAME=value`).
pub fn compile_with(src: &Path, include: &[PathBuf], defines: &BTreeMap<String, String>) -> Result<PathBuf> {
    let source = fs::read(src).map_err(BpfError::io(format!("cannot read {}", src.display())))?;
    let cache = cache_dir();
    fs::create_dir_all(&cache).map_err(BpfError::io(format!("cannot create {}", cache.display())))?;

    let mut flags: Vec<String> =
        ["-O2", "-g", "-target", "bpf", &format!("-D__TARGET_ARCH_{}", target_arch())].map(String::from).to_vec();
    if let Some(dir) = multiarch_include() {
        flags.push(format!("-I{}", dir.display()));
    }
    if uses_vmlinux_h(&source) {
        flags.push(format!("-I{}", vmlinux_h(&cache)?.display()));
    }
    flags.extend(include.iter().map(|dir| format!("-I{}", dir.display())));
    flags.extend(defines.iter().map(|(name, value)| format!("-D{name}={value}")));

    let mut command = Sha256::new();
    command.update(clang_version()?);
    command.update(flags.join("\0"));
    command.update(src.canonicalize().unwrap_or_else(|_| src.to_path_buf()).as_os_str().as_encoded_bytes());
    let command = hex(&command.finalize());
    let manifest = cache.join(format!("{command}.deps"));
    if let Some(object) = cached_object(&cache, &command, &manifest) {
        return Ok(object);
    }

    let tmp = temp_name(&manifest.with_extension("o"));
    let depfile = tmp.with_extension("d");
    let output = Command::new("clang")
        .args(&flags)
        .arg("-MD")
        .arg("-MF")
        .arg(&depfile)
        .arg("-c")
        .arg(src)
        .arg("-o")
        .arg(&tmp)
        .output();
    let output = tool_output("clang", output)?;
    let deps = fs::read_to_string(&depfile).map(|text| parse_depfile(&text));
    let _ = fs::remove_file(&depfile);
    if !output.status.success() {
        let _ = fs::remove_file(&tmp);
        let mut message = String::from_utf8_lossy(&output.stderr).trim_end().to_string();
        if let Some(help) = missing_header_help(&message) {
            message.push_str(&format!("\nhelp: {help}"));
        }
        return Err(BpfError::Compile { src: src.to_path_buf(), message });
    }
    let deps = deps.map_err(BpfError::io(format!("cannot read clang's dependency file {}", depfile.display())))?;
    let key = content_key(&command, &deps)
        .map_err(BpfError::io(format!("cannot read the files {} includes", src.display())))?;
    let object = cache.join(format!("{key}.o"));
    fs::rename(&tmp, &object).map_err(BpfError::io(format!("cannot rename to {}", object.display())))?;
    let listed: Vec<String> = deps.iter().map(|d| d.display().to_string()).collect();
    write_atomically(&manifest, format!("{}\n", listed.join("\n")).as_bytes())?;
    Ok(object)
}

/// The object the manifest's files give today, if it was compiled before.
fn cached_object(cache: &Path, command: &str, manifest: &Path) -> Option<PathBuf> {
    let listed = fs::read_to_string(manifest).ok()?;
    let deps: Vec<PathBuf> = listed.lines().filter(|l| !l.is_empty()).map(PathBuf::from).collect();
    let object = cache.join(format!("{}.o", content_key(command, &deps).ok()?));
    object.exists().then_some(object)
}

/// The hash of the command and of every file the compile read, by path and content.
fn content_key(command: &str, deps: &[PathBuf]) -> io::Result<String> {
    let mut hasher = Sha256::new();
    hasher.update(command);
    for dep in deps {
        hasher.update(dep.as_os_str().as_encoded_bytes());
        hasher.update([0]);
        let text = fs::read(dep)?;
        hasher.update((text.len() as u64).to_le_bytes());
        hasher.update(&text);
    }
    Ok(hex(&hasher.finalize()))
}

/// The prerequisites of a Makefile rule as clang's `-MD` writes it
/// (`obj.o: a.c b.h \` continued lines, spaces in names as `\ `).
fn parse_depfile(text: &str) -> Vec<PathBuf> {
    let joined = text.replace("\\\n", " ").replace("\\\r\n", " ");
    let Some((_, prerequisites)) = joined.split_once(": ") else { return Vec::new() };
    let mut deps = Vec::new();
    let mut current = String::new();
    let mut chars = prerequisites.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&' ') => current.push(chars.next().expect("peeked")),
            c if c.is_whitespace() => {
                if !current.is_empty() {
                    deps.push(PathBuf::from(std::mem::take(&mut current)));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        deps.push(PathBuf::from(current));
    }
    deps
}

/// What to do about clang's `fatal error: 'x.h' file not found`.
fn missing_header_help(message: &str) -> Option<String> {
    let header = message.split("fatal error: '").nth(1)?.split('\'').next()?;
    Some(match header {
        "gnu/stubs-32.h" => "gnu/stubs-32.h comes with the 32-bit C library headers, which the C library's headers ask for under -target bpf: apt-get install -y libc6-dev-i386".to_string(),
        h if h.starts_with("bpf/") || h.starts_with("asm/") || h.starts_with("linux/") => {
            format!("{h} comes with the BPF and kernel headers: apt-get install -y {PACKAGES} linux-libc-dev")
        }
        h => format!(
            "no include folder has {h}: add the folder that has it to the xdp() call's include = {{ ... }}, or install the package that has it (apt-file search {h})"
        ),
    })
}

/// Compiles a C source shipped inside labctl (`include_str!`): written to
/// the cache as `src/<hash>/<name>` first, so clang's messages name it.
pub fn compile_embedded(name: &str, text: &str) -> Result<PathBuf> {
    let dir = cache_dir().join("src").join(&hex(&Sha256::digest(text.as_bytes()))[..16]);
    let path = dir.join(name);
    if !path.exists() {
        fs::create_dir_all(&dir).map_err(BpfError::io(format!("cannot create {}", dir.display())))?;
        write_atomically(&path, text.as_bytes())?;
    }
    compile(&path)
}

fn uses_vmlinux_h(source: &[u8]) -> bool {
    String::from_utf8_lossy(source).lines().any(|l| {
        let l = l.trim_start();
        l.starts_with("#include") && (l.contains("\"vmlinux.h\"") || l.contains("<vmlinux.h>"))
    })
}

/// The directory holding `vmlinux.h` for the running kernel, generated once
/// from its BTF with bpftool, and named after the hash of that BTF.
fn vmlinux_h(cache: &Path) -> Result<PathBuf> {
    let btf = fs::read(KERNEL_BTF).map_err(BpfError::io(format!(
        "cannot read {KERNEL_BTF} (CO-RE programs need a kernel built with CONFIG_DEBUG_INFO_BTF)"
    )))?;
    let kernel = hex(&Sha256::digest(&btf))[..16].to_string();
    let dir = cache.join(format!("vmlinux-{kernel}"));
    let header = dir.join("vmlinux.h");
    if header.exists() {
        return Ok(dir);
    }
    fs::create_dir_all(&dir).map_err(BpfError::io(format!("cannot create {}", dir.display())))?;
    let output = Command::new("bpftool").args(["btf", "dump", "file", KERNEL_BTF, "format", "c"]).output();
    let output = tool_output("bpftool", output)?;
    if !output.status.success() {
        return Err(BpfError::Compile {
            src: header,
            message: format!("bpftool btf dump failed: {}", String::from_utf8_lossy(&output.stderr).trim()),
        });
    }
    write_atomically(&header, &output.stdout)?;
    Ok(dir)
}

fn clang_version() -> Result<&'static str> {
    static VERSION: OnceLock<String> = OnceLock::new();
    if let Some(v) = VERSION.get() {
        return Ok(v);
    }
    let output = tool_output("clang", Command::new("clang").arg("--version").output())?;
    let version = String::from_utf8_lossy(&output.stdout).lines().next().unwrap_or("").to_string();
    Ok(VERSION.get_or_init(|| version))
}

/// A tool's output, or an error naming the packages when it is not installed.
fn tool_output(tool: &'static str, output: io::Result<Output>) -> Result<Output> {
    output.map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => BpfError::ToolMissing { tool, why: "not found in PATH".into() },
        _ => BpfError::Io { what: format!("cannot run {tool}"), source: e },
    })
}

fn target_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x86",
        "aarch64" => "arm64",
        "powerpc64" => "powerpc",
        "s390x" => "s390",
        "riscv64" => "riscv",
        other => other,
    }
}

/// `/usr/include/x86_64-linux-gnu` on Debian: `asm/types.h`, which
/// `linux/bpf.h` needs, lives there, and `-target bpf` does not look.
fn multiarch_include() -> Option<PathBuf> {
    let dir = PathBuf::from(format!("/usr/include/{}-linux-gnu", std::env::consts::ARCH));
    dir.is_dir().then_some(dir)
}

fn temp_name(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp.{}.{n}", std::process::id()));
    path.with_file_name(name)
}

fn write_atomically(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = temp_name(path);
    let write = || -> io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        BpfError::Io { what: format!("cannot write {}", path.display()), source: e }
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depfiles_list_every_prerequisite() {
        let text = "/c/x.o: /src/prog.c /usr/include/linux/bpf.h \\\n  /src/my\\ dir/common.h\n";
        assert_eq!(
            parse_depfile(text),
            ["/src/prog.c", "/usr/include/linux/bpf.h", "/src/my dir/common.h"].map(PathBuf::from).to_vec()
        );
    }

    #[test]
    fn missing_headers_get_a_package_or_a_folder() {
        let stubs = "/usr/include/features.h:510:12: fatal error: 'gnu/stubs-32.h' file not found";
        assert!(missing_header_help(stubs).unwrap().contains("libc6-dev-i386"));
        let other = "prog.c:3:10: fatal error: 'common/parsing.h' file not found";
        assert!(missing_header_help(other).unwrap().contains("include = {"));
        assert!(missing_header_help("prog.c:7:1: error: expected ';'").is_none());
    }
}
