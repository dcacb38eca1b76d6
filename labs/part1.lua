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
