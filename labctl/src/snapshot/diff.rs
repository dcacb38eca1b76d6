//! A readable line diff between a committed and a fresh snapshot.

use similar::{ChangeTag, TextDiff};

/// Whole lines on both sides: snapshot text has no final newline, and a last
/// line "x" would otherwise not match "x\n" in the middle of the other side.
fn lines(text: &str) -> String {
    if text.is_empty() || text.ends_with('\n') {
        text.to_string()
    } else {
        format!("{text}\n")
    }
}

/// `-` lines were in the committed snapshot, `+` lines are new; unchanged
/// lines around a change are shown for context. Coloured when `color`.
pub fn render(old: &str, new: &str, color: bool) -> String {
    let (red, green, dim, reset) =
        if color { ("\x1b[31m", "\x1b[32m", "\x1b[2m", "\x1b[0m") } else { ("", "", "", "") };
    let (old, new) = (lines(old), lines(new));
    let diff = TextDiff::from_lines(&old, &new);
    let mut out = String::new();
    for (i, group) in diff.grouped_ops(3).iter().enumerate() {
        if i > 0 {
            out.push_str(&format!("{dim}   ...{reset}\n"));
        }
        for op in group {
            for change in diff.iter_changes(op) {
                let line = change.value().trim_end_matches('\n');
                match change.tag() {
                    ChangeTag::Delete => out.push_str(&format!("{red}-  {line}{reset}\n")),
                    ChangeTag::Insert => out.push_str(&format!("{green}+  {line}{reset}\n")),
                    ChangeTag::Equal => out.push_str(&format!("{dim}   {line}{reset}\n")),
                }
            }
        }
    }
    out
}

/// The first changed line of the fresh snapshot (its text), for one-line reports.
pub fn first_change(old: &str, new: &str) -> Option<String> {
    let (old, new) = (lines(old), lines(new));
    let diff = TextDiff::from_lines(&old, &new);
    let change = diff.iter_all_changes().find(|c| c.tag() != ChangeTag::Equal)?;
    let sign = if change.tag() == ChangeTag::Insert { "+" } else { "-" };
    Some(format!("{sign}{}", change.value().trim_end()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_removed_and_added_lines() {
        let d = render("a: 1\nb: 2\nc: 3\n", "a: 1\nb: 5\nc: 3\n", false);
        assert!(d.contains("-  b: 2\n+  b: 5\n"), "{d}");
        assert_eq!(first_change("a\nb\n", "a\nc\n").as_deref(), Some("-b"));
        // An unchanged last line is not shown as removed and added.
        assert_eq!(first_change("x\ny", "y").as_deref(), Some("-x"));
        assert!(!render("x\ny", "y\nz", false).contains("-  y"));
    }
}
