-- Part 5: Secure links like a pro — an IPsec tunnel between a "cloud VPC"
-- and an on-premises network, across an "internet" that must never see the
-- traffic inside.
--
--   vpc1 ─┐                                                          
--         ├─ vpc ── gw_cloud ══════ inet ══════ gw_onprem ── op1      
--   vpc2 ─┘  (switch)   198.18.1.0/24     198.18.2.0/24                
--
--   cloud VPC   198.19.10.0/24: vpc1 .10, vpc2 .11, gw_cloud .1 (vpc:eth? ports)
--   "internet"  198.18.1.0/24 (gw_cloud:eth1 .1 <-> inet:eth0 .254)
--               198.18.2.0/24 (inet:eth1 .254 <-> gw_onprem:eth0 .1)
--   on-prem     198.19.20.0/24: gw_onprem:eth1 .1 <-> op1:eth0 .10
--
-- The internet router knows only the 198.18.x links: the VPC and on-prem
-- subnets are private, so without a tunnel vpc1 cannot reach op1 at all.
-- The gateways build an IPsec tunnel (IKEv2, pre-shared key derived from the
-- lab, ESP with AES-GCM-128) that carries 198.19.10.0/24 <-> 198.19.20.0/24
-- encrypted between their public addresses 198.18.1.1 and 198.18.2.1.
--
-- The backend is pinned to strongSwan so the snapshots are the same on
-- every machine: charon with kernel-libipsec does ESP in user space over a
-- TUN device `ipsec0` (MTU 1400) and always wraps ESP in UDP port 4500.
-- (`backend = "auto"` picks the kernel's own XFRM ESP where the kernel has
-- it: then the wire shows raw ESP, IP protocol 50. `labctl doctor` tells
-- which one this machine would use.) labctl also adds a routing rule
-- `to <far subnet> unreachable` on each gateway, right after charon's own
-- rule for its table 220: when the tunnel is down the traffic is dropped
-- there ("fail closed"), never sent along the default route in clear.
--
-- Experiments (`labctl test labs/part5.lua`):
--   reachability  pings across the tunnel, and what the internet cannot reach
--   wire          what crosses the internet link: only ESP in UDP 4500, no inner address
--   throughput    TCP over the tunnel vs. in clear over the same links (shape, not numbers)
--   mtu           ESP overhead: a 1500-byte packet with DF does not fit; without DF it is split
--   tunnel-down   charon stopped on gw_cloud: traffic dropped with a reason, never leaked; then back
--
-- Try (after `sudo labctl up labs/part5.lua`):
--   labctl exec part5 vpc1 -- ping -c 3 198.19.20.10
--   swanctl --list-sas --uri unix:///run/labctl/part5/ipsec/gw_cloud/charon.vici
--   labctl exec part5 gw_cloud -- ip route show table 220      # the route into ipsec0
--   labctl exec part5 gw_cloud -- ip rule                      # 220: charon's table; 221: fail closed
--   labctl exec part5 inet -- tcpdump -ni eth0                 # what the internet sees
--   labctl down part5

-- The backend is a parameter: `labctl run labs/part5.lua --set backend=kernel`
-- uses the kernel's XFRM ESP instead (the kernel test lane, .ci/vm-lane,
-- runs it so on Debian's kernel); the snapshots are strongSwan's.
local backend = param("backend", "strongswan")

lab { name = "part5", description = "Secure links like a pro: an IPsec tunnel between a cloud VPC and on-prem" }

local vpc1 = node("vpc1")
local vpc2 = node("vpc2")
local vpc = bridge("vpc")
local gw_cloud = node("gw_cloud")
local inet = node("inet")
local gw_onprem = node("gw_onprem")
local op1 = node("op1")

link(vpc1, vpc, { "198.19.10.10/24" })
link(vpc2, vpc, { "198.19.10.11/24" })
link(gw_cloud, vpc, { "198.19.10.1/24" })                       -- gw_cloud:eth0
link(gw_cloud, inet, { "198.18.1.1/24", "198.18.1.254/24" })    -- gw_cloud:eth1 <-> inet:eth0
link(inet, gw_onprem, { "198.18.2.254/24", "198.18.2.1/24" })   -- inet:eth1 <-> gw_onprem:eth0
link(gw_onprem, op1, { "198.19.20.1/24", "198.19.20.10/24" })   -- gw_onprem:eth1 <-> op1:eth0

vpc1:route("default", "198.19.10.1")
vpc2:route("default", "198.19.10.1")
op1:route("default", "198.19.20.1")
gw_cloud:route("default", "198.18.1.254")
gw_onprem:route("default", "198.18.2.254")

for _, gw in ipairs { gw_cloud, inet, gw_onprem } do
  gw:sysctl("net.ipv4.ip_forward", 1)
end

-- Quiet, so that traces hold only what the experiments send (see part 2;
-- labctl already switches IPv6 off in nodes without IPv6 addresses): the
-- VPC switch does not announce its multicast snooping group.
vpc:sysctl("net.ipv4.igmp_link_local_mcast_reports", 0)

ipsec {
  left = gw_cloud, right = gw_onprem,
  -- The gateways are not on one link (the internet is between them), so
  -- name the tunnel endpoints: their addresses on the internet side.
  left_address = "198.18.1.1", right_address = "198.18.2.1",
  left_subnet = "198.19.10.0/24", right_subnet = "198.19.20.0/24",
  mode = "tunnel", cipher = "aes-gcm-128", backend = backend,
}

-- ---------------------------------------------------------------------------
-- helpers

-- Runs argv in a node; fails the experiment at the caller's line unless it exits 0.
local must = require("commands").must

-- What a ping says, without round-trip times.
local function outcome(ping)
  return { transmitted = ping.transmitted, received = ping.received, errors = ping.errors }
end

-- Only IP lines of a trace: ARP depends on what the neighbour caches hold.
local function ip_lines(trace)
  local out = {}
  for _, line in ipairs(trace:lines()) do
    if not line:find(" ARP ", 1, true) then
      out[#out + 1] = line
    end
  end
  return out
end

-- Lines that show an inner (198.19.x) address in clear.
local function leaks(lines)
  local n = 0
  for _, line in ipairs(lines) do
    if line:find("198.19.", 1, true) then
      n = n + 1
    end
  end
  return n
end

-- The gateway's SA as the snapshot shows it: what is negotiated, not the
-- SPIs (new every run) or the counters (they depend on earlier traffic).
local function sa_shape(status)
  local sa = status.sas[1] or {}
  local ike = status.ike[1] or {}
  return {
    backend = status.backend,
    ike = { state = ike.state, local_port = ike.local_port, remote_port = ike.remote_port, encryption = ike.encryption },
    child = {
      state = sa.state, mode = sa.mode, encap = sa.encap, encryption = sa.encryption,
      local_ts = sa.local_ts, remote_ts = sa.remote_ts,
    },
  }
end

-- The SA counters of `node` that moved while `body` ran.
local function sa_delta(x, node, body)
  local before = x:ipsec(node).sas[1]
  body()
  local after = x:ipsec(node).sas[1]
  local d = {}
  for _, k in ipairs { "packets_in", "bytes_in", "packets_out", "bytes_out" } do
    d[k] = after[k] - before[k]
  end
  return d
end

-- ---------------------------------------------------------------------------
-- reachability: the tunnel joins the two private networks; the internet in
-- between still cannot reach them.
-- ---------------------------------------------------------------------------

experiment("reachability", function(x)
  local pings = {
    ["vpc1 -> op1"] = outcome(x.vpc1:ping("198.19.20.10", { count = 2, interval = 0.1 })),
    ["vpc2 -> op1"] = outcome(x.vpc2:ping("198.19.20.10", { count = 2, interval = 0.1 })),
    ["op1 -> vpc1"] = outcome(x.op1:ping("198.19.10.10", { count = 2, interval = 0.1 })),
    ["inet -> vpc1"] = outcome(x.inet:ping("198.19.10.10", { count = 1, timeout = 0.5 })),
  }
  x:expect_eq(pings["vpc1 -> op1"].received, 2, "vpc1 reaches op1 through the tunnel")
  x:expect_eq(pings["op1 -> vpc1"].received, 2, "op1 reaches vpc1 through the tunnel")
  x:expect_eq(pings["inet -> vpc1"].received, 0, "the internet router cannot reach the VPC")
  x:snapshot("pings", pings)
  local status = x:ipsec("gw_cloud")
  x:expect_eq(status.sas[1].state, "INSTALLED", "gw_cloud's child SA")
  x:snapshot("sa", { gw_cloud = sa_shape(status), gw_onprem = sa_shape(x:ipsec("gw_onprem")) })
end)

-- ---------------------------------------------------------------------------
-- wire: three pings vpc1 -> op1, seen by the internet router on its link to
-- gw_cloud. Every packet is UDP 4500 carrying ESP (SPIs and sequence numbers
-- numbered in order of appearance: spi#1 is gw_cloud -> gw_onprem); no
-- 198.19.x address appears anywhere. `len` is the UDP payload: 84 bytes of
-- inner packet (20 IP + 8 ICMP + 56 data) + 8 ESP header + 8 IV + 2 trailer
-- + 2 padding + 16 ICV = 120.
-- ---------------------------------------------------------------------------

experiment("wire", function(x)
  local moved
  local trace = x:capture({ "inet:eth0" }, function()
    moved = sa_delta(x, "gw_cloud", function()
      x.vpc1:ping("198.19.20.10", { count = 3, interval = 0.05 })
    end)
  end)
  local lines = ip_lines(trace)
  x:expect_eq(#lines, 6, "packets on the internet link (3 requests, 3 replies)")
  -- strongSwan's user-space ESP is always in UDP 4500; the kernel's is raw (IP protocol 50).
  local esp = backend == "kernel" and "IPv4 198.18.%d.1 > 198.18.%d.1 ESP " or "UDP 198.18.%d.1:4500 > 198.18.%d.1:4500 ESP "
  for _, line in ipairs(lines) do
    x:expect(line:find(esp) ~= nil, "not the backend's ESP: " .. line)
  end
  x:expect_eq(leaks(lines), 0, "lines with an inner address in clear")
  x:snapshot("trace", table.concat(lines, "\n"))
  -- charon's own count of what went through the SA (inner packets and bytes).
  x:snapshot("sa_counters", moved)
end)

-- ---------------------------------------------------------------------------
-- throughput: one TCP flow for a second through the tunnel (vpc1 -> op1),
-- and one in clear over the same internet links (gw_cloud -> gw_onprem).
-- User-space ESP costs a lot: every packet goes through charon twice (TUN
-- read, encrypt, UDP send; UDP receive, decrypt, TUN write). The numbers
-- depend on the machine; the shape does not: IPsec is slower.
-- ---------------------------------------------------------------------------

experiment("throughput", function(x)
  local plain = x.gw_cloud:tcp { to = "198.18.2.1", duration = 1 }
  local ipsec = x.vpc1:tcp { to = "198.19.20.10", duration = 1 }
  local mbps = function(flow) return flow.throughput_bps / 1e6 end
  x:expect(ipsec.received_bytes > 0, "TCP through the tunnel moved data")
  x:expect(mbps(ipsec) < mbps(plain), ("IPsec %.0f Mbit/s is not slower than plain %.0f Mbit/s"):format(mbps(ipsec), mbps(plain)))
  x:snapshot("mbps", {
    plain = x.range(mbps(plain), 100, 1e6),
    ipsec = x.range(mbps(ipsec), 1, 1e6),
    ["ipsec slower than plain"] = mbps(ipsec) < mbps(plain),
  })
end)

-- ---------------------------------------------------------------------------
-- mtu: ESP adds ~60 bytes (outer IP 20, UDP 8, ESP 8, IV 8, padding and
-- trailer, ICV 16); charon's ipsec0 has MTU 1400 to leave room for them.
--   * a 1500-byte packet with DF set (ping -M do -s 1472) cannot enter the
--     tunnel: gw_cloud answers "fragmentation needed, mtu 1400" and vpc1
--     learns the path MTU (its next try fails locally);
--   * 1400 bytes (-s 1372) fit: 1400 + 64 = 1464 bytes on the wire;
--   * the same 1500 bytes without DF are fragmented by gw_cloud *before*
--     encryption: two ESP packets cross the internet for each ping.
-- ---------------------------------------------------------------------------

local function df_ping(x, size, df)
  return x.vpc1:run { "ping", "-n", "-c", "1", "-W", "2", "-M", df and "do" or "dont", "-s", tostring(size), "198.19.20.10" }
end

-- ping's verdict without times and ids.
local function verdict(r)
  local lines = {}
  for line in (r.stdout .. r.stderr):gmatch("[^\n]+") do
    if line:find("mtu", 1, true) or line:find("received", 1, true) then
      lines[#lines + 1] = (line:gsub(", time %d+ms", ""):gsub("icmp_seq=%d+ ", ""))
    end
  end
  return { status = r.status, said = lines }
end

experiment("mtu", function(x)
  must(x.vpc1, { "ip", "route", "flush", "cache" }) -- forget path MTUs learnt earlier (TCP)
  local too_big
  local trace = x:capture({ "vpc1:eth0" }, function()
    too_big = df_ping(x, 1472, true)
  end)
  x:expect(too_big.status ~= 0, "a 1500-byte DF packet crossed a 1400-byte tunnel")
  local learnt = df_ping(x, 1472, true)
  local fits = df_ping(x, 1372, true)
  x:expect_eq(fits.status, 0, "1400-byte packets with DF cross the tunnel")
  local wire = x:capture({ "inet:eth0" }, function()
    x:expect_eq(df_ping(x, 1472, false).status, 0, "1500-byte packets without DF cross the tunnel")
  end)
  local esp = ip_lines(wire)
  x:expect_eq(#esp, 4, "ESP packets on the internet for one fragmented ping (2 each way)")
  x:snapshot("df", {
    ["1500 DF, first"] = verdict(too_big),
    ["1500 DF, again"] = verdict(learnt),
    ["1400 DF"] = verdict(fits),
  })
  -- Only the ICMP exchange: on a slow machine the last segments of the
  -- throughput experiment's TCP connection can still reach vpc1 here.
  local icmp = {}
  for _, line in ipairs(ip_lines(trace)) do
    if line:find(" ICMP ", 1, true) then
      icmp[#icmp + 1] = line
    end
  end
  x:snapshot("need-frag", table.concat(icmp, "\n"))
  x:snapshot("fragmented-on-the-wire", table.concat(esp, "\n"))
end)

-- ---------------------------------------------------------------------------
-- tunnel-down: charon on gw_cloud stops (it tells gw_onprem, which deletes
-- its side too). The route into ipsec0 goes with it, and what is left is
-- the fail-closed rule `to 198.19.20.0/24 unreachable`: gw_cloud drops
-- vpc1's packets and says why (ICMP "net unreachable" to vpc1; in its
-- counters IpExt.InNoRoutes, and no Ip.ForwDatagrams); nothing reaches the
-- internet, in clear or otherwise. Then the tunnel comes back.
-- ---------------------------------------------------------------------------

experiment("tunnel-down", function(x)
  x:ipsec_stop("gw_cloud")
  local down = x:ipsec("gw_cloud")
  x:expect_eq(down.running, false, "charon on gw_cloud runs")
  local ping
  local moved
  local trace = x:capture({ "inet:eth0" }, function()
    moved = x:delta({ "gw_cloud" }, function()
      ping = x.vpc1:ping("198.19.20.10", { count = 2, interval = 0.1, timeout = 1 })
    end)
  end)
  local lines = ip_lines(trace)
  x:expect_eq(ping.received, 0, "replies while the tunnel is down")
  x:expect_eq(leaks(lines), 0, "inner addresses on the internet link while the tunnel is down")
  x:expect_eq(#lines, 0, "packets on the internet link while the tunnel is down")
  x:snapshot("down", {
    ping = outcome(ping),
    ["internet link"] = #lines == 0 and "nothing" or table.concat(lines, "\n"),
    ["gw_cloud counters"] = moved.gw_cloud,
  })

  x:ipsec_start("gw_cloud")
  if backend == "kernel" then
    -- The kernel backend's SAs are static (no IKE): gw_cloud's come back
    -- with sequence numbers from 1, which gw_onprem's replay window would
    -- drop; so gw_onprem starts afresh too.
    x:ipsec_stop("gw_onprem")
    x:ipsec_start("gw_onprem")
  end
  local back = x.vpc1:ping("198.19.20.10", { count = 2, interval = 0.1 })
  x:expect_eq(back.received, 2, "replies once the tunnel is back")
  x:snapshot("back", { ping = outcome(back), sa = sa_shape(x:ipsec("gw_cloud")) })
end)
