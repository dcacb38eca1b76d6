//! Any BPF map, read and written as bytes: key and value sizes come from the
//! kernel, so a map of a program compiled from a learner's C is readable
//! without knowing its types at build time. aya opens the map (by pin path
//! or id) and says what it is; the element syscalls are made here, because
//! aya's typed maps need the key and value types at compile time.
//!
//! Also [`detach_link`]: `BPF_LINK_DETACH`, which detaches a link at once
//! even while pins or other file descriptors still refer to it.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;

use aya::maps::{MapData, MapType};

use super::{BpfError, Result};

const BPF_MAP_LOOKUP_ELEM: libc::c_int = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_int = 2;
const BPF_MAP_DELETE_ELEM: libc::c_int = 3;
const BPF_MAP_GET_NEXT_KEY: libc::c_int = 4;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_int = 15;
const BPF_BTF_GET_FD_BY_ID: libc::c_int = 19;
const BPF_LINK_DETACH: libc::c_int = 34;

/// `union bpf_attr` for the element commands (map_fd, key, value/next_key, flags).
#[repr(C)]
#[derive(Default)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

fn bpf(cmd: libc::c_int, attr: &mut ElemAttr) -> io::Result<()> {
    // SAFETY: attr is a valid bpf_attr prefix for cmd, and the key and
    // value pointers in it point to buffers of the map's sizes.
    unsafe { sys_bpf(cmd, attr) }.map(drop)
}

/// The bpf(2) system call with `attr`; returns what it returns (an fd for some commands).
///
/// # Safety
/// `attr` must be a valid `bpf_attr` prefix for `cmd`, and every pointer in
/// it must point to a buffer of the size it says.
unsafe fn sys_bpf<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<i64> {
    // SAFETY: as the caller promises.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// `BPF_OBJ_GET_INFO_BY_FD`: the kernel fills `info` (up to its size).
fn object_info(fd: BorrowedFd<'_>, info: &mut [u8]) -> io::Result<()> {
    #[repr(C)]
    struct InfoAttr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    let mut attr =
        InfoAttr { bpf_fd: fd.as_raw_fd() as u32, info_len: info.len() as u32, info: info.as_mut_ptr() as u64 };
    // SAFETY: a valid bpf_attr for the command; info points to info_len bytes.
    unsafe { sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }.map(drop)
}

/// The raw BTF blob with this id (`BPF_BTF_GET_FD_BY_ID`, then its info twice:
/// once for the size, once for the bytes).
fn btf_blob(id: u32) -> io::Result<Vec<u8>> {
    use std::os::fd::FromRawFd;
    let mut attr = [id, 0, 0, 0];
    // SAFETY: a valid bpf_attr for BPF_BTF_GET_FD_BY_ID (btf_id first).
    let fd = unsafe { sys_bpf(BPF_BTF_GET_FD_BY_ID, &mut attr) }?;
    // SAFETY: the kernel returned a new file descriptor that we own.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) };
    // struct bpf_btf_info: btf (u64 pointer), btf_size (u32), id, name, name_len, kernel_btf.
    let mut info = [0u8; 32];
    object_info(fd.as_fd(), &mut info)?;
    let size = u32::from_le_bytes([info[8], info[9], info[10], info[11]]) as usize;
    let mut blob = vec![0u8; size];
    info = [0u8; 32];
    info[0..8].copy_from_slice(&(blob.as_mut_ptr() as u64).to_ne_bytes());
    info[8..12].copy_from_slice(&(size as u32).to_ne_bytes());
    object_info(fd.as_fd(), &mut info)?;
    Ok(blob)
}

/// The types of a map's keys and values, from the BTF its program was loaded with.
#[derive(Debug, Clone)]
pub struct MapTypes {
    pub types: super::btf::Types,
    pub key: u32,
    pub value: u32,
}

/// A map opened for reading and writing raw elements.
pub struct RawMap {
    map: MapData,
    pub name: String,
    pub map_type: Option<MapType>,
    pub key_size: usize,
    pub value_size: usize,
    pub max_entries: u32,
    pub id: u32,
    /// Key and value types, for maps created with BTF.
    pub types: Option<MapTypes>,
}

/// One element; per-CPU maps have one value per possible CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub key: Vec<u8>,
    pub values: Vec<Vec<u8>>,
}

impl RawMap {
    pub fn from_pin(path: &Path) -> Result<RawMap> {
        let shown = path.display().to_string();
        let map = MapData::from_pin(path).map_err(|e| BpfError::Map { map: shown.clone(), message: e.to_string() })?;
        RawMap::new(map, shown)
    }

    pub fn from_id(id: u32) -> Result<RawMap> {
        let map =
            MapData::from_id(id).map_err(|e| BpfError::Map { map: format!("id {id}"), message: e.to_string() })?;
        RawMap::new(map, format!("id {id}"))
    }

    fn new(map: MapData, shown: String) -> Result<RawMap> {
        let info = map.info().map_err(|e| BpfError::Map { map: shown, message: e.to_string() })?;
        Ok(RawMap {
            name: info.name_as_str().unwrap_or("").to_string(),
            map_type: info.map_type().ok(),
            key_size: info.key_size() as usize,
            value_size: info.value_size() as usize,
            max_entries: info.max_entries(),
            id: info.id(),
            types: RawMap::read_types(&map),
            map,
        })
    }

    /// Does each CPU have its own value?
    pub fn per_cpu(&self) -> bool {
        matches!(self.map_type, Some(MapType::PerCpuArray | MapType::PerCpuHash | MapType::LruPerCpuHash))
    }

    /// A name for the map type as bpftool prints it.
    pub fn type_name(&self) -> &'static str {
        match self.map_type {
            Some(MapType::Array) => "array",
            Some(MapType::PerCpuArray) => "percpu_array",
            Some(MapType::Hash) => "hash",
            Some(MapType::PerCpuHash) => "percpu_hash",
            Some(MapType::LruHash) => "lru_hash",
            Some(MapType::LruPerCpuHash) => "lru_percpu_hash",
            Some(MapType::DevMap) => "devmap",
            Some(MapType::DevMapHash) => "devmap_hash",
            Some(MapType::CpuMap) => "cpumap",
            Some(MapType::XskMap) => "xskmap",
            Some(MapType::ProgramArray) => "prog_array",
            Some(MapType::RingBuf) => "ringbuf",
            Some(MapType::PerfEventArray) => "perf_event_array",
            Some(MapType::LpmTrie) => "lpm_trie",
            _ => "other",
        }
    }

    /// Can its values be read back (devmaps, cpumaps and counters can;
    /// socket and program maps, ring buffers cannot)?
    pub fn readable(&self) -> bool {
        matches!(
            self.map_type,
            Some(
                MapType::Array
                    | MapType::PerCpuArray
                    | MapType::Hash
                    | MapType::PerCpuHash
                    | MapType::LruHash
                    | MapType::LruPerCpuHash
                    | MapType::DevMap
                    | MapType::DevMapHash
                    | MapType::CpuMap
                    | MapType::LpmTrie
            )
        )
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.map.fd().as_fd()
    }

    /// Its key and value types, if it was created with BTF.
    fn read_types(map: &MapData) -> Option<MapTypes> {
        // struct bpf_map_info: btf_id, btf_key_type_id, btf_value_type_id at 64, 68, 72.
        let mut info = [0u8; 88];
        object_info(map.fd().as_fd(), &mut info).ok()?;
        let word = |at: usize| u32::from_ne_bytes([info[at], info[at + 1], info[at + 2], info[at + 3]]);
        let (btf_id, key, value) = (word(64), word(68), word(72));
        if btf_id == 0 || value == 0 {
            return None;
        }
        let types = super::btf::Types::parse(&btf_blob(btf_id).ok()?).ok()?;
        Some(MapTypes { types, key, value })
    }

    fn slot(&self) -> usize {
        if self.per_cpu() {
            self.value_size.div_ceil(8) * 8
        } else {
            self.value_size
        }
    }

    fn value_buffer_len(&self) -> Result<usize> {
        Ok(if self.per_cpu() { self.slot() * possible_cpus()? } else { self.value_size })
    }

    fn error(&self, what: &str) -> impl FnOnce(io::Error) -> BpfError + '_ {
        let what = what.to_string();
        move |e| BpfError::Map { map: self.name.clone(), message: format!("{what}: {e}") }
    }

    /// The value of `key` (one per CPU for per-CPU maps), or `None`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<Vec<u8>>>> {
        self.check_key(key)?;
        let mut value = vec![0u8; self.value_buffer_len()?];
        let mut attr = ElemAttr {
            map_fd: self.fd().as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            value: value.as_mut_ptr() as u64,
            ..ElemAttr::default()
        };
        match bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) {
            Ok(()) => Ok(Some(self.split(&value))),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(self.error("lookup")(e)),
        }
    }

    fn split(&self, value: &[u8]) -> Vec<Vec<u8>> {
        if self.per_cpu() {
            value.chunks(self.slot()).map(|c| c[..self.value_size].to_vec()).collect()
        } else {
            vec![value.to_vec()]
        }
    }

    /// Every element, in the kernel's order (arrays: by index).
    pub fn elements(&self) -> Result<Vec<Element>> {
        let mut all = Vec::new();
        let mut key: Option<Vec<u8>> = None;
        let limit = self.max_entries as usize + 1;
        while all.len() < limit {
            let mut next = vec![0u8; self.key_size];
            let mut attr = ElemAttr {
                map_fd: self.fd().as_raw_fd() as u32,
                key: key.as_ref().map_or(0, |k| k.as_ptr() as u64),
                value: next.as_mut_ptr() as u64,
                ..ElemAttr::default()
            };
            match bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => break,
                Err(e) => return Err(self.error("iterate")(e)),
            }
            // An element deleted between the two calls is skipped.
            if let Some(values) = self.get(&next)? {
                all.push(Element { key: next.clone(), values });
            }
            key = Some(next);
        }
        Ok(all)
    }

    /// Sets `key` to `value` (per-CPU maps: the same value on every CPU).
    pub fn set(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.check_key(key)?;
        if value.len() != self.value_size {
            return Err(BpfError::Map {
                map: self.name.clone(),
                message: format!("the value is {} bytes, the map's values are {}", value.len(), self.value_size),
            });
        }
        let mut buffer = Vec::new();
        if self.per_cpu() {
            for _ in 0..possible_cpus()? {
                buffer.extend_from_slice(value);
                buffer.resize(buffer.len() + self.slot() - self.value_size, 0);
            }
        } else {
            buffer.extend_from_slice(value);
        }
        let mut attr = ElemAttr {
            map_fd: self.fd().as_raw_fd() as u32,
            key: key.as_ptr() as u64,
            value: buffer.as_mut_ptr() as u64,
            flags: 0, // BPF_ANY
            ..ElemAttr::default()
        };
        bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map_err(self.error("update"))
    }

    /// Removes `key`; true if it was there. Arrays cannot delete: their
    /// entry is set to zero instead.
    pub fn delete(&self, key: &[u8]) -> Result<bool> {
        self.check_key(key)?;
        let mut attr =
            ElemAttr { map_fd: self.fd().as_raw_fd() as u32, key: key.as_ptr() as u64, ..ElemAttr::default() };
        match bpf(BPF_MAP_DELETE_ELEM, &mut attr) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e)
                if e.raw_os_error() == Some(libc::EINVAL)
                    && matches!(self.map_type, Some(MapType::Array | MapType::PerCpuArray)) =>
            {
                let existed = self.get(key)?.is_some();
                self.set(key, &vec![0; self.value_size])?;
                Ok(existed)
            }
            Err(e) => Err(self.error("delete")(e)),
        }
    }

    fn check_key(&self, key: &[u8]) -> Result<()> {
        if key.len() == self.key_size {
            return Ok(());
        }
        Err(BpfError::Map {
            map: self.name.clone(),
            message: format!("the key is {} bytes, the map's keys are {}", key.len(), self.key_size),
        })
    }
}

/// Number of possible CPUs (`/sys/devices/system/cpu/possible`): per-CPU
/// maps hold one value for each.
pub fn possible_cpus() -> Result<usize> {
    aya::util::nr_cpus().map_err(|(path, e)| BpfError::Io { what: format!("cannot read {path}"), source: e })
}

/// Detaches the BPF link behind `fd` now (`BPF_LINK_DETACH`, Linux 5.9):
/// the program leaves its hook even if the link is still pinned or open.
pub fn detach_link(fd: BorrowedFd<'_>) -> io::Result<()> {
    #[repr(C)]
    struct LinkDetachAttr {
        link_fd: u32,
        _rest: [u32; 7],
    }
    let mut attr = LinkDetachAttr { link_fd: fd.as_raw_fd() as u32, _rest: [0; 7] };
    // SAFETY: a valid bpf_attr for BPF_LINK_DETACH; the kernel reads link_fd only.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_LINK_DETACH,
            &mut attr as *mut LinkDetachAttr,
            std::mem::size_of::<LinkDetachAttr>(),
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Little-endian integer of a 1, 2, 4 or 8 byte value, as BPF programs on
/// x86 and arm64 store their counters.
pub fn as_integer(bytes: &[u8]) -> Option<u64> {
    match bytes.len() {
        1 | 2 | 4 | 8 => {
            let mut b = [0u8; 8];
            b[..bytes.len()].copy_from_slice(bytes);
            Some(u64::from_le_bytes(b))
        }
        _ => None,
    }
}

/// Opens a pinned BPF object (`BPF_OBJ_GET`): a link, program or map.
pub fn open_pinned(path: &Path) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    #[repr(C)]
    struct ObjGetAttr {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
        path_fd: i32,
        _rest: [u32; 5],
    }
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let mut attr = ObjGetAttr { pathname: c_path.as_ptr() as u64, bpf_fd: 0, file_flags: 0, path_fd: 0, _rest: [0; 5] };
    const BPF_OBJ_GET: libc::c_int = 7;
    // SAFETY: a valid bpf_attr for BPF_OBJ_GET; pathname outlives the call.
    let fd = unsafe {
        libc::syscall(libc::SYS_bpf, BPF_OBJ_GET, &mut attr as *mut ObjGetAttr, std::mem::size_of::<ObjGetAttr>())
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new file descriptor that we own.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}
