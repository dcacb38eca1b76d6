-- Exercise part1/bridge-subnet: two hosts on one bridge cannot talk.
--
--      h1 ── sw ── h2        198.18.0.0/24, one LAN
--
-- h2's address was configured with the wrong prefix length (/25 instead
-- of /24), so h2 believes h1 (198.18.0.1) is not on its LAN and, with no
-- router to send it to, cannot answer. The fix is the address itself: not a
-- route around it, not a static ARP entry, not a new link.

lab { name = "ex-bridge-subnet", description = "part1 exercise: a wrong prefix length on a bridged LAN" }

exercise {
  title = "Two hosts on a bridge cannot talk",
  task = [[
    h1 (198.18.0.1) and h2 (198.18.0.200) hang off the same bridge sw, yet
    h1 cannot ping h2. Find the misconfiguration and fix it so they reach
    each other over the bridge, resolving each other by ARP.
  ]],
  hints = {
    "Compare `ip addr` on h1 and h2: which subnet does each host think it is on?",
    "h2's prefix length says 198.18.0.1 is not on its LAN, and h2 has no route for it. Look at `ip route` on h2.",
    "Replace h2's address: `ip addr del 198.18.0.200/25 dev eth0` then `ip addr add 198.18.0.200/24 dev eth0`.",
  },
  solution = {
    commands = {
      { "h2", "ip addr del 198.18.0.200/25 dev eth0" },
      { "h2", "ip addr add 198.18.0.200/24 dev eth0" },
    },
  },
}

local h1 = node("h1")
local h2 = node("h2")
local sw = bridge("sw")
link(h1, sw, { "198.18.0.1/24" })
link(h2, sw, { "198.18.0.200/25" }) -- the mistake: /25 puts 198.18.0.1 off-link
for _, n in ipairs { h1, h2, sw } do
  n:sysctl("net.ipv4.igmp_link_local_mcast_reports", 0)
end

check("h1 and h2 reach each other", function(x)
  grade.expect_reach(x, "h1", "198.18.0.200", { name = "h2" })
  grade.expect_reach(x, "h2", "198.18.0.1", { name = "h1" })
end, { hint = "`labctl exec ex-bridge-subnet h2 -- ip route get 198.18.0.1`" })

check("ARP resolves h1 and h2 through the bridge", function(x)
  for _, n in ipairs { "h1", "h2" } do
    x[n]:run { "ip", "neigh", "flush", "all" }
  end
  local trace = x:capture({ "h2:eth0" }, function()
    x.h2:ping("198.18.0.1", { count = 1, timeout = 0.3 })
  end)
  x:expect(trace:count("ARP who-has 198.18.0.1 tell 198.18.0.200") >= 1,
    "h2 sent no ARP request for h1: it does not consider 198.18.0.1 on its LAN")
  x:expect(trace:count("ARP reply 198.18.0.1 is-at h1:eth0") >= 1, "no ARP reply from h1 reached h2 through sw")
  for _, n in ipairs { "h1", "h2" } do
    local static = grade.run(x[n], { "ip", "neigh", "show", "nud", "permanent" })
    x:expect(static == "", n .. " has a static neighbour entry (" .. static:gsub("%s+$", "") .. "): let ARP do its job")
  end
end, { hint = "ARP only asks for addresses the host thinks are on its own subnet" })

check("h2's address is fixed, with nothing added around it", function(x)
  local addr = grade.run(x.h2, { "ip", "-4", "-o", "addr", "show", "dev", "eth0" })
  local prefixes = {}
  for cidr in addr:gmatch("inet (%S+)") do
    prefixes[#prefixes + 1] = cidr
  end
  local found = table.concat(prefixes, ", ")
  x:expect(found == "198.18.0.200/24", "h2's eth0 has " .. found .. ", expected 198.18.0.200/24 (one LAN, one prefix)")
  local routes = grade.run(x.h2, { "ip", "-4", "route", "show" }):gsub("%s+$", "")
  x:expect(not routes:find("198.18.0.1 ") and not routes:find("default"),
    "h2 has routes patching around its address: " .. routes:gsub("\n", "; "))
  for _, n in ipairs { "h1", "h2" } do
    local links = table.concat(grade.links(x[n]), ", ")
    x:expect(links == "eth0, lo", n .. " has links " .. links .. ": no new link was needed")
  end
end, { hint = "a route or a static ARP entry can hide the mistake; the address is still wrong" })
