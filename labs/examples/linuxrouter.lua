-- A Linux router joining three subnets, after Mininet's linuxrouter
-- example: each subnet is a switch with one host behind it, every host
-- sends what is not on its own subnet to the router, and the router
-- forwards between the subnets it is connected to (no routes of its own
-- needed for that: the kernel adds one per connected subnet).
--
--      h1 ── s1 ──┐                  198.18.1.0/24   (r0 .1,    h1 .100 and .101)
--      h2 ── s2 ── r0                198.18.16.0/20  (r0 .1,    h2 .100)
--      h3 ── s3 ──┘                  198.19.0.0/16   (r0 .1,    h3 .100)
--
-- Beyond Mininet's example, r0 shows three more things a router does:
--   - a blackhole route (198.18.99.0/24): packets to it are dropped, silently;
--   - an unreachable route (198.18.98.0/24): dropped, with an ICMP error back;
--   - a policy rule: packets *from* h1's second address 198.18.1.101 are
--     routed by table 100 instead of main, and table 100 prohibits them.
--
-- Try (after `sudo labctl up labs/examples/linuxrouter.lua`):
--   labctl exec linuxrouter r0 -- ip route            # three connected subnets, blackhole, unreachable
--   labctl exec linuxrouter r0 -- ip rule             # priority 100: from 198.18.1.101 lookup 100
--   labctl exec linuxrouter r0 -- ip route show table 100
--   labctl exec linuxrouter h1 -- ping -c1 198.19.0.100                  # h3, through r0
--   labctl exec linuxrouter h1 -- ping -c1 -I 198.18.1.101 198.19.0.100  # prohibited by r0
--   labctl exec linuxrouter s1 -- bridge fdb show br br0
--   labctl down linuxrouter

lab { name = "linuxrouter", description = "one Linux router, three subnets, a host on each" }

local r0 = node("r0", { forwarding = true })
local hosts = { node("h1"), node("h2"), node("h3") }
local switches = { bridge("s1"), bridge("s2"), bridge("s3") }

-- The router's three interfaces (eth0..eth2), one per subnet's switch.
link(r0, switches[1], { { "198.18.1.1/24" } })
link(r0, switches[2], { { "198.18.16.1/20" } })
link(r0, switches[3], { { "198.19.0.1/16" } })

-- One host per switch; h1 has a second address, for the policy rule below.
link(hosts[1], switches[1], { { "198.18.1.100/24", "198.18.1.101/24" } })
link(hosts[2], switches[2], { { "198.18.16.100/20" } })
link(hosts[3], switches[3], { { "198.19.0.100/16" } })

-- Every host's default route points at the router on its subnet.
hosts[1]:route("default", "198.18.1.1")
hosts[2]:route("default", "198.18.16.1")
hosts[3]:route("default", "198.19.0.1")

-- Routes that drop: silently, or with "host unreachable" back to the sender.
r0:route("198.18.99.0/24", { type = "blackhole" })
r0:route("198.18.98.0/24", { type = "unreachable" })

-- Source routing: what comes from 198.18.1.101 is looked up in table 100
-- (before main, at priority 100), where everything is prohibited.
r0:rule { from = "198.18.1.101", priority = 100, table = 100 }
r0:route("default", { type = "prohibit", table = 100 })

local H = {
  h1 = "198.18.1.100",
  h2 = "198.18.16.100",
  h3 = "198.19.0.100",
}

-- Mininet's pingall: every host reaches every other, across the router.
experiment("pingall", function(x)
  local seen = {}
  for _, from in ipairs { "h1", "h2", "h3" } do
    for _, to in ipairs { "h1", "h2", "h3" } do
      if from ~= to then
        local p = x[from]:ping(H[to], { count = 2, interval = 0.05 })
        seen[from .. " -> " .. to] = p.received
      end
    end
  end
  x:snapshot("received", seen)
  -- The router's own table: the kernel's connected routes and the two that drop.
  local table = {}
  for _, r in ipairs(x:routes("r0")) do
    table[#table + 1] = {
      dst = r.dst,
      dev = r.dev,
      kind = r.kind,
      table = r.table,
    }
  end
  x:snapshot("r0-routes", table)
end)

-- A blackhole says nothing; an unreachable route answers with an ICMP error.
experiment("drops", function(x)
  local quiet = x.h1:ping("198.18.99.1", { count = 1, timeout = 0.3 })
  local refused = x.h1:ping("198.18.98.1", { count = 1, timeout = 2 })
  x:snapshot("pings", {
    blackhole = { received = quiet.received, errors = quiet.errors },
    unreachable = { received = refused.received, errors = refused.errors },
  })
end)

-- The same destination from h1's two addresses: one is forwarded, the
-- other is routed by table 100 and prohibited.
experiment("policy", function(x)
  local main = x.h1:ping(H.h3, { count = 1, source = "198.18.1.100" })
  local t100 = x.h1:ping(H.h3, { count = 1, source = "198.18.1.101", timeout = 2 })
  x:snapshot("pings", {
    ["from 198.18.1.100 (main)"] = { received = main.received, errors = main.errors },
    ["from 198.18.1.101 (table 100)"] = { received = t100.received, errors = t100.errors },
  })
  local rules = {}
  for _, r in ipairs(x:rules("r0")) do
    if r.family == 4 then
      rules[#rules + 1] = string.format("%d: from %s %s %d", r.priority, r.from or "all", r.action, r.table)
    end
  end
  x:snapshot("r0-rules", rules)
end)

-- The switch s1 has learnt where h1 and r0 are (FDB entries from traffic).
experiment("fdb", function(x)
  x:expect_eq(x.h1:ping("198.18.1.1", { count = 1 }).received, 1, "h1 reaches r0")
  local owners = { [x:mac("h1:eth0")] = "h1:eth0", [x:mac("r0:eth0")] = "r0:eth0" }
  local learnt = {}
  for _, e in ipairs(x:fdb("s1", { learned = true })) do
    if owners[e.mac] then
      learnt[owners[e.mac]] = "behind s1:" .. e.port
    end
  end
  x:snapshot("learnt", learnt)
end)
