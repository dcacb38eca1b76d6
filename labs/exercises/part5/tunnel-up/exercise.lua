-- Exercise part5/tunnel-up: the tunnel does not carry on-prem's traffic.
--
--   vpc1 ── vpc ── gw_cloud ══ inet ══ gw_onprem ── op1
--   198.19.10.0/24                                198.19.20.0/24
--
-- The lab of part 5, with the ipsec{} declaration in a file the learner
-- edits (tunnel.lua). It has a mistake: the tunnel's traffic selectors do
-- not match the on-prem subnet, so VPC-to-on-prem packets find no IPsec
-- policy and no route across the internet. The checks read the child SAs
-- (x:ipsec) and a capture of the internet link: the fix must go through
-- the tunnel, ESP only on the wire.

lab { name = "ex-tunnel-up", description = "part5 exercise: a mismatch in the ipsec{} declaration" }

exercise {
  title = "Bring the VPC-to-on-prem tunnel up",
  task = [[
    vpc1 (198.19.10.10) cannot reach op1 (198.19.20.10) on-premises. The
    IPsec tunnel between gw_cloud and gw_onprem is declared in tunnel.lua;
    find the mismatch and fix it. The traffic must cross the internet
    router (inet) as ESP only.
  ]],
  hints = {
    "`labctl exec ex-tunnel-up gw_cloud -- ip xfrm policy` (or swanctl's view in `labctl show ex-tunnel-up`) shows which subnets the tunnel protects.",
    "Compare the tunnel's subnets with the addresses of the two sites: which one does op1 live in?",
    "right_subnet must be on-prem's subnet, 198.19.20.0/24.",
  },
  edit = { "tunnel.lua" },
}

local vpc1 = node("vpc1")
local vpc = bridge("vpc")
gw_cloud = node("gw_cloud")
local inet = node("inet")
gw_onprem = node("gw_onprem")
local op1 = node("op1")

link(vpc1, vpc, { "198.19.10.10/24" })
link(gw_cloud, vpc, { "198.19.10.1/24" })
link(gw_cloud, inet, { "198.18.1.1/24", "198.18.1.254/24" })
link(inet, gw_onprem, { "198.18.2.254/24", "198.18.2.1/24" })
link(gw_onprem, op1, { "198.19.20.1/24", "198.19.20.10/24" })
vpc1:route("default", "198.19.10.1")
op1:route("default", "198.19.20.1")
gw_cloud:route("default", "198.18.1.254")
gw_onprem:route("default", "198.18.2.254")
for _, n in ipairs { gw_cloud, inet, gw_onprem } do
  n:sysctl("net.ipv4.ip_forward", 1)
end
vpc:sysctl("net.ipv4.igmp_link_local_mcast_reports", 0)

edited("tunnel.lua")

local function covers(ts, subnet)
  for _, t in ipairs(ts or {}) do
    if t == subnet then
      return true
    end
  end
  return ts == subnet
end

check("child SAs between the two sites are installed", function(x)
  for _, gw in ipairs { { "gw_cloud", "198.19.20.0/24" }, { "gw_onprem", "198.19.10.0/24" } } do
    local status = x:ipsec(gw[1])
    local sa = status.sas[1]
    x:expect(sa ~= nil and sa.state == "INSTALLED", gw[1] .. " has no installed child SA")
    if sa then
      x:expect(covers(sa.remote_ts, gw[2]),
        ("%s's child SA protects traffic to %s, not to the far site %s"):format(gw[1], table.concat(type(sa.remote_ts) == "table" and sa.remote_ts or { tostring(sa.remote_ts) }, ", "), gw[2]))
    end
  end
end, { hint = "the child SA's remote traffic selector must be the far site's subnet" })

check("vpc1 and op1 reach each other", function(x)
  grade.expect_reach(x, "vpc1", "198.19.20.10", { name = "op1" })
  grade.expect_reach(x, "op1", "198.19.10.10", { name = "vpc1" })
end, { hint = "packets for a subnet no SA covers have no way across the internet" })

check("only ESP crosses the internet link", function(x)
  local trace = x:capture({ "inet:eth0" }, function()
    x.vpc1:ping("198.19.20.10", { count = 3, interval = 0.05, timeout = 0.3 })
  end)
  local esp, clear = 0, {}
  for _, line in ipairs(trace:lines()) do
    if line:find(" ESP ", 1, true) then
      esp = esp + 1
    elseif not line:find(" ARP ", 1, true) then
      clear[#clear + 1] = line
    end
  end
  x:expect(esp >= 6, ("%d ESP packets on inet:eth0 for 3 pings (expected 6)"):format(esp))
  x:expect(#clear == 0, "in clear on the internet link: " .. (clear[1] or ""))
end, { hint = "the tunnel must carry the traffic: no route around it" })
