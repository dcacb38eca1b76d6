-- Real NICs and SR-IOV VFs, or veth stand-ins: one lab for a laptop and a
-- test box. Three machines share one Ethernet segment, 198.18.8.0/24:
--
--   h1 (lan0) ─┐
--   h2 (lan0) ─┼── the wire ── r1 (wan0)
--
-- On a laptop (the defaults), the wire is a bridge and every interface a
-- veth:
--   sudo labctl test labs/examples/real-nics.lua
-- On a box with an SR-IOV NIC cabled to a second port:
--   sudo labctl up labs/examples/real-nics.lua --set pf=enp1s0 --set uplink=enp2s0
-- the PF enp1s0 gets two VFs, h1 and h2 each own one (the PF sets their
-- MACs, spoofchk and trust), and r1 owns the whole port enp2s0 as wan0; the
-- cable between the two ports is the wire. `labctl down` gives both ports
-- back exactly as they were (names, MTU, MAC, addresses, VF count and
-- settings), also after a kill -9. A port that carries an address or the
-- default route is refused (`force = true` takes it anyway).
-- `labctl doctor` lists the NICs here and whether each can be claimed.

local pf = param("pf", "veth")         -- a PF with SR-IOV, e.g. enp1s0; "veth": stand-ins
local uplink = param("uplink", "veth") -- a port to claim whole, e.g. enp2s0; "veth": a stand-in

-- The wire is either the cable between the two ports or a bridge: not half of each.
assert((pf == "veth") == (uplink == "veth"), "set both pf and uplink with --set, or neither")

local h1 = node("h1")
local h2 = node("h2")
local r1 = node("r1", { forwarding = true })
local wire = pf == "veth" and bridge("wire")

if pf == "veth" then
  link(h1, wire, { "198.18.8.2/24", names = { "lan0" } })
  link(h2, wire, { "198.18.8.3/24", names = { "lan0" } })
else
  sriov(pf, { vfs = 2, vf = {
    [0] = { mac = "02:00:00:00:30:01", spoofchk = true, trust = false },
    [1] = { mac = "02:00:00:00:30:02", spoofchk = true, trust = false },
  } })
  h1:vf(pf, 0, { name = "lan0", "198.18.8.2/24" })
  h2:vf(pf, 1, { name = "lan0", "198.18.8.3/24" })
end

if uplink == "veth" then
  link(r1, wire, { "198.18.8.1/24", names = { "wan0" } })
else
  r1:nic(uplink, { name = "wan0", "198.18.8.1/24" })
end

-- Both hosts reach the router and each other over the wire, whatever it is.
experiment("reach", function(x)
  for _, from in ipairs { "h1", "h2" } do
    local p = x[from]:ping("198.18.8.1", { count = 3, interval = 0.2 })
    x:expect(p.received == 3, from .. " reaches r1:wan0")
  end
  local p = x.h1:ping("198.18.8.3", { count = 3, interval = 0.2 })
  x:expect(p.received == 3, "h1 reaches h2")
end)
