use crate::model::NicSource;
use std::net::IpAddr;

use super::*;

fn eval(source: &str) -> Script {
    evaluate(Path::new("labs/t.lua"), source, |_| Vec::new()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn records_the_model_with_lines() {
    let script = eval(
        r#"
local h1, r1 = node("h1"), node("r1", { forwarding = true })
link(h1, r1, { { "198.18.0.1/24", "2001:db8::1/64" }, "198.18.0.254/24", mtu = 9e3 })
h1:route("default", "2001:db8::fe"):sysctl("net.ipv4.conf.all.rp_filter", true)
"#,
    );
    let lab = &script.lab;
    assert_eq!(lab.name, "t");
    assert_eq!(lab.nodes[1].origin, Origin::new("labs/t.lua", 2));
    assert!(lab.nodes[1].forwarding);
    let link = &lab.links[0];
    assert_eq!((link.origin.line, link.mtu), (3, Some(9000)));
    assert_eq!(link.ends[0].addresses.len(), 2);
    let route = &lab.nodes[0].routes[0];
    assert_eq!(
        (route.destination.to_string(), route.via),
        ("::/0".to_string(), "2001:db8::fe".parse::<IpAddr>().unwrap())
    );
    assert_eq!((lab.nodes[0].sysctls[0].value.as_str(), lab.nodes[0].sysctls[0].origin.line), ("1", 4));
}

#[test]
fn interface_names_count_ends_and_skip_taken_names() {
    let script = eval(
        r#"
local h1, h2, h3 = node("h1"), node("h2"), node("h3")
link(h1, h2, { names = { "eth1" } })
link(h1, h3)
link("h1", "h2")
"#,
    );
    let names: Vec<[&str; 2]> =
        script.lab.links.iter().map(|l| [l.ends[0].ifname.as_str(), l.ends[1].ifname.as_str()]).collect();
    assert_eq!(names, [["eth1", "eth0"], ["eth2", "eth0"], ["eth3", "eth1"]]);
}

#[test]
fn experiments_are_kept_for_later() {
    let script = eval(r#"experiment("answer", function() return 42 end)"#);
    assert_eq!(script.lab.experiments[0].origin.line, 1);
    let answer = script.experiment("answer").expect("stored");
    assert_eq!(answer.call::<i64>(()).unwrap(), 42);
    assert!(script.experiment("nope").is_none());
}

#[test]
fn objects_made_by_builtin_modules_point_at_the_callers_line() {
    let script = eval("local topo = require('topo')\nassert(topo == require('topo'))\ntopo.line(3)\n");
    assert!(script.lab.nodes.iter().all(|n| n.origin == Origin::new("labs/t.lua", 3)));
    assert!(script.lab.nodes[0].routes.iter().all(|r| r.origin.line == 3));
    crate::validate::validate(&script.lab).expect("topo.line is valid");
}

#[test]
fn the_sandbox_has_no_way_out() {
    eval(
        r#"
for _, name in ipairs { "os", "io", "debug", "package", "dofile", "loadfile" } do
  assert(rawget(_G, name) == nil, name)
end
assert(load("return node")() == node)
assert(load("return x", "x", "t", { x = 1 })() == 1)
assert(not load(string.dump(function() end)))
"#,
    );
}

#[test]
fn local_modules_load_from_the_lab_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    std::fs::write(dir.join("lib/pair.lua"), "return function(a, b)\n  link(node(a), node(b))\nend\n").unwrap();
    std::fs::write(dir.join("lab.lua"), "local pair = require('lib.pair')\npair('a', 'b')\n").unwrap();
    let script = load(&dir.join("lab.lua"));
    let lab = script.unwrap_or_else(|e| panic!("{e}")).lab;
    // A user module's own line: it is the user's code too.
    assert_eq!(lab.links[0].origin, Origin::new(dir.join("lib/pair.lua"), 2));
}

#[test]
fn topo_builders_make_valid_labs() {
    for call in ["topo.star(300)", "topo.tree(2, 3)", "topo.line(2)"] {
        let script = eval(&format!("topo = require('topo')\n{call}"));
        crate::validate::validate(&script.lab).unwrap_or_else(|e| panic!("{call}: {e}"));
    }
}

#[test]
fn experiments_cannot_declare_more_lab() {
    let script = eval("experiment('grow', function()\n  node('late')\nend)\n");
    let error = script.experiment("grow").unwrap().call::<()>(()).unwrap_err();
    let diagnostic = script.diagnostic(&error, Origin::new("labs/t.lua", 1), &[]);
    assert_eq!(diagnostic.origin, Origin::new("labs/t.lua", 2));
    assert!(diagnostic.message.contains("only be declared while its file is read"), "{diagnostic}");
}

/// `commands.with`: undo runs after body, after a failing body, and after a
/// make that fails halfway (part4's helper skipped undo then, so an XDP
/// program stayed attached); the first error wins and keeps its message.
#[test]
fn with_undoes_the_change_whatever_fails() {
    let script = eval(
        r#"
local with = require("commands").with
experiment("with", function()
  local log = {}
  local function run(make_fails, body_fails, undo_fails)
    local ok, err = pcall(with, function()
      log[#log + 1] = "make"
      if make_fails then error("make failed halfway", 0) end
    end, function()
      log[#log + 1] = "undo"
      if undo_fails then error("undo failed", 0) end
    end, function()
      log[#log + 1] = "body"
      if body_fails then error("body failed", 0) end
      return "result", 2
    end)
    log[#log + 1] = ok and "ok" or err
  end
  run(false, false, false)
  run(true, false, false)
  run(false, true, false)
  run(false, false, true)
  run(true, false, true)
  local a, b = with(function() end, function() end, function() return 1, 2 end)
  log[#log + 1] = a + b
  return table.concat(log, "|")
end)
"#,
    );
    let log: String = script.experiment("with").expect("stored").call(()).unwrap();
    let runs: Vec<&str> = log.split('|').collect();
    assert_eq!(
        runs,
        [
            "make",
            "body",
            "undo",
            "ok", // nothing fails
            "make",
            "undo",
            "make failed halfway", // make fails: undo still runs
            "make",
            "body",
            "undo",
            "body failed", // body fails
            "make",
            "body",
            "undo",
            "undo failed", // only undo fails
            "make",
            "undo",
            "make failed halfway\n(and undoing the change failed too: undo failed)",
            "3",
        ]
    );
}

#[test]
fn experiments_require_built_in_and_sibling_modules() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    std::fs::write(dir.join("helpers.lua"), "return { twice = function(n) return 2 * n end }\n").unwrap();
    std::fs::write(dir.join("declares.lua"), "node(\"late\")\n").unwrap();
    let lab = dir.join("t.lua");
    let source = r#"
node("h1")
experiment("uses", function() return require("helpers").twice(21) + (require("commands").must and 0 or 1) end)
experiment("declares", function() return require("declares") end)
"#;
    let script = evaluate(&lab, source, |_| Vec::new()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(script.experiment("uses").unwrap().call::<i64>(()).unwrap(), 42);
    let error = script.experiment("declares").unwrap().call::<mlua::Value>(()).unwrap_err().to_string();
    assert!(error.contains("the lab can only be declared while its file is read"), "{error}");
    assert!(error.contains("inside an experiment, require only modules that define functions"), "{error}");
}

fn eval_with(source: &str, params: &[(&str, &str)]) -> Result<Script, ScriptError> {
    let params = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    evaluate_with(Path::new("labs/t.lua"), source, &params, &|_| Ok(()), |_| Vec::new())
}

#[test]
fn params_take_the_set_value_in_the_default_s_type_and_are_recorded() {
    let source = r#"
local nic = param("nic", "veth")
local vfs = param("vfs", 2)
local fast = param("fast", false)
local h1 = node("h1")
h1:sysctl("net.core.somaxconn", vfs * 2)
assert(type(fast) == "boolean")
lab { description = nic }
"#;
    let script =
        eval_with(source, &[("nic", "enp3s0"), ("vfs", "4"), ("fast", "true")]).unwrap_or_else(|e| panic!("{e}"));
    let lab = &script.lab;
    assert_eq!(lab.description.as_deref(), Some("enp3s0"));
    assert_eq!(lab.nodes[0].sysctls[0].value, "8", "vfs read as a number");
    let shown: Vec<(&str, &str, &str, bool)> =
        lab.params.iter().map(|p| (p.name.as_str(), p.default.as_str(), p.value.as_str(), p.set)).collect();
    assert_eq!(shown, [("nic", "veth", "enp3s0", true), ("vfs", "2", "4", true), ("fast", "false", "true", true)]);
    assert_eq!(lab.params[1].origin.line, 3);

    let defaults = eval_with(source, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(defaults.lab.description.as_deref(), Some("veth"));
    assert!(defaults.lab.params.iter().all(|p| !p.set && p.value == p.default));
}

#[test]
fn a_set_the_script_never_reads_or_of_the_wrong_type_is_an_error() {
    let source = "local nic = param(\"nic\", \"veth\")\nlocal n = param(\"vfs\", 2)\nnode(\"h1\")\n";
    match eval_with(source, &[("nics", "x")]) {
        Err(ScriptError::UnknownParam { key, known, .. }) => {
            assert_eq!((key.as_str(), known), ("nics", vec!["nic".to_string(), "vfs".to_string()]))
        }
        other => panic!("expected UnknownParam, got {:?}", other.map(|s| s.lab)),
    }
    match eval_with(source, &[("vfs", "two")]) {
        Err(ScriptError::Invalid(d)) => {
            assert_eq!(d.0[0].origin.line, 2);
            assert!(d.0[0].message.contains("takes a whole number"), "{}", d.0[0].message);
        }
        other => panic!("expected a diagnostic, got {:?}", other.map(|s| s.lab)),
    }
}

#[test]
fn nic_macvlan_vf_and_sriov_record_the_model() {
    let script = eval(
        r#"
local r1, h1 = node("r1"), node("h1")
link(r1, h1)
r1:nic("enp3s0", { name = "wan0", "198.18.9.1/24", mtu = 1500, force = true })
r1:macvlan("enp5s0", { mode = "vepa" })
sriov("enp4s0", { vfs = 2, vf = { [1] = { mac = "02:00:00:00:00:01", vlan = 10, qos = 2, spoofchk = false, trust = true, link_state = "enable", max_tx_rate = 100 } } })
h1:vf("enp4s0", 1, { "198.18.8.2/24" })
"#,
    );
    let lab = &script.lab;
    let nics: Vec<(&str, &str, &NicSource)> =
        lab.nics.iter().map(|n| (n.node.as_str(), n.ifname.as_str(), &n.source)).collect();
    assert_eq!(
        nics,
        [
            ("r1", "wan0", &NicSource::Whole { host: "enp3s0".into() }),
            ("r1", "eth1", &NicSource::Macvlan { host: "enp5s0".into(), mode: crate::model::MacvlanMode::Vepa }),
            ("h1", "eth1", &NicSource::Vf { pf: "enp4s0".into(), index: 1 }),
        ],
        "unnamed devices take the next free ethN"
    );
    assert!(lab.nics[0].force);
    assert_eq!((lab.nics[0].mtu, lab.nics[0].origin.line), (Some(1500), 4));
    let vf = &lab.sriov[0].settings[0];
    assert_eq!(
        (lab.sriov[0].vfs, vf.index, vf.vlan, vf.qos, vf.spoofchk, vf.trust),
        (2, 1, Some(10), Some(2), Some(false), Some(true))
    );
    assert_eq!(
        (vf.link_state, vf.max_tx_rate, vf.min_tx_rate),
        (Some(crate::model::VfLinkState::Enable), Some(100), None)
    );
}

#[test]
fn a_gateway_on_a_vlan_subnet_is_connected() {
    let script = eval(
        r#"
local h1, r1 = node("h1"), node("r1", { forwarding = true })
link(h1, r1, {})
h1:vlan("eth0", 10, { addresses = { "198.18.10.1/24" } })
r1:vlan("eth0", 10, { addresses = { "198.18.10.254/24" } })
h1:route("default", "198.18.10.254")
"#,
    );
    // The VM lane found this: validation's lab index knew only link ends.
    let checked = crate::validate::validate(&script.lab);
    assert!(checked.is_ok(), "{}", checked.err().map(|e| e.to_string()).unwrap_or_default());
}
