//! Just enough of a BTF reader to get an enum's names and values from the
//! running kernel (`/sys/kernel/btf/vmlinux`), e.g. `enum skb_drop_reason`,
//! whose members change from one kernel version to the next.

use std::collections::BTreeMap;

use super::{BpfError, Result};

const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";
const BTF_MAGIC: u16 = 0xeb9f;
const KIND_ENUM: u32 = 6;
const KIND_ENUM64: u32 = 19;

/// The members of `enum <name>` in the running kernel's BTF, by value.
pub fn kernel_enum(name: &str) -> Result<BTreeMap<u64, String>> {
    let data = std::fs::read(KERNEL_BTF).map_err(BpfError::io(format!("cannot read {KERNEL_BTF}")))?;
    enum_values(&data, name)?.ok_or_else(|| BpfError::Btf(format!("{KERNEL_BTF} has no enum {name}")))
}

/// The members of `enum <name>` in a BTF blob, or `None` if it has none.
pub fn enum_values(data: &[u8], name: &str) -> Result<Option<BTreeMap<u64, String>>> {
    let bad = |what: &str| BpfError::Btf(format!("malformed BTF: {what}"));
    let u16_at = |off: usize| data.get(off..off + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |off: usize| data.get(off..off + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    if u16_at(0) != Some(BTF_MAGIC) {
        return Err(bad("bad magic (or not little-endian)"));
    }
    let field = |i: usize| u32_at(4 + 4 * i).map(|v| v as usize).ok_or_else(|| bad("short header"));
    let (hdr_len, type_off, type_len, str_off, str_len) = (field(0)?, field(1)?, field(2)?, field(3)?, field(4)?);
    let types = hdr_len + type_off..hdr_len + type_off + type_len;
    let strings = data.get(hdr_len + str_off..hdr_len + str_off + str_len).ok_or_else(|| bad("string section"))?;
    let string = |off: u32| -> &str {
        let s = strings.get(off as usize..).unwrap_or(&[]);
        let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
        std::str::from_utf8(&s[..end]).unwrap_or("")
    };

    let mut off = types.start;
    while off + 12 <= types.end {
        let name_off = u32_at(off).ok_or_else(|| bad("type"))?;
        let info = u32_at(off + 4).ok_or_else(|| bad("type"))?;
        let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
        let body = off + 12;
        let extra = match kind {
            1 | 14 | 17 => 4,             // int, var, decl_tag
            3 => 12,                      // array
            4 | 5 | 15 | 19 => 12 * vlen, // struct, union, datasec, enum64
            6 | 13 => 8 * vlen,           // enum, func_proto
            2 | 7..=12 | 16 | 18 => 0,
            other => return Err(bad(&format!("unknown kind {other}"))),
        };
        if (kind == KIND_ENUM || kind == KIND_ENUM64) && string(name_off) == name {
            let signed = info >> 31 == 1;
            let mut members = BTreeMap::new();
            for i in 0..vlen {
                let (m, value) = if kind == KIND_ENUM {
                    let m = body + 8 * i;
                    let v = u32_at(m + 4).ok_or_else(|| bad("enum"))?;
                    (m, if signed { v as i32 as i64 as u64 } else { v as u64 })
                } else {
                    let m = body + 12 * i;
                    let (lo, hi) =
                        (u32_at(m + 4).ok_or_else(|| bad("enum64"))?, u32_at(m + 8).ok_or_else(|| bad("enum64"))?);
                    (m, (hi as u64) << 32 | lo as u64)
                };
                members.insert(value, string(u32_at(m).ok_or_else(|| bad("enum"))?).to_string());
            }
            return Ok(Some(members));
        }
        off = body + extra;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob with one `enum e { A = 0, B = 7 }`.
    fn blob() -> Vec<u8> {
        let strings = b"\0e\0A\0B\0";
        let mut types = Vec::new();
        for v in [1u32, (KIND_ENUM << 24) | 2, 4, 3, 0, 5, 7] {
            types.extend_from_slice(&v.to_le_bytes());
        }
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

    #[test]
    fn reads_an_enum() {
        let values = enum_values(&blob(), "e").unwrap().unwrap();
        assert_eq!(values, BTreeMap::from([(0, "A".to_string()), (7, "B".to_string())]));
        assert!(enum_values(&blob(), "other").unwrap().is_none());
    }

    #[test]
    fn rejects_garbage() {
        assert!(enum_values(b"not btf at all", "e").is_err());
    }
}
