//! `h1:neighbour("eth0", "198.18.0.2")` or `h1:neighbour("eth0",
//! "198.18.0.2", "02:00:00:00:00:02")`: a permanent neighbour entry. Whether
//! the interface exists and the address is on its subnet is validation's.

use mlua::{Lua, Value};

use super::args::{self, show};
use super::builder;
use crate::model::{MacAddr, Neighbour};

const HELP: &str = r#"write h1:neighbour("eth0", "198.18.0.2") (the lab's MAC of that address) or h1:neighbour("eth0", "198.18.0.2", "02:00:00:00:00:02")"#;

pub(super) fn neighbour(lua: &Lua, index: usize, ifname: &Value, address: &Value, mac: &Value) -> mlua::Result<()> {
    let origin = builder::origin(lua)?;
    let report = |message: String| {
        let origin = origin.clone();
        builder::with(lua, |b| b.report(origin, format!("neighbour(): {message}"), HELP))
    };
    let Some(ifname) = args::string(ifname) else {
        return report(format!("the interface name must be a string, got {}", show(ifname)));
    };
    let address = match args::string(address).map(|t| t.parse::<std::net::IpAddr>().map_err(|_| t)) {
        Some(Ok(address)) => address,
        Some(Err(text)) => return report(format!("{text:?} is not an IP address (no prefix length)")),
        None => return report(format!("the address must be a string, got {}", show(address))),
    };
    let mac = match mac {
        Value::Nil => None,
        Value::String(text) => match text.to_string_lossy().parse::<MacAddr>() {
            Ok(mac) if mac.is_unicast() => Some(mac),
            Ok(mac) => return report(format!("{mac} is a multicast MAC; a neighbour has a unicast one")),
            Err(e) => return report(e.to_string()),
        },
        other => return report(format!("the MAC must be a string, got {}", show(other))),
    };
    let entry = Neighbour { ifname, address, mac, origin: origin.clone() };
    builder::with(lua, |b| b.lab.nodes[index].neighbours.push(entry))
}
