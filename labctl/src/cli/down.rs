//! `labctl down LAB|FILE`: remove everything a lab's journal names.

use labctl::apply::{self, Down};

use super::{lab_name_from, Failure};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lab's name, or its script
    lab: String,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let name = lab_name_from(&args.lab)?;
    match apply::down(&name)? {
        Down::NotRunning => eprintln!("lab {name} is not running; nothing to do"),
        Down::Removed(r) => {
            let stopped = if r.processes > 0 { format!(", stopped {} processes", r.processes) } else { String::new() };
            eprintln!("lab {name} is down: removed {} namespaces{stopped}", r.namespaces);
        }
    }
    Ok(())
}
