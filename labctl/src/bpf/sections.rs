//! An object file as libbpf-era loaders take it: programs in section names
//! aya does not know (`SEC("xdp_drop_all")`, the old style, where the name
//! said the program and the loader guessed its type) are left out instead
//! of failing the whole object, and by-name pinned maps are listed so the
//! loader can put their pins where the lab wants them.
//!
//! aya parses every executable section as a program and refuses an object
//! with one it cannot type. Clearing such a section's `SHF_EXECINSTR` flag
//! in a copy of the file makes aya skip it like any data section: the other
//! programs load as compiled.

use std::path::Path;

use object::elf::SHF_EXECINSTR;
use object::read::elf::{ElfFile64, SectionHeader};
use object::{Endianness, Object, ObjectSection, ObjectSymbol, SectionKind};

use super::{BpfError, Result};

/// A program aya cannot load as its section is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub program: String,
    pub section: String,
}

/// An object file's bytes, ready for aya, and what was left out.
#[derive(Debug)]
pub struct Prepared {
    pub bytes: Vec<u8>,
    pub skipped: Vec<Skipped>,
}

/// Reads `path` and leaves out the programs aya cannot type.
pub fn prepare(path: &Path) -> Result<Prepared> {
    let bytes = std::fs::read(path).map_err(BpfError::io(format!("cannot read {}", path.display())))?;
    prepare_bytes(bytes).map_err(|message| BpfError::Load { object: path.to_path_buf(), message })
}

fn prepare_bytes(mut bytes: Vec<u8>) -> std::result::Result<Prepared, String> {
    let mut flags_at = Vec::new();
    let mut skipped = Vec::new();
    {
        let file = ElfFile64::<Endianness>::parse(&*bytes).map_err(|e| format!("not a BPF object file: {e}"))?;
        let base = bytes.as_ptr() as usize;
        for section in file.sections() {
            let Ok(name) = section.name() else { continue };
            if !is_untyped_program(name, section.kind(), section.size()) {
                continue;
            }
            let header = section.elf_section_header();
            // sh_flags sits 8 bytes into an ELF64 section header.
            flags_at.push((header as *const _ as usize - base + 8, header.sh_flags(file.endian())));
            skipped.extend(
                file.symbols()
                    .filter(|s| s.section_index() == Some(section.index()) && s.is_global())
                    .map(|s| Skipped { program: s.name().unwrap_or("?").to_string(), section: name.to_string() }),
            );
        }
    }
    let little = bytes.get(5) == Some(&1);
    for (offset, flags) in flags_at {
        let cleared = flags & !u64::from(SHF_EXECINSTR);
        let encoded = if little { cleared.to_le_bytes() } else { cleared.to_be_bytes() };
        bytes[offset..offset + 8].copy_from_slice(&encoded);
    }
    Ok(Prepared { bytes, skipped })
}

/// Would aya take this section for a program and fail to type it?
fn is_untyped_program(name: &str, kind: SectionKind, size: u64) -> bool {
    // Sections aya reads for what they are, whatever their flags.
    const KNOWN: &[&str] = &[".", "license", "version", "maps"];
    kind == SectionKind::Text
        && size > 0
        && !KNOWN.iter().any(|k| name.starts_with(k))
        && name.parse::<aya_obj::ProgramSection>().is_err()
}

/// The maps of an object that ask to be pinned by name
/// (`__uint(pinning, LIBBPF_PIN_BY_NAME)`).
pub fn pinned_by_name(bytes: &[u8]) -> Vec<String> {
    let Ok(object) = aya_obj::Object::parse(bytes) else { return Vec::new() };
    let mut names: Vec<String> = object
        .maps
        .iter()
        .filter(|(_, m)| m.pinning() == aya_obj::maps::PinningType::ByName)
        .map(|(n, _)| n.clone())
        .collect();
    names.sort();
    names
}

/// The names of an object's maps, without those of its globals (`.bss`, ...).
pub fn map_names(bytes: &[u8]) -> Vec<String> {
    let Ok(object) = aya_obj::Object::parse(bytes) else { return Vec::new() };
    let mut names: Vec<String> = object.maps.keys().filter(|n| !n.starts_with('.')).cloned().collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_style_program_sections_are_the_untyped_ones() {
        assert!(is_untyped_program("xdp_drop_all", SectionKind::Text, 8));
        assert!(!is_untyped_program("xdp", SectionKind::Text, 8));
        assert!(!is_untyped_program("xdp.frags", SectionKind::Text, 8));
        assert!(!is_untyped_program("tracepoint/skb/kfree_skb", SectionKind::Text, 8));
        assert!(!is_untyped_program(".text", SectionKind::Text, 8));
        assert!(!is_untyped_program("xdp_drop_all", SectionKind::Data, 8));
        assert!(!is_untyped_program("xdp_drop_all", SectionKind::Text, 0));
    }

    #[test]
    fn garbage_is_not_an_object() {
        assert!(prepare_bytes(b"not an ELF file".to_vec()).is_err());
    }
}
