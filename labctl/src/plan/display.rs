//! The human form of a plan, one line per step, as `labctl plan` prints it.

use std::fmt;

use super::{Device, Plan, Step};

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.node, self.ifname)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::CreateNamespace { netns, .. } => write!(f, "netns add {netns}"),
            Step::NodeDefaults { node, ipv6: false } => {
                write!(f, "{node}: sysctl ping_group_range open, no link-local IGMP reports; net.ipv6.conf.default: IPv6 off (the node has no IPv6 address)")
            }
            Step::NodeDefaults { node, ipv6: true } => write!(
                f,
                "{node}: sysctl ping_group_range open, no link-local IGMP reports; net.ipv6.conf.default: no automatic link-local address, DAD, autoconf, RA or RS; MLDv1, its repeat at once"
            ),
            Step::SettleIpv6 { node } => write!(f, "{node}: wait until no address is tentative and no MLD report is due"),
            Step::Sysctl { node, key, value } => write!(f, "{node}: sysctl {key}={value}"),
            Step::CreateBridge { device, mac } => {
                write!(f, "{device}: bridge add (ifindex {}, mac {mac}, up)", device.ifindex)
            }
            Step::CreateVeth { device, mac, master, peer, peer_mac, mtu, queues } => {
                write!(f, "{device} <-> {peer}: veth add ({mac} <-> {peer_mac}")?;
                if let Some(mtu) = mtu {
                    write!(f, ", mtu {mtu}")?;
                }
                if let Some(q) = queues {
                    write!(f, ", {q} queues")?;
                }
                if master.is_some() {
                    write!(f, ", {device} enslaved to br0")?;
                }
                write!(f, ", {device} up)")
            }
            Step::Tune { device, tuning } => {
                let mut settings = Vec::new();
                for (name, value) in [("rps_cpus", &tuning.rps_cpus), ("xps_cpus", &tuning.xps_cpus)] {
                    if let Some(v) = value {
                        settings.push(format!("{name}={v}"));
                    }
                }
                if let Some(n) = tuning.rps_flow_cnt {
                    settings.push(format!("rps_flow_cnt={n}"));
                }
                for (name, on) in &tuning.offloads {
                    settings.push(format!("{name} {}", if *on { "on" } else { "off" }));
                }
                if let Some(on) = tuning.threaded {
                    settings.push(format!("threaded {}", if on { "on" } else { "off" }));
                }
                write!(f, "{device}: tune {}", settings.join(", "))
            }
            Step::SetUp { device } => write!(f, "{device}: link set up"),
            Step::AddAddress { device, address } => write!(f, "{device}: addr add {address}"),
            Step::AddRoute { node, destination, via } => write!(f, "{node}: route add {destination} via {via}"),
            Step::StartIpsec { node, backend, tunnels, .. } => super::ipsec::describe(f, node, *backend, tunnels),
            Step::AttachXdp { device, object, program, mode, pins, share_maps, .. } => {
                super::xdp::describe(f, device, object, program, *mode, pins, share_maps)
            }
            Step::ConfigureSriov { pf, vfs, settings } => super::nic::describe_sriov(f, pf, *vfs, settings),
            Step::ClaimNic { node, ifname, source, mtu, addresses } => {
                super::nic::describe_claim(f, node, ifname, source, *mtu, addresses)
            }
            Step::AddNeighbour { device, address, mac } => {
                write!(f, "{device}: neigh add {address} lladdr {mac} permanent")
            }
            Step::ShapeEgress { device, settings, mtu } => super::impair::describe_shape(f, device, settings, *mtu),
            Step::AttachLoss { device, from, ppm, seed, pins } => {
                write!(f, "{device}: tc ingress loss program, drops {}% of {from}'s packets (seed {seed}, pinned in {})", *ppm as f64 / 10_000.0, pins.display())
            }
            Step::AddRouteSpec { node, route, .. } => super::routing::describe_route(f, node, route),
            Step::AddRule { node, rule } => super::routing::describe_rule(f, node, rule),
            Step::AddNexthop { node, nexthop } => super::routing::describe_nexthop(f, node, nexthop),
            Step::CreateVrf { device, table } => {
                write!(f, "{device}: link add type vrf table {table} (ifindex {})", device.ifindex)
            }
            Step::CreateVlan { device, parent, id, protocol } => write!(
                f,
                "{device}: link add link ifindex {parent} type vlan protocol {} id {id} (ifindex {}, up)",
                protocol.name(),
                device.ifindex
            ),
            Step::SetMaster { device, master_name, .. } => write!(f, "{device}: link set master {master_name}"),
            Step::ConfigureBridge { device, options } => super::l2::describe_bridge(f, device, options),
            Step::ConfigurePort { device, options, drop_vlan } => {
                super::l2::describe_port(f, device, options, *drop_vlan)
            }
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.steps.iter().enumerate() {
            writeln!(f, "{:>4}  {step}", i + 1)?;
        }
        Ok(())
    }
}
