-- The checks of the kernel selftest forwarding/router.sh, told again for
-- labctl: two hosts on either side of a router, ping across over IPv4 and
-- IPv6, then packets with sources a router must think about, crafted with
-- x.h1:send (an AF_PACKET socket, no mausezahn) and counted by nftables
-- rules on r1 (read by name from x:delta, over nfnetlink):
--
--   h1 eth0 ---- eth0 r1 eth1 ---- eth0 h2
--   198.18.1.2/24      198.18.1.1   198.18.2.1     198.18.2.2/24
--   2001:db8:1::2/64                               2001:db8:2::2/64
--
--   class-E source (240.0.0.1)      forwarded: Linux treats 240/4 as unicast
--   source = destination (v4, v6)   forwarded: nothing in the stack forbids it
--   IPv4 link-local source          forwarded (not a martian)
--   IPv6 link-local source          dropped by r1 (beyond scope), counted in
--                                   its Ip6InAddrErrors
--
-- Plain namespaces stand in for the selftest's VRFs. The hosts' addresses
-- are not the selftest's (labctl sends only to 198.18.0.0/15 and 2001:db8::/32).
--
--   sudo labctl test labs/examples/router-checks.lua

lab { name = "router-checks", description = "forwarding/router.sh's checks: ping v4/v6, class-E, sip=dip and link-local sources" }

local h1, r1, h2 = node("h1"), node("r1", { forwarding = true }), node("h2")
link(h1, r1, { { "198.18.1.2/24", "2001:db8:1::2/64" }, { "198.18.1.1/24", "2001:db8:1::1/64" } })
link(r1, h2, { { "198.18.2.1/24", "2001:db8:2::1/64" }, { "198.18.2.2/24", "2001:db8:2::2/64" } })
h1:route("default", "198.18.1.1")
h1:route("default", "2001:db8:1::1")
h2:route("default", "198.18.2.1")
h2:route("default", "2001:db8:2::1")
-- As router.sh does: no reverse-path filter dropping the spoofed sources.
r1:sysctl("net.ipv4.conf.all.rp_filter", 0)
r1:sysctl("net.ipv4.conf.default.rp_filter", 0)

-- One counter per check where the packet enters r1 and where it leaves it.
local RULES = [[
table inet checks {
  chain prerouting {
    type filter hook prerouting priority 0; policy accept;
    ip saddr 240.0.0.1 udp dport 9 counter comment "in-class-e"
    ip saddr 198.18.2.2 ip daddr 198.18.2.2 counter comment "in-sip-dip4"
    ip6 saddr 2001:db8:2::2 ip6 daddr 2001:db8:2::2 counter comment "in-sip-dip6"
    ip saddr 169.254.1.1 counter comment "in-ll4"
    ip6 saddr fe80::1:1 counter comment "in-ll6"
  }
  chain forward {
    type filter hook forward priority 0; policy accept;
    ip saddr 240.0.0.1 udp dport 9 counter comment "class-e"
    ip saddr 198.18.2.2 ip daddr 198.18.2.2 counter comment "sip-dip4"
    ip6 saddr 2001:db8:2::2 ip6 daddr 2001:db8:2::2 counter comment "sip-dip6"
    ip saddr 169.254.1.1 counter comment "ll4"
    ip6 saddr fe80::1:1 counter comment "ll6"
  }
}
]]

-- "r1:nft:<family>/<table>/<chain>/<comment>": one rule's counter.
local function nft(chain, rule)
  return ("r1:nft:inet/checks/%s/%s"):format(chain, rule)
end

experiment("ping", function(x)
  x:snapshot("v4", { received = x.h1:ping("198.18.2.2", { count = 2, interval = 0.05 }).received })
  x:snapshot("v6", { received = x.h1:ping("2001:db8:2::2", { count = 2, interval = 0.05, timeout = 3 }).received })
end)

experiment("sources", function(x)
  local loaded = x.r1:run{ "nft", RULES }
  x:expect(loaded.status == 0, "nft rules load: " .. loaded.stderr)
  -- Neighbours resolved first, so every crafted frame has its next hop.
  x.h1:ping("198.18.2.2", { count = 1 })
  x.h1:ping("2001:db8:2::2", { count = 1, timeout = 3 })
  local names = {}
  for _, rule in ipairs({ "class-e", "sip-dip4", "sip-dip6", "ll4", "ll6" }) do
    names[#names + 1] = nft("prerouting", "in-" .. rule)
    names[#names + 1] = nft("forward", rule)
  end
  names[#names + 1] = "r1"
  local before = x:counters(names)
  x.h1:send{ to = "198.18.2.2", src = "240.0.0.1", proto = "udp", sport = 54321, dport = 9, payload = "class-e", count = 5 }
  x.h1:send{ to = "198.18.2.2", src = "198.18.2.2", proto = "udp", dport = 9, count = 4 }
  x.h1:send{ to = "2001:db8:2::2", src = "2001:db8:2::2", proto = "udp", dport = 9, count = 3 }
  x.h1:send{ to = "198.18.2.2", src = "169.254.1.1", proto = "icmp", ttl = 64, dscp = 46, count = 2 }
  x.h1:send{ to = "2001:db8:2::2", src = "fe80::1:1", proto = "udp", dport = 9, count = 6 }
  -- On a loaded machine r1 may take the frames from its backlog later
  -- (ksoftirqd): wait until all 20 were seen entering r1 (each passes its
  -- prerouting and forward hooks in one go), 5 s at most.
  local function arrived()
    local now, n = x:counters(names), 0
    for _, rule in ipairs({ "class-e", "sip-dip4", "sip-dip6", "ll4", "ll6" }) do
      local name = nft("prerouting", "in-" .. rule)
      n = n + now[name].packets - before[name].packets
    end
    return n
  end
  for _ = 1, 100 do
    if arrived() >= 20 then break end
    x:sleep(0.05)
  end
  local after = x:counters(names)
  local moved = {}
  for group, values in pairs(after) do
    moved[group] = {}
    for k, v in pairs(values) do moved[group][k] = v - (before[group][k] or 0) end
  end
  local packets = {}
  for _, name in ipairs(names) do
    if name ~= "r1" then
      packets[(name:gsub("^r1:nft:inet/checks/", ""))] = (moved[name] or {}).packets or 0
    end
  end
  x:snapshot("counted", packets)
  x:snapshot("r1-drops", { Ip6InAddrErrors = moved.r1.Ip6InAddrErrors or 0 })
end)
