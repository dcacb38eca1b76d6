//! Normalize on hand-built frames (etherparse's PacketBuilder); no root needed.

use std::collections::BTreeMap;

use etherparse::{
    ArpHardwareId, ArpOperation, ArpPacket, EtherType, Icmpv4Type, PacketBuilder, SingleVlanHeader, VlanId,
};

use super::*;

const H1: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const R1: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
const BROADCAST: [u8; 6] = [0xff; 6];
const H1_IP: [u8; 4] = [198, 18, 0, 1];
const R1_IP: [u8; 4] = [198, 18, 0, 254];
const FAR_IP: [u8; 4] = [198, 18, 1, 1];

fn names() -> BTreeMap<MacAddr, String> {
    [(MacAddr(H1), "h1:eth0".to_string()), (MacAddr(R1), "r1:eth0".to_string())].into()
}

fn packet(outgoing: bool, ts_ns: u64, data: Vec<u8>) -> Packet {
    Packet { ifname: "h1:eth0".into(), ts_ns, outgoing, orig_len: data.len() as u32, data }
}

fn frame(builder: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut v = Vec::new();
    builder(&mut v);
    v
}

fn plain() -> Options {
    Options { direction: false, ..Options::default() }
}

fn one(data: Vec<u8>) -> String {
    lines(&[packet(true, 0, data)], &names(), &plain()).remove(0)
}

fn arp(op: ArpOperation, sender: ([u8; 6], [u8; 4]), target: ([u8; 6], [u8; 4]), dst: [u8; 6]) -> Vec<u8> {
    let arp = ArpPacket::new(ArpHardwareId::ETHERNET, EtherType::IPV4, op, &sender.0, &sender.1, &target.0, &target.1)
        .unwrap();
    frame(|v| PacketBuilder::ethernet2(sender.0, dst).arp(arp).write(v).unwrap())
}

fn echo(src: [u8; 6], dst: [u8; 6], ips: ([u8; 4], [u8; 4]), ttl: u8, request: bool, id: u16, seq: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src, dst).ipv4(ips.0, ips.1, ttl);
    let b = if request { b.icmpv4_echo_request(id, seq) } else { b.icmpv4_echo_reply(id, seq) };
    frame(|v| b.write(v, &[0u8; 56]).unwrap())
}

#[test]
fn arp_request_and_reply() {
    let who_has = arp(ArpOperation::REQUEST, (H1, H1_IP), ([0; 6], R1_IP), BROADCAST);
    assert_eq!(one(who_has), "h1:eth0 > ff:ff:ff:ff:ff:ff ARP who-has 198.18.0.254 tell 198.18.0.1");
    let reply = arp(ArpOperation::REPLY, (R1, R1_IP), (H1, H1_IP), H1);
    assert_eq!(one(reply), "r1:eth0 > h1:eth0 ARP reply 198.18.0.254 is-at r1:eth0");
}

#[test]
fn ping_redacts_ids() {
    let req = echo(H1, R1, (H1_IP, FAR_IP), 64, true, 0x1234, 1);
    let other_id = echo(H1, R1, (H1_IP, FAR_IP), 64, true, 0x9999, 1);
    assert_eq!(
        one(req.clone()),
        "h1:eth0 > r1:eth0 IPv4 198.18.0.1 > 198.18.1.1 ICMP echo request seq 1 ttl 64 len 84"
    );
    assert_eq!(one(req), one(other_id), "the ICMP id must not show");
    let rep = echo(R1, H1, (FAR_IP, H1_IP), 63, false, 0x1234, 1);
    assert_eq!(one(rep), "r1:eth0 > h1:eth0 IPv4 198.18.1.1 > 198.18.0.1 ICMP echo reply seq 1 ttl 63 len 84");
}

#[test]
fn direction_capture_point_and_time_prefixes() {
    let packets = vec![
        packet(true, 1_000_000_000, echo(H1, R1, (H1_IP, FAR_IP), 64, true, 1, 1)),
        packet(false, 1_000_123_456, echo(R1, H1, (FAR_IP, H1_IP), 63, false, 1, 1)),
    ];
    let default = lines(&packets, &names(), &Options::default());
    assert!(default[0].starts_with("out h1:eth0 > r1:eth0 IPv4"), "{}", default[0]);
    assert!(default[1].starts_with("in r1:eth0 > h1:eth0 IPv4"), "{}", default[1]);
    let all = Options { capture_point: true, relative_time: true, ..Options::default() };
    let human = lines(&packets, &names(), &all);
    assert!(human[0].starts_with("+0.000000 @h1:eth0 out h1:eth0 > "), "{}", human[0]);
    assert!(human[1].starts_with("+0.000123 @h1:eth0 in r1:eth0 > "), "{}", human[1]);
}

#[test]
fn udp_ports_ephemeral_redacted_unless_kept() {
    let udp = frame(|v| {
        PacketBuilder::ethernet2(H1, R1).ipv4(H1_IP, FAR_IP, 64).udp(40000, 5201).write(v, &[0u8; 64]).unwrap()
    });
    assert_eq!(one(udp.clone()), "h1:eth0 > r1:eth0 IPv4 UDP 198.18.0.1:* > 198.18.1.1:5201 ttl 64 len 64");
    let keep = Options { keep_ephemeral_ports: true, ..plain() };
    let line = lines(&[packet(true, 0, udp)], &names(), &keep).remove(0);
    assert_eq!(line, "h1:eth0 > r1:eth0 IPv4 UDP 198.18.0.1:40000 > 198.18.1.1:5201 ttl 64 len 64");
    let low = frame(|v| PacketBuilder::ethernet2(H1, R1).ipv4(H1_IP, FAR_IP, 64).udp(53, 32767).write(v, &[]).unwrap());
    assert_eq!(one(low), "h1:eth0 > r1:eth0 IPv4 UDP 198.18.0.1:53 > 198.18.1.1:32767 ttl 64 len 0");
}

#[test]
fn tcp_sequence_numbers_are_relative_per_direction() {
    let tcp = |src: [u8; 6],
               dst: [u8; 6],
               fwd: bool,
               seq: u32,
               flags: &dyn Fn(
        etherparse::PacketBuilderStep<etherparse::TcpHeader>,
    ) -> etherparse::PacketBuilderStep<etherparse::TcpHeader>,
               payload: &[u8]| {
        let (ips, ports) = if fwd { ((H1_IP, FAR_IP), (50000, 5201)) } else { ((FAR_IP, H1_IP), (5201, 50000)) };
        let b = flags(PacketBuilder::ethernet2(src, dst).ipv4(ips.0, ips.1, 64).tcp(ports.0, ports.1, seq, 64240));
        frame(|v| b.write(v, payload).unwrap())
    };
    let (client_isn, server_isn) = (3_000_000_000u32, 4_294_967_000u32); // the server's wraps
    let packets: Vec<Packet> = [
        tcp(H1, R1, true, client_isn, &|b| b.syn(), &[]),
        tcp(R1, H1, false, server_isn, &|b| b.syn().ack(client_isn + 1), &[]),
        tcp(H1, R1, true, client_isn + 1, &|b| b.ack(server_isn.wrapping_add(1)), &[]),
        tcp(H1, R1, true, client_isn + 1, &|b| b.psh().ack(server_isn.wrapping_add(1)), &[7u8; 100]),
        tcp(R1, H1, false, server_isn.wrapping_add(1), &|b| b.fin().ack(client_isn + 101), &[]),
    ]
    .into_iter()
    .map(|d| packet(true, 0, d))
    .collect();
    let got = lines(&packets, &names(), &plain());
    assert_eq!(
        got,
        [
            "h1:eth0 > r1:eth0 IPv4 TCP 198.18.0.1:* > 198.18.1.1:5201 [S] seq 0 ttl 64 len 0",
            "r1:eth0 > h1:eth0 IPv4 TCP 198.18.1.1:5201 > 198.18.0.1:* [S.] seq 0 ack 1 ttl 64 len 0",
            "h1:eth0 > r1:eth0 IPv4 TCP 198.18.0.1:* > 198.18.1.1:5201 [.] seq 1 ack 1 ttl 64 len 0",
            "h1:eth0 > r1:eth0 IPv4 TCP 198.18.0.1:* > 198.18.1.1:5201 [P.] seq 1 ack 1 ttl 64 len 100",
            "r1:eth0 > h1:eth0 IPv4 TCP 198.18.1.1:5201 > 198.18.0.1:* [F.] seq 1 ack 101 ttl 64 len 0",
        ]
    );
}

#[test]
fn tcp_syn_shows_mss() {
    let syn = frame(|v| {
        PacketBuilder::ethernet2(H1, R1)
            .ipv4(H1_IP, FAR_IP, 64)
            .tcp(50000, 80, 1, 64240)
            .syn()
            .options(&[TcpOptionElement::MaximumSegmentSize(1460), TcpOptionElement::Noop])
            .unwrap()
            .write(v, &[])
            .unwrap()
    });
    assert_eq!(one(syn), "h1:eth0 > r1:eth0 IPv4 TCP 198.18.0.1:* > 198.18.1.1:80 [S] seq 0 mss 1460 ttl 64 len 0");
}

#[test]
fn icmp_errors_quote_the_packet() {
    // port unreachable for a UDP datagram from h1
    let quoted = frame(|v| PacketBuilder::ipv4(H1_IP, FAR_IP, 63).udp(40000, 9).write(v, &[]).unwrap());
    let unreach = Icmpv4Type::DestinationUnreachable(etherparse::icmpv4::DestUnreachableHeader::Port);
    let err =
        frame(|v| PacketBuilder::ethernet2(R1, H1).ipv4(FAR_IP, H1_IP, 64).icmpv4(unreach).write(v, &quoted).unwrap());
    assert_eq!(
        one(err),
        "r1:eth0 > h1:eth0 IPv4 198.18.1.1 > 198.18.0.1 ICMP unreachable port (UDP 198.18.0.1:* > 198.18.1.1:9) ttl 64 len 56"
    );
    let ttl = Icmpv4Type::TimeExceeded(etherparse::icmpv4::TimeExceededCode::TtlExceededInTransit);
    let err = frame(|v| PacketBuilder::ethernet2(R1, H1).ipv4(R1_IP, H1_IP, 64).icmpv4(ttl).write(v, &quoted).unwrap());
    assert!(one(err).contains("ICMP time exceeded in-transit (UDP 198.18.0.1:* > 198.18.1.1:9)"));
}

#[test]
fn ipv6_neighbor_discovery_and_echo() {
    let h1_ll: [u8; 16] = MacAddr(H1).link_local().octets();
    let target: [u8; 16] = "2001:db8::fe".parse::<Ipv6Addr>().unwrap().octets();
    let solicited: [u8; 16] = "ff02::1:ff00:fe".parse::<Ipv6Addr>().unwrap().octets();
    let mcast_mac = [0x33, 0x33, 0xff, 0x00, 0x00, 0xfe];
    let ns = frame(|v| {
        PacketBuilder::ethernet2(H1, mcast_mac)
            .ipv6(h1_ll, solicited, 255)
            .icmpv6(etherparse::Icmpv6Type::NeighborSolicitation)
            .write(v, &target)
            .unwrap()
    });
    assert_eq!(
        one(ns),
        "h1:eth0 > 33:33:ff:00:00:fe IPv6 fe80::ff:fe00:1 > ff02::1:ff00:fe ICMP6 neighbor solicitation who-has 2001:db8::fe hlim 255 len 64"
    );
    let a: [u8; 16] = "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets();
    let ping = frame(|v| {
        PacketBuilder::ethernet2(H1, R1).ipv6(a, target, 64).icmpv6_echo_request(7, 3).write(v, &[0u8; 56]).unwrap()
    });
    assert_eq!(one(ping), "h1:eth0 > r1:eth0 IPv6 2001:db8::1 > 2001:db8::fe ICMP6 echo request seq 3 hlim 64 len 104");
}

#[test]
fn vlan_tag_is_shown() {
    let vlan =
        SingleVlanHeader { vlan_id: VlanId::try_new(10).unwrap(), ether_type: EtherType::IPV4, ..Default::default() };
    let data = frame(|v| {
        PacketBuilder::ethernet2(H1, R1)
            .vlan(etherparse::VlanHeader::Single(vlan))
            .ipv4(H1_IP, FAR_IP, 64)
            .icmpv4_echo_request(1, 1)
            .write(v, &[])
            .unwrap()
    });
    assert_eq!(
        one(data),
        "h1:eth0 > r1:eth0 vlan 10 IPv4 198.18.0.1 > 198.18.1.1 ICMP echo request seq 1 ttl 64 len 28"
    );
}

#[test]
fn unknown_and_odd_frames() {
    let mut lldp = [&[0x01, 0x80, 0xc2, 0, 0, 0x0e][..], &H1, &[0x88, 0xcc]].concat();
    lldp.resize(60, 0);
    assert_eq!(one(lldp), "h1:eth0 > 01:80:c2:00:00:0e ethertype 0x88cc len 60");
    let mut stp = [&[0x01, 0x80, 0xc2, 0, 0, 0][..], &R1, &[0x00, 0x26]].concat();
    stp.resize(60, 0);
    assert_eq!(one(stp), "r1:eth0 > 01:80:c2:00:00:00 802.3 len 60");
    assert_eq!(one(vec![1, 2, 3]), "runt len 3");
    let mut truncated = echo(H1, R1, (H1_IP, FAR_IP), 64, true, 1, 1);
    truncated.truncate(20);
    assert_eq!(one(truncated), "h1:eth0 > r1:eth0 ethertype 0x0800 malformed len 20");
}

#[test]
fn fragments_are_marked() {
    let mut header = etherparse::Ipv4Header::new(8, 64, IpNumber::UDP, H1_IP, FAR_IP).unwrap();
    header.fragment_offset = etherparse::IpFragOffset::try_new(185).unwrap();
    let data = frame(|v| {
        PacketBuilder::ethernet2(H1, R1)
            .ip(etherparse::IpHeaders::Ipv4(header, Default::default()))
            .write(v, IpNumber::UDP, &[0u8; 8])
            .unwrap()
    });
    let line = one(data);
    assert!(line.contains("IPv4 198.18.0.1 > 198.18.1.1 UDP frag off 1480 ttl 64"), "{line}");
}
