-- Exercise part4/xdp-drop-port: drop a UDP flood in XDP.
--
--      h1 (198.18.0.1) ── h2 (198.18.0.2, XDP on eth0)
--
-- The learner completes an XDP program that drops UDP to port 9 (the
-- discard service) before the kernel allocates anything for it, and lets
-- everything else through. The checks send traffic and read the program's
-- own action counters and the kernel's drop trace.

lab { name = "ex-xdp-drop-port", description = "part4 exercise: drop UDP port 9 in XDP" }

exercise {
  title = "Drop UDP to port 9 in XDP",
  task = [[
    Complete xdp_drop_port.c so that UDP packets to port 9 arriving at h2
    are dropped by XDP, and everything else (ping, UDP to other ports)
    passes. Keep its `actions` map. `labctl exercise check` recompiles the
    program and attaches it to h2:eth0.
  ]],
  hints = {
    "Follow the headers: Ethernet (struct ethhdr), then IPv4 (struct iphdr) if h_proto is ETH_P_IP, then UDP (struct udphdr) if protocol is IPPROTO_UDP.",
    "Before reading a header, prove it lies inside the packet: `if ((void *)(ip + 1) > data_end) return count(XDP_PASS);`.",
    "Ports are in network byte order: compare `udp->dest == bpf_htons(DISCARD_PORT)` and return count(XDP_DROP).",
  },
  edit = { "xdp_drop_port.c" },
}

local h1 = node("h1")
local h2 = node("h2")
link(h1, h2, { "198.18.0.1/24", "198.18.0.2/24" })
for _, n in ipairs { h1, h2 } do
  n:sysctl("net.ipv4.igmp_link_local_mcast_reports", 0)
end
xdp("h2:eth0", { src = edited("xdp_drop_port.c"), prog = "xdp_drop_port", mode = "native" })

local XDP = "h2:eth0:xdp"

local function udp(x, port, count)
  local flow
  local moved = x:delta({ XDP }, function()
    flow = x.h1:udp { to = "198.18.0.2", port = port, size = 64, count = count, rate = 20000 }
  end)
  return flow, moved[XDP]
end

check("the flood to port 9 dies in XDP", function(x)
  local flow, actions = udp(x, 9, 200)
  local dropped = actions["actions.XDP_DROP"] or 0
  x:expect(flow.received_packets == 0,
    ("h1 -> h2:9 UDP: %d sent, %d reached the socket on h2"):format(flow.sent_packets, flow.received_packets))
  x:expect(dropped >= flow.sent_packets,
    ("XDP_DROP counted %d of the %d packets to port 9"):format(dropped, flow.sent_packets))
end, { hint = "compare the UDP destination port with bpf_htons(DISCARD_PORT)" })

check("ping and UDP to other ports still pass", function(x)
  grade.expect_reach(x, "h1", "198.18.0.2", { name = "h2" })
  local flow = udp(x, 5201, 100)
  x:expect(flow.received_packets == flow.sent_packets,
    ("h1 -> h2:5201 UDP: %d sent, %d received: the program drops more than port 9"):format(flow.sent_packets, flow.received_packets))
end, { hint = "dropping all UDP (or everything) is not the task: only port 9" })

check("no XDP_ABORTED", function(x)
  local _, actions = udp(x, 9, 50)
  local aborted = actions["actions.XDP_ABORTED"] or 0
  x:expect(aborted == 0, ("%d packets ended in XDP_ABORTED: return XDP_DROP or XDP_PASS"):format(aborted))
end)
