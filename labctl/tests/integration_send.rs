//! Crafted packets (`x.h1:send`), nftables rule counters (`"h2:nft:..."`)
//! and tc filter counters (`"h2:eth0:tc:..."`) in `x:counters`, against the
//! kernel, in a sandbox: every field asked for reaches the wire, as
//! nftables rules and tc filters on the receiver (set up by the lab with
//! `nft` and `tc`, as a user would) match and count them, read back by name
//! over nfnetlink and rtnetlink.

mod common;

use common::*;

const LAB: &str = r#"
lab { name = "sendit" }
local h1, h2 = node("h1"), node("h2")
link(h1, h2, { { "198.18.0.1/24", "2001:db8::1/64" }, { "198.18.0.2/24", "2001:db8::2/64" } })
local RULES = [[
table inet t {
  chain input {
    type filter hook input priority 0; policy accept;
    ip saddr 240.0.0.1 ip ttl 7 ip dscp ef udp dport 4242 @th,64,16 0x6869 counter comment "spoofed-udp"
    ether saddr 02:00:00:00:00:99 ip saddr 198.18.0.77 counter comment "own-source"
    ip6 saddr fe80::7 ip6 hoplimit 3 tcp flags syn tcp dport 80 counter comment "syn6"
    icmp type echo-request ip frag-off & 0x4000 != 0 counter
  }
}
]]
experiment("send", function(x)
  local loaded = x.h2:run{ "nft", RULES }
  x:expect(loaded.status == 0, "nft: " .. loaded.stderr)
  x.h1:ping("198.18.0.2", { count = 1 })
  x.h1:ping("2001:db8::2", { count = 1, timeout = 3 })
  local names = { "h2:nft:inet/t/input/spoofed-udp", "h2:nft:inet/t/input/own-source", "h2:nft:inet/t/input/syn6" }
  local before = x:counters("h2:nft")
  local r = x.h1:send{ to = "198.18.0.2", src = "240.0.0.1", ttl = 7, dscp = 46, dport = 4242, payload = "hi", count = 7 }
  x:snapshot("report", r)
  x.h1:send{ to = "198.18.0.2", src = "198.18.0.77", src_mac = "02:00:00:00:00:99", count = 3 }
  x.h1:send{ to = "2001:db8::2", src = "fe80::7", ttl = 3, proto = "tcp", flags = "S", dport = 80, count = 2 }
  x.h1:send{ to = "198.18.0.2", proto = "icmp", df = true, size = 32, count = 4 }
  -- A loaded machine may process the frames later (ksoftirqd): 5 s at most.
  local now = x:counters(names)
  for _ = 1, 100 do
    if now[names[1]].packets >= 7 and now[names[2]].packets >= 3 and now[names[3]].packets >= 2 then break end
    x:sleep(0.05)
    now = x:counters(names)
  end
  x:sleep(0.05)
  now = x:counters(names)
  x:snapshot("counted", {
    spoofed_udp = now[names[1]].packets,
    spoofed_udp_bytes = now[names[1]].bytes,
    own_source = now[names[2]].packets,
    syn6 = now[names[3]].packets,
  })
  -- The rule without a comment is named by its handle, among all of h2's.
  local all, by_handle = x:counters("h2:nft")["h2:nft"], nil
  for name, v in pairs(all) do
    if name:match("^inet/t/input/%d+%.packets$") then by_handle = v - before["h2:nft"][name] end
  end
  x:snapshot("by-handle", { echo_df = by_handle, rules = #(function() local t = {} for k in pairs(all) do t[#t+1] = k end return t end)() })
end)
experiment("unknown-rule", function(x)
  x:counters("h2:nft:inet/t/input/nope")
end)
"#;

#[test]
fn crafted_packets_carry_their_fields_and_nft_rules_count_them_by_name() {
    require_root();
    let sb = Sandbox::new();
    let before = sb.host_state();
    let tmp = temp_dir("send");
    let dir = tmp.path().to_path_buf();
    let lab = dir.join("sendit.lua");
    std::fs::write(&lab, LAB).expect("write the lab");
    let out = sb.labctl(["run".as_ref(), lab.as_os_str(), "--out".as_ref(), dir.join("run").as_os_str()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "the unknown rule fails its experiment\n{}", describe(&out));
    for expected in [
        // 14 + 20 + 8 + 2
        "frame_bytes: 44\nsent: 7",
        // Each 30 bytes of IPv4 as the input hook sees it.
        "own_source: 3\nspoofed_udp: 7\nspoofed_udp_bytes: 210\nsyn6: 2",
        "echo_df: 4\nrules: 8",
        "no nftables rule \"inet/t/input/nope\" with a counter in h2 (its counted rules: inet/t/input/spoofed-udp, \
         inet/t/input/own-source, inet/t/input/syn6, inet/t/input/5)",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{}", describe(&out));
    }
    sb.assert_clean(&before, "after labctl run sendit");
}

/// tc filters of two classifiers (u32, and cls_bpf with classic BPF
/// bytecode, whose actions netlink-packet-route leaves unparsed), each with
/// a `mirred` action: this kernel has no gact, and the kernel keeps
/// statistics per action. The bpf filter's action says `continue`, so the
/// u32 filters after it still see every packet.
const TC_LAB: &str = r#"
lab { name = "tcfilt" }
local h1, h2 = node("h1"), node("h2")
link(h1, h2, { "198.18.0.1/24", "198.18.0.2/24" })
local function tc(x, ...)
  local r = x.h2:run{ "tc", ... }
  x:expect(r.status == 0, "tc " .. table.concat({ ... }, " ") .. ": " .. r.stderr)
end
local MIRROR = { "action", "mirred", "egress", "mirror", "dev", "lo" }
local function filter(x, block, pref, ...)
  local argv = { "filter", "add", "dev", "eth0", block, "pref", pref, "protocol", "ip", ... }
  for _, word in ipairs(MIRROR) do argv[#argv + 1] = word end
  tc(x, table.unpack(argv))
end
experiment("filters", function(x)
  tc(x, "qdisc", "add", "dev", "eth0", "clsact")
  filter(x, "ingress", "5", "bpf", "bytecode", "1,6 0 0 4294967295")
  tc(x, "filter", "change", "dev", "eth0", "ingress", "pref", "5", "handle", "1", "protocol", "ip", "bpf",
     "bytecode", "1,6 0 0 4294967295", "action", "mirred", "egress", "mirror", "dev", "lo", "continue")
  filter(x, "ingress", "10", "u32", "match", "ip", "protocol", "17", "0xff", "match", "ip", "dport", "4242", "0xffff")
  filter(x, "ingress", "20", "u32", "match", "ip", "protocol", "1", "0xff")
  tc(x, "filter", "add", "dev", "eth0", "egress", "pref", "7", "bpf", "bytecode", "1,6 0 0 4294967295", "classid", "1:1")
  local names = { "h2:eth0:tc:ingress/5", "h2:eth0:tc:ingress/10", "h2:eth0:tc:ingress/20/801::800" }
  local before = x:counters(names)
  x.h1:send{ to = "198.18.0.2", dport = 4242, count = 5 }
  x.h1:ping("198.18.0.2", { count = 3, interval = 0.05 })
  -- A loaded machine may process the frames later (ksoftirqd): 5 s at most.
  local now = x:counters(names)
  for _ = 1, 100 do
    if now[names[2]].packets - before[names[2]].packets >= 5 then break end
    x:sleep(0.05)
    now = x:counters(names)
  end
  local counted = {}
  for i, name in ipairs(names) do
    counted[name:gsub("^h2:eth0:tc:", "")] = now[name].packets - before[name].packets
    counted[name:gsub("^h2:eth0:tc:", "") .. " bytes"] = now[name].bytes - before[name].bytes
  end
  x:snapshot("counted", counted)
  local all = {}
  for name in pairs(x:counters("h2:eth0:tc")["h2:eth0:tc"]) do all[#all + 1] = name end
  table.sort(all)
  x:snapshot("keys", all)
end)
-- A misspelt name stops the lab at its line: fixtures/bad_experiments/counters_tc_spec.lua.
experiment("uncounted", function(x) x:counters("h2:eth0:tc:egress/7") end)
experiment("unknown", function(x) x:counters("h2:eth0:tc:ingress/99") end)
"#;

#[test]
fn tc_filters_count_what_they_matched_by_block_pref_and_handle() {
    require_root();
    let sb = Sandbox::new();
    let before = sb.host_state();
    let tmp = temp_dir("tcfilt");
    let dir = tmp.path().to_path_buf();
    let lab = dir.join("tcfilt.lua");
    std::fs::write(&lab, TC_LAB).expect("write the lab");
    let out = sb.labctl(["run".as_ref(), lab.as_os_str(), "--out".as_ref(), dir.join("run").as_os_str()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "two experiments name filters that do not count\n{}", describe(&out));
    for expected in [
        // 5 UDP of 28 bytes and 3 echo requests of 84 as ingress sees them (from the IP header); the
        // bpf filter at pref 5 saw them, and the one probe (UDP to port 9, 43 bytes) by which `send`
        // learns its path, and let all 9 go on.
        "ingress/5: 9\ningress/5 bytes: 435\ningress/10: 5\ningress/10 bytes: 140\ningress/20/801::800: 3\n\
         ingress/20/801::800 bytes: 252",
        // Counted filters only: not u32's hash tables (800:, 801:) nor the action-less egress/7.
        "- ingress/10/800::800.bytes\n",
        "- ingress/5/0x1.packets\n",
        "the kernel counts nothing for egress/7/0x1: it has no actions",
        "no tc filter \"ingress/99\" on h2:eth0 (its filters: ingress/5/0x1, ingress/10/800:, \
         ingress/10/800::800, ingress/20/801:, ingress/20/801::800, egress/7/0x1)",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{}", describe(&out));
    }
    assert!(!text.contains("egress/7/0x1.packets"), "an action-less filter has no counters\n{text}");
    sb.assert_clean(&before, "after labctl run tcfilt");
}
