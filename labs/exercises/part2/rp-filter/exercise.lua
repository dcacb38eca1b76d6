-- Exercise part2/rp-filter: asymmetric routing meets strict rp_filter.
--
--      h1 ── r1 ──eth1── h3 (198.18.1.1)
--             └──eth2──┘    (198.18.2.1)
--
-- h3 has two links to r1. h1 reaches h3's second address 198.18.2.1
-- through r1's eth2, but h3 sends every reply out of its default route,
-- eth0, so r1 sees packets from 198.18.2.1 arrive on eth1 while its own
-- route back to 198.18.2.1 leaves by eth2. Strict reverse-path filtering
-- (rp_filter = 1) drops them as spoofed. The fix is h3's routing, not the
-- filter.

lab { name = "ex-rp-filter", description = "part2 exercise: asymmetric routing dropped by strict rp_filter" }

exercise {
  title = "Replies dropped as spoofed at the router",
  task = [[
    h1 can ping h3 at 198.18.1.1 but not at its second address 198.18.2.1.
    Find where the replies die and why, then fix the routing so both
    addresses answer. r1 must keep strict reverse-path filtering.
  ]],
  hints = {
    "Trace the drop: in an experiment x:drops() names the place and reason; by hand, `tcpdump -ni eth1` on r1 shows replies arriving. On which interface?",
    "r1's rp_filter = 1 drops a packet whose source would be routed back out of another interface. Which way does h3 send a reply from 198.18.2.1?",
    "Make h3 answer from 198.18.2.1 through eth1: source-based routing, `ip rule add from 198.18.2.1 table 2` and `ip route add default via 198.18.2.254 table 2`.",
  },
  solution = {
    commands = {
      { "h3", "ip route add default via 198.18.2.254 dev eth1 table 2" },
      { "h3", "ip rule add from 198.18.2.1 table 2" },
    },
  },
}

local h1 = node("h1")
local r1 = node("r1", { forwarding = true })
local h3 = node("h3")
link(h1, r1, { "198.18.0.1/24", "198.18.0.254/24" })
link(r1, h3, { "198.18.1.254/24", "198.18.1.1/24" })
link(r1, h3, { "198.18.2.254/24", "198.18.2.1/24" })
h1:route("default", "198.18.0.254")
h3:route("default", "198.18.1.254")
r1:sysctl("net.ipv4.conf.all.rp_filter", 1)
r1:sysctl("net.ipv4.conf.default.rp_filter", 1)

check("h1 reaches both addresses of h3", function(x)
  grade.expect_reach(x, "h1", "198.18.1.1", { name = "h3 (198.18.1.1)" })
  grade.expect_reach(x, "h1", "198.18.2.1", { name = "h3 (198.18.2.1)" })
end, { hint = "the replies from 198.18.2.1 are dropped at r1: which interface do they arrive on?" })

check("r1 still filters strictly", function(x)
  for _, key in ipairs { "net.ipv4.conf.all.rp_filter", "net.ipv4.conf.eth1.rp_filter", "net.ipv4.conf.eth2.rp_filter" } do
    local value = grade.sysctl(x.r1, key)
    x:expect(value == "1" or (value == "0" and key ~= "net.ipv4.conf.all.rp_filter"),
      ("r1 %s = %s: strict reverse-path filtering (1) was turned off; fix the routing instead"):format(key, value))
  end
end, { hint = "turning rp_filter off or to loose (2) hides the asymmetry; the task keeps it strict" })

check("no packet dropped by rp_filter", function(x)
  local dropped = x:drops(function()
    x.h1:ping("198.18.2.1", { count = 3, interval = 0.02, timeout = 0.3 })
    x.h1:ping("198.18.1.1", { count = 3, interval = 0.02, timeout = 0.3 })
  end)
  local n = grade.dropped(dropped, "IP_RPFILTER")
  x:expect(n == 0, ("%d packets %s"):format(n, grade.drops_text(dropped, "RPFILTER")))
end, { hint = "the kernel names the drop reason: IP_RPFILTER at r1:eth1" })
