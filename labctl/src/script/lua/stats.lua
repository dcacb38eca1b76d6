-- stats: summaries of repeated measurements.
--
--   local median = require("stats").median
--   local typical = median({ 3, 1, 2 })   -- 2
--
-- A lab that measures a cost several times reports the median: one round
-- disturbed by the rest of the machine moves it less than the mean or the best.

local stats = {}

-- The middle value of a non-empty list of numbers (the mean of the two
-- middle ones for an even count).
function stats.median(values)
  local sorted = {}
  for i, v in ipairs(values) do
    sorted[i] = v
  end
  table.sort(sorted)
  local n = #sorted
  if n == 0 then
    error("stats.median(): the list is empty\nhelp: measure at least once before taking the median", 2)
  end
  return n % 2 == 1 and sorted[(n + 1) // 2] or (sorted[n // 2] + sorted[n // 2 + 1]) / 2
end

return stats
