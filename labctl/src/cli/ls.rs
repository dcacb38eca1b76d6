//! `labctl ls`: the labs with a state directory, and whether they are whole.

use comfy_table::{presets, Table};
use labctl::apply::state::LabState;
use serde::Serialize;

use super::Failure;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Entry {
    name: String,
    /// "up", "building" (its `labctl up` still runs) or "broken" (it died: run `labctl down`).
    state: &'static str,
    nodes: usize,
    links: usize,
    script: String,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let entries: Vec<Entry> = LabState::list().iter().filter_map(|n| LabState::open(n)).map(|s| entry(&s)).collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&entries).expect("entries serialize"));
        return Ok(());
    }
    if entries.is_empty() {
        eprintln!("no labs running");
        return Ok(());
    }
    let mut table = Table::new();
    table.load_preset(presets::NOTHING).set_header(["LAB", "STATE", "NODES", "LINKS", "SCRIPT"]);
    for e in &entries {
        table.add_row([e.name.clone(), e.state.into(), e.nodes.to_string(), e.links.to_string(), e.script.clone()]);
    }
    println!("{table}");
    Ok(())
}

fn entry(state: &LabState) -> Entry {
    let recorded = state.recorded().ok();
    let builder_alive = recorded.as_ref().is_some_and(|r| std::path::Path::new(&format!("/proc/{}", r.pid)).exists());
    let status = match (state.is_ready(), builder_alive) {
        (true, _) => "up",
        (false, true) => "building",
        (false, false) => "broken",
    };
    Entry {
        name: state.name().to_string(),
        state: status,
        nodes: recorded.as_ref().map_or(0, |r| r.lab.nodes.len()),
        links: recorded.as_ref().map_or(0, |r| r.lab.links.len()),
        script: recorded.map_or_else(String::new, |r| r.script.display().to_string()),
    }
}
