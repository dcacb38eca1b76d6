//! The method names of `x` and `x.h1`, for "did you mean" on a misspelt
//! method: read from their registrations (api.rs and the domain files it
//! calls), by running `add_methods` against [`Names`], a registry that
//! keeps the names and drops the functions. Nothing to keep in step by hand.

use std::marker::PhantomData;
use std::sync::LazyLock;

use mlua::{FromLuaMulti, IntoLuaMulti, Lua, MaybeSend, UserData, UserDataMethods};

use super::runtime::{NodeRef, Runtime};
use super::spawn::Spawned;

/// Who has which methods, in registration order.
static TABLE: LazyLock<[(&str, Vec<&str>); 3]> = LazyLock::new(|| {
    [
        ("a node (x.h1)", registered::<NodeRef>()),
        ("a background process (x.h1:spawn)", registered::<Spawned>()),
        ("x", registered::<Runtime>()),
    ]
});

static METHODS: LazyLock<Vec<(&str, &[&str])>> =
    LazyLock::new(|| TABLE.iter().map(|(owner, names)| (*owner, names.as_slice())).collect());

/// What an experiment's objects offer, as `script::Methods`.
pub fn methods() -> crate::script::Methods<'static> {
    &METHODS
}

/// The names `T::add_methods` registers (metamethods left out). Leaked once
/// per process: the table lives as long as the program.
fn registered<T: UserData>() -> Vec<&'static str> {
    let mut names = Names::<T> { names: Vec::new(), of: PhantomData };
    T::add_methods(&mut names);
    names.names.into_iter().map(|n| &*n.leak()).collect()
}

/// A method registry that keeps only the names.
struct Names<T> {
    names: Vec<String>,
    of: PhantomData<T>,
}

impl<T> Names<T> {
    fn add(&mut self, name: impl Into<String>) {
        self.names.push(name.into());
    }
}

impl<T> UserDataMethods<T> for Names<T> {
    fn add_method<M, A, R>(&mut self, name: impl Into<String>, _: M)
    where
        M: Fn(&Lua, &T, A) -> mlua::Result<R> + MaybeSend + 'static,
        A: FromLuaMulti,
        R: IntoLuaMulti,
    {
        self.add(name);
    }

    fn add_method_mut<M, A, R>(&mut self, name: impl Into<String>, _: M)
    where
        M: FnMut(&Lua, &mut T, A) -> mlua::Result<R> + MaybeSend + 'static,
        A: FromLuaMulti,
        R: IntoLuaMulti,
    {
        self.add(name);
    }

    fn add_function<F, A, R>(&mut self, name: impl Into<String>, _: F)
    where
        F: Fn(&Lua, A) -> mlua::Result<R> + MaybeSend + 'static,
        A: FromLuaMulti,
        R: IntoLuaMulti,
    {
        self.add(name);
    }

    fn add_function_mut<F, A, R>(&mut self, name: impl Into<String>, _: F)
    where
        F: FnMut(&Lua, A) -> mlua::Result<R> + MaybeSend + 'static,
        A: FromLuaMulti,
        R: IntoLuaMulti,
    {
        self.add(name);
    }

    fn add_meta_method<M, A, R>(&mut self, _: impl Into<String>, _: M)
    where
        M: Fn(&Lua, &T, A) -> mlua::Result<R> + MaybeSend + 'static,
        A: FromLuaMulti,
        R: IntoLuaMulti,
    {
    }

    fn add_meta_method_mut<M, A, R>(&mut self, _: impl Into<String>, _: M)
    where
        M: FnMut(&Lua, &mut T, A) -> mlua::Result<R> + MaybeSend + 'static,
        A: FromLuaMulti,
        R: IntoLuaMulti,
    {
    }

    fn add_meta_function<F, A, R>(&mut self, _: impl Into<String>, _: F)
    where
        F: Fn(&Lua, A) -> mlua::Result<R> + MaybeSend + 'static,
        A: FromLuaMulti,
        R: IntoLuaMulti,
    {
    }

    fn add_meta_function_mut<F, A, R>(&mut self, _: impl Into<String>, _: F)
    where
        F: FnMut(&Lua, A) -> mlua::Result<R> + MaybeSend + 'static,
        A: FromLuaMulti,
        R: IntoLuaMulti,
    {
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;
    use std::time::Duration;

    use mlua::Value;

    use super::*;
    use crate::experiment::limit::Limit;

    fn names(owner: &str) -> BTreeSet<&'static str> {
        let (_, names) = methods().iter().find(|(o, _)| *o == owner).expect("owner listed");
        names.iter().copied().collect()
    }

    /// Every listed name is a function on a real `x` / `x.h1`: nothing
    /// listed is unregistered.
    #[test]
    fn every_listed_method_is_callable_from_lua() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("lab.lua");
        std::fs::write(&file, "node(\"h1\")\n").unwrap();
        let script = crate::script::load(&file).unwrap_or_else(|e| panic!("{e}"));
        let limit = Arc::new(Limit::new(Duration::from_secs(1)));
        let runtime = Runtime::new(script.lab.clone(), Default::default(), None, limit);
        let node = NodeRef { runtime: runtime.clone(), name: "h1".into() };
        let x = script.lua.create_userdata(runtime).unwrap();
        let h1 = script.lua.create_userdata(node).unwrap();
        let index: mlua::Function = script.lua.load("return function(o, k) return o[k] end").eval().unwrap();
        for (owner, ud) in [("x", &x), ("a node (x.h1)", &h1)] {
            for name in names(owner) {
                let value: Value = index.call((ud, name)).unwrap_or_else(|e| panic!("{owner}.{name}: {e}"));
                assert!(value.is_function(), "{owner}.{name} is listed but is {}", value.type_name());
            }
        }
    }

    /// The names registered by literal in the files that register `x`'s and
    /// `x.h1`'s methods (api.rs names the domains), read from the source.
    fn in_source() -> BTreeSet<&'static str> {
        let files = [
            include_str!("api.rs"),
            include_str!("results.rs"),
            include_str!("counters.rs"),
            include_str!("traces.rs"),
            include_str!("host_sysctl.rs"),
            include_str!("ipsec.rs"),
            include_str!("xdp.rs"),
            include_str!("chart.rs"),
            include_str!("traffic.rs"),
            include_str!("spawn.rs"),
            include_str!("send.rs"),
            include_str!("impair.rs"),
        ];
        let mut found = BTreeSet::new();
        for text in files {
            for call in ["add_method(\"", "add_function(\"", "add_method_mut(\"", "add_function_mut(\""] {
                found.extend(text.split(call).skip(1).filter_map(|rest| rest.split('"').next()));
            }
        }
        found
    }

    /// Every method registered is listed, for `x` or for a node.
    #[test]
    fn every_registered_method_is_listed() {
        let listed: BTreeSet<&str> =
            ["x", "a node (x.h1)", "a background process (x.h1:spawn)"].into_iter().flat_map(names).collect();
        let missing: Vec<&str> = in_source().difference(&listed).copied().collect();
        assert!(missing.is_empty(), "registered but not listed: {missing:?}");
        assert!(names("x").contains("snapshot") && names("a node (x.h1)").contains("ping"));
        // api.rs names every domain whose register() this reads.
        let api = include_str!("api.rs");
        let domains = [
            "results",
            "counters",
            "traces",
            "host_sysctl",
            "ipsec",
            "xdp",
            "chart",
            "traffic",
            "spawn",
            "send",
            "impair",
        ];
        for domain in domains {
            assert!(api.contains(&format!("{domain}::register(methods)")), "api.rs no longer registers {domain}");
        }
    }
}
