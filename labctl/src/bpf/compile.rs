//! C source -> BPF object file, with clang, cached by content.
//!
//! The object's name is the SHA-256 of everything that shapes it: the
//! source, the flags, clang's version and (for CO-RE programs, those that
//! include `vmlinux.h`) the kernel BTF the header was generated from. A
//! cached object is reused as is; a new one is written to a temporary name
//! and renamed, so concurrent compiles never see half a file.

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
    let source = fs::read(src).map_err(BpfError::io(format!("cannot read {}", src.display())))?;
    let cache = cache_dir();
    fs::create_dir_all(&cache).map_err(BpfError::io(format!("cannot create {}", cache.display())))?;

    let mut flags: Vec<String> =
        ["-O2", "-g", "-target", "bpf", &format!("-D__TARGET_ARCH_{}", target_arch())].map(String::from).to_vec();
    if let Some(dir) = multiarch_include() {
        flags.push(format!("-I{}", dir.display()));
    }
    let mut hasher = Sha256::new();
    hasher.update(&source);
    hasher.update(flags.join(" "));
    hasher.update(clang_version()?);
    if uses_vmlinux_h(&source) {
        let (dir, kernel) = vmlinux_h(&cache)?;
        hasher.update(kernel);
        flags.push(format!("-I{}", dir.display()));
    }
    let object = cache.join(format!("{}.o", hex(&hasher.finalize())));
    if object.exists() {
        return Ok(object);
    }

    let tmp = temp_name(&object);
    let output = Command::new("clang").args(&flags).arg("-c").arg(src).arg("-o").arg(&tmp).output();
    let output = tool_output("clang", output)?;
    if !output.status.success() {
        let _ = fs::remove_file(&tmp);
        let mut message = String::from_utf8_lossy(&output.stderr).trim_end().to_string();
        if message.contains("bpf/bpf_helpers.h' file not found") || message.contains("asm/types.h' file not found") {
            message.push_str(&format!("\n(the BPF headers come with libbpf-dev: apt-get install -y {PACKAGES})"));
        }
        return Err(BpfError::Compile { src: src.to_path_buf(), message });
    }
    fs::rename(&tmp, &object).map_err(BpfError::io(format!("cannot rename to {}", object.display())))?;
    Ok(object)
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
/// from its BTF with bpftool, and the hash of that BTF.
fn vmlinux_h(cache: &Path) -> Result<(PathBuf, String)> {
    let btf = fs::read(KERNEL_BTF).map_err(BpfError::io(format!(
        "cannot read {KERNEL_BTF} (CO-RE programs need a kernel built with CONFIG_DEBUG_INFO_BTF)"
    )))?;
    let kernel = hex(&Sha256::digest(&btf))[..16].to_string();
    let dir = cache.join(format!("vmlinux-{kernel}"));
    let header = dir.join("vmlinux.h");
    if header.exists() {
        return Ok((dir, kernel));
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
    Ok((dir, kernel))
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
