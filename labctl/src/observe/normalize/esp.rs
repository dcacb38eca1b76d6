//! ESP in trace lines: raw (IP protocol 50) or in UDP on port 4500 (RFC
//! 3948, where a zero "non-ESP marker" means IKE instead). SPIs and
//! sequence numbers differ every run (new SAs, earlier traffic), so an SPI
//! is shown by its order of appearance in the trace (`spi#1`) and a
//! sequence number relative to the first one seen with its SPI (`seq#1`).

use std::collections::HashMap;

/// The UDP port of IKE and ESP-in-UDP.
pub const NAT_T_PORT: u16 = 4500;

#[derive(Debug, Default)]
pub struct EspNames {
    /// SPI -> (its number in order of appearance, first sequence number seen).
    spis: HashMap<u32, (usize, u32)>,
}

impl EspNames {
    /// `ESP spi#1 seq#3` for an ESP header at the start of `payload`.
    pub fn esp(&mut self, payload: &[u8]) -> String {
        let Some(header) = payload.get(..8) else { return "ESP truncated".into() };
        let spi = u32::from_be_bytes(header[..4].try_into().unwrap());
        let seq = u32::from_be_bytes(header[4..8].try_into().unwrap());
        let next = self.spis.len() + 1;
        let (number, first) = *self.spis.entry(spi).or_insert((next, seq));
        format!("ESP spi#{number} seq#{}", seq.wrapping_sub(first).wrapping_add(1))
    }

    /// What a UDP payload to or from port 4500 carries.
    pub fn udp_encap(&mut self, payload: &[u8]) -> String {
        match payload {
            [0xff] => "NAT-keepalive".into(),
            [0, 0, 0, 0, ..] => "IKE".into(),
            _ => self.esp(payload),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spis_and_sequence_numbers_are_numbered_in_order_of_appearance() {
        let mut n = EspNames::default();
        let esp = |spi: u32, seq: u32| [spi.to_be_bytes(), seq.to_be_bytes()].concat();
        assert_eq!(n.udp_encap(&esp(0xc2e7a0f4, 17)), "ESP spi#1 seq#1");
        assert_eq!(n.udp_encap(&esp(0x4b81d63a, 9)), "ESP spi#2 seq#1");
        assert_eq!(n.udp_encap(&esp(0xc2e7a0f4, 18)), "ESP spi#1 seq#2");
        assert_eq!(n.udp_encap(&[0, 0, 0, 0, 1, 2, 3]), "IKE");
        assert_eq!(n.udp_encap(&[0xff]), "NAT-keepalive");
    }
}
