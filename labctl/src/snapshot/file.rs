//! One snapshot file in insta's `.snap` format: a small YAML header between
//! `---` lines, then the contents. Written by hand because insta builds its
//! snapshots only from inside its assertion macros; the unit tests check
//! that insta itself reads what we write.

use std::fmt::Write;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFile {
    /// The lab script, relative to the project root.
    pub source: String,
    /// The script line that took the snapshot; kept in pending files only, as insta does.
    pub assertion_line: Option<u32>,
    /// What was snapshotted, e.g. `x:counters{"h1:eth0"}`.
    pub expression: Option<String>,
    pub contents: String,
}

#[derive(Debug, thiserror::Error)]
#[error("not a snapshot file: {0}")]
pub struct ParseError(&'static str);

impl SnapshotFile {
    pub fn render(&self) -> String {
        let mut out = String::from("---\n");
        let _ = writeln!(out, "source: {}", yaml_str(&self.source));
        if let Some(line) = self.assertion_line {
            let _ = writeln!(out, "assertion_line: {line}");
        }
        if let Some(expr) = &self.expression {
            let _ = writeln!(out, "expression: {}", yaml_str(expr));
        }
        out.push_str("---\n");
        out.push_str(self.contents.trim_end_matches('\n'));
        out.push('\n');
        out
    }

    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let rest = text.strip_prefix("---\n").ok_or(ParseError("no header"))?;
        let end = rest.find("\n---\n").ok_or(ParseError("unterminated header"))?;
        let (header, contents) = (&rest[..end], &rest[end + 5..]);
        let mut file =
            SnapshotFile { source: String::new(), assertion_line: None, expression: None, contents: contents.into() };
        for line in header.lines() {
            let Some((key, value)) = line.split_once(": ") else { continue };
            match key {
                "source" => file.source = yaml_value(value),
                "assertion_line" => file.assertion_line = value.trim().parse().ok(),
                "expression" => file.expression = Some(yaml_value(value)),
                _ => {}
            }
        }
        Ok(file)
    }

    /// Contents as compared: trailing blank lines and spaces do not count.
    pub fn normalized(&self) -> String {
        normalize(&self.contents)
    }
}

pub fn normalize(contents: &str) -> String {
    contents.lines().map(str::trim_end).collect::<Vec<_>>().join("\n").trim_end_matches('\n').to_string()
}

/// Plain scalars stay plain; anything YAML could misread is double-quoted
/// (a JSON string is a valid YAML double-quoted scalar).
fn yaml_str(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+ ".contains(c))
        && !s.starts_with(' ')
        && !s.ends_with(' ');
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).expect("strings serialize")
    }
}

fn yaml_value(v: &str) -> String {
    let v = v.trim();
    if v.starts_with('"') {
        serde_json::from_str(v).unwrap_or_else(|_| v.to_string())
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SnapshotFile {
        SnapshotFile {
            source: "labs/part2.lua".into(),
            assertion_line: Some(23),
            expression: Some("x:counters{\"h1:eth0\", \"r1\"}".into()),
            contents: "h1:eth0.rx_packets: 3\nh1:eth0.tx_packets: 3\n".into(),
        }
    }

    #[test]
    fn round_trips() {
        let file = sample();
        assert_eq!(
            SnapshotFile::parse(&file.render()).unwrap(),
            SnapshotFile { contents: file.contents.trim_end().to_string() + "\n", ..file }
        );
    }

    #[test]
    fn insta_reads_what_we_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ping__counters.snap");
        std::fs::write(&path, sample().render()).unwrap();
        let snap = insta::Snapshot::from_file(&path).unwrap();
        assert_eq!(snap.metadata().source(), Some("labs/part2.lua"));
        assert_eq!(snap.metadata().expression(), Some("x:counters{\"h1:eth0\", \"r1\"}"));
        assert_eq!(snap.contents().as_text().unwrap().to_string(), "h1:eth0.rx_packets: 3\nh1:eth0.tx_packets: 3");
    }
}
