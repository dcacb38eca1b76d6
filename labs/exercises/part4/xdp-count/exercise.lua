-- Exercise part4/xdp-count: count packets per IP protocol in a map.
--
--      h1 (198.18.0.1) ── h2 (198.18.0.2, XDP on eth0)
--
-- The grader sends a known mix (10 ICMP echo requests, 20 UDP datagrams)
-- and reads the program's map: it must hold exactly those counts, and no
-- TCP.

lab { name = "ex-xdp-count", description = "part4 exercise: count packets per IP protocol in XDP" }

exercise {
  title = "Count packets per IP protocol in XDP",
  task = [[
    Complete xdp_count.c so that it counts every packet arriving at h2 by
    its IP protocol number in the `packets` map, and passes them all.
    `labctl exercise check` recompiles and attaches it, sends a known mix of
    ICMP and UDP, and compares your map with what was sent.
  ]],
  hints = {
    "The protocol is a field of the IPv4 header: ip->protocol (1 ICMP, 17 UDP).",
    "bpf_map_lookup_elem(&packets, &protocol) returns a pointer to this CPU's counter (or NULL): check it, then `*slot += 1`.",
    "Check `(void *)(eth + 1) <= data_end` before reading eth->h_proto, and `(void *)(ip + 1) <= data_end` before ip->protocol.",
  },
  edit = { "xdp_count.c" },
}

local h1 = node("h1")
local h2 = node("h2")
link(h1, h2, { "198.18.0.1/24", "198.18.0.2/24" })
for _, n in ipairs { h1, h2 } do
  n:sysctl("net.ipv4.igmp_link_local_mcast_reports", 0)
end
xdp("h2:eth0", { src = edited("xdp_count.c"), prog = "xdp_count", mode = "native" })

local XDP = "h2:eth0:xdp"

local function mix(x)
  -- Resolve h2 first, so the mix itself is only IP.
  x.h1:ping("198.18.0.2", { count = 1, timeout = 0.3 })
  local ping, flow
  local moved = x:delta({ XDP }, function()
    ping = x.h1:ping("198.18.0.2", { count = 10, interval = 0.01, timeout = 0.3 })
    flow = x.h1:udp { to = "198.18.0.2", port = 5201, size = 64, count = 20, rate = 10000 }
  end)
  return moved[XDP], ping, flow
end

check("the map counts exactly the mix the grader sent", function(x)
  local counted, ping, flow = mix(x)
  local icmp, udp = counted["packets.1"] or 0, counted["packets.17"] or 0
  x:expect(icmp == ping.transmitted,
    ("packets[1] (ICMP) moved by %d; the grader sent %d echo requests"):format(icmp, ping.transmitted))
  x:expect(udp == flow.sent_packets,
    ("packets[17] (UDP) moved by %d; the grader sent %d datagrams"):format(udp, flow.sent_packets))
  local tcp = counted["packets.6"] or 0
  x:expect(tcp == 0, ("packets[6] (TCP) moved by %d, but no TCP was sent"):format(tcp))
end, { hint = "count by ip->protocol, once per packet" })

check("every packet still passes", function(x)
  local _, ping, flow = mix(x)
  x:expect(ping.received == ping.transmitted, ("h1 -> h2 ping: %d sent, %d received"):format(ping.transmitted, ping.received))
  x:expect(flow.received_packets == flow.sent_packets,
    ("h1 -> h2:5201 UDP: %d sent, %d received"):format(flow.sent_packets, flow.received_packets))
end, { hint = "a counter returns XDP_PASS for every packet" })
