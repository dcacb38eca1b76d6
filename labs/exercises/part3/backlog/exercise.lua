-- Exercise part3/backlog: a receiver drops packets at its backlog.
--
--      tx (198.18.6.1, sends from CPU 0) ── rx (198.18.6.2, RPS to CPU 1)
--
-- rx steers its receive work to CPU 1 (RPS), where each packet waits in
-- CPU 1's backlog queue (at most net.core.netdev_max_backlog packets)
-- until the softirq gets to it. The exercise's setup added a firewall to
-- rx whose input chain walks thousands of rules that never match: CPU 1
-- falls behind the grader's bursts, the backlog overflows, and the kernel
-- drops the overflow (softnet_stat's "dropped" column). The checks send
-- the same bursts and read the per-CPU softnet counters.

lab { name = "ex-backlog", description = "part3 exercise: a slow receive path overflows a CPU's backlog" }

local rules = { "nft", "add table ip slow; add chain ip slow input { type filter hook input priority filter; policy accept; };" }
for i = 1, 3000 do
  rules[#rules + 1] = ("add rule ip slow input ip saddr 10.%d.%d.%d udp dport %d counter drop;"):format(i // 65536, (i // 256) % 256, i % 256, 1000 + i % 1000)
end

exercise {
  title = "Find and remove the backlog bottleneck",
  task = [[
    Bursts from tx to rx lose packets, although rx is idle between them.
    Find where they are dropped and why, and remove the bottleneck this
    exercise set up on rx, so that no packet of the same bursts is dropped.
    The machine-wide backlog size stays as it is.
  ]],
  hints = {
    "/proc/net/softnet_stat: one line per CPU; the second column counts packets dropped because that CPU's backlog was full, the third time_squeeze.",
    "Why is CPU 1 so slow? Look at what runs for each packet rx receives: `labctl exec ex-backlog rx -- nft list ruleset | wc -l`.",
    "The table `slow` matches nothing and costs thousands of rule checks per packet: `labctl exec ex-backlog rx -- nft delete table ip slow`.",
  },
  setup = { commands = { { "rx", rules } } },
  solution = { commands = { { "rx", { "nft", "delete", "table", "ip", "slow" } } } },
}

local tx = node("tx")
local rx = node("rx")
link(tx, rx, { "198.18.6.1/24", "198.18.6.2/24" })
rx:tune("eth0", { rps_cpus = "2" })
for _, n in ipairs { tx, rx } do
  n:sysctl("net.ipv6.conf.default.disable_ipv6", 1)
  n:sysctl("net.ipv4.igmp_link_local_mcast_reports", 0)
end

local COUNT, RATE, BURST = 10000, 50000, 500

local function bursts(x)
  local blast
  local moved = x:delta({ "softnet" }, function()
    blast = x.tx:blast {
      to = "198.18.6.2", mode = "mmsg", flows = 64, rate = RATE, burst = BURST, count = COUNT, cpu = 0, sink_cpu = 0,
    }
  end)
  return blast, moved.softnet
end

check("no backlog drops under the bursts", function(x)
  local blast, softnet = bursts(x)
  local dropped, squeezed = softnet["cpu1.dropped"] or 0, softnet["cpu1.time_squeeze"] or 0
  x:expect(dropped == 0, ("%d bursts of %d packets: CPU 1 dropped %d at its full backlog (time_squeeze %d); %d of %d received"):format(
    COUNT // BURST, BURST, dropped, squeezed, blast.received, blast.sent))
end, { hint = "the drops are softnet drops on CPU 1: its backlog fills faster than it drains" })

check("every packet reaches the socket", function(x)
  local blast = bursts(x)
  x:expect(blast.sent == COUNT and blast.received == blast.sent, ("tx -> rx: %d sent, %d received"):format(blast.sent, blast.received))
end, { hint = "dropping the traffic earlier is not removing the bottleneck" })

check("the machine-wide backlog size was left alone", function(x)
  local backlog = x:host_sysctl("net.core.netdev_max_backlog")
  x:expect(backlog <= 1000, ("net.core.netdev_max_backlog is %d: a bigger queue for the whole machine hides a slow receiver"):format(backlog))
end, { hint = "fix rx, not the machine" })
