//! What moved between two snapshots of a counter map.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Per-key difference `after - before` of two counter snapshots.
///
/// Saturating: a counter that went backwards (an interface re-created, a
/// counter reset) shows 0 rather than wrapping. A key only in `after`
/// counts from 0; a key only in `before` is kept with 0.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Delta(pub BTreeMap<String, u64>);

impl Delta {
    pub fn between(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> Self {
        let mut delta: BTreeMap<String, u64> = before.keys().map(|k| (k.clone(), 0)).collect();
        for (key, now) in after {
            let was = before.get(key).copied().unwrap_or(0);
            delta.insert(key.clone(), now.saturating_sub(was));
        }
        Delta(delta)
    }

    /// Only the counters that moved, so a snapshot lists what the experiment did.
    pub fn nonzero(self) -> Self {
        Delta(self.0.into_iter().filter(|(_, v)| *v != 0).collect())
    }

    /// The delta of `key`, 0 if it did not move or is unknown.
    pub fn get(&self, key: &str) -> u64 {
        self.0.get(key).copied().unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn difference_per_key_saturating() {
        let before = map(&[("a", 10), ("b", 5), ("gone", 3), ("reset", 100)]);
        let after = map(&[("a", 13), ("b", 5), ("new", 2), ("reset", 4)]);
        let d = Delta::between(&before, &after);
        assert_eq!(d.0, map(&[("a", 3), ("b", 0), ("gone", 0), ("new", 2), ("reset", 0)]));
        assert_eq!(d.get("a"), 3);
        assert_eq!(d.get("missing"), 0);
    }

    #[test]
    fn nonzero_keeps_what_moved() {
        let d = Delta::between(&map(&[("a", 1), ("b", 1)]), &map(&[("a", 4), ("b", 1)])).nonzero();
        assert_eq!(d.0, map(&[("a", 3)]));
        assert_eq!(serde_json::to_string(&d).unwrap(), r#"{"a":3}"#);
    }
}
