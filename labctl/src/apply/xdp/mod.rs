//! XDP programs on lab interfaces (plan step [`Step::AttachXdp`]).
//!
//! - [`prepare`], before `up` touches anything: compiles every C source
//!   (clang, cached by content) and loads every program once for the
//!   verifier's verdict, so a compile error or a rejected program stops
//!   `up` with nothing created.
//! - [`attach`]: loads the program with aya, pins its maps and the program
//!   in the step's bpffs folder, attaches it to the interface from a thread
//!   inside the node's namespace (aya resolves the interface there) and pins
//!   the link: the program stays attached after labctl exits. The step is in
//!   the journal before this runs.
//! - [`detach`] / [`unpin_journaled`]: detach the link at once
//!   (`BPF_LINK_DETACH`) and remove the pin folder; the program and its maps
//!   go with their last reference. Teardown calls it for every journaled
//!   step, so `down` after `kill -9` leaves nothing attached or pinned.
//!
//! Pins: `/sys/fs/bpf/labctl/<lab>/<node>-<ifname>/{link,prog,maps/<name>}`,
//! and `/sys/fs/bpf/labctl/<lab>/shared/<name>` for the maps a lab shares
//! ([`pins`]). bpffs is mounted at /sys/fs/bpf first if it is not.

mod pins;

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use aya::programs::links::FdLink;
use aya::programs::{ProgramError, Xdp, XdpMode as AyaMode};
use aya::{Btf, Ebpf};

use crate::bpf::{self, BpfError};
use crate::model::layout::BPFFS;
use crate::model::xdp::CompileOptions;
use crate::model::{XdpMode, XdpObject};
use crate::plan::{Device, Plan, Step};
use crate::sys::bpffs;
use crate::sys::netns::{self, NetnsError};

#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    /// clang missing, a compile error (clang's own `file:line: error:`), an
    /// object aya cannot read, or the verifier's verdict.
    #[error("XDP program for {device}: {source}")]
    Bpf { device: String, source: BpfError },
    #[error("XDP program for {device}: {object} has {}", describe_missing(wanted, found))]
    NoProgram { device: String, object: PathBuf, wanted: Option<String>, found: Vec<String> },
    #[error("XDP program for {device}: {program} in {object} is not an XDP program (put it in SEC(\"xdp\"))")]
    NotXdp { device: String, program: String, object: PathBuf },
    #[error(
        "XDP program for {device}: {program} in {} is in SEC(\"{section}\"), an old-style section name that says the program, not its type; rename it SEC(\"xdp\")",
        object.display()
    )]
    OldStyleSection { device: String, program: String, section: String, object: PathBuf },
    #[error("XDP program for {device}: share_maps names {map:?}, but {} has no such map (its maps: {})", object.display(), maps.join(", "))]
    NoSuchSharedMap { device: String, map: String, object: PathBuf, maps: Vec<String> },
    #[error("{device}: the driver does not support native XDP; use mode = \"generic\" (or \"auto\")")]
    NativeUnsupported { device: String },
    #[error("{device} already has an XDP program attached; detach it first")]
    Busy { device: String },
    #[error("{device}: cannot attach the XDP program ({mode}): {message}")]
    Attach { device: String, mode: XdpMode, message: String },
    #[error("cannot pin {path}: {message}")]
    Pin { path: PathBuf, message: String },
    #[error("the BPF filesystem: cannot mount bpffs at {BPFFS}: {0} (try `mount -t bpf bpf {BPFFS}`)")]
    Bpffs(nix::errno::Errno),
    #[error("the BPF filesystem: {0}")]
    ScratchBpffs(pins::ScratchBpffsError),
    #[error(transparent)]
    Netns(#[from] NetnsError),
}

fn describe_missing(wanted: &Option<String>, found: &[String]) -> String {
    let list = if found.is_empty() { "none".to_string() } else { found.join(", ") };
    match wanted {
        Some(name) => {
            format!("no program named {name:?} (its XDP programs: {list}); set prog = \"...\" to one of them")
        }
        None if found.is_empty() => "no XDP program (a function in SEC(\"xdp\"))".to_string(),
        None => format!("several XDP programs ({list}); say which with prog = \"...\""),
    }
}

impl XdpError {
    /// A mistake in what the lab asked for (the C, the program name), not
    /// in the machine: `up` exits 2.
    pub fn is_user_error(&self) -> bool {
        match self {
            XdpError::Bpf { source, .. } => {
                matches!(source, BpfError::Compile { .. } | BpfError::Load { .. } | BpfError::Program { .. })
            }
            XdpError::NoProgram { .. }
            | XdpError::NotXdp { .. }
            | XdpError::OldStyleSection { .. }
            | XdpError::NoSuchSharedMap { .. } => true,
            _ => false,
        }
    }
}

/// What an [`Step::AttachXdp`] says, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct Attachment<'a> {
    pub device: &'a Device,
    pub object: &'a XdpObject,
    pub program: Option<&'a str>,
    pub mode: XdpMode,
    pub pins: &'a Path,
    pub compile: &'a CompileOptions,
    pub share_maps: &'a [String],
}

impl<'a> Attachment<'a> {
    pub fn of(step: &'a Step) -> Option<Attachment<'a>> {
        match step {
            Step::AttachXdp { device, object, program, mode, pins, compile, share_maps } => {
                Some(Attachment { device, object, program: program.as_deref(), mode: *mode, pins, compile, share_maps })
            }
            _ => None,
        }
    }

    /// The object's bytes as aya takes them, with the by-name and shared
    /// maps' pin paths; `prog` defaults to the object's only XDP program.
    fn open(&self) -> Result<Opened, XdpError> {
        let device = self.device.to_string();
        let bpf_error = |source| XdpError::Bpf { device: device.clone(), source };
        let object = object_file(self.object, self.compile).map_err(bpf_error)?;
        let prepared = bpf::sections::prepare(&object).map_err(bpf_error)?;
        let maps = bpf::sections::map_names(&prepared.bytes);
        if let Some(map) = self.share_maps.iter().find(|m| !maps.contains(m)) {
            return Err(XdpError::NoSuchSharedMap {
                device,
                map: map.clone(),
                object: self.object.path().to_path_buf(),
                maps,
            });
        }
        if let Some(old) = prepared.skipped.iter().find(|s| Some(s.program.as_str()) == self.program) {
            return Err(XdpError::OldStyleSection {
                device,
                program: old.program.clone(),
                section: old.section.clone(),
                object: self.object.path().to_path_buf(),
            });
        }
        let by_name = bpf::sections::pinned_by_name(&prepared.bytes);
        let map_pins = pins::map_paths(self.pins, &by_name, self.share_maps);
        Ok(Opened { prepared, map_pins })
    }
}

/// An attachment's object, read and ready for [`load`].
struct Opened {
    prepared: bpf::sections::Prepared,
    /// Maps aya pins as it creates them (or opens where already pinned).
    map_pins: Vec<(String, PathBuf)>,
}

impl Opened {
    fn create_pin_folders(&self) -> Result<(), XdpError> {
        for dir in self.map_pins.iter().filter_map(|(_, p)| p.parent()) {
            fs::create_dir_all(dir).map_err(pin_error(dir))?;
        }
        Ok(())
    }
}

/// Compiles every XDP source of the plan and has the kernel verify every
/// program once, before anything is created. Loading for the verifier is
/// not a change: the program is unloaded again when its file descriptor
/// closes, a moment later, and the maps aya pins as it creates them go to
/// a scratch bpffs that ends with the pass.
pub fn prepare(plan: &Plan) -> Result<(), XdpError> {
    let attachments: Vec<Attachment> = plan.steps.iter().filter_map(Attachment::of).collect();
    if attachments.is_empty() {
        return Ok(());
    }
    let mut checked = BTreeSet::new();
    let mut btf = None;
    for a in attachments {
        let device = a.device.to_string();
        let opened = a.open()?;
        if !checked.insert((opened.prepared.bytes.clone(), a.program.map(String::from))) {
            continue;
        }
        if btf.is_none() {
            btf = Some(bpf::kernel_btf().map_err(|source| XdpError::Bpf { device: device.clone(), source })?);
        }
        let btf = btf.as_ref().expect("set above");
        pins::in_scratch_bpffs(|| {
            opened.create_pin_folders()?;
            load(&a, &opened, btf).map(drop)
        })
        .map_err(XdpError::ScratchBpffs)??;
    }
    Ok(())
}

/// The object file of a program: compiled (or taken from the cache) for C.
pub fn object_file(object: &XdpObject, options: &CompileOptions) -> Result<PathBuf, BpfError> {
    match object {
        XdpObject::Source(src) => bpf::compile_with(src, &options.include, &options.defines),
        XdpObject::Object(path) => Ok(path.clone()),
    }
}

/// Loads the object and the XDP program in it (the only one, or the one
/// asked for) into the kernel; returns the loaded object and the program's name.
fn load(a: &Attachment<'_>, opened: &Opened, btf: &Btf) -> Result<(Ebpf, String), XdpError> {
    let device = a.device.to_string();
    let (device, object, program) = (device.as_str(), a.object.path(), a.program);
    let bpf_error = |source| XdpError::Bpf { device: device.to_string(), source };
    let mut ebpf = bpf::load_prepared(object, &opened.prepared, btf, |loader| {
        for (name, path) in &opened.map_pins {
            loader.map_pin_path(name, path.as_path());
        }
    })
    .map_err(bpf_error)?;
    let xdp_names: Vec<String> = ebpf
        .programs()
        .filter(|(_, p)| matches!(p, aya::programs::Program::Xdp(_)))
        .map(|(name, _)| name.to_string())
        .collect();
    let name = match program {
        Some(name) if ebpf.program(name).is_some() => name.to_string(),
        None if xdp_names.len() == 1 => xdp_names[0].clone(),
        // Its only program is in an old-style section: say so, not "no program".
        None if xdp_names.is_empty() && !opened.prepared.skipped.is_empty() => {
            let old = &opened.prepared.skipped[0];
            return Err(XdpError::OldStyleSection {
                device: device.to_string(),
                program: old.program.clone(),
                section: old.section.clone(),
                object: object.to_path_buf(),
            });
        }
        _ => {
            return Err(XdpError::NoProgram {
                device: device.to_string(),
                object: object.to_path_buf(),
                wanted: program.map(String::from),
                found: xdp_names,
            })
        }
    };
    let xdp: &mut Xdp = ebpf.program_mut(&name).expect("found above").try_into().map_err(|_| XdpError::NotXdp {
        device: device.to_string(),
        program: name.clone(),
        object: object.to_path_buf(),
    })?;
    xdp.load().map_err(|e| bpf_error(bpf::program_error(&format!("{name} of {}", object.display()), e)))?;
    Ok((ebpf, name))
}

/// What [`attach`] left in the kernel.
#[derive(Debug, Clone)]
pub struct Attached {
    pub program: String,
    pub program_id: u32,
}

/// Loads the program, pins its maps and itself, attaches it to the device
/// inside the node's namespace and pins the link. On failure nothing stays
/// attached; what was pinned is removed by teardown (the step is journaled).
pub fn attach(a: Attachment<'_>, netns: &File) -> Result<Attached, XdpError> {
    let device = a.device.to_string();
    ensure_bpffs()?;
    let opened = a.open()?;
    let btf = bpf::kernel_btf().map_err(|source| XdpError::Bpf { device: device.clone(), source })?;
    let maps = a.pins.join("maps");
    fs::create_dir_all(&maps).map_err(pin_error(&maps))?;
    opened.create_pin_folders()?;
    netns::run_in(netns, || {
        let (mut ebpf, name) = load(&a, &opened, &btf)?;
        for (map_name, map) in ebpf.maps() {
            // .bss, .data, .rodata: the program's globals, kept alive by
            // the program; by-name and shared maps: pinned by aya already.
            if map_name.starts_with('.') || opened.map_pins.iter().any(|(n, _)| n == map_name) {
                continue;
            }
            let path = maps.join(map_name);
            map.pin(&path).map_err(|e| XdpError::Pin { path, message: e.to_string() })?;
        }
        let xdp: &mut Xdp = ebpf.program_mut(&name).expect("loaded").try_into().expect("an XDP program");
        let prog_pin = a.pins.join("prog");
        xdp.pin(&prog_pin).map_err(|e| XdpError::Pin { path: prog_pin, message: e.to_string() })?;
        let program_id = xdp.info().map(|i| i.id()).unwrap_or(0);
        let link_id = xdp.attach(&a.device.ifname, aya_mode(a.mode)).map_err(|e| attach_error(&device, a.mode, e))?;
        let link = xdp.take_link(link_id).map_err(|e| attach_error(&device, a.mode, e))?;
        let link_pin = a.pins.join("link");
        // Dropping an unpinned link detaches it: on any error below, nothing stays attached.
        let link: FdLink = link.try_into().map_err(|e: aya::programs::links::LinkError| XdpError::Pin {
            path: link_pin.clone(),
            message: format!(
                "the kernel attached XDP through netlink, not as a BPF link ({e}); labctl needs Linux 5.9 or later"
            ),
        })?;
        link.pin(&link_pin).map_err(|e| XdpError::Pin { path: link_pin, message: e.to_string() })?;
        Ok(Attached { program: name, program_id })
    })?
}

fn aya_mode(mode: XdpMode) -> AyaMode {
    match mode {
        XdpMode::Native => AyaMode::Driver,
        XdpMode::Generic => AyaMode::Skb,
        XdpMode::Auto => AyaMode::Default,
    }
}

fn attach_error(device: &str, mode: XdpMode, error: ProgramError) -> XdpError {
    let errno = match &error {
        ProgramError::SyscallError(e) => e.io_error.raw_os_error(),
        _ => None,
    };
    match errno {
        Some(libc::EOPNOTSUPP) if mode == XdpMode::Native => XdpError::NativeUnsupported { device: device.into() },
        Some(libc::EBUSY) | Some(libc::EEXIST) => XdpError::Busy { device: device.into() },
        _ => XdpError::Attach { device: device.into(), mode, message: crate::diag::error_chain(&error) },
    }
}

fn pin_error(path: &Path) -> impl FnOnce(io::Error) -> XdpError + '_ {
    move |e| XdpError::Pin { path: path.to_path_buf(), message: e.to_string() }
}

/// Mounts the BPF filesystem at /sys/fs/bpf unless it is there already.
pub fn ensure_bpffs() -> Result<(), XdpError> {
    bpffs::ensure_mounted().map_err(XdpError::Bpffs)
}

/// Detaches the link pinned in `pins` at once and removes the folder; true
/// if there was anything. A link whose device is already gone is fine.
pub fn detach(pins: &Path) -> io::Result<bool> {
    if !pins.exists() {
        return Ok(false);
    }
    match bpf::maps::open_pinned(&pins.join("link")) {
        Ok(link) => match bpf::maps::detach_link(std::os::fd::AsFd::as_fd(&link)) {
            // EINVAL: already detached (its device was removed).
            Ok(()) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOLINK)) => {}
            Err(e) => return Err(e),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    match fs::remove_dir_all(pins) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // The lab's folder and labctl's, once empty.
    for dir in pins.ancestors().skip(1).take(2) {
        if fs::remove_dir(dir).is_err() {
            break;
        }
    }
    Ok(true)
}

/// Teardown: detaches and unpins every XDP program the journal names, then
/// the maps the lab's programs shared.
pub fn unpin_journaled(journal: &[Step]) -> Result<usize, NetnsError> {
    let mut removed = 0;
    let mut seen = BTreeSet::new();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| NetnsError::Io { what: "cannot remove XDP pins", path, source }
    };
    for a in journal.iter().filter_map(Attachment::of) {
        if !seen.insert(a.pins) {
            continue;
        }
        if detach(a.pins).map_err(io(a.pins))? {
            removed += 1;
        }
    }
    for shared in seen.iter().map(|pins| pins::shared_dir(pins)).collect::<BTreeSet<_>>() {
        if detach(&shared).map_err(io(&shared))? {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_program_messages_say_what_to_do() {
        let found = vec!["xdp_a".to_string(), "xdp_b".to_string()];
        assert!(describe_missing(&None, &found).contains("say which with prog"));
        assert!(describe_missing(&Some("x".into()), &found).contains("its XDP programs: xdp_a, xdp_b"));
        assert!(describe_missing(&None, &[]).contains("no XDP program"));
    }

    #[test]
    fn native_unsupported_suggests_generic() {
        let error = ProgramError::SyscallError(aya::sys::SyscallError {
            call: "bpf_link_create",
            io_error: io::Error::from_raw_os_error(libc::EOPNOTSUPP),
        });
        let e = attach_error("r1:eth0", XdpMode::Native, error);
        assert!(e.to_string().contains("use mode = \"generic\""), "{e}");
    }
}
