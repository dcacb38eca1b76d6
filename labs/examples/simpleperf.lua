-- Mininet's simpleperf example, ported: four hosts on one switch, every
-- host's link shaped to 10 Mbit/s, neighbours resolved statically
-- (Mininet's autoStaticArp), and a lossy link. Mininet's version also
-- adds 5 ms of delay per link; that needs sch_netem, which the kernel
-- this lab is tested on lacks (labctl refuses it there, before building
-- anything), so delay is left out. Its loss is 10% on every link, in
-- Mininet's sender-side netem; here the loss is labctl's seeded program
-- at the receiving side, switched on for the loss experiment only, so
-- the throughput measurement is not a TCP loss-recovery benchmark.
--
--   h1 ─┐
--   h2 ─┤ s1        each link 10mbit each way (tbf at both ends)
--   h3 ─┤           h4's link: loss = "0%" declared (the loss program is
--   h4 ─┘           attached, dropping nothing until x:impair says so)
--
--   sudo labctl up labs/examples/simpleperf.lua
--   labctl plan labs/examples/simpleperf.lua      # the qdisc and loss steps
--   labctl graph labs/examples/simpleperf.lua     # impairments on the edges
--   sudo labctl test labs/examples/simpleperf.lua

lab { name = "simpleperf", description = "hosts on a switch, links shaped to 10 Mbit/s, seeded loss", static_neighbours = true }

local RATE = 10e6
local s1 = bridge("s1")
local hosts = {}
for i = 1, 4 do
  hosts[i] = node("h" .. i)
  local impair = { rate = "10mbit" }
  if i == 4 then
    impair = { rate = "10mbit", loss = "0%", seed = 7 }
  end
  link(hosts[i], s1, { ("198.18.0.%d/24"):format(i), impair = impair })
end

-- Mininet's simpleperf measures with iperf over UDP; so does this port:
-- h1 offers 13.8 Mbit/s (1200 packets of 1400 bytes a second) to h4 for
-- 2 s, and what h4 receives on the wire (frames with their Ethernet
-- headers, as tbf counts them) over the flow's time is the shaped rate.
-- (TCP fills the link too, GSO being off on shaped ends, but a rare
-- retransmission timeout makes it a poor ruler for a 5% band.)
local function wire_rate(x, from, to, seconds)
  local flow
  local moved = x:delta({ to .. ":eth0" }, function()
    flow = x[from]:udp { to = "198.18.0." .. to:sub(2), size = 1400, rate = 1200, duration = seconds }
  end)
  return moved[to .. ":eth0"].rx_bytes * 8 / flow.duration_s
end

experiment("rate", function(x)
  x:snapshot("rate", {
    asked_bps = RATE,
    wire_bps = x.range(wire_rate(x, "h1", "h4", 2), RATE * 0.95, RATE * 1.05),
  })
end)

-- While the function runs, h1's link is shaped to 5 Mbit/s; then it is
-- back to the declared 10 Mbit/s.
experiment("degrade", function(x)
  local slow = x:impair("h1:eth0", { rate = "5mbit" }, function()
    return wire_rate(x, "h1", "h2", 1)
  end)
  x:snapshot("rates", {
    slow_bps = x.range(slow, 5e6 * 0.95, 5e6 * 1.05),
    restored_bps = x.range(wire_rate(x, "h1", "h2", 1), RATE * 0.95, RATE * 1.05),
  })
end)

-- 10% loss with seed 7 on what h4 sends: 1000 UDP packets from h4 to h1
-- lose the same packets on every run, and the count is exact.
experiment("loss", function(x)
  x:impair("h4:eth0", { loss = "10%", seed = 7 })
  local flow = x.h4:udp { to = "198.18.0.1", size = 64, count = 1000, rate = 5000 }
  local state = x:impair("h4:eth0")
  x:snapshot("loss", {
    sent = flow.sent_packets,
    received = flow.received_packets,
    lost = flow.sent_packets - flow.received_packets,
    dropped_by_program = state.dropped,
  })
end)
