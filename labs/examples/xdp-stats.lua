-- XDP programs written the way libbpf-era tutorials write them, loaded as
-- they are (fixtures/xdp/stats/): a header both programs include
-- (stats_common.h), maps pinned by name (LIBBPF_PIN_BY_NAME), a per-CPU
-- array of struct datarec { rx_packets, rx_bytes } indexed by XDP action,
-- a hash keyed by enum xdp_action, and an old-style section name beside
-- the program asked for.
--
--   h1:eth0 <-> h2:eth0   198.18.0.0/24   xdp_stats_pass (counts, lets pass)
--   h1:eth1 <-> h2:eth1   198.18.1.0/24   xdp_stats_pass
--   h1:eth2 <-> h2:eth2   198.18.2.0/24   xdp_stats_drop (drops UDP to port 7000)
--
-- Each interface gets its own copy of the by-name maps, pinned in the lab's
-- folder: /sys/fs/bpf/labctl/xdp-stats/h2-eth0/maps/xdp_stats_map, ...
-- (share_maps = { "xdp_stats_map" } would give the interfaces naming it one
-- map, in /sys/fs/bpf/labctl/xdp-stats/shared/). `labctl down` removes them.
--
--   sudo labctl up labs/examples/xdp-stats.lua
--   labctl exec xdp-stats h1 -- ping -c 3 198.18.0.2
--   labctl xdp xdp-stats        # xdp_stats_map 2={rx_bytes=... rx_packets=...}, verdicts XDP_PASS=...
--   labctl down xdp-stats

lab { name = "xdp-stats", description = "tutorial-style XDP programs: by-name pinned maps per interface, per-CPU struct values" }

local h1 = node("h1")
local h2 = node("h2")
for i = 0, 2 do
  link(h1, h2, { ("198.18.%d.1/24"):format(i), ("198.18.%d.2/24"):format(i) })
end

local STATS = "../../fixtures/xdp/stats/"
xdp("h2:eth0", { src = STATS .. "xdp_stats.c", prog = "xdp_stats_pass" })
xdp("h2:eth1", { src = STATS .. "xdp_stats.c", prog = "xdp_stats_pass" })
xdp("h2:eth2", { src = STATS .. "xdp_stats_drop.c", defines = { STATS_DROP_PORT = 7000 } })

-- per-interface: 3 pings to h2:eth0, 1 to h2:eth1, 2 to h2:eth2 and 5 UDP
-- packets to port 7000 there. Each interface's maps count its own packets
-- only: xdp_stats_map.2 (XDP_PASS) is 3, 1 and 2 pings of 98 bytes;
-- h2:eth2 also has xdp_stats_map.1 (XDP_DROP), 5 packets of 106 bytes
-- (64 of payload), and one more passed: the 57-byte UDP probe to the
-- discard port with which :blast learns the frame's addresses. verdicts
-- counts the same by action name (its key is an enum xdp_action).
experiment("per-interface", function(x)
  -- Neighbours first (XDP sees ARP too), outside the measurement.
  for i = 0, 2 do
    x.h1:ping(("198.18.%d.2"):format(i), { count = 1 })
  end
  local counted = x:delta({ "h2:eth0:xdp", "h2:eth1:xdp", "h2:eth2:xdp" }, function()
    x.h1:ping("198.18.0.2", { count = 3, interval = 0.01 })
    x.h1:ping("198.18.1.2", { count = 1 })
    x.h1:ping("198.18.2.2", { count = 2, interval = 0.01 })
    local b = x.h1:blast { to = "198.18.2.2", port = 7000, size = 64, count = 5, rate = 1000, mode = "ring" }
    x:expect_eq(b.received, 0, "xdp_stats_drop drops UDP to port 7000")
  end)
  x:snapshot("counts", counted)
end)
