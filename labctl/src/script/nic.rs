//! Real devices, in the style of `link`:
//!
//! - `r1:nic("enp3s0", { "198.18.9.1/24", name = "wan0", mtu = 1500, force = false })`:
//!   the whole NIC moves into the node;
//! - `r1:macvlan("enp3s0", { "198.18.9.2/24", name = "mv0", mode = "bridge" })`:
//!   a macvlan on a NIC the host keeps;
//! - `h1:vf("enp3s0", 0, { "198.18.9.3/24", name = "vf0" })`: the netdev of VF 0;
//! - `sriov("enp3s0", { vfs = 4, vf = { [0] = { mac = ..., vlan = ..., ... } } })`.
//!
//! Whether the devices exist and may be taken is checked against the
//! machine by apply's preflight, before the first kernel change.

use ipnet::IpNet;
use mlua::{Lua, Table, Value};

use super::args::{self, show};
use super::builder;
use crate::model::{MacAddr, MacvlanMode, NicClaim, NicSource, Sriov, VfLinkState, VfSettings};

const CLAIM_KEYS: &[&str] = &["name", "mtu", "force"];
const MACVLAN_KEYS: &[&str] = &["name", "mtu", "mode"];
const VF_CLAIM_KEYS: &[&str] = &["name", "mtu"];
const SRIOV_KEYS: &[&str] = &["vfs", "vf"];
const VF_KEYS: &[&str] = &["mac", "vlan", "qos", "spoofchk", "trust", "link_state", "min_tx_rate", "max_tx_rate"];

/// Which node method is being read.
#[derive(Clone, Copy)]
pub(super) enum Method {
    Nic,
    Macvlan,
    Vf,
}

impl Method {
    pub(super) fn name(self) -> &'static str {
        match self {
            Method::Nic => "nic",
            Method::Macvlan => "macvlan",
            Method::Vf => "vf",
        }
    }

    fn keys(self) -> &'static [&'static str] {
        match self {
            Method::Nic => CLAIM_KEYS,
            Method::Macvlan => MACVLAN_KEYS,
            Method::Vf => VF_CLAIM_KEYS,
        }
    }

    pub(super) fn example(self) -> &'static str {
        match self {
            Method::Nic => r#"r1:nic("enp3s0", { "198.18.9.1/24", name = "wan0" })"#,
            Method::Macvlan => r#"r1:macvlan("enp3s0", { "198.18.9.2/24", name = "mv0", mode = "bridge" })"#,
            Method::Vf => r#"h1:vf("enp3s0", 0, { "198.18.9.3/24", name = "vf0" })"#,
        }
    }
}

/// Problems of one call, reported at its line.
#[derive(Clone)]
struct Report<'a> {
    lua: &'a Lua,
    call: String,
    help: String,
}

impl Report<'_> {
    fn problem(&self, message: impl std::fmt::Display) -> mlua::Result<()> {
        self.problem_with(message, self.help.clone())
    }

    fn problem_with(&self, message: impl std::fmt::Display, help: impl Into<String>) -> mlua::Result<()> {
        let origin = builder::origin(self.lua)?;
        let message = format!("{}: {message}", self.call);
        builder::with(self.lua, |b| b.report(origin, message, help))
    }
}

/// `node:nic(host, opts)`, `node:macvlan(host, opts)` and `node:vf(pf, index, opts)`.
/// For `nic` and `macvlan`, `index` is the options table and `opts` nil.
pub(super) fn claim(
    lua: &Lua,
    node: usize,
    method: Method,
    host: &Value,
    index: Value,
    opts: Value,
) -> mlua::Result<()> {
    let report = Report { lua, call: format!("{}()", method.name()), help: format!("write {}", method.example()) };
    let (index, opts) = match method {
        Method::Vf => (Some(index), opts),
        Method::Nic | Method::Macvlan => (None, index),
    };
    let Some(host) = args::string(host).filter(|h| !h.is_empty()) else {
        return report.problem(format!("the host interface must be a name like \"enp3s0\", got {}", show(host)));
    };
    let report = Report { call: format!("{}({host:?})", method.name()), ..report };
    let vf_index = match &index {
        Some(value) => match args::whole_number(value).and_then(|n| u32::try_from(n).ok()) {
            Some(n) => Some(n),
            None => return report.problem(format!("the VF index must be a whole number from 0, got {}", show(value))),
        },
        None => None,
    };
    let opts = match args::options(opts) {
        Ok(opts) => opts,
        Err(message) => return report.problem(message),
    };
    let mut ok = true;
    let mut addresses = Vec::new();
    let (mut name, mut mtu, mut force, mut mode) = (None, None, false, MacvlanMode::Bridge);
    if let Some(opts) = &opts {
        for key in args::unknown_keys(opts, method.keys(), i64::MAX) {
            report.problem_with(format!("unknown option {key}"), args::valid_keys_help(method.keys()))?;
            ok = false;
        }
        addresses = read_addresses(opts, &report, &mut ok)?;
        name = read_name(opts, &report, &mut ok)?;
        mtu = read_count(opts, "mtu", &report, &mut ok)?;
        force = read_bool(opts, "force", &report, &mut ok)?.unwrap_or(false);
        if let Some(text) = read_string(opts, "mode", &report, &mut ok)? {
            match MacvlanMode::parse(&text) {
                Some(m) => mode = m,
                None => {
                    report.problem_with(
                        format!("mode {text:?} is not a macvlan mode"),
                        format!("mode is one of {}", MacvlanMode::NAMES.join(", ")),
                    )?;
                    ok = false;
                }
            }
        }
    }
    if !ok {
        return Ok(());
    }
    let source = match method {
        Method::Nic => NicSource::Whole { host },
        Method::Macvlan => NicSource::Macvlan { host, mode },
        Method::Vf => NicSource::Vf { pf: host, index: vf_index.expect("read above for vf()") },
    };
    let origin = builder::origin(lua)?;
    builder::with(lua, |b| {
        let node = b.lab.nodes[node].name.clone();
        let ifname = name.unwrap_or_else(|| b.next_ifname(&node, None));
        b.lab.nics.push(NicClaim { node, ifname, source, addresses, mtu, force, origin });
    })
}

/// The positional entries: CIDR strings.
fn read_addresses(opts: &Table, report: &Report, ok: &mut bool) -> mlua::Result<Vec<IpNet>> {
    let mut addresses = Vec::new();
    for item in opts.sequence_values::<Value>() {
        let item = item?;
        match args::string(&item).map(|t| args::cidr(&t)) {
            Some(Ok(net)) => addresses.push(net),
            Some(Err(message)) => {
                report.problem(message)?;
                *ok = false;
            }
            None => {
                report.problem(format!("{} is not an address (expected a CIDR string)", show(&item)))?;
                *ok = false;
            }
        }
    }
    Ok(addresses)
}

fn read_string(opts: &Table, key: &str, report: &Report, ok: &mut bool) -> mlua::Result<Option<String>> {
    match opts.raw_get::<Value>(key)? {
        Value::Nil => Ok(None),
        Value::String(s) => Ok(Some(s.to_string_lossy())),
        other => {
            report.problem(format!("{key} must be a string, got {}", show(&other)))?;
            *ok = false;
            Ok(None)
        }
    }
}

fn read_name(opts: &Table, report: &Report, ok: &mut bool) -> mlua::Result<Option<String>> {
    read_string(opts, "name", report, ok)
}

fn read_bool(opts: &Table, key: &str, report: &Report, ok: &mut bool) -> mlua::Result<Option<bool>> {
    match opts.raw_get::<Value>(key)? {
        Value::Nil => Ok(None),
        Value::Boolean(on) => Ok(Some(on)),
        other => {
            report.problem(format!("{key} must be true or false, got {}", show(&other)))?;
            *ok = false;
            Ok(None)
        }
    }
}

fn read_count(opts: &Table, key: &str, report: &Report, ok: &mut bool) -> mlua::Result<Option<u32>> {
    let value = opts.raw_get::<Value>(key)?;
    if value.is_nil() {
        return Ok(None);
    }
    let number = args::whole_number(&value).and_then(|n| u32::try_from(n).ok());
    if number.is_none() {
        report.problem(format!("{key} must be a whole number from 0, got {}", show(&value)))?;
        *ok = false;
    }
    Ok(number)
}

const SRIOV_EXAMPLE: &str =
    r#"write sriov("enp3s0", { vfs = 2, vf = { [0] = { mac = "02:00:00:00:00:01", vlan = 100, trust = true } } })"#;

/// `sriov(pf, { vfs = N, vf = { [i] = { ... } } })`
pub(super) fn sriov(lua: &Lua, (pf, opts): (Value, Value)) -> mlua::Result<()> {
    let report = Report { lua, call: "sriov()".into(), help: SRIOV_EXAMPLE.into() };
    let Some(pf) = args::string(&pf).filter(|p| !p.is_empty()) else {
        return report.problem(format!("the PF must be an interface name like \"enp3s0\", got {}", show(&pf)));
    };
    let report = Report { call: format!("sriov({pf:?})"), ..report };
    let Value::Table(opts) = opts else {
        return report.problem(format!("expected a table like {{ vfs = 2 }}, got {}", show(&opts)));
    };
    let mut ok = true;
    for key in args::unknown_keys(&opts, SRIOV_KEYS, 0) {
        report.problem_with(format!("unknown option {key}"), args::valid_keys_help(SRIOV_KEYS))?;
        ok = false;
    }
    let Some(vfs) = read_count(&opts, "vfs", &report, &mut ok)? else {
        if ok {
            report.problem("vfs is missing: how many VFs the PF gets")?;
        }
        return Ok(());
    };
    let mut settings = Vec::new();
    match opts.raw_get::<Value>("vf")? {
        Value::Nil => {}
        Value::Table(list) => {
            for pair in list.pairs::<Value, Value>() {
                let (key, value) = pair?;
                let Some(index) = args::whole_number(&key).and_then(|n| u32::try_from(n).ok()) else {
                    report.problem(format!("vf: the key {} is not a VF index (0, 1, ...)", show(&key)))?;
                    ok = false;
                    continue;
                };
                let report = Report { call: format!("sriov({pf:?}) vf[{index}]"), ..report.clone() };
                match read_vf(index, value, &report)? {
                    Some(s) => settings.push(s),
                    None => ok = false,
                }
            }
        }
        other => {
            report.problem(format!("vf must be a table of VF settings by index, got {}", show(&other)))?;
            ok = false;
        }
    }
    if !ok {
        return Ok(());
    }
    settings.sort_by_key(|s| s.index);
    let origin = builder::origin(lua)?;
    builder::with(lua, |b| b.lab.sriov.push(Sriov { pf, vfs, settings, origin }))
}

/// One VF's PF-side settings; None after reporting a problem.
fn read_vf(index: u32, value: Value, report: &Report) -> mlua::Result<Option<VfSettings>> {
    let Value::Table(opts) = value else {
        report.problem(format!("expected a table like {{ mac = \"02:00:00:00:00:01\" }}, got {}", show(&value)))?;
        return Ok(None);
    };
    let mut ok = true;
    for key in args::unknown_keys(&opts, VF_KEYS, 0) {
        report.problem_with(format!("unknown option {key}"), args::valid_keys_help(VF_KEYS))?;
        ok = false;
    }
    let mut vf = VfSettings { index, ..VfSettings::default() };
    if let Some(text) = read_string(&opts, "mac", report, &mut ok)? {
        match text.parse::<MacAddr>() {
            Ok(mac) => vf.mac = Some(mac),
            Err(e) => {
                report.problem(format!("mac: {e}"))?;
                ok = false;
            }
        }
    }
    vf.vlan = read_count(&opts, "vlan", report, &mut ok)?;
    vf.qos = read_count(&opts, "qos", report, &mut ok)?;
    vf.spoofchk = read_bool(&opts, "spoofchk", report, &mut ok)?;
    vf.trust = read_bool(&opts, "trust", report, &mut ok)?;
    vf.min_tx_rate = read_count(&opts, "min_tx_rate", report, &mut ok)?;
    vf.max_tx_rate = read_count(&opts, "max_tx_rate", report, &mut ok)?;
    if let Some(text) = read_string(&opts, "link_state", report, &mut ok)? {
        match VfLinkState::parse(&text) {
            Some(state) => vf.link_state = Some(state),
            None => {
                report.problem_with(
                    format!("link_state {text:?} is not a VF link state"),
                    format!("link_state is one of {}", VfLinkState::NAMES.join(", ")),
                )?;
                ok = false;
            }
        }
    }
    Ok(ok.then_some(vf))
}
