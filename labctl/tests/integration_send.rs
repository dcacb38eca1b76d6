//! Crafted packets (`x.h1:send`) and nftables rule counters (`"h2:nft:..."`
//! in `x:counters`), against the kernel, in a sandbox: every field asked
//! for reaches the wire, as nftables rules on the receiver (set up by the
//! lab with `nft`, as a user would) match and count them, read back by
//! name (comment or handle) over nfnetlink.

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
