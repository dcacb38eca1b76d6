//! Snapshot stage: experiment results compared with committed snapshots in
//! insta's `.snap` format, with pending `.snap.new` files to accept.

pub mod diff;
pub mod file;
pub mod store;

pub use file::SnapshotFile;
pub use store::{Outcome, Store};
