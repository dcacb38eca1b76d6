-- Part 3: Bottlenecks — where the CPU time of receiving packets goes, and
-- what queues, RPS, packet size and GRO change about it.
--
--                 ┌── single   1 queue                          198.18.1.0/24
--                 ├── multi    4 queues                         198.18.2.0/24
--      tx (CPU 0) ┼── rps      4 queues, RPS over CPUs 0 and 1  198.18.3.0/24
--                 ├── gro      GRO on  ┐ TCP, sender without    198.18.4.0/24
--                 ├── nogro    GRO off ┘ TSO/GSO (MTU frames)   198.18.5.0/24
--                 └── busy     1 queue, RPS: everything to CPU 1 198.18.6.0/24
--
-- One sender, tx, and six receivers, each on its own veth "cable" and each
-- tuned differently, so that every comparison below is made in one lab, on
-- one machine, a second apart. tx's interfaces are eth0 ... eth5 in that
-- order; every receiver's is eth0.
--
-- The measuring instrument is the kernel's own per-CPU accounting (machine
-- wide, see part 2):
--   /proc/net/softnet_stat   per CPU: packets processed, packets dropped
--                            because the CPU's backlog queue was full,
--                            time_squeeze (a NET_RX run that stopped with
--                            work left), received_rps (RPS wake-ups)
--   /proc/softirqs           per CPU: how often NET_RX (receive) ran
-- and the load generator built into labctl, `blast`: UDP from tx, either
-- through ordinary sockets (mode "mmsg", sendmmsg: the full stack) or
-- written straight to the driver through an AF_PACKET TX ring (mode
-- "ring"), into a sink that counts what arrives. The sender is pinned to
-- CPU 0 and the sink to CPU 0 too, so CPU 1 does only what the kernel
-- sends it. (`labctl blast part3 tx single --mode ring` does the same from
-- the command line.)
--
-- How a veth differs from a NIC, which matters for everything below: a
-- veth has no hardware and no interrupts. Sending on one end hands the
-- packet to the other end on the *sending* CPU (its backlog queue, or the
-- queue's NAPI context when GRO is on), and the receive work runs there,
-- in the NET_RX softirq. On a real NIC the card hashes each flow to a
-- receive queue (RSS) and each queue's interrupt goes to its own CPU; on a
-- veth only RPS (Receive Packet Steering, the same idea in software:
-- hash the flow, queue the packet to the chosen CPU's backlog, wake that
-- CPU with an IPI) moves receive work to another CPU.
--
-- Experiments (`labctl test labs/part3.lua`; `labctl run labs/part3.lua`
-- also writes every chart as SVG and as a table into runs/part3-<time>/):
--   queues        64 flows into 1 queue, 4 queues, 4 queues + RPS:
--                 which CPUs did the receive work
--   packet-size   64-byte and 1400-byte payloads: packets and bits per second
--   gro           a TCP flow with GRO on and off: packets the stack handled
--   softirq-hell  a receiver too slow for its traffic, with and without
--                 RPS: back-pressure, or backlog drops and time_squeeze
--   backlog       bursts into a slow receiver with the default backlog
--                 and a too-small one (a machine-wide setting, changed
--                 for one second and put back)
--
-- The snapshots keep the *shape* of each result (which counters moved,
-- which stayed zero, which way a comparison went, a share within broad
-- bounds), never a throughput: those differ from machine to machine and
-- from run to run, and the charts show them.
--
-- Try (after `sudo labctl up labs/part3.lua`):
--   labctl exec part3 rps -- cat /sys/class/net/eth0/queues/rx-0/rps_cpus   # 3: CPUs 0 and 1
--   labctl exec part3 multi -- ls /sys/class/net/eth0/queues                # rx-0..3, tx-0..3
--   labctl exec part3 gro -- ethtool -k eth0 | grep generic-receive         # on (if ethtool is installed)
--   cat /proc/net/softnet_stat; labctl blast part3 tx rps --mode ring --flows 64 --cpu 0; cat /proc/net/softnet_stat
--   watch -d -n1 'grep NET_RX /proc/softirqs'                               # in a second terminal
--   labctl down part3

lab { name = "part3", description = "Bottlenecks: queues and RPS, packet size, GRO, softirq overload" }

local tx = node("tx")
local single = node("single")
local multi = node("multi")
local rps = node("rps")
local gro = node("gro")
local nogro = node("nogro")
local busy = node("busy")

link(tx, single, { "198.18.1.1/24", "198.18.1.2/24" })
link(tx, multi, { "198.18.2.1/24", "198.18.2.2/24", queues = 4 })
link(tx, rps, { "198.18.3.1/24", "198.18.3.2/24", queues = 4 })
link(tx, gro, { "198.18.4.1/24", "198.18.4.2/24" })
link(tx, nogro, { "198.18.5.1/24", "198.18.5.2/24" })
link(tx, busy, { "198.18.6.1/24", "198.18.6.2/24" })

-- The 4-queue links: XPS (transmit packet steering) lets tx's CPU 0 use all
-- four transmit queues, one per flow by hash; on a veth, transmit queue n
-- leads to the peer's receive queue n. (Without it an AF_PACKET sender
-- puts everything on queue "CPU number modulo 4".)
tx:tune("eth1", { xps_cpus = "1" })
tx:tune("eth2", { xps_cpus = "1" })
-- RPS: every receive queue of rps:eth0 may hand packets to CPU 0 or CPU 1
-- (hex CPU mask 3 = binary 11), by a hash of the flow's addresses and ports.
rps:tune("eth0", { rps_cpus = "3" })
-- busy hands every packet to CPU 1 (mask 2 = binary 10).
busy:tune("eth0", { rps_cpus = "2" })
-- GRO (generic receive offload) glues consecutive segments of a TCP flow
-- into one large packet before the IP stack sees them. On a veth it also
-- switches the receive side to NAPI (a per-queue poll loop, as on a NIC).
-- The sender splits its data into MTU-sized packets itself (TSO and GSO
-- off), as a real wire would carry them; otherwise a veth would carry the
-- sender's 64 KB super-packets whole and there would be nothing to glue.
tx:tune("eth3", { tso = false, gso = false })
tx:tune("eth4", { tso = false, gso = false })
gro:tune("eth0", { gro = true })
nogro:tune("eth0", { gro = false })

-- Quiet, so that counters count only our traffic (see part 2).
for _, n in ipairs { tx, single, multi, rps, gro, nogro, busy } do
  n:sysctl("net.ipv6.conf.default.disable_ipv6", 1)
  n:sysctl("net.ipv4.igmp_link_local_mcast_reports", 0)
end

-- ---------------------------------------------------------------------------
-- helpers

-- The sender and the sink both run on CPU 0 in every blast.
local SENDER_CPU = 0

-- The machine's CPUs as the softnet counters name them: { "cpu0", "cpu1", ... }.
local function cpus(x)
  local found = {}
  for name in pairs(x:counters({ "softnet" }).softnet) do
    local cpu = name:match("^(cpu%d+)%.processed$")
    if cpu then
      found[#found + 1] = cpu
    end
  end
  table.sort(found, function(a, b)
    return tonumber(a:sub(4)) < tonumber(b:sub(4))
  end)
  return found
end

-- One counter per CPU out of a delta: per_cpu(moved.softnet, cpus, "%s.processed")
-- -> { { "cpu0", 143534 }, { "cpu1", 56 } } (ordered pairs, as x:chart takes them).
local function per_cpu(group, list, format)
  local values = {}
  for _, cpu in ipairs(list) do
    values[#values + 1] = { cpu, (group or {})[format:format(cpu)] or 0 }
  end
  return values
end

local function total(pairs_)
  local sum = 0
  for _, p in ipairs(pairs_) do
    sum = sum + p[2]
  end
  return sum
end

-- The share of the largest value: 1 when one CPU did everything.
local function top_share(pairs_)
  local top, sum = 0, total(pairs_)
  for _, p in ipairs(pairs_) do
    top = math.max(top, p[2])
  end
  return sum > 0 and top / sum or 0
end

-- How many CPUs did at least `fraction` of the work.
local function cpus_working(pairs_, fraction)
  local n, sum = 0, total(pairs_)
  for _, p in ipairs(pairs_) do
    if sum > 0 and p[2] >= sum * fraction then
      n = n + 1
    end
  end
  return n
end

-- Runs argv in a node; fails the experiment at the caller's line unless it exits 0.
local must = require("commands").must

-- ---------------------------------------------------------------------------
-- queues: where does the receive work run?
--
-- tx blasts 64 UDP flows (64 source ports) for a second into each of
-- single, multi and rps, and we count per CPU the packets each CPU took
-- through the receive path of the receiver's eth0 (`x:path` with per_cpu:
-- the kernel's netif_receive_skb tracepoint, by CPU, for this one device;
-- softnet's "processed" would add up every device of the machine, so any
-- other lab's traffic at the same moment would count too) and how often
-- NET_RX ran (machine-wide, so only charted).
--
-- What to look for (queues__cpus.snap, and cpu-work.svg in the run folder):
--   * 1 queue: one CPU (tx's, CPU 0) did all the receive work.
--   * 4 queues: still one CPU. The flows are spread over four queues, but
--     on a veth a queue has no interrupt of its own to send to another
--     CPU: each packet is received where it was sent. (On a NIC, this is
--     where RSS and per-queue interrupt affinity would spread the load.)
--   * 4 queues + RPS: both CPUs share the work, flow by flow (the split
--     depends on how the 64 flows hash, so it is near but rarely exactly
--     half). CPU 1 is woken by inter-processor interrupts: its
--     received_rps moves, and NET_RX now runs on CPU 1 too, fewer times
--     than on CPU 0 because each wake-up drains a whole batch.
-- ---------------------------------------------------------------------------

experiment("queues", function(x)
  local list = cpus(x)
  local shapes, work, net_rx = {}, {}, {}
  for _, case in ipairs {
    { "1 queue", "single", "198.18.1.2" },
    { "4 queues", "multi", "198.18.2.2" },
    { "4 queues + RPS", "rps", "198.18.3.2" },
  } do
    local label, receiver, to = case[1], case[2], case[3]
    local blast, moved
    local path = x:path(function()
      moved = x:delta({ "softnet", "softirqs" }, function()
        blast = x.tx:blast { to = to, mode = "ring", flows = 64, duration = 1, cpu = SENDER_CPU, sink_cpu = SENDER_CPU }
      end)
    end, { per_cpu = true })
    x:expect_eq(blast.received, blast.sent, label .. ": packets received")
    local processed = per_cpu(path[receiver .. ":eth0"], list, "rx.%s")
    local raised = per_cpu(moved.softirqs, list, "NET_RX.%s")
    local woken = total(per_cpu(moved.softnet, list, "%s.received_rps"))
    work[#work + 1] = { label, processed }
    net_rx[#net_rx + 1] = { label, raised }
    shapes[label] = {
      ["CPUs doing at least 10% of the receive work"] = cpus_working(processed, 0.1),
      ["share of the busiest CPU"] = label == "4 queues + RPS" and x.range(top_share(processed), 0.5, 0.9)
        or x.range(top_share(processed), 0.95, 1),
    }
    if label == "4 queues + RPS" then
      -- Machine-wide, but only ever more with other traffic: a claim it cannot break.
      shapes[label]["RPS woke another CPU"] = woken > 100
    end
  end
  x:snapshot("cpus", shapes)
  x:chart("cpu-work", {
    title = "Where the receive work ran: packets each CPU received on the receiver's eth0",
    unit = "packets",
    bars = work,
  })
  x:chart("net-rx", { title = "NET_RX softirq runs per CPU", unit = "NET_RX runs", bars = net_rx })
end)

-- ---------------------------------------------------------------------------
-- packet-size: small packets cost as much as big ones.
--
-- One second of 64-byte payloads (106-byte frames), then one second of
-- 1400-byte payloads (1442-byte frames), three rounds in turn, both into
-- single, through the AF_PACKET ring. Almost all of the work is per packet (allocate a buffer,
-- look up routes and sockets, queue, wake the reader), very little is per
-- byte (a copy or two), so the packet rate hardly changes with size while
-- the bit rate grows with it: 22 times the payload, about 22 times the
-- bits per second. The
-- cost of a packet stream is counted in packets per second, not in bits:
-- that is why line rate with 64-byte packets (14.88 million per second on
-- 10 Gbit/s Ethernet) is the hard benchmark, and 1500-byte packets (0.8
-- million per second) the easy one. A veth has no wire, so here nothing
-- but the CPU limits either size; on a NIC the wire caps big packets
-- first, and small ones then get more packets per second through.
--
-- What to look for (packet-size__rates.snap, pps.svg, bps.svg, cost.svg):
-- about the same time per packet in the kernel's receive path for both
-- sizes (the snapshot compares that, not packets per second, which a busy
-- machine changes from round to round), about the same packets per second
-- in the charts, and many more bits per second with 1400 bytes.
--
-- The time is the kernel's own: x:path's rx_time times every call of the
-- receive path (__netif_receive_skb: IP, netfilter, routing, UDP, the
-- socket's queue) for single:eth0's packets, from entry to return. It runs
-- in softirq context, which other programs cannot preempt, so a busy
-- machine does not stretch it (machine-wide softirq time would count
-- every other lab's packets too).
-- ---------------------------------------------------------------------------

-- The median of the rounds: one disturbed round moves it least.
local median = require("stats").median

local SIZE_ROUNDS = 3

experiment("packet-size", function(x)
  local rounds = { [64] = {}, [1400] = {} }
  for _ = 1, SIZE_ROUNDS do
    for _, size in ipairs { 64, 1400 } do
      local r
      local path = x:path(function()
        r = x.tx:blast {
          to = "198.18.1.2",
          mode = "ring",
          size = size,
          flows = 16,
          duration = 1,
          cpu = SENDER_CPU,
          sink_cpu = SENDER_CPU,
        }
      end, { rx_time = true })
      x:expect_eq(r.received, r.sent, size .. "-byte packets received")
      local receiver = path["single:eth0"]
      r.rx_ns_per_packet = receiver.rx_ns / math.max(receiver.rx, 1)
      table.insert(rounds[size], r)
    end
  end
  local function med(size, field)
    local values = {}
    for i, r in ipairs(rounds[size]) do
      values[i] = r[field]
    end
    return median(values)
  end
  local small, large = rounds[64][1], rounds[1400][1]
  x:snapshot("rates", {
    ["frame bytes"] = { ["64 B payload"] = small.frame_size, ["1400 B payload"] = large.frame_size },
    -- Time per packet, not packets per second: a busy machine slows both
    -- sizes, but does not change what a packet costs. The 1442-byte frame
    -- has 13.6 times the bytes of the 106-byte one; were the cost per
    -- byte, it would cost 13.6 times as much. It costs about the same
    -- (0.7 to 1.3 measured on a loaded machine: caches and clocks vary).
    ["1400 B / 64 B, receive path time per packet (13.6 if cost were per byte)"] = x.range(
      med(1400, "rx_ns_per_packet") / med(64, "rx_ns_per_packet"),
      0.33,
      3
    ),
    ["1400 B: more bits per second"] = med(1400, "received_bps") > med(64, "received_bps"),
  })
  x:chart("pps", {
    title = "Packets per second by UDP payload size (median of 3 rounds)",
    unit = "packets/s received",
    bars = { { "64 B", med(64, "received_pps") }, { "1400 B", med(1400, "received_pps") } },
  })
  x:chart("bps", {
    title = "Bits per second by UDP payload size (median of 3 rounds)",
    unit = "payload bit/s received",
    bars = { { "64 B", med(64, "received_bps") }, { "1400 B", med(1400, "received_bps") } },
  })
  x:chart("cost", {
    title = "Time in the kernel's receive path per packet, by UDP payload size (median of 3 rounds)",
    unit = "ns per packet",
    bars = { { "64 B", med(64, "rx_ns_per_packet") }, { "1400 B", med(1400, "rx_ns_per_packet") } },
  })
end)

-- ---------------------------------------------------------------------------
-- gro: fewer, bigger packets for the stack.
--
-- A one-second TCP flow tx -> gro and tx -> nogro. tx sends MTU-sized
-- segments on both links. We count at the receiver:
--   rx_packets of its eth0   packets that arrived on the "wire"
--   Ip.InReceives            packets the IP stack was handed (a glued
--                            packet counts once, as it goes through once)
-- and softnet's processed on every CPU (packets through the receive path).
--
-- What to look for (gro__counts.snap, packets.svg): with GRO off the stack
-- handles every packet of the wire, one by one. With GRO on it handles
-- far fewer, each carrying many segments (tens of them here), so routing,
-- netfilter and TCP run once per glued packet instead of once per segment.
-- The bytes delivered are the same; the throughput is in throughput.svg.
-- ---------------------------------------------------------------------------

experiment("gro", function(x)
  local list = cpus(x)
  local shapes, packets, speed, handed = {}, {}, {}, {}
  for _, case in ipairs { { "GRO on", "gro", "198.18.4.2" }, { "GRO off", "nogro", "198.18.5.2" } } do
    local label, name, to = case[1], case[2], case[3]
    local flow
    local moved = x:delta({ name, name .. ":eth0", "softnet" }, function()
      flow = x.tx:tcp { to = to, duration = 1 }
    end)
    x:expect_eq(flow.received_bytes, flow.sent_bytes, label .. ": bytes received")
    local wire = moved[name .. ":eth0"].rx_packets or 0
    local stack = moved[name]["Ip.InReceives"] or 0
    local through = total(per_cpu(moved.softnet, list, "%s.processed"))
    shapes[label] = {
      ["packets on the wire"] = x.positive(wire),
      ["packets handed to IP, per packet on the wire"] = label == "GRO on" and x.range(stack / wire, 0, 0.5)
        or x.range(stack / wire, 0.98, 1.0),
    }
    handed[label] = stack / wire
    packets[#packets + 1] = {
      label,
      { { "on the wire (rx_packets)", wire }, { "handed to IP (Ip.InReceives)", stack }, { "softnet processed (ACKs to tx too)", through } },
    }
    speed[#speed + 1] = { label, flow.throughput_bps }
  end
  shapes["GRO on hands IP at most half as many packets per packet on the wire as GRO off"] = handed["GRO on"]
    <= handed["GRO off"] / 2
  x:snapshot("counts", shapes)
  x:chart("packets", { title = "One second of TCP: packets at the receiver", unit = "packets", bars = packets })
  x:chart("throughput", { title = "TCP throughput, MTU-sized segments", unit = "bit/s", bars = speed })
end)

-- ---------------------------------------------------------------------------
-- softirq-hell: a receiver that cannot keep up.
--
-- single and busy are given the same expensive receive path for the
-- occasion: a firewall of 4000 rules that every packet is checked against,
-- one after the other (nftables here; a ruleset grown over years, or
-- kube-proxy's iptables mode with thousands of services, look like this).
-- Receiving one packet now takes on the order of 100 µs instead of 1 µs.
-- Then tx blasts 64 flows at each through its AF_PACKET ring, as fast as it
-- can, for a second.
--
--   * single (no RPS): the receive work runs on the sending CPU, inside the
--     send call. The sender can go no faster than the receiver:
--     back-pressure. Nothing is dropped, no queue ever fills.
--   * busy (RPS to CPU 1): the sender only queues each packet on CPU 1's
--     backlog and goes on; sending costs a few microseconds, receiving a
--     hundred. The backlog (net.core.netdev_max_backlog, 1000 packets)
--     overflows: softnet "dropped" moves on CPU 1, and the veth counts
--     the drop on tx's side (tx_dropped). The AF_PACKET sender is told
--     (ENOBUFS) and sends the frame again, so every frame still arrives,
--     at the rate CPU 1 manages, after many refusals.
--     And "time_squeeze" moves: the NET_RX softirq takes the backlog 64
--     packets at a time (the device weight) and may run for 2 jiffies
--     (net.core.netdev_budget_usecs) before it must let the CPU do
--     something else; 64 packets at ~100 µs overrun that, every time, so
--     each run ends with work left. This is the "softirq hell" of a
--     server flooded with packets: a CPU that does nothing but receive,
--     and still drops.
--
-- Nothing here changes a machine-wide setting: the pressure comes from
-- the per-packet cost (the firewall, inside the receiver's namespace) and
-- from RPS putting all flows on one CPU (a setting of busy's interface).
--
-- What to look for (softirq-hell__pressure.snap, backlog.svg).
-- ---------------------------------------------------------------------------

local FIREWALL_RULES = 4000

-- A table "part3_firewall" with FIREWALL_RULES rules in one chain that
-- every packet entering the node passes; none of them matches our traffic.
local function add_firewall(node)
  must(node, {
    "sh",
    "-c",
    ([[{
      echo 'add table ip part3_firewall'
      echo 'add chain ip part3_firewall input { type filter hook prerouting priority filter; policy accept; }'
      i=1
      while [ $i -le %d ]; do
        echo "add rule ip part3_firewall input udp sport $i counter drop"
        i=$((i + 1))
      done
    } | nft -f -]]):format(FIREWALL_RULES),
  })
end

-- Makes a change, runs body, and always undoes the change (also when make or
-- body fails), so every experiment leaves the lab as it found it.
local with = require("commands").with

experiment("softirq-hell", function(x)
  local list = cpus(x)
  local shapes, rates = {}, {}
  with(function()
    add_firewall(x.single)
    add_firewall(x.busy)
  end, function()
    x.single:run { "nft", "delete table ip part3_firewall" }
    x.busy:run { "nft", "delete table ip part3_firewall" }
  end, function()
    for _, case in ipairs {
      { "no RPS", "single", "198.18.1.2", "tx:eth0" },
      { "RPS to CPU 1", "busy", "198.18.6.2", "tx:eth5" },
    } do
      local label, name, to, sender_if = case[1], case[2], case[3], case[4]
      local blast, moved
      -- Backlog drops counted where they happen, by the drop-reason tracer
      -- (CPU_BACKLOG at the receiver's eth0), not by softnet's machine-wide
      -- "dropped": only this lab's packets count.
      local drops = x:drops(function()
        moved = x:delta({ "softnet", sender_if }, function()
          blast = x.tx:blast { to = to, mode = "ring", flows = 64, duration = 1, cpu = SENDER_CPU, sink_cpu = SENDER_CPU }
        end)
      end)
      local dropped = (drops[name .. ":eth0"] or {}).CPU_BACKLOG or 0
      local squeezed = total(per_cpu(moved.softnet, list, "%s.time_squeeze"))
      local refused = moved[sender_if].tx_dropped or 0
      x:expect_eq(blast.received, blast.sent, label .. ": frames the sender counted as sent, received")
      if label == "no RPS" then
        shapes[label] = {
          [("backlog drops at %s:eth0 (CPU_BACKLOG)"):format(name)] = dropped,
          ["frames the veth refused (tx:eth0 tx_dropped)"] = refused,
          ["frames the sender was told to send again (ENOBUFS)"] = blast.send_errors,
        }
      else
        local cpu1 = moved.softnet["cpu1.dropped"] or 0
        shapes[label] = {
          [("backlog drops at %s:eth0 (CPU_BACKLOG)"):format(name)] = x.positive(dropped),
          -- Machine-wide, but other traffic only adds: claims it cannot break.
          ["backlog drops on CPU 1 (softnet)"] = x.positive(cpu1),
          ["time_squeeze, all CPUs"] = x.positive(squeezed),
          ["frames the veth refused (tx:eth5 tx_dropped)"] = x.positive(refused),
          ["frames the sender was told to send again (ENOBUFS)"] = x.positive(blast.send_errors),
          ["refused frames, for each one received"] = x.range(refused / math.max(blast.received, 1), 2, math.huge),
        }
      end
      local secs = blast.duration_s
      rates[#rates + 1] = {
        label,
        {
          { "offered (frames/s)", (blast.sent + blast.send_errors) / secs },
          { "received (packets/s)", blast.received_pps },
          { "backlog drops (/s)", dropped / secs },
        },
      }
    end
  end)
  x:snapshot("pressure", shapes)
  x:chart("backlog", {
    title = ("A %d-rule firewall on the receiver, with and without RPS"):format(FIREWALL_RULES),
    unit = "per second",
    bars = rates,
  })
end)

-- ---------------------------------------------------------------------------
-- backlog: the queue that absorbs bursts, and what happens when it, or
-- the NET_RX budget that empties it, is too small.
--
-- busy again (everything to CPU 1 by RPS, the 4000-rule firewall making
-- each packet cost ~100 µs there). This time tx sends a rate CPU 1 can
-- manage on average, 2000 packets per second, but in bursts: 200 UDP
-- packets back to back (through ordinary sockets, mode "mmsg", which do
-- not resend what is dropped), then nothing for 100 ms. A burst arrives in
-- well under a millisecond and takes CPU 1 some 20 ms to work off; until
-- then it waits in CPU 1's backlog queue.
--
--   * backlog 1000 (net.core.netdev_max_backlog, the kernel's default):
--     the whole burst fits. Nothing is lost, just delayed.
--   * backlog 16: the first 16 or so packets of each burst fit, the rest
--     are dropped on arrival (softnet "dropped" on CPU 1). The average
--     load is the same; the queue is what changed.
--   * budget 8 (net.core.netdev_budget, default 300: how many packets one
--     run of the NET_RX softirq may take before it must let the CPU do
--     something else), backlog back at the default: each run takes one
--     helping of up to 64 packets (the device weight), finds its budget
--     spent and stops with work left: time_squeeze moves, several times
--     per burst. Nothing is lost: the backlog holds the rest until the
--     next run. (With the default budget a burst is worked off in one or
--     two runs without a squeeze; softirq-hell above squeezes by time.)
--
-- The backlog is one of the few network settings the kernel keeps for the
-- whole machine, not per namespace: `x:host_sysctl{...}` changes it for
-- the length of one function, with the old value journaled in the lab's
-- state folder and put back afterwards (also by `labctl down` if labctl
-- died in between). Anything else on the machine that receives packets in
-- that second sees the small backlog too.
--
-- What to look for (backlog__bursts.snap, burst-loss.svg).
-- ---------------------------------------------------------------------------

local BURST, RATE, COUNT = 200, 2000, 2000
local SMALL_BACKLOG = 16
local SMALL_BUDGET = 8

experiment("backlog", function(x)
  local default_backlog = x:host_sysctl("net.core.netdev_max_backlog")
  local shapes, bars = {}, {}
  local function bursts(label)
    local blast
    local moved = x:delta({ "softnet" }, function()
      blast = x.tx:blast {
        to = "198.18.6.2",
        mode = "mmsg",
        flows = 64,
        rate = RATE,
        burst = BURST,
        count = COUNT,
        cpu = SENDER_CPU,
        sink_cpu = SENDER_CPU,
      }
    end)
    local dropped = moved.softnet["cpu1.dropped"] or 0
    local squeezed = moved.softnet["cpu1.time_squeeze"] or 0
    bars[#bars + 1] = {
      label,
      {
        { "sent", blast.sent },
        { "received", blast.received },
        { "backlog drops, CPU 1", dropped },
        { "time_squeeze, CPU 1", squeezed },
      },
    }
    return blast, dropped, squeezed
  end
  with(function()
    add_firewall(x.busy)
  end, function()
    x.busy:run { "nft", "delete table ip part3_firewall" }
  end, function()
    local blast, dropped = bursts(("backlog %d (default)"):format(default_backlog))
    x:expect_eq(blast.sent, COUNT, "packets sent with the default backlog")
    shapes["backlog at the kernel's default (1000 or more)"] = {
      ["default is at least 1000"] = default_backlog >= 1000,
      ["packets lost (of 2000)"] = x.range(blast.dropped, 0, 20),
      ["backlog drops on CPU 1"] = x.range(dropped, 0, 20),
    }
    x:host_sysctl({ ["net.core.netdev_max_backlog"] = SMALL_BACKLOG }, function()
      blast, dropped = bursts(("backlog %d"):format(SMALL_BACKLOG))
    end)
    x:expect_eq(blast.sent, COUNT, "packets sent with the small backlog")
    shapes[("backlog %d"):format(SMALL_BACKLOG)] = {
      ["packets lost (of 2000)"] = x.range(blast.dropped, 1000, 2000),
      ["backlog drops on CPU 1"] = x.range(dropped, 1000, 2000),
      ["every lost packet is a backlog drop"] = dropped == blast.dropped,
    }
    local squeezed
    x:host_sysctl({ ["net.core.netdev_budget"] = SMALL_BUDGET }, function()
      blast, dropped, squeezed = bursts(("budget %d"):format(SMALL_BUDGET))
    end)
    x:expect_eq(blast.sent, COUNT, "packets sent with the small budget")
    shapes[("budget %d, backlog at the default"):format(SMALL_BUDGET)] = {
      ["packets lost (of 2000)"] = x.range(blast.dropped, 0, 20),
      ["time_squeeze on CPU 1, per burst"] = x.range(squeezed / (COUNT / BURST), 1, 50),
    }
  end)
  x:expect_eq(x:host_sysctl("net.core.netdev_max_backlog"), default_backlog, "backlog restored")
  x:expect(x:host_sysctl("net.core.netdev_budget") ~= SMALL_BUDGET, "budget restored")
  x:snapshot("bursts", shapes)
  x:chart("burst-loss", {
    title = ("Bursts of %d UDP packets at %d packets/s into a slow receiver"):format(BURST, RATE),
    unit = "packets",
    bars = bars,
  })
end)
