-- Part 4: Supercharging with XDP and eBPF — run your own code at the very
-- first place a received packet reaches: drop, bounce and forward packets
-- before the kernel's network stack has even looked at them.
--
--           ┌── h2      flood target: drop 64-byte UDP four ways    198.18.0.0/24
--      h1 ──┼── r1 ── h3   XDP router: r1 forwards with XDP_REDIRECT   198.18.1.0/24, 198.18.2.0/24
--           └── h4      XDP reflector: UDP bounced with XDP_TX        198.18.3.0/24
--
-- Interfaces: h1:eth0 <-> h2:eth0, h1:eth1 <-> r1:eth0, r1:eth1 <-> h3:eth0,
-- h1:eth2 <-> h4:eth0.
--
-- XDP (eXpress Data Path) runs a BPF program in the driver's receive path,
-- for every frame, before the kernel allocates its packet structure (the
-- skb) and before anything of the stack runs: no netfilter, no routing, no
-- socket lookup yet. The program reads and may rewrite the frame, and
-- answers with an action: XDP_DROP, XDP_PASS (on to the stack as usual),
-- XDP_TX (back out of the same interface), XDP_REDIRECT (out of another
-- one), XDP_ABORTED (drop, as an error). BPF maps (arrays, hashes, device
-- maps) hold its state and counters, shared with user space.
--
-- The programs are small C files under fixtures/xdp/, meant to be read:
--   xdp_pass.c       passes everything (the smallest program there is)
--   xdp_drop.c       drops everything, counting
--   xdp_count.c      counts packets and bytes per IP protocol, passes
--   xdp_drop_port.c  drops UDP/TCP by destination port, ports in a hash map
--   xdp_tx_bounce.c  a UDP reflector: swap addresses and ports, XDP_TX
--   xdp_redirect.c   an IPv4 router: kernel FIB lookup, XDP_REDIRECT via a devmap
-- labctl compiles them with clang when the lab comes up (cached, so only
-- the first time), loads them with the kernel's verifier checking every
-- path, and attaches them in native (driver) mode. Paths in xdp(...) are
-- relative to the folder of this file.
--
-- Every counting program keeps a per-CPU array `actions`: packets per XDP
-- action. `x:counters{ "r1:eth0:xdp" }` reads it (and the program's other
-- counter maps) as "actions.XDP_REDIRECT", ..., so `x:delta` works on it.
--
-- Experiments (`labctl test labs/part4.lua`; `labctl run labs/part4.lua`
-- also writes the cost comparison as a chart into runs/part4-<time>/):
--   drop-where  1000 packets dropped by XDP, by nftables early (prerouting)
--               and late (input, with connection tracking), and for lack
--               of a socket: where each drop happens, and who counts it
--   drop-cost   the same four drops flat out: CPU time per packet each takes
--   redirect    r1 forwards in XDP (XDP_REDIRECT): its IP stack sees
--               nothing, and neither does a capture on r1
--   reflect     h4 bounces UDP back to h1 (XDP_TX) without its stack
--
-- XDP programs can be attached when the lab comes up (xdp(...) below, for
-- the whole life of the lab) or by an experiment (x:xdp_attach and
-- x:xdp_detach, as drop-where and drop-cost do on h2, so the same
-- interface is measured with and without). Either way labctl pins them in
-- /sys/fs/bpf/labctl/part4/<node>-<interface>/ and `labctl down` removes them.
--
-- Try (after `sudo labctl up labs/part4.lua`):
--   labctl xdp part4                                  # programs, modes, ids, maps, from the kernel
--   labctl exec part4 r1 -- ip -d link show eth0      # "xdp" and "prog/xdp id ..."
--   bpftool prog show; bpftool map dump pinned /sys/fs/bpf/labctl/part4/r1-eth0/maps/actions
--   labctl exec part4 h1 -- ping -c3 198.18.2.3       # via r1: its XDP router's devmap is empty, so r1's stack forwards
--   labctl down part4                                 # detaches and unpins everything

lab { name = "part4", description = "XDP: drop, bounce and forward packets before the network stack" }

local h1 = node("h1")
local h2 = node("h2")
local r1 = node("r1", { forwarding = true })
local h3 = node("h3")
local h4 = node("h4")

link(h1, h2, { "198.18.0.1/24", "198.18.0.2/24" })
link(h1, r1, { "198.18.1.1/24", "198.18.1.254/24" })
link(r1, h3, { "198.18.2.254/24", "198.18.2.3/24" })
link(h1, h4, { "198.18.3.1/24", "198.18.3.4/24" })

h1:route("198.18.2.0/24", "198.18.1.254")
h3:route("default", "198.18.2.254")

-- The XDP router on r1's side towards h1, and the reflector on h4.
xdp("r1:eth0", { src = "../fixtures/xdp/xdp_redirect.c", prog = "xdp_redirect", mode = "native" })
xdp("h4:eth0", { src = "../fixtures/xdp/xdp_tx_bounce.c", prog = "xdp_tx_bounce", mode = "native" })

-- XDP_TX and XDP_REDIRECT hand frames to the veth's peer, which takes
-- them only with an XDP program of its own (GRO on is enough for
-- XDP_REDIRECT, not for XDP_TX: the kernel wakes the peer after XDP_TX
-- only if it has a program). h3:eth0 receives what r1 redirects, h1:eth2
-- what h4 bounces: both get xdp_pass.c, which changes nothing else.
xdp("h3:eth0", { src = "../fixtures/xdp/xdp_pass.c", prog = "xdp_pass", mode = "native" })
xdp("h1:eth2", { src = "../fixtures/xdp/xdp_pass.c", prog = "xdp_pass", mode = "native" })

-- h1 computes the checksums of what it sends in software. A veth offers
-- "checksum offload": the stack leaves the UDP checksum unfinished and
-- marks the packet "checksum still to do" (in its skb), and since no
-- hardware ever does it, every receiver on the same machine trusts that
-- mark instead. A frame that XDP sends on with XDP_TX or XDP_REDIRECT
-- leaves its skb behind, mark included: its receiver would check the
-- unfinished checksum, and drop the packet (Udp.InCsumErrors).
h1:tune("eth1", { tx_checksum = false })
h1:tune("eth2", { tx_checksum = false })

-- Quiet, so that counters count only our traffic (see part 2). IPv6 is off
-- by itself: no node has an IPv6 address.
for _, n in ipairs { h1, h2, r1, h3, h4 } do
  n:sysctl("net.ipv4.igmp_link_local_mcast_reports", 0)
end


-- ---------------------------------------------------------------------------
-- helpers

-- Runs argv in a node; fails the experiment at the caller's line unless it exits 0.
local must = require("commands").must

-- Makes a change, runs body, and always undoes the change (also when make or
-- body fails), so every experiment leaves the lab as it found it.
local with = require("commands").with

-- Every measurement starts from the same neighbour state: ARP caches
-- emptied, then one ping from h1 to `to` (and back) fills the entries the
-- measurement needs, so no ARP packet lands in a count (see part 2).
local function fresh_neighbours(x, to)
  for _, name in ipairs { "h1", "h2", "r1", "h3", "h4" } do
    must(x[name], { "ip", "neigh", "flush", "all" })
  end
  x:expect_eq(x.h1:ping(to, { count = 1 }).received, 1, "h1 reaches " .. to)
end

-- Only the entries of a table whose keys are in `keys` (and not zero).
local function pick(t, keys)
  local out = {}
  for _, k in ipairs(keys) do
    if t and t[k] and t[k] ~= 0 then
      out[k] = t[k]
    end
  end
  return out
end

-- Only the places of node `node` in an x:drops() table ("h2", "h2:eth0").
local function drops_at(drops, node)
  local out = {}
  for place, reasons in pairs(drops) do
    if place == node or place:sub(1, #node + 1) == node .. ":" then
      out[place] = reasons
    end
  end
  return out
end

-- ---------------------------------------------------------------------------
-- The flood, and the ways h2 gets rid of it.
--
-- h1 sends 64-byte UDP payloads (106-byte frames) to h2, port 9000,
-- written straight to its driver through an AF_PACKET ring (labctl's load
-- generator in "ring" mode), 16 flows, from CPU 0. Before the first packet
-- the generator sends one ordinary UDP packet to port 9 (discard) to learn
-- the path and the MACs: it is the one "NO_SOCKET" drop at h2 in every
-- case below, and the one packet that reaches h2's IP stack past XDP.
--
-- h2 drops the flood in one of four places, from the earliest to the latest:
--   xdp                XDP_DROP in h2:eth0's driver (xdp_drop_port.c, UDP
--                      port 9000 put in its map `udp_ports`): no skb for the
--                      stack, no IP, no netfilter
--   nftables-early     an nftables rule in the prerouting hook at priority
--                      raw: the first netfilter hook, after the IP header
--                      checks, before connection tracking and routing
--   nftables-firewall  the usual host firewall: a rule in the input hook,
--                      behind "ct state established,related accept", so
--                      connection tracking looks up every packet, and the
--                      routing decision has been taken
--   socket             nothing listens on port 9000: the whole receive path
--                      runs, UDP finds no socket, drops the packet, and owes
--                      h1 an ICMP "port unreachable" (rate limited)
-- ---------------------------------------------------------------------------

local function flood(x, extra)
  local opts = { to = "198.18.0.2", port = 9000, size = 64, mode = "ring", flows = 16, cpu = 0 }
  for k, v in pairs(extra) do
    opts[k] = v
  end
  return x.h1:blast(opts)
end

local NFT_EARLY = "add table ip part4_early; "
  .. "add chain ip part4_early prerouting { type filter hook prerouting priority raw; policy accept; }; "
  .. "add rule ip part4_early prerouting udp dport 9000 counter drop"

local NFT_FIREWALL = "add table inet part4_firewall; "
  .. "add chain inet part4_firewall input { type filter hook input priority filter; policy accept; }; "
  .. "add rule inet part4_firewall input ct state established,related accept; "
  .. "add rule inet part4_firewall input udp dport 9000 counter drop"

-- Each way: how to set it up and take it down again, the counters to watch,
-- and which of them counts what it dropped.
local WAYS = {
  {
    name = "xdp",
    label = "XDP drop",
    make = function(x)
      x:xdp_attach("h2:eth0", { src = "../fixtures/xdp/xdp_drop_port.c", prog = "xdp_drop_port", mode = "native" })
      x:map_set("h2:eth0", "udp_ports", 9000, 0)
    end,
    undo = function(x)
      x:xdp_detach("h2:eth0")
    end,
    watch = { "h2", "h2:eth0", "h2:eth0:xdp" },
    dropped = function(moved)
      return moved["h2:eth0:xdp"]["actions.XDP_DROP"] or 0
    end,
  },
  {
    name = "nftables-early",
    label = "nftables, prerouting (raw)",
    make = function(x)
      must(x.h2, { "nft", NFT_EARLY })
    end,
    undo = function(x)
      x.h2:run { "nft", "delete table ip part4_early" }
    end,
    rule = { "nft", "list chain ip part4_early prerouting" },
    watch = { "h2", "h2:eth0" },
    dropped = function(moved)
      return (moved.h2["Ip.InReceives"] or 0) - (moved.h2["Udp.NoPorts"] or 0)
    end,
  },
  {
    name = "nftables-firewall",
    label = "nftables, input + conntrack",
    make = function(x)
      must(x.h2, { "nft", NFT_FIREWALL })
    end,
    undo = function(x)
      x.h2:run { "nft", "delete table inet part4_firewall" }
    end,
    rule = { "nft", "list chain inet part4_firewall input" },
    watch = { "h2", "h2:eth0" },
    dropped = function(moved)
      return (moved.h2["Ip.InReceives"] or 0) - (moved.h2["Udp.NoPorts"] or 0)
    end,
  },
  {
    name = "socket",
    label = "no socket",
    listen = false,
    make = function() end,
    undo = function() end,
    watch = { "h2", "h2:eth0" },
    dropped = function(moved)
      return moved.h2["Udp.NoPorts"] or 0
    end,
  },
}

-- ---------------------------------------------------------------------------
-- drop-where: 1000 packets, dropped four ways. Which counters see them, and
-- where the kernel says it dropped them (x:drops: a BPF tracer on the
-- kernel's kfree_skb tracepoint, with the drop reason and the function).
--
-- What to look for (drop-where__drops.snap):
--   * h2:eth0's rx_packets is 1001 every time: the veth counts a frame
--     before XDP runs, so an interface counter cannot tell XDP drops apart.
--   * xdp: the program's own counters (actions.XDP_DROP, udp_ports.9000)
--     say 1000; h2's IP stack saw 1 packet (the probe). The kernel frees
--     the dropped packets in veth_xdp_rcv_skb without a reason
--     (NOT_SPECIFIED): it is the program's drop, not the stack's.
--   * nftables: IP received all 1001 (Ip.InReceives), the rule's counter
--     says 1000, the reason is NETFILTER_DROP (nft_do_chain). Early or
--     late, the counters look the same: only the cost differs (drop-cost).
--   * socket: UDP dropped them all (Udp.NoPorts, NO_SOCKET in
--     __udp4_lib_rcv), and owed h1 an ICMP error for each: a few were sent
--     (Icmp.OutDestUnreachs), the rest suppressed by the rate limit
--     (Icmp.OutRateLimitHost); together 1001.
-- ---------------------------------------------------------------------------

experiment("drop-where", function(x)
  local results = {}
  for _, way in ipairs(WAYS) do
    fresh_neighbours(x, "198.18.0.2")
    results[way.name] = with(function()
      way.make(x)
    end, function()
      way.undo(x)
    end, function()
      local blast, moved
      local drops = x:drops(function()
        moved = x:delta(way.watch, function()
          blast = flood(x, { count = 1000, rate = 20000, listen = way.listen ~= false })
        end)
      end, { locations = true })
      x:expect_eq(blast.sent, 1000, way.name .. ": packets sent")
      local h2 = moved.h2
      return {
        ["h2:eth0 received (rx_packets)"] = moved["h2:eth0"].rx_packets or 0,
        ["h2's IP stack received (Ip.InReceives)"] = h2["Ip.InReceives"] or 0,
        ["h2's UDP found no socket (Udp.NoPorts)"] = h2["Udp.NoPorts"] or 0,
        ["ICMP port unreachable owed to h1 (sent + rate limited)"] = (h2["Icmp.OutDestUnreachs"] or 0)
          + (h2["Icmp.OutRateLimitHost"] or 0)
          + (h2["Icmp.OutRateLimitGlobal"] or 0),
        ["XDP program's counters"] = moved["h2:eth0:xdp"],
        ["nftables rule"] = way.rule and (must(x.h2, way.rule):match("[^\n]*counter[^\n]*"):gsub("^%s+", "")),
        ["drops at h2 (x:drops)"] = drops_at(drops, "h2"),
      }
    end)
  end
  x:snapshot("drops", results)
end)

-- ---------------------------------------------------------------------------
-- drop-cost: the four ways flat out, for one second each, five rounds
-- taken in turn. Everything runs on CPU 0: the sender, and the receive path
-- of h2, which a veth runs on the sending CPU (part 3), in the NET_RX
-- softirq. So the cost of a drop is the CPU time CPU 0 spent in softirq
-- (x:delta's "cputime", from /proc/stat) per packet dropped. Unlike packets
-- per second, that does not change when other programs load the machine:
-- they take turns on the CPU, but a packet's receive path costs what it
-- costs. Half a second of CPU 0's softirq time without our traffic, just
-- before each round, is taken off it (someone else's packets on CPU 0
-- would otherwise count as ours, the more so the fewer packets we got
-- through), and the median of the five rounds keeps a round disturbed
-- anyway from counting.
--
-- What to look for (drop-cost__shape.snap; drop-cost.svg/.txt in the run
-- folder of `labctl run` for the numbers):
--   * XDP drop costs far less CPU per packet than the usual firewall
--     (input hook, connection tracking) and than the socket lookup.
--   * an nftables rule at the first hook, prerouting priority raw, costs
--     about what XDP costs here. That is a veth's doing: the sender built
--     the skb already, and a veth even copies each frame into a buffer
--     with room for XDP before the program runs, so all XDP saves is the
--     IP header checks and one netfilter hook. On a real NIC, native XDP
--     runs on the receive ring's own buffer before any skb exists, and
--     drops several times faster than anything in the stack. Either way:
--     drop as early as you can.
-- ---------------------------------------------------------------------------

local ROUNDS = 5
-- Seconds of CPU 0's softirq time measured without our traffic before each round.
local QUIET_S = 0.5

local function softirq_us(moved)
  return moved.cputime["cpu0.softirq_us"] or 0
end

-- The median of the rounds: one disturbed round moves it least.
local median = require("stats").median

experiment("drop-cost", function(x)
  fresh_neighbours(x, "198.18.0.2")
  local rounds = {}
  for _ = 1, ROUNDS do
    for _, way in ipairs(WAYS) do
      with(function()
        way.make(x)
      end, function()
        way.undo(x)
      end, function()
        local watch = { "cputime" }
        for _, spec in ipairs(way.watch) do
          watch[#watch + 1] = spec
        end
        -- CPU 0's softirq time without our traffic, just before: other
        -- programs' packets and timers, taken off the round's below.
        local quiet = x:delta({ "cputime" }, function()
          x:sleep(QUIET_S)
        end)
        local blast
        local moved = x:delta(watch, function()
          blast = flood(x, { duration = 1, listen = way.listen ~= false })
        end)
        local background_us = softirq_us(quiet) * blast.duration_s / QUIET_S
        local ours_ns = math.max(softirq_us(moved) - background_us, 0) * 1000
        rounds[way.name] = rounds[way.name] or {}
        table.insert(rounds[way.name], ours_ns / math.max(way.dropped(moved), 1))
      end)
    end
  end
  local cost, bars = {}, {}
  for _, way in ipairs(WAYS) do
    cost[way.name] = median(rounds[way.name])
    bars[#bars + 1] = { way.label, cost[way.name] }
  end
  x:chart("drop-cost", {
    title = "CPU time in h2's receive softirq per dropped 64-byte UDP packet (median of 5 rounds)",
    unit = "ns per packet",
    bars = bars,
  })
  x:snapshot("shape", {
    ["XDP drop costs less CPU per packet than nftables drop (input + conntrack)"] = x:expect(
      cost.xdp < cost["nftables-firewall"],
      "XDP drop costs less CPU per packet than an nftables firewall drop"
    ),
    ["XDP drop costs less CPU per packet than no socket"] = x:expect(
      cost.xdp < cost.socket,
      "XDP drop costs less CPU per packet than a drop for lack of a socket"
    ),
  })
end)

-- ---------------------------------------------------------------------------
-- redirect: r1 as an XDP router. xdp_redirect.c on r1:eth0 looks up the
-- kernel's own routing table and neighbour cache for every IPv4 packet
-- (bpf_fib_lookup), and sends it out of the egress interface directly,
-- MACs rewritten and TTL decremented, if the device map `tx_port` lists that
-- interface. The lab comes up with the map empty: the program passes
-- everything, and r1's stack forwards as any router. Then the experiment
-- puts r1:eth1 into the map (x:map_set), and takes it out again at the end.
--
-- 1000 UDP packets h1 -> h3 each time, and one more captured on its way at
-- r1:eth0, r1:eth1 and h3:eth0.
--
-- What to look for (redirect__stack.snap, redirect__xdp.snap):
--   * stack: XDP_PASS 1000, and r1's IP counters count a router's work
--     (Ip.InReceives, Ip.ForwDatagrams, Ip.OutTransmits). The capture sees
--     the packet come in on r1:eth0 (TTL 64) and leave on r1:eth1 (TTL 63).
--   * xdp: XDP_REDIRECT 1000, and r1's IP stack counted nothing at all.
--     h3 still receives every packet, with TTL 63. And the capture on r1
--     sees nothing: tcpdump taps packets in the stack, and these never
--     entered it. On an XDP router, look at the program's counters (or
--     capture at the neighbours), not at tcpdump on the router.
--   * the kernel's XDP tracepoints (x:xdp_events) agree: xdp_redirect 1000
--     at r1:eth0, and 1000 frames the device map sent out of r1:eth1
--     (xdp_devmap_xmit), none dropped; nothing at all in the stack case.
--   * h3:eth0's rx_bytes differ (92000 vs 106000) for the same packets: a
--     veth counts a packet from the stack without its Ethernet header, and
--     an XDP frame with it.
-- ---------------------------------------------------------------------------

experiment("redirect", function(x)
  local attached = {}
  for _, at in ipairs { "r1:eth0", "h4:eth0", "h3:eth0", "h1:eth2", "h2:eth0" } do
    local info = x:xdp(at)
    attached[at] = info and { mode = info.mode, program = info.program, maps = info.maps } or "none"
  end
  x:snapshot("attached", attached)

  local egress = x:ifindex("r1:eth1")
  local function measure()
    fresh_neighbours(x, "198.18.2.3")
    local flow, moved
    local events = x:xdp_events(function()
      moved = x:delta({ "r1", "r1:eth0", "r1:eth1", "h3:eth0", "r1:eth0:xdp" }, function()
        flow = x.h1:udp { to = "198.18.2.3", count = 1000, rate = 20000 }
      end)
    end)
    x:expect_eq(flow.received_packets, flow.sent_packets, "UDP packets h1 -> h3 received")
    local trace = x:capture({ "r1:eth0", "r1:eth1", "h3:eth0" }, function()
      x.h1:udp { to = "198.18.2.3", count = 1 }
    end)
    return {
      udp = { sent = flow.sent_packets, received = flow.received_packets },
      counters = moved,
      ["xdp events"] = events,
      trace = trace,
    }
  end
  x:snapshot("stack", measure())
  x:snapshot("xdp", with(function()
    x:map_set("r1:eth0", "tx_port", egress, egress)
  end, function()
    x:map_delete("r1:eth0", "tx_port", egress)
  end, measure))
end)

-- ---------------------------------------------------------------------------
-- reflect: h4 bounces every UDP packet back to its sender (xdp_tx_bounce.c:
-- MACs, IP addresses and ports swapped, XDP_TX). 1000 UDP packets h1 -> h4.
--
-- What to look for (reflect__bounce.snap):
--   * h4's IP stack counted nothing, and the sink listening on h4 received
--     nothing: h4:eth0 sent every frame straight back (tx_packets 1000).
--   * the tracepoint xdp_bulk_tx says h4:eth0 flushed 1000 frames to its
--     peer and lost none (without an XDP program on h1:eth2 most would show
--     up as xdp_bulk_tx.drops: the peer's queue fills and nobody drains it).
--   * h1 received them all (h1:eth2 rx_packets, Ip.InDelivers 1000): to
--     h1 they look like replies from h4 to the socket that sent them.
--     (That socket never reads: most of them are then dropped for lack of
--     room in its receive buffer, Udp.RcvbufErrors.)
-- ---------------------------------------------------------------------------

experiment("reflect", function(x)
  fresh_neighbours(x, "198.18.3.4")
  local flow, moved
  local events = x:xdp_events(function()
    moved = x:delta({ "h1", "h4", "h1:eth2", "h4:eth0", "h4:eth0:xdp" }, function()
      flow = x.h1:udp { to = "198.18.3.4", count = 1000, rate = 20000 }
    end)
  end)
  x:snapshot("bounce", {
    udp = { sent = flow.sent_packets, ["received by h4's sink"] = flow.received_packets },
    ["h4:eth0:xdp"] = moved["h4:eth0:xdp"],
    ["xdp events"] = events,
    ["h4:eth0"] = moved["h4:eth0"],
    ["h4 (IP stack)"] = moved.h4,
    ["h1:eth2"] = moved["h1:eth2"],
    ["h1 (IP stack)"] = pick(moved.h1, { "Ip.InReceives", "Ip.InDelivers", "Udp.OutDatagrams" }),
  })
end)
