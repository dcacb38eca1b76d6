-- Exercise part3/backlog: a receiver drops packets at its backlog.
--
--      tx (198.18.6.1, sends from CPU 0) ── rx (198.18.6.2, RPS to CPU 1)
--
-- rx steers its receive work to CPU 1 (RPS), where each packet waits in
-- CPU 1's backlog queue (at most net.core.netdev_max_backlog packets)
-- until the softirq gets to it. The exercise's setup added a firewall to
-- rx whose input chain walks 10000 rules that never match: CPU 1 falls
-- behind the grader's bursts, the backlog overflows, and the kernel drops
-- the overflow (softnet_stat's "dropped" column, drop reason CPU_BACKLOG).
-- The checks send the same bursts and count the drops where the kernel
-- makes them: at rx's eth0, by the drop-reason tracer (x:drops).

lab { name = "ex-backlog", description = "part3 exercise: a slow receive path overflows a CPU's backlog" }

local rules = { "nft", "add table ip slow; add chain ip slow input { type filter hook input priority filter; policy accept; };" }
for i = 1, 10000 do
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

-- Bursts of 1000 packets (the backlog's size: one burst into an empty
-- backlog never overflows it), 20 ms apart; a burst that tx sends late
-- still goes out alone (blast's bursts never merge). Solved, CPU 1 takes a
-- few us a packet: each burst is gone within a few ms, long before the
-- next, even on a CPU shared with other work. Unsolved, each packet walks
-- the 10000 rules (~90 us): CPU 1 works off ~220 packets per 20 ms, so the
-- backlog fills by the third burst and overflows from then on. For the
-- unsolved lab to drop nothing, tx would have to be 4 times slower than
-- asked, every time: a burst at most every ~90 ms.
local COUNT, RATE, BURST = 20000, 50000, 1000

-- The bursts, under a backlog of 1000 whatever the machine's setting (an
-- exclusive turn: no other lab's traffic shares CPU 1's queue meanwhile),
-- and the packets the kernel dropped meanwhile, by place and reason (the
-- drop-reason tracer: only this lab's packets, unlike softnet's
-- machine-wide "dropped").
local function bursts(x)
  local blast, drops
  x:host_sysctl({ ["net.core.netdev_max_backlog"] = 1000 }, function()
    drops = x:drops(function()
      blast = x.tx:blast {
        to = "198.18.6.2", mode = "mmsg", flows = 64, rate = RATE, burst = BURST, count = COUNT, cpu = 0, sink_cpu = 0,
      }
    end)
  end)
  return blast, drops
end

check("no backlog drops under the bursts", function(x)
  local blast, drops = bursts(x)
  local dropped = (drops["rx:eth0"] or {}).CPU_BACKLOG or 0
  x:expect(dropped == 0, ("%d bursts of %d packets: %d dropped at rx:eth0 as CPU_BACKLOG (CPU 1's backlog of 1000 was full); %d of %d received"):format(
    COUNT // BURST, BURST, dropped, blast.received, blast.sent))
end, { hint = "the drops are backlog drops on CPU 1: its backlog fills faster than it drains" })

check("every packet reaches the socket", function(x)
  local blast, drops = bursts(x)
  local why = grade.drops_text(drops)
  x:expect(blast.sent == COUNT and blast.received == blast.sent,
    ("tx -> rx: %d sent, %d received"):format(blast.sent, blast.received) .. (why ~= "" and "; " .. why or ""))
end, { hint = "dropping the traffic earlier is not removing the bottleneck" })

check("the machine-wide backlog size was left alone", function(x)
  local backlog = x:host_sysctl("net.core.netdev_max_backlog")
  x:expect(backlog <= 1000, ("net.core.netdev_max_backlog is %d: a bigger queue for the whole machine hides a slow receiver"):format(backlog))
end, { hint = "fix rx, not the machine" })
