-- Part 2: Peeking under the hood — follow one packet with the kernel's own
-- counters, see where and why packets are dropped, and watch the CPU's
-- packet-processing work (softirqs) move.
--
--      h1 ─┐                          198.18.0.0/24 2001:db8::/64     (the LAN, switch sw)
--          ├── sw ── r1 ── h3         198.18.1.0/24 2001:db8:0:1::/64 (a cable r1 <-> h3)
--      h2 ─┘
--
-- The same network as part 1, IPv4 and IPv6. Interface names, as the
-- counters and traces below name them:
--
--   h1:eth0 <-> sw:eth0     h2:eth0 <-> sw:eth1     r1:eth0 <-> sw:eth2
--   r1:eth1 <-> h3:eth0     (each pair is one veth "cable")
--
-- Where the kernel counts a packet:
--   * every interface counts what it sends and receives (rx_/tx_packets,
--     rx_/tx_bytes, drops): `ip -s link`. These are the driver's counters,
--     below IP: ARP is counted here too, and so are frames a bridge forwards.
--   * every namespace counts what its IP stack did, one counter per event
--     and per reason (the SNMP MIBs of RFC 1213 and Linux' own extensions):
--     `nstat -az`, /proc/net/snmp and /proc/net/netstat. Ip.InReceives (a
--     packet reached IP), Ip.ForwDatagrams (a router decided to forward
--     it), IpExt.InNoRoutes, Ip.InHdrErrors, TcpExt.IPReversePathFilter
--     (dropped, and why), Icmp.Out* (the errors sent back) ...
--   * every CPU counts its packet-processing work: a received packet is
--     processed in a software interrupt (NET_RX softirq, /proc/softirqs),
--     taken off the CPU's backlog queue (/proc/net/softnet_stat: processed,
--     dropped when the queue is full, time_squeeze when the softirq ran out
--     of budget with packets left). These are per CPU, for the whole machine.
--
-- A veth has no hardware: sending on one end puts the packet on the other
-- end's CPU backlog and raises NET_RX there, just as a NIC's interrupt would.
-- From there on the path is the real one: bridge, IP, routing, forwarding,
-- neighbour (ARP) resolution, firewall hooks, sockets.
--
-- Experiments (`labctl test labs/part2.lua`, or `labctl run labs/part2.lua`
-- to see the results and the captures as pcapng):
--   one-ping  one ping h1 -> h3: the counters of every hop, and the trace at r1
--   one-ping6 the same over IPv6: neighbour discovery instead of ARP
--   drops     four pings that die at r1, and the counter that says why
--   softirq   10,000 UDP packets h1 -> h3, and the CPU work they cost
--
-- Try (after `sudo labctl up labs/part2.lua`):
--   labctl exec part2 h1 -- ip -s link show eth0       # the interface counters
--   labctl exec part2 r1 -- nstat -az                  # every SNMP counter of r1
--   labctl exec part2 r1 -- nstat -n                   # remember r1's counters now
--   labctl exec part2 h1 -- ping -c1 198.18.1.1
--   labctl exec part2 r1 -- nstat                      # what moved since: Ip.ForwDatagrams 2 ...
--   labctl exec part2 h1 -- ping -c1 -t1 198.18.1.1    # TTL 1: r1 says "Time to live exceeded"
--   labctl exec part2 r1 -- nstat                      # Ip.InHdrErrors, Icmp.OutTimeExcds
--   cat /proc/net/softnet_stat /proc/softirqs          # the per-CPU work (whole machine)
--   labctl down part2

lab { name = "part2", description = "Peeking under the hood: counters at every hop, drops and their reasons, softirqs" }

local h1 = node("h1")
local h2 = node("h2")
local h3 = node("h3")
local r1 = node("r1")
local sw = bridge("sw")

link(h1, sw, { { "198.18.0.1/24", "2001:db8::1/64" } })
link(h2, sw, { { "198.18.0.2/24", "2001:db8::2/64" } })
link(r1, sw, { { "198.18.0.254/24", "2001:db8::fe/64" } })
link(r1, h3, { { "198.18.1.254/24", "2001:db8:0:1::fe/64" }, { "198.18.1.1/24", "2001:db8:0:1::1/64" } })

h1:route("default", "198.18.0.254")
h2:route("default", "198.18.0.254")
h3:route("default", "198.18.1.254")
h1:route("default", "2001:db8::fe")
h2:route("default", "2001:db8::fe")
h3:route("default", "2001:db8:0:1::fe")

-- r1 routes both. An IPv6 node joins multicast groups (one "solicited-node"
-- group per address, and a router the "all routers" groups) and announces
-- them with MLD reports, packets we did not send: labctl has them all sent
-- while the lab comes up, so no measurement sees one.
r1:sysctl("net.ipv4.ip_forward", 1)
r1:sysctl("net.ipv6.conf.all.forwarding", 1)

-- Quiet, so that counters are exact: a Linux bridge that snoops multicast
-- (the default) joins the "all snoopers" group 224.0.0.106 and announces it
-- with IGMP reports, the last one up to a second after the lab is up: it
-- would land in the first measurement, in every interface of the LAN. Nobody
-- needs to hear about link-local groups, so the switch keeps quiet.
sw:sysctl("net.ipv4.igmp_link_local_mcast_reports", 0)

-- ---------------------------------------------------------------------------
-- helpers

-- Runs argv in a node; fails the experiment at the caller's line unless it exits 0.
local must = require("commands").must

-- Every measurement starts with empty ARP caches, on purpose:
--   * it always sees the same packets, whichever experiment ran before: the
--     ARP exchange is part of the journey (and of the lesson);
--   * no entry is left half-way through its timers. An entry that was used
--     but never confirmed (ping replies do not confirm a neighbour, TCP acks
--     do) is re-checked with a unicast ARP request 5 seconds later
--     (delay_first_probe_time), which would land in the middle of a later
--     measurement.
-- The switch needs no such care: it learns h1's MAC from h1's ARP request
-- and r1's from the reply, before any unicast frame, so it never floods one.
local function forget_neighbours(x)
  for _, name in ipairs { "h1", "h2", "r1", "h3" } do
    must(x[name], { "ip", "neigh", "flush", "all" })
  end
end

-- What a ping says, without the round-trip times (they differ every run).
local function outcome(ping)
  local replies = {}
  for _, r in ipairs(ping.replies) do
    replies[#replies + 1] = { seq = r.seq, from = r.from, ttl = r.ttl }
  end
  return { transmitted = ping.transmitted, received = ping.received, replies = replies, errors = ping.errors }
end

-- Makes a change, runs body, and always undoes the change (also when make or
-- body fails), so every experiment leaves the lab as it found it.
local with = require("commands").with

-- ---------------------------------------------------------------------------
-- one-ping: one echo request h1 -> h3 and its reply, counted at every hop.
--
-- What to look for in snapshots/part2/one-ping__links.snap:
--   * h1:eth0 sends 2 frames: an ARP request "who has 198.18.0.254?" (42
--     bytes, broadcast) and the echo request (98 bytes: 14 Ethernet + 20 IP
--     + 8 ICMP + 56 data). It receives the ARP reply and the echo reply.
--   * each cable counts the same frames at both ends: h1:eth0's tx is
--     sw:eth0's rx. The switch forwards frames without touching IP.
--   * h2:eth0 receives the broadcast ARP request, and nothing else: the
--     switch floods broadcasts, but sends unicast only where the MAC lives.
--   * on r1's far side (r1:eth1, h3:eth0) the same story again: r1 ARPs for
--     h3 before it can forward. h3 answers the ping without an ARP of its
--     own: r1's request told it r1's MAC.
-- And in one-ping__snmp.snap, what each IP stack did:
--   * h1: Ip.OutRequests 1 (sent one packet of its own), Icmp.OutEchos 1,
--     then Ip.InReceives 1, Icmp.InEchoReps 1, Ip.InDelivers 1 (the reply
--     went up to the ping socket).
--   * r1: Ip.InReceives 2 and Ip.ForwDatagrams 2 (request and reply), but
--     no InDelivers and no Icmp counter: a router does not look inside.
--   * h3: Icmp.InEchos 1 and Icmp.OutEchoReps 1: the kernel itself answers
--     pings, no program is involved.
-- ---------------------------------------------------------------------------

local PATH = { "h1:eth0", "sw:eth0", "sw:eth1", "h2:eth0", "sw:eth2", "r1:eth0", "r1:eth1", "h3:eth0" }

-- What moved at every hop while fn ran: by node and interface, and the
-- interfaces in path order ("1 h1:eth0" ...), with h2's branch of the
-- switch (3, 4) where broadcasts (and multicasts) go too.
local function count_hops(x, fn)
  local watched = { "h1", "r1", "h3" }
  for _, interface in ipairs(PATH) do
    watched[#watched + 1] = interface
  end
  local moved = x:delta(watched, fn)
  local links = {}
  for i, interface in ipairs(PATH) do
    links[("%d %s"):format(i, interface)] = moved[interface]
  end
  return moved, links
end

experiment("one-ping", function(x)
  forget_neighbours(x)
  local ping
  local moved, links = count_hops(x, function()
    ping = x.h1:ping("198.18.1.1", { count = 1 })
  end)
  x:expect_eq(ping.received, 1, "replies to h1's ping")
  x:snapshot("links", links)
  x:snapshot("snmp", { h1 = moved.h1, r1 = moved.r1, h3 = moved.h3 })
  x:snapshot("ping", outcome(ping))

  -- The same ping seen by r1 on both its interfaces, like
  -- `tcpdump -i eth0` and `tcpdump -i eth1` at once, merged in time order.
  -- "in"/"out" is the direction at the capturing interface. Note the TTL:
  -- 64 when the request reaches r1, 63 when r1 sends it on.
  --
  -- x:path counts the same ping (and its ARP) where the kernel itself saw
  -- each packet arrive (the net:netif_receive_skb tracepoint, "rx") and
  -- leave (net:net_dev_xmit, "tx"), per interface of the lab: every hop,
  -- the switch's ports and its own br0 included, and h2, which got the
  -- broadcast ARP request and nothing else.
  forget_neighbours(x)
  local trace
  local path = x:path(function()
    trace = x:capture({ "r1:eth0", "r1:eth1" }, function()
      x.h1:ping("198.18.1.1", { count = 1 })
    end)
  end)
  x:expect_eq(trace:count("echo reply"), 2, "echo replies seen at r1 (in on eth1, out on eth0)")
  x:snapshot("trace", trace)
  x:snapshot("kernel-path", path)
end)

-- ---------------------------------------------------------------------------
-- one-ping6: the same ping over IPv6, h1 -> h3 (2001:db8:0:1::1).
--
-- What to look for in snapshots/part2/one-ping6__links.snap and __trace.snap:
--   * no ARP: h1 asks for r1's MAC with a neighbour solicitation (ICMPv6
--     type 135), sent not to everyone but to r1's "solicited-node" multicast
--     group ff02::1:ff00:fe (the last 24 bits of the address it looks for).
--     The switch still floods it to h2 (it forwards multicast only to the
--     ports that asked for a group once a querier tracks who asked; the lab
--     has none), and h2's kernel drops it: not its group.
--   * r1 answers with a neighbour advertisement (136), unicast, and asks in
--     turn for h3 before it forwards (Ip6OutForwDatagrams 2). h3 then asks
--     for r1 as well: r1's question came from its link-local address
--     (fe80::...), and h3's route goes to r1's global one, 2001:db8:0:1::fe.
--   * the echo request is 118 bytes on the wire (14 Ethernet + 40 IPv6 + 8
--     ICMPv6 + 56 data), 20 more than IPv4's; the hop limit is 64, then 63.
--   * nothing else: no MLD report (labctl has them sent while the lab comes
--     up), no router advertisement or solicitation (switched off).
-- ---------------------------------------------------------------------------

experiment("one-ping6", function(x)
  forget_neighbours(x)
  local ping
  local moved, links = count_hops(x, function()
    ping = x.h1:ping("2001:db8:0:1::1", { count = 1 })
  end)
  x:expect_eq(ping.received, 1, "replies to h1's ping")
  x:snapshot("links", links)
  x:snapshot("snmp", { h1 = moved.h1, r1 = moved.r1, h3 = moved.h3 })

  forget_neighbours(x)
  local trace = x:capture({ "r1:eth0", "r1:eth1" }, function()
    x.h1:ping("2001:db8:0:1::1", { count = 1 })
  end)
  x:expect_eq(trace:count("echo reply"), 2, "echo replies seen at r1 (in on eth1, out on eth0)")
  x:snapshot("trace", trace)
end)

-- ---------------------------------------------------------------------------
-- drops: four pings that never reach their destination, each dropped at r1
-- for a different reason. For each, the SNMP counters of r1 that moved, and
-- what the ping saw. The lesson: when a packet disappears, one of these
-- counters says where and why (`nstat` on each hop is the first thing to
-- try), and sometimes the sender is told (an ICMP error) and sometimes not.
-- ---------------------------------------------------------------------------

-- r1's SNMP counters that move while step() runs, and the ping it returns.
local function at_r1(x, step)
  local ping, moved
  -- x:drops asks the kernel itself: a BPF program on the skb:kfree_skb
  -- tracepoint records every packet freed as dropped, with the reason the
  -- kernel gives and the function that dropped it, per lab interface.
  local dropped = x:drops(function()
    moved = x:delta({ "r1" }, function()
      ping = step()
    end)
  end, { locations = true })
  x:expect_eq(ping.received, 0, "replies to a ping that r1 drops")
  return { r1 = moved.r1, ping = { received = ping.received, errors = ping.errors }, dropped = dropped }
end

experiment("drops", function(x)
  -- Each scenario snapshots r1's SNMP counters that moved, what the ping
  -- saw, and `dropped`: the kernel's own drop reason and dropping function
  -- for every packet that died, per interface.
  --
  -- (a) No route. h1 sends everything off its LAN to r1, but r1 only knows
  -- its two connected subnets: 198.19.0.1 matches no route
  -- (IpExt.InNoRoutes). r1 says so to h1 with an ICMP "net unreachable"
  -- (Icmp.OutDestUnreachs; IpExt.OutOctets 112: the error quotes the
  -- packet it is about).
  -- (198.19.0.0/16 belongs to the benchmarking range 198.18.0.0/15, like
  -- the lab's own addresses; nothing routes it anywhere.)
  forget_neighbours(x)
  x:snapshot("no-route", at_r1(x, function()
    return x.h1:ping("198.19.0.1", { count = 1 })
  end))

  -- (b) TTL expiry. Each router decrements the TTL and drops a packet whose
  -- TTL would reach 0 (counted as a header error, Ip.InHdrErrors), telling
  -- the sender "time to live exceeded" (Icmp.OutTimeExcds). This is how
  -- traceroute finds the routers on a path: TTL 1, 2, 3 ...
  forget_neighbours(x)
  x:snapshot("ttl-expired", at_r1(x, function()
    return x.h1:ping("198.18.1.1", { count = 1, ttl = 1 })
  end))

  -- (c) Reverse path filter. h3 sends a ping from an address of h1's LAN
  -- (198.18.0.99, added to h3 for the occasion: a spoofed source). With
  -- strict rp_filter, r1 checks that it would route the reply back out of
  -- the interface the packet came in on; 198.18.0.0/24 is behind eth0, the
  -- packet came in on eth1, so r1 drops it, silently
  -- (TcpExt.IPReversePathFilter, despite its name an IP counter).
  -- The effective rp_filter of an interface is the larger of conf.all and
  -- conf.<interface>, so both are set, and both put back afterwards.
  forget_neighbours(x)
  -- h3 learns r1's MAC first, with a genuine ARP request: an ARP request
  -- from the spoofed address would itself be refused by r1's rp_filter,
  -- and the ping would never leave h3.
  x:expect_eq(x.h3:ping("198.18.1.254", { count = 1 }).received, 1, "h3 reaches r1")
  local keys = { "net.ipv4.conf.all.rp_filter", "net.ipv4.conf.eth1.rp_filter" }
  local saved = {}
  x:snapshot("rp-filter", with(function()
    for _, key in ipairs(keys) do
      saved[key] = must(x.r1, { "sysctl", "-n", key }):match("%d+")
      must(x.r1, { "sysctl", "-qw", key .. "=1" })
    end
    must(x.h3, { "ip", "addr", "add", "198.18.0.99/32", "dev", "eth0" })
  end, function()
    x.h3:run { "ip", "addr", "del", "198.18.0.99/32", "dev", "eth0" }
    for _, key in ipairs(keys) do
      if saved[key] then
        x.r1:run { "sysctl", "-qw", key .. "=" .. saved[key] }
      end
    end
  end, function()
    return at_r1(x, function()
      return x.h3:ping("198.18.0.1", { count = 1, source = "198.18.0.99" })
    end)
  end))

  -- (d) Firewall. An nftables rule on r1's forward hook (which routed
  -- packets pass after the routing decision) drops everything for h3. No
  -- SNMP counter names a drop: Ip.ForwDatagrams even says "forwarded" (on
  -- this kernel it counts the decision to forward, taken before the hook
  -- ran), but there is no Ip.OutTransmits: the packet never left. Only the
  -- rule's own counter tells, and h1 hears nothing.
  forget_neighbours(x)
  local result = with(function()
    must(x.r1, {
      "nft",
      "add table ip part2_firewall; "
        .. "add chain ip part2_firewall forward { type filter hook forward priority filter; policy accept; }; "
        .. "add rule ip part2_firewall forward ip daddr 198.18.1.1 counter drop",
    })
  end, function()
    x.r1:run { "nft", "delete table ip part2_firewall" }
  end, function()
    local dropped = at_r1(x, function()
      return x.h1:ping("198.18.1.1", { count = 1 })
    end)
    dropped.rule = must(x.r1, { "nft", "list", "chain", "ip", "part2_firewall", "forward" })
    return dropped
  end)
  x:snapshot("firewall", result)
end)

-- ---------------------------------------------------------------------------
-- softirq: the CPU's side. 10,000 small UDP packets h1 -> h3 at 20,000 per
-- second. Every packet is received three times on its way (by sw:eth0 from
-- h1, by r1:eth0 from the switch, by h3:eth0 from r1), and each receive is
-- work done in a NET_RX softirq on some CPU, taken off that CPU's backlog:
-- softnet_stat's "processed" moves by at least 30,000.
--
-- On a quiet machine NET_RX itself moves by about 10,000, one softirq run
-- per packet: sending on h1:eth0 raises NET_RX on the sending CPU, and that
-- one run carries the packet across all three hops (each hop's veth puts it
-- on the same CPU's backlog, which the run keeps draining). The packets come
-- one at a time, paced; at higher rates one run handles many packets (up to
-- net.core.netdev_budget, 300), and time_squeeze counts the runs that had
-- to stop with packets left (part 3 goes there).
--
-- These counters are per CPU and for the whole machine (whatever else it
-- does is counted too), and which CPU does the work changes from run to
-- run, so the snapshot keeps their shape, not their values: the sums over
-- all CPUs, as a lower bound or "> 0". The flow itself is exact: every
-- packet sent arrives.
-- ---------------------------------------------------------------------------

experiment("softirq", function(x)
  forget_neighbours(x)
  local flow
  local moved = x:delta({ "softnet", "softirqs" }, function()
    flow = x.h1:udp { to = "198.18.1.1", port = 5201, size = 64, count = 10000, rate = 20000 }
  end)
  x:expect_eq(flow.received_packets, flow.sent_packets, "UDP packets received at h3")

  -- The sum over all CPUs of the counters whose names match a Lua pattern
  -- ("NET_RX.cpu0", "cpu1.processed", ...).
  local function sum(group, pattern)
    local total = 0
    for name, value in pairs(moved[group]) do
      if name:match(pattern) then
        total = total + value
      end
    end
    return total
  end
  x:snapshot("flow", {
    udp = { sent = flow.sent_packets, received = flow.received_packets, send_errors = flow.send_errors },
    ["NET_RX softirqs, all CPUs"] = x.positive(sum("softirqs", "^NET_RX%.")),
    ["softnet processed, all CPUs"] = x.range(sum("softnet", "%.processed$"), 30000, math.huge),
  })
end)
