//! Just enough of a BTF reader for what labctl shows: an enum's names and
//! values from the running kernel (`/sys/kernel/btf/vmlinux`, e.g. `enum
//! skb_drop_reason`, whose members change from one kernel version to the
//! next), and the types of a map's keys and values from the BTF its program
//! was loaded with (struct fields by name, enum keys by name).
//!
//! Written here because aya-obj 0.3, which parses BTF for aya, keeps its
//! types' members and names crate-private.

use std::collections::BTreeMap;

use super::{BpfError, Result};

const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";
const BTF_MAGIC: u16 = 0xeb9f;
const KIND_INT: u32 = 1;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

/// The members of `enum <name>` in the running kernel's BTF, by value.
pub fn kernel_enum(name: &str) -> Result<BTreeMap<u64, String>> {
    let data = std::fs::read(KERNEL_BTF).map_err(BpfError::io(format!("cannot read {KERNEL_BTF}")))?;
    enum_values(&data, name)?.ok_or_else(|| BpfError::Btf(format!("{KERNEL_BTF} has no enum {name}")))
}

/// The members of `enum <name>` in a BTF blob, or `None` if it has none.
pub fn enum_values(data: &[u8], name: &str) -> Result<Option<BTreeMap<u64, String>>> {
    let blob = Blob::new(data)?;
    for record in blob.records()? {
        if matches!(record.kind, KIND_ENUM | KIND_ENUM64) && blob.string(record.name_off) == name {
            return Ok(Some(blob.enum_members(&record)?));
        }
    }
    Ok(None)
}

/// A type, as far as labctl decodes values of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Type {
    /// An integer of `size` bytes.
    Int {
        size: u32,
    },
    Struct {
        size: u32,
        members: Vec<Member>,
    },
    Enum {
        size: u32,
        names: BTreeMap<u64, String>,
    },
    Array {
        element: u32,
        len: u32,
    },
    /// A typedef or qualifier: the type it names.
    Alias(u32),
    /// Anything else (pointers, functions, unions, ...): shown as bytes.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub type_id: u32,
    /// Byte offset in the struct; `None` for a bitfield.
    pub offset: Option<u32>,
}

/// Every type of a BTF blob, by id (1-based; 0 is void).
#[derive(Debug, Clone, Default)]
pub struct Types(Vec<Type>);

impl Types {
    pub fn parse(data: &[u8]) -> Result<Types> {
        let blob = Blob::new(data)?;
        let records = blob.records()?;
        records.iter().map(|r| blob.to_type(r)).collect::<Result<Vec<Type>>>().map(Types)
    }

    /// The type behind `id`, through typedefs and qualifiers.
    pub fn resolve(&self, mut id: u32) -> Option<&Type> {
        for _ in 0..32 {
            match self.0.get(id.checked_sub(1)? as usize)? {
                Type::Alias(to) => id = *to,
                other => return Some(other),
            }
        }
        None
    }

    /// The size in bytes of a value of type `id`.
    pub fn size_of(&self, id: u32) -> Option<u32> {
        match self.resolve(id)? {
            Type::Int { size } | Type::Struct { size, .. } | Type::Enum { size, .. } => Some(*size),
            Type::Array { element, len } => Some(self.size_of(*element)? * len),
            Type::Alias(_) | Type::Other => None,
        }
    }
}

/// A record of the type section: its kind, name and where its body starts.
struct Record {
    kind: u32,
    name_off: u32,
    info: u32,
    size_or_type: u32,
    body: usize,
}

impl Record {
    fn vlen(&self) -> usize {
        (self.info & 0xffff) as usize
    }
}

struct Blob<'a> {
    data: &'a [u8],
    types: std::ops::Range<usize>,
    strings: &'a [u8],
}

fn bad(what: &str) -> BpfError {
    BpfError::Btf(format!("malformed BTF: {what}"))
}

impl<'a> Blob<'a> {
    fn new(data: &'a [u8]) -> Result<Blob<'a>> {
        let blob = Blob { data, types: 0..0, strings: &[] };
        if data.get(0..2).map(|b| u16::from_le_bytes([b[0], b[1]])) != Some(BTF_MAGIC) {
            return Err(bad("bad magic (or not little-endian)"));
        }
        let field = |i: usize| blob.u32_at(4 + 4 * i).map(|v| v as usize);
        let (hdr_len, type_off, type_len, str_off, str_len) = (field(0)?, field(1)?, field(2)?, field(3)?, field(4)?);
        let strings = data.get(hdr_len + str_off..hdr_len + str_off + str_len).ok_or_else(|| bad("string section"))?;
        Ok(Blob { data, types: hdr_len + type_off..hdr_len + type_off + type_len, strings })
    }

    fn u32_at(&self, off: usize) -> Result<u32> {
        self.data.get(off..off + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).ok_or_else(|| bad("short"))
    }

    fn string(&self, off: u32) -> &'a str {
        let s = self.strings.get(off as usize..).unwrap_or(&[]);
        let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
        std::str::from_utf8(&s[..end]).unwrap_or("")
    }

    /// Every type record in order: the n-th has type id n + 1.
    fn records(&self) -> Result<Vec<Record>> {
        let mut all = Vec::new();
        let mut off = self.types.start;
        while off + 12 <= self.types.end {
            let info = self.u32_at(off + 4)?;
            let record = Record {
                kind: (info >> 24) & 0x1f,
                name_off: self.u32_at(off)?,
                info,
                size_or_type: self.u32_at(off + 8)?,
                body: off + 12,
            };
            let vlen = record.vlen();
            let extra = match record.kind {
                1 | 14 | 17 => 4,             // int, var, decl_tag
                3 => 12,                      // array
                4 | 5 | 15 | 19 => 12 * vlen, // struct, union, datasec, enum64
                6 | 13 => 8 * vlen,           // enum, func_proto
                2 | 7..=12 | 16 | 18 => 0,
                other => return Err(bad(&format!("unknown kind {other}"))),
            };
            off = record.body + extra;
            all.push(record);
        }
        Ok(all)
    }

    fn enum_members(&self, record: &Record) -> Result<BTreeMap<u64, String>> {
        let signed = record.info >> 31 == 1;
        let mut members = BTreeMap::new();
        for i in 0..record.vlen() {
            let (m, value) = if record.kind == KIND_ENUM {
                let m = record.body + 8 * i;
                let v = self.u32_at(m + 4)?;
                (m, if signed { v as i32 as i64 as u64 } else { v as u64 })
            } else {
                let m = record.body + 12 * i;
                (m, (self.u32_at(m + 8)? as u64) << 32 | self.u32_at(m + 4)? as u64)
            };
            members.insert(value, self.string(self.u32_at(m)?).to_string());
        }
        Ok(members)
    }

    fn to_type(&self, r: &Record) -> Result<Type> {
        Ok(match r.kind {
            KIND_INT => Type::Int { size: r.size_or_type },
            KIND_ENUM | KIND_ENUM64 => Type::Enum { size: r.size_or_type, names: self.enum_members(r)? },
            KIND_STRUCT => {
                let bitfields = r.info >> 31 == 1;
                let mut members = Vec::new();
                for i in 0..r.vlen() {
                    let m = r.body + 12 * i;
                    let offset = self.u32_at(m + 8)?;
                    // With kind_flag the top 8 bits are a bitfield's size.
                    let (bits, size) = if bitfields { (offset & 0xff_ffff, offset >> 24) } else { (offset, 0) };
                    members.push(Member {
                        name: self.string(self.u32_at(m)?).to_string(),
                        type_id: self.u32_at(m + 4)?,
                        offset: (size == 0 && bits % 8 == 0).then_some(bits / 8),
                    });
                }
                Type::Struct { size: r.size_or_type, members }
            }
            KIND_ARRAY => Type::Array { element: self.u32_at(r.body)?, len: self.u32_at(r.body + 8)? },
            KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => Type::Alias(r.size_or_type),
            KIND_UNION => Type::Other,
            _ => Type::Other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob of `types` (u32 words) and `strings`.
    fn blob(types: &[u32], strings: &[u8]) -> Vec<u8> {
        let types: Vec<u8> = types.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut data = Vec::new();
        data.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        data.extend_from_slice(&[1, 0]);
        for v in [24u32, 0, types.len() as u32, types.len() as u32, strings.len() as u32] {
            data.extend_from_slice(&v.to_le_bytes());
        }
        data.extend_from_slice(&types);
        data.extend_from_slice(strings);
        data
    }

    /// `enum e { A = 0, B = 7 }`.
    fn enum_blob() -> Vec<u8> {
        blob(&[1, (KIND_ENUM << 24) | 2, 4, 3, 0, 5, 7], b"\0e\0A\0B\0")
    }

    #[test]
    fn reads_an_enum() {
        let values = enum_values(&enum_blob(), "e").unwrap().unwrap();
        assert_eq!(values, BTreeMap::from([(0, "A".to_string()), (7, "B".to_string())]));
        assert!(enum_values(&enum_blob(), "other").unwrap().is_none());
    }

    #[test]
    fn rejects_garbage() {
        assert!(enum_values(b"not btf at all", "e").is_err());
    }

    #[test]
    fn reads_a_struct_through_a_typedef() {
        // 1: u64 (int, 8 bytes); 2: typedef __u64 -> 1;
        // 3: struct datarec { __u64 rx_packets; __u64 rx_bytes; }
        let strings = b"\0u64\0__u64\0datarec\0rx_packets\0rx_bytes\0";
        let types =
            [1, KIND_INT << 24, 8, 64, 5, KIND_TYPEDEF << 24, 1, 11, (KIND_STRUCT << 24) | 2, 16, 19, 2, 0, 30, 2, 64];
        let t = Types::parse(&blob(&types, strings)).unwrap();
        let Some(Type::Struct { size: 16, members }) = t.resolve(3) else { panic!("{t:?}") };
        assert_eq!(members[1], Member { name: "rx_bytes".into(), type_id: 2, offset: Some(8) });
        assert_eq!(t.resolve(2), Some(&Type::Int { size: 8 }));
        assert_eq!(t.size_of(3), Some(16));
    }
}
