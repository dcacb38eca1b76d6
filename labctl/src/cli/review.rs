//! `labctl review`: the pending (new or changed) snapshots with their diffs;
//! `--accept` or `--reject` settles them all.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use labctl::snapshot::{diff, SnapshotFile, Store};

use super::{Failure, EXIT_FAILURE};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The snapshots folder [default: the nearest `snapshots/` folder here or
    /// above (or at the top of this git repository), the rule `labctl test` uses from a lab's folder]
    #[arg(long)]
    snapshots: Option<PathBuf>,
    /// Only this lab's snapshots
    #[arg(long)]
    lab: Option<String>,
    /// Accept every pending snapshot
    #[arg(long, conflicts_with = "reject")]
    accept: bool,
    /// Delete every pending snapshot
    #[arg(long)]
    reject: bool,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let root = args.snapshots.clone().unwrap_or_else(|| super::test::snapshot_root(Path::new(".")));
    let store = Store::new(&root);
    let pending = store.pending(args.lab.as_deref());
    if pending.is_empty() {
        eprintln!("no pending snapshots under {}", root.display());
        return Ok(());
    }
    let io = |e: labctl::snapshot::store::StoreError| Failure::new(EXIT_FAILURE, anyhow!(e));
    for path in &pending {
        let committed = PathBuf::from(path.to_string_lossy().trim_end_matches(".new"));
        if args.accept {
            Store::accept(path).map_err(io)?;
            println!("accepted {}", committed.display());
        } else if args.reject {
            Store::reject(path).map_err(io)?;
            println!("rejected {}", path.display());
        } else {
            let new = std::fs::read_to_string(path).map_err(|e| Failure::new(EXIT_FAILURE, e))?;
            let new = SnapshotFile::parse(&new).map(|f| f.normalized()).unwrap_or(new);
            let old = std::fs::read_to_string(&committed)
                .ok()
                .map(|t| SnapshotFile::parse(&t).map(|f| f.normalized()).unwrap_or(t))
                .unwrap_or_default();
            println!("{} ({})", committed.display(), if old.is_empty() { "new" } else { "changed" });
            print!("{}", diff::render(&old, &new, std::io::stdout().is_terminal()));
        }
    }
    if !args.accept && !args.reject {
        eprintln!("{} pending; `labctl review --accept` accepts them all, `--reject` deletes them", pending.len());
    }
    Ok(())
}
