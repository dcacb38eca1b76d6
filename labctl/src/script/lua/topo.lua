-- topo: builders for common topologies, on top of node, bridge and link.
--
--   local topo = require("topo")
--   local star = topo.star(8)          -- star.bridge, star.hosts[1..8]
--
-- Addresses come from 198.18.0.0/15 (RFC 2544 benchmarking range). Each
-- builder returns the handles it made, so a lab can add routes, sysctls
-- and experiments to them.

local topo = {}

-- Fail at the caller's line (level 3: past check and the builder).
local function check(ok, message, help)
  if not ok then error(message .. "\nhelp: " .. help, 3) end
end

local function count(n)
  return math.type(n) == "integer" and n >= 1
end

-- Host i of a flat 198.18.0.0/15 subnet, as bench/ip-star.sh numbers them:
-- 198.18.(i // 250).(i % 250 + 1)/15.
local function flat_address(i)
  return ("198.18.%d.%d/15"):format(i // 250, i % 250 + 1)
end

-- n hosts on one bridge, one flat subnet.
-- opts.prefix: host name prefix ("h"); opts.bridge: bridge name ("sw").
function topo.star(n, opts)
  opts = opts or {}
  check(count(n) and n < 64000, ("topo.star(): n must be a whole number from 1 to 63999, got %s"):format(tostring(n)),
    "write topo.star(8)")
  local sw = bridge(opts.bridge or "sw")
  local hosts = {}
  for i = 1, n do
    hosts[i] = node((opts.prefix or "h") .. i)
    link(hosts[i], sw, { flat_address(i) })
  end
  return { bridge = sw, hosts = hosts }
end

-- n nodes in a chain, 1 - 2 - ... - n. Link i (between nodes i and i+1)
-- is 198.18.i.0/24, node i being .1 and node i+1 .2. Inner nodes forward,
-- and every node has routes to the subnets it is not on, so the ends
-- reach each other. opts.prefix: node name prefix ("n").
function topo.line(n, opts)
  opts = opts or {}
  check(count(n) and n >= 2 and n <= 255, ("topo.line(): n must be a whole number from 2 to 255, got %s"):format(tostring(n)),
    "write topo.line(3)")
  local nodes = {}
  for i = 1, n do
    nodes[i] = node((opts.prefix or "n") .. i, { forwarding = i > 1 and i < n })
  end
  for i = 1, n - 1 do
    link(nodes[i], nodes[i + 1], { ("198.18.%d.1/24"):format(i), ("198.18.%d.2/24"):format(i) })
  end
  for k = 1, n do
    for j = 1, n - 1 do
      if j < k - 1 then     -- subnet to the left: via the left neighbour
        nodes[k]:route(("198.18.%d.0/24"):format(j), ("198.18.%d.1"):format(k - 1))
      elseif j > k then     -- subnet to the right: via the right neighbour
        nodes[k]:route(("198.18.%d.0/24"):format(j), ("198.18.%d.2"):format(k))
      end
    end
  end
  return { nodes = nodes }
end

-- A tree of bridges, `depth` levels deep, each with `fanout` children; the
-- leaves are hosts, all in one flat subnet (a tree has no loops, so no STP).
-- Bridges are s1, s2, ... and hosts h1, h2, ... in breadth-first order.
function topo.tree(depth, fanout, opts)
  opts = opts or {}
  check(count(depth) and count(fanout) and fanout ^ depth < 64000,
    ("topo.tree(): depth and fanout must be whole numbers >= 1 with fanout^depth < 64000, got %s, %s"):format(
      tostring(depth), tostring(fanout)),
    "write topo.tree(2, 3)")
  local bridges, hosts = { bridge("s1") }, {}
  local level = { bridges[1] }
  for d = 1, depth do
    local next_level = {}
    for _, parent in ipairs(level) do
      for _ = 1, fanout do
        local child
        if d == depth then
          child = node((opts.prefix or "h") .. (#hosts + 1))
          hosts[#hosts + 1] = child
          link(child, parent, { flat_address(#hosts) })
        else
          child = bridge("s" .. (#bridges + 1))
          bridges[#bridges + 1] = child
          link(child, parent)
        end
        next_level[#next_level + 1] = child
      end
    end
    level = next_level
  end
  return { root = bridges[1], bridges = bridges, hosts = hosts }
end

return topo
