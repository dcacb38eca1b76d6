-- Exercise part3/spread-rx: the receive work of a flood lands on one CPU.
--
--      tx (198.18.1.1, sends from CPU 0) ── rx (198.18.1.2, one queue)
--
-- A veth without NAPI hands each packet to the backlog of the CPU that
-- sent it, so all of rx's receive work (softirq NET_RX, the IP stack, the
-- socket) runs on CPU 0 while CPU 1 idles. Receive Packet Steering (RPS)
-- hashes each flow to a CPU of a mask: the checks count, per CPU, the
-- packets the kernel received on rx's eth0 while the grader floods rx with
-- 64 flows.

lab { name = "ex-spread-rx", description = "part3 exercise: spread receive work over both CPUs" }

exercise {
  title = "Spread the receive work over both CPUs",
  task = [[
    tx floods rx with 64 UDP flows, sending from CPU 0, and all of rx's
    receive work runs on CPU 0. Make rx spread it over both CPUs, so that
    each handles at least a fifth of the packets, without losing any.
  ]],
  hints = {
    "Watch it happen: /proc/net/softnet_stat has one line per CPU; its first column counts the packets each CPU processed.",
    "Receive Packet Steering spreads a queue's packets over the CPUs of a mask: /sys/class/net/<dev>/queues/rx-0/rps_cpus, in rx's namespace (`labctl exec` mounts its /sys).",
    "`labctl exec ex-spread-rx rx -- sh -c 'echo 3 > /sys/class/net/eth0/queues/rx-0/rps_cpus'` (mask 3 = CPUs 0 and 1).",
  },
  solution = {
    commands = { { "rx", { "sh", "-c", "echo 3 > /sys/class/net/eth0/queues/rx-0/rps_cpus" } } },
  },
}

local tx = node("tx")
local rx = node("rx")
link(tx, rx, { "198.18.1.1/24", "198.18.1.2/24" })
for _, n in ipairs { tx, rx } do
  n:sysctl("net.ipv6.conf.default.disable_ipv6", 1)
  n:sysctl("net.ipv4.igmp_link_local_mcast_reports", 0)
end

-- The packets each CPU took through rx's eth0 receive path (x:path with
-- per_cpu: the kernel's netif_receive_skb tracepoint, by CPU, for this one
-- device), not softnet's "processed", which adds up every device of the
-- machine: another lab's flood on CPU 1 meanwhile must not make the
-- unsolved lab look spread.
local function flood(x)
  local blast
  local path = x:path(function()
    blast = x.tx:blast { to = "198.18.1.2", mode = "ring", flows = 64, duration = 0.5, cpu = 0, sink_cpu = 0 }
  end, { per_cpu = true })
  local per_cpu, total = {}, 0
  for name, value in pairs(path["rx:eth0"] or {}) do
    local cpu = name:match("^rx%.(cpu%d+)$")
    if cpu then
      per_cpu[cpu] = value
      total = total + value
    end
  end
  return blast, per_cpu, total
end

check("each CPU handles at least a fifth of the packets", function(x)
  local _, per_cpu, total = flood(x)
  local names = {}
  for cpu in pairs(per_cpu) do
    names[#names + 1] = cpu
  end
  table.sort(names)
  local shares = {}
  for _, cpu in ipairs(names) do
    shares[#shares + 1] = ("%s %d%%"):format(cpu, total > 0 and math.floor(100 * per_cpu[cpu] / total) or 0)
  end
  for _, cpu in ipairs { "cpu0", "cpu1" } do
    x:expect(total > 0 and (per_cpu[cpu] or 0) >= total / 5,
      ("%s received %d of rx:eth0's %d packets (%s)"):format(cpu, per_cpu[cpu] or 0, total, table.concat(shares, ", ")))
  end
end, { hint = "RPS: rx's eth0 queue rx-0 needs a CPU mask covering both CPUs" })

check("no packet is lost", function(x)
  local blast = flood(x)
  x:expect(blast.received == blast.sent and blast.sent > 1000,
    ("tx -> rx flood: %d sent, %d received"):format(blast.sent, blast.received))
end, { hint = "spreading must not drop: the backlog of each CPU still has to keep up" })
