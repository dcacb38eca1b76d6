//! Kernel code addresses to function names, from /proc/kallsyms (root sees
//! real addresses; without them every lookup is `None`).

use std::collections::BTreeMap;

/// Text symbols of the running kernel, by start address.
pub struct Symbols(BTreeMap<u64, String>);

impl Symbols {
    pub fn load() -> Symbols {
        let text = std::fs::read_to_string("/proc/kallsyms").unwrap_or_default();
        Symbols(parse(&text))
    }

    /// The function that contains `address`, e.g. `ip_error`.
    pub fn lookup(&self, address: u64) -> Option<&str> {
        if address == 0 {
            return None;
        }
        self.0.range(..=address).next_back().map(|(_, name)| name.as_str())
    }
}

fn parse(text: &str) -> BTreeMap<u64, String> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let addr = u64::from_str_radix(parts.next()?, 16).ok()?;
            let kind = parts.next()?;
            let name = parts.next()?;
            (addr != 0 && matches!(kind, "t" | "T")).then(|| (addr, name.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_enclosing_function() {
        let s = Symbols(parse("ffffffff81000000 T _text\nffffffff81000100 t ip_error\nffffffff81000200 D data\n"));
        assert_eq!(s.lookup(0xffffffff81000150), Some("ip_error"));
        assert_eq!(s.lookup(0xffffffff81000250), Some("ip_error"));
        assert_eq!(s.lookup(0), None);
        assert!(Symbols(parse("0000000000000000 T x\n")).lookup(5).is_none());
    }
}
