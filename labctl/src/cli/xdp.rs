//! `labctl xdp LAB`: the XDP programs of a running lab, read from the
//! kernel (rtnetlink `IFLA_XDP` in every node, then the programs and their
//! maps by id), not from labctl's own records: a program attached by hand
//! with `ip link set dev eth0 xdp obj ...` shows up too. labctl's pin
//! folder is shown where there is one.

use std::collections::BTreeMap;
use std::path::PathBuf;

use labctl::apply::state::LabState;
use labctl::observe::xdp::{self as look, Value};
use labctl::plan::Step;
use labctl::sys::netns;
use serde::Serialize;

use super::{lab_name_from, running_lab, Failure, EXIT_FAILURE};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lab's name, or its script
    lab: String,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Row {
    interface: String,
    mode: String,
    programs: Vec<ProgramRow>,
    /// labctl's pin folder for this interface, if it has one.
    pins: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct ProgramRow {
    mode: String,
    id: u32,
    name: String,
    tag: String,
    maps: Vec<MapRow>,
}

#[derive(Debug, Serialize)]
struct MapRow {
    name: String,
    id: u32,
    #[serde(rename = "type")]
    map_type: String,
    max_entries: u32,
    /// Non-zero entries (per-CPU values summed), by key; absent for maps
    /// whose values cannot be read.
    values: Option<BTreeMap<String, Value>>,
}

/// How many entries of a map the text output shows.
const SHOWN: usize = 8;

pub fn run(args: Args) -> Result<(), Failure> {
    let name = lab_name_from(&args.lab)?;
    let recorded = running_lab(&name)?;
    let lab = &recorded.lab;
    let pins: BTreeMap<String, PathBuf> = LabState::open(&name)
        .and_then(|s| s.journaled().ok())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|step| match step {
            Step::AttachXdp { device, pins, .. } => Some((device.to_string(), pins)),
            _ => None,
        })
        .collect();

    let mut rows = Vec::new();
    for node in &lab.nodes {
        let ns = netns::open(&lab.netns_name(&node.name)).map_err(|e| Failure::new(EXIT_FAILURE, e))?;
        let attachments = look::attachments(&ns).map_err(|e| Failure::new(EXIT_FAILURE, e))?;
        for a in attachments {
            let interface = format!("{}:{}", node.name, a.ifname);
            let programs = a
                .programs
                .iter()
                .map(|(mode, id)| match look::program(*id) {
                    Some(p) => ProgramRow {
                        mode: mode.clone(),
                        id: *id,
                        name: p.name.clone(),
                        tag: p.tag.clone(),
                        maps: look::maps_of(&p).iter().map(map_row).collect(),
                    },
                    None => {
                        ProgramRow { mode: mode.clone(), id: *id, name: "?".into(), tag: String::new(), maps: vec![] }
                    }
                })
                .collect();
            let pins = pins.get(&interface).filter(|p| p.exists()).cloned();
            rows.push(Row { interface, mode: a.mode.clone(), programs, pins });
        }
    }

    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows).expect("rows serialize"));
        return Ok(());
    }
    if rows.is_empty() {
        println!("lab {name}: no XDP program is attached");
        return Ok(());
    }
    println!("lab {name}: {} interface{} with XDP", rows.len(), if rows.len() == 1 { "" } else { "s" });
    for row in &rows {
        for p in &row.programs {
            println!("{:<16} {:<8} {} (prog id {}, tag {})", row.interface, p.mode, p.name, p.id, p.tag);
            if let Some(pins) = &row.pins {
                println!("{:<16} pinned in {}", "", pins.display());
            }
            for m in &p.maps {
                let values = match &m.values {
                    None => String::new(),
                    Some(v) if v.is_empty() => "(empty)".into(),
                    Some(v) => {
                        let mut shown: Vec<String> =
                            v.iter().take(SHOWN).map(|(k, v)| format!("{k}={}", show(v))).collect();
                        if v.len() > SHOWN {
                            shown.push(format!("... ({} entries)", v.len()));
                        }
                        shown.join(" ")
                    }
                };
                println!("{:<16}   map {:<12} {:<14} {:>6} max  {values}", "", m.name, m.map_type, m.max_entries);
            }
        }
    }
    Ok(())
}

fn map_row(map: &labctl::bpf::maps::RawMap) -> MapRow {
    let values = look::read(map, false)
        .ok()
        .map(|elements| elements.into_iter().map(|(k, v)| (look::key_text(map, &k), v)).collect());
    MapRow {
        name: map.name.clone(),
        id: map.id,
        map_type: map.type_name().into(),
        max_entries: map.max_entries,
        values,
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::Integer(i) => i.to_string(),
        Value::Bytes(b) => b.clone(),
        Value::Struct(fields) => {
            format!("{{{}}}", fields.iter().map(|(f, v)| format!("{f}={}", show(v))).collect::<Vec<_>>().join(" "))
        }
        Value::PerCpu(all) => format!("[{}]", all.iter().map(show).collect::<Vec<_>>().join(",")),
    }
}
