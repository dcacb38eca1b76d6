//! BPF: compile C programs with clang (cached by content), load them with
//! aya against the running kernel's BTF, read their maps.
//!
//! - [`compile`]: C source -> BPF object file in the cache (CO-RE programs
//!   get a `vmlinux.h` generated once per kernel).
//! - [`load`] / [`program_error`]: object file -> [`aya::Ebpf`], with the
//!   verifier's last lines in the error when the kernel rejects a program.
//!   The drop tracer uses them; an XDP loader can too (load, then
//!   `ebpf.program_mut(name)` as `aya::programs::Xdp`).
//! - [`drops`]: the drop-reason tracer behind `x:drops(...)`.
//!
//! Everything here needs root (CAP_BPF, CAP_PERFMON) except [`compile`].

pub mod btf;
mod compile;
pub mod drops;
mod kallsyms;
pub mod maps;
mod places;
pub mod sections;
pub mod xdp_events;

use std::io;
use std::path::{Path, PathBuf};

pub use compile::{cache_dir, compile, compile_embedded, compile_with, PACKAGES};
pub use drops::{DropRecord, DropTable, DropTracer, KernelPath, PathRecord};

use aya::maps::{MapData, PerCpuHashMap};
use aya::programs::ProgramError;
use aya::{Btf, Ebpf, EbpfLoader, Pod};

use crate::diag::error_chain;

pub type Result<T, E = BpfError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    #[error("{tool} is not installed ({why}); install it with: apt-get install -y {PACKAGES}")]
    ToolMissing { tool: &'static str, why: String },
    #[error("cannot compile {}:\n{message}", src.display())]
    Compile { src: PathBuf, message: String },
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("cannot load {}: {message}", object.display())]
    Load { object: PathBuf, message: String },
    #[error("the kernel rejected BPF program {program}: {message}")]
    Program { program: String, message: String },
    #[error("BPF map {map}: {message}")]
    Map { map: String, message: String },
    #[error("kernel BTF: {0}")]
    Btf(String),
}

impl BpfError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> BpfError {
        let what = what.into();
        move |source| BpfError::Io { what, source }
    }
}

/// How many lines of the verifier log an error keeps: the verdict is at the end.
const VERIFIER_TAIL: usize = 20;

/// The running kernel's BTF, for [`load`] and for attaching BTF-typed
/// programs (`tp_btf`, `fentry`).
pub fn kernel_btf() -> Result<Btf> {
    Btf::from_sys_fs().map_err(|e| BpfError::Btf(format!("/sys/kernel/btf/vmlinux: {e}")))
}

/// Loads a BPF object file with the running kernel's BTF (for CO-RE
/// relocations). `configure` may set globals (`override_global`), map sizes
/// or pin paths before the maps are created. Programs are not loaded into
/// the kernel yet: take each with `ebpf.program_mut(name)`, convert it to
/// its type, `load` it (map errors with [`program_error`]) and attach it.
/// Programs in section names aya cannot type are left out ([`sections`]).
pub fn load<'a>(object: &Path, btf: &'a Btf, configure: impl FnOnce(&mut EbpfLoader<'a>)) -> Result<Ebpf> {
    load_prepared(object, &sections::prepare(object)?, btf, configure)
}

/// [`load`] of an object already read by [`sections::prepare`]; errors name `shown`.
pub fn load_prepared<'a>(
    shown: &Path,
    object: &sections::Prepared,
    btf: &'a Btf,
    configure: impl FnOnce(&mut EbpfLoader<'a>),
) -> Result<Ebpf> {
    let mut loader = EbpfLoader::new();
    loader.btf(Some(btf));
    configure(&mut loader);
    loader.load(&object.bytes).map_err(|e| BpfError::Load { object: shown.to_path_buf(), message: error_chain(&e) })
}

/// A program's load or attach error, with the verifier's verdict (the last
/// lines of its log) when the kernel rejected the program.
pub fn program_error(program: &str, error: ProgramError) -> BpfError {
    let message = match &error {
        ProgramError::LoadError { io_error, verifier_log } => {
            let log = verifier_log.to_string();
            let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
            let tail = &lines[lines.len().saturating_sub(VERIFIER_TAIL)..];
            format!("{io_error}; verifier log (last {} lines):\n{}", tail.len(), tail.join("\n"))
        }
        _ => error_chain(&error),
    };
    BpfError::Program { program: program.to_string(), message }
}

/// Loads and attaches the BTF tracepoint programs `programs` (program name,
/// tracepoint) of `ebpf`, compiled from `source`; their kernel ids.
fn attach_tracepoints(ebpf: &mut Ebpf, btf: &Btf, source: &str, programs: &[(&str, &str)]) -> Result<Vec<u32>> {
    let mut ids = Vec::new();
    for &(name, tracepoint) in programs {
        let program: &mut aya::programs::BtfTracePoint = ebpf
            .program_mut(name)
            .ok_or_else(|| BpfError::Program { program: name.into(), message: format!("not in {source}") })?
            .try_into()
            .map_err(|e| program_error(name, e))?;
        program.load(tracepoint, btf).map_err(|e| program_error(name, e))?;
        program.attach().map_err(|e| program_error(name, e))?;
        if let Ok(info) = program.info() {
            ids.push(info.id());
        }
    }
    Ok(ids)
}

fn missing_map(name: &str, source: &str) -> BpfError {
    BpfError::Map { map: name.into(), message: format!("not in {source}") }
}

fn map_error(name: &'static str) -> impl Fn(aya::maps::MapError) -> BpfError {
    move |e| BpfError::Map { map: name.into(), message: e.to_string() }
}

/// Fills the `watched` map of a tracer built from `source`: only these
/// network namespaces (by inode) are counted.
fn watch_namespaces<'a>(ebpf: &mut Ebpf, source: &str, inodes: impl IntoIterator<Item = &'a u64>) -> Result<()> {
    let map = ebpf.map_mut("watched").ok_or_else(|| missing_map("watched", source))?;
    let mut watched: aya::maps::HashMap<&mut MapData, u64, u8> =
        aya::maps::HashMap::try_from(map).map_err(map_error("watched"))?;
    for inode in inodes {
        watched.insert(inode, 1, 0).map_err(map_error("watched"))?;
    }
    Ok(())
}

/// Every entry of a per-CPU hash map of `u64` counters, summed over CPUs.
pub fn sum_percpu_hash<K: Pod>(map: &PerCpuHashMap<MapData, K, u64>, name: &str) -> Result<Vec<(K, u64)>> {
    Ok(percpu_hash(map, name)?.into_iter().map(|(key, values)| (key, values.iter().sum())).collect())
}

/// Every entry of a per-CPU hash map with its value on each CPU (index = CPU number).
pub fn percpu_hash<K: Pod>(map: &PerCpuHashMap<MapData, K, u64>, name: &str) -> Result<Vec<(K, Vec<u64>)>> {
    map.iter()
        .map(|entry| {
            entry
                .map(|(key, values)| (key, values.iter().copied().collect()))
                .map_err(|e| BpfError::Map { map: name.into(), message: error_chain(&e) })
        })
        .collect()
}
