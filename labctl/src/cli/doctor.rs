//! `labctl doctor`: what this machine's kernel and tools offer the labs,
//! probed, not assumed (DESIGN.md principle 7): which IPsec backend `auto`
//! picks and why, BPF type information, tracepoints, and the tools labs run.

use std::path::Path;

use comfy_table::{presets, ContentArrangement, Table};
use serde::Serialize;

use super::Failure;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the findings as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Finding {
    check: String,
    ok: bool,
    detail: String,
}

fn finding(check: impl Into<String>, ok: bool, detail: impl Into<String>) -> Finding {
    Finding { check: check.into(), ok, detail: detail.into() }
}

/// The first of `candidates` that exists, else the program found on PATH.
fn tool(name: &str, candidates: &[&str]) -> Option<String> {
    candidates.iter().find(|c| Path::new(c).exists()).map(|c| c.to_string()).or_else(|| {
        std::env::var_os("PATH")?
            .to_str()?
            .split(':')
            .map(|dir| Path::new(dir).join(name))
            .find(|p| p.is_file())
            .map(|p| p.display().to_string())
    })
}

/// The table's width: a terminal's, not the length of the longest detail.
const WIDTH: u16 = 100;

/// The package list labctl's repository keeps (`.ci/packages.txt`): here if
/// labctl runs from (or was built in) a clone, else named relative to one.
fn package_list() -> String {
    let built_in = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/packages.txt");
    match std::fs::canonicalize(&built_in) {
        Ok(path) => path.display().to_string(),
        Err(_) => ".ci/packages.txt in labctl's repository".to_string(),
    }
}

/// What x:drops and x:path need: labctl attaches its tracepoint programs
/// by BTF (`tp_btf`), so BTF is enough; tracefs (which perf and bpftrace
/// read) is reported beside it, as it is.
fn tracepoints(btf: bool) -> Finding {
    let tracefs = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .into_iter()
        .find(|dir| Path::new(dir).join("events").is_dir())
        .map_or_else(|| "tracefs not mounted, not needed".to_string(), |dir| format!("tracefs at {dir}"));
    if btf {
        finding("tracepoints (x:drops, x:path)", true, format!("attached by BTF (tp_btf); {tracefs}"))
    } else {
        finding("tracepoints (x:drops, x:path)", false, format!("no BTF to attach them by; {tracefs}"))
    }
}

/// One finding per NIC: what it is, and whether a lab can claim it whole.
fn nic_findings() -> Vec<Finding> {
    let nics = match labctl::apply::nic::inventory::inventory() {
        Ok(nics) => nics,
        Err(e) => return vec![finding("NICs", false, format!("cannot list: {e}"))],
    };
    if nics.is_empty() {
        return vec![finding("NICs", false, "none here (only virtual devices); labs can still use veth stand-ins")];
    }
    nics.into_iter()
        .map(|nic| {
            let link = match (nic.up, nic.carrier) {
                (false, _) => "down",
                (true, false) => "up, no carrier",
                (true, true) => "up, carrier",
            };
            let sriov = match nic.sriov {
                Some((current, total)) => format!("SR-IOV {current}/{total} VFs"),
                None => "no SR-IOV".to_string(),
            };
            let claim = match &nic.unclaimable {
                None => "claimable".to_string(),
                Some(why) => format!("not claimable: {why} (macvlan() can share it; force = true takes it)"),
            };
            let detail = format!(
                "{} {}, link {link}, {}/{} rx/tx queues, {sriov}; {claim}",
                nic.driver.as_deref().unwrap_or("?"),
                nic.bus,
                nic.rx_queues,
                nic.tx_queues
            );
            finding(format!("NIC {}", nic.name), nic.unclaimable.is_none(), detail)
        })
        .collect()
}

pub fn run(args: Args) -> Result<(), Failure> {
    let mut findings = Vec::new();
    let root = labctl::apply::privileges::missing().is_empty();

    // IPsec: the ESP probe needs a scratch namespace, so root.
    if root {
        let choice = labctl::apply::ipsec::auto_choice();
        findings.push(finding("kernel ESP (XFRM)", choice.esp.is_ok(), choice.reason()));
        let strongswan = labctl::apply::ipsec::strongswan::installed();
        let mut detail = format!("picks {}: {}", choice.backend, choice.reason());
        if choice.backend == labctl::model::Backend::Strongswan && !strongswan {
            detail.push_str("; but charon is missing (strongswan-* in the package list below)");
        }
        let usable = choice.esp.is_ok() || strongswan;
        findings.push(finding("ipsec backend = \"auto\"", usable, detail));
    } else {
        findings.push(finding("kernel ESP (XFRM)", false, "not probed: needs root (a scratch network namespace)"));
    }

    // VRF, 802.1Q and bridge VLAN filtering: probed in a scratch namespace, so root.
    if root {
        for (name, made) in labctl::apply::l2::kernel_features() {
            let detail = match made {
                Ok(()) => "present".to_string(),
                Err(e) => format!("absent ({e}): labs using it are refused; run them in the VM lane (.ci/vm-lane)"),
            };
            findings.push(finding(format!("kernel {name}"), detail == "present", detail));
        }
    }

    let btf = Path::new("/sys/kernel/btf/vmlinux").exists();
    findings.push(finding(
        "BTF (/sys/kernel/btf/vmlinux)",
        btf,
        if btf { "present" } else { "absent: CO-RE BPF programs cannot load" },
    ));
    findings.push(tracepoints(btf));
    let tun = Path::new("/dev/net/tun").exists();
    findings.push(finding("TUN (/dev/net/tun)", tun, if tun { "present (strongswan's ipsec0)" } else { "absent" }));

    for (name, candidates, package) in [
        ("charon", &["/usr/lib/ipsec/charon"][..], "strongswan-charon"),
        ("swanctl", &[][..], "strongswan-swanctl"),
        ("ping", &[][..], "iputils-ping"),
        ("nft", &[][..], "nftables"),
        ("clang", &[][..], "clang"),
        ("bpftool", &[][..], "bpftool"),
        ("tracepath", &[][..], "iputils-tracepath"),
        ("ethtool", &[][..], "ethtool"),
        ("tcpdump", &[][..], "tcpdump"),
    ] {
        match tool(name, candidates) {
            Some(path) => findings.push(finding(format!("tool {name}"), true, path)),
            None => {
                findings.push(finding(format!("tool {name}"), false, format!("missing: apt-get install {package}")))
            }
        }
    }

    findings.extend(nic_findings());

    if args.json {
        println!("{}", serde_json::to_string_pretty(&findings).expect("findings serialize"));
        return Ok(());
    }
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(WIDTH)
        .set_header(["CHECK", "", "DETAIL"]);
    for f in &findings {
        table.add_row([f.check.clone(), if f.ok { "ok" } else { "no" }.into(), f.detail.clone()]);
    }
    println!("{table}");
    println!("\nEverything labs use: the packages in {}", package_list());
    println!("(as root, `bash .ci/setup` in the repository installs them, and Rust if needed)");
    Ok(())
}
