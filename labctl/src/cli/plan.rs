//! `labctl plan FILE`: the steps `up` would take. Pure; needs no root.

use std::path::PathBuf;

use super::Failure;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lab script
    file: PathBuf,
    /// Print the plan as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    set: super::params::SetArgs,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let (script, plan) = labctl::load_and_plan_with(&args.file, &args.set.params())?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&plan).expect("plans serialize"));
    } else {
        let lab = &script.lab;
        println!(
            "# lab {}: {} nodes, {} links, {} steps",
            lab.name,
            lab.nodes.len(),
            lab.links.len(),
            plan.steps.len()
        );
        for line in super::params::describe(&lab.params) {
            println!("# {line}");
        }
        print!("{plan}");
    }
    Ok(())
}
