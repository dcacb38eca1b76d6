-- Part 4: Supercharging with XDP and eBPF — run your own code at the very
-- first place a received packet reaches: drop, bounce and forward packets
-- before the kernel's network stack has even looked at them.
--
--           ┌── h2      flood target: drop 64-byte UDP three ways   198.18.0.0/24
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
-- also writes the pps comparison as a chart into runs/part4-<time>/):
--   drop-where  1000 packets dropped by XDP, by nftables, for lack of a
--               socket: where each drop happens, and who counts it
--   drop-cost   the same three drops flat out: packets per second each
--               can take
--   redirect    r1 forwards in XDP (XDP_REDIRECT): its IP stack sees
--               nothing, and neither does a capture on r1
--   reflect     h4 bounces UDP back to h1 (XDP_TX) without its stack
--
-- Try (after `sudo labctl up labs/part4.lua`):
--   labctl xdp part4                                  # programs, modes, ids, maps, from the kernel
--   labctl exec part4 r1 -- ip -d link show eth0      # "xdp" and "prog/xdp id ..."
--   bpftool prog show; bpftool map dump pinned /sys/fs/bpf/labctl/part4/r1-eth0/maps/actions
--   labctl exec part4 h1 -- ping -c3 198.18.2.3       # via r1: the XDP router passes ICMP on to the stack
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

-- XDP_TX and XDP_REDIRECT hand frames to a veth's peer, which takes them
-- only while it runs NAPI: with an XDP program attached, or with GRO on.
-- h3:eth0 receives what r1 redirects; h1:eth2 what h4 bounces.
h3:tune("eth0", { gro = true })
h1:tune("eth2", { gro = true })

-- Quiet, so that counters count only our traffic (see part 2). IPv6 is off
-- by itself: no node has an IPv6 address.
for _, n in ipairs { h1, h2, r1, h3, h4 } do
  n:sysctl("net.ipv4.igmp_link_local_mcast_reports", 0)
end

