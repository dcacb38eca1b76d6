//! What `x:capture(...)` returns: the captured packets as normalized,
//! tcpdump-like lines (see observe::normalize), ready to snapshot.

use mlua::{MetaMethod, UserData, UserDataMethods};

#[derive(Debug, Clone, Default)]
pub struct Trace {
    pub lines: Vec<String>,
}

impl Trace {
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    /// Lines containing `pattern` (plain text, not a Lua pattern).
    pub fn count(&self, pattern: &str) -> usize {
        self.lines.iter().filter(|l| l.contains(pattern)).count()
    }
}

impl UserData for Trace {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("lines", |_, this, ()| Ok(this.lines.clone()));
        methods.add_method("count", |_, this, pattern: String| Ok(this.count(&pattern)));
        methods.add_meta_method(MetaMethod::Len, |_, this, ()| Ok(this.lines.len()));
        methods.add_meta_method(MetaMethod::ToString, |_, this, ()| Ok(this.text()));
    }
}
