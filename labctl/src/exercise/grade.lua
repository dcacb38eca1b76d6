-- grade: helpers exercise checks use to phrase their evidence in the
-- learner's terms. Available as the global `grade` in exercise files.
--
--   check("h3 reaches h1", function(x)
--     grade.expect_reach(x, "h3", "198.18.0.1")
--   end)

local grade = {}

-- The places and reasons of an x:drops() table, sorted, as
-- "dropped at r1:eth1 by the kernel, reason IP_RPFILTER".
function grade.drops_text(dropped, only)
  local places = {}
  for place in pairs(dropped or {}) do
    places[#places + 1] = place
  end
  table.sort(places)
  local parts = {}
  for _, place in ipairs(places) do
    local reasons = {}
    for reason, count in pairs(dropped[place]) do
      if not only or reason:match(only) then
        reasons[#reasons + 1] = ("%s (%d)"):format(reason, count)
      end
    end
    table.sort(reasons)
    if #reasons > 0 then
      parts[#parts + 1] = ("dropped at %s by the kernel, reason %s"):format(place, table.concat(reasons, ", "))
    end
  end
  return table.concat(parts, "; ")
end

-- `dropped` without one reason.
function grade.without(dropped, reason)
  local kept = {}
  for place, reasons in pairs(dropped or {}) do
    for r, count in pairs(reasons) do
      if r ~= reason then
        kept[place] = kept[place] or {}
        kept[place][r] = count
      end
    end
  end
  return kept
end

-- The one place that dropped the most packets, as a drops table: the
-- likeliest culprit when the kernel gives no specific reason (multicast
-- the neighbours ignore is dropped as NOT_SPECIFIED too).
function grade.busiest(dropped)
  local best, most = nil, 0
  for place, reasons in pairs(dropped or {}) do
    local n = 0
    for _, count in pairs(reasons) do
      n = n + count
    end
    if n > most or (n == most and best and place < best) then
      best, most = place, n
    end
  end
  return best and { [best] = dropped[best] } or {}
end

-- How many packets the kernel dropped for `reason` anywhere in the lab.
function grade.dropped(dropped, reason)
  local total = 0
  for _, reasons in pairs(dropped or {}) do
    total = total + (reasons[reason] or 0)
  end
  return total
end

-- Pings `to` from node `from`; when an echo goes unanswered, pings again
-- with the kernel's drop tracer watching, to say where it died. Returns
-- whether every echo came back, the evidence ("h3 -> 198.18.0.1: 3 sent,
-- 0 received; dropped at r1:eth1 by the kernel, reason IP_RPFILTER"), the
-- drops (empty when none was traced) and the ping report.
function grade.reach(x, from, to, opts)
  opts = opts or {}
  local count = opts.count or 3
  local function ping()
    return x[from]:ping(to, { count = count, interval = opts.interval or 0.02, timeout = opts.timeout or 0.3, source = opts.source })
  end
  local report = ping()
  if report.received == count then
    return true, ("%s -> %s: %d sent, %d received"):format(from, opts.name or to, report.transmitted, report.received), {}, report
  end
  local dropped = x:drops(function()
    report = ping()
  end)
  local ok = report.received == count
  local text = ("%s -> %s: %d sent, %d received"):format(from, opts.name or to, report.transmitted, report.received)
  if not ok then
    -- A specific reason first; the bridge drops neighbour-discovery multicast as IPV6DISABLED.
    local why = grade.drops_text(grade.without(grade.without(dropped, "NOT_SPECIFIED"), "IPV6DISABLED"))
    if why == "" then
      why = grade.drops_text(grade.busiest(dropped))
    end
    if why == "" and #report.errors > 0 then
      why = report.errors[1]
    elseif why == "" then
      why = "no drop in the kernel's trace: the replies went somewhere else (a route?)"
    end
    text = text .. "; " .. why
  end
  return ok, text, dropped, report
end

-- x:expect of grade.reach.
function grade.expect_reach(x, from, to, opts)
  local ok, text, dropped = grade.reach(x, from, to, opts)
  x:expect(ok, text)
  return ok, dropped
end

-- Runs argv in a node; its stdout, or an error naming the command.
grade.run = require("commands").must

-- A sysctl's value in a node, as text.
function grade.sysctl(node, key)
  return (grade.run(node, { "sysctl", "-n", key }):gsub("%s+$", ""))
end

-- The links of a node (`ip -o link`), one name per entry, sorted.
function grade.links(node)
  local names = {}
  for line in grade.run(node, { "ip", "-o", "link", "show" }):gmatch("[^\n]+") do
    names[#names + 1] = line:match("^%d+: ([^:@]+)")
  end
  table.sort(names)
  return names
end

return grade
