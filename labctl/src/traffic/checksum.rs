//! The Internet checksum (RFC 1071) and the UDP pseudo-header sum, for the
//! frames the AF_PACKET generator builds and the ICMPv4 echoes ping sends.

use std::net::IpAddr;

/// Adds `data` as big-endian 16-bit words to a running sum; an odd last
/// byte is padded with zero.
pub fn add(mut sum: u64, data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u64::from(u16::from_be_bytes([*last, 0]));
    }
    sum
}

/// Folds the carries back in and complements: the value to put on the wire.
pub fn finish(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

pub fn checksum(data: &[u8]) -> u16 {
    finish(add(0, data))
}

/// The UDP checksum over the pseudo-header and `udp` (header with a zero
/// checksum field, plus payload). Zero is sent as 0xffff, since zero on
/// the wire means "no checksum" (and is illegal over IPv6).
pub fn udp(src: IpAddr, dst: IpAddr, udp: &[u8]) -> u16 {
    let mut sum = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => add(add(0, &s.octets()), &d.octets()),
        (IpAddr::V6(s), IpAddr::V6(d)) => add(add(0, &s.octets()), &d.octets()),
        _ => panic!("UDP checksum over mixed address families ({src}, {dst})"),
    };
    sum += u64::from(libc::IPPROTO_UDP as u16);
    sum += udp.len() as u64;
    match finish(add(sum, udp)) {
        0 => 0xffff,
        c => c,
    }
}

/// The checksum of a TCP segment, UDP datagram or ICMPv6 message `data`
/// (its checksum field zero) of protocol `proto`, over the pseudo-header of
/// `src` and `dst`. ICMPv4 has no pseudo-header: use [`checksum`].
pub fn transport(proto: u8, src: IpAddr, dst: IpAddr, data: &[u8]) -> u16 {
    if proto == libc::IPPROTO_UDP as u8 {
        return udp(src, dst, data);
    }
    let sum = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => add(add(0, &s.octets()), &d.octets()),
        (IpAddr::V6(s), IpAddr::V6(d)) => add(add(0, &s.octets()), &d.octets()),
        _ => panic!("checksum over mixed address families ({src}, {dst})"),
    };
    finish(add(sum + u64::from(proto) + data.len() as u64, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // The worked example of RFC 1071 section 3: sum 0xddf2, checksum !0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn a_header_with_its_checksum_sums_to_zero() {
        // IPv4 198.18.0.1 -> 198.18.0.2, UDP, 115 bytes, DF, TTL 64. By hand:
        // 4500+0073+0000+4000+4011+c612+0001+c612+0002 = 0x251ab,
        // folded 0x51ad, complemented 0xae52.
        let mut hdr =
            [0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 198, 18, 0, 1, 198, 18, 0, 2];
        assert_eq!(checksum(&hdr), 0xae52);
        hdr[10..12].copy_from_slice(&0xae52u16.to_be_bytes());
        assert_eq!(checksum(&hdr), 0);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(checksum(&[0x12, 0x34, 0x56]), checksum(&[0x12, 0x34, 0x56, 0x00]));
    }
}
