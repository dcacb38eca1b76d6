-- Exercise part2/find-the-drop: one firewall rule too many.
--
--      h1 ─┐
--          ├── sw ── r1 ── h3     (UDP service on h3, port 5201)
--      h2 ─┘
--
-- r1's forward chain holds several rules. One of them drops the UDP
-- service h1 uses on h3; the others are wanted: h2 is quarantined, and the
-- discard port 9 is closed. Find the culprit with labctl's drop tracing
-- (the kernel says NETFILTER_DROP, and where) and the rules' counters, and
-- delete only that rule.

lab { name = "ex-find-the-drop", description = "part2 exercise: find the firewall rule that drops a service" }

local RULES = table.concat({
  "add table inet guard",
  "add chain inet guard forward { type filter hook forward priority filter; policy accept; }",
  "add rule inet guard forward ip saddr 198.18.0.2 counter drop comment \"quarantine h2\"",
  "add rule inet guard forward udp dport 9 counter drop comment \"discard port closed\"",
  "add rule inet guard forward ip daddr 198.18.1.0/24 udp dport 5000-5300 counter drop comment \"old game servers\"",
  "add rule inet guard forward tcp dport 23 counter drop comment \"no telnet\"",
}, "; ")

exercise {
  title = "Find the firewall rule that drops a service",
  task = [[
    h1's UDP traffic to h3 port 5201 never arrives; ping works. Somewhere on
    the path a firewall drops it. Find the rule and delete only that one:
    the others (quarantine of h2, port 9, telnet) must stay and keep working.
  ]],
  hints = {
    "Where do the packets die? `labctl exec ex-find-the-drop r1 -- nft list ruleset` shows r1's rules with counters: send some traffic and see which counter moves.",
    "The kernel's drop reason for a firewall drop is NETFILTER_DROP, at r1. The rule with the port range 5000-5300 matches 5201.",
    "`nft -a list chain inet guard forward` shows each rule's handle; `nft delete rule inet guard forward handle N` deletes one.",
  },
  setup = { commands = { { "r1", { "nft", RULES } } } },
  solution = {
    commands = {
      { "r1", { "sh", "-c", "nft delete rule inet guard forward handle $(nft -a list chain inet guard forward | sed -n 's/.*old game servers.*# handle \\([0-9]*\\)/\\1/p')" } },
    },
  },
}

local h1 = node("h1")
local h2 = node("h2")
local h3 = node("h3")
local r1 = node("r1", { forwarding = true })
local sw = bridge("sw")
link(h1, sw, { "198.18.0.1/24" })
link(h2, sw, { "198.18.0.2/24" })
link(r1, sw, { "198.18.0.254/24" })
link(r1, h3, { "198.18.1.254/24", "198.18.1.1/24" })
h1:route("default", "198.18.0.254")
h2:route("default", "198.18.0.254")
h3:route("default", "198.18.1.254")
for _, n in ipairs { h1, h2, h3, r1, sw } do
  n:sysctl("net.ipv4.igmp_link_local_mcast_reports", 0)
end

local function udp(x, port, count)
  return x.h1:udp { to = "198.18.1.1", port = port, size = 64, count = count, rate = 5000 }
end

check("the service on h3 port 5201 works", function(x)
  local flow, dropped = udp(x, 5201, 50), {}
  if flow.received_packets < flow.sent_packets then
    -- Again, with the kernel's drop tracer watching: where do they die?
    dropped = x:drops(function()
      flow = udp(x, 5201, 50)
    end)
  end
  local text = ("h1 -> h3:5201 UDP: %d sent, %d received"):format(flow.sent_packets, flow.received_packets)
  local why = grade.drops_text(dropped)
  x:expect(flow.received_packets == flow.sent_packets and flow.sent_packets == 50, text .. (why ~= "" and "; " .. why or ""))
end, { hint = "the drop is at r1 with reason NETFILTER_DROP: one of r1's nft rules matches port 5201" })

check("the other rules are still there and still drop", function(x)
  local chain = x.r1:run { "nft", "list", "chain", "inet", "guard", "forward" }
  x:expect(chain.status == 0, "r1 has no chain inet guard forward any more: the firewall was flushed")
  if chain.status ~= 0 then
    return
  end
  for _, wanted in ipairs { "quarantine h2", "discard port closed", "no telnet" } do
    x:expect(chain.stdout:find(wanted, 1, true) ~= nil, ("the rule %q is gone: delete only the culprit"):format(wanted))
  end
  x:expect(not chain.stdout:gsub("policy accept", ""):find("accept", 1, true), "a rule accepts traffic now: delete the culprit instead of overriding it")
  local function counter(comment)
    local listed = grade.run(x.r1, { "nft", "list", "chain", "inet", "guard", "forward" })
    for line in listed:gmatch("[^\n]+") do
      if line:find(comment, 1, true) then
        return tonumber(line:match("counter packets (%d+)")) or 0
      end
    end
    return 0
  end
  local before = counter("quarantine h2")
  local reached = x.h2:ping("198.18.1.1", { count = 1, timeout = 0.3 }).received
  x:expect(reached == 0 and counter("quarantine h2") > before, "h2 reaches h3: the quarantine no longer drops")
  before = counter("discard port closed")
  local flow = udp(x, 9, 10)
  x:expect(flow.received_packets == 0 and counter("discard port closed") >= before + 10,
    ("UDP to port 9: %d of %d arrived, the discard rule no longer drops"):format(flow.received_packets, flow.sent_packets))
end, { hint = "flushing the firewall or accepting everything makes the service work, and removes what the other rules are for" })
