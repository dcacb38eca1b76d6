//! `labctl show LAB`: what a running lab is made of, and whether each of its
//! namespaces is still there.

use labctl::apply::{netns, state::LabState};
use labctl::model::Lab;
use serde::Serialize;

use super::{lab_name_from, running_lab, table, Failure};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lab's name, or its script
    lab: String,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Shown<'a> {
    name: &'a str,
    state: &'static str,
    script: String,
    namespaces: Vec<NamespaceState>,
    interfaces: Vec<table::InterfaceRow>,
    lab: &'a Lab,
}

#[derive(Debug, Serialize)]
struct NamespaceState {
    node: String,
    netns: String,
    present: bool,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let name = lab_name_from(&args.lab)?;
    let recorded = running_lab(&name)?;
    let lab = &recorded.lab;
    let ready = LabState::open(&name).is_some_and(|s| s.is_ready());
    let namespaces: Vec<NamespaceState> = lab
        .nodes
        .iter()
        .map(|n| {
            let netns = lab.netns_name(&n.name);
            NamespaceState { node: n.name.clone(), present: netns::exists(&netns), netns }
        })
        .collect();
    let state = match (ready, namespaces.iter().all(|n| n.present)) {
        (true, true) => "up",
        (true, false) => "damaged",
        (false, _) => "incomplete",
    };
    let shown = Shown {
        name: &name,
        state,
        script: recorded.script.display().to_string(),
        namespaces,
        interfaces: table::interface_rows(lab),
        lab,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&shown).expect("serializes"));
        return Ok(());
    }
    println!("lab {name} ({state}) from {}", shown.script);
    if let Some(d) = &lab.description {
        println!("  {d}");
    }
    for ns in shown.namespaces.iter().filter(|n| !n.present) {
        println!("  missing namespace: {} (node {})", ns.netns, ns.node);
    }
    println!("\n{}", table::render(&shown.interfaces));
    let routes: Vec<String> = lab
        .nodes
        .iter()
        .flat_map(|n| n.routes.iter().map(move |r| format!("  {}: {} via {}", n.name, r.destination, r.via)))
        .collect();
    if !routes.is_empty() {
        println!("\nroutes:\n{}", routes.join("\n"));
    }
    Ok(())
}
