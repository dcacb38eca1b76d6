-- Eight hosts on one bridge, built with the topo helpers: the same layout
-- as bench/ip-star.sh (h1 is 198.18.0.2/15, h2 198.18.0.3/15, ...).
--
--   sudo labctl up labs/examples/star.lua
--   labctl exec star h1 -- ping -c1 198.18.0.9     # h8

lab { name = "star", description = "eight hosts on one bridge" }

local topo = require("topo")
topo.star(8)
