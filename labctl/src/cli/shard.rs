//! `labctl test --shard K/N`: a stable, balanced share of the labs, so that
//! N CI jobs with the same list together run every lab exactly once.
//!
//! Balanced by each lab's recorded duration (`--durations FILE`, written by
//! an earlier run) where the file has one, by count otherwise: the labs,
//! longest first, each go to the share with the least work so far. Every job
//! must see the same file (commit it, or restore it from one cache key), or
//! their shares would disagree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// Share `index` (1-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a shard: write K/N with 1 <= K <= N, e.g. --shard 2/3");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (k.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// Seconds each lab took, keyed by the lab's path relative to the file's folder.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Durations(BTreeMap<String, f64>);

impl Durations {
    /// The recorded durations, or none when the file does not exist yet.
    pub fn load(path: &Path) -> anyhow::Result<Durations> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{}: not a durations file: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Durations::default()),
            Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        }
    }

    /// Records `took` for each lab and writes the file (a temporary file,
    /// then a rename, so a killed run leaves the old file whole).
    pub fn save(mut self, path: &Path, took: &[(PathBuf, Duration)]) -> std::io::Result<()> {
        for (file, time) in took {
            self.0.insert(key(path, file), (time.as_secs_f64() * 10.0).round() / 10.0);
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(&self.0).expect("durations serialize") + "\n")?;
        std::fs::rename(tmp, path)
    }

    fn get(&self, path: &Path, file: &Path) -> Option<f64> {
        self.0.get(&key(path, file)).copied()
    }
}

fn key(durations_file: &Path, lab: &Path) -> String {
    let base = super::absolute(durations_file.parent().unwrap_or(Path::new(".")));
    let lab = super::absolute(lab);
    lab.strip_prefix(&base).unwrap_or(&lab).display().to_string()
}

/// Each lab's weight: its recorded seconds; a lab no run has timed yet
/// counts as an average one.
fn weights(files: &[PathBuf], durations: &Durations, durations_file: &Path) -> Vec<f64> {
    let known: Vec<f64> = files.iter().filter_map(|f| durations.get(durations_file, f)).collect();
    let typical = if known.is_empty() { 1.0 } else { known.iter().sum::<f64>() / known.len() as f64 };
    files.iter().map(|f| durations.get(durations_file, f).unwrap_or(typical)).collect()
}

/// The indices of `files`, longest recorded first (ties in path order):
/// the order that balances shards, and that `test -j` starts labs in, so
/// the longest lab is not the last to begin.
pub fn longest_first(files: &[PathBuf], durations: &Durations, durations_file: &Path) -> Vec<usize> {
    let weight = weights(files, durations, durations_file);
    let mut order: Vec<usize> = (0..files.len()).collect();
    order.sort_by(|&a, &b| weight[b].total_cmp(&weight[a]).then_with(|| files[a].cmp(&files[b])));
    order
}

/// The labs of `shard`, in the order of `files`.
pub fn select(files: &[PathBuf], shard: Shard, durations: &Durations, durations_file: &Path) -> Vec<PathBuf> {
    let weight = weights(files, durations, durations_file);
    let mut load = vec![0.0f64; shard.count];
    let mut mine = Vec::new();
    for i in longest_first(files, durations, durations_file) {
        let lightest = (0..shard.count).min_by(|&a, &b| load[a].total_cmp(&load[b])).expect("count >= 1");
        load[lightest] += weight[i];
        if lightest + 1 == shard.index {
            mine.push(i);
        }
    }
    mine.sort_unstable();
    mine.into_iter().map(|i| files[i].clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labs(n: usize) -> Vec<PathBuf> {
        (1..=n).map(|i| PathBuf::from(format!("labs/l{i:02}.lua"))).collect()
    }

    #[test]
    fn shards_cover_every_lab_exactly_once() {
        let files = labs(11);
        let none = Durations::default();
        for count in 1..=5 {
            let mut seen: Vec<PathBuf> = (1..=count)
                .flat_map(|index| select(&files, Shard { index, count }, &none, Path::new("d.json")))
                .collect();
            seen.sort();
            assert_eq!(seen, files, "{count} shards");
        }
    }

    #[test]
    fn recorded_durations_balance_the_shares() {
        let files = labs(4);
        let mut d = Durations::default();
        for (name, secs) in
            [("labs/l01.lua", 60.0), ("labs/l02.lua", 20.0), ("labs/l03.lua", 20.0), ("labs/l04.lua", 20.0)]
        {
            d.0.insert(name.to_string(), secs);
        }
        let base = std::env::current_dir().unwrap().join("d.json");
        let one = select(&files, Shard { index: 1, count: 2 }, &d, &base);
        let two = select(&files, Shard { index: 2, count: 2 }, &d, &base);
        assert_eq!(one, vec![PathBuf::from("labs/l01.lua")]);
        assert_eq!(two.len(), 3);
    }

    #[test]
    fn parses_k_of_n_and_refuses_the_rest() {
        assert_eq!("2/3".parse::<Shard>(), Ok(Shard { index: 2, count: 3 }));
        for bad in ["0/3", "4/3", "3", "a/b", "1/0"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
