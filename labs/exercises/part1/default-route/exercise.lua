-- Exercise part1/default-route: a host behind a router has no way back.
--
--      h1 ─┐
--          ├── sw ── r1 ── h3
--      h2 ─┘
--
-- The lab of part 1, except that h3 was given no default route: h1's echo
-- requests reach h3, but h3 does not know where 198.18.0.0/24 is, so its
-- replies go nowhere. The fix belongs on h3, and the packets must still
-- cross r1 (no NAT, no extra link).

lab { name = "ex-default-route", description = "part1 exercise: a host behind a router has no route back" }

exercise {
  title = "A host behind a router has no route back",
  task = [[
    h1 (198.18.0.1, 2001:db8::1) cannot ping h3 (198.18.1.1, 2001:db8:0:1::1),
    over IPv4 or IPv6, although h1 reaches its router r1. Find out why and fix
    it, so that h1 and h3 reach each other both ways, through r1.
  ]],
  hints = {
    "Ping h3 from h1 and watch where the packets go: `labctl exec ex-default-route h3 -- tcpdump -ni eth0` shows requests arriving. Do replies leave?",
    "Compare `ip route` (and `ip -6 route`) on h1 and on h3. What does h3 do with a packet for 198.18.0.1?",
    "h3 needs a default route via r1, for both families: `ip route add default via 198.18.1.254` and `ip -6 route add default via 2001:db8:0:1::fe`.",
  },
  solution = {
    commands = {
      { "h3", { "ip", "route", "add", "default", "via", "198.18.1.254" } },
      { "h3", { "ip", "-6", "route", "add", "default", "via", "2001:db8:0:1::fe" } },
    },
  },
}

local h1 = node("h1")
local h2 = node("h2")
local h3 = node("h3")
local r1 = node("r1", { forwarding = true })
local sw = bridge("sw")

link(h1, sw, { { "198.18.0.1/24", "2001:db8::1/64" } })
link(h2, sw, { { "198.18.0.2/24", "2001:db8::2/64" } })
link(r1, sw, { { "198.18.0.254/24", "2001:db8::fe/64" } })
link(r1, h3, { { "198.18.1.254/24", "2001:db8:0:1::fe/64" }, { "198.18.1.1/24", "2001:db8:0:1::1/64" } })

h1:route("default", "198.18.0.254")
h1:route("default", "2001:db8::fe")
h2:route("default", "198.18.0.254")
h2:route("default", "2001:db8::fe")
-- h3: nothing. That is the exercise.

check("h1 reaches h3 over IPv4", function(x)
  grade.expect_reach(x, "h1", "198.18.1.1", { name = "h3" })
end, { hint = "h1's requests reach h3 (see `tcpdump` on h3); look at how h3 would send the reply" })

check("h3 reaches h1 over IPv4", function(x)
  grade.expect_reach(x, "h3", "198.18.0.1", { name = "h1" })
end, { hint = "`labctl exec ex-default-route h3 -- ip route get 198.18.0.1`" })

check("h1 and h3 reach each other over IPv6", function(x)
  grade.expect_reach(x, "h1", "2001:db8:0:1::1", { name = "h3 (IPv6)" })
  grade.expect_reach(x, "h3", "2001:db8::1", { name = "h1 (IPv6)" })
end, { hint = "IPv6 has its own routing table: `ip -6 route` on h3" })

check("the packets cross r1, unchanged", function(x)
  local moved = x:delta({ "r1" }, function()
    x.h3:ping("198.18.0.1", { count = 3, interval = 0.02, timeout = 0.3 })
  end)
  local forwarded = moved.r1["Ip.ForwDatagrams"] or 0
  x:expect(forwarded >= 6, ("r1 forwarded %d IPv4 packets for 3 pings h3 -> h1 (expected 6: requests and replies)"):format(forwarded))
  local trace = x:capture({ "h3:eth0" }, function()
    x.h1:ping("198.18.1.1", { count = 1, timeout = 0.3 })
  end)
  x:expect(trace:count("198.18.0.1 > 198.18.1.1") >= 1,
    "h3 does not see h1's own address as the source: is r1 rewriting it (NAT)? Route instead")
  local links = table.concat(grade.links(x.h3), ", ")
  x:expect(links == "eth0, lo", "h3 has links " .. links .. ": the fix is a route, not a new link")
end, { hint = "the fix is a route on h3; r1 already forwards" })
