//! Captured packets to and from pcapng (the format Wireshark and tcpdump read).
//!
//! Hand-written: the three blocks needed are small, and pcap-file, the one
//! Rust crate that writes pcapng, has a stable release (2.0) that ignores
//! `if_tsresol` and a 3.0 that is still a release candidate.
//!
//! Layout written (little-endian): one Section Header Block; one Interface
//! Description Block per capture point, in order of first appearance, with
//! `if_name` = the packets' label (`node:ifname`) and `if_tsresol` = 9
//! (nanoseconds); one Enhanced Packet Block per packet in time order, with
//! `epb_flags` saying inbound or outbound.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use super::capture::Packet;
use super::error::{ObserveError, Result};

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 0x0000_0001;
const EPB: u32 = 0x0000_0006;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const LINKTYPE_ETHERNET: u16 = 1;

const OPT_END: u16 = 0;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
const IF_TSRESOL: u16 = 9;
const EPB_FLAGS: u16 = 2;
const EPB_INBOUND: u32 = 0b01;
const EPB_OUTBOUND: u32 = 0b10;

/// Writes `packets` as one pcapng section, sorted by time (stable, so
/// packets with equal timestamps keep their order).
pub fn write<W: Write>(mut out: W, packets: &[Packet]) -> io::Result<()> {
    let mut interfaces: Vec<&str> = Vec::new();
    for p in packets {
        if !interfaces.contains(&p.ifname.as_str()) {
            interfaces.push(&p.ifname);
        }
    }
    let app = format!("labctl {}", env!("CARGO_PKG_VERSION"));
    let mut body = Vec::new();
    body.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
    body.extend_from_slice(&1u16.to_le_bytes()); // major
    body.extend_from_slice(&0u16.to_le_bytes()); // minor
    body.extend_from_slice(&(-1i64).to_le_bytes()); // section length: not given
    push_option(&mut body, SHB_USERAPPL, app.as_bytes());
    push_option(&mut body, OPT_END, &[]);
    write_block(&mut out, SHB, &body)?;

    for name in &interfaces {
        let mut body = Vec::new();
        body.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes()); // reserved
        body.extend_from_slice(&0u32.to_le_bytes()); // snaplen: none
        push_option(&mut body, IF_NAME, name.as_bytes());
        push_option(&mut body, IF_TSRESOL, &[9]);
        push_option(&mut body, OPT_END, &[]);
        write_block(&mut out, IDB, &body)?;
    }

    let mut order: Vec<&Packet> = packets.iter().collect();
    order.sort_by_key(|p| p.ts_ns);
    for p in order {
        let id = interfaces.iter().position(|n| *n == p.ifname).expect("every label has an IDB") as u32;
        let mut body = Vec::with_capacity(32 + p.data.len());
        body.extend_from_slice(&id.to_le_bytes());
        body.extend_from_slice(&((p.ts_ns >> 32) as u32).to_le_bytes());
        body.extend_from_slice(&(p.ts_ns as u32).to_le_bytes());
        body.extend_from_slice(&(p.data.len() as u32).to_le_bytes());
        body.extend_from_slice(&p.orig_len.max(p.data.len() as u32).to_le_bytes());
        body.extend_from_slice(&p.data);
        pad(&mut body);
        let flags = if p.outgoing { EPB_OUTBOUND } else { EPB_INBOUND };
        push_option(&mut body, EPB_FLAGS, &flags.to_le_bytes());
        push_option(&mut body, OPT_END, &[]);
        write_block(&mut out, EPB, &body)?;
    }
    out.flush()
}

/// [`write`] to a file, created or truncated.
pub fn write_file(path: &Path, packets: &[Packet]) -> Result<()> {
    let err = |source| ObserveError::Write { path: path.into(), source };
    let file = File::create(path).map_err(err)?;
    write(BufWriter::new(file), packets).map_err(err)
}

fn pad(buf: &mut Vec<u8>) {
    buf.resize(buf.len().next_multiple_of(4), 0);
}

fn push_option(body: &mut Vec<u8>, code: u16, value: &[u8]) {
    body.extend_from_slice(&code.to_le_bytes());
    body.extend_from_slice(&(value.len() as u16).to_le_bytes());
    body.extend_from_slice(value);
    pad(body);
}

/// A block: type, total length, body (a multiple of 4), total length again.
fn write_block<W: Write>(out: &mut W, kind: u32, body: &[u8]) -> io::Result<()> {
    debug_assert_eq!(body.len() % 4, 0);
    let total = (12 + body.len()) as u32;
    out.write_all(&kind.to_le_bytes())?;
    out.write_all(&total.to_le_bytes())?;
    out.write_all(body)?;
    out.write_all(&total.to_le_bytes())
}

/// Reads the packets of a pcapng file back: each labelled with its
/// interface's `if_name` (`if<N>` if it has none), the direction from
/// `epb_flags` (outgoing only when marked outbound), timestamps converted
/// to nanoseconds from the interface's `if_tsresol`. Only Ethernet
/// interfaces are accepted; blocks other than SHB/IDB/EPB are skipped.
pub fn read<R: Read>(mut input: R) -> Result<Vec<Packet>> {
    let mut file = Vec::new();
    input.read_to_end(&mut file).map_err(|e| bad(format!("read: {e}")))?;
    Reader { file: &file, pos: 0, big_endian: false }.packets()
}

/// [`read`] from a file.
pub fn read_file(path: &Path) -> Result<Vec<Packet>> {
    let file = File::open(path).map_err(|source| ObserveError::Read { path: path.into(), source })?;
    read(file)
}

fn bad(msg: impl Into<String>) -> ObserveError {
    ObserveError::Pcapng(msg.into())
}

struct Interface {
    name: String,
    /// Nanoseconds per timestamp unit, as a ratio (units may be finer than ns).
    ns_per_unit: (u128, u128),
}

struct Reader<'a> {
    file: &'a [u8],
    pos: usize,
    big_endian: bool,
}

impl Reader<'_> {
    fn u16_at(&self, b: &[u8], at: usize) -> Result<u16> {
        let bytes: [u8; 2] = b.get(at..at + 2).and_then(|s| s.try_into().ok()).ok_or_else(|| bad("truncated field"))?;
        Ok(if self.big_endian { u16::from_be_bytes(bytes) } else { u16::from_le_bytes(bytes) })
    }

    fn u32_at(&self, b: &[u8], at: usize) -> Result<u32> {
        let bytes: [u8; 4] = b.get(at..at + 4).and_then(|s| s.try_into().ok()).ok_or_else(|| bad("truncated field"))?;
        Ok(if self.big_endian { u32::from_be_bytes(bytes) } else { u32::from_le_bytes(bytes) })
    }

    /// Options from `at` to the end of `body`, as (code, value).
    fn options<'b>(&self, body: &'b [u8], mut at: usize) -> Result<Vec<(u16, &'b [u8])>> {
        let mut opts = Vec::new();
        while at + 4 <= body.len() {
            let code = self.u16_at(body, at)?;
            let len = self.u16_at(body, at + 2)? as usize;
            if code == OPT_END {
                break;
            }
            let value =
                body.get(at + 4..at + 4 + len).ok_or_else(|| bad(format!("option {code} overruns its block")))?;
            opts.push((code, value));
            at += 4 + len.next_multiple_of(4);
        }
        Ok(opts)
    }

    fn packets(mut self) -> Result<Vec<Packet>> {
        let mut interfaces: Vec<Interface> = Vec::new();
        let mut packets = Vec::new();
        let mut seen_shb = false;
        while self.pos < self.file.len() {
            let head = self.file.get(self.pos..self.pos + 12).ok_or_else(|| bad("truncated block header"))?;
            let kind = u32::from_le_bytes(head[..4].try_into().unwrap());
            if kind == SHB {
                // The byte-order magic decides how this section is read.
                let magic = &head[8..12];
                self.big_endian = match magic {
                    m if m == BYTE_ORDER_MAGIC.to_le_bytes() => false,
                    m if m == BYTE_ORDER_MAGIC.to_be_bytes() => true,
                    _ => return Err(bad("bad byte-order magic")),
                };
                seen_shb = true;
                interfaces.clear(); // interface ids are per section
            } else if !seen_shb {
                return Err(bad("does not start with a Section Header Block"));
            }
            let kind = self.u32_at(head, 0)?;
            let total = self.u32_at(head, 4)? as usize;
            if total < 12 || !total.is_multiple_of(4) {
                return Err(bad(format!("block length {total} at offset {}", self.pos)));
            }
            let block = self.file.get(self.pos..self.pos + total).ok_or_else(|| bad("truncated block"))?;
            if self.u32_at(block, total - 4)? as usize != total {
                return Err(bad(format!("block at offset {} has mismatched lengths", self.pos)));
            }
            let body = &block[8..total - 4];
            match kind {
                IDB => {
                    let linktype = self.u16_at(body, 0)?;
                    if linktype != LINKTYPE_ETHERNET {
                        return Err(bad(format!(
                            "interface {} has link type {linktype}, not Ethernet",
                            interfaces.len()
                        )));
                    }
                    let mut iface = Interface { name: format!("if{}", interfaces.len()), ns_per_unit: (1000, 1) };
                    for (code, value) in self.options(body, 8)? {
                        match code {
                            IF_NAME => iface.name = String::from_utf8_lossy(value).into_owned(),
                            IF_TSRESOL => iface.ns_per_unit = ns_per_unit(*value.first().unwrap_or(&6)),
                            _ => {}
                        }
                    }
                    interfaces.push(iface);
                }
                EPB => {
                    let id = self.u32_at(body, 0)? as usize;
                    let iface = interfaces.get(id).ok_or_else(|| bad(format!("packet for unknown interface {id}")))?;
                    let ts = (u64::from(self.u32_at(body, 4)?) << 32) | u64::from(self.u32_at(body, 8)?);
                    let caplen = self.u32_at(body, 12)? as usize;
                    let orig_len = self.u32_at(body, 16)?;
                    let data = body.get(20..20 + caplen).ok_or_else(|| bad("packet data overruns its block"))?;
                    let mut outgoing = false;
                    for (code, value) in self.options(body, 20 + caplen.next_multiple_of(4))? {
                        if code == EPB_FLAGS {
                            outgoing = self.u32_at(value, 0)? & 0b11 == EPB_OUTBOUND;
                        }
                    }
                    let (num, den) = iface.ns_per_unit;
                    packets.push(Packet {
                        ifname: iface.name.clone(),
                        ts_ns: (u128::from(ts) * num / den) as u64,
                        outgoing,
                        orig_len,
                        data: data.to_vec(),
                    });
                }
                _ => {}
            }
            self.pos += total;
        }
        Ok(packets)
    }
}

/// if_tsresol: units of 10^-n seconds, or 2^-n when the top bit is set.
fn ns_per_unit(tsresol: u8) -> (u128, u128) {
    let n = u32::from(tsresol & 0x7f);
    let units_per_sec = if tsresol & 0x80 == 0 { 10u128.pow(n.min(30)) } else { 1u128 << n.min(100) };
    (1_000_000_000, units_per_sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(ifname: &str, ts_ns: u64, outgoing: bool, data: &[u8]) -> Packet {
        Packet { ifname: ifname.into(), ts_ns, outgoing, orig_len: data.len() as u32, data: data.to_vec() }
    }

    #[test]
    fn round_trip() {
        let packets = vec![
            packet("h1:eth0", 1_700_000_000_123_456_789, true, &[1, 2, 3, 4, 5]),
            packet("r1:eth0", 1_700_000_000_123_456_790, false, &[6; 60]),
            packet("h1:eth0", 1_700_000_000_123_456_791, false, &[7; 3]),
        ];
        let mut file = Vec::new();
        write(&mut file, &packets).unwrap();
        assert_eq!(read(file.as_slice()).unwrap(), packets);
    }

    #[test]
    fn packets_are_written_in_time_order() {
        let packets = vec![packet("a", 20, false, &[2]), packet("b", 10, true, &[1])];
        let mut file = Vec::new();
        write(&mut file, &packets).unwrap();
        let back = read(file.as_slice()).unwrap();
        assert_eq!(back.iter().map(|p| p.ts_ns).collect::<Vec<_>>(), vec![10, 20]);
        // IDBs in order of first appearance in the input: "a" is interface 0.
        assert_eq!(back[0].ifname, "b");
    }

    #[test]
    fn blocks_are_laid_out_as_the_spec_says() {
        let mut file = Vec::new();
        write(&mut file, &[packet("h1:eth0", (7u64 << 32) | 9, true, &[0xaa; 5])]).unwrap();
        let shb_len = u32::from_le_bytes(file[4..8].try_into().unwrap()) as usize;
        assert_eq!(&file[0..4], &[0x0a, 0x0d, 0x0d, 0x0a]);
        assert_eq!(&file[8..12], &[0x4d, 0x3c, 0x2b, 0x1a]);
        assert_eq!(&file[12..16], &[1, 0, 0, 0], "version 1.0");
        assert_eq!(&file[16..24], &[0xff; 8], "section length unknown");

        let idb = &file[shb_len..];
        assert_eq!(&idb[0..4], &[1, 0, 0, 0]);
        // linktype 1, reserved, snaplen 0, if_name "h1:eth0" (7 bytes, padded to 8), if_tsresol 9, end
        let expected_idb_body: Vec<u8> =
            [&[1, 0, 0, 0, 0, 0, 0, 0][..], &[2, 0, 7, 0], b"h1:eth0\0", &[9, 0, 1, 0, 9, 0, 0, 0], &[0, 0, 0, 0]]
                .concat();
        let idb_len = u32::from_le_bytes(idb[4..8].try_into().unwrap()) as usize;
        assert_eq!(idb_len, 12 + expected_idb_body.len());
        assert_eq!(&idb[8..idb_len - 4], expected_idb_body.as_slice());

        let epb = &idb[idb_len..];
        assert_eq!(&epb[0..4], &[6, 0, 0, 0]);
        let expected_epb_body: Vec<u8> = [
            &[0, 0, 0, 0][..], // interface 0
            &[7, 0, 0, 0],     // ts high
            &[9, 0, 0, 0],     // ts low
            &[5, 0, 0, 0],     // captured
            &[5, 0, 0, 0],     // original
            &[0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0, 0, 0],
            &[2, 0, 4, 0, 2, 0, 0, 0], // epb_flags: outbound
            &[0, 0, 0, 0],
        ]
        .concat();
        let epb_len = u32::from_le_bytes(epb[4..8].try_into().unwrap()) as usize;
        assert_eq!(&epb[8..epb_len - 4], expected_epb_body.as_slice());
        assert_eq!(epb.len(), epb_len, "nothing after the last block");
    }

    #[test]
    fn reads_microsecond_and_big_endian_files() {
        // A big-endian section, an IDB without options (default 10^-6 s).
        let mut f = Vec::new();
        let block = |f: &mut Vec<u8>, kind: u32, body: &[u8]| {
            let total = (12 + body.len()) as u32;
            f.extend_from_slice(&kind.to_be_bytes());
            f.extend_from_slice(&total.to_be_bytes());
            f.extend_from_slice(body);
            f.extend_from_slice(&total.to_be_bytes());
        };
        let shb: Vec<u8> = [&BYTE_ORDER_MAGIC.to_be_bytes()[..], &[0, 1, 0, 0], &[0xff; 8]].concat();
        block(&mut f, SHB, &shb);
        block(&mut f, IDB, &[0, 1, 0, 0, 0, 0, 0, 0]);
        let epb: Vec<u8> =
            [&[0u8, 0, 0, 0][..], &[0, 0, 0, 0], &[0, 0, 0, 5], &[0, 0, 0, 1], &[0, 0, 0, 1], &[0xee, 0, 0, 0]]
                .concat();
        block(&mut f, EPB, &epb);
        let back = read(f.as_slice()).unwrap();
        assert_eq!(
            back,
            vec![Packet { ifname: "if0".into(), ts_ns: 5000, outgoing: false, orig_len: 1, data: vec![0xee] }]
        );
    }

    #[test]
    fn rejects_garbage() {
        assert!(read(&b"not a pcapng file at all"[..]).is_err());
        let mut file = Vec::new();
        write(&mut file, &[packet("x", 1, false, &[1])]).unwrap();
        file.truncate(file.len() - 2);
        assert!(read(file.as_slice()).is_err());
    }
}
