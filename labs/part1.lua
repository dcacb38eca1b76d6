-- Part 1: Networking 101 — two LANs and a router.
--
--      h1 ─┐                          198.18.0.0/24   2001:db8::/64
--          ├── sw ── r1 ── h3         198.18.1.0/24   2001:db8:0:1::/64
--      h2 ─┘
--
-- Every node is a network namespace: its own interfaces, addresses, routes
-- and neighbour (ARP/NDP) tables, as if it were a separate machine.
--
-- What happens when h1 pings h2 (same subnet):
--   1. h1's routing table says 198.18.0.0/24 is directly connected on eth0.
--   2. h1 does not know h2's MAC, so it broadcasts an ARP request
--      "who has 198.18.0.2?"; the bridge sw floods it to all its ports.
--   3. h2 answers; sw learns which port each MAC lives behind and from now
--      on forwards frames only where they need to go.
--
-- What happens when h1 pings h3 (another subnet):
--   1. No connected route matches 198.18.1.1, so h1 uses its default route:
--      the next hop is r1 (198.18.0.254). h1 ARPs for r1, not for h3.
--   2. r1 receives the packet, decrements the TTL and, because forwarding
--      is on, sends it out of the interface towards 198.18.1.0/24 (after
--      ARPing for h3 there).
--   3. h3 replies via its own default route, back through r1.
--
-- Try (after `sudo labctl up labs/part1.lua`):
--   labctl exec part1 h1 -- ip addr              # eth0 with 198.18.0.1/24
--   labctl exec part1 h1 -- ip route             # connected subnet + default via r1
--   labctl exec part1 h1 -- ping -c1 198.18.0.2  # same LAN: ARP, then ICMP
--   labctl exec part1 h1 -- ip neigh             # h2's MAC, learnt by ARP
--   labctl exec part1 sw -- bridge fdb show br br0  # MACs the bridge has learnt
--   labctl exec part1 h1 -- ping -c1 198.18.1.1  # routed through r1
--   labctl exec part1 h1 -- ip neigh             # only r1's MAC: h3 is not on our LAN
--   labctl exec part1 h1 -- tracepath -n 198.18.1.1   # two hops
--   labctl exec part1 h1 -- ping -c1 2001:db8:0:1::1  # the same over IPv6 (NDP instead of ARP)
--   labctl exec part1 r1 -- sysctl net.ipv4.ip_forward
--   labctl down part1

lab { name = "part1", description = "Networking 101: two hosts on a bridge, a router, and a host behind it" }

local h1 = node("h1")
local h2 = node("h2")
local h3 = node("h3")
local r1 = node("r1", { forwarding = true }) -- a router is a host that forwards
local sw = bridge("sw")                       -- a switch: forwards frames by MAC

-- The first LAN. The bridge's ends carry no addresses: a switch works
-- below IP. Each link becomes eth0 on the host and a port of sw.
link(h1, sw, { { "198.18.0.1/24", "2001:db8::1/64" } })
link(h2, sw, { { "198.18.0.2/24", "2001:db8::2/64" } })
link(r1, sw, { { "198.18.0.254/24", "2001:db8::fe/64" } })

-- The second LAN: a direct cable from r1 (its eth1) to h3.
link(r1, h3, { { "198.18.1.254/24", "2001:db8:0:1::fe/64" }, { "198.18.1.1/24", "2001:db8:0:1::1/64" } })

-- Hosts send everything that is not on their own LAN to the router.
-- r1 needs no routes: both LANs are directly connected to it.
h1:route("default", "198.18.0.254")
h1:route("default", "2001:db8::fe")
h2:route("default", "198.18.0.254")
h2:route("default", "2001:db8::fe")
h3:route("default", "198.18.1.254")
h3:route("default", "2001:db8:0:1::fe")

-- Experiments: what the comments above describe, measured. `labctl test
-- labs/part1.lua` compares them with snapshots/part1/.
local must = require("commands").must

local function forget_neighbours(x)
  for _, name in ipairs { "h1", "h2", "h3", "r1" } do
    must(x[name], { "ip", "neigh", "flush", "all" })
  end
end

-- ARP: h1 asks who has h2's address (a broadcast the bridge floods), h2
-- answers, and only then does the echo request go out.
experiment("arp", function(x)
  forget_neighbours(x)
  local ping
  local trace = x:capture({ "h1:eth0" }, function()
    ping = x.h1:ping("198.18.0.2", { count = 1 })
  end)
  x:expect_eq(ping.received, 1, "h1 reaches h2")
  local lines = {}
  for _, line in ipairs(trace:lines()) do
    if line:find("198.18.0.", 1, true) then
      lines[#lines + 1] = line
    end
  end
  x:snapshot("trace", table.concat(lines, "\n"))
  local learnt = {}
  for _, n in ipairs(x:neighbours("h1")) do
    if n.dst == "198.18.0.2" then
      learnt[#learnt + 1] = n
    end
  end
  x:snapshot("h1-neighbours", learnt)
end)

-- The bridge learns which port each MAC lives behind from the frames it
-- forwards: after one ping, h1's and h2's MACs are in its table.
experiment("bridge", function(x)
  forget_neighbours(x)
  x:expect_eq(x.h1:ping("198.18.0.2", { count = 1 }).received, 1, "h1 reaches h2")
  local fdb = {}
  local h1_mac, h2_mac = x:mac("h1:eth0"), x:mac("h2:eth0")
  for line in must(x.sw, { "bridge", "fdb", "show", "br", "br0" }):gmatch("[^\n]+") do
    local mac, port = line:match("^(%S+) dev (%S+)")
    if mac == h1_mac then
      fdb["h1:eth0"] = "behind sw:" .. port
    elseif mac == h2_mac then
      fdb["h2:eth0"] = "behind sw:" .. port
    end
  end
  x:snapshot("learnt", fdb)
  -- Now that sw knows where h2 is, an echo to h2 leaves by h2's port only:
  -- r1's port (sw:eth2) sees none of it.
  local at_r1 = x:capture({ "sw:eth2" }, function()
    x.h1:ping("198.18.0.2", { count = 3, interval = 0.02 })
  end)
  local at_h2 = x:capture({ "sw:eth1" }, function()
    x.h1:ping("198.18.0.2", { count = 3, interval = 0.02 })
  end)
  x:snapshot("forwarded", {
    ["echo requests seen on r1's port"] = at_r1:count("echo request"),
    ["echo requests seen on h2's port"] = at_h2:count("echo request"),
  })
end)

-- TTL across the router: r1 decrements it, so h3's replies reach h1 with
-- 63 (IPv4) or hop limit 63 (IPv6); on the LAN they arrive with 64.
experiment("ttl", function(x)
  local function shape(p)
    local ttls = {}
    for _, r in ipairs(p.replies) do
      ttls[#ttls + 1] = r.ttl
    end
    return { received = p.received, ttl = ttls }
  end
  local v4_lan = x.h1:ping("198.18.0.2", { count = 2, interval = 0.05 })
  local v4 = x.h1:ping("198.18.1.1", { count = 2, interval = 0.05 })
  local v6 = x.h1:ping("2001:db8:0:1::1", { count = 2, interval = 0.05 })
  x:expect_eq(v6.received, 2, "h1 reaches h3 over IPv6")
  local expired = x.h1:ping("198.18.1.1", { count = 1, ttl = 1, timeout = 0.5 })
  x:snapshot("pings", {
    ["h1 -> h2 (same LAN)"] = shape(v4_lan),
    ["h1 -> h3 via r1"] = shape(v4),
    ["h1 -> h3 via r1, IPv6"] = shape(v6),
    ["h1 -> h3 with TTL 1"] = { received = expired.received, errors = expired.errors },
  })
end)
