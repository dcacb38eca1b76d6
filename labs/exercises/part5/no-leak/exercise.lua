-- Exercise part5/no-leak: one subnet crosses the internet in clear.
--
--   vpc1 ── vpc ── gw_cloud ══ inet ══ gw_onprem ─┬─ op1  198.19.20.0/24
--   198.19.10.0/24                                └─ op2  198.19.21.0/24
--
-- The tunnel (tunnel.lua, the piece the learner edits) protects the VPC
-- and op1's subnet only. The internet router inet happens to know routes
-- to both sites, so the VPC's packets to op2 still flow: in clear, readable
-- by anyone on the internet link (op2's answers hit gw_onprem's guard
-- against clear traffic to the VPC, so they die there). The checks capture the
-- internet link while both on-prem hosts talk to the VPC.

lab { name = "ex-no-leak", description = "part5 exercise: traffic of one subnet leaks in clear across the internet" }

exercise {
  title = "Stop the clear-text leak across the internet",
  task = [[
    vpc1 reaches op1 (198.19.20.10) through the tunnel, but its packets to
    op2 (198.19.21.10) cross the internet router in clear, and get no
    answer. Fix the tunnel declaration in tunnel.lua so that nothing between
    the sites crosses in clear and both on-prem hosts reach the VPC.
  ]],
  hints = {
    "Capture the internet link while vpc1 pings op2: `labctl exec ex-no-leak inet -- tcpdump -ni eth0`. ESP, or ICMP in clear?",
    "The tunnel's traffic selectors decide what is encrypted: which on-prem subnets does it cover?",
    "One prefix covers both 198.19.20.0/24 and 198.19.21.0/24: right_subnet = \"198.19.20.0/23\".",
  },
  edit = { "tunnel.lua" },
}

local vpc1 = node("vpc1")
local vpc = bridge("vpc")
gw_cloud = node("gw_cloud")
local inet = node("inet")
gw_onprem = node("gw_onprem")
local op1 = node("op1")
local op2 = node("op2")

link(vpc1, vpc, { "198.19.10.10/24" })
link(gw_cloud, vpc, { "198.19.10.1/24" })
link(gw_cloud, inet, { "198.18.1.1/24", "198.18.1.254/24" })
link(inet, gw_onprem, { "198.18.2.254/24", "198.18.2.1/24" })
link(gw_onprem, op1, { "198.19.20.1/24", "198.19.20.10/24" })
link(gw_onprem, op2, { "198.19.21.1/24", "198.19.21.10/24" })
vpc1:route("default", "198.19.10.1")
op1:route("default", "198.19.20.1")
op2:route("default", "198.19.21.1")
gw_cloud:route("default", "198.18.1.254")
gw_onprem:route("default", "198.18.2.254")
-- The leak's enabler: a transit router that routes the sites' private subnets.
inet:route("198.19.10.0/24", "198.18.1.1")
inet:route("198.19.20.0/23", "198.18.2.1")
for _, n in ipairs { gw_cloud, inet, gw_onprem } do
  n:sysctl("net.ipv4.ip_forward", 1)
end
vpc:sysctl("net.ipv4.igmp_link_local_mcast_reports", 0)

edited("tunnel.lua")

check("vpc1 reaches op1 and op2, both ways", function(x)
  grade.expect_reach(x, "vpc1", "198.19.20.10", { name = "op1" })
  grade.expect_reach(x, "vpc1", "198.19.21.10", { name = "op2" })
  grade.expect_reach(x, "op2", "198.19.10.10", { name = "vpc1" })
end, { hint = "blocking op2's traffic stops the leak and the service with it" })

check("nothing crosses the internet in clear", function(x)
  local trace = x:capture({ "inet:eth0", "inet:eth1" }, function()
    x.vpc1:ping("198.19.20.10", { count = 2, interval = 0.05, timeout = 0.3 })
    x.vpc1:ping("198.19.21.10", { count = 2, interval = 0.05, timeout = 0.3 })
    x.op2:ping("198.19.10.10", { count = 2, interval = 0.05, timeout = 0.3 })
  end)
  local clear, esp = {}, 0
  for _, line in ipairs(trace:lines()) do
    if line:find(" ESP ", 1, true) then
      esp = esp + 1
    elseif line:find("198.19.", 1, true) then
      clear[#clear + 1] = line
    end
  end
  x:expect(#clear == 0, ("%d packets with inner addresses in clear on the internet link, e.g. %s"):format(#clear, clear[1] or ""))
  x:expect(esp >= 12, ("%d ESP packets on the internet link for 6 pings (expected 12 or more: requests and replies, seen at both of its ends)"):format(esp))
end, { hint = "every packet between the sites must be ESP on inet's links" })
